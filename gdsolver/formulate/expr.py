"""Linear expressions over an instance's variables, one per (point, unit), in bulk.

A `LinExpr` holds R = T * M expressions  const_r + sum_k vals[r, k] * x[cols[r, k]]  as
dense (R, K) arrays (every expression of a layer has the same number of terms), their
exact interval over the variable box, and their value at the MIP start. The encoders
pass these from layer to layer; rows and indicators are made from them with `triplets`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class LinExpr:
    cols: np.ndarray  # (R, K) int64 variable ids
    vals: np.ndarray  # (R, K) float64 coefficients (0 where a term is absent)
    const: np.ndarray  # (R,)
    lo: np.ndarray  # (R,) interval over the variable box
    hi: np.ndarray  # (R,)
    value0: np.ndarray  # (R,) value at the MIP start
    shape: tuple[int, ...]  # logical layout of the R expressions, e.g. (T, M)

    @property
    def size(self) -> int:
        return int(self.const.shape[0])

    def take(self, r: np.ndarray) -> "LinExpr":
        """The expressions with flat indices r (a 1-D selection)."""
        r = np.asarray(r, np.int64)
        return LinExpr(self.cols[r], self.vals[r], self.const[r], self.lo[r], self.hi[r], self.value0[r], (len(r),))

    def at(self, t: np.ndarray, j: np.ndarray) -> "LinExpr":
        """Expressions at (t, j) pairs of a (T, M) layout."""
        return self.take(np.asarray(t, np.int64) * self.shape[1] + np.asarray(j, np.int64))


def interval(vals: np.ndarray, const: np.ndarray, lo_x: np.ndarray, hi_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact interval of const + sum_k vals[r, k] x_rk per row, each term's variable in
    [lo_x[r, k], hi_x[r, k]] (distinct variables per row). Zero coefficients contribute 0
    even against an infinite bound."""
    with np.errstate(invalid="ignore", over="ignore"):  # 0 * inf; overflow is reported as an infinite bound
        at_lo, at_hi = vals * lo_x, vals * hi_x
    zero = vals == 0
    at_lo[zero] = 0.0
    at_hi[zero] = 0.0
    return const + np.minimum(at_lo, at_hi).sum(axis=1), const + np.maximum(at_lo, at_hi).sum(axis=1)


Bounds = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # variable ids -> (lb, ub), same shape


_BLOCK = 1 << 22  # entries per block of rows in interval_of: bounds its temporaries to ~200 MB


def interval_of(vals: np.ndarray, const: np.ndarray, cols: np.ndarray, bounds: Bounds) -> tuple[np.ndarray, np.ndarray]:
    """interval() of each row with its variables' bounds from `bounds(cols)`, computed in blocks of
    rows: the bounds gathered and the products are six arrays the size of `vals`, which made a
    classification head's build peak at ~7x the instance (one row's result does not depend on
    the block it is computed in, so the answer is the same bit for bit)."""
    R, K = vals.shape
    step = max(1, _BLOCK // max(K, 1))
    if R <= step:
        return interval(vals, const, *bounds(cols))
    lo, hi = np.empty(R), np.empty(R)
    for s in range(0, R, step):
        e = min(R, s + step)
        lo[s:e], hi[s:e] = interval(vals[s:e], const[s:e], *bounds(cols[s:e]))
    return lo, hi


def difference(a: LinExpr, b: LinExpr, bounds: Bounds) -> LinExpr:
    """a - b row by row (same number of rows). Terms over the same variables are merged, so the
    interval of, e.g., o_label - o_j through a fixed layer is W_label - W_j applied once."""
    if a.cols.shape == b.cols.shape and np.array_equal(a.cols, b.cols):
        cols, vals = a.cols, a.vals - b.vals
    else:
        cols, vals = np.concatenate([a.cols, b.cols], 1), np.concatenate([a.vals, -b.vals], 1)
    const = a.const - b.const
    lo, hi = interval_of(vals, const, cols, bounds)
    return LinExpr(cols, vals, const, lo, hi, a.value0 - b.value0, a.shape)


def take_difference(e: LinExpr, ia: np.ndarray, ib: np.ndarray, bounds: Bounds) -> LinExpr:
    """difference(e.take(ia), e.take(ib), bounds), the same arrays bit for bit, written block by
    block into the result instead of through two full copies of the selections (a label margin
    head's o_label - o_j: the copies were most of its build's peak memory)."""
    ia, ib = np.asarray(ia, np.int64), np.asarray(ib, np.int64)
    R, K = len(ia), e.cols.shape[1]
    step = max(1, _BLOCK // max(2 * K, 1))
    blocks = [(s, min(R, s + step)) for s in range(0, R, step)]
    same = all(np.array_equal(e.cols[ia[s:t]], e.cols[ib[s:t]]) for s, t in blocks)
    width = K if same else 2 * K
    cols, vals = np.empty((R, width), np.int64), np.empty((R, width))
    for s, t in blocks:
        a, b = ia[s:t], ib[s:t]
        if same:  # terms over the same variables are merged (see difference)
            cols[s:t] = e.cols[a]
            vals[s:t] = e.vals[a] - e.vals[b]
        else:
            cols[s:t, :K], cols[s:t, K:] = e.cols[a], e.cols[b]
            vals[s:t, :K], vals[s:t, K:] = e.vals[a], -e.vals[b]
    const = e.const[ia] - e.const[ib]
    lo, hi = interval_of(vals, const, cols, bounds)
    return LinExpr(cols, vals, const, lo, hi, e.value0[ia] - e.value0[ib], (R,))


def variables(ids: np.ndarray, lo: np.ndarray, hi: np.ndarray, value0: np.ndarray) -> LinExpr:
    """The expressions x[ids] themselves (one term each), laid out as ids.shape."""
    flat = np.asarray(ids, np.int64).ravel()
    R = len(flat)
    return LinExpr(flat[:, None], np.ones((R, 1)), np.zeros(R), np.ravel(lo).astype(np.float64),
                   np.ravel(hi).astype(np.float64), np.ravel(value0).astype(np.float64), tuple(np.shape(ids)))


def triplets(cols: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-major (rows, cols, vals) from per-row (R, K) arrays, zero coefficients dropped
    (features after a ReLU are often zero). Rows come out sorted."""
    K = cols.shape[1]
    flat = vals.ravel()
    if np.count_nonzero(flat) == flat.size:  # nothing to drop: cols and vals as views, not copies
        return np.repeat(np.arange(cols.shape[0], dtype=np.int64), K), cols.ravel(), flat
    nz = np.flatnonzero(flat)
    return nz // K, cols.ravel()[nz], flat[nz]


def with_term(e: LinExpr, col: np.ndarray, coef: float | np.ndarray, *, first: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(cols, vals) of e plus one more term coef * x[col] per row (col shaped (R,))."""
    c = np.asarray(col, np.int64).reshape(-1, 1)
    v = np.broadcast_to(np.asarray(coef, np.float64), (e.size,)).reshape(-1, 1)
    if first:
        return np.concatenate([c, e.cols], 1), np.concatenate([v, e.vals], 1)
    return np.concatenate([e.cols, c], 1), np.concatenate([e.vals, v], 1)
