"""The backend contract: what every solver backend declares and how a solve runs.

A backend is one module with one `Backend` subclass that declares, on the class, its
name, the package it needs, its features and how its native status maps onto a
`Termination`; it implements `_solve` (build the model from the IR's arrays in bulk,
run it through `SolveRun` so that Ctrl-C stops it, and hand the outcome to
`assemble_result`). Options are one validated `SolveOptions` value. Nothing here names
a backend: the list of backends, `auto` and the help text live in
`gdsolver.compile.registry`.

Imports: base -> result, status, ir; backends -> base; registry -> backends. No cycle.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import os
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import ModuleType
from typing import Any, ClassVar, TypeVar

import numpy as np

from gdsolver.compile.result import SolveResult
from gdsolver.compile.status import Status, Termination, status_of
from gdsolver.errors import BackendUnavailableError, OptionError, SolveInterrupted, UnsupportedModelError
from gdsolver.ir.gdsm import fingerprint
from gdsolver.ir.instance import MilpInstance, require_instance

T = TypeVar("T")


class Feature(Enum):
    """What a backend can do; declared on the class, shown by `gdsolver backends`."""

    LP = "lp"
    MIP = "mip"
    INDICATORS = "indicators"  # native indicator constraints (else big-M lowering by ir.lower)
    MIP_START = "mip_start"
    TIME_LIMIT = "time_limit"
    THREADS = "threads"  # can use more than one thread
    MIP_GAP = "mip_gap"
    INTERRUPT = "interrupt"  # Ctrl-C stops the solve and keeps the incumbent


# ------------------------------------------------------------------ options
def max_threads() -> int:
    """The largest thread count a solve accepts: 4 x the CPU cores this process may use.
    Measured on 2 cores: HiGHS starts every requested thread up front (threads=1024 took
    8 s, 4096 took 34 s, so 100000 looked like a hang); Gurobi refuses > 1024 and took
    20 s at 1024."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return 4 * max(1, cores)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise OptionError(f"{name}: must be a number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SolveOptions:
    """The options every backend understands, validated when made, plus `native`:
    solver-specific options passed through verbatim (and checked by the solver).

    time_limit: seconds (> 0), None for none; threads: at most this many (1 ..
    max_threads()), None for the solver's default; mip_gap: relative gap to stop at
    (>= 0); use_start: pass the instance's MIP start."""

    time_limit: float | None = None
    threads: int | None = None
    mip_gap: float | None = None
    use_start: bool = True
    native: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.time_limit is not None:
            t = _number("time_limit", self.time_limit)
            if not t > 0:  # also refuses NaN
                raise OptionError(f"time_limit: must be > 0 seconds, got {self.time_limit}")
            object.__setattr__(self, "time_limit", None if math.isinf(t) else t)
        if self.threads is not None:
            t = _number("threads", self.threads)
            limit = max_threads()
            if t != int(t) or not 1 <= t <= limit:
                raise OptionError(f"threads: must be an integer from 1 to {limit} (4 x the CPU cores available "
                                  f"here), got {self.threads}")
            object.__setattr__(self, "threads", int(t))
        if self.mip_gap is not None:
            g = _number("mip_gap", self.mip_gap)
            if not (g >= 0 and math.isfinite(g)):
                raise OptionError(f"mip_gap: must be a finite number >= 0, got {self.mip_gap}")
            object.__setattr__(self, "mip_gap", g)
        if not isinstance(self.use_start, (bool, np.bool_)):
            raise OptionError(f"use_start: must be true or false, got {self.use_start!r}")
        if not isinstance(self.native, Mapping) or not all(isinstance(k, str) and k for k in self.native):
            raise OptionError(f"options: must map option names (non-empty strings) to values, got {self.native!r}")
        object.__setattr__(self, "use_start", bool(self.use_start))
        object.__setattr__(self, "native", dict(self.native))

    def native_params(self, *, time_limit: str, mip_gap: str, threads: str | None = None) -> dict[str, Any]:
        """The native options plus the common ones that are set, under the solver's own
        names (threads=None: the solver takes no thread count); the common ones win."""
        params = dict(self.native)
        for name, value in ((time_limit, self.time_limit), (threads, self.threads), (mip_gap, self.mip_gap)):
            if name is not None and value is not None:
                params[name] = value
        return params

    @classmethod
    def make(cls, options: SolveOptions | None = None, *, time_limit: float | None = None,
             threads: int | None = None, mip_gap: float | None = None, use_start: bool = True,
             native: Mapping[str, Any] | None = None) -> SolveOptions:
        """`options` as is, or a new value from the keywords (not both)."""
        if options is not None:
            if not isinstance(options, SolveOptions):
                raise OptionError(f"options: expected a SolveOptions, got {type(options).__name__}")
            if (time_limit, threads, mip_gap, use_start, native) != (None, None, None, True, None):
                raise OptionError("options: pass either a SolveOptions value or keyword options, not both")
            return options
        return cls(time_limit, threads, mip_gap, use_start, {} if native is None else native)

    def record(self) -> dict[str, Any]:
        """The flat dict stored in SolveResult.options (and read back by replay)."""
        return {"time_limit": self.time_limit, "threads": self.threads, "mip_gap": self.mip_gap,
                "use_start": self.use_start, **self.native}


# ------------------------------------------------------------------ licence
@dataclass(frozen=True)
class LicenceStatus:
    """What this process can do with a backend. state: "not needed" (open source),
    "full", "restricted" (size-limited; see limits) or "none" (not usable: reason)."""

    state: str
    reason: str = ""
    version: str | None = None
    limits: Mapping[str, Any] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return self.state != "none"


# ------------------------------------------------------------------ Ctrl-C and the watchdog
# A solver stopped by the watchdog gets this share of its time limit (at least WATCHDOG_MIN_GRACE_S)
# to return with its incumbent before it is left behind: the solve then ends within 1.05x its limit.
WATCHDOG_GRACE = 0.05
WATCHDOG_MIN_GRACE_S = 0.1
POLL_S = 0.05  # how often the waiting thread looks at the clock (and lets Ctrl-C in)


def clock() -> float:
    """The watchdog's clock: wall time (monotonic), not the solver's own clock, which a loaded
    machine let HiGHS overrun by 70%. A module function so that a test can move it on."""
    return time.monotonic()


class SolveRun:
    """Runs the solver's blocking call so that Ctrl-C or the wall-clock watchdog stops it
    promptly and keeps the incumbent.

    Ctrl-C: Python only delivers SIGINT to the main thread, and only between bytecodes, so on the
    main thread the call runs in a worker thread while the main thread waits; the first Ctrl-C
    calls `stop` (the solver's own interrupt: a callback flag, terminate(), interruptSolve()) and
    waits for the solver to return with what it has (at most `grace` seconds when given: then the
    call is left running in `abandoned` and None is returned); a second Ctrl-C gives up waiting.

    Watchdog: with a time limit, the waiting thread (on any thread) calls the same `stop` when
    `clock()` passes the deadline, which counts from this object's creation (the whole solve:
    build, start, run), and sets `timed_out`. The solver then gets `watchdog_grace` seconds (or
    the call's `grace`, if smaller) to return before it is left behind; a call made after the
    deadline (a polish LP) is stopped at the deadline plus that grace and waited for. Without a
    limit, off the main thread, the call runs directly."""

    def __init__(self, time_limit: float | None = None) -> None:
        self.interrupted = False
        self.timed_out = False
        self.abandoned: threading.Thread | None = None
        self.time_limit = time_limit
        self.started = clock()
        self.deadline = None if time_limit is None else self.started + time_limit
        self.watchdog_grace = None if time_limit is None else max(WATCHDOG_MIN_GRACE_S, WATCHDOG_GRACE * time_limit)

    @property
    def can_interrupt(self) -> bool:
        """Ctrl-C can reach this solve (it runs on the main thread)."""
        return threading.current_thread() is threading.main_thread()

    @property
    def can_stop(self) -> bool:
        """Something may stop this solve before the solver ends it (Ctrl-C or the watchdog): the
        backend should subscribe its interrupt callbacks and keep the incumbent as it goes."""
        return self.can_interrupt or self.deadline is not None

    @property
    def stopped(self) -> bool:
        """Ctrl-C or the watchdog stopped a call."""
        return self.interrupted or self.timed_out

    def left(self) -> float | None:
        """Seconds to the deadline (0 when past), None without a limit: the solver's own limit."""
        return None if self.deadline is None else max(self.deadline - clock(), 0.0)

    def watchdog_note(self) -> str:
        return (f"the wall-clock watchdog stopped the solve at its time limit ({self.time_limit:g} s, "
                "build included)") if self.timed_out else ""

    def __call__(self, run: Callable[[], T], stop: Callable[[], None], grace: float | None = None) -> T | None:
        if not self.can_stop:
            return run()
        box: dict[str, Any] = {}
        done = threading.Event()

        def target() -> None:
            try:
                box["value"] = run()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                box["error"] = exc
            finally:
                done.set()

        end = None
        if self.deadline is not None:
            end = self.deadline + (self.watchdog_grace if self.timed_out else 0.0)
        stopped_at: float | None = None  # when stop() was first called during this call
        worker = threading.Thread(target=target, name="gdsolver-solve", daemon=True)
        worker.start()
        while not done.is_set():
            try:
                if stopped_at is not None:
                    wait = grace if self.interrupted else None if grace is None else min(grace, self.watchdog_grace)
                    if wait is not None and clock() - stopped_at >= wait:
                        self.abandoned = worker  # the solver did not stop in time; it ends by itself later
                        return None
                    if not done.wait(POLL_S):
                        stop()  # again: a stop sent before the solver's loop began can be lost (Gurobi's terminate)
                else:
                    done.wait(POLL_S if end is None else min(POLL_S, max(end - clock(), 0.0)))
                    if end is not None and not done.is_set() and clock() >= end:
                        self.timed_out, stopped_at = True, clock()
                        stop()
            except KeyboardInterrupt:
                if self.interrupted:
                    raise  # second Ctrl-C: stop waiting (the daemon thread dies with the process)
                self.interrupted, stopped_at = True, clock()
                stop()
        worker.join()
        if "error" in box:
            raise box["error"]
        return box["value"]


# ------------------------------------------------------------------ result assembly
def relative_gap(objective: float | None, bound: float | None) -> float | None:
    """|bound - objective| / |objective| (0 when they agree to 1e-9), the same for every
    backend (their own gap definitions differ)."""
    if objective is None or bound is None or not math.isfinite(bound):
        return None
    diff = abs(bound - objective)
    if diff <= 1e-9 * max(1.0, abs(objective)):
        return 0.0
    return diff / max(abs(objective), 1e-10)


_LIMIT_WORDS = {
    Termination.TIME_LIMIT: "the time limit", Termination.NODE_LIMIT: "a node limit",
    Termination.ITERATION_LIMIT: "an iteration limit", Termination.SOLUTION_LIMIT: "a solution limit",
    Termination.OBJECTIVE_LIMIT: "an objective limit", Termination.MEMORY_LIMIT: "the memory limit",
    Termination.OTHER_LIMIT: "a limit", Termination.NUMERICAL: "numerical trouble",
    Termination.UNKNOWN: "an unknown reason", Termination.ERROR: "an error",
}


def assemble_result(backend: Backend, inst: MilpInstance, opts: SolveOptions, *, termination: Termination,
                    native_status: str, x: np.ndarray | None, bound: float | None = None,
                    nodes: int | None = None, runtime_s: float = 0.0, interrupted: bool = False,
                    note: str = "", run: SolveRun | None = None) -> SolveResult:
    """The one way a SolveResult is made from a solver's outcome: status from the
    termination and the point, objective recomputed from x, bound and gap for MIPs
    (for an LP the optimum is its own bound), and a message that names the native
    status and says in words what happened. `run`: the solve's SolveRun; when its watchdog
    stopped the solver (and no Ctrl-C did), the solve ended at its time limit, and says so."""
    if interrupted and not termination.is_final:
        termination = Termination.INTERRUPTED
    elif run is not None and run.timed_out and not interrupted and not termination.is_final:
        termination = Termination.TIME_LIMIT  # the solver saw an interrupt; the cause was the limit
        note = "; ".join(filter(None, [run.watchdog_note(), note]))
    if x is not None:
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.shape != (inst.num_vars,) or not np.all(np.isfinite(x)):
            note = "; ".join(filter(None, [note, "the solver returned a malformed point (ignored)"]))
            x = None
    status = status_of(termination, x is not None)
    if not status.has_solution:
        x = None
    objective = inst.objective_value(x) if x is not None else None
    if inst.is_mip:
        bound = float(bound) if bound is not None and math.isfinite(bound) else None
        gap = relative_gap(objective, bound)
    else:  # an LP solved to optimality is its own bound; otherwise nothing is proven
        bound, gap, nodes = (objective, 0.0, None) if status == Status.OPTIMAL else (None, None, None)
    words = f"{backend.name} status {native_status}"
    if termination == Termination.INTERRUPTED:
        words += "; interrupted (Ctrl-C)" + ("; kept the best point found so far" if x is not None
                                             else "; no feasible point found before")
    elif status == Status.FEASIBLE:
        words += f"; stopped by {_LIMIT_WORDS.get(termination, 'a limit')}; best point found"
        words += f" (gap {gap:.3g})" if gap is not None else ""
    elif status == Status.TIME_LIMIT:
        words += "; time limit reached, no feasible point found in time"
    elif status == Status.ERROR:
        words += ("; the solver reported optimality without a point" if termination == Termination.OPTIMAL
                  else f"; stopped by {_LIMIT_WORDS.get(termination, 'a limit')} without a feasible point")
    elif termination == Termination.INFEASIBLE_OR_UNBOUNDED:
        words += f"; infeasible or unbounded ({backend.name} could not tell which)"
    return SolveResult(status=status, x=x, objective=objective, bound=bound, gap=gap, runtime_s=float(runtime_s),
                       nodes=None if nodes is None else int(nodes), backend=backend.name,
                       backend_version=backend.version(), message=words + (f"; {note}" if note else ""),
                       options=opts.record(), instance_fingerprint=fingerprint(inst),
                       termination=termination.value)


# ------------------------------------------------------------------ the base class
class Backend(ABC):
    """One solver. Subclasses declare the class attributes and implement `_solve`;
    `solve` (validation, availability, Ctrl-C) is the same for all."""

    #: the name users type (--backend NAME); unique in the registry
    name: ClassVar[str] = ""
    #: the importable package this backend needs, and how to install it
    package: ClassVar[str] = ""
    install: ClassVar[str] = ""
    features: ClassVar[frozenset[Feature]] = frozenset()
    #: what a user passes as --option KEY=VALUE (for the help text)
    native_options: ClassVar[str] = ""

    # ---- capabilities ----------------------------------------------------
    @classmethod
    def supports(cls, feature: Feature | str) -> bool:
        return Feature(feature) in cls.features

    @classmethod
    @functools.cache
    def is_available(cls) -> bool:
        """The package can be found; cheap (nothing is imported, no licence is taken)."""
        if sys.modules.get(cls.package, False) is None:  # import blocked (sys.modules[name] = None)
            return False
        try:
            return importlib.util.find_spec(cls.package) is not None
        except (ImportError, ValueError):
            return False

    @classmethod
    def module(cls) -> ModuleType:
        """The solver package, imported on first use; BackendUnavailableError if missing."""
        try:
            return importlib.import_module(cls.package)
        except ImportError as exc:
            raise BackendUnavailableError(f"backend {cls.name!r} needs the {cls.package} package ({exc}): "
                                          f"{cls.install}") from None

    @classmethod
    def version(cls) -> str:
        """The solver's version (imports the package)."""
        return str(getattr(cls.module(), "__version__", "?"))

    @classmethod
    def licence(cls) -> LicenceStatus:
        """Probe whether the solver can run here (may start the solver; cached where it
        is expensive). The default, for open-source solvers: usable when it imports."""
        if not cls.is_available():
            return LicenceStatus("none", f"{cls.package} is not installed ({cls.install})")
        try:
            return LicenceStatus("not needed", version=cls.version())
        except Exception as exc:  # noqa: BLE001 - any import-time failure means: unusable
            return LicenceStatus("none", f"{cls.package} does not load ({type(exc).__name__}: {exc})")

    def accepts(self, inst: MilpInstance) -> tuple[bool, str]:
        """(can solve `inst` here, why): used by `auto`; licence size limits go here."""
        return True, ""

    def auto_scope(self) -> str:
        """What `auto` hands this backend, in words (for `gdsolver backends`)."""
        return "any instance"

    # ---- solving ---------------------------------------------------------
    def solve(self, inst: MilpInstance, opts: SolveOptions | None = None, *, time_limit: float | None = None,
              threads: int | None = None, mip_gap: float | None = None, use_start: bool = True,
              options: Mapping[str, Any] | None = None) -> SolveResult:
        """Solve `inst`. Options as one SolveOptions value or as keywords (`options` holds
        the solver-specific ones, passed verbatim). Raises OptionError, InstanceError,
        BackendUnavailableError, LicenseLimitError, UnsupportedModelError; SolveInterrupted
        (a KeyboardInterrupt carrying the result so far) on Ctrl-C."""
        require_instance(inst)
        opts = SolveOptions.make(opts, time_limit=time_limit, threads=threads, mip_gap=mip_gap,
                                 use_start=use_start, native=options)
        run = SolveRun(opts.time_limit)  # the watchdog's clock starts here: the checks and the build count
        inst.validate()
        from gdsolver.ir.numerics import check_numerics

        check_numerics(inst)  # numbers the solvers cannot honour are refused, not solved wrongly
        self.check_model(inst)
        self.module()
        res = self._solve(inst, opts, run)
        if run.interrupted or res.interrupted:
            raise SolveInterrupted(res if res.has_solution else None)
        return res

    def check_options(self, native: Mapping[str, Any]) -> None:
        """OptionError when the solver would refuse one of these native options (an unknown name, a
        value out of range), checked on a throw-away model before any instance is built. The
        default checks nothing: a backend without a cheap probe checks them when it solves."""

    def check_model(self, inst: MilpInstance) -> None:
        """UnsupportedModelError when `inst` needs a feature this backend lacks."""
        if inst.is_mip and not self.supports(Feature.MIP):
            raise UnsupportedModelError(f"backend {self.name!r} solves LPs only; this instance has "
                                        f"{inst.num_integer} integer variables and {inst.num_indicators} indicators")

    @abstractmethod
    def _solve(self, inst: MilpInstance, opts: SolveOptions, run: SolveRun) -> SolveResult:
        """Build, run the solver's blocking call as `run(call, stop)`, and return
        `assemble_result(...)`."""

    def info(self) -> dict[str, Any]:
        """What `gdsolver backends` shows: available (and why not), version, licence,
        features. Never raises for a missing package."""
        lic = self.licence()
        return {"name": self.name, "available": lic.usable, "reason": "" if lic.usable else lic.reason,
                "version": lic.version, "licence": {"state": lic.state, **dict(lic.limits)},
                "features": {f.value: self.supports(f) for f in Feature},
                "indicators": "native" if self.supports(Feature.INDICATORS) else "big-M lowering (ir.lower)",
                "package": self.package, "options": self.native_options}
