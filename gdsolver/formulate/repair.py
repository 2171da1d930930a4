"""Point repair of one dense layer as a MILP (Sotoudeh & Thakur's provable repair, one layer,
the network's own architecture): the swept layer's weights and bias are variables in a box
|W - W0| <= r, |b - b0| <= r, every later layer is encoded exactly (encoders.py: fixed affine
rows, a binary per ReLU whose sign the box leaves open), and

- every *fix* point t is classified as its label y_t by a margin: o_t,y - o_t,j >= margin for
  every j != y_t (plain rows, not indicators: the repair must hold for all of them);
- every *keep* point keeps its label (its current prediction unless one is given) by
  min(margin, its current gap), so the current weights satisfy the keep rows;
- the change of the layer is minimal: "l1" minimises sum |dW| + sum |db| through moves
  p, q >= 0 with w - p + q = W0 (one equality row each, which presolve substitutes away);
  "linf" minimises t with -t <= w - W0 <= t.

Whether the answer is minimal over *every* change of the layer, not only over the box: a
cheaper change d has |d|_inf <= |d|_1 < the answer's norm, so it lies in the box whenever the
answer's norm is at most r (always, for linf: t <= r by the box); with no ReLU after the layer,
also when the answer is inside the box (an LP over an affine map is convex everywhere).
`proved_global` says so.

Points are laid out fix first, then keep; the instance carries the inputs H, the labels, the
per-point margins and the weights from the swept layer on (`inst.data`), so `claims.check_repair`
re-checks an answer by a float64 forward pass without the model, and `fix_subsystem` gives
the fix points' rows as the key groups of an `ir.subsystem.Subsystem` (for the conflict
search, when no ReLU binary follows the layer).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gdsolver._version import __version__
from gdsolver.errors import GdsolverError
from gdsolver.formulate import heads
from gdsolver.formulate.claims import change_norms, check_repair, label_gaps  # noqa: F401 (re-exported)
from gdsolver.modeldef import Dense, as_finite_array, check_chain, forward_chain
from gdsolver.formulate.encoders import check_finite, fixed_dense, relu, swept_dense, weight_box
from gdsolver.formulate.expr import LinExpr, triplets
from gdsolver.ir.csr import Csr
from gdsolver.ir.instance import CONTINUOUS, InstanceBuilder, MilpInstance
from gdsolver.ir.subsystem import Subsystem

NORMS = ("l1", "linf")
DEFAULT_MARGIN = 0.01  # logits; float32 rounding of a written model moves them by ~1e-5


def keep_margins(gap0: np.ndarray, margin: float) -> np.ndarray:
    """A keep point's required gap: the margin, or its current gap when that is smaller (so the
    current weights keep it); the full margin for a point that does not have its label now."""
    return np.where(gap0 > 0, np.minimum(margin, gap0), margin)


def _check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise GdsolverError(f"norm: {norm!r}, expected one of {list(NORMS)}")
    return norm


def _check_positive(name: str, value, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise GdsolverError(f"{name}: expected a number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise GdsolverError(f"{name}: must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return v


PATTERNS = ("free", "keep", "all")


def _check_layer(layers: Sequence[Dense], k) -> tuple[list[Dense], int, int]:
    """(the chain, k as 0..L-1, L), or an error naming the layer index."""
    layers = check_chain(layers)
    L = len(layers)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not -L <= k < L:
        raise GdsolverError(f"layer: {k!r} is out of range for a chain of {L} dense layer(s), expected 0..{L - 1}")
    return layers, int(k) % L, L


def pin_phases(bld: InstanceBuilder, a: LinExpr, pinned: np.ndarray, name: str) -> LinExpr:
    """Pin the ReLU units of the points in `pinned` (T,) to their current phase: a >= 0 where
    a is >= 0 now, a <= 0 elsewhere (rows), returned with the intervals narrowed accordingly,
    so that `encoders.relu` gives those units no binary (o = a, or o = 0)."""
    T, M = a.shape
    rows = np.flatnonzero(np.repeat(np.asarray(pinned, bool), M))
    if len(rows) == 0:
        return a
    on = a.value0[rows] > 0
    e = a.take(rows)
    lo = np.where(on, -e.const, -np.inf)
    hi = np.where(on, np.inf, -e.const)
    bld.add_rows(name, *triplets(e.cols, e.vals), len(rows), lo=lo, hi=hi)
    out = LinExpr(a.cols, a.vals, a.const, a.lo.copy(), a.hi.copy(), a.value0, a.shape)
    out.lo[rows] = np.where(on, np.maximum(a.lo[rows], 0.0), a.lo[rows])
    out.hi[rows] = np.where(on, a.hi[rows], np.minimum(a.hi[rows], 0.0))
    return out


def repair_instance(layers: Sequence[Dense], k: int, H_fix, y_fix, H_keep=None, y_keep=None, *,
                    norm: str = "l1", margin: float = DEFAULT_MARGIN, radius: float,
                    patterns: str = "free", fix_bias: bool = False,
                    keep_pairs: np.ndarray | None = None, keep_margin: float | None = None) -> MilpInstance:
    """The repair MILP of layer k (0-based, negative from the end) of `layers` (module docstring).

    H_fix (F, N_k) / H_keep (K, N_k): inputs of layer k at the fix and keep points; y_fix (F,)
    their labels; y_keep (K,) the labels the keep points must keep (None: their prediction
    under the current weights). patterns: "free" encodes every ReLU after the change exactly
    (a binary per undecided unit); "keep" pins the keep points' ReLUs to their current phases
    (rows, no binaries: a restriction, so the answer is minimal among the changes that keep
    those phases); "all" pins the fix points' too (an LP: APRNN's activation-pattern view).
    fix_bias pins the bias (a layer without one cannot take one). keep_pairs (K, M) bool: which
    keep rows o_label - o_j >= gap to write (None: every j != label); the search adds a point's
    rows one class at a time, as a forward pass finds them violated. keep_margin (None: margin):
    the gap a keep point keeps, or its current gap when that is smaller."""
    layers, k, L = _check_layer(layers, k)
    norm = _check_norm(norm)
    margin = _check_positive("margin", margin)
    keep_margin = margin if keep_margin is None else _check_positive("keep_margin", keep_margin)
    radius = _check_positive("radius", radius)
    swept, M_out = layers[k], layers[-1].M
    if M_out < 2:
        raise GdsolverError(f"repair: classification needs at least 2 outputs (classes), got {M_out}")
    H_fix = as_finite_array("fix X (layer inputs)", H_fix, 2)
    if H_fix.shape[0] == 0:
        raise GdsolverError("fix: no points to repair")
    H_keep = np.zeros((0, swept.N)) if H_keep is None else as_finite_array("keep X (layer inputs)", H_keep, 2)
    for name, H in (("fix", H_fix), ("keep", H_keep)):
        if H.shape[1] != swept.N:
            raise GdsolverError(f"{name}: layer {k} takes {swept.N} inputs, got points of shape {H.shape}")
    from gdsolver.formulate.sweep import check_labels

    F, K = H_fix.shape[0], H_keep.shape[0]
    y_fix = check_labels(y_fix, M_out, F, name="fix y")
    o_keep = forward_chain(layers, H_keep, start=k)
    y_keep = o_keep.argmax(axis=1) if y_keep is None else check_labels(y_keep, M_out, K, name="keep y")
    H = np.vstack([H_fix, H_keep])
    labels = np.concatenate([y_fix, y_keep]).astype(np.int64)
    margins = np.concatenate([np.full(F, margin), keep_margins(label_gaps(o_keep, y_keep), keep_margin)])

    if patterns not in PATTERNS:
        raise GdsolverError(f"patterns: {patterns!r}, expected one of {list(PATTERNS)}")
    pinned = np.arange(F + K) >= (F if patterns == "keep" else 0)
    bld = InstanceBuilder()
    out, relus = _changed_outputs(bld, layers, k, H, norm, radius, pinned if patterns != "free" else None, fix_bias)
    diff, t, j_of = heads.label_margins(bld, out, labels)
    per = M_out - 1  # rows per point, point-major
    keep_sel = np.arange(F * per, (F + K) * per)
    if keep_pairs is not None:
        pairs = np.asarray(keep_pairs, bool)
        if pairs.shape != (K, M_out):
            raise GdsolverError(f"keep_pairs: shape {pairs.shape}, expected {(K, M_out)}")
        keep_sel = keep_sel[pairs[t[keep_sel] - F, j_of[keep_sel]]]
    for name, sel in (("fix_margin", np.arange(F * per)), ("keep_margin", keep_sel)):
        if len(sel):
            e = diff.take(sel)
            bld.add_rows(name, *triplets(e.cols, e.vals), len(sel), lo=margins[t[sel]] - e.const, hi=np.inf)
    meta = {
        "formulation": "repair", "mode": "repair", "task": "classification", "norm": norm, "margin": margin,
        "keep_margin": keep_margin, "radius": radius, "patterns": patterns, "box_bias": True, "T": int(F + K),
        "fix_points": int(F), "keep_points": int(K),
        "N": swept.N, "M": swept.M, "layer": {"index": k, "count": L, "name": swept.name},
        "network": [{"name": la.name, "shape": [la.M, la.N], "activation": la.activation} for la in layers[k:]],
        "relu": relus, "relu_binaries": int(sum(r["binaries"] for r in relus)), "gdsolver_version": __version__,
        "current_objective": 0.0,
    }
    inst = bld.build("min", meta=meta)
    inst.data = {"H": H, "y": labels, "margins": margins}
    if keep_pairs is not None:  # the (point, class) rows written: claims.check_repair checks those
        written = np.ones((F + K, M_out), np.int64)
        written[F:] = pairs
        written[np.arange(F + K), labels] = 0
        inst.data["pairs"] = written
    for j in range(k, L):
        inst.data[f"W{j - k}"] = layers[j].W
        inst.data[f"b{j - k}"] = layers[j].b
    return inst


def _changed_outputs(bld: InstanceBuilder, layers: list[Dense], k: int, H: np.ndarray, norm: str, radius: float,
                     pinned: np.ndarray | None, fix_bias: bool) -> tuple[LinExpr, list[dict]]:
    """Layer k's weights and bias as variables in the box with the norm's objective, and the
    network's outputs at the layer inputs H over them (the later layers exactly)."""
    swept = layers[k]
    w, bb = weight_box(bld, swept.W, swept.b, radius, fix_bias)
    ids = np.concatenate([w.ravel(), bb.ravel()])
    ref = np.concatenate([swept.W.ravel(), swept.b.ravel()])
    if norm == "l1":
        up, down = _moves(bld, ids, ref, radius)
        out = moved_dense(H, swept.W, swept.b, up, down, radius)
    else:
        out = swept_dense(bld, H, swept.W, swept.b, w, bb, radius, radius)
        _linf(bld, ids, ref, radius)
    return _encode_from(bld, out, layers, k, pinned)


BIG = 1e300  # an open end of an output interval, as stored in the instance's data (which must be finite)


def interval_instance(layers: Sequence[Dense], k: int, H_fix, lo_fix, hi_fix, H_keep=None, lo_keep=None,
                      hi_keep=None, *, norm: str = "l1", margin: float = DEFAULT_MARGIN, radius: float,
                      patterns: str = "all", fix_bias: bool = False) -> MilpInstance:
    """Regression repair of layer k: every output of every point inside its interval,
    lo + margin <= o <= hi - margin (an open end: -inf / inf), with the change minimal in the
    norm; fix and keep points alike (keep points are the ones the search adds lazily). The
    layers after k as in repair_instance (patterns)."""
    layers, k, L = _check_layer(layers, k)
    norm = _check_norm(norm)
    margin = _check_positive("margin", margin)
    radius = _check_positive("radius", radius)
    if patterns not in PATTERNS:
        raise GdsolverError(f"patterns: {patterns!r}, expected one of {list(PATTERNS)}")
    swept, M_out = layers[k], layers[-1].M
    H_fix = as_finite_array("fix X (layer inputs)", H_fix, 2)
    H_keep = np.zeros((0, swept.N)) if H_keep is None else as_finite_array("keep X (layer inputs)", H_keep, 2)
    F, K = len(H_fix), len(H_keep)
    if F == 0:
        raise GdsolverError("fix: no points to repair")
    for name, H in (("fix", H_fix), ("keep", H_keep)):
        if H.shape[1] != swept.N:
            raise GdsolverError(f"{name}: layer {k} takes {swept.N} inputs, got points of shape {H.shape}")
    lo = np.vstack([check_interval("fix lo", lo_fix, F, M_out), check_interval("keep lo", lo_keep, K, M_out)])
    hi = np.vstack([check_interval("fix hi", hi_fix, F, M_out), check_interval("keep hi", hi_keep, K, M_out)])
    narrow = np.flatnonzero((hi - lo < 2 * margin).any(axis=1))
    if len(narrow):
        raise GdsolverError(f"intervals: point {int(narrow[0])} has an interval narrower than 2 x the margin "
                            f"{margin:g} (lo must be below hi by more than the margin on each side)")
    H = np.vstack([H_fix, H_keep])
    bld = InstanceBuilder()
    pinned = np.arange(F + K) >= (F if patterns == "keep" else 0)
    out, relus = _changed_outputs(bld, layers, k, H, norm, radius, pinned if patterns != "free" else None, fix_bias)
    rlo, rhi = (lo + margin).ravel(), (hi - margin).ravel()
    for name, pts in (("fix_interval", np.arange(F)), ("keep_interval", np.arange(F, F + K))):
        sel = (pts[:, None] * M_out + np.arange(M_out)).ravel()
        sel = sel[np.isfinite(rlo[sel]) | np.isfinite(rhi[sel])]
        if len(sel):
            e = out.take(sel)
            bld.add_rows(name, *triplets(e.cols, e.vals), len(sel), lo=rlo[sel] - e.const, hi=rhi[sel] - e.const)
    meta = {
        "formulation": "repair", "mode": "repair", "task": "regression", "norm": norm, "margin": margin,
        "radius": radius, "patterns": patterns, "box_bias": True, "T": int(F + K), "fix_points": int(F),
        "keep_points": int(K), "N": swept.N, "M": swept.M, "layer": {"index": k, "count": L, "name": swept.name},
        "network": [{"name": la.name, "shape": [la.M, la.N], "activation": la.activation} for la in layers[k:]],
        "relu": relus, "relu_binaries": int(sum(r["binaries"] for r in relus)), "gdsolver_version": __version__,
        "current_objective": 0.0,
    }
    inst = bld.build("min", meta=meta)
    inst.data = {"H": H, "lo": np.clip(lo, -BIG, BIG), "hi": np.clip(hi, -BIG, BIG)}
    for j in range(k, L):
        inst.data[f"W{j - k}"] = layers[j].W
        inst.data[f"b{j - k}"] = layers[j].b
    return inst


def check_interval(name: str, v, T: int, M: int) -> np.ndarray:
    """An interval end (T, M) from an array broadcastable to it (None: open, i.e. -inf/inf as
    the name says); NaN is refused."""
    if v is None:
        return np.full((T, M), -np.inf if name.endswith("lo") else np.inf)
    a = np.asarray(v, np.float64)
    if a.ndim == 1 and M == 1 and a.shape[0] == T:
        a = a[:, None]
    try:
        a = np.broadcast_to(a, (T, M)).astype(np.float64)
    except ValueError:
        raise GdsolverError(f"{name}: shape {a.shape}, expected ({T}, {M}) (one bound per point and output)") from None
    if np.isnan(a).any():
        raise GdsolverError(f"{name}: contains NaN")
    return a


def _encode_from(bld: InstanceBuilder, out: LinExpr, layers: list[Dense], k: int,
                 pinned: np.ndarray | None) -> tuple[LinExpr, list[dict]]:
    """Layer k's activation and every later layer, exactly (encoders.py); the ReLU units of the
    `pinned` points (None: none) kept in their current phases. Returns the outputs and the
    ReLU counts per layer."""
    relus = []
    for j in range(k, len(layers)):
        layer = layers[j]
        if j > k:
            out = fixed_dense(bld, out, layer.W, layer.b, f"a{j}")
        check_finite(out, f"layer {j}" + (f" ({layer.name})" if layer.name else ""))
        if layer.activation == "relu":
            if pinned is not None:
                out = pin_phases(bld, out, pinned, f"pin{j}")
            out, counts = relu(bld, out, f"o{j}", f"z{j}")
            relus.append({"layer": j, **counts})
    return out, relus


def _moves(bld: InstanceBuilder, ids: np.ndarray, ref: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """l1: moves up p and down q (>= 0, cost 1 each) with w - p + q = W0, one row per weight.
    The network's rows are written over p and q (moved_dense), never over w: w then sits in its
    link row alone and presolve drops it, so the LP's basis is the points' rows, not one row per
    weight (a 256 x 128 hidden layer with 10 points: 105 s with the rows over w, measured)."""
    n = len(ids)
    p = bld.add_block("move_up", (n,), lb=0.0, ub=radius, cost=1.0, start=np.zeros(n))
    q = bld.add_block("move_down", (n,), lb=0.0, ub=radius, cost=1.0, start=np.zeros(n))
    cols = np.stack([ids, p, q], 1)
    bld.add_rows("move", *triplets(cols, np.tile([1.0, -1.0, 1.0], (n, 1))), n, lo=ref, hi=ref)
    return p, q


def moved_dense(H: np.ndarray, W: np.ndarray, b: np.ndarray, up: np.ndarray, down: np.ndarray,
                radius: float) -> LinExpr:
    """a = H (W + P - Q)^T + (b + p_b - q_b) over the moves (the layout of _moves: W row-major,
    then b), with the same exact interval as encoders.swept_dense over the box."""
    T, N = H.shape
    M = W.shape[0]
    pw, pb = up[:M * N].reshape(M, N), up[M * N:]
    qw, qb = down[:M * N].reshape(M, N), down[M * N:]
    K = 2 * N + 2
    cols = np.empty((T, M, K), np.int64)
    cols[:, :, :N], cols[:, :, N], cols[:, :, N + 1:2 * N + 1], cols[:, :, K - 1] = pw, pb, qw, qb
    vals = np.empty((T, M, K))
    vals[:, :, :N], vals[:, :, N] = H[:, None, :], 1.0
    vals[:, :, N + 1:2 * N + 1], vals[:, :, K - 1] = -H[:, None, :], -1.0
    const = (H @ W.T + b).ravel()
    with np.errstate(over="ignore"):  # an overflow is an infinite bound, reported by check_finite
        spread = np.repeat(radius * (np.abs(H).sum(axis=1) + 1.0), M)
    return LinExpr(cols.reshape(T * M, K), vals.reshape(T * M, K), const, const - spread, const + spread,
                   const.copy(), (T, M))


def _linf(bld: InstanceBuilder, ids: np.ndarray, ref: np.ndarray, radius: float) -> None:
    """linf: minimise t with -t <= w - W0 <= t (two rows per weight)."""
    n = len(ids)
    tt = bld.add_block("move_max", (1,), lb=0.0, ub=radius, cost=1.0, start=np.zeros(1))
    cols = np.stack([ids, np.full(n, tt[0])], 1)
    bld.add_rows("move_below", *triplets(cols, np.tile([1.0, -1.0], (n, 1))), n, lo=-np.inf, hi=ref)
    bld.add_rows("move_above", *triplets(cols, np.tile([1.0, 1.0], (n, 1))), n, lo=ref, hi=np.inf)


def proved_global(inst: MilpInstance, objective: float, linf: float | None = None) -> bool:
    """An optimum of the instance is minimal over every change of the layer (module docstring):
    linf; an l1 norm within the radius; or, with no ReLU after the layer (the problem is then an
    LP over an affine map: convex everywhere), an answer that touches no side of the box (`linf`:
    its largest move), so the box's rows are inactive. With ReLUs after it, an LP whose box
    merely fixes their signs is convex inside the box only: a cheaper change outside it may flip
    a ReLU (a 3-3-2 case: 0.18 in the box, 0.1301 outside), so the interior rule does not apply."""
    if inst.meta.get("patterns", "free") != "free" and inst.meta["relu"]:
        return False  # minimal among the changes that keep the pinned phases only
    r = float(inst.meta["radius"]) * (1 - 1e-9)
    interior = (not inst.meta["relu"] and inst.num_integer == 0 and linf is not None and linf < r)
    return inst.meta["norm"] == "linf" or objective <= r or interior


def fix_subsystem(inst: MilpInstance) -> Subsystem:
    """The fix points as keys, each switching on its margin rows, over the continuous variables;
    every other row (keep points, later layers, the norm) always holds. Only for instances with
    no integer variable (no ReLU binary after the swept layer): then the fix points that cannot
    hold together are an infeasible subsystem of an LP."""
    if np.any(inst.vtype != CONTINUOUS):
        raise GdsolverError("fix_subsystem: the instance has integer variables (ReLU binaries)")
    F = int(inst.meta["fix_points"])
    off, cnt = inst.row_groups["fix_margin"]
    per = cnt // F
    fix_rows = np.arange(off, off + cnt)
    other = np.setdiff1d(np.arange(inst.num_rows), fix_rows)
    n = inst.num_vars
    return Subsystem(
        keys=np.arange(F, dtype=np.int64), gain=np.ones(F), cols=np.arange(n, dtype=np.int64),
        col_lb=inst.lb.copy(), col_ub=inst.ub.copy(),
        base=inst.A.take_rows(other), base_lo=inst.row_lo[other], base_hi=inst.row_hi[other],
        rows=inst.A.take_rows(fix_rows), rows_lo=inst.row_lo[fix_rows], rows_hi=inst.row_hi[fix_rows],
        group=np.repeat(np.arange(F, dtype=np.int64), per), master=Csr.empty(F), master_lo=np.zeros(0),
        master_hi=np.zeros(0), key_lb=np.zeros(F), key_ub=np.ones(F))
