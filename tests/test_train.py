"""The training orchestrator (issue 6): GDSolver sweeps checked against the model's own
forward pass, rejected sweeps leave the weights bit-identical, dumps replay, reruns repeat,
the GD baselines and their LR schedules, the final model files, and bad input.

Data and networks are small (200 digits points or 200 generated points, one hidden layer)
so the whole file runs in seconds; no assertion depends on timing."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from gdsolver.pipeline import replay
from gdsolver.compile.result import load_result
from gdsolver.errors import GdsolverError
from gdsolver.formulate import correct_mask
from gdsolver.ir.gdsm import load
from gdsolver.train import GDSolver, GDTrainer, History
from gdsolver.train.history import COLUMNS

TIMING = ("gd_time_s", "solver_time_s", "build_time_s", "elapsed_s")


# ---------------------------------------------------------------------------- data and models
@pytest.fixture(scope="module")
def digits():
    from gdsolver.data.datasets import load_split

    sp = load_split("digits", seed=0)
    return (sp.train[0][:200], sp.train[1][:200]), (sp.val[0][:160], sp.val[1][:160])


def blobs(n=120, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(k, d))
    y = rng.integers(0, k, n)
    return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y


def reg_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 3)).astype(np.float32)
    Y = np.stack([2 * X[:, 0] + 1, X[:, 1] - X[:, 2]], 1).astype(np.float32)
    return X, Y


def mlp(d_in, hidden, d_out, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))


class Recorder:
    """Callback that keeps a copy of every row and of the weights at that moment."""

    def __init__(self, model):
        self.model = model
        self.rows: list[dict] = []
        self.states: list[dict[str, torch.Tensor]] = []

    def __call__(self, row):
        self.rows.append(dict(row))
        self.states.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})

    def state_before(self, i):
        """Weights just before row i (those after the previous row)."""
        assert i > 0, "the first row has no predecessor"
        return self.states[i - 1]


def forward(state, arch, X):
    """Outputs of a fresh model of architecture `arch` loaded with `state` (independent of the trainer)."""
    m = arch()
    m.load_state_dict(state)
    m.eval()
    with torch.no_grad():
        return m(torch.as_tensor(X, dtype=torch.float32)).double().numpy()


def sweep_files(dump_dir, k):
    inst = load(dump_dir / "sweeps" / f"{k:04d}.gdsm")
    res = load_result(dump_dir / "sweeps" / f"{k:04d}.result.json")
    idx = np.asarray(inst.meta["points"] + inst.meta["keep_points"], dtype=np.int64)
    return inst, res, idx


def without_timing(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


# ---------------------------------------------------------------------------- classification sweeps
STUCK_CLS = dict(mode="paper", lr=1e-6, epochs=3, phase_epochs=1, max_sweeps=2, patience=None, radius=0.05, seed=0)


def cls_arch():
    return mlp(64, 16, 10)


@pytest.fixture(scope="module")
def stuck_cls(digits, tmp_path_factory):
    """Digits, 200 points, a tiny learning rate (GD is stuck): 3 epochs and 2 sweeps, dumped."""
    d = tmp_path_factory.mktemp("stuck_cls")
    model = cls_arch()
    rec = Recorder(model)
    tr = GDSolver(model, "classification", dump_dir=d, callback=rec, **STUCK_CLS)
    hist = tr.fit(*digits)
    return tr, hist, rec, d


def test_gd_is_stuck_and_sweeps_improve_the_points(stuck_cls, digits):
    tr, hist, rec, d = stuck_cls
    (X, y), _ = digits
    # GD really is stuck: an epoch barely moves the training loss (sweeps move it far more)
    rows = hist.rows
    gd_moves = [abs(b["train_loss"] - a["train_loss"]) for a, b in zip(rows, rows[1:]) if b["kind"] == "epoch"]
    sweep_moves = [a["train_loss"] - b["train_loss"] for a, b in zip(rows, rows[1:]) if b["kind"] == "sweep"]
    assert gd_moves and max(gd_moves) < 1e-4
    assert max(sweep_moves) > 100 * max(gd_moves)
    sweep_idx = [i for i, r in enumerate(rec.rows) if r["kind"] == "sweep"]
    assert len(sweep_idx) == 2
    accepted = 0
    for i in sweep_idx:
        row = rec.rows[i]
        inst, res, idx = sweep_files(d, row["sweep"])
        assert res.status == "OPTIMAL" and row["status"] == "OPTIMAL"
        assert row["objective"] == pytest.approx(res.objective)
        margin = inst.meta["margin"]
        # the points were misclassified (at the margin) before the sweep
        o_before = forward(rec.state_before(i), cls_arch, X[idx])
        assert not correct_mask(o_before, y[idx], margin).any()
        wrong_before = int((~correct_mask(o_before, y[idx], margin / 2)).sum())
        assert row["sweep_loss_before"] == wrong_before
        o_after = forward(rec.states[i], cls_arch, X[idx])
        correct_after = int(correct_mask(o_after, y[idx], margin / 2).sum())
        wrong_after = len(idx) - correct_after
        if row["accepted"]:
            accepted += 1
            # strictly lower loss on its points, and the solver's objective (points correct) is
            # what the written-back model computes
            assert wrong_after < wrong_before
            assert res.objective == correct_after
            assert row["sweep_loss_after"] == wrong_after
            # the written-back final layer is the solver's point (float32-rounded): the MIP's, or
            # the closest-point LP's that keeps its decisions (GDSolver closest=True)
            closest = d / "sweeps" / f"{row['sweep']:04d}-closest.result.json"
            x = load_result(closest).x[:inst.num_vars] if closest.exists() else res.x
            blocks = inst.unpack(x)
            st = rec.states[i]
            assert not torch.equal(st["2.weight"], rec.state_before(i)["2.weight"])
            np.testing.assert_allclose(st["2.weight"].double().numpy(), blocks["w"], atol=1e-6, rtol=1e-6)
            np.testing.assert_allclose(st["2.bias"].double().numpy(), blocks["b"], atol=1e-6, rtol=1e-6)
            assert np.abs(blocks["w"] - inst.start[inst.blocks["w"][0]:][:blocks["w"].size].reshape(
                blocks["w"].shape)).max() <= inst.meta["radius"] + 1e-9
    assert accepted >= 1
    # the whole-data figures improved too (the first sweep's points are training points)
    first = rec.rows[sweep_idx[0]]
    assert first["accepted"] and first["train_acc"] > rec.rows[sweep_idx[0] - 1]["train_acc"]


def test_history_has_one_row_per_epoch_and_sweep(stuck_cls):
    tr, hist, rec, d = stuck_cls
    kinds = [r["kind"] for r in hist.rows]
    # phase_epochs=1, max_sweeps=2: one epoch, a sweep, twice; the run ends after the last sweep
    assert kinds == ["epoch", "sweep", "epoch", "sweep"]
    assert [r["epoch"] for r in hist.rows] == [1, 1, 2, 2]
    assert [r["phase"] for r in hist.rows] == [1, 1, 2, 2]
    assert [r["sweep"] for r in hist.sweeps] == [1, 2]
    assert len(hist.sweeps) == tr.max_sweeps
    # the callback saw exactly the history's rows, in order
    assert without_timing(rec.rows) == without_timing(hist.rows)
    for r in hist.sweeps:
        assert r["radius"] > 0 and r["n_vars"] > 0 and r["points"] == 32 and r["reason"]
        assert isinstance(r["accepted"], bool)
    assert tr.radii_used == [r["radius"] for r in hist.sweeps]
    # independent route: the radius each dumped instance was built with
    from gdsolver.ir.gdsm import load

    assert tr.radii_used == [load(d / "sweeps" / f"{k:04d}.gdsm").meta["radius"] for k in (1, 2)]
    s = hist.summary()
    assert s["epochs"] == 2 and s["sweeps"] == 2
    assert s["sweeps_accepted"] == sum(r["accepted"] for r in hist.sweeps)
    assert s["train_loss"] == hist.rows[-1]["train_loss"]


def test_dump_replays_with_identical_objectives(stuck_cls):
    tr, hist, rec, d = stuck_cls
    rows = list(replay(d))
    mains = [r for r in rows if "-" not in r.instance.stem.split(".")[0]]
    assert len(mains) == len(hist.sweeps) == 2
    for r in rows:
        assert r.ok, (r.instance, r.recorded.objective, r.replayed.objective)
        assert r.recorded_x_ok is True
    for r, row in zip(mains, hist.sweeps):
        assert r.replayed.objective == pytest.approx(row["objective"], rel=1e-9, abs=1e-9)
    run = json.loads((d / "run.json").read_text())
    assert run["method"] == "gdsolver" and run["seed"] == 0
    assert len(run["history"]["rows"]) == len(hist.rows)
    assert run["summary"]["sweeps"] == 2


def test_rerun_with_the_same_seed_gives_the_same_history(stuck_cls, digits):
    tr, hist, rec, d = stuck_cls
    again = GDSolver(cls_arch(), "classification", **STUCK_CLS).fit(*digits)
    assert without_timing(again.rows) == without_timing(hist.rows)
    other = GDSolver(cls_arch(), "classification", **{**STUCK_CLS, "seed": 1}).fit(*digits)
    assert without_timing(other.rows) != without_timing(hist.rows)


def test_final_model_files(stuck_cls, digits):
    tr, hist, rec, d = stuck_cls
    (X, y), _ = digits
    state = torch.load(d / "model.state_dict.pt", weights_only=True)
    fresh = cls_arch()
    fresh.load_state_dict(state)
    fresh.eval()
    with torch.no_grad():
        ref = tr.model.eval()(torch.as_tensor(X, dtype=torch.float32))
        out = fresh(torch.as_tensor(X, dtype=torch.float32))
    assert torch.equal(out, ref)
    for k, v in tr.model.state_dict().items():
        assert torch.equal(state[k], v)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    (onnx_out,) = sess.run(None, {sess.get_inputs()[0].name: X.astype(np.float32)})
    np.testing.assert_allclose(onnx_out, ref.numpy(), rtol=1e-5, atol=1e-5)
    run = json.loads((d / "run.json").read_text())
    assert run["model_files"] == {"state_dict": "model.state_dict.pt", "onnx": "model.onnx"}


# ---------------------------------------------------------------------------- regression sweep
def reg_arch():
    return mlp(3, 8, 2)


def test_regression_sweep_objective_is_the_l1_after_write_back(tmp_path):
    X, Y = reg_data()
    model = reg_arch()
    rec = Recorder(model)
    hist = GDSolver(model, "regression", lr=1e-6, epochs=1, max_sweeps=1, radius=0.1, solver_points=None, mode="l1",
                    layers="final",
                    dump_dir=tmp_path, callback=rec).fit((X, Y), (X[:50], Y[:50]))
    (i,) = [i for i, r in enumerate(rec.rows) if r["kind"] == "sweep"]
    row = rec.rows[i]
    inst, res, idx = sweep_files(tmp_path, 1)
    assert len(idx) == len(X) and inst.meta["mode"] == "l1"
    before = np.abs(forward(rec.state_before(i), reg_arch, X[idx]) - Y[idx]).sum()
    after = np.abs(forward(rec.states[i], reg_arch, X[idx]) - Y[idx]).sum()
    assert row["accepted"] and res.status == "OPTIMAL"
    assert after < before - 1.0  # a real improvement, not rounding
    assert res.objective == pytest.approx(after, rel=1e-5)  # float32 model vs float64 solver
    assert row["sweep_loss_before"] == pytest.approx(before, rel=1e-6)
    assert row["sweep_loss_after"] == pytest.approx(after, rel=1e-6)
    # the whole-data MSE went down too, and the replay matches
    assert hist.sweeps[0]["train_loss"] < hist.epochs[0]["train_loss"]
    assert all(r.ok for r in replay(tmp_path))


def test_regression_single_output_with_1d_targets():
    X, Y = reg_data(120)
    y = Y[:, 0]
    tr = GDSolver(mlp(3, 4, 1), "regression", lr=0.01, epochs=1, max_sweeps=1, radius=0.1, solver_points=None)
    hist = tr.fit((X, y), (X[:40], y[:40]))
    assert hist.sweeps[0]["status"] == "OPTIMAL"
    # evaluate() on (T,) targets gives the same MSE as fit's own figure (no (T, T) broadcasting)
    assert tr.evaluate((X[:40], y[:40]))["loss"] == pytest.approx(hist.last["val_loss"], rel=1e-6)
    assert tr.evaluate((X[:40], y[:40, None]))["loss"] == pytest.approx(hist.last["val_loss"], rel=1e-6)


# ---------------------------------------------------------------------------- rejected sweeps
def _assert_rejections_keep_weights(rec):
    rejected = [i for i, r in enumerate(rec.rows) if r["kind"] == "sweep" and not r["accepted"]]
    for i in rejected:
        before, after = rec.state_before(i), rec.states[i]
        assert before.keys() == after.keys()
        for k in before:
            assert torch.equal(before[k], after[k]), k
    return rejected


def _assert_accepted_improve(rows):
    for r in rows:
        if r["kind"] == "sweep" and r["accepted"]:
            assert r["sweep_loss_after"] < r["sweep_loss_before"], r


def test_rejected_for_validation_leaves_weights_bit_identical(digits, tmp_path):
    """A large box after some real training: the sweep fixes its 32 points but wrecks the
    validation loss, so with val_tolerance=0 it is rejected and undone exactly."""
    model = cls_arch()
    rec = Recorder(model)
    hist = GDSolver(model, "classification", mode="paper", lr=0.1, epochs=6, phase_epochs=3, max_sweeps=2, patience=None,
                    radius=2.0, adapt_radius=False, val_tolerance=0.0, dump_dir=tmp_path,
                    callback=rec).fit(*digits)
    rejected = _assert_rejections_keep_weights(rec)
    val_rejected = [i for i in rejected if "would worsen" in rec.rows[i]["reason"]]
    assert val_rejected, [r["reason"] for r in hist.sweeps]
    for i in val_rejected:
        row = rec.rows[i]
        # the attempt really changed the weights (then put them back): the solver's point
        # differs from the weights before and after
        inst, res, _ = sweep_files(tmp_path, row["sweep"])
        w_solver = inst.unpack(res.x)["w"]
        w_kept = rec.states[i]["2.weight"].double().numpy()
        assert np.abs(w_solver - w_kept).max() > 1e-3
        assert row["sweep_loss_after"] < row["sweep_loss_before"]  # improved its points, yet rejected
        # the metrics recorded with the rejection are those of the kept weights
        assert row["val_loss"] == rec.rows[i - 1]["val_loss"]
        assert row["train_loss"] == rec.rows[i - 1]["train_loss"]
    _assert_accepted_improve(hist.rows)


def test_rejected_without_improvement_grows_the_radius(digits):
    model = cls_arch()
    rec = Recorder(model)
    hist = GDSolver(model, "classification", mode="paper", lr=1e-6, epochs=1, max_sweeps=2, radius=1e-9,
                    callback=rec).fit(*digits)
    sw = hist.sweeps
    assert len(sw) == 2 and not any(r["accepted"] for r in sw)
    assert all(r["reason"].startswith("no improvement") for r in sw)
    assert [r["radius"] for r in sw] == [1e-9, 2e-9]
    assert len(_assert_rejections_keep_weights(rec)) == 2


def test_accepted_sweeps_never_worsen_their_points(stuck_cls):
    _assert_accepted_improve(stuck_cls[1].rows)
    assert any(r["accepted"] for r in stuck_cls[1].sweeps)


# ---------------------------------------------------------------------------- solver trouble
def test_solver_error_is_recorded_and_training_continues(digits):
    """Gurobi's pip licence stops at 2000 variables: a 256-wide final layer has 2560 weights."""
    hist = GDSolver(mlp(64, 256, 10), "classification", mode="paper", lr=1e-6, epochs=2, phase_epochs=1, max_sweeps=2,
                    backend="gurobi").fit(*digits)
    sw = hist.sweeps[0]
    if sw["status"] != "ERROR":
        pytest.skip(f"Gurobi solved a {sw['n_vars']}-variable instance here (full licence?)")
    assert sw["accepted"] is False and sw["reason"]
    try:
        import gurobipy  # noqa: F401

        assert "2000" in sw["reason"]
    except ImportError:
        pass
    # GD went on after the failed sweep, and the weights were not touched by it
    assert [r["kind"] for r in hist.rows] == ["epoch", "sweep", "epoch", "sweep"]
    assert sw["train_loss"] == hist.rows[0]["train_loss"] and sw["val_loss"] == hist.rows[0]["val_loss"]
    assert hist.rows[2]["train_loss"] != sw["train_loss"]


def test_time_limit_is_recorded_and_training_continues(digits):
    hist = GDSolver(cls_arch(), "classification", mode="paper", lr=1e-6, epochs=2, phase_epochs=1, max_sweeps=2,
                    solver_points=64, time_limit=1e-4).fit(*digits)
    sw = hist.sweeps[0]
    assert sw["status"] in ("TIME_LIMIT", "FEASIBLE")
    assert "time limit" in sw["reason"].lower(), sw["reason"]  # the history says why it is not OPTIMAL
    assert [r["kind"] for r in hist.rows] == ["epoch", "sweep", "epoch", "sweep"]
    _assert_accepted_improve(hist.rows)


# ---------------------------------------------------------------------------- baselines
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("schedule", [None, "step", "plateau", "cosine"])
def test_gd_baselines_run(optimizer, schedule):
    X, y = blobs()
    tr = GDTrainer(mlp(4, 8, 3), "classification", optimizer=optimizer, lr=0.05, lr_schedule=schedule, epochs=4)
    hist = tr.fit((X[:90], y[:90]), (X[90:], y[90:]))
    assert hist.method == optimizer + ("-lrs" if schedule else "")
    assert len(hist.epochs) == 4 and not hist.sweeps
    assert [r["epoch"] for r in hist.rows] == [1, 2, 3, 4]
    lrs = [r["lr"] for r in hist.rows]
    assert lrs[0] == 0.05
    if schedule is None:
        assert lrs == [0.05] * 4
    elif schedule == "step":  # step_size = epochs // 4 = 1: halved every epoch
        assert lrs == pytest.approx([0.05, 0.025, 0.0125, 0.00625])
    elif schedule == "cosine":
        assert all(a > b for a, b in zip(lrs, lrs[1:]))
    for r in hist.rows:
        assert 0 <= r["train_acc"] <= 1 and math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"])
    assert hist.last["train_loss"] < hist.epochs[0]["train_loss"] or optimizer == "sgd"


def test_plateau_schedule_lowers_the_lr():
    X, y = blobs()
    # a learning rate so small that the validation loss cannot improve by the scheduler's threshold
    hist = GDTrainer(mlp(4, 8, 3), "classification", lr=1e-7, lr_schedule="plateau", epochs=6).fit(
        (X[:90], y[:90]), (X[90:], y[90:]))
    lrs = [r["lr"] for r in hist.rows]
    assert lrs[0] == 1e-7
    assert lrs[-1] < lrs[0]
    assert all(b <= a for a, b in zip(lrs, lrs[1:]))
    assert len(set(lrs)) >= 2


def test_early_stopping_with_patience_stops():
    X, y = blobs()
    # lr 1e-30 leaves float32 weights unchanged: the validation loss never improves after epoch 1
    hist = GDTrainer(mlp(4, 8, 3), "classification", lr=1e-30, epochs=10, patience=2).fit(
        (X[:90], y[:90]), (X[90:], y[90:]))
    assert len(hist.epochs) == 3
    assert len({r["val_loss"] for r in hist.rows}) == 1
    # without patience all epochs run
    hist = GDTrainer(mlp(4, 8, 3), "classification", lr=1e-30, epochs=5).fit((X[:90], y[:90]), (X[90:], y[90:]))
    assert len(hist.epochs) == 5


def test_dataloader_gives_the_same_history_as_arrays():
    """A DataLoader is used as given (its batches: tests/test_torch_habits.py); one full batch
    of it is the same GD step as one full batch of the arrays (up to the summation order)."""
    X, y = blobs()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.as_tensor(X), torch.as_tensor(y)),
                                         batch_size=len(X))
    a = GDTrainer(mlp(4, 8, 3), "classification", epochs=2, batch_size=len(X)).fit((X, y), (X[:30], y[:30]))
    b = GDTrainer(mlp(4, 8, 3), "classification", epochs=2).fit(loader, (X[:30], y[:30]))
    for ra, rb in zip(a.rows, b.rows, strict=True):
        for key in ("train_loss", "val_loss", "train_acc", "val_acc"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-5)


# ---------------------------------------------------------------------------- bad input
BAD = {
    "label range": (lambda X, y: ((X, y + 1), None), "labels must be in 0..2"),
    "negative label": (lambda X, y: ((X, np.r_[-1, y[1:]]), None), "labels must be in 0..2"),
    "val label range": (lambda X, y: ((X, y), (X[:10], y[:10] + 3)), "val y: labels must be in 0..2"),
    "mismatched lengths": (lambda X, y: ((X, y[:-1]), None), "X has 120 samples but y has 119"),
    "empty data": (lambda X, y: ((X[:0], y[:0]), None), "at least one sample"),
    "NaN in X": (lambda X, y: ((np.where(np.arange(len(X))[:, None] == 5, np.nan, X), y), None), "NaN"),
    "NaN in val X": (lambda X, y: ((X, y), (np.full((4, 4), np.nan, np.float32), y[:4])), "NaN"),
    "val features": (lambda X, y: ((X, y), (X[:10, :3], y[:10])), "model forward failed on val X"),
    "train features": (lambda X, y: ((X[:, :3], y), None), "model forward failed on train X"),
    "float labels": (lambda X, y: ((X, y + 0.5), None), "integers"),
    "not a pair": (lambda X, y: (X, None), "expected an (X, y) pair"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_a_clear_error(case):
    X, y = blobs()
    make, needle = BAD[case]
    train, val = make(X, y)
    for cls in (GDTrainer, GDSolver):
        with pytest.raises(GdsolverError) as ei:
            cls(mlp(4, 8, 3), "classification", epochs=1).fit(train, val)
        assert needle in str(ei.value), str(ei.value)
        assert "\n" not in str(ei.value)


def test_bad_regression_targets():
    X, Y = reg_data(50)
    with pytest.raises(GdsolverError, match="do not match the model's 2 outputs"):
        GDTrainer(reg_arch(), "regression", epochs=1).fit((X, Y[:, :1]))
    with pytest.raises(GdsolverError, match="NaN"):
        GDTrainer(reg_arch(), "regression", epochs=1).fit((X, np.where(Y > 2, np.nan, Y)))
    tr = GDTrainer(reg_arch(), "regression", epochs=1)
    tr.fit((X, Y))
    with pytest.raises(GdsolverError, match="model forward failed on data X"):
        tr.evaluate((X[:, :2], Y))


@pytest.mark.parametrize("cls", [GDTrainer, GDSolver])
def test_nan_loss_during_gd_is_a_clear_error(cls, recwarn):
    X, y = blobs()
    with pytest.raises(GdsolverError, match=r"training diverged: .*nan.* lower the learning rate"):
        cls(mlp(4, 8, 3), "classification", lr=1e30, epochs=3).fit((X, y))
    # and no torch warning on the way (the CLI prints exactly one error line)
    assert not [w for w in recwarn if "requires_grad" in str(w.message)]


def test_bad_settings():
    m = mlp(4, 8, 3)
    for kw, needle in [({"optimizer": "rmsprop"}, "optimizer"), ({"lr_schedule": "linear"}, "lr_schedule"),
                       ({"lr": 0}, "lr"), ({"lr": float("nan")}, "lr"), ({"epochs": -1}, "epochs"),
                       ({"batch_size": 0}, "batch_size"), ({"patience": 0}, "patience")]:
        with pytest.raises(GdsolverError, match=needle):
            GDTrainer(m, **kw)
    for kw, needle in [({"backend": "cplex"}, "backend"), ({"radius": 0}, "radius"),
                       ({"val_tolerance": -1}, "val_tolerance"), ({"max_sweeps": -1}, "max_sweeps"),
                       ({"time_limit": 0}, "time_limit"), ({"desired_loss": "low"}, "desired_loss"),
                       ({"desired_loss": float("nan")}, "desired_loss")]:
        with pytest.raises(GdsolverError, match=needle):
            GDSolver(m, **kw)
    with pytest.raises(GdsolverError, match="task"):
        GDTrainer(m, "ranking")
    with pytest.raises(GdsolverError, match="keep_correct: applies to classification only"):
        GDSolver(reg_arch(), "regression", keep_correct=5)


@pytest.mark.parametrize("head", [nn.Sigmoid(), nn.Tanh()])
def test_gdsolver_refuses_a_model_it_cannot_sweep_before_training(head):
    X, y = blobs()
    model = nn.Sequential(nn.Linear(4, 3), head)
    w0 = model[0].weight.detach().clone()
    with pytest.raises(GdsolverError, match="GDSolver cannot sweep this model: .*nn.Linear"):
        GDSolver(model, "classification", mode="paper", epochs=2).fit((X, y))
    assert torch.equal(model[0].weight, w0)  # no GD ran first
    GDSolver(model, "classification", epochs=1, max_sweeps=0).fit((X, y))  # plain GD still works
    with pytest.raises(GdsolverError, match="torch.nn.Module"):
        GDTrainer("model.onnx")


# ---------------------------------------------------------------------------- history
# (these tests pin the paper's counting head: its semantics are what they check)
def _history():
    X, y = blobs()
    return GDSolver(mlp(4, 8, 3), "classification", mode="paper", lr=0.01, epochs=2, phase_epochs=1, max_sweeps=2).fit(
        (X[:90], y[:90]), (X[90:], y[90:]))


@pytest.fixture(scope="module")
def small_history():
    return _history()


def test_history_csv_round_trip(small_history, tmp_path):
    h = small_history
    text = h.to_csv(tmp_path / "h.csv")
    assert (tmp_path / "h.csv").read_text() == text
    back = list(csv.DictReader(io.StringIO(text)))
    assert list(back[0]) == list(COLUMNS)
    assert len(back) == len(h.rows)

    def parse(col, s):
        if s == "":
            return None
        if col in ("kind", "status", "reason", "layer_name"):
            return s
        if col == "accepted":
            return {"True": True, "False": False}[s]
        v = float(s)
        return int(v) if col in ("phase", "epoch", "sweep", "layer", "points", "n_vars", "n_cons", "n_binary") else v

    for r, b in zip(h.rows, back):
        assert {c: parse(c, b[c]) for c in COLUMNS} == r


def test_history_frame_json_and_summary(small_history):
    h = small_history
    df = h.to_frame()
    assert list(df.columns) == list(COLUMNS) and len(df) == len(h.rows)
    assert list(df["kind"]) == [r["kind"] for r in h.rows]
    assert df.loc[df["kind"] == "sweep", "sweep"].tolist() == [r["sweep"] for r in h.sweeps]
    again = History.from_json_dict(json.loads(json.dumps(h.to_json_dict())))
    assert again.rows == h.rows and again.method == h.method == "gdsolver"
    s = h.summary()
    assert set(s) >= {"method", "epochs", "sweeps", "sweeps_accepted", "train_loss", "train_acc", "val_loss",
                      "val_acc", "gd_time_s", "solver_time_s", "radii"}
    assert s["epochs"] == len(h.epochs) == 2 and s["sweeps"] == len(h.sweeps)
    assert s["gd_time_s"] == pytest.approx(sum(r["gd_time_s"] for r in h.epochs))
    assert s["radii"] == [r["radius"] for r in h.sweeps]
    assert s["val_acc"] == h.rows[-1]["val_acc"]
    assert "gdsolver" in repr(h)
    with pytest.raises(ValueError, match="unknown columns"):
        History().add("epoch", loss=1.0)
    empty = History("x").summary()
    assert empty["epochs"] == 0 and empty["train_loss"] is None


def test_reused_dump_dir_holds_only_this_runs_sweeps(tmp_path):
    X, y = blobs()
    data = ((X[:90], y[:90]), (X[90:], y[90:]))
    GDSolver(mlp(4, 8, 3), "classification", mode="paper", lr=1e-6, epochs=1, max_sweeps=2, radius=1e-9,
             dump_dir=tmp_path).fit(*data)
    assert (tmp_path / "sweeps" / "0002.gdsm").exists()
    (tmp_path / "sweeps" / "notes.txt").write_text("mine")
    hist = GDSolver(mlp(4, 8, 3), "classification", mode="paper", lr=1e-6, epochs=1, max_sweeps=1,
                    dump_dir=tmp_path).fit(*data)
    assert len(hist.sweeps) == 1
    assert not (tmp_path / "sweeps" / "0002.gdsm").exists()
    assert (tmp_path / "sweeps" / "notes.txt").read_text() == "mine"
    stems = {r.instance.name for r in replay(tmp_path)}
    assert stems <= {"0001.gdsm", "0001-closest.gdsm"} and "0001.gdsm" in stems


def test_desired_loss_ends_the_run(digits):
    """A goal every monitored loss meets: the run stops after the first sweep."""
    hist = GDSolver(cls_arch(), "classification", mode="paper", lr=1e-6, epochs=4, phase_epochs=1, max_sweeps=3,
                    desired_loss=100.0).fit(*digits)
    assert [r["kind"] for r in hist.rows] == ["epoch", "sweep"]


@pytest.mark.parametrize("stop_patience", [None, 2, 3])
def test_plateau_schedule_cuts_before_early_stopping_ends_the_phase(stop_patience):
    """On a flat loss the plateau schedule halves the LR on an epoch that still runs
    (before early stopping after `stop_patience` bad epochs); baselines keep patience 1."""
    from gdsolver.train.optim import make_scheduler

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = make_scheduler("plateau", opt, 10, stop_patience=stop_patience)
    lrs = []
    for _ in range(4):
        sched.step(1.0)
        lrs.append(opt.param_groups[0]["lr"])
    first_cut = lrs.index(0.5)  # 0-based epoch index after whose step the LR is halved
    bad_epochs_at_cut = first_cut  # epoch 0 sets the best; each later flat epoch is a bad one
    if stop_patience is None:
        assert bad_epochs_at_cut == 2
    else:
        assert bad_epochs_at_cut < stop_patience
