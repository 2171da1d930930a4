"""Presolve by intervals: generic reductions of a MilpInstance that never change its optimum.

Every test uses exact interval bounds of linear expressions over the current variable box
(`ir.bounds.row_bounds`), repeated until nothing changes:

- an indicator "z == v => lo <= a.x <= hi" whose expression can never reach [lo, hi] over the
  box forces z to 1 - v; one that always lies in [lo, hi] is dropped; one whose z is fixed to
  1 - v is inactive and dropped; one whose z is fixed to v is a plain row;
- rows (and active indicators) tighten bounds: a binary or integer whose other terms cannot
  make up the row without it is fixed, continuous bounds shrink to what the row implies; a
  row that always holds is dropped;
- dual fixing: a binary or integer that no remaining constraint minds being raised (no
  "up-lock"), and whose objective coefficient does not prefer it lower, goes to its upper
  bound; symmetrically to its lower bound;
- aggregation: if "c == 1 => sum of binaries s_i (positive coefficients) >= lo" needs every
  s_i at 1, and no other constraint minds an s_i being lowered, then s_i = c in some optimal
  solution: s_i is replaced by c (its indicators move to c, its cost is added to c's).

For a classification sweep (a maximum-feasible-subsystem problem) these are exactly: a point
that cannot reach the margin for some class anywhere in the box is out (c = 0); a point
correct everywhere in the box is in (c = 1, by dual fixing once its margin indicators are
dropped); in the paper formulation every s_tj becomes c_t, which leaves the compact one.
Nothing here knows the formulation's names; a hidden-layer sweep whose margins pass through
bounded ReLU output variables gets the same tests on those variables' bounds.

`presolve(inst)` returns the reduced instance (fixed and aggregated variables removed) and a
`PresolveMap` that turns a solution of the reduced instance into one of the original.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from gdsolver.ir.bounds import row_bounds
from gdsolver.ir.csr import Csr
from gdsolver.ir.instance import CONTINUOUS, MilpInstance
from gdsolver.ir.verify import verify

# why a variable's value is decided (PresolveResult.reason)
FREE, FIXED_BY_BOUNDS, NEVER_SATISFIED, ROW_BOUND, DUAL_UP, DUAL_DOWN, AGGREGATED = range(7)
REASONS = {FREE: "free", FIXED_BY_BOUNDS: "fixed in the instance", NEVER_SATISFIED: "indicator never satisfiable",
           ROW_BOUND: "implied by a row", DUAL_UP: "dual fixing (raising never hurts)",
           DUAL_DOWN: "dual fixing (lowering never hurts)", AGGREGATED: "equal to its indicator's binary"}

_REL = 1e-9  # relative slack on interval tests: a float sum can be off by a few ulps per term


@dataclass(frozen=True)
class PresolveMap:
    """x_original[i] = value[i] where source[i] < 0, else x_reduced[source[i]].
    `kept[k]` is the original index of reduced variable k."""

    source: np.ndarray
    value: np.ndarray
    kept: np.ndarray

    @property
    def num_original(self) -> int:
        return len(self.source)

    def to_original(self, x_reduced: np.ndarray) -> np.ndarray:
        x_reduced = np.asarray(x_reduced, dtype=np.float64)
        if x_reduced.shape != (len(self.kept),):
            raise ValueError(f"reduced solution has shape {x_reduced.shape}, expected ({len(self.kept)},)")
        x = self.value.copy()
        on = self.source >= 0
        x[on] = x_reduced[self.source[on]]
        return x

    def to_reduced(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)[self.kept]


@dataclass
class PresolveResult:
    """status "reduced" (instance and map usable) or "infeasible" (instance None: no x
    satisfies the original). `reason[i]` says why original variable i was decided
    (one of REASONS); `evidence[i]` is the indicator that proved a NEVER_SATISFIED fixing."""

    status: str
    instance: MilpInstance | None
    map: PresolveMap
    reason: np.ndarray
    evidence: np.ndarray
    lb: np.ndarray  # final bounds over the original variables
    ub: np.ndarray
    rounds: int
    message: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    def summary(self, original: MilpInstance) -> dict[str, Any]:
        """JSON-able counts for `gdsolver inspect`: per variable block, how many were fixed to
        each value, aggregated or left free; and sizes before and after."""
        blocks = {}
        fixed = self.lb == self.ub
        for name, (off, shape) in original.blocks.items():
            sl = slice(off, off + math.prod(shape))
            r, lo = self.reason[sl], self.lb[sl]
            integer = original.vtype[sl] != CONTINUOUS
            decided = fixed[sl] & (r != FIXED_BY_BOUNDS) & (r != AGGREGATED)
            entry: dict[str, Any] = {"size": int(math.prod(shape)), "free": int(np.count_nonzero(r == FREE))}
            if integer.any():
                entry["fixed_to_0"] = int(np.count_nonzero(decided & integer & (lo == 0)))
                entry["fixed_to_1"] = int(np.count_nonzero(decided & integer & (lo == 1)))
            binary_fixed = entry.get("fixed_to_0", 0) + entry.get("fixed_to_1", 0)
            entry["fixed_other"] = int(np.count_nonzero(decided)) - binary_fixed
            entry["aggregated"] = int(np.count_nonzero(r == AGGREGATED))
            entry["fixed_in_instance"] = int(np.count_nonzero(r == FIXED_BY_BOUNDS))
            entry["by_reason"] = {REASONS[k]: int(np.count_nonzero(r == k)) for k in REASONS if k != FREE
                                  and np.any(r == k)}
            blocks[name] = entry
        red = self.instance
        out = {"status": self.status, "rounds": self.rounds, "message": self.message, "blocks": blocks,
               "original": {"variables": original.num_vars, "binary": original.num_integer,
                            "rows": original.num_rows, "indicators": original.num_indicators},
               "reduced": None if red is None else {"variables": red.num_vars, "binary": red.num_integer,
                                                    "rows": red.num_rows, "indicators": red.num_indicators},
               **self.stats}
        return out


def presolve(inst: MilpInstance, max_rounds: int = 50) -> PresolveResult:
    """Reduce `inst` by interval reasoning; see the module docstring. Pure: `inst` is not changed."""
    inst.validate()
    return _Presolver(inst, max_rounds).run()


# ----------------------------------------------------------------------------------------
class _Infeasible(Exception):
    pass


def _magnitude(mat: Csr, lb: np.ndarray, ub: np.ndarray) -> np.ndarray:
    """sum_i |a_i| max(|lb_i|, |ub_i|) per row (finite parts): the scale for float slack."""
    big = np.maximum(np.abs(np.where(np.isfinite(lb), lb, 0.0)), np.abs(np.where(np.isfinite(ub), ub, 0.0)))
    return mat.row_sum(np.abs(mat.data) * big[mat.indices])


class _Presolver:
    def __init__(self, inst: MilpInstance, max_rounds: int) -> None:
        self.inst = inst
        self.max_rounds = max_rounds
        n = inst.num_vars
        self.lb, self.ub = inst.lb.copy(), inst.ub.copy()
        self.integer = inst.vtype != CONTINUOUS
        self.lb[self.integer] = np.ceil(self.lb[self.integer] - 1e-9)
        self.ub[self.integer] = np.floor(self.ub[self.integer] + 1e-9)
        self.reason = np.where(self.lb == self.ub, FIXED_BY_BOUNDS, FREE).astype(np.int8)
        self.evidence = np.full(n, -1, np.int64)
        self.row_alive = np.ones(inst.num_rows, bool)
        self.ind_alive = np.ones(inst.num_indicators, bool)
        self.ind_var = inst.ind_var.astype(np.int64).copy()  # aggregation re-points controllers
        self.ind_A = inst.ind_A  # never changed: an aggregated variable's one expression is dropped
        self.c = inst.c.copy()
        self.agg_to = np.full(n, -1, np.int64)  # aggregated variable -> the variable it equals
        self.A_rows = inst.A.row_ids()
        self.stats = {"indicators_always_satisfied": 0, "indicators_inactive": 0, "indicators_to_rows": 0,
                      "rows_redundant": 0, "bounds_tightened": 0}
        self.sign = 1.0 if inst.sense == "max" else -1.0  # objective gain per unit raised, times c
        # the indicator expressions' interval bounds, recomputed only for the rows holding a
        # variable whose bounds changed: after the first round usually a few binaries move and
        # a sweep's weights keep their box, and each pass over all of ind_A costs milliseconds
        self._ind_rows = self.ind_A.row_ids()
        self._ind_cols = np.flatnonzero(np.bincount(self.ind_A.indices, minlength=n))
        self._ind_key: tuple[np.ndarray, np.ndarray] | None = None
        self._ind_locks: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (alive then, up, down)
        self._ind_val: np.ndarray | None = None  # see _ind_stats

    def _row_stats(self, mat: Csr) -> np.ndarray:
        """Per row of `mat` (rows of ind_A) over the current box: interval low, high, the
        float-slack magnitude, and for `aggregate` the entries that are neither a free binary
        with a positive coefficient nor fixed ("bad"), the free ones, their least coefficient."""
        lb, ub = self.lb, self.ub
        low, high = row_bounds(mat, lb, ub)
        # one gather of a per-variable code: 1 fixed, 2 free binary, 0 anything else
        code = ((lb == ub) + 2 * (self.integer & (lb == 0) & (ub == 1))).astype(np.int8)[mat.indices]
        free_e = (code == 2) & (mat.data > 0)
        n_bad = mat.row_sum(((code == 0) | ((code == 2) & ~free_e)).astype(np.float64))
        n_free = mat.row_sum(free_e.astype(np.float64))
        amin = np.full(mat.nrows, np.inf)
        np.minimum.at(amin, mat.row_ids()[free_e], mat.data[free_e])
        return np.stack([low, high, _magnitude(mat, lb, ub), n_bad, n_free, amin])

    def _ind_stats(self) -> np.ndarray:
        """`_row_stats` of ind_A (rows: low, high, magnitude, n_bad, n_free, amin), recomputed
        only on rows holding a variable whose bounds moved since the last call: the same
        floats as computing all of it anew (each row's entries are summed in the same order)."""
        lb, ub = self.lb[self._ind_cols], self.ub[self._ind_cols]
        if self._ind_key is None:
            self._ind_val = self._row_stats(self.ind_A)
        else:
            moved = (self._ind_key[0] != lb) | (self._ind_key[1] != ub)
            if moved.any():
                hit = np.zeros(self.inst.num_vars, bool)
                hit[self._ind_cols[moved]] = True
                rows = np.unique(self._ind_rows[hit[self.ind_A.indices]])
                val = self._ind_val.copy()
                val[:, rows] = self._row_stats(self.ind_A.take_rows(rows))
                self._ind_val = val
        self._ind_key = (lb, ub)
        return self._ind_val

    # ---- one pass of each reduction; each returns whether it changed anything ----------
    def _fix(self, idx: np.ndarray, value: np.ndarray, why: int) -> None:
        idx = np.asarray(idx, np.int64)
        value = np.asarray(value, np.float64)
        bad = (value < self.lb[idx] - 1e-9) | (value > self.ub[idx] + 1e-9)
        if np.any(bad):
            i = int(idx[np.argmax(bad)])
            raise _Infeasible(f"{self.inst.var_label(i)} would have to be {value[np.argmax(bad)]:g}, outside its "
                              f"bounds [{self.lb[i]:g}, {self.ub[i]:g}]")
        self.lb[idx] = value
        self.ub[idx] = value
        self.reason[idx] = np.where(self.reason[idx] == FREE, why, self.reason[idx])

    def indicators(self) -> bool:
        inst = self.inst
        if not self.ind_alive.any():
            return False
        low, high, magnitude = self._ind_stats()[:3]
        slack = _REL * (1.0 + magnitude)
        z, v = self.ind_var, inst.ind_val.astype(np.float64)
        zfix = self.lb[z] == self.ub[z]
        alive = self.ind_alive
        inactive = alive & zfix & (self.lb[z] != v)
        always = alive & ~inactive & (low >= inst.ind_lo) & (high <= inst.ind_hi)
        never = alive & ~inactive & ~always & ((high < inst.ind_lo - slack) | (low > inst.ind_hi + slack))
        self.stats["indicators_inactive"] += int(np.count_nonzero(inactive))
        self.stats["indicators_always_satisfied"] += int(np.count_nonzero(always))
        self.ind_alive = alive & ~inactive & ~always & ~never
        if never.any():
            k = np.flatnonzero(never)
            if np.any(zfix[k]):  # its binary is fixed to the value that switches it on
                i = int(k[np.argmax(zfix[k])])
                raise _Infeasible(f"indicator {inst.ind_label(i)} is switched on but its expression can never lie "
                                  f"in [{inst.ind_lo[i]:g}, {inst.ind_hi[i]:g}] over the box")
            # several indicators may force the same binary (to the same value if consistent;
            # _fix reports a binary forced both ways): the first one is the evidence
            vars_, at = np.unique(z[k], return_index=True)
            for want in (0.0, 1.0):  # one value at a time, so a binary forced both ways is caught
                sel = (1.0 - v[k]) == want
                if sel.any():
                    self._fix(np.unique(z[k][sel]), np.full(len(np.unique(z[k][sel])), want), NEVER_SATISFIED)
            self.evidence[vars_] = k[at]
        return bool(inactive.any() or always.any() or never.any())

    def _propagate(self, mat: Csr, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray, alive: np.ndarray,
                   what: str) -> tuple[bool, np.ndarray]:
        """Bound tightening from rows `alive` of mat (entries' row ids in `rows`). Returns
        (changed, redundant mask over mat's rows)."""
        if not alive.any() or mat.nnz == 0:
            return False, np.zeros(mat.nrows, bool)
        lb, ub = self.lb, self.ub
        a, col = mat.data, mat.indices.astype(np.int64)
        with np.errstate(invalid="ignore"):
            t_lo, t_hi = a * lb[col], a * ub[col]
        t_lo[a == 0] = 0.0
        t_hi[a == 0] = 0.0
        cmin, cmax = np.minimum(t_lo, t_hi), np.maximum(t_lo, t_hi)
        fin_min, fin_max = np.isfinite(cmin), np.isfinite(cmax)
        Lf = mat.row_sum(np.where(fin_min, cmin, 0.0))
        Uf = mat.row_sum(np.where(fin_max, cmax, 0.0))
        nL = mat.row_sum((~fin_min).astype(np.float64))
        nU = mat.row_sum((~fin_max).astype(np.float64))
        L = np.where(nL > 0, -np.inf, Lf)
        U = np.where(nU > 0, np.inf, Uf)
        slack = _REL * (1.0 + _magnitude(mat, lb, ub))
        infeas = alive & ((U < lo - slack) | (L > hi + slack))
        if infeas.any():
            i = int(np.argmax(infeas))
            raise _Infeasible(f"{what} {i} can never hold over the box: its range [{L[i]:g}, {U[i]:g}] misses "
                              f"[{lo[i]:g}, {hi[i]:g}]")
        redundant = alive & (L >= lo) & (U <= hi)
        # residual activity of each entry's row without that entry
        r = rows
        resU = np.where(nU[r] - (~fin_max) > 0, np.inf, Uf[r] - np.where(fin_max, cmax, 0.0))
        resL = np.where(nL[r] - (~fin_min) > 0, -np.inf, Lf[r] - np.where(fin_min, cmin, 0.0))
        use = alive[r] & ~redundant[r] & (a != 0) & (lb[col] < ub[col])
        new_lb = np.full(len(a), -np.inf)
        new_ub = np.full(len(a), np.inf)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            # lo side: a x >= lo - resU
            need = use & np.isfinite(lo[r]) & np.isfinite(resU)
            bound = (lo[r] - resU) / np.where(a != 0, a, 1.0)
            pos, neg = need & (a > 0), need & (a < 0)
            new_lb[pos] = bound[pos]
            new_ub[neg] = bound[neg]
            # hi side: a x <= hi - resL
            need = use & np.isfinite(hi[r]) & np.isfinite(resL)
            bound = (hi[r] - resL) / np.where(a != 0, a, 1.0)
            pos, neg = need & (a > 0), need & (a < 0)
            new_ub[pos] = np.minimum(new_ub[pos], bound[pos])
            new_lb[neg] = np.maximum(new_lb[neg], bound[neg])
        # sound rounding: loosen by the float slack; integers round inward with a tolerance
        s = slack[r] / np.maximum(np.abs(a), 1e-300)
        new_lb, new_ub = new_lb - s, new_ub + s
        cand_lb = np.full(len(lb), -np.inf)
        cand_ub = np.full(len(ub), np.inf)
        np.maximum.at(cand_lb, col, new_lb)
        np.minimum.at(cand_ub, col, new_ub)
        integer = self.integer
        cand_lb[integer] = np.ceil(cand_lb[integer] - 1e-6)
        cand_ub[integer] = np.floor(cand_ub[integer] + 1e-6)
        width = np.where(np.isfinite(ub - lb), ub - lb, np.inf)
        step = np.where(integer, 0.5, 1e-3 * np.minimum(np.maximum(width, 1e-9), 1e6))  # no creeping on continuous
        raise_lb = cand_lb > lb + step
        lower_ub = cand_ub < ub - step
        changed = bool(raise_lb.any() or lower_ub.any())
        if changed:
            nlb = np.where(raise_lb, np.minimum(cand_lb, ub), lb)
            nub = np.where(lower_ub, np.maximum(cand_ub, nlb), ub)
            crossed = cand_lb > cand_ub + 1e-6 * (1 + np.abs(cand_ub))
            if np.any(crossed & (raise_lb | lower_ub)):
                i = int(np.argmax(crossed & (raise_lb | lower_ub)))
                raise _Infeasible(f"the rows leave {self.inst.var_label(i)} no value")
            newly_fixed = (nlb == nub) & (lb < ub)
            self.stats["bounds_tightened"] += int(np.count_nonzero((raise_lb | lower_ub) & ~newly_fixed))
            self.lb, self.ub = nlb, nub
            self.reason[newly_fixed & (self.reason == FREE)] = ROW_BOUND
        return changed, redundant

    def rows(self) -> bool:
        inst = self.inst
        changed, redundant = self._propagate(inst.A, self.A_rows, inst.row_lo, inst.row_hi, self.row_alive, "row")
        if redundant.any():
            self.stats["rows_redundant"] += int(np.count_nonzero(redundant))
            self.row_alive &= ~redundant
            changed = True
        if self.ind_alive.any():  # indicators switched on are rows too
            z, v = self.ind_var, inst.ind_val
            on = self.ind_alive & (self.lb[z] == self.ub[z]) & (self.lb[z] == v)
            if on.any():
                ch, red = self._propagate(self.ind_A, self._ind_rows, inst.ind_lo, inst.ind_hi, on, "indicator")
                if red.any():
                    self.stats["indicators_always_satisfied"] += int(np.count_nonzero(red))
                    self.ind_alive &= ~red
                changed |= ch or bool(red.any())
        return changed

    def _locks(self) -> tuple[np.ndarray, np.ndarray]:
        """Per variable: how many remaining constraints raising (up) or lowering (down) it
        could violate."""
        inst, n = self.inst, self.inst.num_vars
        up, down = np.zeros(n), np.zeros(n)

        def count(a: np.ndarray, col: np.ndarray, r: np.ndarray, lo: np.ndarray,
                  hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """Locks from the entries (a, col) of rows r (one row id per entry)."""
            has_lo, has_hi = np.isfinite(lo[r]), np.isfinite(hi[r])
            up_hit = ((a > 0) & has_hi) | ((a < 0) & has_lo)
            down_hit = ((a > 0) & has_lo) | ((a < 0) & has_hi)
            return (np.bincount(col, weights=up_hit.astype(np.float64), minlength=n),
                    np.bincount(col, weights=down_hit.astype(np.float64), minlength=n))

        def alive_part(mat: Csr, rows: np.ndarray, alive: np.ndarray, lo: np.ndarray, hi: np.ndarray):
            keep = alive[rows]
            return count(mat.data[keep], mat.indices[keep], rows[keep], lo, hi)

        u, d = alive_part(inst.A, self.A_rows, self.row_alive, inst.row_lo, inst.row_hi)
        up += u
        down += d
        # the indicators' part: rows only ever die, so keep the counts and subtract the rows
        # that died since (counts are small integers in float64: exact)
        if self._ind_locks is None or np.any(self.ind_alive & ~self._ind_locks[0]):
            u, d = alive_part(self.ind_A, self._ind_rows, self.ind_alive, inst.ind_lo, inst.ind_hi)
        else:
            was, u, d = self._ind_locks
            died = np.flatnonzero(was & ~self.ind_alive)
            if len(died):
                sub = self.ind_A.take_rows(died)
                du, dd = count(sub.data, sub.indices, died[sub.row_ids()], inst.ind_lo, inst.ind_hi)
                u, d = u - du, d - dd
        self._ind_locks = (self.ind_alive.copy(), u, d)
        up += u
        down += d
        z, v = self.ind_var[self.ind_alive], inst.ind_val[self.ind_alive]
        up += np.bincount(z[v == 1], minlength=n)  # raising switches a z==1 indicator on
        down += np.bincount(z[v == 0], minlength=n)
        return up, down

    def dual_fixing(self) -> bool:
        free = self.integer & (self.lb < self.ub) & (self.agg_to < 0)
        if not free.any():
            return False
        up, down = self._locks()
        gain = self.sign * self.c  # objective improvement per unit raised
        go_up = free & (up == 0) & (gain >= 0) & np.isfinite(self.ub)
        go_down = free & ~go_up & (down == 0) & (gain <= 0) & np.isfinite(self.lb)
        if go_up.any():
            self._fix(np.flatnonzero(go_up), self.ub[go_up], DUAL_UP)
        if go_down.any():
            self._fix(np.flatnonzero(go_down), self.lb[go_down], DUAL_DOWN)
        return bool(go_up.any() or go_down.any())

    def aggregate(self) -> bool:
        """s_i := c for indicators "c == 1 => sum a_i s_i >= lo" (a_i > 0, s_i free binaries)
        that need every s_i at 1, when nothing else minds s_i being lowered."""
        inst = self.inst
        z, v = self.ind_var, inst.ind_val
        cand = self.ind_alive & (v == 1) & (self.lb[z] < self.ub[z])
        cand &= np.isfinite(inst.ind_lo) & ~np.isfinite(inst.ind_hi)
        if not cand.any():
            return False
        A = self.ind_A
        rows = self._ind_rows
        _, high, _, n_bad, n_free, amin = self._ind_stats()
        # every entry a free binary with a positive coefficient, or fixed (a constant)
        cand &= (n_bad == 0) & (n_free > 0)
        if not cand.any():
            return False
        # every free s_i is needed, and all of them at 1 suffice (else the indicator is never
        # satisfiable, which `indicators` turns into c = 0 instead)
        cand &= (high - amin < inst.ind_lo - _REL * (1 + np.abs(high))) & (high >= inst.ind_lo)
        if not cand.any():
            return False
        col = A.indices.astype(np.int64)
        free_e = (self.integer & (self.lb == 0) & (self.ub == 1))[col] & (A.data > 0)
        up, down = self._locks()
        # each s_i: one down-lock (this indicator), no gain from being raised, in no other expression
        in_expr = np.bincount(col[self.ind_alive[rows]], minlength=inst.num_vars)
        in_expr += np.bincount(inst.A.indices[self.row_alive[self.A_rows]].astype(np.int64),
                               minlength=inst.num_vars)
        e = cand[rows] & free_e
        s = col[e]
        good_s = (down[s] == 1) & (in_expr[s] == 1) & (self.sign * self.c[s] <= 0) & (self.agg_to[s] < 0)
        # the controller must not itself be one of the s being aggregated here
        good_row = np.ones(A.nrows, bool)
        np.logical_and.at(good_row, rows[e], good_s)
        cand &= good_row
        cand &= ~np.isin(z, col[cand[rows] & free_e])
        if not cand.any():
            return False
        e = cand[rows] & free_e
        s, target = col[e], z[rows[e]]
        self.agg_to[s] = target
        self.reason[s] = AGGREGATED
        np.add.at(self.c, target, self.c[s])
        self.c[s] = 0.0
        moved = np.isin(self.ind_var, s)
        # indicators controlled by an aggregated s now hang on its c
        lookup = np.full(inst.num_vars, -1, np.int64)
        lookup[s] = target
        self.ind_var = np.where(moved, lookup[self.ind_var], self.ind_var)
        self.ind_alive &= ~cand  # "c => all s" holds by construction once s = c
        self.stats["aggregated"] = self.stats.get("aggregated", 0) + int(len(s))
        # s keeps bounds [0, 1] but is out of every expression; it is removed when building
        return True

    # ---- driver ----------------------------------------------------------------------
    def run(self) -> PresolveResult:
        rounds = 0
        try:
            changed = True
            while changed and rounds < self.max_rounds:
                rounds += 1
                changed = self.indicators()
                changed |= self.rows()
                changed |= self.dual_fixing()
                changed |= self.aggregate()
            reduced, pmap = self._build()
        except _Infeasible as exc:
            n = self.inst.num_vars
            empty = PresolveMap(np.full(n, -1, np.int64), np.zeros(n), np.zeros(0, np.int64))
            return PresolveResult("infeasible", None, empty, self.reason, self.evidence, self.lb, self.ub, rounds,
                                  message=str(exc), stats=self.stats)
        return PresolveResult("reduced", reduced, pmap, self.reason, self.evidence, self.lb, self.ub, rounds,
                              stats=self.stats)

    def _build(self) -> tuple[MilpInstance, PresolveMap]:
        inst, n = self.inst, self.inst.num_vars
        aggregated = self.agg_to >= 0
        fixed = (self.lb == self.ub) & ~aggregated
        # an aggregated variable follows its target, which may itself be fixed
        keep = ~fixed & ~aggregated
        kept = np.flatnonzero(keep)
        new_index = np.full(n, -1, np.int64)
        new_index[kept] = np.arange(len(kept))
        source = new_index.copy()
        value = np.where(fixed, self.lb, 0.0)
        tgt = self.agg_to[aggregated]
        source[aggregated] = new_index[tgt]
        value[aggregated] = np.where(fixed[tgt], self.lb[tgt], 0.0)
        pmap = PresolveMap(source, value, kept)
        n_red = len(kept)

        def reduce_rows(mat: Csr, rows_sel: np.ndarray, lo: np.ndarray, hi: np.ndarray):
            sub = mat.take_rows(rows_sel)
            col = sub.indices.astype(np.int64)
            r = sub.row_ids()
            fixed_part = np.bincount(r, weights=np.where(fixed[col], sub.data * self.lb[col], 0.0),
                                     minlength=len(rows_sel))
            keep_e = keep[col]
            if np.any(aggregated[col]):
                raise AssertionError("an aggregated variable is left in an expression")
            out = Csr.from_coo(r[keep_e], new_index[col[keep_e]], sub.data[keep_e], len(rows_sel), n_red)
            return out, lo[rows_sel] - fixed_part, hi[rows_sel] - fixed_part

        # rows: live linear rows, then indicators switched on (their binary fixed to ind_val)
        z, v = self.ind_var, inst.ind_val
        zfixed = (self.lb[z] == self.ub[z]) & (self.agg_to[z] < 0)
        on = self.ind_alive & zfixed & (self.lb[z] == v)
        off = self.ind_alive & zfixed & (self.lb[z] != v)
        ind_keep = self.ind_alive & ~on & ~off
        self.stats["indicators_to_rows"] += int(np.count_nonzero(on))
        self.stats["indicators_inactive"] += int(np.count_nonzero(off))
        row_sel = np.flatnonzero(self.row_alive)
        on_sel = np.flatnonzero(on)
        A1, lo1, hi1 = reduce_rows(inst.A, row_sel, inst.row_lo, inst.row_hi)
        A2, lo2, hi2 = reduce_rows(self.ind_A, on_sel, inst.ind_lo, inst.ind_hi)
        row_groups = _regroup(inst.row_groups, row_sel)
        taken = set(row_groups)
        for name, (off_, cnt) in _regroup(inst.ind_groups, on_sel).items():
            label = name if name not in taken else f"ind:{name}"
            row_groups[label] = (_group_end(row_groups), cnt)
        A, row_lo, row_hi, row_groups = _without_empty_rows(
            Csr.vstack([A1, A2], n_red), np.concatenate([lo1, lo2]), np.concatenate([hi1, hi2]), row_groups)
        ind_sel = np.flatnonzero(ind_keep)
        B, ilo, ihi = reduce_rows(self.ind_A, ind_sel, inst.ind_lo, inst.ind_hi)
        ind_var = new_index[self.ind_var[ind_sel]]
        if np.any(ind_var < 0):
            raise AssertionError("an indicator kept on a fixed binary")
        blocks = _kept_blocks(inst.blocks, keep)
        c0 = inst.c0 + float(self.c[fixed] @ self.lb[fixed])
        # the original's start, if it still satisfies the reduced instance
        reduced = MilpInstance(
            blocks=blocks, lb=self.lb[kept], ub=self.ub[kept], vtype=inst.vtype[kept].copy(), A=A,
            row_lo=row_lo, row_hi=row_hi, ind_var=ind_var.astype(np.int32), ind_val=inst.ind_val[ind_sel].copy(),
            ind_A=B, ind_lo=ilo, ind_hi=ihi, c=self.c[kept], c0=c0, sense=inst.sense, start=None,
            meta={**inst.meta}, row_groups=row_groups, ind_groups=_regroup(inst.ind_groups, ind_sel),
        )
        if inst.start is not None:
            s = np.asarray(inst.start, np.float64)[kept].copy()
            if verify(reduced, s).ok:
                reduced = replace(reduced, start=s)
        reduced.meta["presolved_from_variables"] = n
        return reduced, pmap


def _without_empty_rows(A: Csr, row_lo: np.ndarray, row_hi: np.ndarray, row_groups: dict[str, tuple[int, int]]
                        ) -> tuple[Csr, np.ndarray, np.ndarray, dict[str, tuple[int, int]]]:
    """Rows left without any variable must hold as constants (checked: _Infeasible), then go."""
    empty = np.diff(A.indptr) == 0
    if not empty.any():
        return A, row_lo, row_hi, row_groups
    bad = empty & ((row_lo > 1e-9 * (1 + np.abs(row_lo))) | (row_hi < -1e-9 * (1 + np.abs(row_hi))))
    if bad.any():
        raise _Infeasible("a constraint left without variables does not hold")
    nonempty = np.flatnonzero(~empty)
    return A.take_rows(nonempty), row_lo[nonempty], row_hi[nonempty], _regroup(row_groups, nonempty)


def _kept_blocks(blocks: dict[str, tuple[int, tuple[int, ...]]],
                 keep: np.ndarray) -> dict[str, tuple[int, tuple[int, ...]]]:
    """The blocks over the kept variables: a block keeps its shape when whole, else becomes flat."""
    out: dict[str, tuple[int, tuple[int, ...]]] = {}
    off = 0
    for name, (o, shape) in blocks.items():
        cnt = int(np.count_nonzero(keep[o:o + math.prod(shape)]))
        if cnt:
            out[name] = (off, shape if cnt == math.prod(shape) else (cnt,))
            off += cnt
    return out


def _group_end(groups: dict[str, tuple[int, int]]) -> int:
    return sum(c for _, c in groups.values())


def _regroup(groups: dict[str, tuple[int, int]], selected: np.ndarray) -> dict[str, tuple[int, int]]:
    """Named contiguous groups after keeping `selected` (sorted) members: new offsets and counts."""
    out, off = {}, 0
    for name, (o, cnt) in sorted(groups.items(), key=lambda kv: kv[1][0]):
        k = int(np.count_nonzero((selected >= o) & (selected < o + cnt)))
        if k:
            out[name] = (off, k)
            off += k
    return out

