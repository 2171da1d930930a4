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

from gdsolver.errors import GdsolverError
from gdsolver.extract.network import Network
from gdsolver.formulate import check_labels, correct_mask
from gdsolver.formulate.sweep import DEFAULT_MARGIN


def layer_metrics(net: Network, X: Any, y: np.ndarray, task: str, meta: dict | None = None) -> dict[str, Any]:
    """Metrics of the network's last dense layer's outputs on (X, y), and on the instance's points
    (meta's points and keep_points) when meta is given."""
    H = net.features(X, -1)
    o = net.forward(H, -1)
    out: dict[str, Any] = {"points": int(len(H))}
    if meta:  # the instance's points: the selected ones, then those kept correct (none in regression)
        idx = np.asarray(meta.get("points", []) + meta.get("keep_points", []), dtype=np.int64)
        if meta.get("task") not in (None, task):
            raise GdsolverError(f"instance: compiled for task {meta.get('task')!r}, not {task!r}")
        if len(idx) and idx.max() >= len(H):
            raise GdsolverError(f"instance: refers to point {int(idx.max())} but the data has {len(H)} points")
    if task == "classification":
        y = check_labels(y, net.layers[-1].M, name="y")
        out["accuracy"] = float((o.argmax(1) == y).mean())
        # the last layer's outputs are the logits (the chain looks through a Softmax tail)
        z = o - o.max(axis=1, keepdims=True)
        out["cross-entropy"] = float((np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]).mean())
        if meta:
            margin = float(meta.get("margin", DEFAULT_MARGIN["classification"]))
            # the solver puts points exactly at the margin; a float32 model stores the weights
            # rounded (~1e-8) and computes in float32, so compare against half the margin
            out["instance points correct"] = int(correct_mask(o[idx], y[idx], margin / 2).sum())
    else:
        Y = np.asarray(y, dtype=np.float64)
        Y = Y[:, None] if Y.ndim == 1 else Y
        if Y.shape != o.shape:
            raise GdsolverError(f"y: shape {np.shape(y)} does not match the model's outputs {o.shape}")
        err = o - Y
        out["mse"] = float((err**2).mean())
        out["mae"] = float(np.abs(err).mean())
        if meta:
            out["instance points L1"] = float(np.abs(err[idx]).sum())
    return out


def check_instance_data(meta: dict, data_prov: dict) -> None:
    """The instance's points index into the data it was compiled from: refuse other data."""
    rec = meta.get("data") or {}
    for key in ("X_sha256", "y_sha256"):
        if rec.get(key) and rec[key] != data_prov.get(key):
            raise GdsolverError(f"instance: compiled from other data ({key} differs); its point indices do "
                                "not apply to this data")


def evaluate_onnx(model: str | os.PathLike, X: Any, y: np.ndarray, task: str, meta: dict | None = None,
                  output: str | None = None) -> dict:
    from gdsolver.extract.onnx_frontend import network_from_onnx
    from gdsolver.modelfile.data import labels_as_indices

    net = network_from_onnx(model, X, output=output)
    if task == "classification":
        y = labels_as_indices(y, net.tail.get("classes"))
    return layer_metrics(net, X, y, task, meta)
