"""The closest optimal point: keep a solution's integer decisions and its objective, and
move the chosen blocks (the weights) as little as possible (L1) toward a reference (the
current weights).

Why: a solver returns *some* optimum, typically a vertex at the edge of the weight box.
For a classification sweep every optimum fixes the same number of points, but one at the
box's corner changes the network far more than needed, which costs validation loss the
solver does not see. This LP picks, among the weights that keep the MIP's decisions, the
ones nearest the weights GD found."""

from __future__ import annotations

import dataclasses

import numpy as np

from gdsolver.errors import GdsolverError
from gdsolver.ir.csr import Csr
from gdsolver.ir.instance import CONTINUOUS, MilpInstance


def closest_instance(inst: MilpInstance, x: np.ndarray, *, blocks: tuple[str, ...] = ("w", "b"),
                     reference: np.ndarray | None = None, objective_slack: float = 1e-9) -> MilpInstance:
    """An LP over inst's variables plus one deviation variable d_i per variable of `blocks`:
    minimise sum d_i, d_i >= |x_i - ref_i|, with every integer variable fixed at its value
    in x and the original objective no worse than at x (up to a relative slack).
    The first inst.num_vars entries of its solution are a solution of `inst`."""
    ref = inst.start if reference is None else np.asarray(reference, dtype=np.float64)
    if ref is None:
        raise GdsolverError("closest_instance: the instance has no start and no reference was given")
    x = np.asarray(x, dtype=np.float64)
    n = inst.num_vars
    if x.shape != (n,) or ref.shape != (n,):
        raise GdsolverError(f"closest_instance: x and reference must have shape ({n},)")
    missing = [b for b in blocks if b not in inst.blocks]
    if missing:
        raise GdsolverError(f"closest_instance: instance has no block(s) {missing}")
    idx = np.concatenate([np.arange(inst.blocks[b][0], inst.blocks[b][0] + int(np.prod(inst.blocks[b][1])))
                          for b in blocks]).astype(np.int64)
    k = len(idx)
    lb, ub = inst.lb.copy(), inst.ub.copy()
    integer = inst.vtype != CONTINUOUS
    fixed = np.round(x[integer])
    lb[integer] = ub[integer] = fixed
    # rows: d - x_i >= -ref_i ; d + x_i >= ref_i ; objective row c.x no worse than at x
    rows = np.repeat(np.arange(2 * k), 2)
    d_cols = n + np.arange(k)
    cols = np.stack([np.concatenate([d_cols, d_cols]), np.concatenate([idx, idx])], 1).ravel()
    vals = np.stack([np.ones(2 * k), np.concatenate([-np.ones(k), np.ones(k)])], 1).ravel()
    dev = Csr.from_coo(rows, cols, vals, 2 * k, n + k)
    obj_nz = np.flatnonzero(inst.c)
    obj_row = Csr.from_coo(np.zeros(len(obj_nz), np.int64), obj_nz, inst.c[obj_nz], 1, n + k)
    at_x = float(inst.c @ x)
    slack = objective_slack * max(1.0, abs(at_x))
    obj_lo, obj_hi = (-np.inf, at_x + slack) if inst.sense == "min" else (at_x - slack, np.inf)
    A = Csr.vstack([Csr(inst.A.indptr, inst.A.indices, inst.A.data, n + k), dev, obj_row], n + k)
    ind_A = Csr(inst.ind_A.indptr, inst.ind_A.indices, inst.ind_A.data, n + k)
    start = np.concatenate([x, np.abs(x[idx] - ref[idx])])
    start[:n][integer] = fixed
    meta = {**inst.meta, "closest": {"blocks": list(blocks), "objective_at_x": at_x}}
    return dataclasses.replace(
        inst,
        blocks={**inst.blocks, "closest_dev": (n, (k,))},
        lb=np.concatenate([lb, np.zeros(k)]), ub=np.concatenate([ub, np.full(k, np.inf)]),
        vtype=np.concatenate([inst.vtype, np.full(k, CONTINUOUS, np.uint8)]),  # integers stay typed, but fixed
        A=A,
        row_lo=np.concatenate([inst.row_lo, np.concatenate([-ref[idx], ref[idx]]), [obj_lo]]),
        row_hi=np.concatenate([inst.row_hi, np.full(2 * k, np.inf), [obj_hi]]),
        ind_A=ind_A,
        c=np.concatenate([np.zeros(n), np.ones(k)]), c0=0.0, sense="min", start=start, meta=meta,
        row_groups={**inst.row_groups, "closest_dev": (inst.num_rows, 2 * k),
                    "closest_objective": (inst.num_rows + 2 * k, 1)},
    )
