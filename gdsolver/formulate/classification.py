"""Classification formulations of the final layer (paper's Figure 3, made explicit).

Point t is correct when o_t,label - o_t,j >= margin for every j != label (strict
inequality made a margin). Maximise the number of correct points over the weight
box, subject to that number being >= what the current weights reach (so the current
weights are a feasible MIP start).

mode "paper":   binaries s_tj (T, M) and c_t (T,);  s_tj = 1 => o_tl - o_tj >= margin;
                c_t = 1 => sum_{j != l} s_tj >= M - 1.  (s_t,label is fixed to 0.)
mode "compact": binaries c_t only;  c_t = 1 => o_tl - o_tj >= margin for all j != l.
Both have the same optimum; `compact` has T (M - 1) fewer binaries.
"""

from __future__ import annotations

import numpy as np

from gdsolver.errors import GdsolverError
from gdsolver.formulate.layer import add_outputs, add_weight_box, base_meta, check_layer, forward, triplets
from gdsolver.ir.instance import BINARY, InstanceBuilder, MilpInstance

CLASSIFICATION_MODES = ("paper", "compact")


def correct_mask(o: np.ndarray, labels: np.ndarray, margin: float) -> np.ndarray:
    """Points whose label output beats every other output by at least `margin`."""
    T = o.shape[0]
    true = o[np.arange(T), labels]
    others = o.copy()
    others[np.arange(T), labels] = -np.inf
    return true - others.max(axis=1) >= margin


def classification(W, b, H, labels, *, radius: float, activation: str = "identity", mode: str = "paper",
                   margin: float = 1e-3, keep_correct=None, fix_bias: bool = False) -> MilpInstance:
    """Final-layer classification MILP. W (M, N), b (M,), H (T, N), labels (T,) in [0, M)."""
    W, b, H, radius = check_layer(W, b, H, radius, activation)
    T, M = H.shape[0], W.shape[0]
    if M < 2:
        raise GdsolverError(f"W: classification needs at least 2 outputs (classes), got M = {M}")
    labels = check_labels(labels, M, T)
    if mode not in CLASSIFICATION_MODES:
        raise GdsolverError(f"mode: {mode!r} is not a classification mode, expected one of {list(CLASSIFICATION_MODES)}")
    margin = float(margin)
    if not np.isfinite(margin) or margin < 0:
        raise GdsolverError(f"margin: must be a finite number >= 0, got {margin}")

    o0 = forward(W, b, H, activation)
    correct0 = correct_mask(o0, labels, margin)
    keep = _check_keep(keep_correct, T, correct0, margin)

    bld = InstanceBuilder()
    w, bb = add_weight_box(bld, W, b, radius, fix_bias)
    out = add_outputs(bld, W, b, H, radius, activation, w, bb, fix_bias)

    # pairs (t, j != label_t), row-major in t
    t, j = (g.ravel() for g in np.meshgrid(np.arange(T), np.arange(M), indexing="ij"))
    other = j != labels[t]
    t, j = t[other], j[other]
    true_cols, true_vals = out.expr(t, labels[t])
    j_cols, j_vals = out.expr(t, j)
    diff_cols = np.concatenate([true_cols, j_cols], 1)
    diff_vals = np.concatenate([true_vals, -j_vals], 1)
    pair_ok0 = (o0[t, labels[t]] - o0[t, j]) >= margin

    c_lb = np.zeros(T)
    c_lb[keep] = 1.0
    if mode == "paper":
        s_lb = np.zeros((T, M))
        s_ub = np.ones((T, M))
        s_ub[np.arange(T), labels] = 0.0  # no s for the label itself
        s_start = np.zeros((T, M))
        s_start[t, j] = pair_ok0
        s = bld.add_block("s", (T, M), lb=s_lb, ub=s_ub, vtype=BINARY, start=s_start)
    c = bld.add_block("c", (T,), lb=c_lb, ub=1.0, vtype=BINARY, cost=1.0, start=correct0.astype(float))
    if mode == "paper":
        bld.add_indicators("pair_margin", s[t, j], 1, *triplets(diff_cols, diff_vals), lo=margin, hi=np.inf)
        s_cols = s[t, j].reshape(T, M - 1)
        bld.add_indicators("all_pairs", c, 1, *triplets(s_cols, np.ones((T, M - 1))), lo=M - 1, hi=np.inf)
    else:
        bld.add_indicators("margin", c[t], 1, *triplets(diff_cols, diff_vals), lo=margin, hi=np.inf)
    count0 = int(correct0.sum())
    bld.add_rows("no_worse", *triplets(c[None, :], np.ones((1, T))), 1, lo=count0, hi=np.inf)

    meta = base_meta("classification", mode, activation, radius, margin, W, H, fix_bias)
    meta.update(current_correct=count0, current_objective=float(count0), keep_correct=[int(i) for i in keep])
    return bld.build("max", meta=meta)


def check_labels(labels, M: int, T: int | None = None, name: str = "labels") -> np.ndarray:
    """Integer class labels in [0, M) as int64 (one per point when T is given);
    GdsolverError naming `name` and the problem otherwise."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or (T is not None and len(arr) != T):
        expected = f"({T},)" if T is not None else "a 1-D array"
        raise GdsolverError(f"{name}: class labels have shape {arr.shape}, expected {expected} (labels must be 1-D)")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise GdsolverError(f"{name}: expected integer class labels, got non-integer values")
    elif arr.dtype.kind not in "iu":
        raise GdsolverError(f"{name}: expected integer class labels, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr >= M)
    if bad.any():
        raise GdsolverError(f"{name}: label {int(arr[bad][0])} is out of range, expected 0..{M - 1} "
                            f"(the layer has {M} outputs)")
    return arr


def _check_keep(keep_correct, T: int, correct0: np.ndarray, margin: float) -> np.ndarray:
    if keep_correct is None:
        return np.zeros(0, np.int64)
    keep = np.unique(np.asarray(keep_correct, dtype=np.int64).ravel())
    if len(keep) and (keep.min() < 0 or keep.max() >= T):
        raise GdsolverError(f"keep_correct: index out of range, expected 0..{T - 1}")
    wrong = keep[~correct0[keep]]
    if len(wrong):
        raise GdsolverError(f"keep_correct: point {int(wrong[0])} is not correct with margin {margin} "
                            f"under the current weights ({len(wrong)} such points); only correct points can be kept")
    return keep
