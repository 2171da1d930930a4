"""Network: a model seen as  fixed prefix  ->  chain of dense layers  ->  output tail.

The prefix is anything torch or onnxruntime can run (conv bodies, pooling, normalisation):
it only produces the features entering the first dense layer of the chain. The chain is
what a sweep can encode (gdsolver.formulate): dense layers (torch nn.Linear, ONNX Gemm or
MatMul + Add) with identity or ReLU activations, each one's output feeding the next.
The tail after the last layer is output plumbing a sweep can look through: a Softmax /
LogSoftmax over the classes (the sweep works on the logits before it), a reshape, a cast,
and for tuple / dict / multi-output models the choice of one output.

Every layer knows where it lives in the source model (`location`: torch module path, or
ONNX node and initializer names) so new weights can be written back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gdsolver.errors import GdsolverError
from gdsolver.modeldef import Dense, forward_chain

SOURCES = ("torch", "onnx")
SOFTMAX_OPS = (None, "Softmax", "LogSoftmax")


@dataclass(eq=False)
class DenseLayer(Dense):
    """A dense layer of a network: Dense (W, b, activation, name) plus where it lives."""

    location: dict[str, Any] = field(default_factory=dict)
    has_bias: bool = True


def softmax(a: np.ndarray, *, log: bool = False) -> np.ndarray:
    """Row-wise (log-)softmax, numerically stable; re-applies a tail the sweep looks through."""
    z = a - a.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
    return z - lse if log else np.exp(z - lse)


@dataclass(eq=False)
class Network:
    """See the module docstring. `features(X, k)` runs the model up to layer k's input."""

    layers: list[DenseLayer]
    source: str
    # tail after the last dense layer: {"softmax": None | "Softmax" | "LogSoftmax", "output": which output, ...}
    tail: dict[str, Any] = field(default_factory=dict)
    # dense layers of the model that are not in the chain, and what ends the chain before it
    # ({"layers": [names], "stop": "op 'Sigmoid' ..."}), for messages about layers that cannot be swept
    prefix: dict[str, Any] = field(default_factory=dict)
    # X, k, batch_size -> inputs of layer k (T, N_k) float64, computed by the model itself
    _features_fn: Callable[[Any, int, int], np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.layers:
            raise GdsolverError("Network: no dense layers")
        if self.source not in SOURCES:
            raise GdsolverError(f"Network.source is {self.source!r}; expected one of {SOURCES}")
        for j in range(1, len(self.layers)):
            if self.layers[j].N != self.layers[j - 1].M:
                raise GdsolverError(f"Network: layer {j} takes {self.layers[j].N} inputs, layer {j - 1} gives "
                                    f"{self.layers[j - 1].M}")

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def names(self) -> list[str]:
        return [la.name for la in self.layers]

    def layer_index(self, spec: int | str) -> int:
        """Index of a layer given as an int (negative from the end) or its name. A string is a
        name first (torch Sequential names are digits), an index only when no layer has that name."""
        L = len(self.layers)
        prefix_names = self.prefix.get("layers", [])
        if isinstance(spec, str) and (not spec.lstrip("-").isdigit() or spec in self.names or spec in prefix_names):
            if spec in self.names:
                return self.names.index(spec)
            if spec in self.prefix.get("layers", []):
                raise GdsolverError(f"layer: {spec!r} cannot be swept: it is before the chain of dense layers a sweep "
                                    f"encodes exactly, which starts at {self.names[0]!r} because "
                                    f"{self.prefix.get('stop') or 'what comes before it is not identity or ReLU'}; "
                                    f"sweepable layers: {self.names}")
            raise GdsolverError(f"layer: no dense layer named {spec!r}; the network's dense layers are "
                                f"{self.names} (indices 0..{L - 1})")
        try:
            k = int(spec)
        except (TypeError, ValueError):
            raise GdsolverError(f"layer: expected an index or a layer name, got {spec!r}") from None
        if not -L <= k < L:
            raise GdsolverError(f"layer: index {k} is out of range; the network has {L} dense layer(s) "
                                f"{self.names} (indices 0..{L - 1} or -{L}..-1)")
        return k % L

    def features(self, X: Any, k: int = 0, batch_size: int = 1024) -> np.ndarray:
        """Inputs H (T, N_k) float64 of layer k for data X, computed by the model in batches."""
        if self._features_fn is None:
            raise GdsolverError("this Network has no model attached (it was not built by a frontend)")
        if int(batch_size) < 1:
            raise GdsolverError(f"batch_size must be >= 1, got {batch_size}")
        k = self.layer_index(k)
        H = self._features_fn(X, k, int(batch_size))
        if H.ndim != 2 or H.shape[1] != self.layers[k].N:
            raise GdsolverError(f"model produced inputs of shape {H.shape} for layer {k}, "
                                f"expected (T, {self.layers[k].N})")
        return H

    def forward(self, H: np.ndarray, start: int = 0, weights: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
                *, include_tail: bool = False) -> np.ndarray:
        """Outputs of the chain from layer `start`'s inputs H (float64); `weights` replaces some
        layers' (W, b). include_tail re-applies a Softmax/LogSoftmax the chain looked through."""
        o = forward_chain(self.layers, H, self.layer_index(start), weights)
        op = self.tail.get("softmax")
        if include_tail and op:
            o = softmax(o, log=(op == "LogSoftmax"))
        return o

    def describe(self) -> list[dict[str, Any]]:
        """JSON-able summary: name, shape, activation of every dense layer."""
        return [{"index": j, "name": la.name, "shape": [la.M, la.N], "activation": la.activation,
                 "has_bias": la.has_bias} for j, la in enumerate(self.layers)]
