"""The warm-started HiGHS LP of the maximum feasible subsystem search (compile.mfs).

The input is an `ir.subsystem.Subsystem` (keys switching on row groups over continuous
variables). One HiGHS LP holds every group's rows; a group is switched off by freeing its
rows' bounds, so consecutive solves differ only in bounds and HiGHS's dual simplex starts
from the previous basis. Each group has an elastic column e_k >= 0 (the group's rows may be
violated by e_k at a cost gain_k e_k); a group is "hard" when its column is fixed at 0.
With every switched-on group hard the LP is a pure feasibility question, which the dual
simplex (zero costs: every basis is dual feasible) settles fast when the answer is no, and
its Farkas ray then names an infeasible subset, usually a handful of groups. The elastic LP
(groups soft) ranks keys by violation for the greedy; its duals also prove conflicts.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from gdsolver.compile.base import SolveRun
from gdsolver.compile.highs import build_highs, new_highs, run_highs
from gdsolver.errors import GdsolverError
from gdsolver.ir.csr import Csr
from gdsolver.ir.subsystem import Subsystem

FEAS_TOL = 1e-7  # total weighted violation below which a subset counts as feasible
_NO_LIMIT = 2**31 - 1  # HiGHS's default simplex_iteration_limit
SCALE_STRATEGY = 0  # HiGHS simplex_scale_strategy for the LPs (0: none; see SubsystemLP)


def _box_middle(lb: np.ndarray, ub: np.ndarray) -> np.ndarray:
    """A point of the box [lb, ub]: its middle where both bounds are finite, else the finite
    bound, else 0."""
    with np.errstate(invalid="ignore"):
        mid = np.where(np.isfinite(lb) & np.isfinite(ub), 0.5 * (lb + ub),
                       np.where(np.isfinite(lb), lb, np.where(np.isfinite(ub), ub, 0.0)))
    return np.clip(mid, lb, ub)


class Interrupted(Exception):
    """Ctrl-C stopped one of the search's HiGHS runs (through compile.base.SolveRun)."""


def _run(h, run: SolveRun | None) -> None:
    """h.run(); with a SolveRun (for the master MIP, whose runs can be long) Ctrl-C stops HiGHS
    and raises Interrupted. The LPs run plainly (a SolveRun's thread and callbacks cost 20-30%
    per LP, measured) and are short: Ctrl-C arrives as KeyboardInterrupt right after one."""
    if run is None:
        h.run()
        return
    run_highs(h, run)
    if run.interrupted:
        raise Interrupted()


def release_threads() -> None:
    """Stop HiGHS's worker threads after a search, as the HiGHS backend does after every solve:
    they busy-wait (and slowed the next torch epochs 25x on 2 cores), and left running at exit
    after a Ctrl-C they abort the process."""
    import highspy

    highspy.Highs.resetGlobalScheduler(True)


class SubsystemLP:
    """The warm-started LP over a Subsystem's continuous variables and elastic columns."""

    def __init__(self, sub: Subsystem, run: SolveRun | None = None) -> None:
        import highspy

        self.sub = sub
        self.run = run
        self._kOptimal = highspy.HighsModelStatus.kOptimal
        self._kInfeasible = highspy.HighsModelStatus.kInfeasible
        self._kIterationLimit = highspy.HighsModelStatus.kIterationLimit
        self._mass: np.ndarray | None = None
        # the LP holds only the variables some row uses (a sweep's head has weights no kept
        # point's features touch: 18% of the columns on the MNIST head, and every HiGHS run
        # and simplex iteration pays per column); the others stay at their box's middle
        # (the current weights, for a sweep)
        used = np.zeros(len(sub.cols), bool)
        used[sub.rows.indices] = True
        used[sub.base.indices] = True
        self._used = np.flatnonzero(used)
        self._fill = _box_middle(sub.col_lb, sub.col_ub)
        if len(self._used) < len(sub.cols):  # renumber the used columns (every entry is in one)
            new = np.cumsum(used) - 1
            sub = replace(sub, cols=sub.cols[used], col_lb=sub.col_lb[used], col_ub=sub.col_ub[used],
                          rows=Csr(sub.rows.indptr, new[sub.rows.indices], sub.rows.data, len(self._used)),
                          base=Csr(sub.base.indptr, new[sub.base.indices], sub.base.data, len(self._used)))
        K, nc = sub.num_keys, len(sub.cols)
        lo, hi, grp = sub.rows_lo, sub.rows_hi, sub.group
        # split every key row into one-sided rows, each with its group's elastic column
        lo_rows = np.flatnonzero(np.isfinite(lo))
        hi_rows = np.flatnonzero(np.isfinite(hi))
        split = np.concatenate([lo_rows, hi_rows])
        sides = np.concatenate([np.ones(len(lo_rows)), -np.ones(len(hi_rows))])  # elastic sign
        R = sub.rows.take_rows(split)
        self.row_group = grp[split]
        self.row_lo = np.concatenate([lo[lo_rows], np.full(len(hi_rows), -np.inf)])
        self.row_hi = np.concatenate([np.full(len(lo_rows), np.inf), hi[hi_rows]])
        R = Csr(R.indptr, R.indices, R.data, nc + K).with_extra_column_entries(nc + self.row_group, sides)
        base = Csr(sub.base.indptr, sub.base.indices, sub.base.data, nc + K)
        A = Csr.vstack([base, R], nc + K)
        self.nb = base.nrows
        self.nc, self.K = nc, K
        self.weight = np.maximum(sub.gain, 1e-3)
        cost = np.concatenate([np.zeros(nc), self.weight])
        col_lb = np.concatenate([sub.col_lb, np.zeros(K)])
        col_ub = np.concatenate([sub.col_ub, np.zeros(K)])  # every group off: e_k = 0
        rlo = np.concatenate([sub.base_lo, np.full(len(split), -np.inf)])
        rhi = np.concatenate([sub.base_hi, np.full(len(split), np.inf)])
        h = new_highs()
        # dual simplex (1), unscaled: HiGHS's scaling of these rows (features of one magnitude,
        # elastic columns of 1) took the first elastic LP 100-1800 iterations by seed, 57-105 without
        for key, value in (("presolve", "off"), ("solver", "simplex"), ("simplex_strategy", 1),
                           ("simplex_scale_strategy", SCALE_STRATEGY)):
            h.setOptionValue(key, value)
        status = h.passModel(nc + K, A.nrows, A.nnz, 2, 1, 0.0, cost, col_lb, col_ub, rlo, rhi,
                             A.indptr[:-1].astype(np.int32), A.indices.astype(np.int32), A.data,
                             np.zeros(nc + K, np.int32))
        if status != highspy.HighsStatus.kOk:
            raise GdsolverError(f"HiGHS rejected the subsystem LP (passModel returned {status})")
        self.h = h
        self.on = np.zeros(K, bool)
        self.hard = np.zeros(K, bool)
        # rows of each group, for switching (CSR-like)
        order = np.argsort(self.row_group, kind="stable")
        self._grp_rows = order + self.nb
        self._grp_ptr = np.searchsorted(self.row_group[order], np.arange(K + 1))
        self.solves = 0
        self.iterations = 0  # simplex iterations, summed over solves
        self.lp_time = 0.0
        self.last: tuple[float, np.ndarray | None, np.ndarray | None] | None = None  # result for the current state
        # a basis of the pure feasibility LP at a feasible key set (the greedy's last): a
        # question about a set near it starts there rather than at the last Farkas ray
        self.feasible_basis = None

    def _rows_of(self, keys: np.ndarray) -> np.ndarray:
        if len(keys) == 0:
            return np.zeros(0, np.int64)
        starts, ends = self._grp_ptr[keys], self._grp_ptr[keys + 1]
        lengths = ends - starts
        idx = np.repeat(starts - np.cumsum(np.r_[0, lengths[:-1]]), lengths) + np.arange(lengths.sum())
        return self._grp_rows[idx]

    def set(self, on: np.ndarray, hard: np.ndarray | None = None) -> None:
        """Switch groups: `on` (K,) bool; `hard` groups get no elastic slack."""
        on = np.asarray(on, bool)
        hard = np.zeros(self.K, bool) if hard is None else np.asarray(hard, bool) & on
        changed = np.flatnonzero((on != self.on) | (hard != self.hard))
        if len(changed) == 0:
            return
        rows = self._rows_of(changed[on[changed] != self.on[changed]])
        if len(rows):
            j = rows - self.nb
            act = on[self.row_group[j]]
            self.h.changeRowsBounds(len(rows), rows.astype(np.int32), np.where(act, self.row_lo[j], -np.inf),
                                    np.where(act, self.row_hi[j], np.inf))
        cols = (self.nc + changed).astype(np.int32)
        ub = np.where(on[changed] & ~hard[changed], np.inf, 0.0)
        self.h.changeColsBounds(len(cols), cols, np.zeros(len(cols)), ub)
        self.on, self.hard = on.copy(), hard.copy()
        self.last = None

    def solve(self, iteration_limit: int | None = None) -> tuple[float, np.ndarray | None, np.ndarray | None]:
        """(weighted violation, continuous values, elastic values); inf (and None) when even
        the hard rows cannot hold; nan (and None) when `iteration_limit` simplex iterations
        did not settle it. After an answer > 0, `conflict_mass()` tells which groups prove it."""
        if self.last is not None:
            return self.last
        t0 = time.perf_counter()
        if iteration_limit is not None:
            self.h.setOptionValue("simplex_iteration_limit", int(iteration_limit))
        try:
            _run(self.h, self.run)
        finally:
            if iteration_limit is not None:
                self.h.setOptionValue("simplex_iteration_limit", _NO_LIMIT)
        self.solves += 1
        ms = self.h.getModelStatus()
        limited = iteration_limit is not None and ms == self._kIterationLimit
        if ms != self._kOptimal and ms != self._kInfeasible and not limited:
            # numerical trouble: a cold start usually clears it
            self.h.clearSolver()
            _run(self.h, self.run)
            ms = self.h.getModelStatus()
        self.lp_time += time.perf_counter() - t0
        self.iterations += int(self.h.getInfo().simplex_iteration_count)
        self._mass = None
        if limited:
            self.last = (np.nan, None, None)
        elif ms != self._kOptimal:
            self.last = (np.inf, None, None)
        else:
            v = np.asarray(self.h.getSolution().col_value)
            y = self._fill.copy()
            y[self._used] = v[: self.nc]
            self.last = (float(self.h.getInfo().objective_function_value), y, v[self.nc:])
        return self.last

    def conflict_mass(self) -> np.ndarray | None:
        """After a solve that found the switched-on groups infeasible: the weight of every
        group in the proof (K,), zero for groups the proof does not use; None if there is no
        proof to read. The proof is the Farkas ray when the hard rows alone are infeasible
        (the pure feasibility LP: its dual simplex stops at the first ray, which uses few
        rows), else the elastic LP's duals; either way the groups with weight are, with the
        box and the base rows, infeasible by themselves."""
        if self._mass is not None:
            return self._mass
        v = self.last[0] if self.last else np.nan
        if v == np.inf:
            _, has_ray, ray = self.h.getDualRay()
            if not has_ray:
                return None
            dual = np.abs(np.asarray(ray)[self.nb:])
        elif v > FEAS_TOL:
            dual = np.abs(np.asarray(self.h.getSolution().row_dual)[self.nb:])
        else:
            return None
        mass = np.bincount(self.row_group, weights=dual, minlength=self.K) * self.on
        self._mass = mass
        return mass

    def dual_support(self) -> np.ndarray:
        """Groups whose rows hold a nonzero dual at the last optimum (bool (K,))."""
        dual = np.asarray(self.h.getSolution().row_dual)[self.nb:]
        scale = max(float(np.abs(dual).max(initial=0.0)), 1e-300)
        hit = np.abs(dual) > 1e-9 * scale
        out = np.zeros(self.K, bool)
        out[self.row_group[hit]] = True
        return out & self.on

    def feasible(self, on: np.ndarray) -> bool:
        self.set(on)
        v, _, _ = self.solve()
        return v <= FEAS_TOL
