"""The command line as careful as the trainer (issue 12): `solve` moves the answer to the
closest point by default, and `apply --data` refuses to write a model that is worse on the
data. Checked with onnxruntime forward passes of the written models and ir.verify."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import gdsolver  # noqa: E402
from gdsolver.extract import network_from_onnx, onnx_forward  # noqa: E402
from gdsolver.formulate import correct_mask  # noqa: E402
from clirun import assert_user_error, run  # noqa: E402


def _export(model, X, path: Path) -> None:
    model.eval()
    torch.onnx.export(model, (torch.from_numpy(X[:1]),), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A digits MLP trained to ~97% training accuracy (ONNX), its data, held-out data, and a
    sweep instance with a wide box (radius 0.3) solved with and without the closest point."""
    from sklearn.datasets import load_digits

    d = tmp_path_factory.mktemp("closest_apply")
    digits = load_digits()
    X, y = (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    Xt, yt = torch.from_numpy(X[:600]), torch.from_numpy(y[:600])
    for _ in range(30):
        for i in range(0, 600, 32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(Xt[i:i + 32]), yt[i:i + 32]).backward()
            opt.step()
    _export(model, X, d / "m.onnx")
    np.savez(d / "data.npz", X=X[:600], y=y[:600])
    np.savez(d / "other.npz", X=X[600:1200], y=y[600:1200])
    # the paper's counting head with nothing kept correct: what the closest point and apply's check are for
    p = run("compile", "m.onnx", "--data", "data.npz", "--task", "classification", "--radius", "0.3",
            "--mode", "paper", "--keep-correct", "0", "-o", "s.gdsm", cwd=d)
    assert p.returncode == 0, p.stderr
    p = run("solve", "s.gdsm", cwd=d)  # closest point: the default
    assert p.returncode == 0, p.stderr
    assert "closest point" in p.stdout and "moved the weights" in p.stdout
    p = run("solve", "s.gdsm", "--no-closest", "-o", "raw.json", cwd=d)
    assert p.returncode == 0, p.stderr
    assert "closest point" not in p.stdout
    return d, X[:600], y[:600]


def _l1_moved(inst, x):
    blk, ref = inst.unpack(x), inst.unpack(inst.start)
    return float(np.abs(blk["w"] - ref["w"]).sum() + np.abs(blk["b"] - ref["b"]).sum())


def test_solve_writes_the_closest_point_and_records_both(case):
    d, X, y = case
    inst = gdsolver.load(d / "s.gdsm")
    res, raw = gdsolver.load_result(d / "s.result.json"), gdsolver.load_result(d / "raw.json")
    assert res.status == raw.status == "OPTIMAL"
    assert raw.closest == {}
    info = res.closest
    assert info["applied"] is True and info["lp_status"] == "OPTIMAL"
    # x is a solution of the original instance with the MIP's objective ...
    assert gdsolver.verify(inst, res.x).ok
    assert res.objective == pytest.approx(raw.objective, abs=1e-6) == info["mip_objective"]
    # ... that moves the weights (recomputed here from x) less than the solver's answer
    assert _l1_moved(inst, res.x) == pytest.approx(info["moved_l1"], rel=1e-9, abs=1e-9)
    assert _l1_moved(inst, raw.x) == pytest.approx(info["mip_moved_l1"], rel=1e-9, abs=1e-9)
    assert info["moved_l1"] < 0.5 * info["mip_moved_l1"]
    # the points the MIP fixed are fixed by the closest point too, by onnxruntime after apply
    p = run("apply", "m.onnx", "s.result.json", "-o", "closest.onnx", cwd=d)
    assert p.returncode == 0, p.stderr
    idx = np.array(inst.meta["points"])
    net = network_from_onnx(d / "closest.onnx", X)
    o = net.forward(net.features(X[idx], -1), -1)
    assert correct_mask(o, y[idx], inst.meta["margin"] / 2).sum() == round(res.objective)


def _accuracy(path: Path, X, y) -> float:
    return float((onnx_forward(path, X).argmax(1) == y).mean())


def test_apply_with_data_writes_a_model_that_is_not_worse(case):
    d, X, y = case
    p = run("apply", "m.onnx", "s.result.json", "-o", "ok.onnx", "--data", "data.npz", cwd=d)
    before, after = _accuracy(d / "m.onnx", X, y), _accuracy(d / "ok.onnx", X, y)
    assert p.returncode == 0, p.stderr
    assert after >= before  # independent forward pass of the written file
    assert f"{before:.6g}" in p.stdout and f"{after:.6g}" in p.stdout
    assert "instance points correct" in p.stdout  # the instance's own data: its points are scored too


def test_apply_refuses_a_worse_model_unless_forced(case):
    """The solver's corner of a wide box (no closest point) costs training accuracy here."""
    d, X, y = case
    p = run("apply", "m.onnx", "raw.json", "-o", "worse.onnx", "--data", "data.npz", cwd=d)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("accuracy ") and lines[0].endswith("on data.npz; not written (use --force)")
    assert not (d / "worse.onnx").exists()
    assert not [f for f in d.iterdir() if f.name.startswith(".worse.onnx")]  # no temporary left behind
    p = run("apply", "m.onnx", "raw.json", "-o", "worse.onnx", "--data", "data.npz", "--force", cwd=d)
    assert p.returncode == 0, p.stderr
    # independently: the model it refused is worse, by the figures it printed
    before, after = _accuracy(d / "m.onnx", X, y), _accuracy(d / "worse.onnx", X, y)
    assert after < before
    assert f"accuracy {before:.3f} -> {after:.3f} on data.npz" in p.stderr
    # on held-out data, watching the loss
    Xo, yo = np.load(d / "other.npz")["X"], np.load(d / "other.npz")["y"]
    p = run("apply", "m.onnx", "raw.json", "-o", "w2.onnx", "--data", "other.npz", "--accept-on", "loss", cwd=d)
    o0, o1 = onnx_forward(d / "m.onnx", Xo).astype(np.float64), onnx_forward(d / "worse.onnx", Xo).astype(np.float64)

    def ce(o):
        z = o - o.max(1, keepdims=True)
        return float((np.log(np.exp(z).sum(1)) - z[np.arange(len(yo)), yo]).mean())

    assert ce(o1) > ce(o0)
    assert p.returncode == 1 and p.stderr.startswith("cross-entropy ") and not (d / "w2.onnx").exists()


def test_apply_check_options_are_checked(case):
    d, _, _ = case
    # without --data, the data the instance was compiled from is checked, on the watched figure asked for
    p = run("apply", "m.onnx", "s.result.json", "-o", "x.onnx", "--accept-on", "loss", cwd=d)
    assert p.returncode == 1 and "cross-entropy" in p.stderr and "not written" in p.stderr, (p.stdout, p.stderr)
    assert_user_error(run("apply", "m.onnx", "s.result.json", "-o", "x.onnx", "--data", "data.npz",
                          "--accept-on", "speed", cwd=d), "accept_on", "speed")
    assert_user_error(run("apply", "m.onnx", "s.result.json", "-o", "x.onnx", "--data", "nope.npz", cwd=d),
                      "nope.npz")
    assert_user_error(run("apply", "m.onnx", "s.result.json", "-o", "m.onnx", "--data", "data.npz", cwd=d),
                      "overwrite")
    assert not (d / "x.onnx").exists()


def test_regression_apply_watches_the_mse(tmp_path):
    from gdsolver.data.datasets import load_dataset

    X, Y = load_dataset("affine", n=300, seed=1)
    X, Y = X.astype(np.float32), (Y / 10).astype(np.float32)
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    _export(model, X, tmp_path / "r.onnx")
    np.savez(tmp_path / "d.npz", X=X, y=Y)
    assert run("compile", "r.onnx", "--data", "d.npz", "--task", "regression", "--radius", "0.1", "--mode", "l1",
               "-o", "r.gdsm",
               cwd=tmp_path).returncode == 0
    assert run("solve", "r.gdsm", cwd=tmp_path).returncode == 0
    res = gdsolver.load_result(tmp_path / "r.result.json")
    assert res.closest["applied"] and gdsolver.verify(gdsolver.load(tmp_path / "r.gdsm"), res.x).ok
    assert_user_error(run("apply", "r.onnx", "r.result.json", "-o", "x.onnx", "--data", "d.npz", "--accept-on",
                          "accuracy", cwd=tmp_path), "regression")
    # the verdict follows an independent MSE of the forced write
    assert run("apply", "r.onnx", "r.result.json", "-o", "forced.onnx", "--data", "d.npz", "--force",
               cwd=tmp_path).returncode == 0
    mse0 = float(((onnx_forward(tmp_path / "r.onnx", X) - Y) ** 2).mean())
    mse1 = float(((onnx_forward(tmp_path / "forced.onnx", X) - Y) ** 2).mean())
    p = run("apply", "r.onnx", "r.result.json", "-o", "r2.onnx", "--data", "d.npz", cwd=tmp_path)
    worse = mse1 > mse0 * (1 + 1e-9)
    assert p.returncode == (1 if worse else 0), (mse0, mse1, p.stderr)
    assert (tmp_path / "r2.onnx").exists() is not worse
    assert (p.stderr.startswith("mse ") and "not written" in p.stderr) if worse else "watched" in p.stdout
