"""Parity: every backend usable here against an independent reference, scipy's `milp`,
on 56 seeded random instances of every formulation (the default run takes two seeds of each
formulation, 16 instances with LPs, MIPs with indicators and infeasible cases; `-m slow` the
other 40).

scipy solves the big-M lowered form (ir.lower) with its own HiGHS build; HiGHS here
solves the same lowered form through gdsolver's compile path, Gurobi and SCIP the
native indicator constraints, so agreement also checks the lowering. Every backend
must report the reference's status and optimal objective (within 1e-6, relative to
max(1, |objective|)), and its point must verify against the ORIGINAL (indicator)
instance. A backend whose licence is too small for an instance skips it, naming
the sizes."""

from __future__ import annotations

import functools

import pytest

from gdsolver.compile import available_backends, get_backend, solve
from gdsolver.ir import MilpInstance, verify
from instances import ACTIVATIONS, CASES, KINDS, make_instance, scipy_reference

BACKENDS = available_backends()
FAST_SEEDS = (2, 3)  # seed 2 has the infeasible paper regressions; both have LPs and indicator MIPs
PARITY_CASES = [pytest.param(*c, id=f"{c[0][:3]}-{c[1]}-{c[2]}-{c[3]}",
                             marks=() if c[3] in FAST_SEEDS else pytest.mark.slow) for c in CASES]


@functools.cache
def _reference(case: tuple) -> tuple[str, float | None]:
    return scipy_reference(make_instance(*case))


def _check_parity(inst: MilpInstance, backend: str, case: tuple | None = None) -> None:
    ok, why = get_backend(backend).accepts(inst)
    if not ok:
        pytest.skip(f"{backend}: {why}")
    ref_status, ref_objective = _reference(case) if case else scipy_reference(inst)
    res = solve(inst, backend, mip_gap=0.0)
    assert res.backend == backend
    assert res.status == ref_status, f"{backend} {res.status} ({res.message}) vs scipy {ref_status}"
    if ref_status != "OPTIMAL":
        assert res.x is None and res.objective is None
        return
    rep = verify(inst, res.x)
    assert rep.ok, f"{backend}: {rep}"
    assert res.objective == pytest.approx(inst.objective_value(res.x))
    tol = 1e-6 * max(1.0, abs(ref_objective))
    assert abs(res.objective - ref_objective) <= tol, (backend, res.objective, ref_objective)
    cur = inst.meta["current_objective"]  # never worse than the current weights
    assert (res.objective >= cur - 1e-9) if inst.sense == "max" else (res.objective <= cur + 1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("task,mode,act,seed", PARITY_CASES)
def test_parity(backend: str, task: str, mode: str, act: str, seed: int) -> None:
    _check_parity(make_instance(task, mode, act, seed), backend, (task, mode, act, seed))


def test_cases_cover_every_formulation() -> None:
    """The parity set really contains MIPs with indicators, LPs, and infeasible cases."""
    insts = [make_instance(*c) for c in CASES]
    assert len(insts) >= 50
    assert sum(i.num_indicators > 0 for i in insts) >= 30
    assert any(not i.is_mip for i in insts)
    assert {(i.meta["formulation"], i.meta["mode"], i.meta["activation"]) for i in insts} == {
        (t, m, a) for t, m in KINDS for a in ACTIVATIONS}
    statuses = [_reference(c)[0] for c in CASES]
    assert statuses.count("INFEASIBLE") >= 3 and statuses.count("OPTIMAL") >= 40
    fast = [make_instance(*c) for c in CASES if c[3] in FAST_SEEDS]  # what the default run solves
    assert any(i.num_indicators > 0 for i in fast) and any(not i.is_mip for i in fast)
    assert "INFEASIBLE" in [_reference(c)[0] for c in CASES if c[3] in FAST_SEEDS]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_parity_larger(backend: str) -> None:
    """Big enough to need a full Gurobi licence: Gurobi skips, naming the sizes, under
    the pip licence."""
    _check_parity(make_instance("classification", "compact", "relu", 0, T=700), backend)
