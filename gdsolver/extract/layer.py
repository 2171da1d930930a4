"""FinalLayer: a network split into body | final affine layer, as numpy arrays.

Convention (PyTorch's): W has shape (M, N) = (outputs, features), and the layer computes
o = act(H @ W.T + b) for features H of shape (T, N). The body is kept behind a callable so
that features of new data can be computed later without knowing which frontend made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np

from gdsolver.errors import GdsolverError
from gdsolver.extract.network import SOURCES, Network, softmax
from gdsolver.modeldef import ACTIVATIONS
from gdsolver.modeldef import activate as apply_activation

Activation = Literal["identity", "relu"]


@dataclass(eq=False)
class FinalLayer:
    """The final affine layer of a network plus a way to compute its inputs.

    `location` is JSON-able and says where the layer lives in the source model, so that
    new weights can be written back (apply_to_torch / apply_to_onnx).
    """

    W: np.ndarray
    b: np.ndarray
    activation: Activation
    source: Literal["torch", "onnx"]
    location: dict[str, Any] = field(default_factory=dict)
    # Body callable: X -> H (T, N) float64. Not part of equality/repr: it holds the model.
    _features_fn: Callable[[Any, int], np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.W = np.ascontiguousarray(self.W, dtype=np.float64)
        self.b = np.ascontiguousarray(self.b, dtype=np.float64)
        if self.W.ndim != 2:
            raise GdsolverError(f"FinalLayer.W must be 2-D (outputs, features), got shape {self.W.shape}")
        if self.b.shape != (self.W.shape[0],):
            raise GdsolverError(f"FinalLayer.b has shape {self.b.shape}, expected ({self.W.shape[0]},)")
        if self.activation not in ACTIVATIONS:
            raise GdsolverError(f"FinalLayer.activation is {self.activation!r}; expected one of {ACTIVATIONS}")
        if self.source not in SOURCES:
            raise GdsolverError(f"FinalLayer.source is {self.source!r}; expected one of {SOURCES}")

    @classmethod
    def from_network(cls, net: Network) -> "FinalLayer":
        """The last dense layer of a network, with the network's tail recorded in its location."""
        last = net.layers[-1]
        location = dict(last.location)
        op = net.tail.get("softmax")
        location.update(softmax_op=op, softmax_stripped=op is not None)
        if net.tail.get("output") is not None:
            location["output"] = net.tail["output"]
        if net.tail.get("classes") is not None:
            location["classes"] = net.tail["classes"]
        return cls(W=last.W, b=last.b, activation=last.activation, source=net.source, location=location,
                   _features_fn=lambda X, bs: net.features(X, len(net) - 1, bs))

    @property
    def M(self) -> int:
        """Number of outputs."""
        return int(self.W.shape[0])

    @property
    def N(self) -> int:
        """Number of features (inputs of the final layer)."""
        return int(self.W.shape[1])

    def features(self, X: Any, batch_size: int = 1024) -> np.ndarray:
        """Inputs H (T, N) float64 of the final layer for data X, computed in batches without gradients."""
        if self._features_fn is None:
            raise GdsolverError("this FinalLayer has no body attached (it was not built by from_torch/from_onnx)")
        if int(batch_size) < 1:
            raise GdsolverError(f"batch_size must be >= 1, got {batch_size}")
        H = self._features_fn(X, int(batch_size))
        if H.ndim != 2 or H.shape[1] != self.N:
            raise GdsolverError(f"body produced features of shape {H.shape}, expected (T, {self.N})")
        return H

    def forward(self, H: np.ndarray, W: np.ndarray | None = None, b: np.ndarray | None = None,
                *, include_stripped: bool = False) -> np.ndarray:
        """o = act(H @ W.T + b) with this layer's weights (or the given ones).

        include_stripped=True re-applies a Softmax/LogSoftmax that from_onnx stripped, so the
        result is comparable with the full model's output.
        """
        W = self.W if W is None else np.asarray(W, dtype=np.float64)
        b = self.b if b is None else np.asarray(b, dtype=np.float64)
        H = np.asarray(H, dtype=np.float64)
        if H.ndim != 2 or H.shape[1] != W.shape[1]:
            raise GdsolverError(f"H has shape {H.shape}, expected (T, {W.shape[1]})")
        o = apply_activation(H @ W.T + b, self.activation)
        head = self.location.get("softmax_op")
        if include_stripped and self.location.get("softmax_stripped") and head:
            o = softmax(o, log=(head == "LogSoftmax"))
        return o
