"""PyTorch frontend: finding the last Linear by execution, its inputs H, write-back, hashing."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from gdsolver.errors import GdsolverError  # noqa: E402
from gdsolver.extract import DenseLayer, apply_to_torch, model_sha256, network_from_torch, sha256_file  # noqa: E402

ATOL, RTOL = 1e-5, 1e-4


def last_layer(model, X, **kw):
    """The network of a model and its last dense layer (the one these tests sweep)."""
    net = network_from_torch(model, X, **kw)
    return net, net.layers[-1]


def data(*shape: int, T: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(T, *shape)).astype(np.float32)


class Net(nn.Module):
    """Head registered *before* the body, relu via F.relu: registration order would mislead."""

    def __init__(self, relu: bool) -> None:
        super().__init__()
        self.head = nn.Module()
        self.head.fc = nn.Linear(8, 3)
        self.body = nn.Sequential(nn.Linear(5, 8), nn.Tanh())
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.head.fc(self.body(x))
        return F.relu(o) if self.relu else o


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten())
        self.fc = nn.Linear(108, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def seq(*tail: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3), *tail)


@pytest.mark.parametrize("tail,act", [((), "identity"), ((nn.ReLU(),), "relu"), ((nn.ReLU(inplace=True),), "relu"),
                                      ((nn.Dropout(0.5),), "identity")])
def test_sequential(tail, act):
    model = seq(*tail)
    X = data(5)
    net, layer = last_layer(model, X)
    assert isinstance(layer, DenseLayer) and net.source == "torch" and layer.activation == act
    assert layer.location["module"] == "2" and layer.location["has_bias"]
    np.testing.assert_array_equal(layer.W, model[2].weight.detach().double().numpy())
    np.testing.assert_array_equal(layer.b, model[2].bias.detach().double().numpy())
    H = net.features(X, -1, batch_size=7)
    with torch.no_grad():
        H_ref = model[:2](torch.from_numpy(X)).double().numpy()
        y_ref = model.eval()(torch.from_numpy(X)).numpy()
    assert H.dtype == np.float64 and H.shape == (40, 8)
    np.testing.assert_allclose(H, H_ref, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(layer.forward(H), y_ref, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("relu", [False, True])
def test_nested_module_found_by_execution(relu):
    torch.manual_seed(1)
    model = Net(relu)
    X = data(5)
    net, layer = last_layer(model, X)
    assert layer.location["module"] == "head.fc"
    assert layer.activation == ("relu" if relu else "identity")
    with torch.no_grad():
        np.testing.assert_allclose(net.features(X, -1), model.body(torch.from_numpy(X)).numpy(), atol=ATOL, rtol=RTOL)


def test_conv_image_model():
    torch.manual_seed(2)
    model = ConvNet()
    X = data(1, 8, 8, T=20)
    net, layer = last_layer(model, X)
    assert layer.location["module"] == "fc" and layer.W.shape == (4, 108)
    with torch.no_grad():
        np.testing.assert_allclose(net.features(X, -1, 6), model.body(torch.from_numpy(X)).numpy(), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("relu", [False, True])
def test_all_positive_outputs_are_not_ambiguous(relu):
    """With every linear output > 0, identity and ReLU agree numerically; the probe decides."""
    model = seq(nn.ReLU()) if relu else seq()
    with torch.no_grad():
        model[2].bias.fill_(100.0)
    _, layer = last_layer(model, data(5))
    assert layer.activation == ("relu" if relu else "identity")


def _shifted_bn() -> nn.BatchNorm1d:
    bn = nn.BatchNorm1d(3)
    bn.running_mean.fill_(0.5)  # a fresh BatchNorm is (almost) the identity in eval mode
    return bn


@pytest.mark.parametrize("tail,name", [((nn.Sigmoid(),), "'2'"), ((nn.Linear(3, 3), nn.Tanh()), "'3'"),
                                       ((_shifted_bn(),), "'2'")])
def test_unsupported_heads(tail, name):
    with pytest.raises(GdsolverError, match=rf"nn.Linear {name}"):
        network_from_torch(seq(*tail), data(5))


def test_no_linear_and_non_module():
    with pytest.raises(GdsolverError, match="no nn.Linear"):
        network_from_torch(nn.Sequential(nn.Conv2d(1, 2, 3)), data(1, 8, 8))
    with pytest.raises(GdsolverError, match="torch.nn.Module"):
        network_from_torch(lambda x: x, data(5))


def test_bad_X():
    model = seq()
    X = data(5)
    X[4, 1] = np.nan
    with pytest.raises(GdsolverError, match=r"NaN.*sample 4"):
        network_from_torch(model, X)
    with pytest.raises(GdsolverError, match=r"forward failed on X of shape \(40, 6\)"):
        network_from_torch(model, data(6))
    with pytest.raises(GdsolverError, match="at least one sample"):
        network_from_torch(model, np.zeros((0, 5), np.float32))


def test_training_flags_restored():
    model = seq(nn.Dropout(0.9))
    model.train()
    model[1].eval()  # a deliberately mixed state must survive
    net = network_from_torch(model, data(5))  # dropout active would fail the output check
    net.features(data(5), -1)
    assert model.training and model[3].training and not model[1].training


def test_apply_to_torch_round_trip():
    model = seq(nn.ReLU())
    X = data(5)
    net, layer = last_layer(model, X)
    before = model_sha256(model)
    rng = np.random.default_rng(1)
    W2 = layer.W + rng.normal(size=layer.W.shape)
    b2 = layer.b + rng.normal(size=layer.b.shape)
    apply_to_torch(model, W2, b2, layer)
    assert model[2].weight.dtype == torch.float32
    assert model_sha256(model) != before
    with torch.no_grad():
        y = model(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(y, layer.forward(net.features(X, -1), W2, b2), atol=ATOL, rtol=RTOL)
    # Without a layer nothing is guessed when the model has more than one Linear.
    with pytest.raises(GdsolverError, match="2 nn.Linear modules; pass layer="):
        apply_to_torch(model, layer.W, layer.b)
    apply_to_torch(model, layer.W, layer.b, "2")  # a module name works too
    assert model_sha256(model) == before


def test_apply_to_torch_float64_model():
    model = seq().double()
    _, layer = last_layer(model, data(5))
    apply_to_torch(model, layer.W * 2, layer.b, layer)
    assert model[2].weight.dtype == torch.float64
    np.testing.assert_array_equal(model[2].weight.detach().numpy(), layer.W * 2)


def test_apply_to_torch_validation():
    model = seq()
    _, layer = last_layer(model, data(5))
    with pytest.raises(GdsolverError, match=r"W has shape \(8, 3\), expected \(3, 8\)"):
        apply_to_torch(model, layer.W.T, layer.b, layer)
    with pytest.raises(GdsolverError, match=r"b has shape"):
        apply_to_torch(model, layer.W, layer.b[:2], layer)
    W = layer.W.copy()
    W[1, 1] = np.inf
    with pytest.raises(GdsolverError, match="W contains NaN or inf"):
        apply_to_torch(model, W, layer.b, layer)
    with pytest.raises(GdsolverError, match="no submodule 'head.fc'"):
        apply_to_torch(model, layer.W, layer.b, DenseLayer(layer.W, layer.b, location={"module": "head.fc"}))
    with pytest.raises(GdsolverError, match="not extracted from a torch model"):  # an ONNX layer's location
        apply_to_torch(model, layer.W, layer.b, DenseLayer(layer.W, layer.b, location={"affine_node": "fc"}))
    np.testing.assert_array_equal(model[2].weight.detach().double().numpy(), layer.W)  # untouched


def test_linear_without_bias():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2, bias=False))
    _, layer = last_layer(model, data(5))
    assert layer.location["has_bias"] is False
    np.testing.assert_array_equal(layer.b, np.zeros(2))
    with pytest.raises(GdsolverError, match="no bias"):
        apply_to_torch(model, layer.W, np.ones(2), layer)
    apply_to_torch(model, layer.W + 1, np.zeros(2), layer)
    np.testing.assert_allclose(model[2].weight.detach().double().numpy(), layer.W + 1, rtol=1e-6)


def test_features_requires_a_model():
    from gdsolver.extract import Network

    layer = DenseLayer(np.ones((2, 3)), np.zeros(2), "relu")
    net = Network([layer], "torch")
    with pytest.raises(GdsolverError, match="no model attached"):
        net.features(np.ones((4, 3)))
    np.testing.assert_array_equal(layer.forward(-np.ones((4, 3))), np.zeros((4, 2)))
    with pytest.raises(GdsolverError, match="activation"):
        DenseLayer(np.ones((2, 3)), np.zeros(2), "tanh")


def test_hashing(tmp_path):
    p = tmp_path / "f.bin"
    payload = bytes(range(256)) * 5000
    p.write_bytes(payload)
    assert sha256_file(p) == hashlib.sha256(payload).hexdigest() == model_sha256(str(p))
    a, b = seq(), seq()
    assert model_sha256(a) == model_sha256(b)
    with torch.no_grad():
        b[0].bias[0] += 1e-6
    assert model_sha256(a) != model_sha256(b)
    with pytest.raises(GdsolverError, match="missing"):
        sha256_file(tmp_path / "missing")
    with pytest.raises(GdsolverError, match="cannot hash"):
        model_sha256(42)


def test_import_does_not_load_torch():
    code = "import sys, gdsolver.extract as e; assert 'torch' not in sys.modules and 'onnx' not in sys.modules; e.Network, e.DenseLayer"
    subprocess.run([sys.executable, "-c", code], check=True)
