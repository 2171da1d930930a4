"""ONNX graph analysis and surgery: find the final affine node, cut the body, write weights.

Recognised tail (graph output backwards; Identity nodes are looked through):

    [Softmax | LogSoftmax]  <-  [Relu]  <-  Gemm(H, B, C?)
                                          |  Add(MatMul(H, B), C)   (either Add operand order)
                                          |  MatMul(H, B)            (Linear without bias, dynamo=False)

This is what torch.onnx.export produces for nn.Linear heads with both exporters
(dynamo=True: Gemm with transA=0/transB=1 attributes spelled out; dynamo=False: Gemm, or a
bare MatMul against a pre-transposed (N, M) initializer when bias=False). Everything here is
pure protobuf/numpy work; onnxruntime lives in onnx_runtime.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import onnx
from onnx import numpy_helper

from gdsolver.errors import GdsolverError

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
class AffineHead:
    """The final affine node of an ONNX graph, its weights in PyTorch convention and its tail."""

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
    softmax_node: onnx.NodeProto | None
    softmax_axis: int | None
    pre_head: str  # tensor before the (stripped) softmax: act(H W^T + b)
    graph_input: str
    graph_output: str
    W: np.ndarray  # (M, N) float64
    b: np.ndarray  # (M,) float64

    @property
    def has_bias(self) -> bool:
        return self.c is not None and self.beta != 0.0

    def location(self) -> dict[str, Any]:
        """JSON-able description of where the layer lives (FinalLayer.location)."""
        return {
            "graph_input": self.graph_input,
            "graph_output": self.graph_output,
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
            "softmax_node": self.softmax_node.name if self.softmax_node is not None else None,
            "softmax_op": self.softmax_node.op_type if self.softmax_node is not None else None,
            "softmax_axis": self.softmax_axis,
            "softmax_stripped": self.softmax_node is not None,
        }


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


def analyse(model: onnx.ModelProto, *, strip_softmax: bool = True, label: str = "<model>") -> AffineHead:
    """Find the final affine layer of `model` (see the module docstring for the accepted tail)."""
    graph = model.graph
    if len(graph.output) != 1:
        raise GdsolverError(f"ONNX model {label} has {len(graph.output)} graph outputs "
                            f"({[o.name for o in graph.output]}); exactly one is required")
    ins = data_inputs(graph)
    if len(ins) != 1:
        raise GdsolverError(f"ONNX model {label} has {len(ins)} data inputs ({[i.name for i in ins]}); exactly one is required")
    out_name = graph.output[0].name
    producers = {o: n for n in graph.node for o in n.output if o}
    consts = _constants(graph)

    def producer(name: str) -> onnx.NodeProto | None:
        node = producers.get(name)
        while node is not None and node.op_type == "Identity":  # no-ops some exporters insert
            node = producers.get(node.input[0])
        return node

    def resolve_const(name: str) -> str:
        """Follow Identity nodes back to an initializer/Constant (the legacy exporter inserts them)."""
        while name not in consts and name in producers and producers[name].op_type == "Identity":
            name = producers[name].input[0]
        return name

    def unsupported(node: onnx.NodeProto | None, name: str) -> GdsolverError:
        if node is None:
            return GdsolverError(f"tensor '{name}' before graph output '{out_name}' is not produced by a node; {_TAIL_HINT}")
        return GdsolverError(f"unsupported final node {node_label(node)} before graph output '{out_name}'; {_TAIL_HINT}")

    cur = out_name  # tensor being resolved, walking backwards from the output
    node = producer(cur)
    softmax_node, softmax_axis, relu_node = None, None, None
    pre_head = out_name
    if node is not None and node.op_type in ("Softmax", "LogSoftmax"):
        if not strip_softmax:
            raise GdsolverError(f"final node {node_label(node)} cannot be formulated as a MILP; pass strip_softmax=True to drop it")
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        softmax_axis = int(_attr(node, "axis", -1 if opset >= 13 else 1))
        if softmax_axis not in (-1, 1):
            raise GdsolverError(f"final node {node_label(node)} has axis={softmax_axis}; only axis -1 or 1 (over outputs) can be stripped")
        softmax_node, pre_head = node, node.input[0]
        cur = pre_head
        node = producer(cur)
    if node is not None and node.op_type == "Relu":
        relu_node, cur = node, node.input[0]
        node = producer(cur)
    if node is None:
        raise unsupported(None, cur)

    add_node: onnx.NodeProto | None = None
    c: ConstRef | None = None
    alpha, beta, trans_a, trans_b = 1.0, 1.0, 0, 0
    if node.op_type == "Gemm":
        kind, affine = "Gemm", node
        a_name, b_name = affine.input[0], affine.input[1]
        c_name = affine.input[2] if len(affine.input) > 2 and affine.input[2] else None
        alpha, beta = float(_attr(affine, "alpha", 1.0)), float(_attr(affine, "beta", 1.0))
        trans_a, trans_b = int(_attr(affine, "transA", 0)), int(_attr(affine, "transB", 0))
    elif node.op_type == "Add":
        add_node = node
        mm = [(producer(x), x) for x in node.input]
        pick = [(p, resolve_const(other)) for (p, _), other in zip(mm, reversed(node.input))
                if p is not None and p.op_type == "MatMul" and resolve_const(other) in consts]
        if len(pick) != 1:
            raise GdsolverError(f"final node {node_label(node)} is not MatMul + constant bias; {_TAIL_HINT}")
        affine, c_name = pick[0]
        kind = "MatMul+Add"
        a_name, b_name = affine.input[0], affine.input[1]
    elif node.op_type == "MatMul":
        kind, affine, c_name = "MatMul", node, None
        a_name, b_name = node.input[0], node.input[1]
    else:
        raise unsupported(node, cur)

    b_name = resolve_const(b_name)
    c_name = resolve_const(c_name) if c_name is not None else None
    if b_name not in consts:
        if resolve_const(a_name) in consts and kind != "Gemm":
            raise GdsolverError(f"node {node_label(affine)} computes W @ H (weights on the left); expected H @ B with constant B")
        raise GdsolverError(f"weight input '{b_name}' of node {node_label(affine)} is not an initializer or Constant node")
    if resolve_const(a_name) in consts:
        raise GdsolverError(f"data input '{a_name}' of node {node_label(affine)} is a constant; the final layer must read the body's output")
    w = consts[b_name]
    if w.array.ndim != 2:
        raise GdsolverError(f"weight '{b_name}' of node {node_label(affine)} has shape {w.array.shape}; expected a 2-D matrix")
    B = w.array.astype(np.float64)
    # PyTorch convention W (M, N): Gemm computes alpha * A @ op(B), MatMul computes H @ B.
    W = alpha * (B if trans_b else B.T)
    M = W.shape[0]
    if c_name is not None:
        if c_name not in consts:
            raise GdsolverError(f"bias input '{c_name}' of node {node_label(add_node or affine)} is not an initializer or Constant node")
        c = consts[c_name]
        b = beta * _bias_vector(c, M, add_node or affine)
    else:
        b = np.zeros(M, dtype=np.float64)

    return AffineHead(kind=kind, affine_node=affine, add_node=add_node, data_input=a_name, w=w, c=c,
                      trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, relu_node=relu_node,
                      softmax_node=softmax_node, softmax_axis=softmax_axis, pre_head=pre_head,
                      graph_input=ins[0].name, graph_output=out_name, W=W, b=b)


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


def write_weights(model: onnx.ModelProto, head: AffineHead, W: np.ndarray, b: np.ndarray) -> None:
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
