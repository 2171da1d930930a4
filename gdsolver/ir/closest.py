"""The closest optimal point: keep a solution's integer decisions and its objective, and
move the chosen blocks (the weights) as little as possible (L1) toward a reference (the
current weights).

Why: a solver returns *some* optimum, typically a vertex at the edge of the weight box.
For a classification sweep every optimum fixes the same number of points, but one at the
box's corner changes the network far more than needed, which costs validation loss the
solver does not see. This LP picks, among the weights that keep the MIP's decisions, the
ones nearest the weights GD found.

How it stays cheap (it follows every sweep, so it must not cost more than the MIP): with
the integers fixed, an indicator is either a plain row (its binary takes the indicator's
value) or void (it does not), so no big-M row and no integer variable is left and the
solver runs an LP. The moved variables are written x = ref + p - q (p, q >= 0, minimise
sum p + q) and substituted into every row, so the dense rows see p and q only and x is
tied to them by one equality row each, which presolve removes; rows over fixed variables
alone are constants and are dropped. The alternative, d >= |x - ref| as two rows per
weight, gives the simplex a basis twice the number of weights: 4.4 s instead of 0.2 s on
a 512 x 10 head (benchmarks/results/closest.md).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gdsolver.errors import GdsolverError
from gdsolver.ir.csr import Csr
from gdsolver.ir.instance import CONTINUOUS, MilpInstance

_OTHER, _FIXED, _MOVED = 0, 1, 2


def closest_instance(inst: MilpInstance, x: np.ndarray, *, blocks: tuple[str, ...] = ("w", "b"),
                     reference: np.ndarray | None = None, objective_slack: float = 1e-9) -> MilpInstance:
    """An LP over inst's variables plus, per variable of `blocks`, an upward and a downward
    move p_i, q_i >= 0 with x_i = ref_i + p_i - q_i: minimise sum (p_i + q_i), with every
    integer variable fixed at its (rounded) value in x, the indicators those values switch
    on as plain rows, and the original objective no worse than at x (up to a relative
    slack). `x` must be a solution of `inst`. The first inst.num_vars entries of the LP's
    solution are a solution of `inst`; its objective is the L1 distance moved."""
    ref, idx = _moved(inst, x, reference, blocks)
    n, k = inst.num_vars, len(idx)
    integer = inst.vtype != CONTINUOUS
    xf = np.asarray(x, dtype=np.float64).copy()
    xf[integer] = np.round(xf[integer])
    pinned = (inst.lb == inst.ub) & ~integer
    xf[pinned] = inst.lb[pinned]
    lb, ub = inst.lb.copy(), inst.ub.copy()
    lb[integer] = ub[integer] = xf[integer]
    R, lo, hi, source, on, at_x = _kept_rows(inst, xf, objective_slack)

    # substitute: fixed variables are constants, a moved one is ref + p - q
    role = np.full(n, _OTHER, np.int8)
    role[integer | (lb == ub)] = _FIXED
    role[idx] = _MOVED
    base = np.where(role == _FIXED, xf, 0.0)
    base[idx] = ref[idx]
    A, row_lo, row_hi, keep = _substituted(R, lo, hi, role, base, idx, ref)
    m = len(keep)

    up, down = np.maximum(xf[idx] - ref[idx], 0.0), np.maximum(ref[idx] - xf[idx], 0.0)
    counts = np.bincount(source[keep], minlength=3)
    groups = {"closest_rows": (0, int(counts[0])), "closest_indicators": (int(counts[0]), int(counts[1])),
              "closest_objective": (int(counts[0] + counts[1]), int(counts[2])), "closest_link": (m, k)}
    meta = {**inst.meta, "closest": {"blocks": list(blocks), "objective_at_x": at_x,
                                     "rows_dropped": int(R.nrows - m),
                                     "indicators_void": int(inst.num_indicators - len(on))}}
    return dataclasses.replace(
        inst,
        blocks={**inst.blocks, "closest_up": (n, (k,)), "closest_down": (n + k, (k,))},
        lb=np.concatenate([lb, np.zeros(2 * k)]),
        ub=np.concatenate([ub, np.maximum(ub[idx] - ref[idx], 0.0), np.maximum(ref[idx] - lb[idx], 0.0)]),
        vtype=np.full(n + 2 * k, CONTINUOUS, np.uint8),  # the integers are fixed: an LP
        A=A, row_lo=row_lo, row_hi=row_hi,
        ind_var=np.zeros(0, np.int32), ind_val=np.zeros(0, np.uint8), ind_A=Csr.empty(n + 2 * k),
        ind_lo=np.zeros(0), ind_hi=np.zeros(0),
        c=np.concatenate([np.zeros(n), np.ones(2 * k)]), c0=0.0, sense="min",
        start=np.concatenate([xf, up, down]), meta=meta,
        row_groups={g: v for g, v in groups.items() if v[1]}, ind_groups={},
    )


def _moved(inst: MilpInstance, x: np.ndarray, reference: np.ndarray | None,
           blocks: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(the reference point, the variable ids of `blocks`), checked."""
    ref = inst.start if reference is None else np.asarray(reference, dtype=np.float64)
    if ref is None:
        raise GdsolverError("closest_instance: the instance has no start and no reference was given")
    n = inst.num_vars
    if np.shape(x) != (n,) or ref.shape != (n,):
        raise GdsolverError(f"closest_instance: x and reference must have shape ({n},)")
    missing = [b for b in blocks if b not in inst.blocks]
    if missing:
        raise GdsolverError(f"closest_instance: instance has no block(s) {missing}")
    idx = np.concatenate([np.arange(inst.blocks[b][0], inst.blocks[b][0] + int(np.prod(inst.blocks[b][1])))
                          for b in blocks]).astype(np.int64)
    if np.any(inst.vtype[idx] != CONTINUOUS):
        raise GdsolverError(f"closest_instance: block(s) {list(blocks)} hold integer variables; only continuous "
                            "variables can be moved")
    return ref, idx


def _kept_rows(inst: MilpInstance, xf: np.ndarray,
               objective_slack: float) -> tuple[Csr, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Every constraint the LP keeps, over the original variables: the rows, the indicators
    that the fixed binaries in xf switch on, and the objective bound. (rows, lo, hi, the kind
    of each row (0 row, 1 indicator, 2 objective), the indicators on, the objective at xf)."""
    n = inst.num_vars
    on = np.flatnonzero(np.round(xf[inst.ind_var]) == inst.ind_val) if inst.num_indicators else \
        np.zeros(0, np.int64)
    at_x = float(inst.c @ xf)
    slack = objective_slack * max(1.0, abs(at_x))
    obj_lo, obj_hi = (-np.inf, at_x + slack) if inst.sense == "min" else (at_x - slack, np.inf)
    obj_nz = np.flatnonzero(inst.c)
    obj_row = Csr.from_coo(np.zeros(len(obj_nz), np.int64), obj_nz, inst.c[obj_nz], 1, n)
    R = Csr.vstack([inst.A, inst.ind_A.take_rows(on), obj_row], n)
    lo = np.concatenate([inst.row_lo, inst.ind_lo[on], [obj_lo]])
    hi = np.concatenate([inst.row_hi, inst.ind_hi[on], [obj_hi]])
    source = np.repeat(np.arange(3), [inst.num_rows, len(on), 1])
    return R, lo, hi, source, on, at_x


def _substituted(R: Csr, lo: np.ndarray, hi: np.ndarray, role: np.ndarray, base: np.ndarray, idx: np.ndarray,
                 ref: np.ndarray) -> tuple[Csr, np.ndarray, np.ndarray, np.ndarray]:
    """The rows R with the fixed variables as constants (base) and each moved variable x_i
    (idx) as ref_i + p_i - q_i, rows over fixed variables alone dropped, and the link rows
    x_i - p_i + q_i = ref_i appended: (A, row_lo, row_hi, the rows of R kept)."""
    n, k = len(role), len(idx)
    pos = np.full(n, -1, np.int64)
    pos[idx] = np.arange(k)
    rid, col, val = R.row_ids(), R.indices.astype(np.int64), R.data
    const = R.row_sum(val * base[col])
    r = role[col]
    live = np.bincount(rid[r != _FIXED], minlength=R.nrows) > 0  # rows over fixed variables alone are constants
    other, moved = r == _OTHER, r == _MOVED
    rows = np.concatenate([rid[other], rid[moved], rid[moved]])
    cols = np.concatenate([col[other], n + pos[col[moved]], n + k + pos[col[moved]]])
    vals = np.concatenate([val[other], val[moved], -val[moved]])
    keep = np.flatnonzero(live)
    new_row = np.full(R.nrows, -1, np.int64)
    new_row[keep] = np.arange(len(keep))
    sel = live[rows]
    m = len(keep)
    link_rows = m + np.repeat(np.arange(k), 3)
    link_cols = np.stack([idx, n + np.arange(k), n + k + np.arange(k)], 1).ravel()
    link_vals = np.tile([1.0, -1.0, 1.0], k)
    A = Csr.from_coo(np.concatenate([new_row[rows[sel]], link_rows]), np.concatenate([cols[sel], link_cols]),
                     np.concatenate([vals[sel], link_vals]), m + k, n + 2 * k)
    with np.errstate(invalid="ignore"):  # inf - const stays inf
        row_lo = np.concatenate([(lo - const)[keep], ref[idx]])
        row_hi = np.concatenate([(hi - const)[keep], ref[idx]])
    return A, row_lo, row_hi, keep
