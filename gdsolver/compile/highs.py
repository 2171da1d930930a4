"""HiGHS backend: the whole instance goes to HiGHS in one passModel call from the
CSR arrays. HiGHS has no indicator constraints, so they are lowered to big-M rows
(ir.lower, M from exact interval bounds) first.

Ctrl-C reaches HiGHS through its interrupt callbacks (simplex, IPM, MIP), which set
`user_interrupt`. HiGHS 1.16 does not poll them inside its sub-MIP heuristics
(RENS/RINS, guarded by `!mipsolver.submip`): measured on a hard instance, it returned
0.1-3 s after the flag was set, once 14 s. So the incumbent HiGHS reports through its
improving-solution callback is kept as it goes, and a run that has not returned
GRACE_S seconds after Ctrl-C is left to finish by itself (it stops at its next
check) while the solve answers with that incumbent; the next HiGHS solve first waits
for it, since HiGHS's thread pool is global.

A time limit is held by the same route: the wall-clock watchdog (compile.base.SolveRun) sets the
stop flag at the limit, counted from the start of the solve (the build included), and HiGHS's own
time_limit is set to what the build left. Measured under load 12 on 2 cores, HiGHS's own limit
alone ran 70% over; a run that does not return within the watchdog's grace is left behind as
after Ctrl-C, and the next solve waits for it only as long as its own limit allows."""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from typing import Any

import numpy as np

import gdsolver.compile.progress as progress
from gdsolver.compile.base import Backend, Feature, SolveOptions, SolveRun, assemble_result
from gdsolver.compile.result import SolveResult
from gdsolver.compile.status import Termination
from gdsolver.errors import GdsolverError, OptionError
from gdsolver.ir.instance import CONTINUOUS, MilpInstance
from gdsolver.ir.lower import lower
from gdsolver.ir.verify import verify

_last_threads: list[int | None] = [None]  # HiGHS's thread pool is global to the process
_banner_done = [False]
_abandoned: list[threading.Thread] = []  # runs left behind after Ctrl-C (see the module docstring)
GRACE_S = 2.0  # how long a Ctrl-C'd run may take to return before it is left behind


def _highspy():
    return HighsBackend.module()


def new_highs():
    """A silent highspy.Highs. HiGHS prints a banner to the C stdout at the first
    construction in a process, before any option can be set: swallow it once."""
    highspy = _highspy()
    if _banner_done[0]:
        h = highspy.Highs()
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 1)
                h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        _banner_done[0] = True
    h.setOptionValue("output_flag", False)
    return h


def build_highs(inst: MilpInstance, options: dict[str, Any] | None = None):
    """A silent highspy.Highs holding `inst` (indicators lowered), built in one bulk
    call. Unknown or invalid options raise OptionError."""
    highspy = _highspy()
    inst.validate()
    low, _ = lower(inst)
    h = new_highs()
    for key, value in (options or {}).items():
        set_option(h, key, value)
    n, m = low.num_vars, low.num_rows
    integrality = (low.vtype != CONTINUOUS).astype(np.int32)  # 1 = kInteger; binaries have [0, 1] bounds
    status = h.passModel(
        n, m, low.A.nnz, 2, 1 if low.sense == "min" else -1, float(low.c0),  # 2 = row-wise matrix
        low.c, low.lb, low.ub, low.row_lo, low.row_hi,
        low.A.indptr[:-1].astype(np.int32), low.A.indices.astype(np.int32), low.A.data, integrality,
    )
    if status != highspy.HighsStatus.kOk:
        raise GdsolverError(f"HiGHS rejected the model (passModel returned {status})")
    return h, low


def set_option(h, key: str, value: Any) -> None:
    highspy = _highspy()
    try:
        status = h.setOptionValue(key, value)
    except (TypeError, RuntimeError) as exc:
        raise OptionError(f"HiGHS option {key!r}: invalid value {value!r} ({exc})") from None
    if status != highspy.HighsStatus.kOk:
        raise OptionError(f"HiGHS option {key!r}: unknown option or invalid value {value!r}")


@functools.cache
def _status_table() -> dict[Any, Termination]:
    """Every HighsModelStatus -> Termination."""
    MS = _highspy().HighsModelStatus
    T = Termination
    table = {
        "kNotset": T.ERROR, "kLoadError": T.ERROR, "kModelError": T.ERROR, "kPresolveError": T.ERROR,
        "kSolveError": T.ERROR, "kPostsolveError": T.ERROR, "kModelEmpty": T.OPTIMAL, "kOptimal": T.OPTIMAL,
        "kInfeasible": T.INFEASIBLE, "kUnboundedOrInfeasible": T.INFEASIBLE_OR_UNBOUNDED,
        "kUnbounded": T.UNBOUNDED, "kObjectiveBound": T.OBJECTIVE_LIMIT, "kObjectiveTarget": T.OBJECTIVE_LIMIT,
        "kTimeLimit": T.TIME_LIMIT, "kIterationLimit": T.ITERATION_LIMIT, "kUnknown": T.UNKNOWN,
        "kSolutionLimit": T.SOLUTION_LIMIT,  # also HiGHS's node and leaf limits
        "kInterrupt": T.INTERRUPTED, "kMemoryLimit": T.MEMORY_LIMIT,
        "kHighsInterrupt": T.INTERRUPTED,
    }
    return {getattr(MS, k): v for k, v in table.items() if hasattr(MS, k)}


def termination_of(model_status) -> Termination:
    return _status_table().get(model_status, Termination.UNKNOWN)


class HighsBackend(Backend):
    name = "highs"
    package = "highspy"
    install = "pip install highspy"
    features = frozenset({Feature.LP, Feature.MIP, Feature.MIP_START, Feature.TIME_LIMIT, Feature.THREADS,
                          Feature.MIP_GAP, Feature.INTERRUPT})
    native_options = "HiGHS options, e.g. presolve=off, mip_heuristic_effort=0.1"

    @classmethod
    @functools.cache
    def version(cls) -> str:
        h = new_highs()
        return f"{h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}"

    def check_options(self, native) -> None:
        h = new_highs()
        for key, value in dict(native).items():
            set_option(h, key, value)

    def _solve(self, inst: MilpInstance, opts: SolveOptions, run: SolveRun, polish: bool = True) -> SolveResult:
        if not join_abandoned(run.left()):  # a run left behind by an earlier stop still holds the thread pool
            x = inst.start.copy() if opts.use_start and inst.start is not None and verify(inst, inst.start).ok \
                else None
            return assemble_result(self, inst, opts, termination=Termination.TIME_LIMIT, native_status="(not run)",
                                   x=x, note="an earlier HiGHS run, stopped by a limit or Ctrl-C, had not returned "
                                             "by this solve's time limit")
        try:
            return self._solve_inner(inst, opts, run, polish)
        finally:
            if run.abandoned is not None:
                _abandoned.append(run.abandoned)  # still using the thread pool: no reset under it
            else:
                # HiGHS's worker threads busy-wait after a solve and slowed the next torch epochs
                # 25x on 2 cores (measured: 0.04 s -> 4.9 s per digits epoch); stop them.
                _highspy().Highs.resetGlobalScheduler(True)

    def _solve_inner(self, inst: MilpInstance, opts: SolveOptions, run: SolveRun, polish: bool) -> SolveResult:
        hopts = opts.native_params(time_limit="time_limit", threads="threads", mip_gap="mip_rel_gap")
        h, low, runtime, x, watch = self._run(inst, hopts, opts.threads, opts.use_start, run)
        if run.abandoned is not None:  # HiGHS is still running: answer with what its callbacks saw
            why = "Ctrl-C" if run.interrupted else "the watchdog's stop"
            kept = "kept the last incumbent it reported (not polished)"
            if x is not None and not verify(inst, x).ok:
                # its big-M rows can leak M * 1e-6 (see _polish), and no polish can run beside the run left
                # behind (one thread pool): the MIP start, when we hold it, is the answer that verifies
                held = opts.use_start and inst.start is not None and verify(inst, inst.start).ok
                x = inst.start.copy() if held else x
                kept = ("kept the MIP start: the last incumbent it reported does not verify unpolished" if held
                        else kept)
            return assemble_result(self, inst, opts, termination=Termination.INTERRUPTED,
                                   native_status="(no answer yet)", x=x, bound=watch.bound,
                                   nodes=watch.nodes, runtime_s=runtime, interrupted=run.interrupted, run=run,
                                   note=f"HiGHS did not return in time after {why}; {kept}")
        note, unproven = "", False
        info = h.getInfo()
        if (x is not None and opts.use_start and inst.is_mip and not run.stopped
                and not _same(inst.objective_value(x), info.objective_function_value)):
            # seen with HiGHS 1.16: after setSolution, getSolution() can return the start while
            # the reported objective is that of a better incumbent. Re-solve without the start.
            h, low, extra, x, _ = self._run(inst, hopts, opts.threads, False, run)
            runtime += extra
            info = h.getInfo()
            note = "HiGHS returned the MIP start instead of its incumbent; re-solved without the start"
            if x is not None and not _same(inst.objective_value(x), info.objective_function_value):
                note, unproven = "HiGHS's solution does not match its reported objective", True
        ms = h.getModelStatus()
        termination = termination_of(ms)
        native = h.modelStatusToString(ms)
        if termination == Termination.INFEASIBLE_OR_UNBOUNDED and not run.stopped:
            termination, native = self._infeasible_or_unbounded(inst, hopts, run)
        if termination == Termination.OPTIMAL and unproven:
            termination = Termination.UNKNOWN  # a point we can use, but not proven to be the optimum
        if x is not None and polish and low.num_integer and termination not in (
                Termination.INFEASIBLE, Termination.UNBOUNDED, Termination.INFEASIBLE_OR_UNBOUNDED):
            x, pnote = _polish(h, inst, x, run)
            note = "; ".join(filter(None, [note, pnote]))
            if run.stopped and opts.use_start and inst.start is not None and not verify(inst, x).ok \
                    and verify(inst, inst.start).ok:
                # a stop cut the polish short (seen on MNIST's whole 256-128 layer): the start verifies
                x, note = inst.start.copy(), note + "; kept the MIP start, which verifies"
        bound = float(info.mip_dual_bound) if inst.is_mip else None
        nodes = int(info.mip_node_count) if inst.is_mip else None
        return assemble_result(self, inst, opts, termination=termination, native_status=native, x=x, bound=bound,
                               nodes=nodes, runtime_s=runtime, interrupted=run.interrupted, note=note, run=run)

    def _run(self, inst: MilpInstance, hopts: dict[str, Any], threads: int | None, use_start: bool, run: SolveRun):
        """Build, optionally pass the MIP start, run. Returns (highs, lowered, seconds, x or
        None, what the callbacks saw)."""
        h, low = build_highs(inst, hopts)
        left = run.left()
        if left is not None:  # HiGHS's own clock starts at run(): give it what the build left of the limit
            set_option(h, "time_limit", max(left, 1e-3))
        if threads is not None and _last_threads[0] != threads:
            h.resetGlobalScheduler(True)  # the thread count only takes effect on a fresh scheduler
            _last_threads[0] = threads
        if use_start and inst.start is not None and inst.is_mip:
            h.setSolution(inst.num_vars, np.arange(inst.num_vars, dtype=np.int32), inst.start)
        t0 = time.perf_counter()
        watch = run_highs(h, run, grace=GRACE_S)
        runtime = time.perf_counter() - t0
        # a feasible point we hold in any case: the MIP start, or an LP's start once a stop cut the LP short
        held = use_start and inst.start is not None and (inst.is_mip or run.stopped)
        if run.abandoned is not None:
            if watch.x is None and held and verify(inst, inst.start).ok:
                watch.x = inst.start.copy()
            return h, low, runtime, watch.x, watch
        has_x = h.getInfo().primal_solution_status == 2  # kSolutionStatusFeasible
        x = np.asarray(h.getSolution().col_value, dtype=np.float64) if has_x else None
        if x is None and run.stopped and held and verify(inst, inst.start).ok:
            x = inst.start.copy()  # stopped before HiGHS took the start
        return h, low, runtime, x, watch

    def _infeasible_or_unbounded(self, inst: MilpInstance, hopts: dict[str, Any],
                                 run: SolveRun) -> tuple[Termination, str]:
        """HiGHS's presolve may not tell which; a solve without presolve does."""
        h, _ = build_highs(inst, {**hopts, "presolve": "off"})
        run_highs(h, run)
        term = termination_of(h.getModelStatus())
        if term in (Termination.UNBOUNDED, Termination.INFEASIBLE):
            return term, f"{h.modelStatusToString(h.getModelStatus())} (after a re-solve without presolve)"
        return Termination.INFEASIBLE_OR_UNBOUNDED, "Primal infeasible or unbounded"


class _Watch:
    """What HiGHS's callbacks report while it runs: the stop flag it obeys, and its
    last incumbent, bound and node count (kept if the run is left behind)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.x: np.ndarray | None = None
        self.bound: float | None = None
        self.nodes: int | None = None

    def _note(self, out) -> None:
        self.bound, self.nodes = float(out.mip_dual_bound), int(out.mip_node_count)

    def on_interrupt(self, event) -> None:
        if self.stop.is_set():
            self._note(event.data_out)
            event.interrupt()

    def on_mip_interrupt(self, event) -> None:
        """The MIP's figures for a progress display (compile.progress), then the stop flag."""
        out = event.data_out
        progress.report(incumbent=float(out.mip_primal_bound), bound=float(out.mip_dual_bound),
                        gap=float(out.mip_gap), nodes=int(out.mip_node_count))
        self.on_interrupt(event)

    def on_solution(self, event) -> None:
        self.x = np.array(event.data_out.mip_solution, dtype=np.float64)
        self._note(event.data_out)


def run_highs(h, run: SolveRun, grace: float | None = None) -> _Watch:
    """h.run() so that Ctrl-C stops it: the stop flag is read by HiGHS's interrupt
    callbacks, which ask HiGHS to return with what it has."""
    watch = _Watch()
    if not run.can_stop:  # no Ctrl-C nor watchdog can stop this run: spare the callbacks' cost
        h.run()
        return watch
    subs = [(cb, watch.on_interrupt) for cb in (h.cbSimplexInterrupt, h.cbIpmInterrupt)]
    subs.append((h.cbMipInterrupt, watch.on_mip_interrupt))
    subs.append((h.cbMipImprovingSolution, watch.on_solution))
    for cb, fn in subs:
        cb.subscribe(fn)
    try:
        run(h.run, watch.stop.set, grace)
    finally:
        if run.abandoned is None:  # a run left behind still calls them
            for cb, fn in subs:
                cb.unsubscribe(fn)
    return watch


def join_abandoned(timeout: float | None = None) -> bool:
    """Wait (at most `timeout` seconds) for HiGHS runs left behind after a stop (they stop at
    HiGHS's next check), then give the next solve a fresh thread pool. False: one still runs."""
    if _abandoned:
        end = None if timeout is None else time.monotonic() + timeout
        while _abandoned:
            _abandoned[-1].join(None if end is None else max(end - time.monotonic(), 0.0))
            if _abandoned[-1].is_alive():
                return False
            _abandoned.pop()
        _highspy().Highs.resetGlobalScheduler(True)
    return True


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def _polish(h, inst: MilpInstance, x: np.ndarray, run: SolveRun) -> tuple[np.ndarray, str]:
    """Big-M rows let a binary sit within HiGHS's integrality tolerance of 0/1, which
    can leak M * 1e-6 into an indicator's expression. If the answer does not verify
    against the original instance, fix the integers to their rounded values and
    re-solve the remaining LP, where the big-M rows are exact."""
    if verify(inst, x).ok:
        return x, ""
    highspy = _highspy()
    idx = np.flatnonzero(inst.vtype != CONTINUOUS).astype(np.int32)
    xr = np.round(x[idx])
    h.changeColsIntegrality(len(idx), idx, np.zeros(len(idx), np.uint8))
    h.changeColsBounds(len(idx), idx, xr, xr)
    h.setOptionValue("time_limit", float("inf"))
    run_highs(h, run)  # an LP, quick even after a Ctrl-C (a second one gives up waiting)
    if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
        xp = np.asarray(h.getSolution().col_value, dtype=np.float64)
        xp[idx] = xr
        rep = verify(inst, xp)
        if rep.ok:
            return xp, "polished (integers fixed, LP re-solved)"
    return x, f"solution does not verify exactly: {verify(inst, x)}"
