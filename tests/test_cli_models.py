"""Model frontends through the CLI: export a PyTorch model to ONNX, compile a sweep,
solve, apply, and check the improved model with onnxruntime and with torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import gdsolver  # noqa: E402
from gdsolver.extract import apply_to_torch, network_from_onnx, network_from_torch, onnx_forward  # noqa: E402
from gdsolver.formulate import correct_mask  # noqa: E402
from clirun import assert_user_error, run, run_subprocess  # noqa: E402


def export(model, x_example, path: Path, dynamo: bool) -> None:
    model.eval()
    if dynamo:
        torch.onnx.export(model, (x_example,), str(path), dynamo=True, verbose=False,
                          dynamic_shapes=({0: torch.export.Dim("batch")},))
    else:
        torch.onnx.export(model, (x_example,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})


def train_briefly(model, X, y, loss_fn, epochs: int = 2, lr: float = 0.1) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(epochs):
        for i in range(0, len(X), 32):
            opt.zero_grad()
            loss_fn(model(Xt[i:i + 32]), yt[i:i + 32]).backward()
            opt.step()


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data[:600] / 16.0).astype(np.float32), d.target[:600].astype(np.int64)


@pytest.mark.parametrize("mode,dynamo", [  # each mode and each exporter by default; the other pairs with -m slow
    pytest.param("paper", True, id="paper-True"), pytest.param("compact", False, id="compact-False"),
    pytest.param("paper", False, id="paper-False", marks=pytest.mark.slow),
    pytest.param("compact", True, id="compact-True", marks=pytest.mark.slow)])
def test_classification_round_trip(tmp_path: Path, digits, dynamo: bool, mode: str) -> None:
    X, y = digits
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    train_briefly(model, X, y, torch.nn.functional.cross_entropy, epochs=1)
    export(model, torch.from_numpy(X[:1]), tmp_path / "m.onnx", dynamo)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    before_bytes = (tmp_path / "m.onnx").read_bytes()

    p = run("compile", "m.onnx", "--data", "data.npz", "--task", "classification", "--mode", mode,
            "--points", "12", "--keep-correct", "4", "--radius", "0.05", "-o", "s.gdsm", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    inst = gdsolver.load(tmp_path / "s.gdsm")
    assert len(inst.meta["points"]) == 12 and len(inst.meta["keep_points"]) == 4
    assert len(inst.meta["model"]["sha256"]) == 64 and len(inst.meta["data"]["sha256"]) == 64
    assert run("solve", "s.gdsm", "--time-limit", "60", cwd=tmp_path).returncode == 0
    res = gdsolver.load_result(tmp_path / "s.result.json")
    assert res.status == "OPTIMAL"
    p = run("apply", "m.onnx", "s.result.json", "-o", "better.onnx", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "m.onnx").read_bytes() == before_bytes  # input never modified

    idx = np.array(inst.meta["points"] + inst.meta["keep_points"])
    margin = inst.meta["margin"]
    # onnxruntime on the improved model: points correct (to float32 rounding of the margin) == objective
    net = network_from_onnx(tmp_path / "better.onnx", X)
    o = net.forward(net.features(X[idx], -1), -1)
    assert correct_mask(o, y[idx], margin / 2).sum() == round(res.objective)
    assert round(res.objective) >= inst.meta["current_correct"]
    assert correct_mask(o[12:], y[idx][12:], margin / 2).all()  # kept points stay correct
    # the full model output (with any softmax) argmax agrees with the layer's
    full = onnx_forward(tmp_path / "better.onnx", X[idx])
    assert (full.argmax(1) == o.argmax(1)).all()
    # torch after apply_to_torch gives the same count
    new = inst.unpack(res.x)
    apply_to_torch(model, new["w"], new["b"], network_from_torch(model, X).layers[-1])
    with torch.no_grad():
        ot = model(torch.from_numpy(X[idx])).double().numpy()
    assert correct_mask(ot, y[idx], margin / 2).sum() == round(res.objective)

    p = run("evaluate", "m.onnx", "better.onnx", "--data", "data.npz", "--task", "classification",
            "--instance", "s.gdsm", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "instance points correct" in p.stdout


def test_regression_round_trip_relu_head(tmp_path: Path) -> None:
    """compile -> solve -> apply through the installed `gdsolver` script (a new process each)."""
    from gdsolver.data.datasets import load_dataset

    X, Y = load_dataset("affine", n=300, seed=1)
    X, Y = X.astype(np.float32), (Y / 10).astype(np.float32)
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2), torch.nn.ReLU())
    train_briefly(model, X, Y, torch.nn.functional.mse_loss, epochs=2, lr=0.05)
    export(model, torch.from_numpy(X[:1]), tmp_path / "r.onnx", dynamo=False)
    np.savez(tmp_path / "d.npz", X=X, y=Y)
    p = run_subprocess("compile", "r.onnx", "--data", "d.npz", "--task", "regression", "--points", "40",
                       "--radius", "0.1", "--mode", "l1", "-o", "r.gdsm", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    inst = gdsolver.load(tmp_path / "r.gdsm")
    assert inst.meta["activation"] == "relu" and inst.meta["relu_binaries"] > 0
    assert run_subprocess("solve", "r.gdsm", "--time-limit", "60", cwd=tmp_path).returncode == 0
    res = gdsolver.load_result(tmp_path / "r.result.json")
    assert res.status == "OPTIMAL"
    assert run_subprocess("apply", "r.onnx", "r.result.json", "-o", "r2.onnx", cwd=tmp_path).returncode == 0
    idx = np.array(inst.meta["points"])
    l1_new = np.abs(onnx_forward(tmp_path / "r2.onnx", X[idx]) - Y[idx]).sum()
    l1_old = np.abs(onnx_forward(tmp_path / "r.onnx", X[idx]) - Y[idx]).sum()
    assert l1_new == pytest.approx(res.objective, rel=1e-4, abs=1e-4)
    assert l1_new <= l1_old + 1e-4
    # torch agrees with onnxruntime after write-back
    new = inst.unpack(res.x)
    apply_to_torch(model, new["w"], new["b"], network_from_torch(model, X).layers[-1])
    with torch.no_grad():
        lt = np.abs(model(torch.from_numpy(X[idx])).numpy() - Y[idx]).sum()
    assert lt == pytest.approx(res.objective, rel=1e-4, abs=1e-4)
    # torch frontend gives the same features as ONNX
    Ht = network_from_torch(model, X).features(X, -1)
    Ho = network_from_onnx(tmp_path / "r.onnx", X).features(X, -1)
    assert np.allclose(Ht, Ho, atol=1e-5)


def test_apply_refuses_another_models_result(tmp_path: Path, digits) -> None:
    X, y = digits
    torch.manual_seed(0)
    for name in ("a", "b"):
        m = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 10))
        export(m, torch.from_numpy(X[:1]), tmp_path / f"{name}.onnx", dynamo=False)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    assert run("compile", "a.onnx", "--data", "data.npz", "--task", "classification", "--points", "5",
               "--mode", "compact", "-o", "a.gdsm", cwd=tmp_path).returncode == 0
    assert run("solve", "a.gdsm", "--time-limit", "30", cwd=tmp_path).returncode == 0
    assert_user_error(run("apply", "b.onnx", "a.result.json", "-o", "out.onnx", cwd=tmp_path), "b.onnx", "differs")
    assert not (tmp_path / "out.onnx").exists()
    # a result whose instance changed is refused too
    doc = json.loads((tmp_path / "a.result.json").read_text())
    doc["instance_fingerprint"] = "0" * 64
    (tmp_path / "a.result.json").write_text(json.dumps(doc))
    assert_user_error(run("apply", "a.onnx", "a.result.json", "-o", "out.onnx", cwd=tmp_path), "fingerprint")


def test_bad_models_and_data(tmp_path: Path, digits) -> None:
    X, y = digits
    torch.manual_seed(0)
    good = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 10))
    export(good, torch.from_numpy(X[:1]), tmp_path / "good.onnx", dynamo=False)
    conv = torch.nn.Sequential(torch.nn.Unflatten(1, (1, 8, 8)), torch.nn.Conv2d(1, 2, 3))
    export(conv, torch.from_numpy(X[:1]), tmp_path / "conv.onnx", dynamo=False)
    sig = torch.nn.Sequential(torch.nn.Linear(64, 10), torch.nn.Sigmoid())
    export(sig, torch.from_numpy(X[:1]), tmp_path / "sig.onnx", dynamo=False)
    raw = (tmp_path / "good.onnx").read_bytes()
    (tmp_path / "trunc.onnx").write_bytes(raw[: len(raw) // 3])
    np.savez(tmp_path / "data.npz", X=X, y=y)
    np.savez(tmp_path / "shape.npz", X=X[:, :10], y=y)
    np.savez(tmp_path / "labels.npz", X=X, y=y + 5)
    Xn = X.copy()
    Xn[3, 7] = np.nan
    np.savez(tmp_path / "nan.npz", X=Xn, y=y)
    np.savez(tmp_path / "len.npz", X=X, y=y[:-1])
    base = ("--task", "classification", "-o", "x.gdsm")
    cases = [
        (("conv.onnx", "--data", "data.npz"), ("Conv",)),
        (("sig.onnx", "--data", "data.npz"), ("Sigmoid",)),
        (("trunc.onnx", "--data", "data.npz"), ("trunc.onnx",)),
        (("good.onnx", "--data", "shape.npz"), ("shape",)),
        (("good.onnx", "--data", "labels.npz"), ("label",)),
        (("good.onnx", "--data", "nan.npz"), ("NaN",)),
        (("good.onnx", "--data", "len.npz"), ("rows",)),
        (("good.onnx", "--data", "absent.npz"), ("absent.npz",)),
        (("good.onnx",), ("--data",)),
        (("good.onnx", "--dataset", "nope"), ("nope",)),
    ]
    for args, needles in cases:
        assert_user_error(run("compile", *args, *base, cwd=tmp_path), *needles)
    assert not (tmp_path / "x.gdsm").exists()


def test_bias_free_final_layer_keeps_no_bias(tmp_path: Path, digits) -> None:
    """A final Linear without bias: the sweep must not move b, so the result can be applied."""
    X, y = digits
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10, bias=False))
    export(model, torch.from_numpy(X[:1]), tmp_path / "nb.onnx", dynamo=False)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    assert run("compile", "nb.onnx", "--data", "data.npz", "--task", "classification", "--mode", "compact",
               "--points", "10", "--keep-correct", "0", "--radius", "0.2", "-o", "nb.gdsm", cwd=tmp_path).returncode == 0
    assert run("solve", "nb.gdsm", cwd=tmp_path).returncode == 0
    inst = gdsolver.load(tmp_path / "nb.gdsm")
    res = gdsolver.load_result(tmp_path / "nb.result.json")
    assert inst.meta["box_bias"] is False
    assert np.all(inst.unpack(res.x)["b"] == 0)
    p = run("apply", "nb.onnx", "nb.result.json", "-o", "nb2.onnx", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    net = network_from_onnx(tmp_path / "nb2.onnx", X)
    idx = np.array(inst.meta["points"])
    assert correct_mask(net.forward(net.features(X[idx], -1), -1), y[idx], 5e-4).sum() == round(res.objective)


def test_evaluate_refuses_mismatched_data(tmp_path: Path, digits) -> None:
    X, y = digits
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 10))
    export(model, torch.from_numpy(X[:1]), tmp_path / "m.onnx", dynamo=False)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    np.savez(tmp_path / "small.npz", X=X[:50], y=y[:50])
    np.savez(tmp_path / "flt.npz", X=X, y=y + 0.5)
    np.savez(tmp_path / "onehot.npz", X=X, y=np.eye(10)[y])
    np.save(tmp_path / "single.npy", X)
    assert run("compile", "m.onnx", "--data", "data.npz", "--task", "classification", "--points", "5",
               "--mode", "paper", "--keep-correct", "0", "-o", "m.gdsm", cwd=tmp_path).returncode == 0
    ev = ("evaluate", "m.onnx", "--task")
    assert_user_error(run(*ev, "classification", "--data", "small.npz", "--instance", "m.gdsm", cwd=tmp_path),
                      "other data")
    assert_user_error(run(*ev, "regression", "--data", "data.npz", "--instance", "m.gdsm", cwd=tmp_path), "task")
    assert_user_error(run(*ev, "regression", "--data", "data.npz", cwd=tmp_path), "shape")
    assert_user_error(run(*ev, "classification", "--data", "flt.npz", cwd=tmp_path), "integer")
    assert_user_error(run(*ev, "classification", "--data", "onehot.npz", cwd=tmp_path), "1-D")
    assert_user_error(run(*ev, "classification", "--data", "single.npy", cwd=tmp_path), "single array")
    assert_user_error(run("compile", "m.onnx", "--data", "data.npz", "--task", "classification", "--seed", "-1",
                          "-o", "s.gdsm", cwd=tmp_path), "seed")
