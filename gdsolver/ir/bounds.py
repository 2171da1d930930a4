"""Interval bounds of linear expressions over the variable box (vectorised).

For a row a.x with lb <= x <= ub the exact interval is
    [sum_i min(a_i lb_i, a_i ub_i), sum_i max(a_i lb_i, a_i ub_i)].
In the final-layer formulations every expression is linear in the boxed weights
(the features H are data), so these intervals are exact, and they are what
`ir.lower` uses as big-M constants.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from gdsolver.ir.csr import Csr


class IndicatorRows(Protocol):
    """What the indicator bounds read of an instance (a MilpInstance is one): the box and the
    indicator rows. A protocol, not MilpInstance, so that instance.py can import this module."""

    lb: np.ndarray
    ub: np.ndarray
    ind_A: Csr
    ind_lo: np.ndarray
    ind_hi: np.ndarray

    @property
    def num_indicators(self) -> int: ...


_BLOCK = 1 << 22  # entries per block of rows: the gathers and products are six arrays of that size


def row_bounds(mat: Csr, lb: np.ndarray, ub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper interval bound of every row of `mat`; +-inf where unbounded. Computed in
    blocks of rows of about _BLOCK entries, so that the temporaries stay small beside the matrix
    (each row's sum is the same, bit for bit, whatever block it is in)."""
    if mat.nnz <= _BLOCK:
        return _row_bounds(mat, lb, ub)
    low, high = np.empty(mat.nrows), np.empty(mat.nrows)
    r = 0
    while r < mat.nrows:
        e = int(np.searchsorted(mat.indptr, mat.indptr[r] + _BLOCK, side="right")) - 1
        e = min(max(e, r + 1), mat.nrows)
        s0, s1 = int(mat.indptr[r]), int(mat.indptr[e])
        sub = Csr(mat.indptr[r:e + 1] - s0, mat.indices[s0:s1], mat.data[s0:s1], mat.ncols)
        low[r:e], high[r:e] = _row_bounds(sub, lb, ub)
        r = e
    return low, high


def _row_bounds(mat: Csr, lb: np.ndarray, ub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = mat.data
    lo_x, hi_x = lb[mat.indices], ub[mat.indices]
    with np.errstate(invalid="ignore"):  # 0 * inf is nan: a zero coefficient contributes 0
        at_lo, at_hi = a * lo_x, a * hi_x
    at_lo[a == 0] = 0.0
    at_hi[a == 0] = 0.0
    # min contributions are never +inf and max contributions never -inf: sums cannot be nan
    low = mat.row_sum(np.minimum(at_lo, at_hi))
    high = mat.row_sum(np.maximum(at_lo, at_hi))
    return low, high


def indicator_bounds(inst: IndicatorRows) -> tuple[np.ndarray, np.ndarray]:
    """Interval bounds of every indicator expression ind_A x."""
    return row_bounds(inst.ind_A, inst.lb, inst.ub)


def indicator_big_m(inst: IndicatorRows) -> dict[str, Any]:
    """The big-M constants lowering would use: range over finite ones and the count of
    sides that would need an infinite M (those make lowering fail)."""
    if inst.num_indicators == 0:
        return {"range": None, "infinite": 0}
    low, high = indicator_bounds(inst)
    lo_side = np.isfinite(inst.ind_lo) & (low < inst.ind_lo)
    hi_side = np.isfinite(inst.ind_hi) & (high > inst.ind_hi)
    with np.errstate(invalid="ignore"):
        ms = np.concatenate([(inst.ind_lo - low)[lo_side], (high - inst.ind_hi)[hi_side]])
    finite = ms[np.isfinite(ms)]
    return {
        "range": [float(finite.min()), float(finite.max())] if len(finite) else None,
        "infinite": int(np.count_nonzero(~np.isfinite(ms))),
    }
