"""Full-batch L-BFGS and restarts (issue 19), checked against numpy's least squares and by
recomputing the chosen restart from the history."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import gdsolver  # noqa: E402
from gdsolver.errors import GdsolverError  # noqa: E402
from clirun import run  # noqa: E402


def linear_data(seed=0, n=200):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float64)
    Y = X @ rng.normal(size=(4, 2)) + 0.5 + 0.1 * rng.normal(size=(n, 2))
    return X, Y


def test_lbfgs_reaches_the_least_squares_optimum():
    X, Y = linear_data()
    torch.manual_seed(0)
    model = nn.Linear(4, 2).double()
    gdsolver.GDTrainer(model, "regression", optimizer="lbfgs", epochs=5).fit((X, Y))
    A = np.hstack([X, np.ones((len(X), 1))])
    coef, *_ = np.linalg.lstsq(A, Y, rcond=None)
    got = np.vstack([model.weight.detach().numpy().T, model.bias.detach().numpy()])
    np.testing.assert_allclose(got, coef, atol=1e-6)


def test_restarts_keep_the_best_on_validation():
    X, Y = linear_data(1)
    Y = np.tanh(Y)
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    tr = gdsolver.GDTrainer(model, "regression", optimizer="adam", lr=0.01, epochs=3, restarts=3, seed=2)
    hist = tr.fit((X[:150], Y[:150]), (X[150:], Y[150:]))
    rows = hist.rows
    assert sorted({r["restart"] for r in rows}) == [0, 1, 2] and len(hist.epochs) == 9
    finals = {i: [r for r in rows if r["restart"] == i][-1]["val_loss"] for i in range(3)}
    assert hist.chosen_restart == min(finals, key=finals.get)
    assert tr.evaluate((X[150:], Y[150:]))["loss"] == pytest.approx(finals[hist.chosen_restart], rel=1e-6)
    s = hist.summary()
    assert s["epochs"] == 3 and s["chosen_restart"] == hist.chosen_restart and s["restarts"] == 3
    assert s["gd_time_s"] == pytest.approx(sum(r["gd_time_s"] or 0 for r in rows))  # every restart's time counts
    with pytest.raises(GdsolverError, match="restarts"):
        gdsolver.GDTrainer(model, "regression", restarts=0)


def test_gdsolver_sweeps_after_the_best_lbfgs_start():
    X, Y = linear_data(2)
    Y = np.abs(Y)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    tr = gdsolver.GDSolver(model, "regression", optimizer="lbfgs", epochs=2, restarts=2, max_sweeps=1,
                           radius=0.1, time_limit=20, layers="final")
    hist = tr.fit((X[:150], Y[:150]), (X[150:], Y[150:]))
    assert {r["restart"] for r in hist.epochs} == {0, 1}
    assert len(hist.sweeps) == 1 and hist.sweeps[0]["restart"] is None
    # the sweep started from the chosen restart's weights: its "before" loss is that model's
    chosen_last = [r for r in hist.epochs if r["restart"] == hist.chosen_restart][-1]
    if hist.sweeps[0]["accepted"]:
        assert hist.sweeps[0]["val_loss"] <= chosen_last["val_loss"] * 1.01
    else:
        assert hist.sweeps[0]["val_loss"] == pytest.approx(chosen_last["val_loss"])


def test_cli_lbfgs_method(tmp_path):
    p = run("train", "--dataset", "affine", "-m", "lbfgs", "-m", "gdsolver-lbfgs", "--epochs", "2", "--n-train", "120",
            "--max-sweeps", "1", "--layers", "final", "--radius", "0.05", "--time-limit", "10", "--json", "o.json",
            cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    import json

    res = {r["method"]: r for r in json.loads((tmp_path / "o.json").read_text())["results"]}
    assert set(res) == {"lbfgs", "gdsolver-lbfgs"} and res["lbfgs"]["epochs"] == 2
