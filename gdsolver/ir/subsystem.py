"""The maximum-feasible-subsystem view of an instance (numpy only).

Many count objectives have this shape: binaries k ("keys", e.g. one per data point) each
switch on a group of linear rows over continuous variables ("k == 1 => lo <= a.x <= hi"),
the objective rewards keys being 1, and the only other constraints are rows over the keys
alone (e.g. "at least as many as now") and rows over the continuous variables alone. Then
the problem is: choose the keys of most value whose row groups can hold together. Raising a
key only adds rows, so every subset of a feasible choice is feasible, and an infeasible
choice S gives the valid cut "not all of S" (combinatorial Benders).

`subsystem_view(inst)` recognises that shape without knowing any block name and returns
the pieces, or None with the reason it does not apply (for instance a ReLU encoding, whose
binaries sit inside the continuous part). Run `ir.presolve` first: the paper formulation of
the classification sweep only takes this shape once its s_tj are aggregated into c_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gdsolver.blas import blas_threads
from gdsolver.ir.csr import Csr
from gdsolver.ir.instance import CONTINUOUS, MilpInstance


@dataclass(frozen=True)
class Subsystem:
    keys: np.ndarray  # variable ids of the key binaries (K,)
    gain: np.ndarray  # objective improvement per key set to 1 (>= 0), sense applied (K,)
    cols: np.ndarray  # variable ids of the continuous variables (n_c,)
    col_lb: np.ndarray
    col_ub: np.ndarray
    base: Csr  # rows over cols that always hold
    base_lo: np.ndarray
    base_hi: np.ndarray
    rows: Csr  # the keys' rows over cols
    rows_lo: np.ndarray
    rows_hi: np.ndarray
    group: np.ndarray  # key index (0..K-1) of every row in `rows`
    master: Csr  # rows over the keys alone (columns are key indices)
    master_lo: np.ndarray
    master_hi: np.ndarray
    key_lb: np.ndarray  # the keys' bounds (a key may be fixed)
    key_ub: np.ndarray

    @property
    def num_keys(self) -> int:
        return len(self.keys)

    def solution(self, inst: MilpInstance, chosen: np.ndarray, y: np.ndarray) -> np.ndarray:
        """A full solution vector of `inst`: keys from the boolean mask `chosen`, continuous
        variables from y."""
        x = np.zeros(inst.num_vars)
        x[self.keys] = chosen.astype(np.float64)
        x[self.cols] = y
        return x


def restrict(sub: Subsystem, keep: np.ndarray) -> Subsystem:
    """The subsystem of the keys in the boolean mask `keep` (renumbered in order), with only the
    continuous variables their rows or the base rows use: a variable in no row may take any
    value in its box, so dropping it changes no feasibility question. No master rows (they
    may involve other keys). Solution vectors of the result do not map back: it answers
    feasibility questions over key subsets, cheaply when the subset is small."""
    keep = np.asarray(keep, bool)
    key_index = np.cumsum(keep) - 1
    rows_sel = np.flatnonzero(keep[sub.group])
    rows = sub.rows.take_rows(rows_sel)
    used = np.zeros(len(sub.cols), bool)
    used[rows.indices] = True
    used[sub.base.indices] = True
    k = int(keep.sum())
    return Subsystem(
        keys=sub.keys[keep], gain=sub.gain[keep], cols=sub.cols[used], col_lb=sub.col_lb[used], col_ub=sub.col_ub[used],
        base=_cols_of(sub.base, used), base_lo=sub.base_lo, base_hi=sub.base_hi,
        rows=_cols_of(rows, used), rows_lo=sub.rows_lo[rows_sel], rows_hi=sub.rows_hi[rows_sel],
        group=key_index[sub.group[rows_sel]], master=Csr.empty(k), master_lo=np.zeros(0), master_hi=np.zeros(0),
        key_lb=sub.key_lb[keep], key_ub=sub.key_ub[keep],
    )


def _cols_of(mat: Csr, mask: np.ndarray) -> Csr:
    """mat restricted to the columns in `mask`, renumbered in order (rows kept)."""
    new = np.cumsum(mask) - 1
    keep = mask[mat.indices]
    rows = mat.row_ids()[keep]
    return Csr.from_coo(rows, new[mat.indices[keep]], mat.data[keep], mat.nrows, int(mask.sum()))


def subsystem_view(inst: MilpInstance) -> tuple[Subsystem | None, str]:
    """(Subsystem, "") when inst has the maximum-feasible-subsystem shape, else (None, why)."""
    integer = inst.vtype != CONTINUOUS
    if not integer.any():
        return None, "no integer variables"
    if np.any(integer & ((inst.lb < 0) | (inst.ub > 1))):
        return None, "an integer variable is not binary"
    if inst.num_indicators == 0:
        return None, "no indicator constraints"
    if np.any(inst.ind_val != 1):
        return None, "an indicator is switched on by a binary at 0"
    if np.any(integer[inst.ind_A.indices]):
        return None, "an indicator's expression contains an integer variable"
    a_int = integer[inst.A.indices]
    r = inst.A.row_ids()
    has_int = np.bincount(r, weights=a_int, minlength=inst.num_rows) > 0
    has_cont = np.bincount(r, weights=~a_int, minlength=inst.num_rows) > 0
    if np.any(has_int & has_cont):
        return None, "a row mixes integer and continuous variables"
    sign = 1.0 if inst.sense == "max" else -1.0
    keys = np.flatnonzero(integer)
    gain = sign * inst.c[keys]
    if np.any(gain < 0):
        return None, "the objective penalises a binary"
    if np.any(inst.c[~integer] != 0):
        return None, "the objective has continuous terms"
    cont = ~integer
    key_index = np.full(inst.num_vars, -1, np.int64)
    key_index[keys] = np.arange(len(keys))
    master_rows = np.flatnonzero(has_int)
    base_rows = np.flatnonzero(~has_int)
    master = _cols_of(inst.A.take_rows(master_rows), integer)
    base = _cols_of(inst.A.take_rows(base_rows), cont)
    rows = _cols_of(inst.ind_A, cont)
    return Subsystem(
        keys=keys, gain=gain, cols=np.flatnonzero(cont), col_lb=inst.lb[cont], col_ub=inst.ub[cont],
        base=base, base_lo=inst.row_lo[base_rows], base_hi=inst.row_hi[base_rows],
        rows=rows, rows_lo=inst.ind_lo.copy(), rows_hi=inst.ind_hi.copy(), group=key_index[inst.ind_var],
        master=master, master_lo=inst.row_lo[master_rows], master_hi=inst.row_hi[master_rows],
        key_lb=inst.lb[keys], key_ub=inst.ub[keys],
    ), ""


def _one_sided(sub: Subsystem) -> tuple[Csr, np.ndarray, np.ndarray]:
    """The keys' rows as a.x >= q (hi sides negated): (matrix, rhs, key index per row)."""
    lo_rows = np.flatnonzero(np.isfinite(sub.rows_lo))
    hi_rows = np.flatnonzero(np.isfinite(sub.rows_hi))
    lo_part = sub.rows.take_rows(lo_rows)
    hi_part = sub.rows.take_rows(hi_rows)
    hi_part = Csr(hi_part.indptr, hi_part.indices, -hi_part.data, hi_part.ncols)
    mat = Csr.vstack([lo_part, hi_part], sub.rows.ncols)
    rhs = np.concatenate([sub.rows_lo[lo_rows], -sub.rows_hi[hi_rows]])
    return mat, rhs, np.concatenate([sub.group[lo_rows], sub.group[hi_rows]])


# The screen is quadratic in the rows: above these sizes it is skipped (None), since the search
# then costs less than the screen would (a 1000-class head: 10,000 rows x 513,000 columns)
PAIR_SCREEN_MAX_ROWS = 8000  # its R x R matrices: 256 MB in float32 at this size
PAIR_SCREEN_MAX_WORK = 2e10  # R^2 x (columns holding both signs): multiply-adds of the screen
PAIR_SCREEN_MAX_CANDIDATES = 100_000  # row pairs left for the exact test (a Python loop of ~20 us each)
_CHUNK_ENTRIES = 1 << 22  # dense rows x columns blocks of the screen stay below this many entries


def pair_conflicts(sub: Subsystem, tol: float = 1e-7, *, max_rows: int = PAIR_SCREEN_MAX_ROWS,
                   max_work: float = PAIR_SCREEN_MAX_WORK, max_candidates: int = PAIR_SCREEN_MAX_CANDIDATES,
                   chunk_entries: int = _CHUNK_ENTRIES) -> np.ndarray | None:
    """Pairs of keys (k1, k2), k1 < k2, that cannot both be 1: some row of k1 and some row of
    k2 cannot hold together anywhere in the box of the continuous variables (the rows that
    always hold are left out, so every pair found is a true conflict; conflicts that need
    three keys, or two rows of one key, are not looked for). None when the screen would be too
    big (more than `max_rows` one-sided rows, more than `max_work` multiply-adds, or more than
    `max_candidates` row pairs to test exactly; a head with many classes): then no pair is
    known, and callers must not treat the list as complete.

    Two rows a1.x >= q1, a2.x >= q2 over the box |x - m| <= rho are infeasible iff some
    l in [0, 1] has l (q1 - a1.m) + (1 - l)(q2 - a2.m) > sum rho |l a1 + (1 - l) a2|
    (Farkas; the box's multipliers are the absolute values). The right side is convex and
    piecewise linear in l, so the best l is found from the sorted breakpoints. Pairs that
    certainly fit are screened out first with matrix products over the columns where rows of
    both signs meet (in blocks of at most `chunk_entries` dense entries; the rows x columns
    matrix is never built): rows with no column of opposite signs (the corner that maximises
    one maximises the other), and rows that can both hold with their contested columns at the
    box's centre, or one of them without them."""
    if not (np.all(np.isfinite(sub.col_lb)) and np.all(np.isfinite(sub.col_ub))):
        return np.zeros((0, 2), np.int64)
    mat, rhs, key = _one_sided(sub)
    mat = mat.sum_duplicates()  # one entry per (row, column): the screen's signs are the row's
    R = mat.nrows
    if R < 2:
        return np.zeros((0, 2), np.int64)
    if R > max_rows:
        return None
    mid = (sub.col_lb + sub.col_ub) / 2
    rho = (sub.col_ub - sub.col_lb) / 2
    q = rhs - mat.matvec(mid)  # what each row needs from the box's half-widths
    contested, cap = _contested(mat, rho, max_work, chunk_entries)
    if contested is None:
        return None
    # certainly compatible: both hold with the contested columns at the box's centre, or one
    # holds with them given to the other (each row alone can hold: presolve checked)
    slack = 1e-3 * cap[:, None] + 1e-9
    room = cap[:, None] - q[:, None]  # how much of row i's reach it can do without
    easy = (room >= contested + slack) & (room.T >= contested.T + slack)
    easy |= room >= 2 * contested + slack
    easy |= (room >= 2 * contested + slack).T
    cand = (contested > 0) & ~easy
    cand |= cand.T
    i1, i2 = np.nonzero(np.triu(cand, 1))
    diff = key[i1] != key[i2]
    i1, i2 = i1[diff], i2[diff]
    if len(i1) > max_candidates:
        return None
    found = np.array([_pair_infeasible(mat, a, b, q, rho, tol) for a, b in zip(i1, i2)], bool)
    pairs = np.stack([key[i1[found]], key[i2[found]]], 1)
    pairs.sort(axis=1)
    return np.unique(pairs, axis=0) if len(pairs) else np.zeros((0, 2), np.int64)


def _contested(mat: Csr, rho: np.ndarray, max_work: float,
               chunk_entries: int) -> tuple[np.ndarray | None, np.ndarray]:
    """(contested, cap): contested[i, j] is the part of row i's reach in columns where row j's
    coefficient has the opposite sign (float32: a screen, with slack in the caller); cap[i] is
    row i's whole reach sum rho |a|. Only columns holding both signs count. contested is None
    when the products would take more than max_work multiply-adds."""
    R = mat.nrows
    rows, cols, vals = mat.row_ids(), mat.indices.astype(np.int64), mat.data  # no zeros: sum_duplicates
    reach_e = np.abs(vals) * rho[cols]  # each entry's share of its row's reach sum rho |a|
    cap = mat.row_sum(reach_e)
    pos_cols = np.zeros(mat.ncols, bool)
    neg_cols = np.zeros(mat.ncols, bool)
    pos_cols[cols[vals > 0]] = True
    neg_cols[cols[vals < 0]] = True
    both = np.flatnonzero(pos_cols & neg_cols)
    if float(R) * R * len(both) > max_work:
        return None, cap
    contested = np.zeros((R, R), np.float32)
    if not len(both):
        return contested, cap
    local = np.full(mat.ncols, -1, np.int64)
    local[both] = np.arange(len(both))
    sel = local[cols] >= 0
    r_s, c_s, v_s, w_s = rows[sel], local[cols[sel]], vals[sel], reach_e[sel].astype(np.float32)
    order = np.argsort(c_s, kind="stable")
    r_s, c_s, v_s, w_s = r_s[order], c_s[order], v_s[order], w_s[order]
    width = max(1, chunk_entries // R)  # columns per block: the rows x columns matrix is never built
    bounds = np.searchsorted(c_s, np.arange(0, len(both) + width, width))
    with blas_threads(1):  # small products: extra BLAS threads only spin on a busy machine
        for lo_col, (e0, e1) in zip(range(0, len(both), width), zip(bounds[:-1], bounds[1:])):
            if e0 == e1:
                continue
            B = min(width, len(both) - lo_col)
            rr, cc, vv, ww = r_s[e0:e1], c_s[e0:e1] - lo_col, v_s[e0:e1], w_s[e0:e1]
            pos_reach = np.zeros((R, B), np.float32)
            neg_reach = np.zeros((R, B), np.float32)
            pos = np.zeros((R, B), np.float32)
            neg = np.zeros((R, B), np.float32)
            p, n_ = vv > 0, vv < 0
            pos_reach[rr[p], cc[p]] = ww[p]
            neg_reach[rr[n_], cc[n_]] = ww[n_]
            pos[rr[p], cc[p]] = 1.0
            neg[rr[n_], cc[n_]] = 1.0
            contested += pos_reach @ neg.T + neg_reach @ pos.T
    return contested, cap


def _pair_infeasible(mat: Csr, a: int, b: int, q: np.ndarray, rho: np.ndarray, tol: float) -> bool:
    """Rows a and b of mat cannot hold together in the box (the exact Farkas test of
    pair_conflicts): one sort over their columns only."""
    ptr, idx, dat = mat.indptr, mat.indices, mat.data
    ca, va = idx[ptr[a]:ptr[a + 1]], dat[ptr[a]:ptr[a + 1]]
    cb, vb = idx[ptr[b]:ptr[b + 1]], dat[ptr[b]:ptr[b + 1]]
    cols_ab = np.union1d(ca, cb)
    a1 = np.zeros(len(cols_ab))
    a2 = np.zeros(len(cols_ab))
    a1[np.searchsorted(cols_ab, ca)] = va
    a2[np.searchsorted(cols_ab, cb)] = vb
    r = rho[cols_ab]
    opp_c = a1 * a2 < 0
    # slope of sum r |l a1 + (1 - l) a2| at l = 0+, and its jumps at the breakpoints
    g0 = np.sum(r[~opp_c] * (np.abs(a1[~opp_c]) - np.abs(a2[~opp_c]))) - np.sum(
        r[opp_c] * (np.abs(a1[opp_c]) + np.abs(a2[opp_c])))
    lam = a2[opp_c] / (a2[opp_c] - a1[opp_c])
    jump = 2 * r[opp_c] * (np.abs(a1[opp_c]) + np.abs(a2[opp_c]))
    order = np.argsort(lam)
    slope = (q[a] - q[b]) - (g0 + np.concatenate([[0.0], np.cumsum(jump[order])]))  # f's slope after each
    k = int(np.argmax(slope <= 0)) if np.any(slope <= 0) else len(order)
    best = 0.0 if k == 0 else (1.0 if k == len(order) else float(lam[order][k - 1]))
    val = best * q[a] + (1 - best) * q[b] - np.sum(r * np.abs(best * a1 + (1 - best) * a2))
    return bool(val > tol * (1.0 + abs(q[a]) + abs(q[b])))
