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


def test_restart_valued_by_the_next_draw():
    """A restart's rate is the expected drop of one more draw: the gap between the two best
    starts over the number of starts, per mean restart cost; an unlucky kept-nothing history does
    not zero it, and GD at its plateau loses to it."""
    s = Scheduler(["gd", "sweep a"], default="gd")
    s.record("gd", 1.0, 0.01)  # GD's last phase: 0.01 / s
    s.add("restart", pooled=True, first=True)  # tried before the untried sweep
    assert list(s.moves) == ["restart", "gd", "sweep a"]
    s.record("sweep a", 1.0, 0.0)
    s.draw("restart", 5.0)  # the first run's loss
    assert s.choose(10, 1) == "restart"  # untried
    s.record("restart", 0.5, 0.0)  # not kept
    s.draw("restart", 7.0)
    # draws 5, 7: (7 - 5) / 2 per 0.5 s = 2 / s, although no restart was kept
    assert s.moves["restart"].rate == pytest.approx(2.0)
    assert s.choose(10, 2) == "restart"
    s.record("restart", 0.5, 4.9)
    s.draw("restart", 0.1)  # a record: draws 0.1, 5, 7 -> (5 - 0.1) / 3 per 0.5 s
    assert s.moves["restart"].rate == pytest.approx(4.9 / 3 / 0.5)
    s.forget(["restart"])  # forgetting keeps the draws (they describe the restarts, not the model)
    assert s.moves["restart"].draws == [5.0, 7.0, 0.1]


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
        # it stopped because the budget was spent, or ended with the last layer's polish
        assert h.decisions and (h.decisions[-1]["move"] is None or "kept for the end" in h.decisions[-1]["reason"])
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


@pytest.mark.slow  # 8 s, and its wall-clock bounds want a machine that is not overloaded
def test_a_sweep_keeps_inside_its_share_of_the_budget():
    """Under budget_s a sweep's whole cost (extraction, build, solve, checks) is bounded by its
    share of the time left: here the cross-entropy head solved by tangent-cut rounds
    (convex="cuts": not the polish, which runs last in its own time) needs longer than the share,
    so it is cut at the deadline (FEASIBLE / time_limit, or not started: TIME_LIMIT) and the run
    ends near its budget, not a solve's length past it."""
    from gdsolver.train.hybrid import MIN_SOLVE_S, SWEEP_SHARE
    from gdsolver.train.models import build_model
    from gdsolver.data.datasets import load_split

    split = load_split("digits", seed=0)
    model = build_model("mlp", tuple(split.train[0].shape[1:]), 10, hidden=32, seed=0)
    budget = 3.0  # short GD phases (epochs bounds each): the restart and the sweep are both tried
    tr = GDSolver(model, "classification", optimizer="adam", lr=0.03, epochs=2, radius=5.0, points=1117,
                  convex="cuts", budget_s=budget, seed=0)
    h = tr.fit(split.train, split.val)
    sweeps = [r for r in h.rows if r["kind"] == "sweep"]
    assert sweeps, "no sweep was tried"
    assert not any("kept for the end" in d["reason"] for d in h.decisions)  # a move like the others
    for r in sweeps:
        spent = (r["build_time_s"] or 0) + (r["solver_time_s"] or 0)
        # its share of at most the whole budget, plus the checks after the deadline
        assert spent <= SWEEP_SHARE * budget + MIN_SOLVE_S + 0.5, r
    assert max(r["elapsed_s"] for r in h.rows) <= budget + 1.0


def test_a_last_epoch_is_cut_at_the_budget_end_and_says_how_much_ran():
    """Under budget_s a whole epoch that no longer fits runs partially (its batches stop at the
    deadline, its evaluation kept in hand), recorded as the share of batches that ran; L-BFGS (one
    full-batch step an epoch) never does, so the scheduler waits for a whole epoch."""
    import time

    import torch

    X = torch.randn(640, 5)
    y = torch.randint(0, 3, (640,))
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    tr = GDTrainer(model, "classification", optimizer="adam", lr=1e-2, batch_size=64, epochs=1, budget_s=100.0)
    tr.fit((X, y))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    tr._partial = None
    tr._gd_epoch(opt, deadline=time.perf_counter())  # already due: one batch runs
    assert tr._partial == pytest.approx(1 / 10)
    tr._epoch_cost, tr._metrics_cost = 1.0, 0.2
    tr._t0 = time.perf_counter() - 99.5  # 0.5 s left: a whole epoch (1 s) does not fit, a partial one does
    d = tr._partial_deadline(opt)
    assert d is not None and d - time.perf_counter() == pytest.approx(0.3, abs=0.05)
    assert tr._gd_step() == pytest.approx(0.2 + 0.1 * 0.8)
    tr._t0 = time.perf_counter() - 99.9  # 0.1 s left, less than its evaluation: nothing starts
    assert tr._partial_deadline(opt) is None
    lb = GDTrainer(model, "classification", optimizer="lbfgs", epochs=1, budget_s=100.0)
    lb._epoch_cost, lb._metrics_cost, lb._t0 = 1.0, 0.2, time.perf_counter() - 99.5
    assert lb._partial_deadline(torch.optim.LBFGS(model.parameters())) is None and lb._gd_step() == 1.0


def test_the_last_layers_convex_sweep_runs_at_the_end_of_the_budget():
    """A classification GDSolver under budget_s keeps the last layer's ce sweep (solved from its
    arrays) for the end: it is the last sweep, after every GD epoch, says why in the decisions,
    and is kept only if it checks out (its row's figures are then the model's)."""
    import torch

    torch.manual_seed(0)
    X = torch.randn(600, 6)
    y = (X[:, 0] + X[:, 1] > 0).long() + (X[:, 2] > 1).long()
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    tr = GDSolver(model, "classification", lr=1e-3, epochs=10**6, budget_s=1.5, seed=0)
    h = tr.fit((X[:450], y[:450]), (X[450:], y[450:]))
    polish = [d for d in h.decisions if "kept for the end" in d["reason"]]
    assert polish and all(d["move"] == "sweep 2" for d in polish)
    last_sweep = h.sweeps[-1]
    assert last_sweep["layer_name"] == "2" and last_sweep["n_cons"] == 0
    assert polish[0]["elapsed_s"] >= 0.8 * 1.5  # after the moves, in the time kept for it
    # the last polish comes after every other move (a polish with time over is followed by moves, then again)
    assert polish[-1] in h.decisions[-2:]
    with torch.no_grad():
        val = torch.nn.functional.cross_entropy(model(X[450:]), y[450:]).item()
    assert val == pytest.approx(h.rows[-1]["val_loss"], rel=1e-5)


def test_the_polish_runs_without_a_time_limit_per_sweep():
    """time_limit=None (no limit per sweep) under budget_s: the polish's deadline is the budget's
    end (it was min(None, time left): a TypeError at the end of the run)."""
    import torch

    torch.manual_seed(0)
    X = torch.randn(300, 6)
    y = (X[:, 0] + X[:, 1] > 0).long() + (X[:, 2] > 1).long()
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    budget = 1.0
    tr = GDSolver(model, "classification", lr=1e-3, epochs=10**6, budget_s=budget, time_limit=None, seed=0)
    h = tr.fit((X[:240], y[:240]), (X[240:], y[240:]))
    assert any("kept for the end" in d["reason"] for d in h.decisions)
    assert h.sweeps and h.sweeps[-1]["layer_name"] == "2"
    assert max(r["elapsed_s"] for r in h.rows) <= budget + 0.5


def test_the_polish_fits_a_larger_sample_than_a_sweep():
    """The cross-entropy polish fits up to POLISH_POINTS sampled points (a sweep's own "auto" is
    4096): on 6000 training points the polish row has all 6000."""
    import torch

    from gdsolver.train.sweep import DEFAULT_DIRECT_POINTS
    from gdsolver.train.time_aware import POLISH_POINTS

    torch.manual_seed(0)
    X = torch.randn(6300, 5)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0.5).long()
    model = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    h = GDSolver(model, "classification", lr=1e-3, epochs=10**6, budget_s=1.5, seed=0).fit(
        (X[:6000], y[:6000]), (X[6000:], y[6000:]))
    polish = [s for s in h.sweeps if s["layer_name"] == "2"]
    assert DEFAULT_DIRECT_POINTS < 6000 < POLISH_POINTS
    assert polish and polish[-1]["points"] == 6000


def test_no_polish_and_no_restart_when_the_first_fit_is_cut_by_the_time():
    """A budget of under POLISH_MIN_EPOCHS epochs keeps no time for the polish (GD gets it), and a
    first GD phase that the time cut short (not at its plateau) is not followed by restarts: a
    fresh start would be behind it from its first step. Epochs are slowed to a known cost by a
    sleep in the model's forward, so the budget holds about one of them. (The restart rule itself:
    test_restarts_are_offered_only_after_a_first_phase_the_time_did_not_cut.)"""
    import time

    import torch

    from gdsolver.train.time_aware import POLISH_MIN_EPOCHS

    class Slow(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.a, self.b = torch.nn.Linear(6, 8), torch.nn.Linear(8, 3)

        def forward(self, x):
            if self.training:
                time.sleep(0.01)  # 10 batches: an epoch of about 0.1 s
            return self.b(torch.relu(self.a(x)))

    torch.manual_seed(0)
    X = torch.randn(400, 6)
    y = (X[:, 0] + X[:, 1] > 0).long() + (X[:, 2] > 1).long()
    tr = GDSolver(Slow(), "classification", lr=1e-3, batch_size=32, epochs=10**6, budget_s=0.13, seed=0)
    h = tr.fit((X[:320], y[:320]), (X[320:], y[320:]))
    assert tr.budget_s < POLISH_MIN_EPOCHS * tr._epoch_cost  # the premise: fewer than 1.5 epochs fit
    assert not any("kept for the end" in d["reason"] for d in h.decisions)
    assert not h.sweeps and all(d["move"] != "restart" for d in h.decisions)
    assert {d["move"] for d in h.decisions} <= {"gd", None}  # the time went to GD


@pytest.mark.parametrize("cut", [False, True])
def test_restarts_are_offered_only_after_a_first_phase_the_time_did_not_cut(cut):
    """_first_phase offers restarts (a pooled move, tried first) when two more starts as long fit
    and the phase ended at its plateau or its epochs; not when the time cut it short."""
    import time

    from gdsolver.train.budget import Scheduler

    t = GDSolver(_model(), "regression", budget_s=100.0)
    t._t0, t._epoch_cost, t._metrics_cost, t.restarts = time.perf_counter(), 0.01, 0.001, 1

    def run_gd(epochs):  # a first phase of no time, ended by the time or not
        t._phase_cut = cut

    t._run_gd, t._watched_loss = run_gd, lambda: 1.0
    plan = Scheduler(["gd"], default="gd")
    t._first_phase(plan, before=2.0)
    assert ("restart" in plan.moves) is (not cut)
    t.restarts = "fill"  # best of as many as fit: offered whatever ended the phase
    plan = Scheduler(["gd"], default="gd")
    t._first_phase(plan, before=2.0)
    assert "restart" in plan.moves


def test_restarts_follow_a_first_fit_that_reached_its_plateau(poly):
    """L-BFGS on the paper's regression model reaches its plateau (patience 2) well inside the
    first phase's share: restarts are then offered and drawn."""
    tr = GDSolver(_model(), "regression", optimizer="lbfgs", epochs=10**6, skip_sweeps=True, budget_s=1.0)
    h = tr.fit(poly.train, poly.val)
    assert any(d["move"] == "restart" for d in h.decisions)
    assert len({r["restart"] for r in h.rows if r.get("restart") is not None}) >= 2


def test_each_sweep_reads_the_chain_again_with_the_current_weights():
    """refresh_network (what GDSolver's sweeps use after the first extraction) gives the network
    a fresh extraction gives once the weights have changed: same chain, activations, tail and
    weights, and its forward pass is the model's."""
    import numpy as np
    import torch

    from gdsolver.extract.torch_frontend import network_from_torch, refresh_network

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 4, bias=False),
                                torch.nn.LogSoftmax(dim=1))
    X = torch.randn(50, 5)
    net = network_from_torch(model, X)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    again, fresh = refresh_network(net, model), network_from_torch(model, X)
    assert again.names == fresh.names and again.tail == fresh.tail and again.prefix == fresh.prefix
    for a, f in zip(again.layers, fresh.layers):
        assert a.activation == f.activation and a.has_bias == f.has_bias
        np.testing.assert_array_equal(a.W, f.W)
        np.testing.assert_array_equal(a.b, f.b)
    logits = again.forward(X.double().numpy())
    with torch.no_grad():
        logp = model(X).double().numpy()
    np.testing.assert_allclose(logits - logits.max(1, keepdims=True), logp - logp.max(1, keepdims=True), atol=1e-5)
    assert not np.array_equal(net.layers[0].W, again.layers[0].W)  # the old network keeps its weights


def test_the_chain_is_extracted_again_when_a_module_between_layers_changes():
    """A learned scale between two Linears is 1 at first (the identity: the chain runs through it);
    once it is not, the chain read again no longer gives the model's outputs, and GDSolver's
    _network extracts afresh (the chain then starts after the scale), as network_from_torch does."""
    import torch

    from gdsolver.extract.torch_frontend import network_from_torch
    from gdsolver.train.tensors import as_tensor_data

    class Gate(torch.nn.Module):
        def __init__(self, n):
            super().__init__()
            self.g = torch.nn.Parameter(torch.ones(n))

        def forward(self, x):
            return x * self.g

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 6), Gate(6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    X = torch.randn(80, 5)
    y = torch.randint(0, 3, (80,))
    t = GDSolver(model, "classification")
    t.train_data = as_tensor_data((X, y), "classification", name="train")
    t._selected, t._tail, t._net = None, None, None
    assert t._network().names == ["0", "3"]
    assert t._network().names == ["0", "3"]  # read again: the same chain
    with torch.no_grad():
        model[1].g.mul_(1.5)
    net = t._network()
    assert net.names == network_from_torch(model, X).names == ["3"]


@pytest.mark.parametrize("epoch_s, metrics_s, polished", [(1.0, 0.01, True), (8.0, 0.01, False), (1.0, 0.6, False)])
def test_the_polish_runs_only_when_the_budget_holds_it(epoch_s, metrics_s, polished):
    """After the first phase, with its measured costs (stubbed here, budget 10 s): the polish runs
    when the budget holds at least POLISH_MIN_EPOCHS epochs and its reserve (POLISH_EVALS
    evaluations at least) is at most POLISH_MAX_SHARE of it; else the last layer is not swept."""
    import torch

    from gdsolver.train.time_aware import POLISH_EVALS, POLISH_MAX_SHARE, POLISH_MIN_EPOCHS

    assert (10.0 >= POLISH_MIN_EPOCHS * epoch_s and POLISH_EVALS * metrics_s <= POLISH_MAX_SHARE * 10.0) is polished
    torch.manual_seed(0)
    X = torch.randn(200, 6)
    y = (X[:, 0] > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    tr = GDSolver(model, "classification", budget_s=10.0, seed=0)
    swept = []

    def first_phase(plan, before):
        tr._epoch_cost, tr._metrics_cost = epoch_s, metrics_s

    tr._first_phase, tr._spend = first_phase, lambda plan: None
    tr._sweep = lambda name: swept.append(name)
    tr.fit((X[:150], y[:150]), (X[150:], y[150:]))
    assert swept == (["2"] if polished else [])
