"""Built-in data sets: nothing is downloaded at run time.

- "digits": sklearn's bundled 8x8 digits, X (1797, 64) in [0, 1], labels 0..9
  ("digits-images" gives X as (1797, 1, 8, 8) for convolutional bodies).
- regression equations after the paper's experiments: X ~ U[0,1)^3, two targets
  computed from the first two columns (the third is a distractor, as in the
  authors' code). The exact equations of the paper are not published with it;
  these are ours, of the same four kinds: identity, affine, polynomial of degree 4,
  and a trigonometric/exponential formula.
"""

from __future__ import annotations

import numpy as np

from gdsolver.errors import GdsolverError

REGRESSION_EQUATIONS = ("identity", "affine", "polynomial", "formula")
DATASETS = ("digits", "digits-images", *REGRESSION_EQUATIONS)


def equation_targets(name: str, X: np.ndarray) -> np.ndarray:
    x0, x1 = X[:, 0], X[:, 1]
    if name == "identity":
        return np.stack([x0, x1], 1)
    if name == "affine":
        return np.stack([40 * x0 - 25 * x1 + 7, 15 * x0 + 30 * x1 - 12], 1)
    if name == "polynomial":
        return np.stack([3 * x0**4 - 2 * x0**3 * x1 + x1**2 + 1, x0**2 * x1**2 - 4 * x1**4 + 2 * x0], 1)
    if name == "formula":
        return np.stack([5 * np.sin(3 * x0) * np.exp(x1), 4 * np.cos(2 * x1) + np.exp(2 * x0)], 1)
    raise GdsolverError(f"dataset: unknown regression equation {name!r}, expected one of {list(REGRESSION_EQUATIONS)}")


def load_dataset(name: str, n: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) of a built-in data set; regression sets draw `n` points (default 2000)."""
    if name in ("digits", "digits-images"):
        from sklearn.datasets import load_digits

        d = load_digits()
        X = (d.data / 16.0).astype(np.float64)
        if name == "digits-images":
            X = X.reshape(-1, 1, 8, 8)
        y = d.target.astype(np.int64)
        if n is not None:
            idx = np.random.default_rng(seed).permutation(len(y))[:n]
            X, y = X[idx], y[idx]
        return X, y
    if name in REGRESSION_EQUATIONS:
        X = np.random.default_rng(seed).random((n or 2000, 3))
        return X, equation_targets(name, X)
    raise GdsolverError(f"dataset: unknown data set {name!r}, expected one of {list(DATASETS)}")
