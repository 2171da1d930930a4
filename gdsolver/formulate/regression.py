"""Regression formulations of the final layer (paper's Figure 2, made explicit).

mode "l1" (default): minimise sum_tj |o_tj - y_tj| over the weight box, with
    e_tj >= o_tj - y_tj and e_tj >= y_tj - o_tj. With an identity output this is an
    LP; the current weights are feasible, so a sweep never returns a worse L1.
mode "paper": feasibility of |o_tj - y_tj| <= max(|o0_tj - y_tj| - margin, 0), the
    paper's form (every point must do at least `margin` better, or stay exact).
"""

from __future__ import annotations

import numpy as np

from gdsolver.errors import GdsolverError
from gdsolver.formulate.layer import add_outputs, add_weight_box, as_finite_array, base_meta, check_layer, triplets
from gdsolver.ir.instance import InstanceBuilder, MilpInstance

REGRESSION_MODES = ("l1", "paper")


def regression(W, b, H, Y, *, radius: float, activation: str = "identity", mode: str = "l1",
               margin: float = 0.0, fix_bias: bool = False) -> MilpInstance:
    """Final-layer regression MILP. W (M, N), b (M,), H (T, N), Y (T, M) or (T,) when M = 1."""
    W, b, H, radius = check_layer(W, b, H, radius, activation)
    T, M = H.shape[0], W.shape[0]
    Y = as_finite_array("y", Y, (1, 2))
    if Y.ndim == 1 and M == 1:
        Y = Y[:, None]
    if Y.shape != (T, M):
        raise GdsolverError(f"y: shape {Y.shape} does not match H {H.shape} and W {W.shape}, expected ({T}, {M})"
                            + (" or (T,)" if M == 1 else ""))
    if mode not in REGRESSION_MODES:
        raise GdsolverError(f"mode: {mode!r} is not a regression mode, expected one of {list(REGRESSION_MODES)}")
    margin = float(margin)
    if not np.isfinite(margin) or margin < 0:
        raise GdsolverError(f"margin: must be a finite number >= 0, got {margin}")

    bld = InstanceBuilder()
    w, bb = add_weight_box(bld, W, b, radius, fix_bias)
    out = add_outputs(bld, W, b, H, radius, activation, w, bb, fix_bias)
    err0 = np.abs(out.o0 - Y)
    t, j = (g.ravel() for g in np.meshgrid(np.arange(T), np.arange(M), indexing="ij"))
    cols, vals = out.expr(t, j)
    meta = base_meta("regression", mode, activation, radius, margin, W, H, fix_bias)
    meta["current_l1"] = float(err0.sum())
    meta["current_mse"] = float((err0**2).mean())

    if mode == "l1":
        e = bld.add_block("e", (T, M), lb=0.0, cost=1.0, start=err0).ravel()
        one = np.ones((len(t), 1))
        # e - o >= -y  and  e + o >= y
        bld.add_rows("fit_above", *triplets(np.concatenate([cols, e[:, None]], 1), np.concatenate([-vals, one], 1)),
                     len(t), lo=-Y.ravel(), hi=np.inf)
        bld.add_rows("fit_below", *triplets(np.concatenate([cols, e[:, None]], 1), np.concatenate([vals, one], 1)),
                     len(t), lo=Y.ravel(), hi=np.inf)
        meta["current_objective"] = meta["current_l1"]
        return bld.build("min", meta=meta)

    max_loss = np.maximum(err0 - margin, 0.0).ravel()
    bld.add_rows("fit", *triplets(cols, vals), len(t), lo=Y.ravel() - max_loss, hi=Y.ravel() + max_loss)
    meta["max_loss_clipped"] = int(np.count_nonzero(err0.ravel() - margin < 0))
    meta["current_objective"] = 0.0
    return bld.build("min", meta=meta)
