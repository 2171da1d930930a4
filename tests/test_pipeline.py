"""The one sweep pipeline (gdsolver.pipeline): `gdsolver solve` gives the trainer's answer on the
same instance for every head, a squared sweep of a Linear is least squares, replay reproduces a
pipeline result, and the command line with its defaults never makes a model worse."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from gdsolver.compile import load_result
from gdsolver.extract.network import DenseLayer, Network
from gdsolver.formulate import check_claims
from gdsolver.formulate.refine import true_loss
from gdsolver.ir import load, save, verify
from gdsolver.pipeline import SolveSettings, replay, solve_sweep
from gdsolver.train.config import SWEEP_DEFAULTS
from gdsolver.train.sweep import prepare_sweep

from clirun import run


def _inputs(net, X, k: int) -> np.ndarray:
    """Layer k's inputs by the chain's own forward pass (the model is the chain, no prefix)."""
    H = np.asarray(X, np.float64)
    for la in net.layers[:k]:
        H = la.forward(H)
    return H


def _chain(seed: int, task: str):
    rng = np.random.default_rng(seed)
    M = 3 if task == "classification" else 2
    net = Network([DenseLayer(rng.normal(size=(5, 4)), 0.1 * rng.normal(size=5), "relu", "hidden"),
                   DenseLayer(rng.normal(size=(M, 5)), rng.normal(size=M), "identity", "out")], "torch",
                  _features_fn=lambda X, k, bs: _inputs(net, X, k))
    X = rng.normal(size=(40, 4))
    o = net.forward(X)
    y = (o.argmax(1) + rng.integers(0, 2, 40)) % M if task == "classification" else o + rng.normal(size=o.shape)
    return net, X, y


HEADS = [("regression", "squared"), ("regression", "l1"), ("regression", "paper"), ("classification", "ce"),
         ("classification", "paper"), ("classification", "compact"), ("classification", "count+ce")]


@pytest.mark.parametrize("task,mode", HEADS)
def test_cli_solve_gives_the_trainers_answer(tmp_path, task, mode):
    net, X, y = _chain(1, task)
    job = prepare_sweep(net, X, y, task=task, layer=-1, radius=0.5, mode=mode, points=12 if mode != "ce" else None,
                        seed=0)
    inst = job.instance
    save(inst, tmp_path / "s.gdsm")
    # the trainer's sweep: its settings, no time limit reached on these sizes
    api = solve_sweep(inst, SWEEP_DEFAULTS.solve_settings(threads=1))
    assert api.usable, api.reason
    p = run("solve", "s.gdsm", "--threads", "1", "--time-limit", str(SWEEP_DEFAULTS.time_limit), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    res = load_result(tmp_path / "s.result.json")
    assert res.status == api.result.status
    assert res.objective == pytest.approx(api.result.objective, rel=1e-6, abs=1e-9)
    # the written answer is a point of the instance in the file, and its claims hold by a forward pass
    assert verify(inst, res.x).ok and check_claims(inst, res.x).ok
    np.testing.assert_allclose(inst.unpack(res.x)["w"], api.instance.unpack(api.x)["w"], atol=1e-6)
    if mode in ("squared", "ce"):  # a convex sweep: solved directly by scipy, checked against the MILP's rounds
        assert res.backend == "scipy" and res.options["pipeline"]["convex"] == "direct"
        cuts = solve_sweep(inst, SolveSettings(convex="cuts", round_tol=1e-6, rounds=100))
        assert cuts.usable and cuts.rounds >= 1 and cuts.result.backend == "highs"
        direct = true_loss(inst, res.x)
        assert direct < true_loss(inst, inst.start)
        assert direct <= cuts.true_loss * (1 + 1e-9) and direct == pytest.approx(cuts.true_loss, rel=1e-4)


def test_squared_cli_sweep_of_a_linear_is_least_squares(tmp_path):
    """The issue's case: a Linear(8, 2) on 200 points with a box that does not bind."""
    rng = np.random.default_rng(0)
    H = rng.normal(size=(200, 8))
    Y = H @ rng.normal(size=(8, 2)) + 3 + rng.normal(size=(200, 2))
    np.savez(tmp_path / "lin.npz", W=0.1 * rng.normal(size=(2, 8)), b=np.zeros(2), H=H, y=Y)
    p = run("compile", "lin.npz", "--task", "regression", "--radius", "1000", "-o", "lin.gdsm", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    inst = load(tmp_path / "lin.gdsm")
    assert inst.meta["mode"] == "squared"  # the trainer's head by default
    p = run("solve", "lin.gdsm", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    x = load_result(tmp_path / "lin.result.json").x
    w = inst.unpack(x)
    sse = float(((H @ w["w"].T + w["b"] - Y) ** 2).sum())
    A = np.hstack([H, np.ones((200, 1))])
    coef, *_ = np.linalg.lstsq(A, Y, rcond=None)
    best = float(((A @ coef - Y) ** 2).sum())
    assert sse == pytest.approx(best, rel=1e-3)


def test_replay_reproduces_a_pipeline_result(tmp_path):
    net, X, y = _chain(2, "regression")
    inst = prepare_sweep(net, X, y, task="regression", layer=-1, radius=0.5, mode="squared", seed=0).instance
    save(inst, tmp_path / "s.gdsm")
    assert run("solve", "s.gdsm", cwd=tmp_path).returncode == 0
    rec = load_result(tmp_path / "s.result.json")
    assert rec.options["pipeline"]["rounds"] == SolveSettings().rounds
    rows = list(replay(tmp_path / "s.gdsm"))
    assert len(rows) == 1 and rows[0].ok, rows
    assert rows[0].replayed.objective == pytest.approx(rec.objective, rel=1e-6)
    # a record whose objective is not its x's is refused (checked, never trusted)
    doc = json.loads((tmp_path / "s.result.json").read_text())
    doc["objective"] = rec.objective * 2 + 1
    (tmp_path / "s.result.json").write_text(json.dumps(doc))
    assert not next(iter(replay(tmp_path / "s.gdsm"))).ok


def _sklearn_case(tmp_path, kind: str):
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.datasets import load_diabetes, load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    if kind == "classifier":
        X, y = load_digits(return_X_y=True)
        X = (X / 16).astype(np.float32)
        est = MLPClassifier(hidden_layer_sizes=(32,), max_iter=30, random_state=0)
        options = {"zipmap": False}
    else:
        X, y = load_diabetes(return_X_y=True)
        X, y = X.astype(np.float32), (y / 100).astype(np.float32)
        est = MLPRegressor(hidden_layer_sizes=(16,), max_iter=300, random_state=0)
        options = {}
    n = int(0.7 * len(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X[:n], y[:n])
    onx = skl2onnx.to_onnx(est, X[:1], options={id(est): options} if options else None)
    (tmp_path / "m.onnx").write_bytes(onx.SerializeToString())
    np.savez(tmp_path / "train.npz", X=X[:n], y=y[:n])
    np.savez(tmp_path / "test.npz", X=X[n:], y=y[n:])
    return "classification" if kind == "classifier" else "regression"


def _metric(tmp_path, model: str, data: str, task: str) -> float:
    from gdsolver.modelfile.evaluate import evaluate_onnx

    d = np.load(tmp_path / data)
    got = evaluate_onnx(tmp_path / model, d["X"], d["y"], task)
    return got["accuracy"] if task == "classification" else -got["mse"]


@pytest.mark.parametrize("kind,points", [("classifier", None), pytest.param("classifier", "32", marks=pytest.mark.slow),
                                         pytest.param("regressor", None, marks=pytest.mark.slow),
                                         pytest.param("regressor", "32", marks=pytest.mark.slow)])
def test_sklearn_model_never_gets_worse_with_the_defaults(tmp_path, kind, points):
    """compile -> solve -> apply with the defaults: the model written is never worse on the
    training data (apply checks the data the instance was compiled from by itself), or nothing
    is written and the exit code says so."""
    task = _sklearn_case(tmp_path, kind)
    extra = ["--points", points] if points else []
    p = run("compile", "m.onnx", "--data", "train.npz", "--task", task, *extra, "-o", "s.gdsm", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p = run("solve", "s.gdsm", "--time-limit", "60", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p = run("apply", "m.onnx", "s.result.json", "-o", "new.onnx", cwd=tmp_path)
    before = _metric(tmp_path, "m.onnx", "train.npz", task)
    if p.returncode == 1:  # refused: worse on the training data, nothing written
        assert "not written" in p.stderr and not (tmp_path / "new.onnx").exists()
        return
    assert p.returncode == 0, p.stderr
    after = _metric(tmp_path, "new.onnx", "train.npz", task)
    assert after >= before, (before, after)
    held = (_metric(tmp_path, "m.onnx", "test.npz", task), _metric(tmp_path, "new.onnx", "test.npz", task))
    print(f"{kind} points={points}: train {before:.4f} -> {after:.4f}, held-out {held[0]:.4f} -> {held[1]:.4f}")


def test_apply_refuses_without_its_data_unless_forced(tmp_path):
    task = _sklearn_case(tmp_path, "classifier")
    assert run("compile", "m.onnx", "--data", "train.npz", "--task", task, "-o", "s.gdsm", cwd=tmp_path).returncode == 0
    assert run("solve", "s.gdsm", cwd=tmp_path).returncode == 0
    (tmp_path / "train.npz").rename(tmp_path / "moved.npz")
    p = run("apply", "m.onnx", "s.result.json", "-o", "new.onnx", cwd=tmp_path)
    assert p.returncode == 2 and "train.npz" in p.stderr and "--force" in p.stderr, p.stderr
    p = run("apply", "m.onnx", "s.result.json", "-o", "new.onnx", "--data", "moved.npz", cwd=tmp_path)
    assert p.returncode in (0, 1), p.stderr  # checked on the data given
    p = run("apply", "m.onnx", "s.result.json", "-o", "forced.onnx", "--force", cwd=tmp_path)
    assert p.returncode == 0 and (tmp_path / "forced.onnx").exists(), p.stderr


def test_apply_refuses_a_result_that_misstates_its_objective(tmp_path):
    task = _sklearn_case(tmp_path, "classifier")
    assert run("compile", "m.onnx", "--data", "train.npz", "--task", task, "--points", "64", "-o", "s.gdsm",
               cwd=tmp_path).returncode == 0
    assert run("solve", "s.gdsm", cwd=tmp_path).returncode == 0
    doc = json.loads((tmp_path / "s.result.json").read_text())
    doc["objective"] = doc["objective"] * 0.5  # a better figure than its x gives
    (tmp_path / "s.result.json").write_text(json.dumps(doc))
    p = run("apply", "m.onnx", "s.result.json", "-o", "new.onnx", cwd=tmp_path)
    assert p.returncode == 2 and "objective" in p.stderr and not (tmp_path / "new.onnx").exists(), p.stderr
