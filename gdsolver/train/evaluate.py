"""Metrics of a model on data, for `gdsolver evaluate` and the before/after of a sweep.

The final layer's own outputs (before any stripped Softmax) are what the instance
constrains, so the per-instance figures (points correct with the margin, L1 on the
instance's points) are computed from them and are directly comparable with the
solver's objective. Whole-data figures use the same outputs (argmax is unchanged by
a softmax)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from gdsolver.formulate import correct_mask


def layer_metrics(layer, X: Any, y: np.ndarray, task: str, meta: dict | None = None) -> dict[str, Any]:
    H = layer.features(X)
    o = layer.forward(H)
    out: dict[str, Any] = {"points": int(len(H))}
    if task == "classification":
        y = np.asarray(y).astype(np.int64)
        out["accuracy"] = float((o.argmax(1) == y).mean())
        if meta:
            idx = np.asarray(meta.get("points", []) + meta.get("keep_points", []), dtype=np.int64)
            margin = float(meta.get("margin", 1e-3))
            # the solver puts points exactly at the margin; a float32 model stores the weights
            # rounded (~1e-8) and computes in float32, so compare against half the margin
            out["instance points correct"] = int(correct_mask(o[idx], y[idx], margin / 2).sum())
    else:
        Y = np.asarray(y, dtype=np.float64)
        Y = Y[:, None] if Y.ndim == 1 else Y
        err = o - Y
        out["mse"] = float((err**2).mean())
        out["mae"] = float(np.abs(err).mean())
        if meta:
            idx = np.asarray(meta.get("points", []), dtype=np.int64)
            out["instance points L1"] = float(np.abs(err[idx]).sum())
    return out


def evaluate_onnx(model: str | os.PathLike, X: Any, y: np.ndarray, task: str, meta: dict | None = None) -> dict:
    from gdsolver.extract import from_onnx

    return layer_metrics(from_onnx(model, X), X, y, task, meta)
