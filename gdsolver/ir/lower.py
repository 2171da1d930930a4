"""Lowering: indicator constraints -> big-M rows, with M from exact interval bounds.

For indicator  z == 1 => lo <= a.x <= hi  and  L <= a.x <= U  over the box:
    lo side:  a.x + (L - lo) z >= L        (z = 1 gives a.x >= lo; z = 0 gives a.x >= L, always true)
    hi side:  a.x + (U - hi) z <= U
and for z == 0 => ... the same with z replaced by 1 - z:
    lo side:  a.x + (lo - L) z >= lo
    hi side:  a.x + (hi - U) z <= hi
A side whose bound already implies it (L >= lo, U <= hi) needs no row. An infinite
L or U is an error naming the indicator: never a silent huge constant.
No variables are added, so a solution of the lowered instance is a solution vector
of the original one (the map back is the identity on x).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gdsolver.errors import GdsolverError
from gdsolver.ir.bounds import indicator_bounds
from gdsolver.ir.csr import Csr
from gdsolver.ir.instance import MilpInstance


@dataclass(frozen=True)
class LoweringMap:
    """Where the lowered rows came from: rows first_row.. of the lowered instance are
    indicator `indicator[i]`, side `side[i]` (0 = lo, 1 = hi)."""

    first_row: int
    indicator: np.ndarray
    side: np.ndarray

    def solution_to_original(self, x: np.ndarray) -> np.ndarray:
        return x  # lowering adds no variables


def lower(inst: MilpInstance) -> tuple[MilpInstance, LoweringMap]:
    """Return an equivalent instance without indicators, plus the map back."""
    k = inst.num_indicators
    if k == 0:
        return inst, LoweringMap(inst.num_rows, np.zeros(0, np.int64), np.zeros(0, np.uint8))
    low, high = indicator_bounds(inst)
    lo, hi = inst.ind_lo, inst.ind_hi
    need_lo = np.isfinite(lo) & (low < lo)
    need_hi = np.isfinite(hi) & (high > hi)
    for need, bound, side in ((need_lo, low, "lower"), (need_hi, high, "upper")):
        bad = need & ~np.isfinite(bound)
        if np.any(bad):
            i = int(np.argmax(bad))
            raise GdsolverError(
                f"cannot lower indicator {inst.ind_label(i)} (on {inst.var_label(inst.ind_var[i])}) to big-M: "
                f"its expression has an infinite {side} bound over the variable box; bound the variables it uses"
            )
    z = inst.ind_var.astype(np.int64)
    one = inst.ind_val == 1

    lo_idx = np.flatnonzero(need_lo)
    lo_coef = np.where(one[lo_idx], low[lo_idx] - lo[lo_idx], lo[lo_idx] - low[lo_idx])
    lo_rhs = np.where(one[lo_idx], low[lo_idx], lo[lo_idx])
    lo_rows = inst.ind_A.take_rows(lo_idx).with_extra_column_entries(z[lo_idx], lo_coef)

    hi_idx = np.flatnonzero(need_hi)
    hi_coef = np.where(one[hi_idx], high[hi_idx] - hi[hi_idx], hi[hi_idx] - high[hi_idx])
    hi_rhs = np.where(one[hi_idx], high[hi_idx], hi[hi_idx])
    hi_rows = inst.ind_A.take_rows(hi_idx).with_extra_column_entries(z[hi_idx], hi_coef)

    m0 = inst.num_rows
    if np.any(inst.ind_A.indices == inst.ind_var[inst.ind_A.row_ids()]):
        # an indicator's binary inside its own expression: one entry per column, as solvers require
        lo_rows, hi_rows = lo_rows.sum_duplicates(), hi_rows.sum_duplicates()
    A = Csr.vstack([inst.A, lo_rows, hi_rows], inst.num_vars)
    row_lo = np.concatenate([inst.row_lo, lo_rhs, np.full(len(hi_idx), -np.inf)])
    row_hi = np.concatenate([inst.row_hi, np.full(len(lo_idx), np.inf), hi_rhs])
    row_groups = dict(inst.row_groups)
    row_groups["bigm_lo"] = (m0, len(lo_idx))
    row_groups["bigm_hi"] = (m0 + len(lo_idx), len(hi_idx))
    empty = Csr.empty(inst.num_vars)
    lowered = replace(
        inst, A=A, row_lo=row_lo, row_hi=row_hi,
        ind_var=np.zeros(0, np.int32), ind_val=np.zeros(0, np.uint8), ind_A=empty,
        ind_lo=np.zeros(0), ind_hi=np.zeros(0), row_groups=row_groups, ind_groups={},
        meta={**inst.meta, "lowered_indicators": k},
    )
    mapping = LoweringMap(
        m0, np.concatenate([lo_idx, hi_idx]),
        np.concatenate([np.zeros(len(lo_idx), np.uint8), np.ones(len(hi_idx), np.uint8)]),
    )
    return lowered, mapping
