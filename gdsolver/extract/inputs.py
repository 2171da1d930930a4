"""Validation of user data X and of new final-layer weights (shared by both frontends)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gdsolver.errors import GdsolverError


def as_samples(X: Any, *, what: str = "X") -> np.ndarray:
    """Return X as a numpy array with a leading sample axis, rejecting empty or non-finite data.

    torch tensors are accepted too (np.asarray uses their __array__); a gradient-tracking
    tensor is detached first so that numpy does not refuse it.
    """
    if hasattr(X, "detach") and hasattr(X, "cpu"):
        X = X.detach().cpu()
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists, objects, ...
        raise GdsolverError(f"{what} cannot be converted to a numeric array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise GdsolverError(f"{what} must be numeric, got dtype {arr.dtype}")
    if arr.ndim < 1 or arr.shape[0] == 0:
        raise GdsolverError(f"{what} must have a leading sample axis with at least one sample, got shape {arr.shape}")
    # Non-finite inputs would silently poison H and every MILP coefficient built from it.
    if np.issubdtype(arr.dtype, np.inexact) and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr.reshape(arr.shape[0], -1)))[0, 0]
        raise GdsolverError(f"{what} contains NaN or inf (first at sample {int(bad)})")
    return arr


def check_weights(W: Any, b: Any, M: int, N: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate new final-layer weights against the layer's shape; return float64 copies."""
    W = np.array(W, dtype=np.float64, copy=True)
    b = np.array(b, dtype=np.float64, copy=True)
    if W.shape != (M, N):
        raise GdsolverError(f"W has shape {W.shape}, expected ({M}, {N}) (outputs, features)")
    if b.shape != (M,):
        raise GdsolverError(f"b has shape {b.shape}, expected ({M},)")
    if not np.isfinite(W).all():
        raise GdsolverError("W contains NaN or inf")
    if not np.isfinite(b).all():
        raise GdsolverError("b contains NaN or inf")
    return W, b
