"""What a model is to gdsolver: the tasks, the activations, and a chain of dense layers as
numpy arrays (the part of a network a sweep encodes).

PyTorch's convention: layer j maps inputs h (T, N_j) to act_j(h W_j^T + b_j), with W_j of
shape (M_j, N_j). The frontends (gdsolver.extract) find such a chain at the end of a torch or
ONNX model; the formulations (gdsolver.formulate) only need the arrays. Both import this
module, and so do the IR's schemas and the command line's choices, so the names are said once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gdsolver.errors import GdsolverError

TASKS = ("regression", "classification")
ACTIVATIONS = ("identity", "relu")


def as_finite_array(name: str, value, ndim: int | tuple[int, ...]) -> np.ndarray:
    """float64 copy of `value`, checked for dimension and NaN/inf; GdsolverError otherwise."""
    raw = np.asarray(value)
    if raw.dtype.kind not in "biuf":  # no silent casts of complex, strings, dates, objects
        raise GdsolverError(f"{name}: expected a real numeric array, got dtype {raw.dtype}")
    arr = np.array(raw, dtype=np.float64)
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ndims:
        raise GdsolverError(f"{name}: expected a {' or '.join(f'{d}-D' for d in ndims)} array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise GdsolverError(f"{name}: contains NaN or inf (first at index {tuple(int(i) for i in bad)})")
    return arr


def activate(a: np.ndarray, activation: str) -> np.ndarray:
    """act(a) for the activations a dense layer may have."""
    if activation == "identity":
        return a
    if activation == "relu":
        return np.maximum(a, 0.0)
    raise GdsolverError(f"activation: {activation!r} is not supported, expected one of {list(ACTIVATIONS)}")


@dataclass(eq=False)
class Dense:
    """One dense layer: o = act(h W^T + b). `name` says which layer it is in messages."""

    W: np.ndarray
    b: np.ndarray
    activation: str = "identity"
    name: str = ""

    def __post_init__(self) -> None:
        label = f"layer {self.name!r}: " if self.name else ""
        self.W = as_finite_array(f"{label}W", self.W, 2)
        self.b = as_finite_array(f"{label}b", self.b, 1)
        M, N = self.W.shape
        if M == 0 or N == 0:
            raise GdsolverError(f"{label}W: shape {self.W.shape} is empty, expected (M, N) with M, N >= 1")
        if self.b.shape != (M,):
            raise GdsolverError(f"{label}b: shape {self.b.shape} does not match W {self.W.shape}, expected ({M},)")
        if self.activation not in ACTIVATIONS:
            raise GdsolverError(f"{label}activation: {self.activation!r} is not supported, "
                                f"expected one of {list(ACTIVATIONS)}")

    @property
    def M(self) -> int:
        """Number of outputs."""
        return int(self.W.shape[0])

    @property
    def N(self) -> int:
        """Number of inputs."""
        return int(self.W.shape[1])

    def forward(self, h: np.ndarray, W: np.ndarray | None = None, b: np.ndarray | None = None) -> np.ndarray:
        """act(h W^T + b) in float64, with this layer's weights or the given ones."""
        W = self.W if W is None else W
        b = self.b if b is None else b
        return activate(np.asarray(h, np.float64) @ W.T + b, self.activation)


def check_chain(layers: Sequence[Dense]) -> list[Dense]:
    """The layers as a list, each one's outputs feeding the next one's inputs."""
    layers = list(layers)
    if not layers:
        raise GdsolverError("layers: the chain of dense layers is empty")
    for j, layer in enumerate(layers):
        if not isinstance(layer, Dense):
            raise GdsolverError(f"layers[{j}]: expected a Dense layer, got {type(layer).__name__}")
        if j and layer.N != layers[j - 1].M:
            raise GdsolverError(f"layers[{j}]: takes {layer.N} inputs but layer {j - 1} has {layers[j - 1].M} outputs")
    return layers


def forward_chain(layers: Sequence[Dense], h: np.ndarray, start: int = 0,
                  weights: dict[int, tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
    """Outputs of the chain for inputs h of layer `start`; `weights` replaces some layers' (W, b)."""
    out = np.asarray(h, np.float64)
    for j in range(start, len(layers)):
        W, b = (weights or {}).get(j, (None, None))
        out = layers[j].forward(out, W, b)
    return out
