"""HiGHS backend: the whole instance goes to HiGHS in one passModel call from the
CSR arrays. HiGHS has no indicator constraints, so they are lowered to big-M rows
(ir.lower, M from exact interval bounds) first."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from gdsolver.compile.backend import Backend, check_common_options
from gdsolver.compile.result import SolveResult
from gdsolver.errors import GdsolverError
from gdsolver.ir.gdsm import fingerprint as fingerprint_of
from gdsolver.ir.instance import CONTINUOUS, MilpInstance
from gdsolver.ir.lower import lower
from gdsolver.ir.verify import verify

_last_threads: list[int | None] = [None]  # HiGHS's thread pool is global to the process


def _highspy():
    try:
        import highspy
    except ImportError:
        raise GdsolverError("backend 'highs' needs the highspy package: pip install highspy") from None
    return highspy


_banner_done = [False]


def new_highs():
    """A silent highspy.Highs. HiGHS prints a banner to the C stdout at the first
    construction in a process, before any option can be set: swallow it once."""
    highspy = _highspy()
    if _banner_done[0]:
        h = highspy.Highs()
    else:
        import os
        import sys

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
    call. Unknown or invalid options raise GdsolverError."""
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
        raise GdsolverError(f"HiGHS option {key!r}: invalid value {value!r} ({exc})") from None
    if status != highspy.HighsStatus.kOk:
        raise GdsolverError(f"HiGHS option {key!r}: unknown option or invalid value {value!r}")


class HighsBackend(Backend):
    name = "highs"
    features = frozenset({"lp", "mip", "mip_start", "time_limit", "threads", "mip_gap"})

    def version(self) -> str:
        h = new_highs()
        return f"{h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}"

    def solve(self, inst: MilpInstance, *, time_limit: float | None = None, threads: int | None = None,
              mip_gap: float | None = None, use_start: bool = True,
              options: dict[str, Any] | None = None, polish: bool = True) -> SolveResult:
        try:
            return self._solve(inst, time_limit=time_limit, threads=threads, mip_gap=mip_gap, use_start=use_start,
                               options=options, polish=polish)
        finally:
            # HiGHS's worker threads busy-wait after a solve and slowed the next torch epochs
            # 25x on 2 cores (measured: 0.04 s -> 4.9 s per digits epoch); stop them.
            _highspy().Highs.resetGlobalScheduler(True)

    def _solve(self, inst: MilpInstance, *, time_limit: float | None, threads: int | None, mip_gap: float | None,
               use_start: bool, options: dict[str, Any] | None, polish: bool) -> SolveResult:
        check_common_options(time_limit, threads, mip_gap)
        highspy = _highspy()
        opts: dict[str, Any] = dict(options or {})
        if time_limit is not None:
            opts["time_limit"] = float(time_limit)
        if threads is not None:
            opts["threads"] = int(threads)
        if mip_gap is not None:
            opts["mip_rel_gap"] = float(mip_gap)
        h, low, runtime, x = self._run(inst, opts, threads, use_start)
        note, unproven = "", False
        info = h.getInfo()
        if x is not None and use_start and inst.is_mip and not _same(inst.objective_value(x), info.objective_function_value):
            # seen with HiGHS 1.16: after setSolution, getSolution() can return the start while
            # the reported objective is that of a better incumbent. Re-solve without the start.
            h, low, extra, x = self._run(inst, opts, threads, False)
            runtime += extra
            info = h.getInfo()
            note = "HiGHS returned the MIP start instead of its incumbent; re-solved without the start"
            if x is not None and not _same(inst.objective_value(x), info.objective_function_value):
                note, unproven = "HiGHS's solution does not match its reported objective", True
        ms = h.getModelStatus()
        MS = highspy.HighsModelStatus
        message = h.modelStatusToString(ms) + (f"; {note}" if note else "")
        if ms == MS.kOptimal:
            status = "OPTIMAL"
        elif ms == MS.kInfeasible:
            status = "INFEASIBLE"
        elif ms == MS.kUnbounded:
            status = "UNBOUNDED"
        elif ms == MS.kUnboundedOrInfeasible:
            status, message = self._infeasible_or_unbounded(inst, opts)
        elif ms == MS.kTimeLimit:  # an incumbent at the time limit is a FEASIBLE answer (as with Gurobi)
            status = "FEASIBLE" if x is not None else "TIME_LIMIT"
            message += "; best point found" if x is not None else "; no feasible point found in time"
        elif x is not None:  # iteration/solution/memory limit, interrupt, unknown: keep the point
            status = "FEASIBLE"
        else:
            status = "ERROR"
        if status == "OPTIMAL" and unproven:
            status = "FEASIBLE"  # a point we can use, but not proven to be the optimum
        if status in ("INFEASIBLE", "UNBOUNDED", "ERROR"):
            x = None
        nodes = int(info.mip_node_count) if inst.is_mip else None
        if x is not None and polish and low.num_integer:
            x, note = _polish(h, inst, x, highspy)
            if note:
                message += f"; {note}"
        objective = inst.objective_value(x) if x is not None else None
        if inst.is_mip:
            bound = float(info.mip_dual_bound) if np.isfinite(info.mip_dual_bound) else None
            gap = float(info.mip_gap) if x is not None and np.isfinite(info.mip_gap) else None
        else:
            bound = objective if status == "OPTIMAL" else None
            gap = 0.0 if status == "OPTIMAL" else None
        if status == "OPTIMAL" and inst.is_mip and gap is not None and bound is not None and objective is not None:
            diff = abs(bound - objective)
            gap = 0.0 if diff <= 1e-9 * max(1.0, abs(objective)) else diff / max(abs(objective), 1e-10)
        return SolveResult(status=status, x=x, objective=objective, bound=bound, gap=gap, runtime_s=runtime,
                           nodes=nodes, backend=self.name, backend_version=self.version(), message=message,
                           options={"time_limit": time_limit, "threads": threads, "mip_gap": mip_gap,
                                    "use_start": use_start, **(options or {})},
                           instance_fingerprint=fingerprint_of(inst))

    def _run(self, inst: MilpInstance, opts: dict[str, Any], threads: int | None, use_start: bool):
        """Build, optionally pass the MIP start, run. Returns (highs, lowered, seconds, x or None)."""
        h, low = build_highs(inst, opts)
        if threads is not None and _last_threads[0] != threads:
            h.resetGlobalScheduler(True)  # the thread count only takes effect on a fresh scheduler
            _last_threads[0] = threads
        if use_start and inst.start is not None and inst.is_mip:
            h.setSolution(inst.num_vars, np.arange(inst.num_vars, dtype=np.int32), inst.start)
        t0 = time.perf_counter()
        h.run()
        runtime = time.perf_counter() - t0
        has_x = h.getInfo().primal_solution_status == 2  # kSolutionStatusFeasible
        x = np.asarray(h.getSolution().col_value, dtype=np.float64) if has_x else None
        return h, low, runtime, x

    def _infeasible_or_unbounded(self, inst: MilpInstance, opts: dict[str, Any]) -> tuple[str, str]:
        """HiGHS's presolve may not tell which; a solve without presolve does."""
        highspy = _highspy()
        h, _ = build_highs(inst, {**opts, "presolve": "off"})
        h.run()
        ms = h.getModelStatus()
        if ms == highspy.HighsModelStatus.kUnbounded:
            return "UNBOUNDED", "unbounded"
        if ms == highspy.HighsModelStatus.kInfeasible:
            return "INFEASIBLE", "infeasible"
        return "INFEASIBLE", "infeasible or unbounded (HiGHS could not tell which)"


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def _polish(h, inst: MilpInstance, x: np.ndarray, highspy) -> tuple[np.ndarray, str]:
    """Big-M rows let a binary sit within HiGHS's integrality tolerance of 0/1, which
    can leak M * 1e-6 into an indicator's expression. If the answer does not verify
    against the original instance, fix the integers to their rounded values and
    re-solve the remaining LP, where the big-M rows are exact."""
    if verify(inst, x).ok:
        return x, ""
    idx = np.flatnonzero(inst.vtype != CONTINUOUS).astype(np.int32)
    xr = np.round(x[idx])
    h.changeColsIntegrality(len(idx), idx, np.zeros(len(idx), np.uint8))
    h.changeColsBounds(len(idx), idx, xr, xr)
    h.setOptionValue("time_limit", float("inf"))
    h.run()
    if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
        xp = np.asarray(h.getSolution().col_value, dtype=np.float64)
        xp[idx] = xr
        rep = verify(inst, xp)
        if rep.ok:
            return xp, "polished (integers fixed, LP re-solved)"
    return x, f"solution does not verify exactly: {verify(inst, x)}"
