"""HiGHS / Gurobi parity on seeded random small instances of every formulation.

HiGHS solves the big-M lowered form (ir.lower), Gurobi the native indicator
constraints, so agreement checks the lowering: both must report the same status and
the same optimal objective, and both points must verify against the ORIGINAL
(indicator) instance. Needs gurobipy with a licence (skips with the reason
otherwise); instances larger than the licence allows skip with the sizes."""

from __future__ import annotations

import numpy as np
import pytest

from gdsolver.compile import solve
from gdsolver.compile.gurobi import gurobi_size, licence_info
from gdsolver.formulate import classification, forward, regression
from gdsolver.ir import MilpInstance, verify

KINDS = [("regression", "l1"), ("regression", "paper"), ("classification", "paper"),
         ("classification", "compact")]
ACTIVATIONS = ("identity", "relu")
SEEDS = range(7)  # 4 kinds x 2 activations x 7 seeds = 56 instances
CASES = [(task, mode, act, seed) for task, mode in KINDS for act in ACTIVATIONS for seed in SEEDS]


def make_instance(task: str, mode: str, act: str, seed: int, T: int | None = None) -> MilpInstance:
    """A small random final-layer instance; seeded, so every run builds the same one."""
    rng = np.random.default_rng(1000 * seed + 17 * KINDS.index((task, mode)) + ACTIVATIONS.index(act))
    T = int(rng.integers(4, 25)) if T is None else T
    N = int(rng.integers(1, 5))
    M = int(rng.integers(1, 4)) if task == "regression" else int(rng.integers(2, 5))
    W, b, H = rng.normal(size=(M, N)), rng.normal(size=M), rng.normal(size=(T, N))
    radius = float(rng.choice([0.05, 0.2, 0.5]))
    if task == "classification":
        return classification(W, b, H, rng.integers(0, M, T), radius=radius, activation=act, mode=mode)
    if mode == "l1":
        return regression(W, b, H, rng.normal(size=(T, M)), radius=radius, activation=act)
    if seed % 3 == 2:  # random targets and a large margin: usually infeasible
        return regression(W, b, H, rng.normal(size=(T, M)), radius=radius, activation=act, mode="paper",
                          margin=0.5)
    # targets of weights inside the box, so that improving on the current weights is possible
    Wt = W + rng.uniform(-radius, radius, W.shape) * 0.9
    return regression(W, b, H, forward(Wt, b, H, act), radius=radius, activation=act, mode="paper",
                      margin=float(rng.choice([0.0, 1e-3])))


def _skip_unless_licensed(inst: MilpInstance) -> None:
    lic = licence_info()
    if not lic.fits(inst):
        nv, nc = gurobi_size(inst)
        pytest.skip(f"instance has {nv} variables and {nc} constraints, more than Gurobi's {lic.state} licence "
                    f"allows ({lic.max_variables} variables, {lic.max_constraints} constraints)")


def _check_parity(inst: MilpInstance) -> None:
    h = solve(inst, backend="highs", mip_gap=0.0)
    g = solve(inst, backend="gurobi", mip_gap=0.0)
    assert (h.backend, g.backend) == ("highs", "gurobi")
    assert h.status == g.status, f"highs {h.status} ({h.message}) vs gurobi {g.status} ({g.message})"
    assert h.status in ("OPTIMAL", "INFEASIBLE"), h.message
    if h.status == "INFEASIBLE":
        assert h.x is None and g.x is None
        return
    for res in (h, g):
        rep = verify(inst, res.x)
        assert rep.ok, f"{res.backend}: {rep}"
        assert res.objective == pytest.approx(inst.objective_value(res.x))
    tol = 1e-6 * max(1.0, abs(h.objective))
    assert g.objective == pytest.approx(h.objective, abs=tol), (h.objective, g.objective)
    cur = inst.meta["current_objective"]  # neither may be worse than the current weights
    for res in (h, g):
        assert (res.objective >= cur - 1e-9) if inst.sense == "max" else (res.objective <= cur + 1e-9)


@pytest.mark.gurobi
@pytest.mark.parametrize("task,mode,act,seed", CASES, ids=[f"{t[:3]}-{m}-{a}-{s}" for t, m, a, s in CASES])
def test_parity(gurobi, task: str, mode: str, act: str, seed: int) -> None:
    inst = make_instance(task, mode, act, seed)
    _skip_unless_licensed(inst)
    _check_parity(inst)


def test_cases_cover_every_formulation() -> None:
    """The parity set really contains MIPs with indicators, LPs, and infeasible cases."""
    insts = [make_instance(*c) for c in CASES]
    assert len(insts) >= 50
    assert sum(i.num_indicators > 0 for i in insts) >= 30
    assert any(not i.is_mip for i in insts)
    assert {(i.meta["formulation"], i.meta["mode"], i.meta["activation"]) for i in insts} == {
        (t, m, a) for t, m in KINDS for a in ACTIVATIONS}
    infeasible = [i for i in insts if i.meta["mode"] == "paper" and i.meta["formulation"] == "regression"
                  and i.meta["margin"] == 0.5]
    assert infeasible


@pytest.mark.gurobi
def test_parity_over_licence(gurobi) -> None:
    """Big enough to need a full licence: skips, naming the sizes, under the pip licence."""
    inst = make_instance("classification", "compact", "relu", 0, T=700)
    assert gurobi_size(inst)[1] > 2000
    _skip_unless_licensed(inst)
    _check_parity(inst)
