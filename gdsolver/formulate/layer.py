"""Pieces shared by the formulations: input checks, the weight box, and the final
layer's outputs o = act(H W^T + b) as linear expressions over the instance's variables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gdsolver._version import __version__
from gdsolver.errors import GdsolverError
from gdsolver.ir.instance import BINARY, InstanceBuilder

ACTIVATIONS = ("identity", "relu")


def as_finite_array(name: str, value, ndim: int | tuple[int, ...]) -> np.ndarray:
    """float64 copy of `value`, checked for dimension and NaN/inf; GdsolverError otherwise."""
    raw = np.asarray(value)
    if raw.dtype.kind not in "biuf":  # no silent casts of complex, strings, dates, objects
        raise GdsolverError(f"{name}: expected a real numeric array, got dtype {raw.dtype}")
    arr = np.array(raw, dtype=np.float64)
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ndims:
        raise GdsolverError(f"{name}: expected a {' or '.join(f'{d}-D' for d in ndims)} array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise GdsolverError(f"{name}: contains NaN or inf (first at index {tuple(int(i) for i in bad)})")
    return arr


def check_layer(W, b, H, radius: float, activation: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    W = as_finite_array("W", W, 2)
    M, N = W.shape
    b = as_finite_array("b", b, 1)
    H = as_finite_array("H", H, 2)
    if M == 0 or N == 0:
        raise GdsolverError(f"W: shape {W.shape} is empty, expected (M, N) with M, N >= 1")
    if b.shape != (M,):
        raise GdsolverError(f"b: shape {b.shape} does not match W {W.shape}, expected ({M},)")
    if H.shape[1] != N:
        raise GdsolverError(f"H: shape {H.shape} does not match W {W.shape}, expected (T, {N})")
    if H.shape[0] == 0:
        raise GdsolverError("H: no data points (T = 0)")
    try:
        radius = float(radius)
    except (TypeError, ValueError):
        raise GdsolverError(f"radius: expected a number, got {radius!r}") from None
    if not np.isfinite(radius) or radius <= 0:
        raise GdsolverError(f"radius: must be a finite number > 0, got {radius}")
    if activation not in ACTIVATIONS:
        raise GdsolverError(f"activation: {activation!r} is not supported, expected one of {list(ACTIVATIONS)}")
    return W, b, H, radius


def forward(W: np.ndarray, b: np.ndarray, H: np.ndarray, activation: str) -> np.ndarray:
    """Reference forward pass o = act(H W^T + b) (numpy)."""
    a = H @ W.T + b
    return np.maximum(a, 0.0) if activation == "relu" else a


@dataclass
class LayerOutputs:
    """The outputs o[t, j] as linear expressions: `expr(t, j)` returns (cols, vals)
    arrays of shape (R, K), one row per (t, j) pair, zeros dropped later."""

    w: np.ndarray  # variable ids (M, N)
    b: np.ndarray  # variable ids (M,)
    H: np.ndarray
    o: np.ndarray | None  # variable ids (T, M) when the activation needs its own variable
    o0: np.ndarray  # current outputs (T, M)

    def expr(self, t: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.o is not None:
            return self.o[t, j][:, None], np.ones((len(t), 1))
        return affine_expr(self.w, self.b, self.H, t, j)


def affine_expr(w: np.ndarray, b: np.ndarray, H: np.ndarray, t: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a[t, j] = H[t] . w[j] + b[j] for each pair, as (cols, vals) of shape (R, N + 1)."""
    cols = np.concatenate([w[j], b[j][:, None]], axis=1)
    vals = np.concatenate([H[t], np.ones((len(t), 1))], axis=1)
    return cols, vals


def triplets(cols: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-major (rows, cols, vals) from per-row (R, K) arrays, zero coefficients dropped
    (features after a ReLU body are often zero). Rows come out sorted."""
    R, K = cols.shape
    rows = np.repeat(np.arange(R, dtype=np.int64), K)
    cols, vals = cols.ravel(), vals.ravel()
    keep = vals != 0
    if not keep.all():
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
    return rows, cols, vals


def add_weight_box(bld: InstanceBuilder, W: np.ndarray, b: np.ndarray, radius: float,
                   fix_bias: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Blocks w (M, N) and b (M,) boxed |w - W0| <= r, |b - b0| <= r, started at W0, b0.
    fix_bias pins b to b0 (a layer without a bias cannot take a new one)."""
    w = bld.add_block("w", W.shape, lb=W - radius, ub=W + radius, start=W)
    rb = 0.0 if fix_bias else radius
    bb = bld.add_block("b", b.shape, lb=b - rb, ub=b + rb, start=b)
    return w, bb


def add_outputs(bld: InstanceBuilder, W: np.ndarray, b: np.ndarray, H: np.ndarray, radius: float,
                activation: str, w: np.ndarray, bb: np.ndarray, fix_bias: bool = False) -> LayerOutputs:
    """For identity, outputs are affine in (w, b): no variables. For ReLU add
    o (T, M) >= 0 and binaries z (T, M) with indicators
        z = 1 => o - a = 0;   z = 0 => a <= 0;   z = 0 => o <= 0
    where a = H w^T + b. The interval of a over the box is exact; it bounds o and
    fixes z where the sign of a is already decided."""
    T, M = H.shape[0], W.shape[0]
    a0 = H @ W.T + b
    if activation == "identity":
        return LayerOutputs(w, bb, H, None, a0)
    t, j = (g.ravel() for g in np.meshgrid(np.arange(T), np.arange(M), indexing="ij"))
    cols, vals = affine_expr(w, bb, H, t, j)
    # exact interval of a[t, j] over the box: each term H_tn w_jn moves by r |H_tn|
    spread = radius * (np.abs(H).sum(axis=1) + (0.0 if fix_bias else 1.0))[:, None]
    a_lo, a_hi = a0 - spread, a0 + spread
    o0 = np.maximum(a0, 0.0)
    z_lb = (a_lo >= 0).astype(np.float64)
    z_ub = (a_hi > 0).astype(np.float64)
    z_ub = np.maximum(z_ub, z_lb)
    o = bld.add_block("o", (T, M), lb=0.0, ub=np.maximum(a_hi, 0.0), start=o0)
    z = bld.add_block("z", (T, M), lb=z_lb, ub=z_ub, vtype=BINARY, start=np.clip((a0 > 0).astype(float), z_lb, z_ub))
    zf, of = z.ravel(), o.ravel()
    on_cols = np.concatenate([of[:, None], cols], axis=1)
    on_vals = np.concatenate([np.ones((len(t), 1)), -vals], axis=1)
    bld.add_indicators("relu_on", zf, 1, *triplets(on_cols, on_vals), lo=0.0, hi=0.0)
    bld.add_indicators("relu_off_a", zf, 0, *triplets(cols, vals), lo=-np.inf, hi=0.0)
    ones = np.ones((len(t), 1))
    bld.add_indicators("relu_off_o", zf, 0, *triplets(of[:, None], ones), lo=-np.inf, hi=0.0)
    return LayerOutputs(w, bb, H, o, o0)


def base_meta(formulation: str, mode: str, activation: str, radius: float, margin: float,
              W: np.ndarray, H: np.ndarray, fix_bias: bool = False) -> dict:
    return {
        "formulation": formulation,
        "mode": mode,
        "activation": activation,
        "radius": radius,
        "margin": margin,
        "box_bias": not fix_bias,
        "T": int(H.shape[0]),
        "N": int(W.shape[1]),
        "M": int(W.shape[0]),
        "gdsolver_version": __version__,
    }
