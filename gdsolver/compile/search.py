"""Searches for count objectives (classification sweeps) around the backends.

`run_search(inst, search=...)` solves an instance and returns a SolveResult on the ORIGINAL
instance (x verified with ir.verify) whose `search` field says what the search did:

- "mip": the instance as it is, on `backend` (what `gdsolver.compile.solve` does);
- "presolve": `ir.presolve` (interval fixing), a greedy incumbent from warm-started LPs
  when the instance has the maximum-feasible-subsystem shape (`ir.subsystem`), then the
  reduced MIP on `backend`, started from the better of the incumbent and the current weights;
- "benders": presolve, then combinatorial Benders (`compile.mfs`): a master MIP over the
  count binaries, seeded with every pair conflict and cut by minimal infeasible subsets found
  by warm-started HiGHS LPs. Needs the subsystem shape; its LPs and master run on HiGHS
  whatever `backend` says;
- "auto" (default): "benders" when the presolved instance has the subsystem shape (the
  identity-output count heads, paper or compact) and `backend` is HiGHS or "auto"; otherwise
  "mip" (a solver chosen by name solves the instance itself).

Nothing here knows the formulation's names: the shape is recognised from the instance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from gdsolver.blas import blas_threads
from gdsolver.compile.base import SolveOptions, SolveRun
from gdsolver.compile.highs import HighsBackend
from gdsolver.compile.registry import AUTO, DEFAULT_BACKEND, solve
from gdsolver.compile.result import SolveResult
from gdsolver.errors import GdsolverError, SolveInterrupted
from gdsolver.ir.gdsm import fingerprint
from gdsolver.ir.instance import CONTINUOUS, MilpInstance
from gdsolver.ir.numerics import check_numerics
from gdsolver.ir.presolve import PresolveResult, presolve
from gdsolver.ir.subsystem import subsystem_view
from gdsolver.ir.verify import verify

SEARCHES = ("auto", "mip", "presolve", "benders")


def _outcome(result: SolveResult, search: str, presolve: dict[str, Any] | None = None,
             first_incumbent_s: float | None = None, best_s: float | None = None,
             trace: dict[str, Any] | None = None) -> SolveResult:
    """`result` with what the search did in its `search` field. Times are seconds from the call:
    `first_incumbent_s` is when a point at least as good as the instance's start was in hand
    from the search itself (None for "mip", whose solver gets the start), `best_s` when the
    final point was found."""
    result.search = {"search": search, "presolve": presolve, "first_incumbent_s": first_incumbent_s,
                     "best_s": best_s, "trace": trace or {}}
    return result


def count_fixings(inst: MilpInstance, pre: PresolveResult) -> dict[str, int]:
    """How presolve decided the objective's binaries (for a sweep: its points): "out" fixed
    to the worse value, "in" fixed to the better one, "free" left to the search."""
    sign = 1.0 if inst.sense == "max" else -1.0
    keys = np.flatnonzero((inst.vtype != CONTINUOUS) & (inst.c != 0))
    fixed = pre.lb[keys] == pre.ub[keys]
    better = np.where(sign * inst.c[keys] > 0, inst.ub[keys], inst.lb[keys])
    n_in = int(np.count_nonzero(fixed & (pre.lb[keys] == better)))
    n_out = int(np.count_nonzero(fixed)) - n_in
    return {"points": int(len(keys)), "out": n_out, "in": n_in, "free": int(len(keys)) - n_out - n_in}


def run_search(inst: MilpInstance, *, search: str = "auto", backend: str = DEFAULT_BACKEND,
               time_limit: float | None = None,
               threads: int | None = None, mip_gap: float | None = None, use_start: bool = True,
               options: dict[str, Any] | None = None, fallback: str | None = None) -> SolveResult:
    """Solve `inst` with the chosen search; see the module docstring. The answer is always
    checked with ir.verify against `inst` itself. `result.runtime_s` is the whole search's
    wall time (presolve included); `result.options["search"]` records what ran."""
    with blas_threads(1):  # the search's numpy products are small; spinning BLAS threads cost seconds under load
        res = _run_search(inst, search, backend, time_limit, threads, mip_gap, use_start, options, fallback)
    res.options = {"time_limit": time_limit, "threads": threads, "mip_gap": mip_gap, "use_start": use_start,
                   **(res.options or {}), **(options or {}), "search": res.search["search"],
                   "search_requested": search}
    return res


def _run_search(inst, search, backend, time_limit, threads, mip_gap, use_start, options, fallback) -> SolveResult:
    SolveOptions(time_limit=time_limit, threads=threads, mip_gap=mip_gap)  # OptionError unless valid
    t0 = time.perf_counter()
    extra = {"fallback": fallback} if fallback else {}
    if search not in SEARCHES:
        raise GdsolverError(f"search: {search!r} is not a search, expected one of {list(SEARCHES)}")
    kind = "mip" if search == "mip" or not inst.is_mip else search
    if kind == "auto" and backend not in (HighsBackend.name, AUTO):
        kind = "mip"  # a solver chosen by name solves the instance itself; Benders' LPs are HiGHS's
    if kind == "auto" and np.any(inst.c[inst.vtype == CONTINUOUS] != 0):
        # a loss over continuous variables (squared, l1, ce heads) is not the subsystem shape
        # (ir.subsystem): every tangent round of a trainer's sweep would presolve for nothing
        kind = "mip"
    if kind == "mip":
        res = solve(inst, backend=backend, time_limit=time_limit, threads=threads, mip_gap=mip_gap,
                    use_start=use_start, options=options, **extra)
        return _outcome(res, "mip", best_s=res.runtime_s)
    check_numerics(inst)  # what every backend refuses, refused before the search's own LPs too
    pre = presolve(inst)
    summary = {**pre.summary(inst), "counts": count_fixings(inst, pre), "time_s": time.perf_counter() - t0}
    if pre.status == "infeasible":
        res = SolveResult("INFEASIBLE", runtime_s=time.perf_counter() - t0, backend=backend,
                          message=f"presolve: infeasible ({pre.message})", instance_fingerprint=fingerprint(inst))
        return _outcome(res, kind, summary)
    red = pre.instance
    if not use_start:
        red = replace(red, start=None)
    if not red.is_mip:  # presolve decided every binary: what is left is an LP (or nothing)
        kind = "presolve"
    sub, why = subsystem_view(red) if red.is_mip else (None, "no integer variables left")
    if kind in ("benders", "auto") and sub is None:
        if kind == "benders":
            raise GdsolverError(f"search 'benders': the instance is not a maximum-feasible-subsystem problem ({why}); "
                                "use search 'presolve' or 'mip'")
        # auto on another shape: the plain MIP (the presolve work is not wasted time-wise: it is cheap)
        remaining = None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 1e-3)
        res = solve(inst, backend=backend, time_limit=remaining, threads=threads, mip_gap=mip_gap,
                    use_start=use_start, options=options, **extra)
        res.runtime_s = time.perf_counter() - t0
        return _outcome(res, "mip", summary, best_s=None)
    # the helpers get the whole time limit and count it from t0
    if kind in ("benders", "auto"):
        return _benders(inst, pre, sub, summary, t0, time_limit, threads, mip_gap)
    return _presolve_mip(inst, pre, sub, summary, t0, time_limit, backend, threads, mip_gap, options, extra)


def _start_keys(red: MilpInstance, sub) -> np.ndarray:
    if red.start is None:
        return np.zeros(sub.num_keys, bool)
    return red.start[sub.keys] > 0.5


def _finish(inst: MilpInstance, pre: PresolveResult, x_red: np.ndarray | None, *, status: str, bound_red: float | None,
            t0: float, backend: str, version: str, message: str, nodes: int | None = None,
            termination: str = "") -> SolveResult:
    """A SolveResult on the original instance from a reduced-instance point (verified)."""
    runtime = time.perf_counter() - t0
    if x_red is None:
        return SolveResult(status, runtime_s=runtime, backend=backend, backend_version=version, message=message,
                           instance_fingerprint=fingerprint(inst), termination=termination)
    x = pre.map.to_original(x_red)
    rep = verify(inst, x)
    if not rep.ok:
        message += f"; the mapped solution does not verify: {rep}"
        status = "ERROR" if status == "OPTIMAL" else status
    objective = inst.objective_value(x)
    gap = None
    if bound_red is not None:  # the reduced objective includes the fixed part (c0), so bounds carry over
        diff = abs(bound_red - objective)
        gap = 0.0 if diff <= 1e-9 * max(1.0, abs(objective)) else diff / max(abs(objective), 1e-10)
    return SolveResult(status=status, x=x, objective=objective, bound=bound_red, gap=gap, runtime_s=runtime,
                       nodes=nodes, backend=backend, backend_version=version, message=message,
                       instance_fingerprint=fingerprint(inst), termination=termination)


def _benders(inst, pre, sub, summary, t0, time_limit, threads, mip_gap) -> SolveResult:
    from gdsolver.compile.highs import join_abandoned
    from gdsolver.compile.mfs import SubsystemLP, benders, release_threads

    red = pre.instance
    base = _start_keys(red, sub)
    join_abandoned()  # HiGHS runs an earlier Ctrl-C left behind
    run = SolveRun()  # Ctrl-C stops the HiGHS run in progress; the search ends with its best point
    try:
        out = benders(SubsystemLP(sub), base, time_limit=time_limit, threads=threads, t0=t0, gap=mip_gap or 0.0,
                      run=run)
    except GdsolverError as exc:  # e.g. LP tolerances disagree with the start: the MIP path still answers
        summary["benders_failed"] = str(exc)
        return _presolve_mip(inst, pre, sub, summary, t0, time_limit, HighsBackend.name, threads, mip_gap, None, {})
    finally:
        release_threads()
    tr = out.trace
    if out.y is not None:
        x_red = sub.solution(red, out.chosen, out.y)
    else:  # interrupted before any LP answered: the current weights, if the instance has them
        x_red = red.start
    bound = None
    if x_red is not None:
        sign = 1.0 if red.sense == "max" else -1.0
        const = red.objective_value(x_red) - sign * out.value  # the constant part of the reduced objective
        bound = const + sign * out.bound
    msg = (f"benders: {tr.iterations} master solves, {tr.pair_cuts} pair + {tr.cuts} LP cuts, "
           f"{tr.lp_solves} LPs; presolve fixed {summary['counts']['out']} out, {summary['counts']['in']} in")
    if tr.interrupted:
        msg = "interrupted; " + msg
    elif not out.proven:  # the trainer's history and the CLI say why the answer is not OPTIMAL
        msg = "stopped by the time limit; best point found; " + msg
    termination = "optimal" if out.proven else ("interrupted" if tr.interrupted else "time_limit")
    status = "OPTIMAL" if out.proven else ("FEASIBLE" if x_red is not None else "TIME_LIMIT")
    res = _finish(inst, pre, x_red, status=status, bound_red=bound, t0=t0, backend=HighsBackend.name,
                  version=HighsBackend.version(), message=msg, termination=termination)
    if tr.interrupted:
        raise SolveInterrupted(res if res.has_solution else None)
    incumbents = [(t, v) for t, kind, v in tr.events if kind == "incumbent"]
    best_t = next((t for t, v in incumbents if v >= out.value - 1e-9), None)
    return _outcome(res, "benders", summary, first_incumbent_s=incumbents[0][0] if incumbents else None,
                        best_s=best_t, trace=tr.to_json_dict())


def _presolve_mip(inst, pre, sub, summary, t0, time_limit, backend, threads, mip_gap, options, extra) -> SolveResult:
    red = pre.instance
    first = None
    msg = f"presolve fixed {summary['counts']['out']} out, {summary['counts']['in']} in"

    def interrupted(x_red, why: str):
        if x_red is None:
            x_red = red.start
        res = _finish(inst, pre, x_red, status="FEASIBLE" if x_red is not None else "TIME_LIMIT", bound_red=None,
                      t0=t0, backend=backend, version="", message=f"interrupted; {msg}; {why}",
                      termination="interrupted")
        raise SolveInterrupted(res if res.has_solution else None)

    if red.is_mip and sub is not None:
        from gdsolver.compile.mfs import incumbent, release_threads

        deadline = np.inf if time_limit is None else t0 + time_limit
        try:
            chosen, y = incumbent(sub, _start_keys(red, sub), deadline=deadline)
        except SolveInterrupted:
            raise
        except KeyboardInterrupt:
            interrupted(None, "in the greedy incumbent")
        finally:
            release_threads()
        if y is not None:
            x0 = sub.solution(red, chosen, y)
            if verify(red, x0).ok and (red.start is None or _better_or_equal(red, x0, red.start)):
                red = replace(red, start=x0)
                msg += f"; greedy incumbent {red.objective_value(x0):g}"
        first = time.perf_counter() - t0
    remaining = None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 1e-3)
    if red.num_vars == 0:  # presolve decided everything
        x_red = np.zeros(0)
        res = _finish(inst, pre, x_red, status="OPTIMAL", bound_red=red.c0, t0=t0, backend=backend, version="",
                      message=msg + "; presolve decided every variable", termination="optimal")
        return _outcome(res, "presolve", summary, first_incumbent_s=first, best_s=first)
    try:
        r = solve(red, backend=backend, time_limit=remaining, threads=threads, mip_gap=mip_gap, options=options,
                  **extra)
    except SolveInterrupted as exc:
        got = exc.result.x if exc.result is not None else None
        if got is not None and red.start is not None and not _better_or_equal(red, got, red.start):
            got = red.start
        interrupted(got, "in the reduced MIP")
    x_red = r.x
    status = r.status
    if red.start is not None and (x_red is None or not _better_or_equal(red, x_red, red.start)):
        x_red, status = red.start, ("FEASIBLE" if r.status in ("OPTIMAL", "FEASIBLE", "TIME_LIMIT") else r.status)
    res = _finish(inst, pre, x_red, status=status, bound_red=r.bound, t0=t0, backend=r.backend,
                  version=r.backend_version, message=f"{msg}; reduced MIP: {r.message}", nodes=r.nodes,
                  termination=r.termination)
    return _outcome(res, "presolve", summary, first_incumbent_s=first, best_s=None)


def _better_or_equal(inst: MilpInstance, x: np.ndarray, y: np.ndarray) -> bool:
    a, b = inst.objective_value(x), inst.objective_value(y)
    return a >= b - 1e-9 if inst.sense == "max" else a <= b + 1e-9
