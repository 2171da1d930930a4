"""ONNX frontend: load a model, split it into body | final affine layer, write weights back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import numpy as np
import onnx

from gdsolver.atomic import atomic_write_bytes
from gdsolver.extract.hashing import check_external_data
from gdsolver.errors import FormatError, GdsolverError
from gdsolver.extract.inputs import as_samples, check_weights
from gdsolver.extract.layer import FinalLayer
from gdsolver.extract.onnx_graph import AffineHead, analyse, body_model, data_inputs, node_label, write_weights
from gdsolver.extract.onnx_runtime import OrtRunner, _first_line

ModelLike = Union[str, os.PathLike, onnx.ModelProto]

# Samples used to verify the extracted layer against the model itself.
SAMPLE_SIZE = 256
# Keys of FinalLayer.location that must agree with the model apply_to_onnx writes into.
_IDENTITY_KEYS = ("affine_op", "affine_node", "add_node", "input_tensor", "W_initializer", "b_initializer",
                  "transA", "transB", "alpha", "beta")


def load_onnx(model_or_path: ModelLike) -> tuple[onnx.ModelProto, str, Path | None]:
    """(model, label for messages, path or None). The model is a private copy, safe to edit."""
    if isinstance(model_or_path, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(model_or_path)
        label, path = "<in-memory ModelProto>", None
    elif isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        label = f"'{path}'"
        if not path.exists():
            raise FormatError(f"ONNX model file {label} does not exist")
        check_external_data(path)  # a regular file, external data inside its directory, before onnx reads it
        try:
            model = onnx.load(str(path))
        except Exception as exc:  # truncated/corrupt protobuf, missing external data, ...
            raise FormatError(f"cannot read ONNX model {label} (truncated or corrupt?): {_first_line(exc)}") from None
    else:
        raise GdsolverError(f"expected an ONNX file path or onnx.ModelProto, got {type(model_or_path).__name__}")
    # A truncated file can still parse as a (partial) protobuf; the checker catches that.
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise FormatError(f"ONNX model {label} is invalid (truncated or corrupt?): {_first_line(exc)}") from None
    return model, label, path


def _runner(model: onnx.ModelProto, label: str) -> OrtRunner:
    return OrtRunner(model, data_inputs(model.graph)[0], label)


def _verify(head: AffineHead, H: np.ndarray, pre: np.ndarray, activation: str, label: str) -> None:
    """The numpy layer must reproduce the model's own pre-softmax output on the sample."""
    a = H @ head.W.T + head.b
    o = np.maximum(a, 0.0) if activation == "relu" else a
    # float32 rounding grows with the magnitude of the summed terms, so scale the tolerance by it.
    tol = 1e-4 * (np.abs(H) @ np.abs(head.W).T + np.abs(head.b)) + 1e-5
    if pre.shape != o.shape:
        raise GdsolverError(f"ONNX model {label}: output of final node {node_label(head.affine_node)} has shape "
                            f"{pre.shape}, expected {o.shape}; only (T, M) outputs are supported")
    if not np.all(np.abs(pre - o) <= tol):
        raise GdsolverError(f"ONNX model {label}: final node {node_label(head.affine_node)} does not reproduce the "
                            f"model output (max abs diff {np.max(np.abs(pre - o)):.3g}); unsupported graph structure")


def from_onnx(path_or_model: ModelLike, X: Any, *, strip_softmax: bool = True) -> FinalLayer:
    """Split an ONNX model into body | final affine layer (+ Relu), stripping a Softmax head if asked.

    X (or its first samples) is used to check that the extracted layer reproduces the model.
    """
    model, label, path = load_onnx(path_or_model)
    head = analyse(model, strip_softmax=strip_softmax, label=label)
    activation = "relu" if head.relu_node is not None else "identity"
    body, (h_out, pre_out) = body_model(model, [head.data_input, head.pre_head])
    runner = _runner(body, label)
    # transA=1: the body yields A = H^T, samples along axis 1.
    h_axis = 1 if head.trans_a else 0

    X = as_samples(X)
    H_s, pre_s = runner.run(X[:SAMPLE_SIZE], SAMPLE_SIZE, [h_out, pre_out], [h_axis, 0])
    if head.trans_a:
        H_s = H_s.T
    if H_s.ndim != 2 or H_s.shape[1] != head.W.shape[1]:
        raise GdsolverError(f"tensor '{head.data_input}' feeding node {node_label(head.affine_node)} has per-batch shape "
                            f"{H_s.shape}; expected (T, {head.W.shape[1]})")
    _verify(head, H_s, pre_s, activation, label)

    def features(Xf: Any, batch_size: int) -> np.ndarray:
        (H,) = runner.run(Xf, batch_size, [h_out], [h_axis])
        return H.T if head.trans_a else H

    location = head.location()
    location["model_path"] = str(path) if path is not None else None
    return FinalLayer(W=head.W, b=head.b, activation=activation, source="onnx", location=location,
                      _features_fn=features)


def onnx_forward(model_or_path: ModelLike, X: Any, batch_size: int = 1024) -> np.ndarray:
    """The full model's (single) output on X via onnxruntime, as float64."""
    model, label, _ = load_onnx(model_or_path)
    if len(model.graph.output) != 1:
        raise GdsolverError(f"ONNX model {label} has {len(model.graph.output)} outputs; exactly one is required")
    if len(data_inputs(model.graph)) != 1:
        raise GdsolverError(f"ONNX model {label} must have exactly one data input")
    (out,) = _runner(model, label).run(X, batch_size, [model.graph.output[0].name])
    return out


def _atomic_write(data: bytes, out_path: Path) -> None:
    """Never a half-written model: temp file in the destination directory + rename."""
    atomic_write_bytes(out_path, data)


def apply_to_onnx(model_or_path: ModelLike, W: Any, b: Any, out_path: str | os.PathLike,
                  layer: FinalLayer | None = None) -> None:
    """Write a copy of the model with the final layer's weights replaced by W (M, N), b (M,).

    The input file (or ModelProto) is never modified; out_path is written atomically and must
    differ from the input file. Initializers shared with other nodes are refused.
    """
    model, label, in_path = load_onnx(model_or_path)
    out_path = Path(out_path)
    if in_path is not None and out_path.exists() and os.path.samefile(in_path, out_path):
        raise GdsolverError(f"out_path '{out_path}' is the input model; write to a different file")
    head = analyse(model, strip_softmax=True, label=label)
    if layer is not None:
        if layer.source != "onnx":
            raise GdsolverError(f"layer was extracted from {layer.source}, not from an ONNX model")
        found = head.location()
        diff = [k for k in _IDENTITY_KEYS if k in layer.location and layer.location[k] != found[k]]
        if diff:
            k = diff[0]
            raise GdsolverError(f"layer does not describe ONNX model {label}: location['{k}'] is "
                                f"{layer.location[k]!r}, the model has {found[k]!r}")
    W, b = check_weights(W, b, head.W.shape[0], head.W.shape[1])
    write_weights(model, head, W, b)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise GdsolverError(f"updated ONNX model fails onnx.checker: {_first_line(exc)}") from None
    try:
        data = model.SerializeToString()
    except ValueError as exc:  # protobuf refuses messages over 2 GiB
        raise GdsolverError(f"updated ONNX model cannot be serialised as one file: {_first_line(exc)}") from None
    _atomic_write(data, out_path)

