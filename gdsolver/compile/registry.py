"""The registry: which backends exist and in what order `auto` prefers them. The CLI
choices, the help text, `gdsolver backends` and `auto` are all derived from BACKEND_MODULES;
adding a backend is one module with one `Backend` subclass plus one line here.

auto's order (measured, see benchmarks/results/backends.md): Gurobi when it is licensed
for the instance (4.0 s in total against HiGHS's 30.9 s), then HiGHS, then SCIP: SCIP wins
on small sweeps and ReLU regression (geometric mean 0.84 of HiGHS's time) but loses where
the time goes, the largest sweeps (1.5-8x), and in total (50.7 s)."""

from __future__ import annotations

import functools
import importlib
from typing import Any

from gdsolver.compile.base import Backend, Feature, SolveOptions, SolveRun
from gdsolver.compile.result import SolveResult
from gdsolver.errors import BackendUnavailableError, LicenseLimitError, OptionError, SolveInterrupted
from gdsolver.ir.instance import MilpInstance, require_instance

#: every backend as "module:Class", in `auto`'s order of preference
BACKEND_MODULES = (
    "gdsolver.compile.gurobi:GurobiBackend",
    "gdsolver.compile.highs:HighsBackend",
    "gdsolver.compile.scip:ScipBackend",
)
#: the backend used when none is named (no licence, installed with gdsolver)
DEFAULT_BACKEND = "highs"
AUTO = "auto"


@functools.cache
def backend_classes() -> tuple[type[Backend], ...]:
    """The Backend subclasses, in auto's order. Importing them imports no solver."""
    out = []
    for entry in BACKEND_MODULES:
        module, cls = entry.split(":")
        out.append(getattr(importlib.import_module(module), cls))
    return tuple(out)


def backend_names() -> tuple[str, ...]:
    """The solvers' names, in auto's order."""
    return tuple(c.name for c in backend_classes())


def backend_choices() -> tuple[str, ...]:
    """What --backend accepts: every solver and "auto"."""
    return (*backend_names(), AUTO)


def check_backend_name(name: str, *, allow_auto: bool = True) -> str:
    """`name` if it names a backend (or auto), else an OptionError listing the choices."""
    choices = backend_choices() if allow_auto else backend_names()
    if name not in choices:
        raise OptionError(f"backend: unknown backend {name!r}, expected one of {list(choices)}")
    return name


def get_backend(name: str) -> Backend:
    """A backend by name (or "auto")."""
    check_backend_name(name)
    if name == AUTO:
        return AutoBackend()
    return next(c for c in backend_classes() if c.name == name)()


def available_backends() -> tuple[str, ...]:
    """The solvers usable here (installed and licensed), in auto's order."""
    return tuple(c.name for c in backend_classes() if c.is_available() and c.licence().usable)


def backend_info(name: str) -> dict[str, Any]:
    """What `gdsolver backends` shows for one solver (never raises for a missing package)."""
    check_backend_name(name, allow_auto=False)
    return get_backend(name).info()


def backend_help(default: str | None = DEFAULT_BACKEND) -> str:
    """The --backend help text."""
    names = [f"{n} (default)" if n == default else n for n in backend_names()]
    return (f"Solver backend: {' | '.join(names)} | {AUTO} (the first of {', '.join(backend_names())} that is "
            "installed, licensed and accepts the instance; see `gdsolver backends`).")


def auto_description() -> str:
    """What `--backend auto` does on this machine, in words."""
    parts, skipped = [], []
    for cls in backend_classes():
        lic = cls.licence()
        if not lic.usable:
            skipped.append(f"{cls.name}: {lic.reason}")
            continue
        scope = cls().auto_scope()
        parts.append(f"{cls.name} for {scope}")
        if scope == "any instance":
            break
    text = ", else ".join(parts) if parts else "no backend is usable here"
    return text + (f" (not usable: {'; '.join(skipped)})" if skipped else "")


def solve(inst: MilpInstance, backend: str = DEFAULT_BACKEND, opts: SolveOptions | None = None, *,
          fallback: str | None = None, **options: Any) -> SolveResult:
    """Solve `inst` with `backend` (a name or "auto"); options as one SolveOptions value
    or as keywords (see Backend.solve). With `fallback`, a backend whose package is
    missing or whose licence is too small for the instance hands the instance to the
    fallback backend instead."""
    primary = get_backend(backend)
    if fallback is not None:
        check_backend_name(fallback)
    try:
        return primary.solve(inst, opts, **options)
    except (LicenseLimitError, BackendUnavailableError) as exc:
        if fallback is None or fallback == backend:
            raise
        res = get_backend(fallback).solve(inst, opts, **options)
        res.message = f"{backend} could not take the instance ({exc}); solved with {res.backend}; {res.message}"
        return res


class AutoBackend(Backend):
    """The first backend in BACKEND_MODULES' order that is usable here and accepts the
    instance (e.g. fits a size-limited licence). The result's `backend` names the
    solver used; its message starts with why auto chose it."""

    name = AUTO

    @classmethod
    def _usable(cls) -> tuple[type[Backend], ...]:
        return tuple(c for c in backend_classes() if c.is_available() and c.licence().usable)

    @classmethod
    def is_available(cls) -> bool:
        return bool(cls._usable())

    @classmethod
    def supports(cls, feature: Feature | str) -> bool:  # what every solver gives
        return all(c.supports(feature) for c in backend_classes())

    @classmethod
    def version(cls) -> str:
        return ", ".join(f"{c.name} {c.version()}" for c in cls._usable())

    def choose(self, inst: MilpInstance, after: tuple[str, ...] = ()) -> tuple[Backend, str]:
        """(backend, reason) for `inst`, skipping the names in `after`."""
        reasons: list[str] = []
        for cls in backend_classes():
            if cls.name in after:
                continue
            lic = cls.licence()
            if not lic.usable:
                reasons.append(f"{cls.name} unavailable ({lic.reason})")
                continue
            be = cls()
            ok, why = be.accepts(inst)
            if ok:
                text = "; ".join(filter(None, [*reasons, why])) or f"{cls.name} is the first usable backend"
                return be, f"auto chose {cls.name}: {text}"
            reasons.append(why or f"{cls.name} does not accept the instance")
        raise BackendUnavailableError(f"backend auto: no backend can solve this instance here ({'; '.join(reasons)})")

    def solve(self, inst: MilpInstance, opts: SolveOptions | None = None, **kw: Any) -> SolveResult:
        require_instance(inst)
        native = kw.get("options") or (opts.native if opts is not None else None)
        if native:
            raise OptionError("options: solver options are backend-specific; with backend 'auto' pass none "
                              f"(got {sorted(native)}), or choose one of {list(backend_names())}")
        inst.validate()
        tried: tuple[str, ...] = ()
        while True:
            be, why = self.choose(inst, tried)
            try:
                res = be.solve(inst, opts, **kw)
            except LicenseLimitError:  # the licence refused after all: the next backend answers
                tried += (be.name,)
                continue
            except SolveInterrupted as exc:
                if exc.result is not None:
                    exc.result.message = f"{why}; {exc.result.message}"
                raise
            res.message = f"{why}; {res.message}"
            res.options = {**res.options, "backend": AUTO}
            return res

    def _solve(self, inst: MilpInstance, opts: SolveOptions, run: SolveRun) -> SolveResult:  # pragma: no cover
        raise NotImplementedError("AutoBackend.solve delegates to the chosen backend")

    def info(self) -> dict[str, Any]:
        return {"name": AUTO, "order": list(backend_names()), "description": auto_description()}


def native_options_help() -> str:
    """The --option help text: what each backend takes."""
    return "Backend option KEY=VALUE (repeatable): " + "; ".join(
        f"{c.name}: {c.native_options}" for c in backend_classes() if c.native_options) + "."

