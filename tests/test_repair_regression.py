"""Regression repair: every output of every fix (and keep) point inside a given interval, with
the smallest change of one layer. Judged by forward passes done here (torch float32/float64,
onnxruntime) and, for minimality at the final layer, by scipy's linprog on the full problem."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import linprog

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from clirun import assert_user_error, run  # noqa: E402
from gdsolver.errors import GdsolverError  # noqa: E402
from gdsolver.extract.onnx_frontend import onnx_forward  # noqa: E402
from gdsolver.repairs import repair  # noqa: E402

MARGIN = 0.01


def net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2)).eval()


def outputs(model: nn.Module, X: np.ndarray, dtype=torch.float32) -> np.ndarray:
    with torch.no_grad():
        return model.to(dtype)(torch.as_tensor(X, dtype=dtype)).numpy().astype(np.float64)


def problem(model: nn.Module, seed: int = 1, tol: float = 0.2):
    """Fix points whose first output must rise by 0.3 (the second stays within 0.5 of now); keep
    points that stay within 0.2 of their current outputs."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(20, 3)).astype(np.float32)
    o = outputs(model, X)
    lo_f = np.c_[o[:4, 0] + 0.3, o[:4, 1] - 0.5]
    hi_f = np.c_[np.full(4, np.inf), o[:4, 1] + 0.5]
    return X[:4], (lo_f, hi_f), X[4:], (o[4:] - tol, o[4:] + tol)


def full_lp(W0, b0, H, lo, hi) -> float:
    """min sum |dW| + |db| s.t. lo + m <= (W h + b)_m <= hi - m for every point and output, by scipy."""
    M, N = W0.shape
    n = M * (N + 1)
    rows, rhs = [], []
    for t in range(len(H)):
        for m in range(M):
            r = np.zeros(3 * n)
            r[m * N:(m + 1) * N] = H[t]
            r[M * N + m] = 1.0
            if np.isfinite(hi[t, m]):
                rows.append(r.copy())
                rhs.append(hi[t, m] - MARGIN)
            if np.isfinite(lo[t, m]):
                rows.append(-r)
                rhs.append(-(lo[t, m] + MARGIN))
    A_eq = np.hstack([np.eye(n), -np.eye(n), np.eye(n)])
    res = linprog(np.r_[np.zeros(n), np.ones(2 * n)], A_ub=np.array(rows), b_ub=np.array(rhs), A_eq=A_eq,
                  b_eq=np.concatenate([W0.ravel(), b0]), bounds=[(None, None)] * n + [(0, None)] * (2 * n),
                  method="highs")
    assert res.status == 0, res.message
    return float(res.fun)


def inside(o: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
    return bool(np.all((o >= lo) & (o <= hi)))


def test_final_layer_interval_repair_is_minimal_and_certified(tmp_path):
    model = net()
    X_fix, (lo_f, hi_f), X_keep, (lo_k, hi_k) = problem(model, seed=3, tol=0.3)
    assert not inside(outputs(model, X_fix), lo_f, hi_f)  # broken before
    W0 = model[2].weight.detach().double().numpy().copy()
    b0 = model[2].bias.detach().double().numpy().copy()
    with torch.no_grad():
        H = model[:2].double()(torch.as_tensor(np.vstack([X_fix, X_keep]), dtype=torch.float64)).numpy()
    model.float()
    cert = tmp_path / "c.json"
    rep = repair(model, (X_fix, (lo_f, hi_f)), (X_keep, (lo_k, hi_k)), certificate=cert)
    assert rep.status == "certified", rep.lines()
    for dtype in (torch.float32, torch.float64):  # forward passes here of the model changed in place
        assert inside(outputs(model, X_fix, dtype), lo_f, hi_f)
        assert inside(outputs(model, X_keep, dtype), lo_k, hi_k)
    model.float()
    best = full_lp(W0, b0, H, np.vstack([lo_f, lo_k]), np.vstack([hi_f, hi_k]))
    assert rep.solution.minimal and rep.solution.objective == pytest.approx(best, rel=1e-5, abs=1e-7)
    assert rep.solution.keep_rounds >= 1  # the fix points' own answer broke keep points, which then entered
    doc = json.loads(cert.read_text())
    assert doc["certified"] and doc["checks"]["torch float64"]["keep"]["ok"] == len(X_keep)


@pytest.mark.parametrize("patterns", ["all", "free"])
def test_hidden_layer_interval_repair_checked_by_forward_pass(patterns):
    """ReLU phases pinned (an LP) or exact (a MILP): either way the model as changed is judged here."""
    model = net()
    X_fix, (lo_f, hi_f), X_keep, (lo_k, hi_k) = problem(model, seed=1, tol=0.4)
    W_last = model[2].weight.detach().clone()
    rep = repair(model, (X_fix, (lo_f, hi_f)), (X_keep, (lo_k, hi_k)), layer=0, patterns=patterns)
    assert rep.status == "certified", rep.lines()
    assert rep.change["l1"] > 0 and torch.equal(model[2].weight, W_last)  # only layer 0 changed
    for dtype in (torch.float32, torch.float64):
        assert inside(outputs(model, X_fix, dtype), lo_f, hi_f)
        assert inside(outputs(model, X_keep, dtype), lo_k, hi_k)
    model.float()


def test_impossible_intervals_are_infeasible_and_bad_ones_named():
    model = net()
    X_fix, (lo_f, hi_f), X_keep, _ = problem(model)
    X2 = np.vstack([X_fix[:1], X_fix[:1]])  # the same input, disjoint intervals: no change does it
    lo = np.array([[0.0, -np.inf], [5.0, -np.inf]])
    hi = np.array([[1.0, np.inf], [6.0, np.inf]])
    rep = repair(model, (X2, (lo, hi)))
    assert rep.status == "infeasible"
    with pytest.raises(GdsolverError, match="fix lo"):
        repair(model, (X_fix, (np.zeros((4, 5)), None)))
    with pytest.raises(GdsolverError, match="narrower"):
        repair(model, (X_fix, (np.zeros((4, 2)), np.full((4, 2), 0.001))))
    with pytest.raises(GdsolverError, match="keep points need intervals"):
        repair(model, (X_fix, (lo_f, hi_f)), X_keep)


def test_cli_interval_repair_onnx(tmp_path):
    model = net(1)
    X_fix, (lo_f, hi_f), X_keep, (lo_k, hi_k) = problem(model, seed=6, tol=0.3)
    torch.onnx.export(model, (torch.zeros(1, 3),), str(tmp_path / "m.onnx"), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    np.savez(tmp_path / "fix.npz", X=X_fix, lo=lo_f)  # no hi: open above
    np.savez(tmp_path / "keep.npz", X=X_keep, lo=lo_k, hi=hi_k)
    p = run("repair", "m.onnx", "--fix", "fix.npz", "--keep", "keep.npz", "-o", "r.onnx", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    o_fix, o_keep = onnx_forward(tmp_path / "r.onnx", X_fix), onnx_forward(tmp_path / "r.onnx", X_keep)
    assert np.all(o_fix >= lo_f) and inside(o_keep, lo_k, hi_k)  # onnxruntime, run here
    np.savez(tmp_path / "bad.npz", X=X_fix)
    assert_user_error(run("repair", "m.onnx", "--fix", "bad.npz", "-o", "s.onnx", cwd=tmp_path), "bad.npz")
