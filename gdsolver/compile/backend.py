"""The backend interface and registry. Solver packages are imported lazily, so
`import gdsolver` works without any of them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from gdsolver.compile.result import SolveResult
from gdsolver.errors import GdsolverError
from gdsolver.ir.instance import MilpInstance


class Backend(ABC):
    name: str = ""
    #: features: "indicators" (native), "mip_start", "lp", "mip", "time_limit", "threads"
    features: frozenset[str] = frozenset()

    def supports(self, feature: str) -> bool:
        return feature in self.features

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def solve(self, inst: MilpInstance, *, time_limit: float | None = None, threads: int | None = None,
              mip_gap: float | None = None, use_start: bool = True,
              options: dict[str, Any] | None = None) -> SolveResult: ...


def _registry() -> dict[str, type[Backend]]:
    from gdsolver.compile.gurobi import GurobiBackend
    from gdsolver.compile.highs import HighsBackend

    return {"highs": HighsBackend, "gurobi": GurobiBackend}


BACKENDS = ("highs", "gurobi")


def get_backend(name: str) -> Backend:
    """A backend by name ('highs' or 'gurobi')."""
    reg = _registry()
    if name not in reg:
        raise GdsolverError(f"backend: unknown backend {name!r}, expected one of {sorted(reg)}")
    return reg[name]()


def check_common_options(time_limit: float | None, threads: int | None, mip_gap: float | None) -> None:
    if time_limit is not None and not (time_limit > 0):
        raise GdsolverError(f"time_limit: must be > 0 seconds, got {time_limit}")
    if threads is not None and (int(threads) != threads or threads < 1):
        raise GdsolverError(f"threads: must be an integer >= 1, got {threads}")
    if mip_gap is not None and not (0 <= mip_gap):
        raise GdsolverError(f"mip_gap: must be >= 0, got {mip_gap}")


def solve(inst: MilpInstance, backend: str = "highs", **options: Any) -> SolveResult:
    """Short form of get_backend(backend).solve(inst, **options)."""
    return get_backend(backend).solve(inst, **options)
