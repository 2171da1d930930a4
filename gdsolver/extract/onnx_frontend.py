"""ONNX frontend: load a model, read it as a Network (its chain of dense layers), write weights back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import numpy as np
import onnx

from gdsolver.atomic import atomic_write_bytes
from gdsolver.extract.hashing import check_external_data
from gdsolver.errors import FormatError, GdsolverError, MissingFileError
from gdsolver.extract.inputs import as_samples, check_weights
from gdsolver.extract.network import DenseLayer, Network
from gdsolver.extract.onnx_graph import AffineNode, Chain, analyse, body_model, data_inputs, node_label, write_weights
from gdsolver.extract.onnx_runtime import OrtRunner, _first_line

ModelLike = Union[str, os.PathLike, onnx.ModelProto]

# Samples used to verify the extracted layer against the model itself.
SAMPLE_SIZE = 256
# Keys of a layer's location that must agree with the model apply_to_onnx writes into.
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
            raise MissingFileError(f"ONNX model file {label} does not exist")
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


def _verify(chain: Chain, taps: list[np.ndarray], pre: np.ndarray, label: str) -> None:
    """The numpy chain must reproduce the model: each layer's outputs are the next layer's
    inputs, and the last layer's are the (pre-tail) output, on the sample."""
    for j, layer in enumerate(chain.layers):
        H = taps[j]
        o = H @ layer.W.T + layer.b
        o = np.maximum(o, 0.0) if layer.relu_node is not None else o
        want = taps[j + 1] if j + 1 < len(chain.layers) else pre
        what = (f"the input of node {node_label(chain.layers[j + 1].affine_node)}" if j + 1 < len(chain.layers)
                else f"the output of node {node_label(layer.affine_node)}")
        # float32 rounding grows with the magnitude of the summed terms, so scale the tolerance by it
        tol = 1e-4 * (np.abs(H) @ np.abs(layer.W).T + np.abs(layer.b)) + 1e-5
        if want.shape != o.shape:
            raise GdsolverError(f"ONNX model {label}: {what} has shape {want.shape}, expected {o.shape}; only (T, M) "
                                "outputs are supported")
        if not np.all(np.abs(want - o) <= tol):
            raise GdsolverError(f"ONNX model {label}: node {node_label(layer.affine_node)} does not reproduce "
                                f"{what} (max abs diff {np.max(np.abs(want - o)):.3g}); unsupported graph structure")


def _per_sample(arr: np.ndarray, T: int) -> np.ndarray:
    return arr.reshape(T, -1)


def network_from_onnx(path_or_model: ModelLike, X: Any, *, output: str | None = None,
                      strip_softmax: bool = True) -> Network:
    """The chain of dense layers producing a graph output of an ONNX model (see onnx_graph).

    output: which graph output holds the scores (default: the only one, or the only score
    output when the others derive from it, e.g. skl2onnx's label). X (its first samples)
    checks that the chain reproduces the model."""
    model, label, path = load_onnx(path_or_model)
    chain = analyse(model, strip_softmax=strip_softmax, output=output, label=label)
    inputs = [la.data_input for la in chain.layers]
    body, names = body_model(model, inputs + [chain.pre_head])
    runner = _runner(body, label)
    # transA=1 on the first layer: the prefix yields H^T, samples along axis 1
    axes = [1 if chain.layers[0].trans_a else 0] + [0] * len(inputs)

    X = as_samples(X)
    Xs = X[:SAMPLE_SIZE]
    outs = runner.run(Xs, SAMPLE_SIZE, names, axes)
    T = Xs.shape[0]
    if chain.layers[0].trans_a:
        outs[0] = outs[0].T
    taps = [_per_sample(a, T) for a in outs[:-1]]
    for j, (H, la) in enumerate(zip(taps, chain.layers)):
        if H.shape[1] != la.W.shape[1]:
            raise GdsolverError(f"tensor '{la.data_input}' feeding node {node_label(la.affine_node)} has per-batch "
                                f"shape {outs[j].shape}; expected (T, {la.W.shape[1]})")
    _verify(chain, taps, _per_sample(outs[-1], T), label)

    def features(Xf: Any, k: int, batch_size: int) -> np.ndarray:
        (H,) = runner.run(Xf, batch_size, [names[k]], [axes[k]])
        H = H.T if (k == 0 and chain.layers[0].trans_a) else H
        return H.reshape(H.shape[0], -1)

    common = {"graph_input": chain.graph_input, "graph_output": chain.graph_output,
              "model_path": str(path) if path is not None else None}
    layers = [DenseLayer(la.W, la.b, la.activation, la.name, location={**la.location(), **common},
                         has_bias=la.has_bias) for la in chain.layers]
    in_chain = {la.affine_node.name for la in chain.layers}
    others = [n.name for n in model.graph.node if n.op_type in ("Gemm", "MatMul") and n.name and n.name not in in_chain]
    return Network(layers, "onnx", chain.tail(), prefix={"layers": others, "stop": chain.stop},
                   _features_fn=features)


def onnx_forward(model_or_path: ModelLike, X: Any, batch_size: int = 1024, *, output: str | None = None) -> np.ndarray:
    """The model's scores on X via onnxruntime, as float64: the chosen output (default: the
    only output, or the only score output), or the tensor a ZipMap output is made from."""
    model, label, _ = load_onnx(model_or_path)
    if len(data_inputs(model.graph)) != 1:
        raise GdsolverError(f"ONNX model {label} must have exactly one data input")
    outs = [o.name for o in model.graph.output]
    if output is None and len(outs) == 1 and model.graph.node and \
            not any(n.op_type == "ZipMap" and outs[0] in n.output for n in model.graph.node):
        name, run_model = outs[0], model
    else:
        chain = analyse(model, output=output, label=label)
        run_model, (name,) = body_model(model, [chain.score_tensor])
    (out,) = _runner(run_model, label).run(X, batch_size, [name])
    return out


def _atomic_write(data: bytes, out_path: Path) -> None:
    """Never a half-written model: temp file in the destination directory + rename."""
    atomic_write_bytes(out_path, data)


def apply_to_onnx(model_or_path: ModelLike, W: Any, b: Any, out_path: str | os.PathLike,
                  layer: DenseLayer | dict | int | str | None = None, *, output: str | None = None) -> None:
    """Write a copy of the model with one dense layer's weights replaced by W (M, N), b (M,).

    layer: the DenseLayer (of network_from_onnx) the weights were solved for (or its location dict, as a
    sweep instance records it), a chain index or a node name; default the last layer of the chain producing `output`. Only initializers change,
    so every graph output keeps working. The input file (or ModelProto) is never modified;
    out_path is written atomically and must differ from the input file. Initializers shared
    with other nodes are refused."""
    model, label, in_path = load_onnx(model_or_path)
    out_path = Path(out_path)
    if in_path is not None and out_path.exists() and os.path.samefile(in_path, out_path):
        raise GdsolverError(f"out_path '{out_path}' is the input model; write to a different file")
    loc = layer if isinstance(layer, dict) else layer.location if isinstance(layer, DenseLayer) else {}
    if output is None and loc.get("graph_output"):
        output = loc["graph_output"]
        outs = [o.name for o in model.graph.output]
        if output not in outs:
            raise GdsolverError(f"layer does not describe ONNX model {label}: location['graph_output'] is "
                                f"{output!r}, the model's outputs are {outs}")
    chain = analyse(model, strip_softmax=True, output=output, label=label)
    head = _resolve_layer(chain, layer, label)
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


def _resolve_layer(chain: Chain, layer: DenseLayer | dict | int | str | None, label: str) -> AffineNode:
    L = len(chain.layers)
    if layer is None:
        return chain.layers[-1]
    if isinstance(layer, (DenseLayer, dict)):
        loc = layer if isinstance(layer, dict) else layer.location
        if "affine_node" not in loc:
            raise GdsolverError("layer was not extracted from an ONNX model: its location names no node")
        matches = [la for la in chain.layers if la.location()["affine_node"] == loc.get("affine_node")
                   and la.w.name == loc.get("W_initializer")]
        if not matches:
            raise GdsolverError(f"layer does not describe ONNX model {label}: no dense layer with node "
                                f"{loc.get('affine_node')!r} and weights {loc.get('W_initializer')!r}")
        found = matches[0].location()
        diff = [k for k in _IDENTITY_KEYS if k in loc and loc[k] != found[k]]
        if diff:
            k = diff[0]
            raise GdsolverError(f"layer does not describe ONNX model {label}: location['{k}'] is "
                                f"{loc[k]!r}, the model has {found[k]!r}")
        return matches[0]
    names = [la.name for la in chain.layers]
    if isinstance(layer, str) and layer in names:
        return chain.layers[names.index(layer)]
    try:
        k = int(layer)
    except (TypeError, ValueError):
        raise GdsolverError(f"layer: ONNX model {label} has no dense layer {layer!r}; its layers are {names}") from None
    if not -L <= k < L:
        raise GdsolverError(f"layer: index {k} is out of range; ONNX model {label} has {L} dense layer(s) {names}")
    return chain.layers[k]
