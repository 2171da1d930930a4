"""Certified repair (gdsolver.repairs): the repaired model is judged by forward passes done here
(torch, onnxruntime), the minimal final-layer change against scipy's LP solver on the full
problem, an infeasible repair's conflict against scipy on every subset, and the CLI's exit codes
and one-line errors."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from scipy.optimize import linprog

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from clirun import assert_user_error, run  # noqa: E402
from gdsolver.errors import GdsolverError  # noqa: E402
from gdsolver.extract.hashing import sha256_file  # noqa: E402
from gdsolver.extract.onnx_frontend import onnx_forward  # noqa: E402
from gdsolver.formulate.repair import repair_instance  # noqa: E402
from gdsolver.modeldef import Dense, forward_chain  # noqa: E402
from gdsolver.repairs import repair, repair_onnx  # noqa: E402
from gdsolver.repairs.conflict import find_conflict  # noqa: E402
from gdsolver.repairs.solve import solve_repair  # noqa: E402

MARGIN = 0.01


def mlp(seed: int = 0, sizes=(6, 12, 8, 3)) -> nn.Sequential:
    torch.manual_seed(seed)
    mods: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods).eval()


def logits(model: nn.Module, X: np.ndarray, dtype=torch.float32) -> np.ndarray:
    with torch.no_grad():
        return model.to(dtype)(torch.as_tensor(X, dtype=dtype)).numpy().astype(np.float64)


def points(model: nn.Module, n_fix: int = 3, n_keep: int = 60, seed: int = 1):
    """Fix points relabelled to their runner-up class (a small change repairs them), keep points
    with their predictions."""
    X = np.random.default_rng(seed).normal(size=(4 * n_fix + n_keep, 6)).astype(np.float32)
    o = logits(model, X)
    top2 = np.sort(o, axis=1)[:, -2:]
    order = np.argsort(top2[:, 1] - top2[:, 0])  # the points nearest a decision boundary are fixed
    fix, keep = order[:n_fix], order[4 * n_fix:]
    return X[fix], np.argsort(o[fix], axis=1)[:, -2], X[keep], o[keep].argmax(1)


def final_layer_lp(W0: np.ndarray, b0: np.ndarray, H: np.ndarray, labels: np.ndarray, margins: np.ndarray) -> float:
    """min sum |dW| + |db| s.t. every point has its label by its margin, by scipy (variables
    [W, b, p, q] with [W, b] - p + q = [W0, b0])."""
    M, N = W0.shape
    n = M * (N + 1)
    rows, rhs = [], []
    for t in range(len(H)):
        for j in range(M):
            if j == labels[t]:
                continue
            r = np.zeros(3 * n)
            Wl = r[:M * N].reshape(M, N)
            Wl[labels[t]] -= H[t]
            Wl[j] += H[t]
            r[M * N + labels[t]] -= 1
            r[M * N + j] += 1
            rows.append(r)
            rhs.append(-margins[t])
    A_eq = np.hstack([np.eye(n), -np.eye(n), np.eye(n)])
    ref = np.concatenate([W0.ravel(), b0])
    res = linprog(np.r_[np.zeros(n), np.ones(2 * n)], A_ub=np.array(rows), b_ub=np.array(rhs), A_eq=A_eq, b_eq=ref,
                  bounds=[(None, None)] * n + [(0, None)] * (2 * n), method="highs")
    assert res.status == 0, res.message
    return float(res.fun)


# ------------------------------------------------------------------ torch, final layer
def test_final_layer_repair_is_certified_and_minimal():
    model = mlp()
    X_fix, y_fix, X_keep, _ = points(model)
    before_keep = logits(model, X_keep).argmax(1)
    W0 = model[4].weight.detach().double().numpy().copy()
    b0 = model[4].bias.detach().double().numpy().copy()
    rep = repair(model, (X_fix, y_fix), X_keep, norm="l1", margin=MARGIN)
    assert rep.status == "certified", rep.lines()
    # independent forward passes of the model as changed in place
    for dtype in (torch.float32, torch.float64):
        np.testing.assert_array_equal(logits(model, X_fix, dtype).argmax(1), y_fix)
        np.testing.assert_array_equal(logits(model, X_keep, dtype).argmax(1), before_keep)
    model.float()
    # minimal: the full LP (every keep point, not only those the lazy search added) by scipy
    with torch.no_grad():
        feats = nn.Sequential(*list(model)[:4]).double()
        H_fix = feats(torch.as_tensor(X_fix, dtype=torch.float64)).numpy()
        H_keep = feats(torch.as_tensor(X_keep, dtype=torch.float64)).numpy()
    model.float()
    o_keep = H_keep @ W0.T + b0
    gap = o_keep[np.arange(len(o_keep)), before_keep] - np.where(
        np.eye(3, dtype=bool)[before_keep], -np.inf, o_keep).max(1)
    margins = np.r_[np.full(len(H_fix), MARGIN), np.minimum(MARGIN, gap)]
    best = final_layer_lp(W0, b0, np.vstack([H_fix, H_keep]), np.r_[y_fix, before_keep], margins)
    assert rep.solution.minimal and rep.solution.global_minimal
    assert rep.solution.objective == pytest.approx(best, rel=1e-5, abs=1e-7)
    dW = model[4].weight.detach().double().numpy() - W0
    db = model[4].bias.detach().double().numpy() - b0
    assert np.abs(dW).sum() + np.abs(db).sum() == pytest.approx(best, rel=1e-3, abs=1e-5)  # float32 storage
    assert rep.solution.keep_in_milp < len(X_keep)  # the lazy search left points out of the MILP


def test_linf_and_not_in_place():
    model = mlp(2)
    X_fix, y_fix, X_keep, y_keep = points(model, seed=3)
    W_before = model[4].weight.detach().clone()
    rep = repair(model, (X_fix, y_fix), (X_keep, y_keep), norm="linf", inplace=False)
    assert rep.status == "certified", rep.lines()
    assert torch.equal(model[4].weight, W_before)  # untouched
    np.testing.assert_array_equal(logits(rep.model, X_fix).argmax(1), y_fix)
    np.testing.assert_array_equal(logits(rep.model, X_keep).argmax(1), y_keep)
    d = (rep.model[4].weight.detach().double() - W_before.double()).abs().max().item()
    assert d == pytest.approx(rep.solution.objective, rel=1e-3, abs=1e-6)
    assert rep.change["linf"] == pytest.approx(d, rel=1e-6)


def test_hidden_layer_repair_checked_by_forward_pass():
    model = mlp(4)
    X_fix, y_fix, X_keep, y_keep = points(model, n_fix=2, n_keep=40, seed=5)
    rep = repair(model, (X_fix, y_fix), X_keep, layer=1, time_limit=60)  # patterns "all": an LP
    assert rep.status == "certified", rep.lines()
    assert rep.solution.binaries == 0
    np.testing.assert_array_equal(logits(model, X_fix, torch.float64).argmax(1), y_fix)
    np.testing.assert_array_equal(logits(model, X_keep, torch.float64).argmax(1), y_keep)
    model.float()
    assert "ReLU phases" in rep.proof


def test_hidden_layer_exact_milp_not_worse_than_pinned():
    model = mlp(4, sizes=(6, 8, 6, 3))
    X_fix, y_fix, X_keep, y_keep = points(model, n_fix=2, n_keep=10, seed=5)
    pinned = repair(model, (X_fix, y_fix), X_keep, layer=1, patterns="all", radius=2.0, inplace=False)
    free = repair(model, (X_fix, y_fix), X_keep, layer=1, patterns="free", radius=2.0, inplace=False,
                  time_limit=120)
    assert free.status == "certified" and pinned.status == "certified"
    assert free.solution.objective <= pinned.solution.objective + 1e-6
    np.testing.assert_array_equal(logits(free.model, X_fix, torch.float64).argmax(1), y_fix)


# ------------------------------------------------------------------ infeasible repairs
def test_conflict_on_one_feature_is_minimal_and_checked_by_scipy():
    """Two classes, one feature h: o1 - o0 is affine in h, so it cannot be < 0 at h=1, > 0 at 2 and
    < 0 at 3; the points at h = 0.5 and 1.1 (class 0) are harmless alone."""
    layers = [Dense(np.array([[1.0], [0.0]]), np.zeros(2), "identity", "head")]
    H = np.array([[0.5], [1.0], [2.0], [3.0], [1.1]])
    y = np.array([0, 0, 1, 0, 0])
    sol = solve_repair(layers, 0, H, y, H[:0], y[:0], margin=MARGIN)
    assert sol.status == "infeasible"
    c = find_conflict(layers, 0, H, y, H[:0], y[:0], norm="l1", margin=MARGIN, radius=sol.radius)
    assert c.minimal and len(c.fix_points) == 3 and {2, 3} <= set(c.fix_points)

    def feasible(sel) -> bool:  # d(h) = a h + c must be <= -m for class 0 and >= m for class 1
        A = [[h, 1.0] if y[t] == 0 else [-h, -1.0] for t in sel for h in H[t]]
        return linprog([0, 0], A_ub=A, b_ub=[-MARGIN] * len(A), bounds=[(None, None)] * 2, method="highs").status == 0

    assert not feasible(c.fix_points)
    for sub in itertools.combinations(c.fix_points, 2):
        assert feasible(sub)
    assert not c.feasible_wider  # no box makes a line change sign twice
    assert "earlier layer" in c.suggestion


def test_duplicate_inputs_with_two_labels_conflict():
    model = mlp(6)
    X = np.random.default_rng(7).normal(size=(4, 6)).astype(np.float32)
    X[3] = X[1]
    rep = repair(model, (X, np.array([0, 1, 2, 0])), None)
    assert rep.status in ("infeasible",) and rep.conflict is not None
    assert rep.conflict.fix_points == [1, 3]


# ------------------------------------------------------------------ ONNX + CLI
def onnx_model(tmp_path, seed=0):
    model = mlp(seed)
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.zeros(1, 6),), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b"}, "y": {0: "b"}})
    return model, path


def test_cli_repair_writes_a_certified_model(tmp_path):
    model, path = onnx_model(tmp_path)
    X_fix, y_fix, X_keep, y_keep = points(model)
    np.savez(tmp_path / "fix.npz", X=X_fix, y=y_fix)
    np.savez(tmp_path / "keep.npz", X=X_keep)
    before = sha256_file(path)
    p = run("repair", "m.onnx", "--fix", "fix.npz", "--keep", "keep.npz", "-o", "r.onnx", cwd=tmp_path)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "certified" in p.stdout and "onnxruntime: fix 3/3, keep 60/60" in p.stdout
    assert sha256_file(path) == before
    out = tmp_path / "r.onnx"
    np.testing.assert_array_equal(onnx_forward(out, X_fix).argmax(1), y_fix)  # onnxruntime, run here
    np.testing.assert_array_equal(onnx_forward(out, X_keep).argmax(1), y_keep)
    cert = json.loads((tmp_path / "r.certificate.json").read_text())
    assert cert["certified"] and cert["repaired"]["sha256"] == sha256_file(out)
    assert cert["model"]["sha256"] and cert["data"]["fix"]["sha256"] == sha256_file(tmp_path / "fix.npz")
    assert cert["checks"]["onnxruntime"]["keep"]["ok"] == 60 and cert["proof"]["global_minimal"]


def test_cli_infeasible_exit_3_and_not_certified_nothing_written(tmp_path):
    model, path = onnx_model(tmp_path, seed=1)
    X = np.random.default_rng(2).normal(size=(3, 6)).astype(np.float32)
    X[2] = X[0]
    np.savez(tmp_path / "fix.npz", X=X, y=np.array([0, 1, 2]))
    p = run("repair", "m.onnx", "--fix", "fix.npz", "-o", "r.onnx", cwd=tmp_path)
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "conflict: fix points [0, 2]" in p.stdout and "suggestion:" in p.stdout
    assert not (tmp_path / "r.onnx").exists()


def test_repair_onnx_refuses_to_write_a_model_that_fails(tmp_path, monkeypatch):
    """A certificate that does not trust the solver: a solver answer that breaks a point (here the
    search's weights perturbed after it) is caught by running the written model."""
    import gdsolver.repairs.api as api

    model, path = onnx_model(tmp_path, seed=3)
    X_fix, y_fix, X_keep, _ = points(model, seed=4)
    real = api.solve_repair

    def broken(*a, **kw):
        sol = real(*a, **kw)
        sol.b = sol.b.copy()
        sol.b[y_fix[0]] -= 100.0  # the first fix point can no longer win
        return sol

    monkeypatch.setattr(api, "solve_repair", broken)
    rep = repair_onnx(path, (X_fix, y_fix), X_keep, out=tmp_path / "r.onnx")
    assert rep.status == "not certified"
    assert rep.checks["onnxruntime"]["fix"]["failed_count"] >= 1
    assert not (tmp_path / "r.onnx").exists() and not (tmp_path / "r.certificate.json").exists()


@pytest.mark.parametrize("case", ["missing", "shape", "nan", "labels", "norm"])
def test_cli_bad_inputs_are_one_line_errors(tmp_path, case):
    model, path = onnx_model(tmp_path)
    X_fix, y_fix, _, _ = points(model)
    args = ["repair", "m.onnx", "--fix", "fix.npz", "-o", "r.onnx"]
    needle = "fix.npz"
    if case == "missing":
        needle = "fix.npz"
    elif case == "shape":
        np.savez(tmp_path / "fix.npz", X=X_fix[:, :4], y=y_fix)
        needle = "shape"
    elif case == "nan":
        X_fix[0, 0] = np.nan
        np.savez(tmp_path / "fix.npz", X=X_fix, y=y_fix)
        needle = "NaN"
    elif case == "labels":
        np.savez(tmp_path / "fix.npz", X=X_fix, y=y_fix[:2])
        needle = "'y'"
    else:
        np.savez(tmp_path / "fix.npz", X=X_fix, y=y_fix)
        args += ["--norm", "l2"]
        needle = "--norm"
    p = run(*args, cwd=tmp_path)
    assert_user_error(p, needle)
    assert not (tmp_path / "r.onnx").exists()


def test_api_bad_inputs():
    model = mlp()
    X = np.zeros((2, 6), np.float32)
    with pytest.raises(GdsolverError, match="fix y"):
        repair(model, (X, np.array([0, 7])))
    with pytest.raises(GdsolverError, match="keep X"):
        repair(model, (X, np.array([0, 1])), np.zeros((2, 5), np.float32))
    with pytest.raises(GdsolverError, match="margin"):
        repair(model, (X, np.array([0, 1])), margin=-1)


def test_instance_start_is_the_current_weights():
    """The instance's rows agree with a forward pass: with the current weights every keep point
    row holds (the keep margins are at most their current gaps)."""
    from gdsolver.ir.verify import verify

    model = mlp()
    _, _, X_keep, y_keep = points(model)
    layers = [Dense(model[j].weight.detach().double().numpy(), model[j].bias.detach().double().numpy(),
                    "relu" if j < 4 else "identity") for j in (0, 2, 4)]
    inst = repair_instance(layers, 2, forward_chain(layers[:2], X_keep)[:1], [int(y_keep[0])],
                           forward_chain(layers[:2], X_keep), None, radius=1.0)
    x = inst.start.copy()
    rep = verify(inst, x)
    assert rep.violations["bounds"].value == 0 and rep.violations["indicators"].value <= 1e-9
    off, cnt = inst.row_groups["keep_margin"]
    act = inst.A.matvec(x)[off:off + cnt]
    assert np.all(act >= inst.row_lo[off:off + cnt] - 1e-9)  # no keep row fails at the start


def test_layer_without_bias_keeps_none():
    torch.manual_seed(8)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3, bias=False)).eval()
    X_fix, y_fix, X_keep, y_keep = points(model, n_fix=2, seed=9)
    rep = repair(model, (X_fix, y_fix), (X_keep, y_keep))
    assert rep.status == "certified", rep.lines()
    assert model[2].bias is None and not np.any(rep.b)
    np.testing.assert_array_equal(logits(model, X_fix, torch.float64).argmax(1), y_fix)


def test_no_global_claim_when_relus_follow_an_interior_answer():
    """With ReLUs after the layer, an answer inside the box is minimal inside the box only: here a
    change of l1 0.1301 outside the 0.1 box repairs both points (checked by a forward pass) while
    the box's optimum costs 0.18, so the report must not claim minimality over every change."""
    from gdsolver.formulate.repair import label_gaps

    W0 = np.array([[0, 0, 0], [0, 5, -5], [0, -5, 5]], float)
    b0 = np.array([-1.3, 0, 0])
    W1 = np.array([[0, 0, 0], [1000, 1, 1]], float)
    b1 = np.array([0, -5.89])
    layers = [Dense(W0, b0, "relu"), Dense(W1, b1, "identity")]
    X, y = np.array([[10, 1, 0], [10, 0, 1]], float), np.array([1, 1])
    none = (np.zeros((0, 3)), np.zeros(0, int))
    sol = solve_repair(layers, 0, X, y, *none, norm="l1", radius=0.1, patterns="free")
    assert sol.objective > 0.1301 and not sol.global_minimal
    W = W0.copy()
    W[0, 0] += 0.1301  # the cheaper change outside the box
    gaps = label_gaps(forward_chain([Dense(W, b0, "relu"), layers[1]], X), y)
    assert np.all(gaps > 0.01)


@pytest.mark.parametrize("args, field", [(["--time-limit", "-1"], "--time-limit"), (["--norm", "l2"], "--norm"),
                                         (["--layer", "x"], "--layer"), (["--sizes", "0"], "--sizes"),
                                         (["--keep", "0"], "--keep"), (["--model", "vgg"], "--model"),
                                         (["--keep-margin", "0"], "--keep-margin")])
def test_bench_repair_options_are_checked_one_by_one(tmp_path, args, field):
    """Each bad option of bench repair is named on its own, before any data is read or model
    trained (the directory need not hold MNIST)."""
    assert_user_error(run("bench", "repair", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o"), *args,
                          cwd=tmp_path), field)
