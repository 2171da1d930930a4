"""Built-in data sets and their train / validation / test splits. Nothing is downloaded.

Names (``DATASETS``):

- ``identity``, ``affine``, ``polynomial``, ``formula``: the regression equations exactly as
  the authors' released code defines them. X ~ U[0, 1)^3; the targets are computed elementwise
  from x = X[:, :2] (the third column is a distractor), so 3 inputs and 2 outputs:
  identity y = x; affine y = 3x + 4; polynomial y = 3x^4 + 6x^3 + 2x^2 + x + 9;
  formula y = 2 exp(x) + 3 sin(x) x^5. Seeded here (the original had no seed).
- ``digits`` / ``digits-images``: sklearn's bundled 8x8 digits, X (n, 64) or (n, 1, 8, 8) in
  [0, 1], labels 0..9; the always-available MNIST-like set.
- ``diabetes``: sklearn's bundled diabetes regression set (442 points, 10 features). X is
  standardised (zero mean, unit variance per feature) and y (disease progression, 25..346) is
  divided by 100 to give targets of order 1 in the original units / 100, shape (n, 1).
- ``mnist``, ``fashion-mnist`` (idx files, ``gdsolver.data.idx``) and ``cifar10`` (binary
  batches, ``gdsolver.data.cifar``): read from a directory found as ``gdsolver.data.locate``
  describes; images scaled to [0, 1] as float32, shape (n, 1, 28, 28) / (n, 3, 32, 32).

Splits (``load_split``):

- equations: 1000 training points and 1000 test points drawn independently (two separate
  random streams of one seed); validation = the *last 320 of the 1000 training points*, held
  out, so 680 train + 320 val + 1000 test.
- digits: a seeded permutation of the 1797 points: first 360 test, next 320 val, 1117 train.
- diabetes: a seeded permutation of the 442 points: first 88 test, next 88 val, 266 train; X is
  standardised with the training part's mean and standard deviation.
- mnist / fashion-mnist / cifar10: the files' own test set; validation = the last 5000 points of
  the training file (half of it if it holds fewer than 10000), train = the points before them in file order (so "the first n training
  points", as the authors took them, do not depend on the seed; the seed is unused).

``load_dataset(name, n, seed)`` gives one (X, y) for the CLI's ``--dataset`` and quick use: the
whole set (digits, diabetes -- standardised with its own statistics), the training draw of the
equations (n points, default 1000; the same points as ``load_split``'s training draw before the
validation hold-out), or the training file (images); ``n`` takes a seeded subset.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gdsolver.data.presets import PAPER_RADIUS
from gdsolver.errors import GdsolverError

REGRESSION_EQUATIONS = ("identity", "affine", "polynomial", "formula")
IMAGE_DATASETS = ("mnist", "fashion-mnist", "cifar10")
DATASETS = ("digits", "digits-images", "diabetes", *REGRESSION_EQUATIONS, *IMAGE_DATASETS)
TASKS: dict[str, str] = {**{n: "regression" for n in ("diabetes", *REGRESSION_EQUATIONS)},
                         **{n: "classification" for n in ("digits", "digits-images", *IMAGE_DATASETS)}}

N_TRAIN, N_TEST, N_VAL = 1000, 1000, 320  # equations, as in the authors' code
DIGITS_N_TEST, DIGITS_N_VAL = 360, 320
DIABETES_N_TEST, DIABETES_N_VAL = 88, 88
IMAGE_N_VAL = 5000

EQUATIONS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "identity": ("y = x", lambda x: x.copy()),
    "affine": ("y = 3x + 4", lambda x: 3 * x + 4),
    "polynomial": ("y = 3x^4 + 6x^3 + 2x^2 + x + 9", lambda x: 3 * x**4 + 6 * x**3 + 2 * x**2 + x + 9),
    "formula": ("y = 2 exp(x) + 3 sin(x) x^5", lambda x: 2 * np.exp(x) + 3 * np.sin(x) * x**5),
}

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}


@dataclass(frozen=True, eq=False)
class Split:
    """A data set split into train / validation / test, each an (X, y) pair.

    `task` is "regression" (y float, (n, M)) or "classification" (y int64 labels, (n,));
    `info` is JSON-able provenance: source, how the split was made, sizes, seed, num_classes,
    the paper preset radius when there is one."""

    name: str
    task: str
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(X_train, y_train, X_val, y_val, X_test, y_test)."""
        return (*self.train, *self.val, *self.test)

    @property
    def num_classes(self) -> int | None:
        return self.info.get("num_classes")


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise GdsolverError(f"dataset: unknown data set {name!r}, expected one of {list(DATASETS)}")


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GdsolverError(f"seed: must be an integer >= 0, got {seed!r}")
    return int(seed)


def _check_count(what: str, n: int | None, lo: int, hi: int) -> None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not lo <= n <= hi):
        raise GdsolverError(f"{what}: must be an integer in {lo}..{hi}, got {n!r}")


def equation_targets(name: str, X: np.ndarray) -> np.ndarray:
    """Targets (n, 2) of regression equation `name` for inputs X (n, >= 2): f(X[:, :2]) elementwise."""
    if name not in EQUATIONS:
        raise GdsolverError(f"dataset: unknown regression equation {name!r}, expected one of "
                            f"{list(REGRESSION_EQUATIONS)}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] < 2:
        raise GdsolverError(f"X: expected shape (n, >= 2) for equation {name!r}, got {X.shape}")
    return EQUATIONS[name][1](X[:, :2])


def equation_inputs(seed: int, n: int, stream: int) -> np.ndarray:
    """X ~ U[0,1)^3 (n, 3) of random stream `stream` (0 = training draw, 1 = test draw) of `seed`.
    The streams are independent; the first k rows of a draw do not depend on n."""
    return np.random.default_rng([_check_seed(seed), stream]).random((n, 3))


def _digits(images: bool) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.data / 16.0).astype(np.float64)
    return (X.reshape(-1, 1, 8, 8) if images else X), d.target.astype(np.int64)


def _diabetes_raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes

    d = load_diabetes(scaled=False)
    return d.data.astype(np.float64), (d.target.astype(np.float64) / 100.0)[:, None]


def _standardise(X: np.ndarray, ref: np.ndarray) -> np.ndarray:
    mu, sd = ref.mean(0), ref.std(0)
    return (X - mu) / np.where(sd > 0, sd, 1.0)


def _images(name: str, data_dir: str | os.PathLike | None):
    if name == "cifar10":
        from gdsolver.data.cifar import load_cifar10

        return load_cifar10(data_dir)
    from gdsolver.data.idx import load_idx

    return load_idx(name, data_dir)


def _scale(X: np.ndarray) -> np.ndarray:
    return X.astype(np.float32) / np.float32(255.0)


def _info(name: str, seed: int, split: str, source: str, **kw: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"name": name, "task": TASKS[name], "source": source, "split": split, "seed": seed}
    if name in PAPER_RADIUS:
        info["paper_radius"] = PAPER_RADIUS[name]
    info.update(kw)
    return info


def _perm_split(name: str, X: np.ndarray, y: np.ndarray, seed: int, n_test: int, n_val: int
                ) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    idx = np.random.default_rng(seed).permutation(len(y))
    te, va, tr = idx[:n_test], idx[n_test:n_test + n_val], idx[n_test + n_val:]
    return (X[tr], y[tr]), (X[va], y[va]), (X[te], y[te])


def load_split(name: str, data_dir: str | os.PathLike | None = None, seed: int = 0, *,
               n_val: int | None = None) -> Split:
    """Data set `name` split into train / validation / test (see the module docstring for each
    set's rule). `data_dir` is where to find image files (mnist, fashion-mnist, cifar10);
    `n_val` overrides the number of validation points held out of the training part."""
    _check_name(name)
    seed = _check_seed(seed)
    task = TASKS[name]
    if name in REGRESSION_EQUATIONS:
        _check_count("n_val", n_val, 0, N_TRAIN - 1)
        k = N_VAL if n_val is None else int(n_val)
        Xa, Xte = equation_inputs(seed, N_TRAIN, 0), equation_inputs(seed, N_TEST, 1)
        ya, yte = equation_targets(name, Xa), equation_targets(name, Xte)
        cut = N_TRAIN - k
        info = _info(name, seed, f"{N_TRAIN} training points drawn, the last {k} held out as validation "
                     f"({cut} train + {k} val); {N_TEST} test points drawn independently",
                     f"X ~ U[0,1)^3, x = X[:, :2], {EQUATIONS[name][0]} (elementwise)",
                     equation=EQUATIONS[name][0])
        return Split(name, task, (Xa[:cut], ya[:cut]), (Xa[cut:], ya[cut:]), (Xte, yte), info)
    if name in ("digits", "digits-images"):
        X, y = _digits(name == "digits-images")
        _check_count("n_val", n_val, 0, len(y) - DIGITS_N_TEST - 1)
        k = DIGITS_N_VAL if n_val is None else int(n_val)
        tr, va, te = _perm_split(name, X, y, seed, DIGITS_N_TEST, k)
        info = _info(name, seed, f"seeded permutation of {len(y)} points: {DIGITS_N_TEST} test, {k} val, "
                     f"{len(tr[1])} train", "sklearn.datasets.load_digits, pixels / 16", num_classes=10)
        return Split(name, task, tr, va, te, info)
    if name == "diabetes":
        X, y = _diabetes_raw()
        _check_count("n_val", n_val, 0, len(y) - DIABETES_N_TEST - 1)
        k = DIABETES_N_VAL if n_val is None else int(n_val)
        tr, va, te = _perm_split(name, X, y, seed, DIABETES_N_TEST, k)
        ref = tr[0]
        tr, va, te = ((_standardise(Xs, ref), ys) for Xs, ys in (tr, va, te))
        info = _info(name, seed, f"seeded permutation of {len(y)} points: {DIABETES_N_TEST} test, {k} val, "
                     f"{len(tr[1])} train", "sklearn.datasets.load_diabetes(scaled=False); X standardised "
                     "with the training part's mean and std; y = disease progression / 100")
        return Split(name, task, tr, va, te, info)
    data = _images(name, data_dir)
    n_file = len(data.y_train)
    _check_count("n_val", n_val, 0, n_file - 1)
    k = min(IMAGE_N_VAL, n_file // 2) if n_val is None else int(n_val)
    cut = n_file - k
    Xtr = _scale(data.X_train)
    info = _info(name, seed, f"file order: the first {cut} training-file points train, the last {k} val; "
                 f"the {len(data.y_test)} test-file points test (seed unused)", str(data.source),
                 num_classes=10, image_shape=list(data.X_train.shape[1:]))
    if name in CLASS_NAMES:
        info["class_names"] = list(CLASS_NAMES[name])
    return Split(name, task, (Xtr[:cut], data.y_train[:cut].astype(np.int64)),
                 (Xtr[cut:], data.y_train[cut:].astype(np.int64)),
                 (_scale(data.X_test), data.y_test.astype(np.int64)), info)


def load_dataset(name: str, n: int | None = None, seed: int = 0,
                 data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) of a built-in data set: the whole set (digits, diabetes), the equations' training
    draw of `n` points (default 1000), or the training file (images); for the fixed-size sets
    `n` picks a seeded random subset."""
    _check_name(name)
    seed = _check_seed(seed)
    if name in REGRESSION_EQUATIONS:
        _check_count("n", n, 1, 10**8)
        X = equation_inputs(seed, N_TRAIN if n is None else int(n), 0)
        return X, equation_targets(name, X)
    if name in ("digits", "digits-images"):
        X, y = _digits(name == "digits-images")
    elif name == "diabetes":
        X, y = _diabetes_raw()
        X = _standardise(X, X)
    else:
        data = _images(name, data_dir)
        X, y = data.X_train, data.y_train.astype(np.int64)
    _check_count("n", n, 1, len(y))
    if n is not None:
        idx = np.random.default_rng(seed).permutation(len(y))[:n]
        X, y = X[idx], y[idx]
    return (_scale(X) if name in IMAGE_DATASETS else X), y
