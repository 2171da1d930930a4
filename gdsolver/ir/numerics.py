"""The scale of an instance's numbers, and whether the solvers can honour them.

A tolerance means something only relative to the size of the numbers it compares:
1e-6 is generous when outputs are 1e12 and meaningless when features are 1e-9.
`ir.verify` therefore measures every violation against a scale of its own, and
`check_numerics` refuses, before any solver runs, an instance the solvers cannot
answer correctly (measured, see README "Numerical range").

Scales (all vectorised; x is the point being checked):
- a variable's magnitude m_j = max(|x_j|, |lb_j|, |ub_j| (finite ones), |start_j|):
  the size of the values it can take;
- a constraint's box magnitude A_i = sum_j |a_ij| m_j: the largest its expression can be;
- its activity at x, sum_j |a_ij x_j|: the size of the numbers actually summed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gdsolver.errors import GdsolverError
from gdsolver.ir.csr import Csr
from gdsolver.ir.instance import MilpInstance

#: widest range of significant coefficients (max |a| / min |a|) within one constraint the solvers honour.
#: Measured on final-layer instances with features scaled by 10^k (README "Numerical range"):
#: up to 1e8 HiGHS and Gurobi return the same optimum and every point verifies; at 1e9 HiGHS
#: reports OPTIMAL at objectives 10-60% worse than Gurobi's, at 1e10 Gurobi does too and HiGHS
#: returns OPTIMAL without a solution, at 1e12 both call feasible instances INFEASIBLE.
MAX_COEFFICIENT_RANGE = 1e8
#: relative resolution of verification (and of the solvers' feasibility tolerance, 1e-6 in
#: both HiGHS and Gurobi): a threshold smaller than this times its constraint's magnitude
#: cannot be told from zero.
RESOLUTION = 1e-6
#: multi-term constraints are measured against their activity at x, but never against less than
#: this fraction of their box magnitude: where every term is ~0 the activity is rounding noise.
ACTIVITY_FLOOR = 1e-3


def variable_magnitude(inst: MilpInstance, x: np.ndarray | None = None) -> np.ndarray:
    """m_j: the largest of the finite bounds' magnitudes, |start_j| and |x_j|. A variable with
    no scale of its own (bounds 0 or infinite, start 0, e.g. an error e >= 0 that is 0 now)
    takes the one its constraints imply: the size of the other terms of each row it is in,
    divided by its coefficient there."""
    m = np.zeros(inst.num_vars)
    for a in (inst.lb, inst.ub, inst.start):
        if a is not None:
            np.maximum(m, np.where(np.isfinite(a), np.abs(a), 0.0), out=m)
    none = m == 0
    if none.any():
        for mat in (inst.A, inst.ind_A):
            if mat.nnz == 0:
                continue
            a = np.abs(mat.data)
            sel = none[mat.indices] & (a > 0)
            if not sel.any():
                continue
            others = mat.row_sum(a * m[mat.indices])[mat.row_ids()[sel]]  # this variable contributes 0
            np.maximum.at(m, mat.indices[sel], others / a[sel])
    if x is not None:
        np.maximum(m, np.abs(x), out=m)
    return m


def box_magnitude(mat: Csr, m: np.ndarray) -> np.ndarray:
    """A_i = sum_j |a_ij| m_j for every row of `mat`."""
    return mat.row_sum(np.abs(mat.data) * m[mat.indices])


def constraint_scale(mat: Csr, value: np.ndarray, lo: np.ndarray, hi: np.ndarray, x: np.ndarray,
                     m: np.ndarray) -> np.ndarray:
    """The magnitude each row's violation is measured against:
    max(|violated bound|, activity at x, ACTIVITY_FLOOR * box magnitude); a single-term row
    is a bound in disguise and is measured like one (|a| m_j)."""
    with np.errstate(invalid="ignore"):
        bound = np.where(value < lo, np.abs(lo), np.where(value > hi, np.abs(hi), 0.0))
    bound = np.where(np.isfinite(bound), bound, 0.0)
    activity = mat.row_sum(np.abs(mat.data * x[mat.indices]))
    box = box_magnitude(mat, m)
    single = np.diff(mat.indptr) == 1
    floor = np.where(single, box, ACTIVITY_FLOOR * box)
    return np.maximum(np.maximum(bound, activity), floor)


def bound_scale(x: np.ndarray, lb: np.ndarray, ub: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Variables' violations are measured against max(|violated bound|, m_j)."""
    with np.errstate(invalid="ignore"):
        bound = np.where(x < lb, np.abs(lb), np.where(x > ub, np.abs(ub), 0.0))
    return np.maximum(np.where(np.isfinite(bound), bound, 0.0), m)


@dataclass(frozen=True)
class Numerics:
    """What `check_numerics` looked at: the significant coefficient range and the worst
    indicator threshold relative to its constraint's magnitude."""

    coefficient_range: tuple[float, float] | None  # (min, max) |a| of significant coefficients in the widest row
    negligible: int  # coefficients too small to matter at their row's resolution
    threshold_ratio: float | None  # min |bound| / box magnitude over indicator thresholds
    threshold: float | None = None  # that indicator's threshold, its box magnitude and label
    threshold_box: float | None = None
    threshold_where: str = ""
    range_where: str = ""  # the row (or indicator) with the widest significant range

    @property
    def range_ratio(self) -> float:
        if self.coefficient_range is None:
            return 1.0
        lo, hi = self.coefficient_range
        return hi / lo


def _widest_row(mat: Csr, m: np.ndarray) -> tuple[float, float, int, int] | None:
    """(min, max) |a| over the significant coefficients of the row where they span most, that
    row, and the number of negligible coefficients (a term whose largest contribution is below
    RESOLUTION of its row's magnitude cannot change any verdict, whatever a solver does with it;
    HiGHS, for one, drops |a| <= 1e-9)."""
    if mat.nnz == 0:
        return None
    a = np.abs(mat.data)
    contrib = a * m[mat.indices]
    box = mat.row_sum(contrib)
    keep = (contrib >= RESOLUTION * box[mat.row_ids()]) & (a > 0)
    negligible = int(np.count_nonzero(~keep & (a > 0)))
    starts = mat.indptr[:-1][np.diff(mat.indptr) > 0]
    rows = np.flatnonzero(np.diff(mat.indptr) > 0)
    lo = np.minimum.reduceat(np.where(keep, a, np.inf), starts)
    hi = np.maximum.reduceat(np.where(keep, a, 0.0), starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(np.isfinite(lo) & (lo > 0), hi / lo, 1.0)
    i = int(np.argmax(ratio))
    return float(lo[i]) if np.isfinite(lo[i]) else 1.0, float(hi[i]) or 1.0, int(rows[i]), negligible


def numerics(inst: MilpInstance) -> Numerics:
    """The widest range of significant coefficients within one constraint, and the resolution of
    indicator thresholds. Within a row, because that is what no scaling removes: solvers scale
    rows (and columns) to similar size, but a row mixing 1e12 and 1 stays a row mixing them."""
    m = variable_magnitude(inst)
    crange, where, negligible, best = None, "", 0, 1.0
    for mat, label in ((inst.A, inst.row_label), (inst.ind_A, inst.ind_label)):
        got = _widest_row(mat, m)
        if got is None:
            continue
        lo, hi, row, neg = got
        negligible += neg
        if crange is None or hi / lo > best:
            crange, where, best = (lo, hi), label(row), hi / lo
    ratio, thr_value, thr_box, thr_where = None, None, None, ""
    if inst.num_indicators:
        box = box_magnitude(inst.ind_A, m)
        worst = np.full(inst.num_indicators, np.inf)
        value = np.zeros(inst.num_indicators)
        for bound in (inst.ind_lo, inst.ind_hi):
            thr = np.isfinite(bound) & (bound != 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(thr & (box > 0), np.abs(bound) / box, np.inf)
            value = np.where(r < worst, bound, value)
            np.minimum(worst, r, out=worst)
        if np.isfinite(worst).any():
            i = int(np.argmin(worst))
            ratio, thr_value, thr_box, thr_where = float(worst[i]), float(value[i]), float(box[i]), inst.ind_label(i)
    return Numerics(crange, negligible, ratio, thr_value, thr_box, thr_where, where)


def check_numerics(inst: MilpInstance) -> Numerics:
    """Refuse (GdsolverError, one line with the numbers) an instance whose numbers the solvers
    cannot honour: significant coefficients within one constraint spanning more than
    MAX_COEFFICIENT_RANGE, or an indicator
    threshold (e.g. a classification margin) below RESOLUTION times its expression's magnitude,
    which neither a solver nor `verify` can tell from zero."""
    num = numerics(inst)
    if num.range_ratio > MAX_COEFFICIENT_RANGE:
        lo, hi = num.coefficient_range  # type: ignore[misc]
        raise GdsolverError(
            f"instance: the coefficients of {num.range_where} range over [{lo:.3g}, {hi:.3g}], a span of {hi / lo:.2g}, "
            f"more than the {MAX_COEFFICIENT_RANGE:g} the solvers answer correctly; rescale the data (e.g. "
            "standardise the features)")
    if num.threshold_ratio is not None and num.threshold_ratio < RESOLUTION:
        raise GdsolverError(
            f"instance: indicator {num.threshold_where} has threshold {num.threshold:.3g} but its expression reaches "
            f"{num.threshold_box:.3g}; below {RESOLUTION:g} of that, neither the solvers nor verification can tell "
            f"it from 0 (use a margin >= {RESOLUTION * num.threshold_box:.2g} or rescale the data)")
    return num
