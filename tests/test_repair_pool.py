"""Repair with a large keep pool (rows added per point and class as a forward pass finds them
broken), a keep margin, and the torch API's certificate file. Each answer is judged by forward
passes done here and, for minimality, by scipy's LP solver on the full problem."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from mnist_data import MNIST_DIR, needs_mnist  # noqa: E402
from test_repair import final_layer_lp, logits, mlp, points  # noqa: E402
from gdsolver.errors import GdsolverError  # noqa: E402
from gdsolver.repairs import repair  # noqa: E402
from gdsolver.repairs.api import torch_sha256  # noqa: E402
from gdsolver.repairs.certificate import array_sha256  # noqa: E402

MARGIN = 0.01


def features(model: nn.Sequential, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return nn.Sequential(*list(model)[:4]).double()(torch.as_tensor(X, dtype=torch.float64)).numpy()


def gaps(o: np.ndarray, labels: np.ndarray) -> np.ndarray:
    other = np.where(np.eye(o.shape[1], dtype=bool)[labels], -np.inf, o)
    return o[np.arange(len(o)), labels] - other.max(1)


def test_keep_pool_with_keep_margin_is_the_full_lp_optimum():
    model = mlp(4)
    X_fix, y_fix, X_keep, y_keep = points(model, n_fix=4, n_keep=400, seed=5)
    W0 = model[4].weight.detach().double().numpy().copy()
    b0 = model[4].bias.detach().double().numpy().copy()
    H_fix, H_keep = features(model, X_fix), features(model, X_keep)
    model.float()
    gap0 = gaps(H_keep @ W0.T + b0, y_keep)
    km = 0.3
    rep = repair(model, (X_fix, y_fix), X_keep, norm="l1", margin=MARGIN, keep_margin=km)
    assert rep.status == "certified", rep.lines()
    s = rep.solution
    # rows enter per (point, class): fewer than the full problem's two per keep point
    assert s.keep_pool == len(X_keep) and s.keep_rows < 2 * len(X_keep)
    # every keep point keeps min(keep margin, its gap) in a float64 forward pass of the changed model
    W = model[4].weight.detach().double().numpy()
    b = model[4].bias.detach().double().numpy()
    got = gaps(H_keep @ W.T + b, y_keep)
    assert np.all(got >= np.minimum(km, gap0) - 1e-4)
    np.testing.assert_array_equal(logits(model, X_fix).argmax(1), y_fix)
    # minimal over the full problem (every keep point, every class) by scipy
    best = final_layer_lp(W0, b0, np.vstack([H_fix, H_keep]), np.r_[y_fix, y_keep],
                          np.r_[np.full(len(H_fix), MARGIN), np.minimum(km, gap0)])
    assert s.minimal and s.objective == pytest.approx(best, rel=1e-5, abs=1e-7)
    # the keep margin is binding here: without it the change is smaller
    plain = repair(mlp(4), (X_fix, y_fix), X_keep, norm="l1", margin=MARGIN)
    assert plain.solution.objective < s.objective - 1e-6


def test_keep_margin_checked():
    model = mlp()
    X_fix, y_fix, X_keep, _ = points(model)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(GdsolverError, match="keep_margin"):
            repair(model, (X_fix, y_fix), X_keep, keep_margin=bad)


def test_torch_certificate_names_the_models_and_data(tmp_path):
    model = mlp(1)
    X_fix, y_fix, X_keep, y_keep = points(model, seed=2)
    before = torch_sha256(model)
    path = tmp_path / "cert.json"
    rep = repair(model, (X_fix, y_fix), X_keep, certificate=path)
    assert rep.status == "certified" and rep.certificate == str(path)
    doc = json.loads(path.read_text())
    assert doc["format"] == "gdsolver-repair-certificate" and doc["certified"]
    assert doc["model"]["sha256"] == before != torch_sha256(model)
    assert doc["repaired"]["sha256"] == torch_sha256(model)  # the model as changed in place
    assert doc["data"]["fix"]["arrays_sha256"] == array_sha256(X_fix, y_fix)
    assert doc["data"]["keep"]["points"] == len(X_keep)
    W = model[4].weight.detach().double().numpy()
    b = model[4].bias.detach().double().numpy()
    assert doc["result_sha256"] == array_sha256(W, b)
    # the float64 route's counts agree with a float64 forward pass done here
    f64 = doc["checks"]["torch float64"]
    assert f64["fix"]["ok"] == int((logits(model, X_fix, torch.float64).argmax(1) == y_fix).sum()) == len(X_fix)
    assert f64["keep"]["ok"] == int((logits(model, X_keep, torch.float64).argmax(1) == y_keep).sum())
    model.float()


def test_no_certificate_when_no_repair(tmp_path):
    model = mlp(1)
    X_fix, y_fix, X_keep, _ = points(model, seed=2)
    X_fix = np.vstack([X_fix, X_fix[:1]])  # the same input with two labels: no change does it
    y_fix = np.r_[y_fix, (y_fix[0] + 1) % 3]
    path = tmp_path / "cert.json"
    rep = repair(model, (X_fix, y_fix), X_keep, certificate=path)
    assert rep.status != "certified" and not path.exists() and rep.certificate is None


@pytest.mark.slow
@needs_mnist
def test_mnist_pool_repair_keeps_every_pool_point(tmp_path):
    """One epoch of Adam on MNIST, 10 wrong test points fixed at the final layer with a pool of
    3,000 correct training points: every pool point keeps its prediction by a forward pass
    here, while fewer than the pool's points were ever in the LP."""
    from gdsolver.bench.repair_bench import _predict, _prepare

    st = _prepare(MNIST_DIR, 0, 1, 3000, lambda m: None)["mlp"]
    model, fix = st["model"], st["wrong"][:10]
    X_fix, y_fix = st["Xte"][fix], st["yte"][fix]
    rep = repair(model, (X_fix, y_fix), st["X_keep"], certificate=tmp_path / "c.json")
    assert rep.status == "certified", rep.lines()
    np.testing.assert_array_equal(_predict(model, X_fix), y_fix)
    np.testing.assert_array_equal(_predict(model, st["X_keep"]), st["keep_pred"])
    assert 0 < rep.solution.keep_in_milp < 3000 and rep.solution.keep_pool == 3000
