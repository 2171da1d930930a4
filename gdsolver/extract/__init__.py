"""PyTorch / ONNX frontends: a model as a Network (fixed prefix -> chain of dense layers ->
output tail; network.py), the inputs H of any of its dense layers, and new weights of a layer
written back (apply_to_torch / apply_to_onnx).

torch, onnx and onnxruntime are imported only when a frontend function is first used, so
`import gdsolver.extract` stays cheap for users of the IR/solver layers.
"""

from __future__ import annotations

import importlib
from typing import Any

from gdsolver.extract.hashing import model_sha256, sha256_file
from gdsolver.extract.network import DenseLayer, Network, softmax

# public name -> submodule that defines it (loaded on first access)
_LAZY = {
    "network_from_torch": "torch_frontend",
    "select_output": "torch_frontend",
    "network_from_onnx": "onnx_frontend",
    "apply_to_torch": "torch_frontend",
    "apply_to_onnx": "onnx_frontend",
    "onnx_forward": "onnx_frontend",
    "load_onnx": "onnx_frontend",
}

__all__ = ["Network", "DenseLayer", "softmax", "sha256_file", "model_sha256", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value  # cache: later lookups skip __getattr__
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
