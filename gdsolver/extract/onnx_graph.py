"""ONNX graph analysis and surgery: find the chain of dense layers producing an output, cut the
prefix, write weights.

A dense layer is  [Relu] <- Gemm(H, B, C?) | Add(MatMul(H, B), C) (either Add operand order) |
MatMul(H, B)  with constant B, C (initializers or Constant nodes, Identity-wrapped or not):
what torch.onnx.export makes of nn.Linear with both exporters, and what skl2onnx makes of
scikit-learn's MLPs. Walking back from the chosen graph output:

    [ZipMap] <- (Identity | Cast | Reshape | Flatten)* <- [Softmax | LogSoftmax] <- ... <- last layer

(a Cast only to FLOAT or DOUBLE: a Cast to an integer type, float16 or bool changes the scores'
values, and an output behind one is refused rather than evaluated on the float scores)

and from each layer's input, through Identity / Cast / Reshape / Flatten, to the layer before
it; the chain starts at the first layer whose input comes from anything else (the prefix).
With several graph outputs the score output is chosen: outputs behind ArgMax /
ArrayFeatureExtractor (skl2onnx's `label`) are derived from the scores and never chosen.
Everything here is pure protobuf/numpy work; onnxruntime lives in onnx_runtime.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import onnx
from onnx import numpy_helper

from gdsolver.errors import GdsolverError, UnsupportedModelError

_TAIL_HINT = "expected Gemm or MatMul(+Add), optionally followed by Relu and then Softmax/LogSoftmax"


def node_label(node: onnx.NodeProto) -> str:
    """Human-readable node reference for error messages (exported nodes usually have names)."""
    name = node.name or f"<unnamed, output '{node.output[0] if node.output else '?'}'>"
    return f"'{name}' (op {node.op_type})"


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            yield a.g
        elif a.type == onnx.AttributeProto.GRAPHS:
            yield from a.graphs


def node_uses(node: onnx.NodeProto) -> list[str]:
    """Names a node reads, including outer-scope names read by its subgraphs (If/Loop/Scan)."""
    names = [n for n in node.input if n]
    for g in _subgraphs(node):
        for sub in g.node:
            names.extend(node_uses(sub))
    return names


def use_counts(graph: onnx.GraphProto) -> dict[str, list[str]]:
    """tensor name -> labels of every node (or graph output) that reads it."""
    uses: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node_uses(node):
            uses.setdefault(name, []).append(node_label(node))
    for out in graph.output:
        uses.setdefault(out.name, []).append(f"graph output '{out.name}'")
    return uses


@dataclass
class ConstRef:
    """A constant tensor: an initializer or the output of a Constant node."""

    name: str
    kind: str  # "initializer" | "Constant"
    array: np.ndarray
    dtype: np.dtype


def _constants(graph: onnx.GraphProto) -> dict[str, ConstRef]:
    consts: dict[str, ConstRef] = {}
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        consts[init.name] = ConstRef(init.name, "initializer", arr, arr.dtype)
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            t = _attr(node, "value", None)
            if isinstance(t, onnx.TensorProto):  # value_float(s)/value_int(s) variants are not weights
                arr = numpy_helper.to_array(t)
                consts[node.output[0]] = ConstRef(node.output[0], "Constant", arr, arr.dtype)
    return consts


@dataclass
class AffineNode:
    """One dense layer of an ONNX graph: its affine node(s), weights in PyTorch convention, Relu."""

    kind: str  # "Gemm" | "MatMul+Add" | "MatMul"
    affine_node: onnx.NodeProto
    add_node: onnx.NodeProto | None
    data_input: str  # tensor H feeding the affine node
    w: ConstRef
    c: ConstRef | None
    trans_a: int
    trans_b: int
    alpha: float
    beta: float
    relu_node: onnx.NodeProto | None
    W: np.ndarray  # (M, N) float64
    b: np.ndarray  # (M,) float64

    @property
    def has_bias(self) -> bool:
        return self.c is not None and self.beta != 0.0

    @property
    def activation(self) -> str:
        return "relu" if self.relu_node is not None else "identity"

    @property
    def name(self) -> str:
        return self.affine_node.name or self.w.name

    def location(self) -> dict[str, Any]:
        """JSON-able description of where the layer lives (DenseLayer.location)."""
        return {
            "affine_op": self.kind,
            "affine_node": self.affine_node.name,
            "add_node": self.add_node.name if self.add_node is not None else None,
            "input_tensor": self.data_input,
            "W_initializer": self.w.name,
            "W_kind": self.w.kind,
            "W_shape": list(self.w.array.shape),
            "b_initializer": self.c.name if self.c is not None else None,
            "b_kind": self.c.kind if self.c is not None else None,
            "b_shape": list(self.c.array.shape) if self.c is not None else None,
            "has_bias": self.has_bias,
            "transA": self.trans_a,
            "transB": self.trans_b,
            "alpha": self.alpha,
            "beta": self.beta,
            "activation_node": self.relu_node.name if self.relu_node is not None else None,
        }


@dataclass
class Chain:
    """The dense layers at the end of a graph, the chosen output and the tail after the last layer."""

    layers: list[AffineNode]
    graph_input: str
    graph_output: str  # the output the chain produces (chosen among several)
    score_tensor: str  # the tensor holding the scores: graph_output, or the input of a ZipMap
    pre_head: str  # last layer's output (before the tail): act(H W^T + b)
    softmax_node: onnx.NodeProto | None
    softmax_axis: int | None
    classes: list | None  # skl2onnx classifiers: the labels of the score columns
    stop: str | None = None  # what ends the chain on the input side (for messages)

    def tail(self) -> dict[str, Any]:
        return {"softmax": self.softmax_node.op_type if self.softmax_node is not None else None,
                "softmax_node": self.softmax_node.name if self.softmax_node is not None else None,
                "softmax_axis": self.softmax_axis, "output": self.graph_output, "score_tensor": self.score_tensor,
                "graph_input": self.graph_input, "classes": self.classes}


def data_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are fed at run time (not initializers kept as inputs)."""
    inits = {i.name for i in graph.initializer}
    return [i for i in graph.input if i.name not in inits]


def _bias_vector(c: ConstRef, M: int, node: onnx.NodeProto) -> np.ndarray:
    """A bias constant broadcast over (T, M) as an (M,) vector; per-sample biases are refused."""
    arr = c.array.astype(np.float64)
    if arr.size == 1 and arr.ndim <= 2:
        return np.full(M, float(arr.reshape(())), dtype=np.float64)
    if arr.shape in ((M,), (1, M)):
        return arr.reshape(M)
    raise GdsolverError(f"bias '{c.name}' of node {node_label(node)} has shape {arr.shape}; expected ({M},) or (1, {M})")


def _check_finite(arr: np.ndarray, what: str) -> None:
    bad = np.flatnonzero(~np.isfinite(arr))
    if len(bad):
        idx = np.unravel_index(bad[0], arr.shape)
        raise GdsolverError(f"{what} holds {arr[idx]} at index {list(map(int, idx))} ({len(bad)} non-finite "
                            "entries); a dense layer needs finite weights and biases")


# ops a score passes through unchanged in content (shape bookkeeping, dtype) on its way out
_SHAPE_OPS = ("Identity", "Cast", "Reshape", "Flatten")
# the Casts that keep every value of a float score: to float32 or float64 (float16 and bfloat16
# round them; an integer type truncates them; bool keeps only their sign)
_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)


def value_changing_cast(node: onnx.NodeProto) -> bool:
    return node.op_type == "Cast" and _attr(node, "to", onnx.TensorProto.FLOAT) not in _FLOAT_TYPES


def _type_name(elem: int) -> str:
    try:
        return onnx.TensorProto.DataType.Name(elem)
    except ValueError:
        return f"type {elem}"


# ops that turn scores into labels: an output behind them is not a score output
_LABEL_OPS = ("ArgMax", "ArgMin", "ArrayFeatureExtractor", "TopK")
_AFFINE_OPS = ("Gemm", "Add", "MatMul")


class _Graph:
    """Producers, constants and helpers for walking a graph backwards."""

    def __init__(self, model: onnx.ModelProto, label: str) -> None:
        self.model, self.graph, self.label = model, model.graph, label
        self.producers = {o: n for n in self.graph.node for o in n.output if o}
        self.consts = _constants(self.graph)

    def producer(self, name: str) -> onnx.NodeProto | None:
        return self.producers.get(name)

    def resolve_const(self, name: str) -> str:
        """Follow Identity nodes back to an initializer/Constant (the legacy exporter inserts them)."""
        while name not in self.consts and name in self.producers and self.producers[name].op_type == "Identity":
            name = self.producers[name].input[0]
        return name

    def skip_shape_ops(self, name: str) -> tuple[str, onnx.NodeProto | None]:
        """Walk back from tensor `name` through value-keeping ops (Identity, Reshape, Flatten, a
        Cast to float or double); (tensor reached, its producer). A Cast to anything else (INT64,
        float16, bool) changes the values and ends the walk."""
        node = self.producer(name)
        while node is not None and node.op_type in _SHAPE_OPS and node.input and \
                self.resolve_const(node.input[0]) not in self.consts and not value_changing_cast(node):
            name = node.input[0]
            node = self.producer(name)
        return name, node

    def affine(self, node: onnx.NodeProto, relu: onnx.NodeProto | None) -> AffineNode | None:
        """The dense layer whose last node is `node` (Gemm, MatMul + Add, MatMul), or None."""
        consts, resolve = self.consts, self.resolve_const
        add_node, c_name = None, None
        alpha, beta, trans_a, trans_b = 1.0, 1.0, 0, 0
        if node.op_type == "Gemm":
            kind, aff = "Gemm", node
            c_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
            alpha, beta = float(_attr(node, "alpha", 1.0)), float(_attr(node, "beta", 1.0))
            trans_a, trans_b = int(_attr(node, "transA", 0)), int(_attr(node, "transB", 0))
            for key, v in (("alpha", alpha), ("beta", beta)):
                if not np.isfinite(v):
                    raise GdsolverError(f"node {node_label(node)} has {key}={v}; a dense layer needs a finite {key}")
            if alpha == 0.0:
                raise GdsolverError(f"node {node_label(node)} has alpha=0: its output ignores its weights, so they "
                                    "can be neither swept nor written")
        elif node.op_type == "Add":
            pick = []
            for x, other in zip(node.input, reversed(node.input)):
                p = self.producer(x)
                if p is not None and p.op_type == "MatMul" and resolve(other) in consts:
                    pick.append((p, resolve(other)))
            if len(pick) != 1:
                return None
            (aff, c_name), kind, add_node = pick[0], "MatMul+Add", node
        elif node.op_type == "MatMul":
            kind, aff = "MatMul", node
        else:
            return None
        a_name, b_name = aff.input[0], resolve(aff.input[1])
        if b_name not in consts:
            if resolve(a_name) in consts and kind != "Gemm":
                raise GdsolverError(f"node {node_label(aff)} computes W @ H (weights on the left); expected H @ B "
                                    "with constant B")
            if kind == "MatMul":
                return None  # a product of two computed tensors is not a dense layer
            raise GdsolverError(f"weight input '{b_name}' of node {node_label(aff)} is not an initializer or Constant "
                                "node")
        if resolve(a_name) in consts:
            raise GdsolverError(f"data input '{a_name}' of node {node_label(aff)} is a constant; a dense layer must "
                                "read the body's output")
        w = consts[b_name]
        if w.array.ndim != 2:
            raise GdsolverError(f"weight '{b_name}' of node {node_label(aff)} has shape {w.array.shape}; expected a "
                                "2-D matrix")
        B = w.array.astype(np.float64)
        _check_finite(B, f"weight '{b_name}' of node {node_label(aff)}")
        # PyTorch convention W (M, N): Gemm computes alpha * A @ op(B), MatMul computes H @ B.
        with np.errstate(over="ignore"):
            W = alpha * (B if trans_b else B.T)
        if not np.isfinite(W).all():
            raise GdsolverError(f"node {node_label(aff)}: alpha={alpha:g} times weight '{b_name}' overflows float64")
        M = W.shape[0]
        c = None
        if c_name is not None:
            c_name = resolve(c_name)
            if c_name not in consts:
                raise GdsolverError(f"bias input '{c_name}' of node {node_label(add_node or aff)} is not an "
                                    "initializer or Constant node")
            c = consts[c_name]
            b = _bias_vector(c, M, add_node or aff)
            _check_finite(b, f"bias '{c_name}' of node {node_label(add_node or aff)}")
            with np.errstate(over="ignore"):
                b = beta * b
            if not np.isfinite(b).all():
                raise GdsolverError(f"node {node_label(aff)}: beta={beta:g} times bias '{c_name}' overflows float64")
        else:
            b = np.zeros(M, dtype=np.float64)
        return AffineNode(kind, aff, add_node, a_name, w, c, trans_a, trans_b, alpha, beta, relu, W, b)

    def layer_ending_at(self, name: str) -> AffineNode | None:
        """The dense layer producing tensor `name` (through an optional Relu), or None."""
        node = self.producer(name)
        relu = None
        if node is not None and node.op_type == "Relu":
            relu, node = node, self.producer(node.input[0])
        if node is None or node.op_type not in _AFFINE_OPS:
            return None
        return self.affine(node, relu)


def _walk_tail(g: _Graph, out_name: str, strip_softmax: bool) -> tuple[str, str, onnx.NodeProto | None, str | None]:
    """From a graph output back to the last dense layer's output: (pre_head tensor, score tensor,
    softmax node, kind of output: "score" | "label" | "other: op")."""
    name, score = out_name, out_name
    node = g.producer(name)
    if node is not None and node.op_type == "ZipMap":  # skl2onnx: probabilities as a list of maps
        name = score = node.input[0]
    softmax = None
    cast = None  # a value-changing Cast on the way: the output is not the scores the chain computes
    while True:
        name, node = g.skip_shape_ops(name)
        if node is None:
            return name, score, softmax, "other: graph input"
        if node.op_type in _LABEL_OPS:
            return name, score, softmax, "label"
        if value_changing_cast(node):
            cast = cast or node
            name = node.input[0]
            continue
        if cast is not None and node.op_type in ("Relu", "Softmax", "LogSoftmax", *_AFFINE_OPS):
            to = _type_name(_attr(cast, "to", 0))
            return name, score, softmax, (f"cast: node {node_label(cast)} casts the scores to {to}, which changes "
                                          "their values; only Identity, Reshape, Flatten, Softmax/LogSoftmax over "
                                          "the classes and casts to FLOAT or DOUBLE are looked through at the output")
        if node.op_type in ("Softmax", "LogSoftmax") and softmax is None:
            if not strip_softmax:
                raise UnsupportedModelError(f"final node {node_label(node)} cannot be formulated as a MILP; pass "
                                    "strip_softmax=True to drop it")
            softmax, name = node, node.input[0]
            continue
        if node.op_type in ("Relu", *_AFFINE_OPS):
            return name, score, softmax, "score"
        return name, score, softmax, f"other: {node_label(node)}"


def analyse(model: onnx.ModelProto, *, strip_softmax: bool = True, output: str | None = None,
            label: str = "<model>") -> Chain:
    """The chain of dense layers producing a graph output (see the module docstring)."""
    graph = model.graph
    ins = data_inputs(graph)
    if len(ins) != 1:
        raise GdsolverError(f"ONNX model {label} has {len(ins)} data inputs ({[i.name for i in ins]}); exactly one "
                            "is required")
    g = _Graph(model, label)
    outs = [o.name for o in graph.output]
    if output is not None:
        if output not in outs:
            raise GdsolverError(f"output: ONNX model {label} has no graph output {output!r}; its outputs are {outs}")
        chosen = output
        pre, score, softmax, kind = _walk_tail(g, chosen, strip_softmax)
        if kind == "label":
            raise GdsolverError(f"output {chosen!r} of ONNX model {label} holds class labels (ArgMax); choose a score "
                                f"output among {outs}")
    else:
        walks = {o: _walk_tail(g, o, strip_softmax) for o in outs}
        scores = [o for o in outs if walks[o][3] == "score"]
        # the one output rule (as extract.torch_frontend.resolve_output): among several score
        # outputs, the one whose chain of dense layers computes all the others (logits beside the
        # embedding they are made from)
        outer = _outermost(g, scores, walks) if len(scores) > 1 else []
        if len(scores) == 1:
            chosen = scores[0]
        elif len(outs) == 1:
            chosen = outs[0]
        elif len(outer) == 1:
            chosen = outer[0]
        else:
            raise GdsolverError(f"ONNX model {label} has {len(outs)} graph outputs ({outs}) and "
                                f"{len(scores)} of them are scores of a dense layer; pass --output NAME "
                                "(output= in Python) to choose one")
        pre, score, softmax, kind = walks[chosen]
    if kind.startswith("cast: "):
        raise UnsupportedModelError(f"ONNX model {label}, graph output '{chosen}': {kind[len('cast: '):]}")
    if kind != "score":
        node = g.producer(pre)
        if node is None:
            raise GdsolverError(f"tensor '{pre}' before graph output '{chosen}' is not produced by a node; {_TAIL_HINT}")
        raise UnsupportedModelError(f"unsupported final node {node_label(node)} before graph output '{chosen}'; {_TAIL_HINT}")
    softmax_axis = None
    if softmax is not None:
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        softmax_axis = int(_attr(softmax, "axis", -1 if opset >= 13 else 1))
        if softmax_axis not in (-1, 1):
            raise GdsolverError(f"final node {node_label(softmax)} has axis={softmax_axis}; only axis -1 or 1 (over "
                                "outputs) can be stripped")
    last = g.layer_ending_at(pre)
    if last is None:
        node = g.producer(pre)
        raise UnsupportedModelError(f"final node {node_label(node)} is not MatMul + constant bias; {_TAIL_HINT}")
    layers = [last]
    seen = {last.w.name}
    stop = None
    while layers[0].trans_a == 0:
        name, node = g.skip_shape_ops(layers[0].data_input)
        prev = g.layer_ending_at(name)
        if prev is None or prev.w.name in seen:
            if node is not None:
                stop = f"node {node_label(node)} comes before it"
            break
        seen.add(prev.w.name)
        layers.insert(0, prev)
    return Chain(layers, ins[0].name, chosen, score, pre, softmax, softmax_axis, _classes(g, chosen, outs, score),
                 stop)


def _chain_weights(g: _Graph, pre: str) -> list[str]:
    """Weight names of the dense layers producing tensor `pre`, from the last one back (the walk
    of `analyse`, without its checks)."""
    last = g.layer_ending_at(pre)
    names: list[str] = []
    while last is not None and last.w.name not in names:
        names.append(last.w.name)
        if last.trans_a != 0:
            break
        last = g.layer_ending_at(g.skip_shape_ops(last.data_input)[0])
    return names


def _outermost(g: _Graph, scores: list[str], walks: dict[str, tuple]) -> list[str]:
    """The score outputs whose chain contains the last dense layer of every other score output."""
    chains = {o: _chain_weights(g, walks[o][0]) for o in scores}
    if not all(chains.values()):
        return []
    return [o for o in scores if all(chains[p][0] in chains[o] for p in scores)]


def _classes(g: _Graph, chosen: str, outs: list[str], score: str) -> list | None:
    """skl2onnx classifiers map the argmax of the scores to labels with ArrayFeatureExtractor(classes, .)."""
    for node in g.graph.node:
        if node.op_type == "ArrayFeatureExtractor" and len(node.input) == 2:
            arg = g.producer(node.input[1])
            if arg is not None and arg.op_type == "ArgMax":
                src, _ = g.skip_shape_ops(arg.input[0])
                if src in (score, g.skip_shape_ops(score)[0]) or arg.input[0] in (score, chosen):
                    c = g.consts.get(g.resolve_const(node.input[0]))
                    if c is not None and c.array.ndim == 1:
                        return c.array.tolist()
    return None


def _elem_type(graph: onnx.GraphProto, name: str) -> int | None:
    for vi in list(graph.value_info) + list(graph.input) + list(graph.output):
        if vi.name == name and vi.type.HasField("tensor_type"):
            return vi.type.tensor_type.elem_type
    return None


def body_model(model: onnx.ModelProto, outputs: list[str]) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of `model` whose outputs are the given tensors, with unreachable nodes pruned.

    Each requested tensor is exposed through a fresh Identity node, which sidesteps clashes
    with existing value_info and the case where H is the graph input itself. Returns the
    model and the new output names (same order).
    """
    g = model.graph
    new_names = [f"__gdsolver_out{i}" for i in range(len(outputs))]
    taps = [onnx.helper.make_node("Identity", [src], [dst], name=f"__gdsolver_tap{i}")
            for i, (src, dst) in enumerate(zip(outputs, new_names))]
    # Backward reachability from the requested tensors, in one reverse sweep over the
    # topologically sorted node list.
    needed = set(outputs)
    keep = []
    for node in reversed(g.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(node_uses(node))
    keep.reverse()
    body = onnx.ModelProto()
    body.CopyFrom(model)
    del body.graph.node[:]
    body.graph.node.extend(keep + taps)
    inits = [i for i in g.initializer if i.name in needed]
    del body.graph.initializer[:]
    body.graph.initializer.extend(inits)
    init_names = {i.name for i in inits}
    all_inits = {i.name for i in g.initializer}
    ins = [i for i in g.input if i.name not in all_inits or i.name in init_names]
    del body.graph.input[:]
    body.graph.input.extend(ins)
    del body.graph.output[:]
    for src, dst in zip(outputs, new_names):
        et = _elem_type(g, src)
        vi = onnx.helper.make_tensor_value_info(dst, et, None) if et else onnx.ValueInfoProto(name=dst)
        body.graph.output.append(vi)
    return body, new_names


def _replace_const(graph: onnx.GraphProto, ref: ConstRef, new: np.ndarray) -> None:
    tensor = numpy_helper.from_array(new, name=ref.name)
    if ref.kind == "initializer":
        for init in graph.initializer:
            if init.name == ref.name:
                init.CopyFrom(tensor)
                return
    else:
        for node in graph.node:
            if node.op_type == "Constant" and node.output and node.output[0] == ref.name:
                for a in node.attribute:
                    if a.name == "value":
                        a.t.CopyFrom(tensor)
                        return
    raise AssertionError(f"constant {ref.name} vanished")  # analyse() found it moments ago


def _cast_checked(arr: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, as an error
        out = arr.astype(dtype)
    if np.issubdtype(dtype, np.inexact) and not np.isfinite(out).all():
        raise GdsolverError(f"new values for {what} overflow its dtype {dtype}")
    return out


def write_weights(model: onnx.ModelProto, head: AffineNode, W: np.ndarray, b: np.ndarray) -> None:
    """Store W (M, N), b (M,) into `model` in place so that the affine node computes H W^T + b.

    Gemm: alpha * op(B) == W^T and beta * C == b; MatMul: B == W^T; Add: C == b. C keeps its
    shape and dtype, except a scalar C of an M>1 layer, which becomes (M,) (broadcast-equal).
    """
    graph = model.graph
    uses = use_counts(graph)
    node = head.affine_node
    refs = [head.w] + ([head.c] if head.c is not None else [])
    for ref in refs:
        readers = uses.get(ref.name, [])
        if len(readers) > 1:
            raise GdsolverError(f"{ref.kind} '{ref.name}' of node {node_label(node)} is shared with other readers "
                                f"({', '.join(readers)}); refusing to change it")
    if head.alpha == 0.0:
        raise GdsolverError(f"node {node_label(node)} has alpha=0; its weights cannot be changed")
    Bt = W / head.alpha  # op(B)^T in PyTorch convention
    B_new = Bt if (head.kind == "Gemm" and head.trans_b) else Bt.T
    if B_new.shape != head.w.array.shape:
        raise GdsolverError(f"weight '{head.w.name}' of node {node_label(node)} has shape {head.w.array.shape}, "
                            f"new weights give {B_new.shape}")
    B_new = _cast_checked(B_new, head.w.dtype, f"'{head.w.name}'")

    C_new = None
    bias_node = head.add_node or node
    if head.c is None or head.beta == 0.0:
        if np.any(b != 0.0):
            raise GdsolverError(f"node {node_label(bias_node)} has no bias (no C input or beta=0); cannot write a nonzero b")
    else:
        c_vec = b / head.beta
        shape = head.c.array.shape
        M = W.shape[0]
        if head.c.array.size == M:
            C_new = c_vec.reshape(shape)
        elif np.all(c_vec == c_vec[0]):
            C_new = np.full(shape, c_vec[0])
        else:
            C_new = c_vec  # scalar bias of a multi-output layer: widen to (M,), broadcasts the same
        C_new = _cast_checked(C_new, head.c.dtype, f"'{head.c.name}'")
    _replace_const(graph, head.w, B_new)
    if C_new is not None:
        _replace_const(graph, head.c, C_new)
