"""ONNX frontend: a layer's inputs, weights, write-back, and refusal of unsupported models.

Models are exported with both torch exporters (dynamo=True, the default, and the legacy
TorchScript one), with fixed and dynamic batch sizes; each export is done once per module.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402

from gdsolver.errors import FormatError, GdsolverError  # noqa: E402
from gdsolver.extract import (  # noqa: E402
    apply_to_onnx,
    network_from_onnx,
    onnx_forward,
    sha256_file,
    softmax,
)

ATOL, RTOL = 1e-5, 1e-4
EXAMPLE_BATCH = 3  # fixed-batch exports accept exactly this many rows: exercises padding


def last_layer(model, X, **kw):
    """The network of an ONNX model and its last dense layer (the one these tests sweep)."""
    net = network_from_onnx(model, X, **kw)
    return net, net.layers[-1]


class ConvNet(nn.Module):
    """Image model: 2-D input (1, 8, 8), Conv2d + ReLU + Flatten body, Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten())
        self.fc = nn.Linear(3 * 6 * 6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def make_arch(name: str) -> tuple[nn.Module, tuple[int, ...], nn.Module, nn.Linear]:
    """(model, per-sample input shape, body, final Linear)."""
    torch.manual_seed(0)
    if name == "conv":
        m = ConvNet()
        return m.eval(), (1, 8, 8), m.body, m.fc
    layers = [nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)]
    if name == "mlp_relu":
        layers.append(nn.ReLU())
    elif name == "mlp_softmax":
        layers.append(nn.Softmax(dim=-1))
    m = nn.Sequential(*layers).eval()
    return m, (6,), m[:2], m[2]


ARCHS = ["mlp_id", "mlp_relu", "mlp_softmax", "conv"]
EXPORTS = [(dyn, dynb) for dyn in (True, False) for dynb in (False, True)]
# A dynamo export takes seconds: the default run exports each architecture once with dynamo
# (two with a fixed batch, two with a dynamic one; the exports other tests use), `-m slow` the rest.
FAST_DYNAMO = {("mlp_id", True), ("mlp_relu", False), ("mlp_softmax", False), ("conv", True)}
ARCH_EXPORTS = [pytest.param(arch, dyn, dynb, id=f"{arch}-{'dynamo' if dyn else 'ts'}-{'dyn' if dynb else 'fixed'}",
                             marks=pytest.mark.slow if dyn and (arch, dynb) not in FAST_DYNAMO else ())
                for arch in ARCHS for dyn, dynb in EXPORTS]


def export(model: nn.Module, shape: tuple[int, ...], path: str, *, dynamo: bool, dynamic: bool) -> None:
    x = torch.randn(EXAMPLE_BATCH, *shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            kw = {"dynamic_shapes": ({0: torch.export.Dim("batch")},)} if dynamic else {}
            torch.onnx.export(model, (x,), path, dynamo=True, verbose=False, **kw)
        else:
            kw = {"dynamic_axes": {"x": {0: "batch"}, "y": {0: "batch"}}} if dynamic else {}
            torch.onnx.export(model, (x,), path, dynamo=False, input_names=["x"], output_names=["y"], **kw)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Lazy cache (arch, dynamo, dynamic) -> (path, model, shape, body, linear)."""
    logging.getLogger("torch").setLevel(logging.ERROR)  # dynamo exporter chatter
    cache: dict = {}
    root = tmp_path_factory.mktemp("onnx")

    def get(arch: str, dynamo: bool, dynamic: bool):
        key = (arch, dynamo, dynamic)
        if key not in cache:
            model, shape, body, linear = make_arch(arch)
            path = root / f"{arch}_{'dynamo' if dynamo else 'ts'}_{'dyn' if dynamic else 'fixed'}.onnx"
            export(model, shape, str(path), dynamo=dynamo, dynamic=dynamic)
            cache[key] = (path, model, shape, body, linear)
        return cache[key]

    return get


def data(shape: tuple[int, ...], T: int = 50, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(T, *shape)).astype(np.float32)


@pytest.mark.parametrize("arch,dynamo,dynamic", ARCH_EXPORTS)
def test_features_and_weights_match_torch(exported, arch, dynamo, dynamic):
    path, model, shape, body, linear = exported(arch, dynamo, dynamic)
    X = data(shape)
    net, layer = last_layer(path, X)

    with torch.no_grad():
        H_ref = body(torch.from_numpy(X)).numpy()
        y_ref = model(torch.from_numpy(X)).numpy()
    H = net.features(X, -1, batch_size=16)
    assert H.dtype == np.float64 and H.shape == (50, linear.in_features)
    np.testing.assert_allclose(H, H_ref, atol=ATOL, rtol=RTOL)
    np.testing.assert_array_equal(layer.W, linear.weight.detach().numpy().astype(np.float64))
    np.testing.assert_array_equal(layer.b, linear.bias.detach().numpy().astype(np.float64))

    assert net.source == "onnx"
    assert layer.activation == ("relu" if arch == "mlp_relu" else "identity")
    loc = layer.location
    assert (net.tail["softmax"] == "Softmax") is (arch == "mlp_softmax")  # looked through
    assert loc["affine_op"] == "Gemm" and loc["transB"] == 1 and loc["has_bias"]
    assert loc["W_initializer"] and loc["b_initializer"] and loc["input_tensor"]
    # The numpy chain (with the tail it looked through re-applied) reproduces the full model.
    np.testing.assert_allclose(net.forward(H, -1, include_tail=True), y_ref, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(onnx_forward(path, X, batch_size=7), y_ref, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("arch,dynamo,dynamic", ARCH_EXPORTS)
def test_apply_round_trip(exported, tmp_path, arch, dynamo, dynamic):
    path, model, shape, _, _ = exported(arch, dynamo, dynamic)
    X = data(shape, T=20, seed=2)
    net, layer = last_layer(path, X)
    before = sha256_file(path)
    rng = np.random.default_rng(3)
    W2 = layer.W + 0.1 * rng.normal(size=layer.W.shape)
    b2 = layer.b + 0.1 * rng.normal(size=layer.b.shape)

    out = tmp_path / "new.onnx"
    apply_to_onnx(path, W2, b2, out, layer=layer)
    assert sha256_file(path) == before  # input never modified
    onnx.checker.check_model(str(out))
    H = net.features(X, -1)
    np.testing.assert_allclose(onnx_forward(out, X), net.forward(H, -1, {len(net) - 1: (W2, b2)}, include_tail=True),
                               atol=ATOL, rtol=RTOL)
    # The rewritten model yields the same layer back (float32 storage precision).
    _, again = last_layer(out, X)
    np.testing.assert_allclose(again.W, W2, atol=1e-6)
    np.testing.assert_allclose(again.b, b2, atol=1e-6)
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp file


# --- hand-built graphs: the other affine spellings -------------------------------------------

def make_model(nodes, inits, in_shape, out_name="y", out_shape=(None, 3), elem=TensorProto.FLOAT) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", elem, in_shape)],
        [helper.make_tensor_value_info(out_name, elem, out_shape)],
        initializer=[numpy_helper.from_array(a, n) for n, a in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m


N_IN, N_H, M_OUT = 4, 5, 3


def body_nodes():
    """x -> relu(x @ W0 + b0) = 'h'  (a MatMul/Add body, as some exporters write)."""
    rng = np.random.default_rng(0)
    inits = {"W0": rng.normal(size=(N_IN, N_H)).astype(np.float32), "b0": rng.normal(size=N_H).astype(np.float32)}
    nodes = [helper.make_node("MatMul", ["x", "W0"], ["mm0"], name="mm0"),
             helper.make_node("Add", ["mm0", "b0"], ["a0"], name="add0"),
             helper.make_node("Relu", ["a0"], ["h"], name="relu0")]
    return nodes, inits


def body_ref(X, inits):
    return np.maximum(X.astype(np.float64) @ inits["W0"] + inits["b0"], 0)


def check_roundtrip(m, tmp_path, X, W_true, b_true, act="identity"):
    """network_from_onnx recovers the last layer's (W, b), and apply_to_onnx writes a model computing
    the numpy forward. Returns (network, layer)."""
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    net, layer = last_layer(p, X)
    assert layer.activation == act
    np.testing.assert_allclose(layer.W, W_true, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(layer.b, b_true, rtol=1e-6, atol=1e-7)
    H = net.features(X, -1)
    W2, b2 = layer.W * 1.5 - 0.1, layer.b + np.arange(layer.M) * 0.3
    apply_to_onnx(m, W2, b2, tmp_path / "out.onnx")
    np.testing.assert_allclose(onnx_forward(tmp_path / "out.onnx", X), layer.forward(H, W2, b2), atol=ATOL, rtol=RTOL)
    return net, layer


def test_gemm_transb0_alpha_beta(tmp_path):
    nodes, inits = body_nodes()
    rng = np.random.default_rng(1)
    B = rng.normal(size=(N_H, M_OUT)).astype(np.float32)  # transB=0: B is (N, M)
    C = rng.normal(size=(1, M_OUT)).astype(np.float32)  # (1, M) broadcast bias
    inits |= {"B": B, "C": C}
    nodes.append(helper.make_node("Gemm", ["h", "B", "C"], ["y"], name="head", alpha=0.5, beta=2.0, transB=0))
    m = make_model(nodes, inits, [None, N_IN])
    X = data((N_IN,), T=11)
    net, layer = check_roundtrip(m, tmp_path, X, 0.5 * B.T.astype(np.float64), 2.0 * C.reshape(-1).astype(np.float64))
    assert layer.location["transB"] == 0 and layer.location["alpha"] == 0.5 and layer.location["b_shape"] == [1, M_OUT]
    np.testing.assert_allclose(net.features(X, -1), body_ref(X, inits), atol=ATOL, rtol=RTOL)
    out = onnx.load(str(tmp_path / "out.onnx"))
    C_new = next(numpy_helper.to_array(i) for i in out.graph.initializer if i.name == "C")
    assert C_new.shape == (1, M_OUT) and C_new.dtype == np.float32  # shape and dtype kept


@pytest.mark.parametrize("bias_first", [False, True])
def test_matmul_add_relu_either_order(tmp_path, bias_first):
    nodes, inits = body_nodes()
    rng = np.random.default_rng(2)
    B = rng.normal(size=(N_H, M_OUT)).astype(np.float32)
    c = rng.normal(size=M_OUT).astype(np.float32)
    inits |= {"B": B, "c": c}
    add_in = ["c", "mm1"] if bias_first else ["mm1", "c"]
    nodes += [helper.make_node("MatMul", ["h", "B"], ["mm1"], name="mm1"),
              helper.make_node("Add", add_in, ["a1"], name="add1"),
              helper.make_node("Relu", ["a1"], ["y"], name="relu1")]
    m = make_model(nodes, inits, [7, N_IN])  # fixed batch 7, T=10 -> padding
    X = data((N_IN,), T=10)
    net, layer = check_roundtrip(m, tmp_path, X, B.T.astype(np.float64), c.astype(np.float64), act="relu")
    assert layer.location["affine_op"] == "MatMul+Add" and layer.location["add_node"] == "add1"


def test_constant_node_weights_and_scalar_bias(tmp_path):
    nodes, inits = body_nodes()
    rng = np.random.default_rng(3)
    Wt = rng.normal(size=(M_OUT, N_H)).astype(np.float32)
    nodes += [helper.make_node("Constant", [], ["Wc"], name="constW", value=numpy_helper.from_array(Wt, "Wc")),
              helper.make_node("Constant", [], ["Cc"], name="constC",
                               value=numpy_helper.from_array(np.array(0.25, np.float32), "Cc")),
              helper.make_node("Gemm", ["h", "Wc", "Cc"], ["y"], name="head", transB=1)]
    m = make_model(nodes, inits, [None, N_IN])
    X = data((N_IN,), T=9)
    net, layer = check_roundtrip(m, tmp_path, X, Wt.astype(np.float64), np.full(M_OUT, 0.25))
    assert layer.location["W_kind"] == "Constant" and layer.location["b_shape"] == []


def test_identity_wrapped_weights_and_output(tmp_path):
    """Identity nodes (weights passed through Identity, Identity before the output) are looked through."""
    nodes, inits = body_nodes()
    rng = np.random.default_rng(6)
    Wt = rng.normal(size=(M_OUT, N_H)).astype(np.float32)
    c = rng.normal(size=M_OUT).astype(np.float32)
    inits |= {"W": Wt, "c": c}
    nodes += [helper.make_node("Identity", ["W"], ["Wi"], name="idW"),
              helper.make_node("Gemm", ["h", "Wi", "c"], ["g"], name="head", transB=1),
              helper.make_node("Identity", ["g"], ["y"], name="idY")]
    m = make_model(nodes, inits, [None, N_IN])
    net, layer = check_roundtrip(m, tmp_path, data((N_IN,), T=6), Wt.astype(np.float64), c.astype(np.float64))
    assert layer.location["W_initializer"] == "W"


def test_multiple_outputs_and_weights_on_left_are_refused(tmp_path):
    nodes, inits = body_nodes()
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, N_IN])],
                          [helper.make_tensor_value_info("h", TensorProto.FLOAT, [None, N_H]),
                           helper.make_tensor_value_info("a0", TensorProto.FLOAT, [None, N_H])],
                          initializer=[numpy_helper.from_array(a, n) for n, a in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(GdsolverError, match="2 graph outputs"):
        network_from_onnx(m, data((N_IN,), T=3))
    W = np.ones((N_H, N_IN), np.float32)
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="tr", perm=[1, 0]),
             helper.make_node("MatMul", ["W", "xt"], ["y"], name="mm")]
    m = make_model(nodes, {"W": W}, [None, N_IN], out_shape=(N_H, None))
    with pytest.raises(GdsolverError, match=r"'mm' \(op MatMul\) computes W @ H"):
        network_from_onnx(m, data((N_IN,), T=3))


def test_gemm_transA(tmp_path):
    """transA=1: the data input is H^T (features x samples); supported by transposing."""
    rng = np.random.default_rng(4)
    Wt = rng.normal(size=(M_OUT, N_IN)).astype(np.float32)
    c = rng.normal(size=M_OUT).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="tr", perm=[1, 0]),
             helper.make_node("Gemm", ["xt", "W", "c"], ["y"], name="head", transA=1, transB=1)]
    m = make_model(nodes, {"W": Wt, "c": c}, [None, N_IN])
    X = data((N_IN,), T=8)
    net, layer = check_roundtrip(m, tmp_path, X, Wt.astype(np.float64), c.astype(np.float64))
    np.testing.assert_allclose(net.features(X, -1, batch_size=3), X.astype(np.float64), atol=1e-7)
    assert layer.location["transA"] == 1


def test_linear_without_bias_legacy_exporter_matmul(tmp_path):
    """dynamo=False exports bias-free Linear as a bare MatMul against W^T: has_bias False."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3, bias=False)).eval()
    p = tmp_path / "nobias.onnx"
    export(model, (4,), str(p), dynamo=False, dynamic=True)
    X = data((4,), T=12)
    net, layer = last_layer(p, X)
    assert layer.location["affine_op"] == "MatMul" and not layer.location["has_bias"]
    np.testing.assert_array_equal(layer.W, model[2].weight.detach().numpy().astype(np.float64))
    np.testing.assert_array_equal(layer.b, np.zeros(3))
    W2 = layer.W + 0.5
    apply_to_onnx(p, W2, np.zeros(3), tmp_path / "out.onnx")
    np.testing.assert_allclose(onnx_forward(tmp_path / "out.onnx", X), layer.forward(net.features(X, -1), W2, layer.b),
                               atol=ATOL, rtol=RTOL)
    with pytest.raises(GdsolverError, match="no bias"):
        apply_to_onnx(p, W2, np.ones(3), tmp_path / "out2.onnx")


# --- refusals ---------------------------------------------------------------------------------

def test_shared_initializer_is_refused(tmp_path):
    rng = np.random.default_rng(5)
    S = rng.normal(size=(N_IN, N_IN)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "S"], ["h0"], name="g0"),
             helper.make_node("Relu", ["h0"], ["h"], name="r0"),
             helper.make_node("Gemm", ["h", "S"], ["y"], name="head")]
    m = make_model(nodes, {"S": S}, [None, N_IN])
    p = tmp_path / "shared.onnx"
    onnx.save(m, str(p))
    net, layer = last_layer(p, data((N_IN,), T=5))
    np.testing.assert_allclose(layer.W, S.T.astype(np.float64))
    with pytest.raises(GdsolverError, match=r"'S'.*shared.*g0"):
        apply_to_onnx(p, layer.W * 2, layer.b, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_conv_final_model_is_refused(tmp_path):
    torch.manual_seed(0)
    p = tmp_path / "conv.onnx"
    export(nn.Sequential(nn.Conv2d(1, 2, 3)).eval(), (1, 8, 8), str(p), dynamo=False, dynamic=False)
    with pytest.raises(GdsolverError, match=r"op Conv"):
        network_from_onnx(p, data((1, 8, 8), T=4))


@pytest.mark.parametrize("dynamo", [True, False])
def test_sigmoid_head_is_refused(tmp_path, dynamo):
    torch.manual_seed(0)
    p = tmp_path / "sig.onnx"
    export(nn.Sequential(nn.Linear(4, 3), nn.Sigmoid()).eval(), (4,), str(p), dynamo=dynamo, dynamic=True)
    with pytest.raises(GdsolverError, match=r"op Sigmoid"):
        network_from_onnx(p, data((4,), T=4))


def test_softmax_kept_when_not_stripping(exported):
    path, *_ = exported("mlp_softmax", False, True)
    with pytest.raises(GdsolverError, match=r"op Softmax.*strip_softmax"):
        network_from_onnx(path, data((6,)), strip_softmax=False)


def test_truncated_file(exported, tmp_path):
    path, *_ = exported("mlp_id", False, True)
    raw = path.read_bytes()
    for cut in (len(raw) // 2, len(raw) - 7, 10):
        bad = tmp_path / f"cut{cut}.onnx"
        bad.write_bytes(raw[:cut])
        with pytest.raises(FormatError, match=rf"{bad.name}"):
            network_from_onnx(bad, data((6,)))
    with pytest.raises(FormatError, match="does not exist"):
        network_from_onnx(tmp_path / "missing.onnx", data((6,)))


@pytest.mark.parametrize("dynamic", [False, True])
def test_wrong_shaped_X(exported, dynamic):
    path, _, _, _, _ = exported("conv", False, dynamic)
    with pytest.raises(GdsolverError, match=r"input 'x'.*\(1, 8, 8\).*\(5, 1, 8, 9\)"):
        network_from_onnx(path, data((1, 8, 9), T=5))
    net, layer = last_layer(path, data((1, 8, 8), T=5))
    with pytest.raises(GdsolverError, match=r"input 'x'.*\(5, 64\)"):
        net.features(data((64,), T=5), -1)


def test_nan_in_X(exported):
    path, *_ = exported("mlp_id", True, True)
    X = data((6,))
    X[3, 2] = np.nan
    with pytest.raises(GdsolverError, match=r"NaN.*sample 3"):
        network_from_onnx(path, X)
    net, layer = last_layer(path, data((6,)))
    X[3, 2] = np.inf
    with pytest.raises(GdsolverError, match="NaN or inf"):
        net.features(X, -1)


def test_apply_validation(exported, tmp_path):
    path, *_ = exported("mlp_relu", True, False)
    net, layer = last_layer(path, data((6,)))
    with pytest.raises(GdsolverError, match=r"W has shape \(3, 7\), expected \(3, 8\)"):
        apply_to_onnx(path, np.zeros((3, 7)), layer.b, tmp_path / "o.onnx")
    W = layer.W.copy()
    W[0, 0] = np.nan
    with pytest.raises(GdsolverError, match="W contains NaN"):
        apply_to_onnx(path, W, layer.b, tmp_path / "o.onnx")
    with pytest.raises(GdsolverError, match="overflow"):
        apply_to_onnx(path, layer.W * 1e300, layer.b, tmp_path / "o.onnx")
    with pytest.raises(GdsolverError, match="input model"):
        apply_to_onnx(path, layer.W, layer.b, path)
    other, *_ = exported("mlp_relu", False, False)  # different node names
    with pytest.raises(GdsolverError, match="layer does not describe"):
        apply_to_onnx(other, layer.W, layer.b, tmp_path / "o.onnx", layer=layer)
    assert not (tmp_path / "o.onnx").exists()


def test_in_memory_model_not_modified(exported, tmp_path):
    path, *_ = exported("mlp_id", True, True)
    m = onnx.load(str(path))
    before = m.SerializeToString()
    net, layer = last_layer(m, data((6,)))
    apply_to_onnx(m, layer.W + 1, layer.b, tmp_path / "o.onnx")
    assert m.SerializeToString() == before
    assert layer.location["model_path"] is None


def test_log_softmax_head(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3), nn.LogSoftmax(dim=1)).eval()
    p = tmp_path / "lsm.onnx"
    export(model, (4,), str(p), dynamo=True, dynamic=True)
    X = data((4,), T=9)
    net, layer = last_layer(p, X)
    assert net.tail["softmax"] == "LogSoftmax" and net.tail["softmax_axis"] == 1
    H = net.features(X, -1)
    np.testing.assert_allclose(net.forward(H, -1, include_tail=True), onnx_forward(p, X), atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(softmax(layer.forward(H)), np.exp(onnx_forward(p, X)), atol=ATOL, rtol=RTOL)


def test_external_data_model(tmp_path):
    """The dynamo exporter stores larger weights in '<name>.onnx.data'; loading, writing and hashing follow them."""
    from gdsolver.extract import model_sha256

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 16)).eval()
    p = tmp_path / "ext.onnx"
    export(model, (32,), str(p), dynamo=True, dynamic=True)
    ext = tmp_path / "ext.onnx.data"
    assert ext.exists() and ext.stat().st_size > 0
    X = data((32,), T=10)
    net, layer = last_layer(p, X)
    np.testing.assert_array_equal(layer.W, model[2].weight.detach().numpy().astype(np.float64))
    with pytest.raises(GdsolverError, match="does not exist"):
        apply_to_onnx(p, layer.W * 0.5, layer.b, tmp_path / "missing_dir" / "o.onnx")
    out = tmp_path / "o.onnx"
    apply_to_onnx(p, layer.W * 0.5, layer.b, out)  # self-contained output
    np.testing.assert_allclose(onnx_forward(out, X), layer.forward(net.features(X, -1), layer.W * 0.5, layer.b),
                               atol=ATOL, rtol=RTOL)
    h_model, h_file = model_sha256(p), sha256_file(p)
    assert h_model != h_file
    raw = bytearray(ext.read_bytes())
    raw[0] ^= 1
    ext.write_bytes(bytes(raw))
    assert sha256_file(p) == h_file and model_sha256(p) != h_model
    assert model_sha256(out) == sha256_file(out)
