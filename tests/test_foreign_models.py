"""Models from tools the project did not write: scikit-learn MLPs exported by skl2onnx, swept
through the CLI (any layer), each answer checked by an independent forward pass (sklearn with
the solved weights put back, and onnxruntime on the written model)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("skl2onnx")
pytest.importorskip("onnxruntime")
from skl2onnx import to_onnx  # noqa: E402
from sklearn.datasets import load_diabetes, load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402

import gdsolver  # noqa: E402
from gdsolver.extract.onnx_frontend import network_from_onnx, onnx_forward  # noqa: E402
from gdsolver.formulate import correct_mask  # noqa: E402
from clirun import assert_user_error, run  # noqa: E402


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X[:400] / 16.0).astype(np.float32)
    return X, y[:400]


@pytest.fixture(scope="module")
def classifier(digits):
    X, y = digits
    return _fit(MLPClassifier(hidden_layer_sizes=(12,), max_iter=30, random_state=0), X, y)


def _save_clf(clf, X, path, zipmap: bool) -> None:
    opts = None if zipmap else {id(clf): {"zipmap": False}}
    path.write_bytes(to_onnx(clf, X[:1], options=opts).SerializeToString())


def _logits(clf, X, layer_weights=None):
    """sklearn's own forward pass to the last layer's pre-softmax output, weights optionally replaced."""
    coefs = [c.copy() for c in clf.coefs_]
    inter = [b.copy() for b in clf.intercepts_]
    for k, (W, b) in (layer_weights or {}).items():
        coefs[k], inter[k] = W.T, b
    h = X.astype(np.float64)
    for k, (W, b) in enumerate(zip(coefs, inter)):
        h = h @ W + b
        if k < len(coefs) - 1:
            h = np.maximum(h, 0.0)
    return h


@pytest.mark.parametrize("zipmap", [True, False])
@pytest.mark.parametrize("layer", ["-1", "0"])
def test_skl2onnx_classifier_sweep_any_layer(tmp_path, digits, classifier, zipmap, layer):
    X, y = digits
    _save_clf(classifier, X, tmp_path / "clf.onnx", zipmap)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    # a hidden layer's sweep has a ReLU binary per point and unit: fewer points, a smaller box
    p = run("compile", "clf.onnx", "--data", "d.npz", "--task", "classification", "--points",
            "16" if layer == "-1" else "6", "--radius", "0.05" if layer == "-1" else "0.01", "--layer", layer,
            "--mode", "compact", "--keep-correct", "0", "-o", "s.gdsm", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    inst = gdsolver.load(tmp_path / "s.gdsm")
    assert inst.meta["layer"]["index"] == (1 if layer == "-1" else 0)
    assert run("solve", "s.gdsm", "--time-limit", "60", cwd=tmp_path).returncode == 0
    res = gdsolver.load_result(tmp_path / "s.result.json")
    assert res.status in ("OPTIMAL", "FEASIBLE") and gdsolver.verify(inst, res.x).ok
    new = inst.unpack(res.x)
    k = inst.meta["layer"]["index"]
    idx = np.array(inst.meta["points"])
    # independent route 1: sklearn's forward pass with the solved weights put back
    o = _logits(classifier, X[idx], {k: (new["w"], new["b"])})
    assert correct_mask(o, y[idx], inst.meta["margin"] / 2).sum() >= round(res.objective)
    # independent route 2: the improved ONNX file through onnxruntime, every output still works
    p = run("apply", "clf.onnx", "s.result.json", "-o", "better.onnx", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    probs = onnx_forward(tmp_path / "better.onnx", X[idx])
    np.testing.assert_allclose(probs, np.exp(o - o.max(1, keepdims=True)) /
                               np.exp(o - o.max(1, keepdims=True)).sum(1, keepdims=True), rtol=1e-4, atol=1e-5)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "better.onnx"), providers=["CPUExecutionProvider"])
    labels = sess.run([sess.get_outputs()[0].name], {"X": X[idx]})[0]
    np.testing.assert_array_equal(np.asarray(labels).ravel(), o.argmax(1))


def test_skl2onnx_classifier_output_choice(tmp_path, digits, classifier):
    X, y = digits
    _save_clf(classifier, X, tmp_path / "clf.onnx", zipmap=False)
    net = network_from_onnx(tmp_path / "clf.onnx", X)
    assert net.tail["output"] == "probabilities" and net.tail["softmax"] == "Softmax"
    assert net.tail["classes"] == list(range(10)) and len(net) == 2
    np.savez(tmp_path / "d.npz", X=X, y=y)
    p = run("compile", "clf.onnx", "--data", "d.npz", "--task", "classification", "--output-name", "label",
            "-o", "s.gdsm", cwd=tmp_path)
    assert_user_error(p, "'label'", "class labels")
    p = run("compile", "clf.onnx", "--data", "d.npz", "--task", "classification", "--output-name", "nope",
            "-o", "s.gdsm", cwd=tmp_path)
    assert_user_error(p, "no graph output 'nope'", "probabilities")
    p = run("evaluate", "clf.onnx", "--data", "d.npz", "--task", "classification", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    acc = float(next(ln for ln in p.stdout.splitlines() if ln.startswith("accuracy")).split()[-1])
    assert acc == pytest.approx((classifier.predict(X) == y).mean(), abs=1e-9)


def test_skl2onnx_classifier_with_label_names_maps_y(tmp_path, digits):
    X, y = digits
    keep = np.isin(y, [3, 7, 9])
    Xs, ys = X[keep], y[keep] * 10  # labels 30, 70, 90: the score columns are classes_ order
    clf = _fit(MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0), Xs, ys)
    _save_clf(clf, Xs, tmp_path / "c.onnx", zipmap=False)
    np.savez(tmp_path / "d.npz", X=Xs, y=ys)
    p = run("compile", "c.onnx", "--data", "d.npz", "--task", "classification", "--points", "8", "--mode", "paper",
            "--keep-correct", "0", "-o", "s.gdsm", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    inst = gdsolver.load(tmp_path / "s.gdsm")
    idx = np.array(inst.meta["points"])
    want = np.searchsorted(clf.classes_, ys[idx])
    np.testing.assert_array_equal(inst.data["y"], want)
    assert not (clf.predict(Xs[idx]) == ys[idx]).any()  # the sweep's points are the misclassified ones


def test_skl2onnx_regressor_reshape_tail(tmp_path):
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:200].astype(np.float32), (y[:200] / 100).astype(np.float32)
    reg = _fit(MLPRegressor(hidden_layer_sizes=(6,), max_iter=200, random_state=0), X, y)
    (tmp_path / "r.onnx").write_bytes(to_onnx(reg, X[:1]).SerializeToString())
    np.savez(tmp_path / "d.npz", X=X, y=y)
    for layer in ("-1", "0"):
        p = run("compile", "r.onnx", "--data", "d.npz", "--task", "regression", "--points", "40", "--radius", "0.05",
                "--layer", layer, "--mode", "l1", "-o", "r.gdsm", cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        assert run("solve", "r.gdsm", "--time-limit", "60", cwd=tmp_path).returncode == 0
        inst = gdsolver.load(tmp_path / "r.gdsm")
        res = gdsolver.load_result(tmp_path / "r.result.json")
        k = inst.meta["layer"]["index"]
        idx = np.array(inst.meta["points"])
        new = inst.unpack(res.x)
        o = _logits(reg, X[idx], {k: (new["w"], new["b"])})  # sklearn's forward pass, weights put back
        assert np.abs(o.ravel() - y[idx]).sum() == pytest.approx(res.objective, rel=1e-5, abs=1e-6)
        assert res.objective <= inst.meta["current_objective"] + 1e-9
        assert run("apply", "r.onnx", "r.result.json", "-o", "r2.onnx", cwd=tmp_path).returncode == 0
        np.testing.assert_allclose(onnx_forward(tmp_path / "r2.onnx", X[idx]).ravel(), o.ravel(), rtol=1e-4,
                                   atol=1e-4)
        p = run("evaluate", "r.onnx", "r2.onnx", "--data", "d.npz", "--task", "regression", cwd=tmp_path)
        assert p.returncode == 0, p.stderr


def test_cli_layer_errors(tmp_path, digits, classifier):
    X, y = digits
    _save_clf(classifier, X, tmp_path / "clf.onnx", zipmap=False)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    p = run("compile", "clf.onnx", "--data", "d.npz", "--task", "classification", "--layer", "5", "-o", "s.gdsm",
            cwd=tmp_path)
    assert_user_error(p, "layer", "out of range", "2 dense layer")
    p = run("compile", "clf.onnx", "--data", "d.npz", "--task", "classification", "--layer", "nonesuch",
            "-o", "s.gdsm", cwd=tmp_path)
    assert_user_error(p, "no dense layer named 'nonesuch'")
