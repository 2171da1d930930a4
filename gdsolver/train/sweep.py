"""One solver sweep's instance from a model and data: compute the final layer's
features, pick the points (paper: 32 misclassified ones), formulate, and record
where everything came from (model and data hashes, point indices) in the meta."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from gdsolver.errors import GdsolverError
from gdsolver.extract.layer import FinalLayer
from gdsolver.formulate import check_labels, classification, correct_mask, regression
from gdsolver.ir.gdsm import array_sha256
from gdsolver.ir.instance import MilpInstance

DEFAULT_POINTS = 32  # misclassified points per classification sweep, as in the paper


def select_points(task: str, o0: np.ndarray, y: np.ndarray, *, points: int | None, keep_correct: int,
                  margin: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into the data) of the points to formulate, and of those that must stay
    correct. Classification: up to `points` misclassified (seeded choice) plus up to
    `keep_correct` correct ones. Regression: all points, or a seeded sample of `points`."""
    if seed < 0:
        raise GdsolverError(f"seed: must be >= 0, got {seed}")
    rng = np.random.default_rng(seed)
    T = len(y)
    if points is not None and points < 1:
        raise GdsolverError(f"points: must be >= 1, got {points}")
    if keep_correct < 0:
        raise GdsolverError(f"keep_correct: must be >= 0, got {keep_correct}")
    if task == "regression":
        if keep_correct:
            raise GdsolverError("keep_correct applies to classification only")
        if points is None or points >= T:
            return np.arange(T), np.zeros(0, np.int64)
        return np.sort(rng.choice(T, size=points, replace=False)), np.zeros(0, np.int64)
    ok = correct_mask(o0, y, margin)
    wrong, right = np.flatnonzero(~ok), np.flatnonzero(ok)
    if len(wrong) == 0:
        raise GdsolverError(f"no misclassified points among the {T} given (margin {margin}): nothing for a sweep "
                            "to improve")
    k = min(points or DEFAULT_POINTS, len(wrong))
    pick = np.sort(rng.choice(wrong, size=k, replace=False))
    keep = np.sort(rng.choice(right, size=min(keep_correct, len(right)), replace=False)) if keep_correct else \
        np.zeros(0, np.int64)
    return pick, keep


def build_sweep(layer: FinalLayer, X: Any, y: np.ndarray, *, task: str, radius: float, mode: str | None = None,
                margin: float | None = None, points: int | None = None, keep_correct: int = 0, seed: int = 0,
                H: np.ndarray | None = None) -> MilpInstance:
    """The final-layer instance for data (X, y); H may be passed when already computed."""
    if task not in ("regression", "classification"):
        raise GdsolverError(f"task: {task!r}, expected 'regression' or 'classification'")
    H = layer.features(X) if H is None else H
    y = np.asarray(y)
    if len(y) != len(H):
        raise GdsolverError(f"y: {len(y)} targets for {len(H)} inputs in X")
    if task == "classification":
        y = check_labels(y, layer.M, name="y")
        margin = 1e-3 if margin is None else float(margin)
    else:
        margin = 0.0 if margin is None else float(margin)
    o0 = layer.forward(H)
    pick, keep = select_points(task, o0, y, points=points, keep_correct=keep_correct, margin=margin, seed=seed)
    idx = np.concatenate([pick, keep])
    fix_bias = not layer.location.get("has_bias", True)  # a bias-free layer cannot take a new b
    if task == "classification":
        inst = classification(layer.W, layer.b, H[idx], y[idx], radius=radius, activation=layer.activation,
                              mode=mode or "paper", margin=margin,
                              keep_correct=np.arange(len(pick), len(idx)) if len(keep) else None,
                              fix_bias=fix_bias)
    else:
        inst = regression(layer.W, layer.b, H[idx], y[idx], radius=radius, activation=layer.activation,
                          mode=mode or "l1", margin=margin, fix_bias=fix_bias)
    inst.meta.update(
        task=task,
        points=[int(i) for i in pick],
        keep_points=[int(i) for i in keep],
        data_points=int(len(H)),
        seed=seed,
        layer={"source": layer.source, "location": dict(layer.location)},  # JSON-able by contract
    )
    return inst


def load_data(data: str | os.PathLike | None, dataset: str | None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(X, y, provenance) from a data.npz (arrays X and y) or a built-in data set."""
    if (data is None) == (dataset is None):
        raise GdsolverError("give exactly one of --data FILE.npz or --dataset NAME")
    if data is not None:
        from gdsolver.data.npz import load_real_arrays
        from gdsolver.extract.hashing import sha256_file

        arrs = load_real_arrays(data, ("X", "y"))
        X, y = arrs["X"], arrs["y"]
        if len(X) != len(y):
            raise GdsolverError(f"{data}: X has {len(X)} rows but y has {len(y)}")
        prov = {"kind": "file", "file": Path(data).name, "sha256": sha256_file(data)}
    else:
        from gdsolver.data.datasets import load_dataset

        X, y = load_dataset(dataset)
        prov = {"kind": "dataset", "name": dataset}
    prov["X_sha256"] = array_sha256(np.ascontiguousarray(X))
    prov["y_sha256"] = array_sha256(np.ascontiguousarray(y))
    return X, y, prov


def compile_model(source: str | os.PathLike, *, task: str, data=None, dataset: str | None = None,
                  radius: float = 0.05, mode: str | None = None, margin: float | None = None,
                  points: int | None = None, keep_correct: int = 0, seed: int = 0) -> MilpInstance:
    """`gdsolver compile model.onnx --data ...`: the sweep instance of an ONNX model."""
    from gdsolver.extract import from_onnx, model_sha256

    X, y, prov = load_data(data, dataset)
    layer = from_onnx(source, X)
    inst = build_sweep(layer, X, y, task=task, radius=radius, mode=mode, margin=margin, points=points,
                       keep_correct=keep_correct, seed=seed)
    inst.meta["model"] = {"kind": "onnx", "file": Path(source).name, "sha256": model_sha256(source)}
    inst.meta["data"] = prov
    return inst
