"""Lifted-ReLU BCD: monotone objective, digits accuracy, write-back, supported models, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gdsolver.errors import GdsolverError
from gdsolver.train.lifted_bcd import LiftedBCDTrainer, parse_relu_mlp
from gdsolver.train.methods import make_trainer, method_names

from clirun import run


def _deep_net(seed: int = 0, bias_last: bool = False) -> nn.Sequential:
    torch.manual_seed(seed)
    # a hidden layer without bias in the middle: both cases of the augmentation
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 7, bias=False), nn.ReLU(),
                         nn.Linear(7, 3, bias=bias_last))


def _blobs(seed: int = 0, T: int = 150):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=T)
    X = rng.normal(size=(T, 3, 4)) + y[:, None, None] * 0.7
    return X.astype(np.float32), y


@pytest.mark.parametrize("gamma, inner", [(0.1, 5), (5.0, 1), ([10.0, 0.01], 20)])
def test_objective_is_monotonically_non_increasing(gamma, inner):
    X, y = _blobs()
    tr = LiftedBCDTrainer(_deep_net(), "classification", gamma=gamma, mu=1e-3, inner_steps=inner, epochs=25)
    hist = tr.fit((X, y))
    F = np.array(tr.objective_trace)
    assert len(F) == 26 and F[-1] < F[0]
    steps = np.diff(F)
    assert np.all(steps <= 1e-12 * np.maximum(1.0, np.abs(F[:-1]))), steps.max()
    assert [r["objective_value"] for r in hist.epochs] == list(F[1:])


def test_regression_objective_decreases_and_mse_improves():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 4))
    y = np.c_[np.abs(X[:, 0]) + X[:, 1], np.maximum(X[:, 2], 0.0)]
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    tr = LiftedBCDTrainer(net, "regression", epochs=30)
    with torch.no_grad():
        before = float(torch.mean((net(torch.as_tensor(X, dtype=torch.float32)) - torch.as_tensor(y)) ** 2))
    hist = tr.fit((X, y))
    F = np.array(tr.objective_trace)
    assert np.all(np.diff(F) <= 1e-12 * np.maximum(1.0, np.abs(F[:-1])))
    assert hist.last["train_loss"] < 0.2 * before


def test_written_back_weights_give_the_bcd_forward():
    X, y = _blobs(1)
    net = _deep_net(1, bias_last=True).double()
    tr = LiftedBCDTrainer(net, "classification", epochs=5)
    tr.fit((X, y))
    with torch.no_grad():
        out = net(torch.as_tensor(X, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(out, tr.forward_numpy(X), rtol=1e-12, atol=1e-12)
    # float32 model: the same up to float32 rounding
    net32 = _deep_net(1, bias_last=True)
    tr32 = LiftedBCDTrainer(net32, "classification", epochs=5)
    tr32.fit((X, y))
    with torch.no_grad():
        out32 = net32(torch.as_tensor(X)).numpy()
    np.testing.assert_allclose(out32, tr32.forward_numpy(X), rtol=1e-4, atol=1e-4)
    assert tr32.evaluate((X, y))["acc"] == pytest.approx(float(np.mean(tr32.forward_numpy(X).argmax(1) == y)))


def test_digits_accuracy():
    from gdsolver.train.models import build_model
    from gdsolver.modelfile.data import load_split_for

    split = load_split_for("digits", None, seed=0)
    net = build_model("mlp", (64,), 10, hidden=32, seed=0)
    tr = LiftedBCDTrainer(net, "classification", epochs=20)  # defaults: gamma 0.1, mu 1e-4, 5 inner steps
    hist = tr.fit(split.train, split.val)
    acc = tr.evaluate(split.test)["acc"]
    # measured: test 0.944, val 0.931, train 0.950 (seed 0, Linear(64,32)-ReLU-Linear(32,10))
    assert acc >= 0.92, acc
    assert hist.last["val_acc"] >= 0.90


@pytest.mark.parametrize("model, needle", [
    (nn.Sequential(nn.Conv2d(1, 3, 4), nn.ReLU(), nn.Flatten(), nn.Linear(75, 10)), "Conv2d"),
    (nn.Sequential(nn.Linear(4, 5), nn.Sigmoid(), nn.Linear(5, 2)), "Sigmoid"),
    (nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2), nn.ReLU()), "ends with nn.ReLU"),
    (nn.Sequential(nn.Linear(4, 5), nn.Linear(5, 2)), "expected nn.ReLU"),
    (nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Dropout(), nn.Linear(5, 2)), "Dropout"),
    (nn.Linear(4, 2), "nn.Sequential"),
    (nn.Sequential(nn.ReLU()), "ReLU"),
])
def test_unsupported_models_are_clear_errors(model, needle):
    with pytest.raises(GdsolverError, match=needle):
        LiftedBCDTrainer(model)


def test_bad_options_are_clear_errors():
    net = _deep_net()
    with pytest.raises(GdsolverError, match="gamma: give one number or 2"):
        LiftedBCDTrainer(net, gamma=[1.0])
    with pytest.raises(GdsolverError, match="gamma"):
        LiftedBCDTrainer(net, gamma=-1.0)
    with pytest.raises(GdsolverError, match="mu"):
        LiftedBCDTrainer(net, mu=0.0)
    with pytest.raises(GdsolverError, match="inner_steps"):
        LiftedBCDTrainer(net, inner_steps=0)
    assert parse_relu_mlp(net)[0] is True and len(parse_relu_mlp(net)[1]) == 3


def test_registered_by_name_and_ignores_other_methods_options():
    assert "lifted-bcd" in method_names()
    tr = make_trainer("lifted-bcd", _deep_net(), "classification", lr=0.1, batch_size=8, radius=0.5, gamma=2.0,
                      mu=1e-2, inner_steps=3, epochs=2, patience=None)
    assert isinstance(tr, LiftedBCDTrainer)
    assert (tr.gamma, tr.mu, tr.inner_steps, tr.epochs) == ([2.0, 2.0], 1e-2, 3, 2)


def test_cli_trains_bpgrad_and_lifted_bcd(tmp_path: Path):
    p = run("train", "--dataset", "digits", "-m", "bpgrad", "-m", "lifted-bcd", "--epochs", "2", "--n-train", "200",
            "--csv", str(tmp_path / "s.csv"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    text = (tmp_path / "s.csv").read_text()
    assert "\nbpgrad," in text and "\nlifted-bcd," in text
