"""Formulations checked against independent scipy LP/MILP formulations and numpy
forward passes. Everything is tiny and seeded."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from gdsolver.compile import solve
from gdsolver.errors import GdsolverError
from gdsolver.formulate import classification, correct_mask, forward, regression
from gdsolver.ir import fingerprint, verify

# ---------------------------------------------------------------------------------
# data and independent reference formulations (dense, written from scratch)
# ---------------------------------------------------------------------------------


def make_layer(seed: int, T: int, N: int, M: int, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(M, N)) * scale
    b = rng.normal(size=M) * scale
    H = rng.normal(size=(T, N))
    return rng, W, b, H


def act_interval(W, b, H, r):
    """Exact interval of a = H w^T + b over |w - W| <= r, |b - b0| <= r (brute
    force per term, no shortcut formula)."""
    lo_terms = np.minimum(H[:, None, :] * (W - r)[None], H[:, None, :] * (W + r)[None])
    hi_terms = np.maximum(H[:, None, :] * (W - r)[None], H[:, None, :] * (W + r)[None])
    return lo_terms.sum(-1) + (b - r), hi_terms.sum(-1) + (b + r)


class _Vars:
    """Column layout for the dense reference models."""

    def __init__(self):
        self.n = 0
        self.lb: list[np.ndarray] = []
        self.ub: list[np.ndarray] = []
        self.integ: list[np.ndarray] = []

    def add(self, shape, lb, ub, integer=False):
        size = int(np.prod(shape))
        idx = np.arange(self.n, self.n + size).reshape(shape)
        self.n += size
        self.lb.append(np.broadcast_to(np.asarray(lb, float), shape).ravel())
        self.ub.append(np.broadcast_to(np.asarray(ub, float), shape).ravel())
        self.integ.append(np.full(size, 1 if integer else 0))
        return idx

    def arrays(self):
        return np.concatenate(self.lb), np.concatenate(self.ub), np.concatenate(self.integ)


def _affine_row(n, w, bb, H, t, j, sign=1.0):
    row = np.zeros(n)
    row[w[j]] += sign * H[t]
    row[bb[j]] += sign
    return row


def _relu_rows(n, w, bb, o, z, W, b, H, r):
    """o = max(a, 0) with binary z, big-M from the exact interval of a."""
    T, M = o.shape
    a_lo, a_hi = act_interval(W, b, H, r)
    rows, lo, hi = [], [], []
    for t in range(T):
        for j in range(M):
            L, U = min(a_lo[t, j], 0.0), max(a_hi[t, j], 0.0)
            # o - a >= 0
            row = -_affine_row(n, w, bb, H, t, j)
            row[o[t, j]] += 1
            rows.append(row), lo.append(0.0), hi.append(np.inf)
            # o <= a - L (1 - z)   <=>   o - a - L z <= -L
            row = -_affine_row(n, w, bb, H, t, j)
            row[o[t, j]] += 1
            row[z[t, j]] -= L
            rows.append(row), lo.append(-np.inf), hi.append(-L)
            # o <= U z
            row = np.zeros(n)
            row[o[t, j]] = 1
            row[z[t, j]] = -U
            rows.append(row), lo.append(-np.inf), hi.append(0.0)
    return rows, lo, hi


def ref_l1_identity(W, b, H, Y, r):
    """min sum |H w^T + b - Y| over the box, as a dense linprog."""
    T, M = Y.shape
    v = _Vars()
    w = v.add(W.shape, W - r, W + r)
    bb = v.add(b.shape, b - r, b + r)
    e = v.add((T, M), 0.0, np.inf)
    A, rhs = [], []
    for t in range(T):
        for j in range(M):
            row = _affine_row(v.n, w, bb, H, t, j)
            row[e[t, j]] = -1
            A.append(row), rhs.append(Y[t, j])  # a - e <= y
            row = -_affine_row(v.n, w, bb, H, t, j)
            row[e[t, j]] = -1
            A.append(row), rhs.append(-Y[t, j])  # -a - e <= -y
    lb, ub, _ = v.arrays()
    cost = np.zeros(v.n)
    cost[e.ravel()] = 1
    res = linprog(cost, A_ub=np.array(A), b_ub=np.array(rhs), bounds=list(zip(lb, ub)), method="highs")
    assert res.status == 0, res.message
    return res.fun


def ref_l1_relu(W, b, H, Y, r):
    """min sum |relu(H w^T + b) - Y| over the box, as a dense big-M scipy milp."""
    T, M = Y.shape
    v = _Vars()
    w = v.add(W.shape, W - r, W + r)
    bb = v.add(b.shape, b - r, b + r)
    o = v.add((T, M), 0.0, np.inf)
    z = v.add((T, M), 0.0, 1.0, integer=True)
    e = v.add((T, M), 0.0, np.inf)
    rows, lo, hi = _relu_rows(v.n, w, bb, o, z, W, b, H, r)
    for t in range(T):
        for j in range(M):
            row = np.zeros(v.n)
            row[e[t, j]], row[o[t, j]] = 1, -1
            rows.append(row), lo.append(-Y[t, j]), hi.append(np.inf)  # e - o >= -y
            row = np.zeros(v.n)
            row[e[t, j]], row[o[t, j]] = 1, 1
            rows.append(row), lo.append(Y[t, j]), hi.append(np.inf)  # e + o >= y
    lb, ub, integ = v.arrays()
    cost = np.zeros(v.n)
    cost[e.ravel()] = 1
    res = milp(cost, integrality=integ, bounds=Bounds(lb, ub),
               constraints=LinearConstraint(np.array(rows), lo, hi), options={"mip_rel_gap": 1e-9})
    assert res.status == 0, res.message
    return res.fun


def ref_classification(W, b, H, labels, r, activation, margin):
    """max #points with o_label - o_j >= margin for all j != label, dense big-M milp."""
    T, M = H.shape[0], W.shape[0]
    v = _Vars()
    w = v.add(W.shape, W - r, W + r)
    bb = v.add(b.shape, b - r, b + r)
    rows, lo, hi = [], [], []
    a_lo, a_hi = act_interval(W, b, H, r)
    if activation == "relu":
        o = v.add((T, M), 0.0, np.inf)
        z = v.add((T, M), 0.0, 1.0, integer=True)
    c = v.add((T,), 0.0, 1.0, integer=True)
    if activation == "relu":
        rr, ll, hh = _relu_rows(v.n, w, bb, o, z, W, b, H, r)
        rows += rr
        lo += ll
        hi += hh
    for t in range(T):
        lab = labels[t]
        for j in range(M):
            if j == lab:
                continue
            if activation == "identity":
                row = _affine_row(v.n, w, bb, H, t, lab) - _affine_row(v.n, w, bb, H, t, j)
                d_lo = a_lo[t, lab] - a_hi[t, j]  # w_lab and w_j are distinct variables: exact
            else:
                row = np.zeros(v.n)
                row[o[t, lab]], row[o[t, j]] = 1, -1
                d_lo = max(a_lo[t, lab], 0.0) - max(a_hi[t, j], 0.0)
            # D >= margin - (margin - d_lo)(1 - c)   <=>   D - (margin - d_lo) c >= d_lo
            row[c[t]] = -(margin - d_lo)
            rows.append(row), lo.append(d_lo), hi.append(np.inf)
    lb, ub, integ = v.arrays()
    cost = np.zeros(v.n)
    cost[c] = -1
    res = milp(cost, integrality=integ, bounds=Bounds(lb, ub),
               constraints=LinearConstraint(np.array(rows), lo, hi), options={"mip_rel_gap": 0.0})
    assert res.status == 0, res.message
    return -res.fun


def in_box(sol, W, b, r, tol=1e-9):
    return (np.all(np.abs(sol["w"] - W) <= r + tol) and np.all(np.abs(sol["b"] - b) <= r + tol))


# ---------------------------------------------------------------------------------
# regression, mode l1
# ---------------------------------------------------------------------------------

L1_IDENTITY_CASES = [
    # seed, T, N, M, radius
    (0, 10, 2, 1, 0.1),
    (1, 20, 3, 2, 0.3),
    (2, 30, 5, 3, 0.05),
    (3, 15, 4, 1, 2.0),
    (4, 25, 2, 3, 1.0),
]


@pytest.mark.parametrize("seed,T,N,M,r", L1_IDENTITY_CASES)
def test_l1_identity_matches_linprog(seed, T, N, M, r):
    rng, W, b, H = make_layer(seed, T, N, M)
    Y = H @ rng.normal(size=(N, M)) + rng.normal(size=M) + 0.1 * rng.normal(size=(T, M))
    Yarg = Y[:, 0] if M == 1 else Y  # (T,) for a single output
    inst = regression(W, b, H, Yarg, radius=r, activation="identity", mode="l1")
    assert not inst.is_mip  # an LP
    res = solve(inst)
    assert res.status == "OPTIMAL"
    ref = ref_l1_identity(W, b, H, Y, r)
    tol = 1e-6 * max(1.0, abs(ref))
    assert res.objective == pytest.approx(ref, abs=tol)
    sol = inst.unpack(res.x)
    assert sol["w"].shape == (M, N) and sol["b"].shape == (M,)
    assert in_box(sol, W, b, r)
    l1 = np.abs(forward(sol["w"], sol["b"], H, "identity") - Y).sum()
    assert l1 == pytest.approx(res.objective, abs=tol)
    assert res.objective <= inst.meta["current_l1"] + 1e-9
    assert inst.meta["current_l1"] == pytest.approx(np.abs(forward(W, b, H, "identity") - Y).sum())
    assert verify(inst, res.x).ok


def test_l1_single_output_vector_and_column_targets_agree():
    rng, W, b, H = make_layer(7, 12, 3, 1)
    y = rng.normal(size=12)
    a = regression(W, b, H, y, radius=0.2)
    c = regression(W, b, H, y[:, None], radius=0.2)
    assert fingerprint(a) == fingerprint(c)


L1_RELU_CASES = [
    # seed, T, N, M, radius
    (10, 6, 2, 1, 0.3),
    (11, 8, 2, 2, 0.5),
    (12, 10, 2, 1, 1.0),
    (13, 7, 3, 2, 0.2),
]


@pytest.mark.parametrize("seed,T,N,M,r", L1_RELU_CASES)
def test_l1_relu_matches_scipy_milp(seed, T, N, M, r):
    rng, W, b, H = make_layer(seed, T, N, M)
    Y = np.abs(rng.normal(size=(T, M)))  # non-negative targets, some zeros would also do
    Y[rng.random((T, M)) < 0.2] = 0.0
    inst = regression(W, b, H, Y[:, 0] if M == 1 else Y, radius=r, activation="relu", mode="l1")
    res = solve(inst, mip_gap=1e-9)
    assert res.status == "OPTIMAL"
    assert verify(inst, res.x).ok
    sol = inst.unpack(res.x)
    assert in_box(sol, W, b, r)
    l1 = np.abs(forward(sol["w"], sol["b"], H, "relu") - Y).sum()
    assert l1 == pytest.approx(res.objective, abs=1e-5)
    assert res.objective <= inst.meta["current_l1"] + 1e-7
    ref = ref_l1_relu(W, b, H, Y, r)
    assert res.objective == pytest.approx(ref, abs=1e-5 * max(1.0, abs(ref)))


# ---------------------------------------------------------------------------------
# regression, mode paper
# ---------------------------------------------------------------------------------


def _paper_case(seed, T, N, M, activation, exact_targets):
    """Targets from nearby 'true' weights, so that improving every point at once is
    possible (moving towards the true weights shrinks every error)."""
    rng, W, b, H = make_layer(seed, T, N, M)
    if exact_targets:
        Wt, bt = W + rng.uniform(-0.1, 0.1, W.shape), b + rng.uniform(-0.1, 0.1, b.shape)
        Y = forward(Wt, bt, H, activation)
    else:
        Y = rng.normal(size=(T, M))
    return W, b, H, Y


@pytest.mark.parametrize("activation", ["identity", "relu"])
@pytest.mark.parametrize("margin,exact", [(0.0, False), (0.0, True), (0.02, True)])
def test_paper_regression_bounds_hold(activation, margin, exact):
    W, b, H, Y = _paper_case(20, 12, 3, 2, activation, exact)
    r = 0.3
    inst = regression(W, b, H, Y, radius=r, activation=activation, mode="paper", margin=margin)
    res = solve(inst)
    assert res.status == "OPTIMAL", res.message
    assert verify(inst, res.x).ok
    sol = inst.unpack(res.x)
    assert in_box(sol, W, b, r)
    err0 = np.abs(forward(W, b, H, activation) - Y)
    err = np.abs(forward(sol["w"], sol["b"], H, activation) - Y)
    assert np.all(err <= np.maximum(err0 - margin, 0.0) + 1e-6)


@pytest.mark.parametrize("activation", ["identity", "relu"])
def test_paper_regression_infeasible_with_huge_margin(activation):
    W, b, H, Y = _paper_case(21, 15, 2, 2, activation, False)
    inst = regression(W, b, H, Y, radius=0.1, activation=activation, mode="paper", margin=1e6)
    res = solve(inst)
    assert res.status == "INFEASIBLE"
    assert res.x is None and res.objective is None


# ---------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------

CLASS_CASES = [
    # seed, T, N, M, radius
    (30, 6, 2, 2, 0.5),
    (31, 8, 2, 3, 0.5),
    (32, 10, 2, 3, 0.3),
    (33, 9, 2, 2, 1.0),
]


def _class_case(seed, T, N, M):
    rng, W, b, H = make_layer(seed, T, N, M)
    labels = rng.integers(0, M, T)
    return W, b, H, labels


def _check_class_solution(inst, res, W, b, H, labels, r, activation, margin):
    assert res.status == "OPTIMAL", res.message
    assert verify(inst, res.x).ok
    sol = inst.unpack(res.x)
    assert in_box(sol, W, b, r)
    o = forward(sol["w"], sol["b"], H, activation)
    ok = correct_mask(o, labels, margin - 1e-6)
    assert ok.sum() == round(res.objective)
    assert np.all(ok[np.round(sol["c"]) == 1])  # every point counted is really correct
    assert res.objective >= inst.meta["current_correct"]
    return sol


@pytest.mark.parametrize("seed,T,N,M,r", CLASS_CASES)
@pytest.mark.parametrize("activation", ["identity", "relu"])
def test_classification_matches_scipy_milp(seed, T, N, M, r, activation):
    W, b, H, labels = _class_case(seed, T, N, M)
    margin = 1e-3
    ref = ref_classification(W, b, H, labels, r, activation, margin)
    objs = {}
    for mode in ("paper", "compact"):
        inst = classification(W, b, H, labels, radius=r, activation=activation, mode=mode, margin=margin)
        assert inst.meta["current_correct"] == correct_mask(forward(W, b, H, activation), labels, margin).sum()
        res = solve(inst)
        _check_class_solution(inst, res, W, b, H, labels, r, activation, margin)
        objs[mode] = res.objective
        assert res.objective == pytest.approx(ref, abs=1e-6)
    assert objs["paper"] == pytest.approx(objs["compact"], abs=1e-9)


@pytest.mark.parametrize("mode", ["paper", "compact"])
@pytest.mark.parametrize("activation", ["identity", "relu"])
def test_classification_larger_margin(mode, activation):
    W, b, H, labels = _class_case(34, 10, 2, 3)
    r, margin = 0.5, 0.2
    inst = classification(W, b, H, labels, radius=r, activation=activation, mode=mode, margin=margin)
    res = solve(inst)
    _check_class_solution(inst, res, W, b, H, labels, r, activation, margin)
    assert res.objective == pytest.approx(ref_classification(W, b, H, labels, r, activation, margin), abs=1e-6)


@pytest.mark.parametrize("mode", ["paper", "compact"])
@pytest.mark.parametrize("activation", ["identity", "relu"])
def test_keep_correct_points_stay_correct(mode, activation):
    # find a case where some points are correct now
    for seed in range(40, 80):
        W, b, H, labels = _class_case(seed, 10, 2, 3)
        margin = 1e-3
        correct0 = np.flatnonzero(correct_mask(forward(W, b, H, activation), labels, margin))
        if 2 <= len(correct0) <= 7:
            break
    else:  # pragma: no cover
        pytest.fail("no suitable seed")
    r = 0.5
    free = solve(classification(W, b, H, labels, radius=r, activation=activation, mode=mode, margin=margin))
    inst = classification(W, b, H, labels, radius=r, activation=activation, mode=mode, margin=margin,
                          keep_correct=correct0)
    assert inst.meta["keep_correct"] == sorted(int(i) for i in correct0)
    res = solve(inst)
    sol = _check_class_solution(inst, res, W, b, H, labels, r, activation, margin)
    o = forward(sol["w"], sol["b"], H, activation)
    assert np.all(correct_mask(o, labels, margin - 1e-6)[correct0])
    assert res.objective <= free.objective + 1e-9


def test_keep_correct_with_wrong_point_raises():
    W, b, H, labels = _class_case(31, 8, 2, 3)
    wrong = np.flatnonzero(~correct_mask(forward(W, b, H, "identity"), labels, 1e-3))
    assert len(wrong)
    with pytest.raises(GdsolverError, match="keep_correct"):
        classification(W, b, H, labels, radius=0.5, keep_correct=[int(wrong[0])])
    with pytest.raises(GdsolverError, match="keep_correct"):
        classification(W, b, H, labels, radius=0.5, keep_correct=[len(labels)])


def test_classification_paper_mode_has_more_binaries():
    W, b, H, labels = _class_case(31, 8, 2, 3)
    paper = classification(W, b, H, labels, radius=0.5, mode="paper")
    compact = classification(W, b, H, labels, radius=0.5, mode="compact")
    T, M = 8, 3
    assert paper.num_integer - compact.num_integer == T * M  # the s block (label entries fixed to 0)
    assert paper.blocks["s"][1] == (T, M) and "s" not in compact.blocks
    assert compact.blocks["c"][1] == (T,)


# ---------------------------------------------------------------------------------
# the current weights are always a feasible MIP start with the current objective
# ---------------------------------------------------------------------------------

def _all_formulations():
    rng, W, b, H = make_layer(50, 9, 3, 3)
    Y = rng.normal(size=(9, 3))
    labels = rng.integers(0, 3, 9)
    out = []
    for act in ("identity", "relu"):
        out.append((f"l1-{act}", regression(W, b, H, Y, radius=0.2, activation=act, mode="l1")))
        out.append((f"paper-reg-{act}", regression(W, b, H, Y, radius=0.2, activation=act, mode="paper", margin=0.0)))
        for mode in ("paper", "compact"):
            out.append((f"class-{mode}-{act}", classification(W, b, H, labels, radius=0.2, activation=act, mode=mode)))
    return W, b, out


def test_start_is_current_weights_and_feasible():
    W, b, insts = _all_formulations()
    for name, inst in insts:
        inst.validate()
        assert inst.start is not None, name
        rep = verify(inst, inst.start)
        assert rep.ok, f"{name}: {rep}"
        assert inst.objective_value(inst.start) == pytest.approx(inst.meta["current_objective"], abs=1e-9), name
        sol = inst.unpack(inst.start)
        np.testing.assert_array_equal(sol["w"], W)
        np.testing.assert_array_equal(sol["b"], b)
        np.testing.assert_array_equal(inst.lb[:W.size], (W - 0.2).ravel())


def test_classification_meta():
    rng, W, b, H = make_layer(51, 7, 2, 3)
    labels = rng.integers(0, 3, 7)
    inst = classification(W, b, H, labels, radius=0.25, activation="relu", mode="compact", margin=0.01)
    m = inst.meta
    assert (m["formulation"], m["mode"], m["activation"], m["T"], m["N"], m["M"]) == \
        ("classification", "compact", "relu", 7, 2, 3)
    assert m["radius"] == 0.25 and m["margin"] == 0.01
    assert inst.sense == "max"


# ---------------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------------

_rng, _W, _b, _H = make_layer(60, 6, 3, 2)
_Y = _rng.normal(size=(6, 2))
_L = np.array([0, 1, 0, 1, 1, 0])


def _nan_at(a, idx):
    a = a.copy()
    a[idx] = np.nan
    return a


REG_BAD = {
    "nan in H": dict(H=_nan_at(_H, (2, 1))),
    "inf in W": dict(W=np.where(np.eye(2, 3) > 0, np.inf, _W)),
    "nan in b": dict(b=_nan_at(_b, 0)),
    "nan in Y": dict(Y=_nan_at(_Y, (0, 0))),
    "b wrong length": dict(b=np.zeros(3)),
    "b 2-D": dict(b=np.zeros((2, 1))),
    "H wrong width": dict(H=np.zeros((6, 4))),
    "H 1-D": dict(H=np.zeros(3)),
    "H empty": dict(H=np.zeros((0, 3)), Y=np.zeros((0, 2))),
    "W 1-D": dict(W=np.zeros(3)),
    "Y wrong rows": dict(Y=np.zeros((5, 2))),
    "Y wrong cols": dict(Y=np.zeros((6, 3))),
    "Y 1-D with M=2": dict(Y=np.zeros(6)),
    "Y 3-D": dict(Y=np.zeros((6, 2, 1))),
    "radius 0": dict(radius=0.0),
    "radius negative": dict(radius=-1.0),
    "radius nan": dict(radius=float("nan")),
    "radius inf": dict(radius=float("inf")),
    "radius string": dict(radius="big"),
    "unknown activation": dict(activation="tanh"),
    "unknown mode": dict(mode="l2"),
    "classification mode": dict(mode="compact"),
    "negative margin": dict(margin=-0.1),
    "non-numeric H": dict(H=[["a", "b", "c"]] * 6),
}


@pytest.mark.parametrize("case", sorted(REG_BAD))
def test_regression_bad_inputs(case):
    kw = dict(W=_W, b=_b, H=_H, Y=_Y, radius=0.1, activation="identity", mode="l1")
    kw.update(REG_BAD[case])
    W, b, H, Y = kw.pop("W"), kw.pop("b"), kw.pop("H"), kw.pop("Y")
    with pytest.raises(GdsolverError):
        regression(W, b, H, Y, **kw)


CLASS_BAD = {
    "nan in H": dict(H=_nan_at(_H, (0, 0))),
    "label too large": dict(labels=np.array([0, 1, 2, 0, 1, 0])),
    "label negative": dict(labels=np.array([0, -1, 0, 1, 1, 0])),
    "label fractional": dict(labels=np.array([0, 0.5, 0, 1, 1, 0])),
    "label nan": dict(labels=np.array([0, np.nan, 0, 1, 1, 0])),
    "label strings": dict(labels=np.array(["a"] * 6)),
    "labels wrong length": dict(labels=np.array([0, 1, 0])),
    "labels 2-D": dict(labels=np.zeros((6, 1), int)),
    "single class": dict(W=_W[:1], b=_b[:1], labels=np.zeros(6, int)),
    "unknown mode": dict(mode="l1"),
    "unknown activation": dict(activation="sigmoid"),
    "radius 0": dict(radius=0),
    "negative margin": dict(margin=-1e-3),
    "b wrong length": dict(b=np.zeros(3)),
    "H wrong width": dict(H=np.zeros((6, 2))),
    "keep index out of range": dict(keep_correct=[-1]),
}


@pytest.mark.parametrize("case", sorted(CLASS_BAD))
def test_classification_bad_inputs(case):
    kw = dict(W=_W, b=_b, H=_H, labels=_L, radius=0.1, activation="identity", mode="paper")
    kw.update(CLASS_BAD[case])
    W, b, H, labels = kw.pop("W"), kw.pop("b"), kw.pop("H"), kw.pop("labels")
    with pytest.raises(GdsolverError):
        classification(W, b, H, labels, **kw)


def test_error_names_the_bad_field():
    with pytest.raises(GdsolverError, match=r"^H: .*NaN"):
        regression(_W, _b, _nan_at(_H, (2, 1)), _Y, radius=0.1)
    with pytest.raises(GdsolverError, match=r"label 2 is out of range"):
        classification(_W, _b, _H, np.array([0, 1, 2, 0, 1, 0]), radius=0.1)
    with pytest.raises(GdsolverError, match=r"radius"):
        classification(_W, _b, _H, _L, radius=-3)


@pytest.mark.parametrize("activation", ["identity", "relu"])
def test_fix_bias_keeps_b_and_is_no_better_than_free_bias(activation: str) -> None:
    from gdsolver.compile import solve
    from gdsolver.formulate import classification, regression

    rng = np.random.default_rng(11)
    T, N, M = 15, 3, 2
    W, b, H = rng.normal(size=(M, N)), rng.normal(size=M), rng.normal(size=(T, N))
    Y = rng.normal(size=(T, M))
    fixed = regression(W, b, H, Y, radius=0.3, activation=activation, fix_bias=True)
    free = regression(W, b, H, Y, radius=0.3, activation=activation)
    rf, rr = solve(fixed), solve(free)
    assert fixed.meta["box_bias"] is False and free.meta["box_bias"] is True
    assert np.array_equal(fixed.unpack(rf.x)["b"], b)
    assert rf.objective >= rr.objective - 1e-7  # a smaller box cannot do better
    lab = rng.integers(0, 3, T)
    inst = classification(rng.normal(size=(3, N)), np.zeros(3), H, lab, radius=0.5, activation=activation,
                          mode="compact", fix_bias=True)
    res = solve(inst)
    assert np.array_equal(inst.unpack(res.x)["b"], np.zeros(3))
