"""The closest-point LP (gdsolver.ir.closest): same integer decisions and objective as the
MIP's answer, least L1 weight change; checked against an independent scipy LP."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

import gdsolver
from gdsolver.errors import GdsolverError
from gdsolver.formulate import classification, correct_mask, regression
from gdsolver.ir.closest import closest_instance


def _blocks_l1(inst, x):
    w = np.concatenate([inst.unpack(x)["w"].ravel(), inst.unpack(x)["b"].ravel()])
    w0 = np.concatenate([inst.unpack(inst.start)["w"].ravel(), inst.unpack(inst.start)["b"].ravel()])
    return float(np.abs(w - w0).sum())


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("activation", ["identity", "relu"])
def test_classification_closest_keeps_decisions_and_moves_less(seed, activation):
    rng = np.random.default_rng(seed)
    T, N, M = 12, 5, 3
    W, b, H = rng.normal(size=(M, N)), rng.normal(size=M) * 0.1, rng.random((T, N))
    y = rng.integers(0, M, T)
    inst = classification(W, b, H, y, radius=0.3, activation=activation, mode="compact")
    res = gdsolver.solve(inst, "highs")
    assert res.status == "OPTIMAL"
    ci = closest_instance(inst, res.x)
    r2 = gdsolver.solve(ci, "highs")
    assert r2.status == "OPTIMAL"
    x2 = r2.x[: inst.num_vars]
    assert gdsolver.verify(inst, x2).ok
    assert inst.objective_value(x2) == pytest.approx(res.objective, abs=1e-6)
    # the integer decisions are the MIP's
    integer = inst.vtype != 0
    np.testing.assert_array_equal(np.round(x2[integer]), np.round(res.x[integer]))
    assert _blocks_l1(inst, x2) <= _blocks_l1(inst, res.x) + 1e-7
    # independent route: the same number of points is correct by a numpy forward pass
    blk = inst.unpack(x2)
    o = H @ blk["w"].T + blk["b"]
    o = np.maximum(o, 0) if activation == "relu" else o
    assert int(correct_mask(o, y, 1e-3 - 1e-7).sum()) >= round(res.objective)


@pytest.mark.parametrize("seed", range(3))
def test_regression_closest_matches_scipy(seed):
    """min sum|w - w0| s.t. sum|o - y| <= L1*, |w - w0| <= r, as a dense scipy LP."""
    rng = np.random.default_rng(seed)
    T, N, M, r = 15, 3, 2, 0.2
    W, b, H = rng.normal(size=(M, N)), rng.normal(size=M), rng.random((T, N))
    Y = H @ rng.normal(size=(N, M)) + 0.5
    inst = regression(W, b, H, Y, radius=r)
    res = gdsolver.solve(inst, "highs")
    r2 = gdsolver.solve(closest_instance(inst, res.x), "highs")
    x2 = r2.x[: inst.num_vars]
    assert gdsolver.verify(inst, x2).ok
    assert inst.objective_value(x2) <= res.objective * (1 + 1e-8) + 1e-8

    # scipy: variables w (M*N), b (M), e (T*M), d (M*N + M)
    nw, ne = M * N + M, T * M
    n = nw + ne + nw
    c = np.r_[np.zeros(nw + ne), np.ones(nw)]
    w0 = np.r_[W.ravel(), b]
    A, ub = [], []
    # o_tm = H_t . W_m + b_m ; e >= o - y ; e >= y - o
    for t in range(T):
        for m in range(M):
            row = np.zeros(n)
            row[m * N:(m + 1) * N] = H[t]
            row[M * N + m] = 1.0
            e = np.zeros(n)
            e[nw + t * M + m] = 1.0
            A.append(row - e); ub.append(Y[t, m])
            A.append(-row - e); ub.append(-Y[t, m])
    obj = np.zeros(n); obj[nw:nw + ne] = 1.0
    A.append(obj); ub.append(res.objective * (1 + 1e-9) + 1e-9)
    for i in range(nw):  # d_i >= |w_i - w0_i|
        a = np.zeros(n); a[i] = 1.0; a[nw + ne + i] = -1.0; A.append(a); ub.append(w0[i])
        a = np.zeros(n); a[i] = -1.0; a[nw + ne + i] = -1.0; A.append(a); ub.append(-w0[i])
    bounds = [(w - r, w + r) for w in w0] + [(0, None)] * ne + [(0, None)] * nw
    ref = linprog(c, A_ub=np.array(A), b_ub=np.array(ub), bounds=bounds, method="highs")
    assert ref.status == 0
    assert r2.objective == pytest.approx(ref.fun, rel=1e-6, abs=1e-7)
    assert _blocks_l1(inst, x2) == pytest.approx(ref.fun, rel=1e-6, abs=1e-7)


def test_closest_errors():
    rng = np.random.default_rng(0)
    inst = regression(rng.normal(size=(1, 2)), np.zeros(1), rng.random((4, 2)), rng.random(4), radius=0.1)
    with pytest.raises(GdsolverError, match="shape"):
        closest_instance(inst, np.zeros(3))
    with pytest.raises(GdsolverError, match="no block"):
        closest_instance(inst, inst.start, blocks=("nope",))


@pytest.mark.parametrize("mode", ["paper", "compact"])
@pytest.mark.parametrize("seed", range(3))
def test_classification_closest_is_an_lp_and_matches_scipy(mode, seed):
    """The closest instance has no integer variable and no indicator left (HiGHS solves an
    LP), and its optimum is scipy's for min sum|w - w0| + |b - b0| over the box subject to
    the margin rows that the MIP's decisions switch on, built from W, b, H directly."""
    rng = np.random.default_rng(seed)
    T, N, M, r, margin = 10, 6, 4, 0.3, 1e-3
    W, b, H = rng.normal(size=(M, N)), rng.normal(size=M) * 0.1, np.maximum(rng.normal(size=(T, N)), 0)
    y = rng.integers(0, M, T)
    inst = classification(W, b, H, y, radius=r, mode=mode, margin=margin)
    res = gdsolver.solve(inst, "highs")
    assert res.status == "OPTIMAL"
    ci = closest_instance(inst, res.x)
    assert ci.num_integer == 0 and ci.num_indicators == 0 and not ci.is_mip
    r2 = gdsolver.solve(ci, "highs")
    x2 = r2.x[: inst.num_vars]
    assert gdsolver.verify(inst, x2).ok
    assert inst.objective_value(x2) == pytest.approx(res.objective, abs=1e-6)

    # scipy: variables w (M*N), b (M), p and q (M*N + M each); w = w0 + p - q
    blk = inst.unpack(res.x)
    if mode == "paper":
        pairs = [(t, j) for t in range(T) for j in range(M) if j != y[t] and round(blk["s"][t, j]) == 1]
    else:
        pairs = [(t, j) for t in range(T) if round(blk["c"][t]) == 1 for j in range(M) if j != y[t]]
    nw = M * N + M
    w0 = np.r_[W.ravel(), b]
    A, ub = [], []
    for t, j in pairs:  # (W_l - W_j).h_t + b_l - b_j >= margin, written as -(...) <= -margin
        row = np.zeros(nw)
        row[y[t] * N:(y[t] + 1) * N] += H[t]
        row[j * N:(j + 1) * N] -= H[t]
        row[M * N + y[t]] += 1.0
        row[M * N + j] -= 1.0
        A.append(np.r_[-row, row])  # in p, q: row.(w0 + p - q)
        ub.append(-margin + row @ w0)
    c = np.ones(2 * nw)
    bounds = [(0, r)] * (2 * nw)
    ref = linprog(c, A_ub=np.array(A) if A else None, b_ub=np.array(ub) if A else None, bounds=bounds,
                  method="highs")
    assert ref.status == 0
    assert r2.objective == pytest.approx(ref.fun, rel=1e-6, abs=1e-7)
    assert _blocks_l1(inst, x2) == pytest.approx(ref.fun, rel=1e-6, abs=1e-6)


def test_closest_refuses_to_move_integer_variables():
    rng = np.random.default_rng(0)
    inst = classification(rng.normal(size=(3, 4)), np.zeros(3), rng.random((5, 4)), rng.integers(0, 3, 5),
                          radius=0.1, mode="compact")
    with pytest.raises(GdsolverError, match="integer"):
        closest_instance(inst, inst.start, blocks=("w", "c"))


@pytest.mark.slow
def test_bench_closest_quick(tmp_path):
    """`gdsolver bench closest --quick`: the closest LP reaches the baseline LP's distance and verifies."""
    import json

    from clirun import run

    p = run("bench", "closest", "--quick", "--no-resnet", "--out", str(tmp_path), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "closest-quick.json").read_text())
    assert doc["rows"] and all(r["same_distance"] and r["closest"]["verifies"] for r in doc["rows"])
