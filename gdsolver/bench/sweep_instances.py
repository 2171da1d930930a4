"""Seeded MNIST-head-shaped classification sweeps, without MNIST.

The authors' MNIST model is Conv2d(1, 3, k=4) -> ReLU -> flatten -> Linear(1875, 10); a sweep
boxes the Linear layer's 18,760 weights and asks for the most of 32 misclassified training
points to become correct by a margin of 1e-3. This module makes instances of exactly that
shape from synthetic 28x28 "digits":

- ten class templates, each a few random strokes (line segments blurred by a Gaussian);
- an image is its class's template, shifted by up to 2 pixels, its strokes randomly dimmed,
  plus pixel noise, clipped to [0, 1] (as MNIST pixels / 255);
- features: a seeded random Conv2d(1, 3, 4) with PyTorch's default initialisation bounds
  (uniform +-1/4) and a ReLU, flattened: 3 x 25 x 25 = 1875 nonnegative features;
- the head: softmax regression trained by a few epochs of full-batch gradient descent
  (numpy), stopped early so that a good share of the training points stays misclassified;
- the sweep's points: a seeded choice of misclassified training points.

Everything is numpy and a function of the seed (numpy's BLAS pinned to one thread, see
`head_case`). Why it is a fair stand-in: what makes these
sweeps hard is the features' geometry (nonnegative, strongly correlated, so fixing one point
moves every other point's outputs) and the size of the box relative to the points' margin
deficits; both are what the real conv head has. The calibration (stroke count, noise,
training length) was chosen so that the regimes the issue measured on the real head appear:
at radius 0.05 all 32 points can be fixed, at 0.002 about half, at 0.0005 a few.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gdsolver.blas import blas_threads
from gdsolver.formulate import classification, correct_mask, forward
from gdsolver.ir.instance import MilpInstance

IMAGE = 28
KERNEL = 4
CHANNELS = 3
CLASSES = 10
FEATURES = CHANNELS * (IMAGE - KERNEL + 1) ** 2  # 1875 for 28x28 images (smaller images for quick runs)


@dataclass(frozen=True)
class HeadCase:
    """A trained head and its training data: W (10, 1875), b (10,), H (n, 1875) >= 0, y (n,)."""

    W: np.ndarray
    b: np.ndarray
    H: np.ndarray
    y: np.ndarray
    seed: int

    def misclassified(self, margin: float = 1e-3) -> np.ndarray:
        return np.flatnonzero(~correct_mask(forward(self.W, self.b, self.H, "identity"), self.y, margin))


def _templates(rng: np.random.Generator, size: int, strokes: int = 3) -> np.ndarray:
    """(10, size, size) class templates: a few blurred line segments each, values in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.zeros((CLASSES, size, size))
    edge = 5 * size / IMAGE
    for k in range(CLASSES):
        for _ in range(strokes):
            p0, p1 = rng.uniform(edge, size - edge, size=(2, 2))
            s = np.linspace(0, 1, 24)[:, None]
            pts = p0 + s * (p1 - p0)  # (24, 2) points along the stroke
            d2 = (yy[None] - pts[:, 0, None, None]) ** 2 + (xx[None] - pts[:, 1, None, None]) ** 2
            out[k] = np.maximum(out[k], np.exp(-d2 / (2 * 1.2 ** 2)).max(axis=0))
    return out


def _images(rng: np.random.Generator, templates: np.ndarray, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """n images (n, 28, 28) in [0, 1] and their labels."""
    y = rng.integers(0, CLASSES, size=n)
    imgs = np.empty((n,) + templates.shape[1:])
    shifts = rng.integers(-2, 3, size=(n, 2))
    gains = rng.uniform(0.5, 1.0, size=n)
    for i in range(n):  # a roll per image; n is a few thousand
        imgs[i] = np.roll(templates[y[i]], tuple(shifts[i]), axis=(0, 1)) * gains[i]
    imgs += noise * rng.normal(size=imgs.shape)
    # a share of another class's template: the confusions that leave points misclassified
    other = (y + rng.integers(1, CLASSES, size=n)) % CLASSES
    imgs += rng.uniform(0.0, 0.6, size=(n, 1, 1)) * templates[other]
    return np.clip(imgs, 0.0, 1.0), y


def _conv_relu(imgs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Conv2d(1, 3, 4) with PyTorch's default init bounds, ReLU, flatten -> (n, 1875)."""
    bound = 1.0 / KERNEL  # 1 / sqrt(fan_in = 16)
    k = rng.uniform(-bound, bound, size=(CHANNELS, KERNEL, KERNEL))
    kb = rng.uniform(-bound, bound, size=CHANNELS)
    win = np.lib.stride_tricks.sliding_window_view(imgs, (KERNEL, KERNEL), axis=(1, 2))  # (n, 25, 25, 4, 4)
    out = np.einsum("nijkl,ckl->ncij", win, k, optimize=True) + kb[None, :, None, None]
    return np.maximum(out, 0.0).reshape(len(imgs), -1)


def _train_head(H: np.ndarray, y: np.ndarray, epochs: int, lr: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch softmax regression from PyTorch's default Linear init, `epochs` GD steps."""
    bound = 1.0 / np.sqrt(H.shape[1])
    W = rng.uniform(-bound, bound, size=(CLASSES, H.shape[1]))
    b = rng.uniform(-bound, bound, size=CLASSES)
    onehot = np.eye(CLASSES)[y]
    for _ in range(epochs):
        z = H @ W.T + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / len(H)
        W -= lr * g.T @ H
        b -= lr * g.sum(0)
    return W, b


def head_case(seed: int, n_train: int = 2000, noise: float = 0.15, epochs: int = 100, lr: float = 0.5,
              image: int = IMAGE) -> HeadCase:
    """The trained head for `seed` (deterministic); `image` < 28 gives a smaller head
    (3 (image - 3)^2 features) for quick runs.

    numpy's BLAS runs on one thread here: a multithreaded matrix product sums in another order,
    and over 100 training steps the last bits of W then depend on the thread count (a Ray worker
    has one BLAS thread, this process as many as cores), enough to change which points are
    misclassified on the 14x14 head."""
    with blas_threads(1):
        rng = np.random.default_rng(seed)
        templates = _templates(rng, image)
        imgs, y = _images(rng, templates, n_train, noise)
        H = _conv_relu(imgs, rng)
        W, b = _train_head(H, y, epochs, lr, rng)
    return HeadCase(W, b, H, y, seed)


def mnist_head_sweep(seed: int, radius: float, points: int = 32, mode: str = "compact", margin: float = 1e-3,
                     case: HeadCase | None = None, image: int = IMAGE) -> MilpInstance:
    """A classification sweep of the MNIST-shaped head: `points` misclassified training points
    (seeded choice), box radius `radius`. Pass `case` to reuse a trained head."""
    case = case or head_case(seed, image=image)
    wrong = case.misclassified(margin)
    rng = np.random.default_rng(seed + 1000)
    pick = np.sort(rng.choice(wrong, size=min(points, len(wrong)), replace=False))
    inst = classification(case.W, case.b, case.H[pick], case.y[pick], radius=radius, mode=mode, margin=margin)
    inst.meta.update(generator="mnist_head_sweep", generator_seed=int(seed), points_index=[int(i) for i in pick])
    return inst


def wide_head_sweep(seed: int, radius: float, classes: int = 1000, features: int = 512, points: int = 32,
                    rank: int = 20, mode: str = "paper", margin: float = 1e-3) -> MilpInstance:
    """A classification sweep of a head as wide as an ImageNet ResNet-18's (Linear(512, 1000):
    513,000 weights), synthetic: random weights (scale 1/sqrt(features)), nonnegative random
    features (ReLU of a Gaussian), each point labelled with its `rank`-th best class, so that a
    small box can fix some of the points and not others. What this row measures is how the
    search scales with the number of classes (one margin row per point and other class)."""
    rng = np.random.default_rng(seed + 5000)
    W = rng.normal(size=(classes, features)) / np.sqrt(features)
    b = np.zeros(classes)
    H = np.maximum(rng.normal(size=(points, features)), 0.0)
    labels = np.argsort(H @ W.T, axis=1)[:, -rank]
    inst = classification(W, b, H, labels, radius=radius, mode=mode, margin=margin)
    inst.meta.update(generator="wide_head_sweep", generator_seed=int(seed), classes=int(classes),
                     features=int(features), rank=int(rank))
    return inst


def trained_network(model: str, seed: int, *, epochs: int = 3, lr: float = 0.05, hidden: int = 32):
    """A real short training run on sklearn's digits: `model` "mlp" (Linear(64, hidden)-ReLU-
    Linear(hidden, 10)) or "conv" (the authors' Conv2d(1, 3, 4)-ReLU-Linear(75, 10) on the 8x8
    images), `epochs` of SGD (gdsolver.GDTrainer, one thread, seeded) -> (gdsolver.extract
    Network, X_train, y_train)."""
    from gdsolver.extract import network_from_torch
    from gdsolver.train.models import build_model
    from gdsolver.modelfile.data import load_split_for
    from gdsolver.train.trainer import GDTrainer

    split = load_split_for("digits-images" if model == "conv" else "digits", None, seed=seed)
    net = build_model(model, tuple(split.train[0].shape[1:]), 10, hidden=hidden, seed=seed)
    GDTrainer(net, task="classification", optimizer="sgd", lr=lr, epochs=epochs, seed=seed, threads=1).fit(
        split.train, split.val)
    X, y = split.train
    return network_from_torch(net, X), X, y


def trained_sweep(model: str, seed: int, radius: float, *, points: int = 32, mode: str = "paper", epochs: int = 3,
                  lr: float = 0.05, hidden: int = 32, layer: int = -1, task: str = "classification",
                  trained=None) -> MilpInstance:
    """A sweep from a real short training run on sklearn's digits (`trained_network`): the
    sweep of dense layer `layer` (default the final one; 0 is the MLP's hidden layer, its ReLUs
    and the final layer then encoded exactly) on `points` training points (misclassified ones
    for the counting heads, a seeded sample for "ce" and for regression; train.sweep.prepare_sweep,
    as GDSolver builds it). task "regression" (modes "l1", "squared", "paper") fits the 10
    outputs to the one-hot labels. Pass `trained` (what trained_network returned) to reuse a run."""
    from gdsolver.train.sweep import prepare_sweep

    network, X, y = trained or trained_network(model, seed, epochs=epochs, lr=lr, hidden=hidden)
    target = np.eye(10)[y] if task == "regression" else y
    inst = prepare_sweep(network, X, target, task=task, layer=layer, radius=radius, mode=mode, points=points,
                         seed=seed).instance
    inst.meta.update(generator="trained_sweep", generator_model=model, generator_seed=int(seed),
                     generator_epochs=int(epochs), generator_hidden=int(hidden))
    return inst
