"""Side-by-side runs: several methods from the same initial model on the same data split
(what `gdsolver train`, `make demo` and the benchmarks do)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gdsolver.errors import GdsolverError

VAL_FRACTION = 0.2  # held out of a user's .npz when it has no X_val / y_val
MAX_CLASSES = 100_000  # a label beyond this is a data error, not a network to build


@dataclass
class RunResult:
    method: str
    history: Any
    test: dict[str, Any]
    wall_s: float
    trainer: Any = field(repr=False, default=None)

    def row(self) -> dict[str, Any]:
        s = self.history.summary()
        return {"method": self.method, "epochs": s["epochs"], "sweeps": s["sweeps"],
                "sweeps_accepted": s["sweeps_accepted"], "train_loss": s["train_loss"], "train_acc": s["train_acc"],
                "val_loss": s["val_loss"], "val_acc": s["val_acc"], "test_loss": self.test.get("loss"),
                "test_acc": self.test.get("acc"), "gd_time_s": s["gd_time_s"], "solver_time_s": s["solver_time_s"],
                "wall_s": self.wall_s}


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


def run_methods(methods: Sequence[str], model, split, *, dump_dir: str | os.PathLike | None = None,
                on_start: Callable[[str, Any], None] | None = None,
                callback: Callable[[str, dict[str, Any]], None] | None = None,
                method_opts: dict[str, dict[str, Any]] | None = None, **opts: Any) -> list[RunResult]:
    """Train each method on a deep copy of `model` (same initial weights) and test it.
    `opts` go to every method; `method_opts[method]` override them for one."""
    from gdsolver.train.methods import check_method_options
    from gdsolver.train.trainer import warm_up

    if not methods:
        raise GdsolverError("method: give at least one method")
    for method, extra in (method_opts or {}).items():
        check_method_options(method, extra)
    twice = sorted({m for m in methods if list(methods).count(m) > 1})
    if twice:  # same seed, same result; and with a dump both would write DIR/<method>
        raise GdsolverError(f"method: {', '.join(twice)} given more than once")
    warm_up()  # not inside the first method's wall time
    from gdsolver.train.dump import DumpRoot

    # a dump is always one folder per method under DIR, and DIR/run.json names them (DumpRoot)
    with contextlib.nullcontext() if dump_dir is None else DumpRoot(dump_dir, list(methods)) as root:
        return _run_each(methods, model, split, root, on_start, callback, method_opts, opts)


def _run_each(methods, model, split, root, on_start, callback, method_opts, opts) -> list[RunResult]:
    from gdsolver.train.methods import make_trainer
    from gdsolver.train.trainer import clone_model

    results = []
    for method in methods:
        m = clone_model(model)
        d = None if root is None else root.method_dir(method)
        cb = None if callback is None else (lambda row, _m=method: callback(_m, row))
        trainer = make_trainer(method, m, split.task, dump_dir=d, callback=cb,
                               **{**opts, **(method_opts or {}).get(method, {})})
        if on_start is not None:
            on_start(method, trainer)
        t = time.perf_counter()
        history = trainer.fit(split.train, split.val)
        wall = time.perf_counter() - t
        results.append(RunResult(method, history, trainer.evaluate(split.test), wall, trainer))
    return results
