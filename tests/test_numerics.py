"""Verification relative to the instance's scale, and instances refused before solving
because the solvers cannot honour their numbers (issue 13, part 1)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gdsolver.compile import get_backend, solve
from gdsolver.errors import GdsolverError
from gdsolver.formulate import classification, correct_mask, forward, regression
from gdsolver.ir import verify
from gdsolver.ir.csr import Csr
from gdsolver.ir.numerics import MAX_COEFFICIENT_RANGE, check_numerics, numerics


def _layer(seed: int = 0, T: int = 30, N: int = 8, M: int = 3):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(M, N)) * 0.3
    b = rng.normal(size=M) * 0.1
    H = rng.uniform(0.1, 1.0, size=(T, N))
    y = rng.integers(0, M, T)
    return W, b, H, y


def _tiny_features_instance():
    """The issue's case: features x1e-9, margin 1e-7 (outputs are ~ the biases, ~0.1)."""
    W, _, H, y = _layer()
    b = np.array([0.1, 0.12, 0.08])
    return classification(W, b, H * 1e-9, y, radius=0.05, mode="compact", margin=1e-7), (W, b, H * 1e-9, y)


def test_tiny_features_margin_is_refused_before_solving():
    inst, _ = _tiny_features_instance()
    with pytest.raises(GdsolverError, match=r"margin\[\d+\] has threshold 1e-07 .*reaches 0\.\d+"):
        check_numerics(inst)
    with pytest.raises(GdsolverError, match="threshold 1e-07"):
        solve(inst, backend="highs")


def test_tiny_features_solution_with_no_point_correct_fails_verify():
    """What a solver working to an absolute 1e-6 returns: every c_t = 1 ("30 correct"), biases
    within 1e-6 of each other, so that no point beats the others by the margin (some by less)."""
    inst, (W, b, H, y) = _tiny_features_instance()
    x = inst.start.copy()
    blocks = inst.unpack(x)
    base = 0.1
    new_b = base + np.array([0.0, 5e-8, -9e-7])  # gaps: -5e-8 (label 0), +5e-8 (1), -9.5e-7 (2)
    off_b = inst.blocks["b"][0]
    x[off_b:off_b + 3] = new_b
    x[inst.blocks["c"][0]:][:30] = 1.0
    assert np.all((inst.lb <= x) & (x <= inst.ub)), "constructed point must stay in the box"
    o = forward(W, new_b, H, "identity")
    assert correct_mask(o, y, 1e-7).sum() == 0 and 0 < correct_mask(o, y, 1e-300).sum() < 30
    rep = verify(inst, x)
    assert not rep.ok and rep.violations["indicators"].where.startswith("margin[")
    # the absolute 1e-6 rule this replaces accepted it
    assert rep.violations["indicators"].value < 1e-6 + 1e-7


def test_tiny_features_gurobi_answers_never_verify_when_wrong(gurobi, monkeypatch):
    """The issue's run: Gurobi (the refusal switched off) claims more correct points than a
    float64 forward pass finds; verify must then fail."""
    import gdsolver.ir.numerics

    monkeypatch.setattr(gdsolver.ir.numerics, "check_numerics", lambda inst: None)
    inst, (W, b, H, y) = _tiny_features_instance()
    res = get_backend("gurobi").solve(inst, time_limit=30)
    assert res.x is not None
    u = inst.unpack(res.x)
    recount = int(correct_mask(forward(u["w"], u["b"], H, "identity"), y, 0.5e-7).sum())
    if recount < round(res.objective):
        assert not verify(inst, res.x).ok


def test_huge_relu_features_current_weights_verify_and_instance_is_refused():
    """Features x1e12 with a ReLU head: the current weights are feasible by construction and must
    verify (the absolute rule failed them by 1e-4 of rounding); both solvers answered wrongly
    (INFEASIBLE) here, so the instance is refused with its coefficient range."""
    W, b, H, y = _layer()
    inst = classification(W, b, H * 1e12, y, radius=0.05, activation="relu", mode="compact", margin=1e-3)
    rep = verify(inst, inst.start)
    assert rep.ok, rep
    assert verify(inst, inst.start).max_violation > 1e-6  # what the absolute tolerance tripped on
    with pytest.raises(GdsolverError, match=r"coefficients of \w+\[\d+\] range over \[1, 9\.\d+e\+11\], a span of 1e\+12"):
        check_numerics(inst)
    reg = regression(W, b, H * 1e12, forward(W, b, H * 1e12, "relu"), radius=0.05, activation="relu")
    assert verify(reg, reg.start).ok
    with pytest.raises(GdsolverError, match="a span of"):
        solve(reg)


@pytest.mark.parametrize("scale", [1e-6, 1e-3, 1.0, 1e3, 1e6])
def test_verify_verdicts_do_not_depend_on_row_scale(scale):
    """Multiplying every row and indicator (coefficients and bounds) by a constant changes no
    verdict; the points are the start, solver answers and random perturbations of them."""
    W, b, H, y = _layer(1, T=12)
    inst = classification(W, b, H, y, radius=0.05, activation="relu", mode="paper", margin=1e-3)
    scaled = dataclasses.replace(
        inst, A=Csr(inst.A.indptr, inst.A.indices, inst.A.data * scale, inst.num_vars),
        row_lo=inst.row_lo * scale, row_hi=inst.row_hi * scale,
        ind_A=Csr(inst.ind_A.indptr, inst.ind_A.indices, inst.ind_A.data * scale, inst.num_vars),
        ind_lo=inst.ind_lo * scale, ind_hi=inst.ind_hi * scale)
    rng = np.random.default_rng(2)
    answer = solve(inst).x
    verdicts = set()
    for k in range(40):
        base = inst.start if k % 2 else answer
        x = base + (rng.normal(size=inst.num_vars) * 10.0 ** rng.uniform(-9, -1) if k > 1 else 0.0)
        a, s = verify(inst, x), verify(scaled, x)
        assert a.ok == s.ok, (k, a, s)
        verdicts.add(a.ok)
    assert verdicts == {True, False}  # both outcomes really occur


def test_verify_ignores_rounding_noise_at_zero():
    """Solvers return 1e-17 for a zero; against a variable that can reach 0.5 that is noise."""
    W, b, H, y = _layer(2, T=10)
    inst = regression(W, b, H, forward(W, b, H, "relu"), radius=0.05, activation="relu")
    x = inst.start.copy()
    e = inst.blocks["e"][0]
    assert x[e] == 0.0 and inst.lb[e] == 0.0 and inst.ub[e] == np.inf  # no scale of its own
    x[e] = -1e-17  # e >= 0
    assert verify(inst, x).ok
    x[e] = -1e-3
    assert not verify(inst, x).ok


def test_numerics_of_ordinary_instances_pass():
    W, b, H, y = _layer(3)
    for inst in (classification(W, b, H, y, radius=0.05, activation="relu"),
                 regression(W, b, H, forward(W, b, H, "identity"), radius=0.05)):
        num = check_numerics(inst)
        assert num.range_ratio < MAX_COEFFICIENT_RANGE


def test_negligible_coefficients_do_not_count_towards_the_range():
    """A feature of 1e-12 beside ordinary ones (a ReLU unit just on) cannot change any verdict;
    it must not get an ordinary instance refused."""
    W, b, H, y = _layer(4)
    H[0, 0] = 1e-12
    inst = classification(W, b, H, y, radius=0.05)
    num = check_numerics(inst)
    assert num.negligible >= 1 and num.range_ratio < 1e3
    assert numerics(inst).coefficient_range[0] > 1e-3


def test_rows_of_different_sizes_are_not_refused():
    """The solvers scale rows: one row at 1e-6 and another at 1e6 is no problem (within each row
    the coefficients are alike), and both solve to a verified optimum."""
    from gdsolver.ir import InstanceBuilder

    bld = InstanceBuilder()
    x = bld.add_block("x", (2,), lb=0.0, ub=10.0, cost=[-1.0, -1.0])
    bld.add_rows("small", np.array([0, 0]), x, np.array([1e-6, 2e-6]), 1, lo=-np.inf, hi=1e-5)
    bld.add_rows("big", np.array([0, 0]), x, np.array([3e6, 1e6]), 1, lo=-np.inf, hi=2e7)
    inst = bld.build("min")
    assert numerics(inst).range_ratio == pytest.approx(3.0)
    res = solve(inst)
    assert res.status == "OPTIMAL" and verify(inst, res.x).ok
    from scipy.optimize import linprog

    ref = linprog([-1.0, -1.0], A_ub=[[1e-6, 2e-6], [3e6, 1e6]], b_ub=[1e-5, 2e7], bounds=[(0, 10)] * 2)
    assert res.objective == pytest.approx(ref.fun, rel=1e-9)


def test_one_row_spanning_too_much_is_named():
    from gdsolver.ir import InstanceBuilder

    bld = InstanceBuilder()
    x = bld.add_block("x", (2,), lb=[-1e9, -1.0], ub=[1e9, 1.0])  # both terms can reach 1e9
    bld.add_rows("mixed", np.array([0, 0]), x, np.array([1.0, 1e9]), 1, lo=-np.inf, hi=1.0)
    with pytest.raises(GdsolverError, match=r"coefficients of mixed\[0\] range over \[1, 1e\+09\]"):
        check_numerics(bld.build("min"))


def test_blas_threads_limits_inside_the_block_and_restores_after():
    """gdsolver.blas.blas_threads (its controller is kept between calls): inside the block every
    BLAS threadpoolctl sees runs 1 thread; after it, the counts are what they were, each time."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from gdsolver.blas import blas_threads

    def counts():
        return [(i["filepath"], i["num_threads"]) for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    if not counts():
        pytest.skip("no BLAS library seen by threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):  # the test workers run BLAS at 1 thread
        before = counts()
        assert all(n == 2 for _, n in before)
        for _ in range(2):
            with blas_threads(1):
                assert all(n == 1 for _, n in counts())
            assert counts() == before
        with blas_threads(None):
            assert counts() == before
