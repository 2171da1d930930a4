"""Default networks for the built-in data sets, as in the paper's experiments.

- "paper" for the regression equations: Linear(3, 2) -> ReLU -> Linear(2, 2) (the authors' code).
- "conv" for images: Conv2d(C, 3, k=4) -> ReLU -> flatten -> Linear(., classes) (the authors'
  MNIST model; on 8x8 digits the same shape gives Linear(75, 10)).
- "mlp": Linear(d, hidden) -> ReLU -> Linear(hidden, outputs).
- "mlp2": Linear(d, 256) -> ReLU -> Linear(256, 128) -> ReLU -> Linear(128, outputs) (the MNIST
  MLP 784-256-128-10 of the equal-time and MNIST-scale benchmarks; `hidden` does not apply).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gdsolver.errors import GdsolverError

MODEL_KINDS = ("auto", "mlp", "mlp2", "conv", "paper")


def build_model(kind: str, input_shape: tuple[int, ...], outputs: int, *, hidden: int = 32, seed: int = 0,
                dataset: str | None = None) -> nn.Module:
    """A freshly initialised model (seeded: the same seed gives the same weights)."""
    if kind not in MODEL_KINDS:
        raise GdsolverError(f"model: {kind!r}, expected one of {list(MODEL_KINDS)}")
    if hidden < 1:
        raise GdsolverError(f"hidden: must be >= 1, got {hidden}")
    if kind == "auto":
        from gdsolver.data.datasets import REGRESSION_EQUATIONS

        kind = "paper" if dataset in REGRESSION_EQUATIONS else ("conv" if len(input_shape) == 3 else "mlp")
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        if kind == "conv":
            if len(input_shape) != 3:
                raise GdsolverError(f"model conv: needs image inputs (C, H, W), got input shape {input_shape}")
            c, h, w = input_shape
            if h < 4 or w < 4:
                raise GdsolverError(f"model conv: images of {h}x{w} are smaller than the 4x4 kernel")
            return nn.Sequential(nn.Conv2d(c, 3, kernel_size=4), nn.ReLU(), nn.Flatten(),
                                 nn.Linear(3 * (h - 3) * (w - 3), outputs))
        d = math.prod(input_shape)
        if kind == "paper":
            if d != 3 or outputs != 2:
                raise GdsolverError(f"model paper: is Linear(3, 2)-ReLU-Linear(2, 2) for the regression equations; "
                                    f"the data has {d} inputs and {outputs} outputs")
            return nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))
        layers: list[nn.Module] = [nn.Flatten()] if len(input_shape) > 1 else []
        if kind == "mlp2":
            return nn.Sequential(*layers, nn.Linear(d, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                                 nn.Linear(128, outputs))
        return nn.Sequential(*layers, nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, outputs))
    finally:
        torch.random.set_rng_state(gen_state)
