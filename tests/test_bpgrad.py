"""BPGrad: the step size formula checked by hand, convergence on convex problems, options,
registration by name."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gdsolver.errors import GdsolverError
from gdsolver.train.bpgrad import BPGradTrainer
from gdsolver.train.methods import make_trainer, method_names


def test_step_size_and_update_follow_the_formula_by_hand():
    # one weight w, no bias, MSE on three points: f(w) = mean((w x - y)^2), g = mean(2 x (w x - y))
    x = np.array([[1.0], [2.0], [3.0]])
    y = np.array([[1.0], [1.0], [2.0]])
    model = nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        model.weight.fill_(2.0)
    seen: list[float] = []
    L, rho, mom, wd = 1.5, 0.5, 0.5, 0.1
    tr = BPGradTrainer(model, "regression", L=L, rho=rho, momentum=mom, weight_decay=wd, epochs=3, batch_size=3,
                       callback=lambda row: seen.append(float(model.weight.detach())))
    hist = tr.fit((x, y))

    # step 1 at w0 = 2: residuals (1, 3, 4): f1 = 26/3, g1 = 2 (1 + 6 + 12) / 3 = 38/3
    w0 = 2.0
    f1, g1 = 26 / 3, 38 / 3
    eta1 = (f1 - rho * f1) / L                       # = 26/9
    v1 = -(g1 + wd * w0) / abs(g1)
    w1 = w0 + eta1 * v1
    assert eta1 == pytest.approx(26 / 9)
    assert w1 == pytest.approx(2 - 26 / 9 * (1 + 0.2 * 3 / 38))  # = -0.934
    # step 2 at w1 (overshoots to w1 < 0, so f2 > f1 and the minimum stays f1)
    r = [w1 * 1 - 1, w1 * 2 - 1, w1 * 3 - 2]
    f2 = (r[0] ** 2 + r[1] ** 2 + r[2] ** 2) / 3
    g2 = 2 * (1 * r[0] + 2 * r[1] + 3 * r[2]) / 3
    assert f2 > f1
    eta2 = (f2 - rho * f1) / L
    v2 = mom * v1 - (g2 + wd * w1) / abs(g2)
    w2 = w1 + eta2 * v2
    # step 3 at w2 (back below f1: the minimum becomes f3)
    r = [w2 * 1 - 1, w2 * 2 - 1, w2 * 3 - 2]
    f3 = (r[0] ** 2 + r[1] ** 2 + r[2] ** 2) / 3
    g3 = 2 * (1 * r[0] + 2 * r[1] + 3 * r[2]) / 3
    eta3 = (f3 - rho * min(f1, f2, f3)) / L
    v3 = mom * v2 - (g3 + wd * w2) / abs(g3)
    w3 = w2 + eta3 * v3
    assert f3 < f1 and eta3 == pytest.approx((1 - rho) * f3 / L)

    assert tr.step_sizes == pytest.approx([eta1, eta2, eta3], rel=1e-12)
    assert seen == pytest.approx([w1, w2, w3], rel=1e-12)
    assert [r["lr"] for r in hist.epochs] == pytest.approx([eta1, eta2, eta3], rel=1e-12)  # last step of each epoch


def _linear_regression(seed: int = 0, T: int = 400, d: int = 5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(T, d))
    y = X @ rng.normal(size=(d, 1)) + 0.5 + 0.1 * rng.normal(size=(T, 1))
    return X, y


@pytest.mark.parametrize("batch_size", [32, 400])
def test_linear_regression_reaches_the_least_squares_optimum(batch_size):
    X, y = _linear_regression()
    Xa = np.c_[X, np.ones(len(X))]
    opt = float(np.mean((Xa @ np.linalg.lstsq(Xa, y, rcond=None)[0] - y) ** 2))  # 0.00996
    torch.manual_seed(0)
    model = nn.Linear(X.shape[1], 1).double()
    start = float(np.mean((model(torch.as_tensor(X)).detach().numpy() - y) ** 2))
    tr = BPGradTrainer(model, "regression", weight_decay=0.0, epochs=100 if batch_size == 400 else 20,
                       batch_size=batch_size)
    hist = tr.fit((X, y))
    final = hist.last["train_loss"]
    assert start > 100 * opt
    # the step does not vanish at the optimum (eta -> (1 - rho) f*/L), so "near": within 1%
    assert opt <= final <= 1.01 * opt


def test_logistic_regression_reaches_the_weight_decayed_optimum():
    from scipy.optimize import minimize

    rng = np.random.default_rng(1)
    T, d, K = 300, 4, 3
    X = rng.normal(size=(T, d))
    y = np.argmax(X @ rng.normal(size=(d, K)) + rng.gumbel(size=(T, K)), 1)
    wd = 5e-4  # the default; its fixed point g + wd w = 0 is the minimiser of mean CE + wd/2 ||theta||^2

    def objective(theta: np.ndarray) -> float:
        W, b = theta[:d * K].reshape(K, d), theta[d * K:]
        Z = X @ W.T + b
        Z = Z - Z.max(1, keepdims=True)
        return float(np.mean(np.log(np.exp(Z).sum(1)) - Z[np.arange(T), y]) + wd / 2 * np.sum(theta ** 2))

    best = minimize(objective, np.zeros(d * K + K), method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 1e-15}).fun
    torch.manual_seed(0)
    model = nn.Linear(d, K).double()
    tr = BPGradTrainer(model, "classification", epochs=60, batch_size=T)
    tr.fit((X, y))
    theta = np.r_[model.weight.detach().numpy().ravel(), model.bias.detach().numpy()]
    assert objective(np.zeros(d * K + K)) - best > 0.2
    assert best <= objective(theta) <= best + 1e-3


def test_zero_gradient_keeps_the_momentum_only():
    # at the exact optimum of a noiseless problem the loss gradient is 0: no division by zero
    X = np.array([[1.0], [2.0]])
    model = nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        model.weight.fill_(3.0)
    tr = BPGradTrainer(model, "regression", epochs=2, batch_size=2)
    tr.fit((X, 3 * X))
    assert float(model.weight.detach()) == 3.0 and tr.step_sizes == [0.0, 0.0]


@pytest.mark.parametrize("kw, needle", [({"L": 0}, "L"), ({"rho": 1.5}, "rho"), ({"rho": -0.1}, "rho"),
                                        ({"momentum": 1.0}, "momentum"), ({"weight_decay": -1}, "weight_decay"),
                                        ({"L": float("nan")}, "L"), ({"patience": 0}, "patience")])
def test_bad_options_are_clear_errors(kw, needle):
    with pytest.raises(GdsolverError, match=needle):
        BPGradTrainer(nn.Linear(2, 2), **kw)


def test_registered_by_name_and_ignores_other_methods_options():
    assert "bpgrad" in method_names()
    tr = make_trainer("bpgrad", nn.Linear(3, 2), "classification", lr=0.1, radius=0.5, L=20.0, rho=0.2,
                      momentum=0.8, weight_decay=0.0, epochs=2, batch_size=8, max_sweeps=None)
    assert isinstance(tr, BPGradTrainer)
    assert (tr.L, tr.rho, tr.momentum, tr.weight_decay, tr.epochs, tr.batch_size) == (20.0, 0.2, 0.8, 0.0, 2, 8)
    X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    hist = tr.fit((X, (X[:, 0] > 0).astype(np.int64)))
    assert len(hist.epochs) == 2 and all(r["lr"] is not None and math.isfinite(r["lr"]) for r in hist.epochs)
    assert tr.config()["L"] == 20.0 and "step_sizes" not in tr.config()
