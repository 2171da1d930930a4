"""Time budgets (gdsolver.train.budget): every trainer stops inside budget_s; restarts="fill"
keeps the best of as many initialisations as fit; the time-aware GDSolver spends its budget on
the move that paid most per second and writes each choice down; skip_sweeps is its ablation."""

from __future__ import annotations

import pytest

from gdsolver.errors import GdsolverError
from gdsolver.train import GDSolver
from gdsolver.train.budget import Scheduler
from gdsolver.train.trainer import GDTrainer


def test_scheduler_tries_each_move_then_follows_the_payoff():
    s = Scheduler(["gd", "sweep a", "sweep b"], default="gd")
    assert s.choose(10, 0) == "gd"
    s.record("gd", 1.0, 0.5)  # 0.5 / s
    assert s.choose(10, 1) == "sweep a"
    s.record("sweep a", 2.0, 3.0)  # 1.5 / s
    assert s.choose(10, 3) == "sweep b"
    s.record("sweep b", 1.0, 0.0)  # paid nothing
    assert s.choose(10, 4) == "sweep a"
    assert s.choose(1.5, 4) == "gd"  # sweep a's last cost (2 s) does not fit in 1.5 s
    s.record("gd", 1.0, 0.0)
    s.record("sweep a", 2.0, 0.0)
    assert s.choose(10, 5) == "gd" and "nothing has paid" in s.log[-1]["reason"]
    assert s.choose(0.5, 9) is None and s.log[-1]["move"] is None  # GD's 1 s does not fit either
    s.add("restart", pooled=True)
    assert s.choose(10, 9) == "restart"
    s.record("restart", 1.0, 2.0)
    s.record("restart", 1.0, 0.0)  # pooled: 2 over 2 s, still paying
    assert s.moves["restart"].rate == pytest.approx(1.0) and s.choose(10, 11) == "restart"
    s.record("restart", 8.0, 0.0)  # now nothing pays: a fresh draw is still the better bet than GD at a plateau
    assert s.moves["restart"].rate == pytest.approx(0.2) and s.choose(10, 19) == "restart"
    s.moves["restart"].total_gain = 0.0
    assert s.choose(10, 19) == "restart" and "new draw" in s.log[-1]["reason"]
    s.forget(["sweep a", "sweep b"])  # a kept restart: the sweeps are tried again on the new model
    assert s.choose(10, 20) == "sweep a" and s.log[-1]["reason"] == "not tried yet"


@pytest.fixture(scope="module")
def poly():
    from gdsolver.data.datasets import load_split

    return load_split("polynomial", seed=31)


def _model():
    from gdsolver.train.models import build_model

    return build_model("paper", (3,), 2, seed=31, dataset="polynomial")


@pytest.mark.parametrize("make", [
    lambda b: GDTrainer(_model(), "regression", optimizer="lbfgs", epochs=10**6, budget_s=b),
    lambda b: GDTrainer(_model(), "regression", optimizer="lbfgs", epochs=10**6, patience=2, restarts="fill",
                        budget_s=b),
    lambda b: GDSolver(_model(), "regression", optimizer="lbfgs", epochs=10**6, layers="all", radius=1.0,
                       budget_s=b),
    lambda b: GDSolver(_model(), "regression", optimizer="lbfgs", epochs=10**6, skip_sweeps=True, budget_s=b),
], ids=["gd", "restarts-fill", "gdsolver", "gdsolver-no-sweeps"])
def test_training_stays_inside_its_budget(poly, make):
    budget = 1.5
    tr = make(budget)
    h = tr.fit(poly.train, poly.val)
    last = max(r["elapsed_s"] for r in h.rows)
    # no step starts that its last measured cost says would overrun; a step's own variance is the slack
    slowest = max([r["gd_time_s"] or 0 for r in h.rows] + [(r["solver_time_s"] or 0) + (r["build_time_s"] or 0)
                                                            for r in h.rows])
    assert last <= budget + slowest + 0.25, (last, slowest)
    assert len(h.epochs) > 1
    if isinstance(tr, GDSolver):
        assert h.decisions and h.decisions[-1]["move"] is None  # it stopped because the budget was spent
        assert all(d["reason"] for d in h.decisions)
        # every GD move trains at least an epoch (a move of none was chosen again and again: it spun)
        assert sum(d["move"] == "gd" for d in h.decisions) <= len(h.epochs) + 1
        moves = {d["move"] for d in h.decisions}
        assert ("sweep" in " ".join(filter(None, moves))) == (not tr.skip_sweeps)


def test_restarts_fill_is_checked():
    with pytest.raises(GdsolverError, match="budget_s"):
        GDTrainer(_model(), "regression", restarts="fill", patience=2)
    with pytest.raises(GdsolverError, match="patience"):
        GDTrainer(_model(), "regression", restarts="fill", budget_s=1.0)
    with pytest.raises(GdsolverError, match="budget_s"):
        GDTrainer(_model(), "regression", budget_s=-1.0)


def test_restarts_fill_keeps_the_best_initialisation(poly):
    tr = GDTrainer(_model(), "regression", optimizer="lbfgs", epochs=10**6, patience=2, restarts="fill", budget_s=1.5)
    h = tr.fit(poly.train, poly.val)
    runs = {r["restart"] for r in h.rows}
    assert len(runs) >= 2  # more than one initialisation fitted
    finals = {i: [r for r in h.rows if r["restart"] == i][-1]["val_loss"] for i in runs}
    assert h.chosen_restart == min(finals, key=finals.get)
    assert tr.evaluate(poly.val)["loss"] == pytest.approx(finals[h.chosen_restart], rel=1e-5)
