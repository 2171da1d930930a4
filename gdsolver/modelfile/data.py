"""Data for the model-file commands and the side-by-side runs: (X, y) with its provenance from
a data.npz or a built-in data set (`load_data`, what `compile`, `apply` and `evaluate` read),
and a train / validation / test Split of either (`load_split_for`, what `train` and the
benchmarks read)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gdsolver.errors import GdsolverError
from gdsolver.ir.gdsm import array_sha256

VAL_FRACTION = 0.2  # held out of a user's .npz when it has no X_val / y_val
MAX_CLASSES = 100_000  # a label beyond this is a data error, not a network to build


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


def labels_as_indices(y: np.ndarray, classes: list | None) -> np.ndarray:
    """Class labels as score-column indices: a model that maps columns to labels (skl2onnx's
    classes) gets y translated; labels already 0..M-1 in the classes' order are kept."""
    if not classes:
        return y
    cls = np.asarray(classes)
    if cls.dtype.kind in "iu" and np.array_equal(cls, np.arange(len(cls))):
        return y
    lookup = {v.item() if hasattr(v, "item") else v: i for i, v in enumerate(cls)}
    try:
        return np.array([lookup[v.item() if hasattr(v, "item") else v] for v in np.asarray(y)], dtype=np.int64)
    except KeyError as exc:
        raise GdsolverError(f"y: label {exc.args[0]!r} is not one of the model's classes {list(cls)}") from None


def infer_task(y: np.ndarray) -> str:
    return "classification" if y.ndim == 1 and y.dtype.kind in "iub" else "regression"


def load_npz_split(path: str | os.PathLike, *, task: str | None, seed: int):
    """A user's data.npz as a Split: X, y required; X_val/y_val and X_test/y_test optional
    (without X_val, a seeded 20% of the training points is held out)."""
    from gdsolver.data.datasets import Split
    from gdsolver.data.npz import load_real_arrays

    arrs = load_real_arrays(path, ("X", "y"), ("X_val", "y_val", "X_test", "y_test"))
    for a, b in (("X_val", "y_val"), ("X_test", "y_test")):
        if (a in arrs) != (b in arrs):
            raise GdsolverError(f"{path}: has '{a if a in arrs else b}' but not '{b if a in arrs else a}'")
    X, y = arrs["X"], arrs["y"]
    for key, arr in arrs.items():  # shapes checked before any training starts
        want = 2 if key.startswith("X") else 1
        if arr.ndim < want:
            raise GdsolverError(f"{path}: array '{key}' has shape {arr.shape}, expected "
                                + ("(points, features...)" if want == 2 else "(points,) or (points, outputs)"))
    if len(X) != len(y):
        raise GdsolverError(f"{path}: X has {len(X)} rows but y has {len(y)}")
    if len(X) < 2:
        raise GdsolverError(f"{path}: X has {len(X)} rows; at least 2 are needed to train")
    for a, b in (("X_val", "y_val"), ("X_test", "y_test")):
        if a in arrs:
            if len(arrs[a]) == 0 or len(arrs[a]) != len(arrs[b]):
                raise GdsolverError(f"{path}: '{a}' has {len(arrs[a])} rows and '{b}' {len(arrs[b])}; expected "
                                    "the same number, at least 1 (leave both out to hold out training points)")
            if arrs[a].shape[1:] != X.shape[1:]:
                raise GdsolverError(f"{path}: '{a}' has points of shape {arrs[a].shape[1:]}, X {X.shape[1:]}")
    task = task or infer_task(y)
    if "X_val" in arrs:
        train, val = (X, y), (arrs["X_val"], arrs["y_val"])
    else:
        perm = np.random.default_rng(seed).permutation(len(y))
        k = max(1, int(round(VAL_FRACTION * len(y))))
        train, val = (X[perm[k:]], y[perm[k:]]), (X[perm[:k]], y[perm[:k]])
    test = (arrs["X_test"], arrs["y_test"]) if "X_test" in arrs else val
    info = {"name": Path(path).name, "task": task, "source": str(path)}
    if task == "classification":
        for key, arr in (("y", y), ("y_val", val[1]), ("y_test", test[1])):
            if arr.ndim != 1 or (len(arr) and (arr.min() < 0 or arr.max() >= MAX_CLASSES)):
                raise GdsolverError(f"{path}: array '{key}' must hold class labels 0..K-1 (1-D, K <= {MAX_CLASSES}), "
                                    f"got shape {arr.shape}" + (f", range {arr.min():g}..{arr.max():g}" if arr.size
                                                                else ""))
        info["num_classes"] = int(max(y.max(), val[1].max(), test[1].max())) + 1
    return Split(Path(path).name, task, train, val, test, info)


def load_split_for(dataset: str | None, data: str | os.PathLike | None, *, seed: int = 0,
                   data_dir: str | os.PathLike | None = None, task: str | None = None,
                   n_train: int | None = None):
    """The Split of a built-in data set or of a user's .npz; `n_train` keeps the first n
    training points (as the authors' data-efficiency study did)."""
    from gdsolver.data.datasets import load_split

    if (dataset is None) == (data is None):
        raise GdsolverError("give exactly one of --dataset NAME or --data FILE.npz")
    if dataset is not None and not dataset.strip():
        raise GdsolverError("--dataset: empty name; give a built-in data set name or use --data FILE.npz")
    if dataset is not None and dataset.endswith(".npz"):  # `--dataset data.npz` is a user's file too
        dataset, data = None, dataset
    split = load_split(dataset, data_dir=data_dir, seed=seed) if dataset else load_npz_split(data, task=task,
                                                                                             seed=seed)
    if task is not None and task != split.task:
        raise GdsolverError(f"task: {dataset or data} is a {split.task} data set, not {task}")
    if n_train is not None:
        if not (1 <= n_train <= len(split.train[1])):
            raise GdsolverError(f"n_train: must be in 1..{len(split.train[1])}, got {n_train}")
        from gdsolver.data.datasets import Split

        split = Split(split.name, split.task, (split.train[0][:n_train], split.train[1][:n_train]), split.val,
                      split.test, {**split.info, "n_train": n_train})
    return split


def outputs_of(split) -> int:
    if split.task == "classification":
        return int(split.info.get("num_classes") or int(split.train[1].max()) + 1)
    y = split.train[1]
    return 1 if y.ndim == 1 else int(y.shape[1])
