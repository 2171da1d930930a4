"""A sweep of dense layer k of a chain: layer k's weights are variables in a box around their
current values, its inputs H (T, N_k) are data (the network's prefix and layers < k ran
forward once), every later layer is encoded exactly with fixed weights, and a head puts the
objective on the network's outputs.

The instance carries what a forward pass needs to re-check its claims without any training
code (`inst.data`: the inputs H, the targets, every layer's weights from k on; see
gdsolver.formulate.claims).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gdsolver._version import __version__
from gdsolver.errors import GdsolverError
from gdsolver.formulate import heads
from gdsolver.formulate.encoders import encode_chain
from gdsolver.formulate.head_table import DEFAULT_MARGIN, Head, HeadInput, head_for
from gdsolver.formulate.tighten import bounds_data, lp_bounds
# the heads' names and defaults, also importable from here (the command line reads them here)
from gdsolver.formulate.head_table import CLASSIFICATION_MODES, DEFAULT_MODE, REGRESSION_MODES, SMOOTH_MODES  # noqa: F401
from gdsolver.modeldef import TASKS, Dense, as_finite_array, check_chain, forward_chain
from gdsolver.ir.instance import InstanceBuilder, MilpInstance

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
    elif arr.dtype.kind not in "iub":
        raise GdsolverError(f"{name}: expected integer class labels, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr >= M)
    if bad.any():
        raise GdsolverError(f"{name}: label {int(arr[bad][0])} is out of range, expected 0..{M - 1} "
                            f"(the layer has {M} outputs)")
    return arr


def check_targets(Y, T: int, M: int) -> np.ndarray:
    """Regression targets (T, M) float64; (T,) accepted when M = 1."""
    Y = as_finite_array("y", Y, (1, 2))
    if Y.ndim == 1 and M == 1:
        Y = Y[:, None]
    if Y.shape != (T, M):
        raise GdsolverError(f"y: shape {Y.shape} does not match {T} points and {M} outputs, expected ({T}, {M})"
                            + (" or (T,)" if M == 1 else ""))
    return Y


def _check_radius(radius) -> float:
    try:
        radius = float(radius)
    except (TypeError, ValueError):
        raise GdsolverError(f"radius: expected a number, got {radius!r}") from None
    if not np.isfinite(radius) or radius <= 0:
        raise GdsolverError(f"radius: must be a finite number > 0, got {radius}")
    return radius


def _check_margin(margin) -> float:
    margin = float(margin)
    if not np.isfinite(margin) or margin < 0:
        raise GdsolverError(f"margin: must be a finite number >= 0, got {margin}")
    return margin


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


def sweep_instance(layers: Sequence[Dense], k: int, H, y, *, task: str, radius: float, mode: str | None = None,
                   margin: float | None = None, keep_correct=None, fix_bias: bool = False,
                   anchors: np.ndarray | None = None, correct: np.ndarray | None = None,
                   start_at: tuple[np.ndarray, np.ndarray] | None = None,
                   units: Sequence[int] | np.ndarray | None = None, tighten: float | None = None,
                   bounds: dict[int, tuple[np.ndarray, np.ndarray]] | None = None) -> MilpInstance:
    """The MILP of a sweep of layer k (0-based; negative counts from the end) of `layers`.

    H (T, N_k): inputs of layer k for the sweep's points. y: class labels (T,) for
    classification, targets (T, M_out) (or (T,) for one output) for regression.
    mode (the head, see gdsolver.formulate.head_table): classification "ce" (default) | "paper" |
    "compact" | "count+ce"; regression "squared" (default) | "l1" | "paper".
    keep_correct: indices of points (classification) that must stay correct.
    fix_bias pins layer k's bias (a layer without one cannot take one).
    anchors (smooth heads): tangent points, residuals (T, M, A) for "squared", logits
    (T, A, M) for "ce"; default the current outputs. correct ("count+ce"): the 0/1 decisions
    of a count answer; without it the instance is the count stage, with it the ce stage.
    start_at: (W, b) of layer k inside the box to start the MIP from (default its current
    weights, the box's centre); the meta's current_* figures are then at that point.
    units: a block sweep of a hidden layer: only these units (indices into layer k's outputs) are
    free, their incoming weights and biases boxed; every other unit keeps its weights, so its
    outputs are data (no columns, rows or binaries). The answer's blocks "w", "b" (and start_at)
    then have the block's shape (len(units), N), (len(units),); meta["units"] lists the units
    (claims.swept_weights puts them into the full layer). None or every unit: the full sweep.
    tighten: seconds for LP bounds of the pre-activations of the ReLU layers from k + 2 on
    (gdsolver.formulate.tighten; fewer binaries), kept with the instance's data so that its
    rounds are rebuilt alike; meta["tighten"] reports them. bounds: such bounds, given (by chain
    layer index, each (lo, hi) of shape (T, M_j)), e.g. read back from an instance."""
    layers = check_chain(layers)
    k = _check_layer(k, len(layers))
    if task not in TASKS:
        raise GdsolverError(f"task: {task!r}, expected one of {list(TASKS)}")
    swept = layers[k]
    H = as_finite_array("H", H, 2)
    if H.shape[1] != swept.N:
        raise GdsolverError(f"H: shape {H.shape} does not match layer {k} ({swept.M}x{swept.N}), "
                            f"expected (T, {swept.N})")
    if H.shape[0] == 0:
        raise GdsolverError("H: no data points (T = 0)")
    radius = _check_radius(radius)
    units = _check_units(units, swept.M, k, len(layers))
    head = head_for(task, mode)
    if correct is not None and head.then is not None:
        head = head.then  # the second stage, given the first stage's decisions
    margin = _check_margin(DEFAULT_MARGIN[task] if margin is None else margin)
    Ws, bs = _check_start(start_at, swept, units)
    o0 = forward_chain(layers, H, start=k, weights={k: _full(swept, Ws, bs, units)})
    target, keep = _check_target(task, y, keep_correct, o0, margin)

    tight = None
    if tighten is not None:  # LP bounds of the later layers (fewer binaries)
        bounds, tight = lp_bounds(layers, k, H, (Ws, bs), radius, fix_bias, units, time_limit=tighten)
    bld = InstanceBuilder()
    out, relus = encode_chain(bld, layers, k, H, (Ws, bs), radius, fix_bias, units, bounds=bounds)
    h = HeadInput(bld, out, target, o0, margin, keep, anchors, correct)
    head_meta, anchors = head.build(h)
    meta = {
        "formulation": task,
        "mode": head.mode,
        "activation": layers[-1].activation,
        "radius": radius,
        "margin": margin,
        "box_bias": not fix_bias,
        "T": int(H.shape[0]),
        "N": swept.N,
        "M": swept.M,
        "layer": {"index": k, "count": len(layers), "name": swept.name},
        "network": [{"name": la.name, "shape": [la.M, la.N], "activation": la.activation} for la in layers[k:]],
        "relu": relus,
        "relu_binaries": int(sum(r["binaries"] for r in relus)),
        **({} if units is None else {"units": [int(u) for u in units]}), **({} if tight is None else {"tighten": tight}),
        "gdsolver_version": __version__,
        **head_meta,
    }
    meta.update(_current(task, keep, o0, target))
    inst = bld.build(head.sense, meta=meta)
    _attach_data(inst, layers, k, H, target, head, anchors, h.correct, keep if keep_correct is not None else None)
    inst.data.update(bounds_data(bounds, k) if bounds else {})  # read back by refine's rebuilds
    return inst


def _current(task: str, keep: np.ndarray, o0: np.ndarray, target: np.ndarray) -> dict:
    """The meta's figures at the start: the points kept correct, or the current errors."""
    if task == "classification":
        return {"keep_correct": [int(i) for i in keep]}
    err0 = np.abs(o0 - target)
    return {"current_l1": float(err0.sum()), "current_mse": float((err0 ** 2).mean())}


def _check_layer(k, L: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not -L <= k < L:
        raise GdsolverError(f"layer: {k!r} is out of range for a chain of {L} dense layer(s), "
                            f"expected 0..{L - 1} (or -{L}..-1)")
    return int(k) % L


def _check_units(units, M: int, k: int, L: int) -> np.ndarray | None:
    """The block's units as sorted int64 indices into layer k's M outputs; None for every unit."""
    if units is None:
        return None
    arr = np.asarray(units)
    if arr.ndim != 1 or len(arr) == 0 or arr.dtype.kind not in "iu":
        raise GdsolverError(f"units: expected a non-empty 1-D list of unit indices, got {units!r}")
    u = np.unique(arr.astype(np.int64))
    if len(u) != len(arr) or u[0] < 0 or u[-1] >= M:
        raise GdsolverError(f"units: expected distinct indices in 0..{M - 1} (layer {k} has {M} units), got "
                            f"{arr.tolist() if len(arr) <= 8 else arr[:8].tolist() + ['...']}")
    if len(u) == M:
        return None
    if k == L - 1:
        raise GdsolverError(f"units: a block of units applies to a hidden layer; layer {k} is the last (its "
                            "sweep is already small: no ReLU binaries of its own)")
    return u


def _full(swept: Dense, Ws: np.ndarray, bs: np.ndarray, units: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The whole layer's weights with the block's rows (Ws, bs) in place (units None: they are)."""
    if units is None:
        return Ws, bs
    W, b = swept.W.copy(), swept.b.copy()
    W[units], b[units] = Ws, bs
    return W, b


def _check_start(start_at: tuple[np.ndarray, np.ndarray] | None, swept: Dense,
                 units: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    W0, b0 = (swept.W, swept.b) if units is None else (swept.W[units], swept.b[units])
    if start_at is None:
        return W0, b0
    Ws, bs = (np.asarray(a, np.float64) for a in start_at)
    if Ws.shape != W0.shape or bs.shape != b0.shape:
        raise GdsolverError(f"start_at: weights of shape {Ws.shape}, {bs.shape}, expected {W0.shape}, "
                            f"{b0.shape}" + ("" if units is None else f" (a block of {len(units)} units)"))
    return Ws, bs


def _check_target(task: str, y, keep_correct, o0: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """(class labels or targets, the points to keep correct) checked against the outputs o0."""
    T, M_out = o0.shape
    if task == "classification":
        if M_out < 2:
            raise GdsolverError(f"W: classification needs at least 2 outputs (classes), got M = {M_out}")
        target = check_labels(y, M_out, T)
        return target, _check_keep(keep_correct, T, heads.correct_mask(o0, target, margin), margin)
    if keep_correct is not None:
        raise GdsolverError("keep_correct: applies to classification only")
    return check_targets(y, T, M_out), np.zeros(0, np.int64)


def _attach_data(inst: MilpInstance, layers: list[Dense], k: int, H: np.ndarray, target: np.ndarray, head: Head,
                 anchors: np.ndarray | None, correct: np.ndarray | None, keep: np.ndarray | None) -> None:
    """What a forward pass needs to re-check the answer (gdsolver.formulate.claims), and to
    rebuild the instance with more tangents (gdsolver.formulate.refine)."""
    inst.data = {"H": H, "y": target.astype(np.int64) if head.task == "classification" else target}
    for j in range(k, len(layers)):  # numbered from the swept layer: W0 is its current weights
        inst.data[f"W{j - k}"] = layers[j].W
        inst.data[f"b{j - k}"] = layers[j].b
    if anchors is not None:
        inst.data["anchors"] = np.ascontiguousarray(anchors, np.float64)
    if correct is not None:
        inst.data["correct"] = np.asarray(correct, np.float64)
    if keep is not None and len(keep):
        inst.data["keep"] = keep.astype(np.int64)
