"""Usage checks made before any work: numeric options (threads, tolerances, time limits, radii,
counts), a mode against its task, solver options against the backend and the search that will
run, and the terminal itself (a closed or full standard output). Each refusal is one `error:`
line with exit code 2 (cli.common.fail).

Also here: keeping library noise off the terminal. Python warnings (numpy's RuntimeWarnings:
overflow, invalid value) and onnxruntime's native log lines are not shown unless
`gdsolver -v` (or GDSOLVER_VERBOSE=1); what matters reaches the user as gdsolver's own messages."""

from __future__ import annotations

import math
import os
import stat
import sys
import warnings
from typing import Any

from .common import fail

#: replay --tol: a relative and absolute tolerance; above this a re-solve "matches" answers that
#: differ by more than any solver's rounding (a count off by one point of a hundred)
MAX_TOL = 1e-2


def number(name: str, value: float | None, *, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False, allow_inf: bool = False) -> None:
    """A finite number in [lo, hi] (lo exclusive with lo_open); inf too with allow_inf ("no limit")."""
    if value is None:
        return
    if math.isnan(value) or (math.isinf(value) and not (allow_inf and value > 0)):
        fail(f"{name}: {value} is not a usable number, expected a finite number" + _range(lo, hi, lo_open))
    if (lo is not None and (value <= lo if lo_open else value < lo)) or (hi is not None and value > hi):
        fail(f"{name}: {value:g} is out of range, expected a number" + _range(lo, hi, lo_open))


def _range(lo: float | None, hi: float | None, lo_open: bool) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo:g}"
    return f" <= {hi:g}" if hi is not None else ""


def count(name: str, value: int | None, *, lo: int = 1, hi: int | None = None) -> None:
    if value is not None and (value < lo or (hi is not None and value > hi)):
        fail(f"{name}: {value} is out of range, expected an integer " +
             (f"from {lo} to {hi}" if hi is not None else f">= {lo}"))


def threads(name: str, value: int | None) -> None:
    """At most 4 x the CPU cores this process may use (what the solvers and torch accept)."""
    from gdsolver.compile.base import max_threads

    if value is not None and not 1 <= value <= max_threads():
        fail(f"{name}: {value} is out of range, expected an integer from 1 to {max_threads()} (4 x the CPU cores "
             "available here)")


def time_limit(name: str, value: float | None) -> None:
    number(name, value, lo=0.0, lo_open=True, allow_inf=True)


def tol(name: str, value: float) -> None:
    number(name, value, lo=0.0, hi=MAX_TOL)


def mode_for_task(mode: str | None, task: str, flag: str = "--mode") -> None:
    """A sweep head that exists for the task (a regression head on a classification set would
    make every sweep SKIPPED)."""
    from gdsolver.formulate.sweep import CLASSIFICATION_MODES, REGRESSION_MODES

    if mode is None:
        return
    modes = CLASSIFICATION_MODES if task == "classification" else REGRESSION_MODES
    if mode not in modes:
        other = "classification" if task == "regression" else "regression"
        also = f" ({mode!r} is a {other} head)" if mode in (CLASSIFICATION_MODES + REGRESSION_MODES) else ""
        fail(f"{flag} {mode!r}: not a {task} head{also}; expected one of {list(modes)}")


def native_options(backend: str, options: dict[str, Any]) -> None:
    """Every --option KEY=VALUE set on a throw-away model of `backend` (Backend.check_options): an
    unknown name or a value the solver refuses is an error now, not after the instance is loaded
    (or never, when the search that runs does not use the backend)."""
    if not options:
        return
    from gdsolver.compile.registry import AUTO, get_backend

    if backend == AUTO:
        fail(f"--option {sorted(options)[0]}: solver options are backend-specific; with --backend auto pass none, "
             "or choose a backend with --backend NAME")
    be = get_backend(backend)
    be.module()  # BackendUnavailableError (one line) when the package is missing
    be.check_options(options)


def options_for_search(options: dict[str, Any], search: str, backend: str, inst=None) -> None:
    """--option goes to the backend's MIP solve. Benders solves its LPs and master on HiGHS with
    its own settings, so options are refused with --search benders, and with --search auto when
    auto would choose Benders for this instance."""
    if not options:
        return
    key = sorted(options)[0]
    if search == "benders":
        fail(f"--option {key}: search 'benders' runs its LPs and master with its own settings and takes no "
             "backend options; use --search mip or --search presolve to pass them")
    if search == "auto" and inst is not None and auto_chooses_benders(inst, backend):
        fail(f"--option {key}: search auto would solve this instance with Benders (a count objective of the "
             "maximum-feasible-subsystem shape), which takes no backend options; pass --search mip or --search "
             "presolve with --option")


def auto_chooses_benders(inst, backend: str) -> bool:
    """Whether search auto goes to Benders for `inst` (the decision gdsolver.compile.search makes:
    a MIP whose objective has no continuous terms, solved with HiGHS or auto, whose presolved
    instance has the maximum-feasible-subsystem shape)."""
    import numpy as np

    from gdsolver.compile.highs import HighsBackend
    from gdsolver.compile.registry import AUTO
    from gdsolver.ir.instance import CONTINUOUS
    from gdsolver.ir.presolve import presolve
    from gdsolver.ir.subsystem import subsystem_view

    if not inst.is_mip or backend not in (HighsBackend.name, AUTO) or np.any(inst.c[inst.vtype == CONTINUOUS] != 0):
        return False
    pre = presolve(inst)
    if pre.status == "infeasible" or not pre.instance.is_mip:
        return False
    return subsystem_view(pre.instance)[0] is not None


# ---------------------------------------------------------------- the terminal
def _is_dev_full(fd: int) -> bool:
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 7)


def check_stdout() -> None:
    """A closed standard output (`gdsolver solve x.gdsm >&-`) or one that can take nothing
    (/dev/full) is refused before any work, in one line on stderr: the command's report would be
    lost, and a result written while its report fails would look like a failure."""
    out = sys.stdout
    if out is None:
        fail("standard output is closed; redirect it to a file or to /dev/null instead of closing it")
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # an in-memory stream (tests, an embedding program)
        return
    try:
        os.fstat(fd)
    except OSError:
        fail("standard output is closed; redirect it to a file or to /dev/null instead of closing it")
    if _is_dev_full(fd):
        fail("standard output is /dev/full (every write fails: no space left on device); redirect it to a file "
             "or to /dev/null")


def verbose() -> bool:
    return os.environ.get("GDSOLVER_VERBOSE", "") not in ("", "0")


def quiet_libraries(show: bool) -> None:
    """Python warnings and onnxruntime's native logging off the terminal unless `show`
    (an explicit GDSOLVER_ORT_LOG_LEVEL is left as the user set it)."""
    if show:
        warnings.simplefilter("default")
        os.environ.setdefault("GDSOLVER_ORT_LOG_LEVEL", "2")
    else:
        warnings.simplefilter("ignore")
        os.environ.setdefault("GDSOLVER_ORT_LOG_LEVEL", "4")
