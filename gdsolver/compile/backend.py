"""The backend interface and registry. Solver packages are imported lazily, so
`import gdsolver` works without any of them.

Backends: "highs" (default, no licence), "gurobi" (native indicators, licence), and
"auto", which uses Gurobi when gurobipy imports, a licence starts and the instance
fits it (the pip licence: 2000 variables, 2000 linear + indicator constraints), and
HiGHS otherwise. A result's `backend` names the solver actually used and its
`message` starts with why auto chose it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from gdsolver.compile.result import SolveResult
from gdsolver.errors import GdsolverError
from gdsolver.ir.instance import MilpInstance

#: every feature a backend may declare
FEATURES = ("lp", "mip", "indicators", "mip_start", "time_limit", "threads", "mip_gap")


class Backend(ABC):
    name: str = ""
    #: features: "indicators" (native), "mip_start", "lp", "mip", "time_limit", "threads", "mip_gap"
    features: frozenset[str] = frozenset()

    def supports(self, feature: str) -> bool:
        return feature in self.features

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def solve(self, inst: MilpInstance, *, time_limit: float | None = None, threads: int | None = None,
              mip_gap: float | None = None, use_start: bool = True,
              options: dict[str, Any] | None = None) -> SolveResult: ...


class AutoBackend(Backend):
    """Gurobi when it is licensed for the instance, HiGHS otherwise."""

    name = "auto"
    features = frozenset({"lp", "mip", "mip_start", "time_limit", "threads", "mip_gap"})  # what both give

    def version(self) -> str:
        from gdsolver.compile.gurobi import licence_info

        lic = licence_info()
        return f"highs {get_backend('highs').version()}" + (f", gurobi {lic.version}" if lic.available else "")

    def choose(self, inst: MilpInstance) -> tuple[str, str]:
        """(backend name, reason) for this instance."""
        from gdsolver.compile.gurobi import gurobi_size, licence_info

        lic = licence_info()
        if not lic.available:
            return "highs", f"auto chose highs: gurobi unavailable ({lic.reason})"
        if lic.state == "full":
            return "gurobi", "auto chose gurobi: full licence"
        nv, nc = gurobi_size(inst)
        if lic.fits(inst):
            return "gurobi", (f"auto chose gurobi: {nv} variables and {nc} constraints fit the restricted licence "
                              f"({lic.max_variables}/{lic.max_constraints})")
        return "highs", (f"auto chose highs: {nv} variables and {nc} constraints exceed Gurobi's restricted licence "
                         f"({lic.max_variables} variables, {lic.max_constraints} linear + indicator constraints)")

    def solve(self, inst: MilpInstance, *, time_limit: float | None = None, threads: int | None = None,
              mip_gap: float | None = None, use_start: bool = True,
              options: dict[str, Any] | None = None) -> SolveResult:
        check_common_options(time_limit, threads, mip_gap)
        if options:
            raise GdsolverError("options: solver options are backend-specific; with backend 'auto' pass none "
                                f"(got {sorted(options)}), or choose highs or gurobi")
        name, why = self.choose(inst)
        kw: dict[str, Any] = dict(time_limit=time_limit, threads=threads, mip_gap=mip_gap, use_start=use_start)
        if name == "gurobi":
            kw["fallback"] = "highs"  # should the licence refuse after all, still answer
        res = get_backend(name).solve(inst, **kw)
        res.message = f"{why}; {res.message}"
        res.options = {**res.options, "backend": "auto"}
        return res


def _registry() -> dict[str, type[Backend]]:
    from gdsolver.compile.gurobi import GurobiBackend
    from gdsolver.compile.highs import HighsBackend

    return {"highs": HighsBackend, "gurobi": GurobiBackend, "auto": AutoBackend}


#: the solvers; `get_backend` also accepts "auto"
BACKENDS = ("highs", "gurobi")
BACKEND_CHOICES = ("auto", *BACKENDS)


def get_backend(name: str) -> Backend:
    """A backend by name: 'highs', 'gurobi' or 'auto'."""
    reg = _registry()
    if name not in reg:
        raise GdsolverError(f"backend: unknown backend {name!r}, expected one of {list(BACKEND_CHOICES)}")
    return reg[name]()


def backend_info(name: str) -> dict[str, Any]:
    """What `gdsolver backends` shows for one solver: available (and why not), version,
    licence (state, limits) and features. Never raises for a missing package."""
    if name not in BACKENDS:
        raise GdsolverError(f"backend: unknown backend {name!r}, expected one of {list(BACKENDS)}")
    be = get_backend(name)
    info: dict[str, Any] = {"name": name, "available": True, "reason": "", "version": None,
                            "licence": {"state": "not needed"},
                            "features": {f: be.supports(f) for f in FEATURES},
                            "indicators": "native" if be.supports("indicators") else "big-M lowering (ir.lower)"}
    if name == "highs":
        try:
            info["version"] = be.version()
        except GdsolverError as exc:
            info.update(available=False, reason=str(exc))
        return info
    from gdsolver.compile.gurobi import licence_info

    lic = licence_info()
    info.update(available=lic.available, reason=lic.reason if not lic.available else "", version=lic.version)
    info["licence"] = {"state": lic.state}
    if lic.state == "restricted":
        info["licence"].update(max_variables=lic.max_variables, max_constraints=lic.max_constraints,
                               counts="variables; linear + indicator constraints (range rows twice); "
                                      "nonzeros unlimited")
    elif lic.state == "none" and lic.version is not None:
        info["licence"]["reason"] = lic.reason
    return info


def check_common_options(time_limit: float | None, threads: int | None, mip_gap: float | None) -> None:
    if time_limit is not None and not (time_limit > 0):
        raise GdsolverError(f"time_limit: must be > 0 seconds, got {time_limit}")
    if threads is not None and (int(threads) != threads or threads < 1):
        raise GdsolverError(f"threads: must be an integer >= 1, got {threads}")
    if mip_gap is not None and not (0 <= mip_gap):
        raise GdsolverError(f"mip_gap: must be >= 0, got {mip_gap}")


def solve(inst: MilpInstance, backend: str = "highs", **options: Any) -> SolveResult:
    """Short form of get_backend(backend).solve(inst, **options); backend may be 'auto'.
    An instance whose numbers the solvers cannot honour is refused first (ir.numerics)."""
    from gdsolver.ir.numerics import check_numerics

    check_numerics(inst)
    return get_backend(backend).solve(inst, **options)
