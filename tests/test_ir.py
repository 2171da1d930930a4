"""IR: CSR, interval bounds, lowering, verify, unpack, summary, validate."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from gdsolver.compile import solve
from gdsolver.errors import GdsolverError
from gdsolver.formulate import classification, regression
from gdsolver.ir import (BINARY, CONTINUOUS, INTEGER, Csr, InstanceBuilder, MilpInstance, lower, row_bounds,
                         verify)

# ---------------------------------------------------------------------------------
# row_bounds
# ---------------------------------------------------------------------------------


def _random_csr(rng, m, n, density=0.5, zeros=True):
    mask = rng.random((m, n)) < density
    dense = np.where(mask, rng.normal(size=(m, n)) * rng.choice([0.1, 1.0, 10.0], size=(m, n)), 0.0)
    rows, cols = np.nonzero(mask)
    vals = dense[rows, cols]
    if zeros and len(vals):  # explicitly stored zero coefficients
        vals[rng.random(len(vals)) < 0.15] = 0.0
    return Csr.from_coo(rows, cols, vals, m, n), rows, cols, vals


@pytest.mark.parametrize("seed", range(6))
def test_row_bounds_equal_brute_force_over_corners(seed):
    rng = np.random.default_rng(seed)
    m, n = 8, 6
    mat, rows, cols, vals = _random_csr(rng, m, n)
    lb = rng.normal(size=n) * 3
    ub = lb + rng.random(n) * 4
    fixed = rng.random(n) < 0.2  # some degenerate boxes lb == ub
    ub[fixed] = lb[fixed]
    low, high = row_bounds(mat, lb, ub)
    dense = np.zeros((m, n))
    np.add.at(dense, (rows, cols), vals)
    corners = np.array(list(itertools.product(*zip(lb, ub))))  # (2^n, n)
    values = corners @ dense.T  # (2^n, m)
    np.testing.assert_allclose(low, values.min(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(high, values.max(axis=0), rtol=1e-12, atol=1e-12)


def test_row_bounds_infinite_bounds():
    # row0: x0 - x1 with x0 in [0, inf), x1 in [-inf, 2]   -> [-2, inf)
    # row1: 0 * x0 + x2 with x2 in [1, 3]                  -> [1, 3]  (0 * inf contributes 0)
    # row2: -x0                                           -> (-inf, 0]
    # row3: empty row                                      -> [0, 0]
    mat = Csr.from_coo(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 0, 2, 0]),
                       np.array([1.0, -1.0, 0.0, 1.0, -1.0]), 4, 3)
    lb = np.array([0.0, -np.inf, 1.0])
    ub = np.array([np.inf, 2.0, 3.0])
    with np.errstate(all="raise"):
        low, high = row_bounds(mat, lb, ub)
    np.testing.assert_array_equal(low, [-2.0, 1.0, -np.inf, 0.0])
    np.testing.assert_array_equal(high, [np.inf, 3.0, 0.0, 0.0])


def test_csr_from_coo_unsorted_matches_dense():
    rng = np.random.default_rng(3)
    m, n = 7, 5
    dense = np.where(rng.random((m, n)) < 0.4, rng.normal(size=(m, n)), 0.0)
    rows, cols = np.nonzero(dense)
    perm = rng.permutation(len(rows))
    mat = Csr.from_coo(rows[perm], cols[perm], dense[rows, cols][perm], m, n)
    x = rng.normal(size=n)
    np.testing.assert_allclose(mat.matvec(x), dense @ x)
    assert mat.indptr.dtype == np.int64 and mat.indices.dtype == np.int32 and mat.data.dtype == np.float64
    sub = mat.take_rows(np.array([4, 0, 4]))
    np.testing.assert_allclose(sub.matvec(x), (dense @ x)[[4, 0, 4]])


# ---------------------------------------------------------------------------------
# lowering
# ---------------------------------------------------------------------------------


def _indicator_instances():
    rng = np.random.default_rng(100)
    M, N, T = 3, 2, 7
    W, b, H = rng.normal(size=(M, N)), rng.normal(size=M), rng.normal(size=(T, N))
    labels = rng.integers(0, M, T)
    Y = np.abs(rng.normal(size=(T, M)))
    return {
        "class-paper-identity": classification(W, b, H, labels, radius=0.5, mode="paper"),
        "class-compact-identity": classification(W, b, H, labels, radius=0.5, mode="compact"),
        "class-paper-relu": classification(W, b, H, labels, radius=0.5, mode="paper", activation="relu"),
        "class-compact-relu": classification(W, b, H, labels, radius=0.5, mode="compact", activation="relu"),
        "reg-l1-relu": regression(W, b, H, Y, radius=0.4, activation="relu", mode="l1"),
        "reg-paper-relu": regression(W, b, H, Y, radius=0.4, activation="relu", mode="paper"),
    }


def _random_points(inst, rng, count):
    """Points in the box with integral integers: the start with random binaries
    flipped and continuous values moved, plus uniform points."""
    lb, ub = inst.lb, inst.ub
    integer = inst.vtype != CONTINUOUS
    lo = np.where(np.isfinite(lb), lb, -10.0)
    hi = np.where(np.isfinite(ub), ub, lo + 20.0)
    pts = []
    for k in range(count):
        if k % 2 == 0 and inst.start is not None:
            x = inst.start.copy()
            flip = integer & (rng.random(inst.num_vars) < 0.15)
            x[flip] = np.clip(1.0 - x[flip], lb[flip], ub[flip])
            move = ~integer & (rng.random(inst.num_vars) < 0.3)
            x[move] = rng.uniform(lo[move], hi[move])
        else:
            x = rng.uniform(lo, hi)
        x[integer] = np.clip(np.round(x[integer]), lb[integer], ub[integer])
        pts.append(x)
    return pts


def _indicator_side_violations(inst, x, tol):
    act = np.round(x[inst.ind_var]) == inst.ind_val
    ax = inst.ind_A.matvec(x)
    return act & (ax < inst.ind_lo - tol), act & (ax > inst.ind_hi + tol)


@pytest.mark.parametrize("name", sorted(_indicator_instances()))
def test_lowering_agrees_with_indicators(name):
    inst = _indicator_instances()[name]
    assert inst.num_indicators > 0
    low, mapping = lower(inst)
    assert low.num_indicators == 0
    assert low.num_vars == inst.num_vars
    assert low.num_rows == inst.num_rows + len(mapping.indicator)
    assert mapping.first_row == inst.num_rows
    np.testing.assert_array_equal(low.A.indptr[: inst.num_rows + 1], inst.A.indptr)
    low.validate()
    rng = np.random.default_rng(7)
    tol = 1e-6
    agree_ok = {True: 0, False: 0}
    for x in _random_points(inst, rng, 60):
        r_orig, r_low = verify(inst, x, tol), verify(low, x, tol)
        assert r_orig.ok == r_low.ok
        agree_ok[r_orig.ok] += 1
        # per indicator side: violated iff its big-M row is violated
        v_lo, v_hi = _indicator_side_violations(inst, x, tol)
        rowval = low.A.matvec(x)[mapping.first_row:]
        rlo, rhi = low.row_lo[mapping.first_row:], low.row_hi[mapping.first_row:]
        row_bad = (rowval < rlo - tol) | (rowval > rhi + tol)
        bad_lo = np.zeros(inst.num_indicators, bool)
        bad_hi = np.zeros(inst.num_indicators, bool)
        bad_lo[mapping.indicator[(mapping.side == 0) & row_bad]] = True
        bad_hi[mapping.indicator[(mapping.side == 1) & row_bad]] = True
        np.testing.assert_array_equal(bad_lo, v_lo)
        np.testing.assert_array_equal(bad_hi, v_hi)
    assert agree_ok[False] > 0  # the random points really exercise violations
    # the start and the solver's solution satisfy both
    for x in (inst.start, solve(inst).x):
        assert verify(inst, x).ok and verify(low, x).ok


def test_lowering_without_indicators_is_identity():
    rng = np.random.default_rng(1)
    inst = regression(rng.normal(size=(2, 3)), rng.normal(size=2), rng.normal(size=(5, 3)),
                      rng.normal(size=(5, 2)), radius=0.1)
    low, mapping = lower(inst)
    assert low is inst or (low.num_rows == inst.num_rows and low.num_indicators == 0)
    assert len(mapping.indicator) == 0


def test_lowering_is_pure():
    inst = _indicator_instances()["class-paper-relu"]
    before = {f.name: getattr(inst, f.name) for f in dataclasses.fields(inst)}
    copies = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in before.items()}
    meta = dict(inst.meta)
    lower(inst)
    for k, v in copies.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(getattr(inst, k), v)
    assert inst.meta == meta
    assert inst.num_indicators > 0


def _cap_instance(x_ub=np.inf, second_ub=np.inf, lo=-np.inf, hi=5.0):
    """x (2,) in [0, ub], z (2,) binary; indicators cap[k]: z_k = 1 => lo <= x_k <= hi."""
    bld = InstanceBuilder()
    x = bld.add_block("x", (2,), lb=0.0, ub=[x_ub, second_ub], cost=-1.0)
    z = bld.add_block("z", (2,), lb=0.0, ub=1.0, vtype=BINARY)
    bld.add_indicators("cap", z, 1, np.array([0, 1]), x, np.ones(2), lo=lo, hi=hi)
    return bld.build("min")


def test_lowering_infinite_bound_names_indicator():
    with pytest.raises(GdsolverError, match=r"cap\[0\].*z\[0\]"):
        lower(_cap_instance())
    with pytest.raises(GdsolverError, match=r"cap\[1\].*z\[1\]"):
        lower(_cap_instance(x_ub=3.0))
    with pytest.raises(GdsolverError, match=r"upper"):
        lower(_cap_instance(x_ub=3.0))


def test_lowering_side_not_needed_is_fine():
    # x in [0, 3] so x <= 5 always holds; the other side is -inf: no rows at all
    low, mapping = lower(_cap_instance(x_ub=3.0, second_ub=4.0))
    assert len(mapping.indicator) == 0
    # a needed finite side gives one row per indicator, M from the bounds
    low, mapping = lower(_cap_instance(x_ub=10.0, second_ub=20.0))
    assert len(mapping.indicator) == 2
    x = np.array([7.0, 4.0, 1.0, 1.0])  # z0 = 1 forces x0 <= 5: violated
    assert not verify(low, x).ok
    x = np.array([7.0, 4.0, 0.0, 1.0])
    assert verify(low, x).ok
    x = np.array([10.0, 20.0, 0.0, 0.0])
    assert verify(low, x).ok


def test_summary_reports_infinite_big_m():
    s = _cap_instance().summary()
    assert s["big_m_infinite"] == 2
    assert s["unbounded_vars"] == 2


# ---------------------------------------------------------------------------------
# unpack, summary, labels
# ---------------------------------------------------------------------------------


def test_unpack_shapes():
    rng = np.random.default_rng(5)
    M, N, T = 3, 4, 6
    W, b, H = rng.normal(size=(M, N)), rng.normal(size=M), rng.normal(size=(T, N))
    # ReLU binaries only for units whose sign the box leaves open (interval computed here by brute force)
    a = H @ W.T + b
    spread = 0.1 * (np.abs(H).sum(1, keepdims=True) + 1)
    U = int(np.count_nonzero((a - spread < 0) & (a + spread > 0)))
    assert 0 < U < T * M
    cases = {
        ("reg", "l1", "identity"): {"w": (M, N), "b": (M,), "e": (T, M)},
        ("reg", "l1", "relu"): {"w": (M, N), "b": (M,), "o0": (T, M), "z0": (U,), "e": (T, M)},
        ("reg", "paper", "identity"): {"w": (M, N), "b": (M,)},
        ("cls", "paper", "identity"): {"w": (M, N), "b": (M,), "s": (T, M), "c": (T,)},
        ("cls", "compact", "relu"): {"w": (M, N), "b": (M,), "o0": (T, M), "z0": (U,), "c": (T,)},
    }
    for (kind, mode, act), shapes in cases.items():
        if kind == "reg":
            inst = regression(W, b, H, rng.normal(size=(T, M)), radius=0.1, mode=mode, activation=act)
        else:
            inst = classification(W, b, H, rng.integers(0, M, T), radius=0.1, mode=mode, activation=act)
        x = np.arange(inst.num_vars, dtype=float)
        parts = inst.unpack(x)
        assert {k: v.shape for k, v in parts.items()} == shapes, (kind, mode, act)
        assert list(parts) == list(inst.blocks)
        # blocks tile the vector in order, reshaped C-order
        np.testing.assert_array_equal(np.concatenate([p.ravel() for p in parts.values()]), x)
        with pytest.raises(ValueError):
            inst.unpack(x[:-1])


def test_summary_fields():
    rng = np.random.default_rng(6)
    M, N, T = 3, 2, 5
    W, b, H = rng.normal(size=(M, N)), rng.normal(size=M), rng.normal(size=(T, N))
    lp = regression(W, b, H, rng.normal(size=(T, M)), radius=0.1)
    s = lp.summary()
    assert s["variables"] == lp.num_vars == M * N + M + T * M
    assert s["continuous"] == lp.num_vars and s["binary"] == 0 and s["integer"] == 0
    assert s["rows"] == 2 * T * M and s["indicators"] == 0
    assert s["nnz"] == lp.A.nnz == int(lp.A.indptr[-1])
    assert s["big_m_range"] is None and s["big_m_infinite"] == 0
    assert s["has_start"] is True and s["sense"] == "min"
    assert s["blocks"]["e"] == {"offset": M * N + M, "shape": [T, M]}
    assert set(s["row_groups"]) == {"fit_above", "fit_below"}
    assert s["unbounded_vars"] == T * M  # e has no upper bound
    assert s["meta"]["formulation"] == "regression"

    mip = classification(W, b, H, rng.integers(0, M, T), radius=0.1, activation="relu", mode="paper")
    s = mip.summary()
    assert s["binary"] == mip.num_integer == mip.blocks["z0"][1][0] + T * M + T  # z (undecided units), s, c
    assert s["indicators"] == mip.num_indicators > 0
    assert s["indicator_nnz"] == mip.ind_A.nnz
    lo, hi = s["big_m_range"]
    assert 0 < lo <= hi < np.inf and s["big_m_infinite"] == 0
    assert s["sense"] == "max"
    assert sum(g["count"] for g in s["indicator_groups"].values()) == mip.num_indicators
    cmin, cmax = s["coefficient_range"]
    assert 0 < cmin <= cmax


# ---------------------------------------------------------------------------------
# verify: every kind, with the right location label
# ---------------------------------------------------------------------------------


def _toy():
    """x (2,) in [0, 1] continuous; y (3,) integer in [0, 5]; w (2, 3) free; z binary.
    rows cap[0]: x0 + x1 <= 1.5;  indicators imp[0]: z = 1 => x0 >= 0.8."""
    bld = InstanceBuilder()
    x = bld.add_block("x", (2,), lb=0.0, ub=1.0)
    bld.add_block("y", (3,), lb=0.0, ub=5.0, vtype=INTEGER)
    bld.add_block("w", (2, 3), lb=-10.0, ub=10.0)
    z = bld.add_block("z", (1,), lb=0.0, ub=1.0, vtype=BINARY)
    bld.add_rows("cap", np.array([0, 0]), x, np.ones(2), 1, lo=-np.inf, hi=1.5)
    bld.add_indicators("imp", z, 1, np.array([0]), x[:1], np.ones(1), lo=0.8, hi=np.inf)
    inst = bld.build()
    inst.validate()
    base = np.zeros(inst.num_vars)
    base[[0, 1]] = [0.9, 0.5]
    base[2:5] = [1, 2, 3]
    base[-1] = 1.0
    return inst, base


def _only(rep, kind, value, where, tol=1e-6):
    assert not rep.ok
    v = rep.violations[kind]
    assert v.value == pytest.approx(value, abs=1e-12)
    assert v.where == where
    for k, other in rep.violations.items():
        if k != kind:
            assert other.value <= tol, (k, other)
    assert rep.max_violation == pytest.approx(value, abs=1e-12)


def test_verify_ok_point():
    inst, x = _toy()
    rep = verify(inst, x)
    assert rep.ok and rep.max_violation == 0.0
    assert set(rep.violations) == {"bounds", "integrality", "rows", "indicators"}
    assert all(v.where == "" for v in rep.violations.values())
    assert "ok" in str(rep)


def test_verify_bounds():
    inst, x = _toy()
    x[1] = -0.25  # below lb 0 of x[1]
    _only(verify(inst, x), "bounds", 0.25, "x[1]")


def test_verify_bounds_two_d_label():
    inst, x = _toy()
    x[5 + 1 * 3 + 2] = 10.5  # w[1, 2] above 10
    _only(verify(inst, x), "bounds", 0.5, "w[1, 2]")


def test_verify_integrality():
    inst, x = _toy()
    x[4] = 2.7
    _only(verify(inst, x), "integrality", 0.3, "y[2]")


def test_verify_rows():
    inst, x = _toy()
    x[0], x[1] = 0.95, 0.85
    _only(verify(inst, x), "rows", 0.3, "cap[0]")


def test_verify_indicators():
    inst, x = _toy()
    x[0] = 0.5
    _only(verify(inst, x), "indicators", 0.3, "imp[0]")
    x[-1] = 0.0  # inactive: fine
    assert verify(inst, x).ok


def test_verify_tolerance_and_nonfinite():
    inst, x = _toy()
    x[0] = 0.8 - 5e-7
    assert verify(inst, x, tol=1e-6).ok
    assert not verify(inst, x, tol=1e-8).ok
    x[3] = np.nan
    rep = verify(inst, x)
    assert not rep.ok and rep.violations["finite"].where == "y[1]"
    with pytest.raises(ValueError):
        verify(inst, x[:-1])


# ---------------------------------------------------------------------------------
# validate
# ---------------------------------------------------------------------------------


def test_validate_catches_inconsistencies():
    inst, _ = _toy()
    bad = [
        dataclasses.replace(inst, ub=inst.ub[:-1]),
        dataclasses.replace(inst, lb=np.where(np.arange(inst.num_vars) == 0, 2.0, inst.lb)),
        dataclasses.replace(inst, vtype=np.full(inst.num_vars, 7, np.uint8)),
        dataclasses.replace(inst, sense="maximise"),
        dataclasses.replace(inst, c=np.full(inst.num_vars, np.nan)),
        dataclasses.replace(inst, row_lo=inst.row_lo[:0]),
        dataclasses.replace(inst, A=Csr(inst.A.indptr, inst.A.indices + 100, inst.A.data, inst.num_vars)),
        dataclasses.replace(inst, ind_var=np.array([0], np.int32)),  # x[0] is continuous
        dataclasses.replace(inst, start=np.zeros(3)),
        dataclasses.replace(inst, blocks={"x": (0, (2,))}),
    ]
    for k, b in enumerate(bad):
        with pytest.raises(ValueError):
            b.validate()


def test_validate_rejects_overlapping_blocks():
    """Blocks must tile [0, n) without overlap or gap; a total-size check alone lets
    unpack() silently return the wrong variables."""
    inst, _ = _toy()
    blocks = dict(inst.blocks)
    off, shape = blocks["y"]
    blocks["y"] = (off - 1, shape)  # overlaps x, leaves variable 4 in no block; total unchanged
    bad = dataclasses.replace(inst, blocks=blocks)
    with pytest.raises(ValueError):
        bad.validate()


def test_builder_partial_start_rejected():
    bld = InstanceBuilder()
    bld.add_block("a", (2,), start=np.zeros(2))
    bld.add_block("b", (1,))
    with pytest.raises(ValueError):
        bld.build()
    bld = InstanceBuilder()
    bld.add_block("a", (2,))
    with pytest.raises(ValueError):
        bld.add_block("a", (1,))


def test_objective_value():
    inst, x = _toy()
    assert isinstance(inst, MilpInstance)
    inst.c[:] = np.arange(inst.num_vars)
    inst.c0 = 2.5
    assert inst.objective_value(x) == pytest.approx(float(np.arange(inst.num_vars) @ x) + 2.5)
