"""The convex sweeps solved directly (gdsolver.compile.convex): badly scaled inputs reach the
same bounded optimum as an independent L-BFGS-B on the unscaled problem, and a time limit
returns the best point so far inside the box, never a worse one, marked as cut."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.optimize import minimize

from gdsolver.compile.convex import bounded_softmax_regression
from gdsolver.formulate import Dense, sweep_instance
from gdsolver.formulate.heads import cross_entropy
from gdsolver.formulate.refine import true_loss
from gdsolver.ir import verify
from gdsolver.pipeline import SolveSettings, solve_sweep


def _problem(seed: int, T: int = 200, N: int = 4, M: int = 3):
    rng = np.random.default_rng(seed)
    # ReLU-like features of very different sizes (the case the column scaling is for)
    F = np.maximum(rng.normal(size=(T, N)), 0) * np.logspace(-1, 1, N)
    y = rng.integers(0, M, T)
    x0 = rng.normal(size=(M, N + 1)) * 0.1
    return F, y, x0


def _ce(F, y, V):
    return float(cross_entropy(F @ V[:, :-1].T + V[:, -1], y).sum())


@pytest.mark.parametrize("seed", range(3))
def test_scaled_solve_reaches_the_unscaled_optimum(seed):
    F, y, x0 = _problem(seed)
    lo, hi = x0 - 0.3, x0 + 0.3
    V, ok, _ = bounded_softmax_regression(F, y, lo, hi, x0)
    assert ok and np.all(V >= lo) and np.all(V <= hi)
    M, N1 = x0.shape
    A = np.hstack([F, np.ones((len(F), 1))])

    def f(v):
        o = A @ v.reshape(M, N1).T
        z = o - o.max(1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        p[np.arange(len(y)), y] -= 1
        return _ce(F, y, v.reshape(M, N1)), (p.T @ A).ravel()

    ref = minimize(f, x0.ravel(), jac=True, method="L-BFGS-B", bounds=np.column_stack([lo.ravel(), hi.ravel()]),
                   options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 50000})
    assert _ce(F, y, V) == pytest.approx(ref.fun, rel=1e-6)
    assert _ce(F, y, V) <= _ce(F, y, x0)


def test_deadline_returns_the_best_point_so_far():
    F, y, x0 = _problem(0, T=2000, N=40, M=10)
    lo, hi = x0 - 1.0, x0 + 1.0
    V, ok, msg = bounded_softmax_regression(F, y, lo, hi, x0, deadline=time.perf_counter())
    assert not ok and "time limit" in msg
    assert np.all(V >= lo) and np.all(V <= hi) and _ce(F, y, V) <= _ce(F, y, x0)


def test_pipeline_time_limit_on_a_direct_sweep():
    """A time limit far below the solve's need: the outcome is usable, FEASIBLE with a
    time-limit termination, its point passes ir.verify, and its loss is not above the start's."""
    rng = np.random.default_rng(1)
    H = np.maximum(rng.normal(size=(3000, 30)), 0) * np.logspace(-1, 1, 30)
    W, b = rng.normal(size=(10, 30)) * 0.1, np.zeros(10)
    labels = rng.integers(0, 10, 3000)
    inst = sweep_instance([Dense(W, b)], 0, H, labels, task="classification", radius=1.0, mode="ce")
    out = solve_sweep(inst, SolveSettings(time_limit=1e-3))
    assert out.usable and out.result.backend == "scipy"
    assert out.status == "FEASIBLE" and out.result.termination == "time_limit"
    assert verify(inst, out.x).ok
    assert true_loss(inst, out.x) <= true_loss(inst, inst.start) * (1 + 1e-12)


def test_sampled_features_give_the_same_instance():
    """A head over a seeded sample computes the layer's inputs of the sampled points only: the
    instance equals the one built from every point's inputs (up to the float32 forward pass's
    rounding, which depends on the batch)."""
    import torch
    from torch import nn

    from gdsolver.extract import network_from_torch
    from gdsolver.train.sweep import prepare_sweep

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    X = torch.randn(400, 6)
    y = np.random.default_rng(0).integers(0, 3, 400)
    net = network_from_torch(model, X)
    for mode, points in (("ce", 64), ("ce", 1000)):
        a = prepare_sweep(net, X.numpy(), y, task="classification", layer=1, radius=0.1, mode=mode, points=points)
        b = prepare_sweep(net, X.numpy(), y, task="classification", layer=1, radius=0.1, mode=mode, points=points,
                          H=net.features(X.numpy(), 1))
        assert list(a.points) == list(b.points) and a.instance.meta["data_points"] == 400
        ia, ib = a.instance, b.instance
        for name in ("lb", "ub", "c", "row_lo", "row_hi", "start"):
            np.testing.assert_allclose(getattr(ia, name), getattr(ib, name), rtol=1e-6, atol=1e-7)
        assert np.array_equal(ia.A.indptr, ib.A.indptr) and np.array_equal(ia.A.indices, ib.A.indices)
        np.testing.assert_allclose(ia.A.data, ib.A.data, rtol=1e-6, atol=1e-7)


def test_least_squares_deadline_keeps_the_unsolved_outputs():
    """Past the deadline the outputs not started keep their weights: the loss never rises, the
    outputs solved are each optimal (their problems are separate)."""
    from gdsolver.compile.convex import bounded_least_squares

    rng = np.random.default_rng(0)
    F, Y = rng.normal(size=(200, 5)), rng.normal(size=(200, 3))
    x0 = rng.normal(size=(3, 6))
    lo, hi = x0 - 0.5, x0 + 0.5
    full, ok, _ = bounded_least_squares(F, Y, lo, hi, x0)
    cut, ok_cut, msg = bounded_least_squares(F, Y, lo, hi, x0, deadline=time.perf_counter())
    assert ok and not ok_cut and "time limit" in msg
    np.testing.assert_allclose(cut[0], full[0])  # the first output is always solved
    np.testing.assert_array_equal(cut[1:], x0[1:])
    A = np.hstack([F, np.ones((200, 1))])
    sse = lambda V: float(((A @ V.T - Y) ** 2).sum())  # noqa: E731
    assert sse(full) <= sse(cut) <= sse(x0)


def _net_and_data(task: str, seed: int = 0, bias: bool = True):
    import torch
    from torch import nn

    from gdsolver.extract import network_from_torch

    torch.manual_seed(seed)
    M = 3 if task == "classification" else 2
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, M, bias=bias))
    X = torch.randn(300, 6)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 300) if task == "classification" else rng.normal(size=(300, M))
    return model, X, y, network_from_torch(model, X)


@pytest.mark.parametrize("task,mode,bias", [("classification", "ce", True), ("classification", "ce", False),
                                            ("regression", "squared", True)])
def test_lazy_convex_sweep_matches_the_instance_path(task, mode, bias):
    """A convex sweep prepared lazily builds nothing and is solved from its arrays; the weights
    equal those of the instance path (ir.verify and the forward-pass check on the instance), the
    box holds (a missing bias stays pinned), and the loss it claims is the instance's true loss."""
    from gdsolver.formulate.claims import swept_weights
    from gdsolver.pipeline import solve_convex
    from gdsolver.train.sweep import prepare_sweep

    model, X, y, net = _net_and_data(task, bias=bias)
    kw = dict(task=task, layer=1, radius=0.2, mode=mode, points=None)
    lazy = prepare_sweep(net, X.numpy(), y, lazy=True, **kw)
    full = prepare_sweep(net, X.numpy(), y, **kw)
    assert lazy.built is None and lazy.convex is not None and lazy.sizes()["n_cons"] == 0
    got = solve_convex(lazy.convex)
    assert lazy.built is None and got.weights is not None and got.x is None  # still nothing built
    ref = solve_sweep(full.instance)
    assert ref.usable and verify(full.instance, ref.x).ok
    W_ref, b_ref = swept_weights(full.instance, ref.x)
    W, b = got.weights
    np.testing.assert_allclose(W, W_ref, atol=1e-6)
    np.testing.assert_allclose(b, b_ref, atol=1e-6)
    la = net.layers[1]
    assert np.all(np.abs(W - la.W) <= 0.2 + 1e-12)
    assert np.all(np.abs(b - la.b) <= (0.2 if bias else 0.0) + 1e-12)
    assert got.true_loss == pytest.approx(true_loss(full.instance, ref.x), rel=1e-7)
    assert lazy.instance.num_vars == full.instance.num_vars  # built on demand, the same instance
    assert lazy.sizes() == full.sizes()


def test_a_claim_the_forward_pass_does_not_reproduce_is_rejected():
    """Nothing but the model's forward pass checks an answer solved from arrays: a wrong claimed
    loss makes the decision put the old weights back, bit for bit."""
    import dataclasses

    import torch

    from gdsolver.pipeline import solve_convex
    from gdsolver.train.config import AcceptConfig
    from gdsolver.train.one_sweep import LayerSweep
    from gdsolver.train.sweep import decide_sweep, sweep_loss

    model, X, y, net = _net_and_data("classification")

    def outputs(Xs):
        with torch.no_grad():
            return model(Xs).double().numpy()

    ls = LayerSweep(model, net, X, y, task="classification", outputs=outputs)
    job = ls.prepare(1, radius=0.2, points=None, lazy=True)
    before = [p.detach().clone() for p in model.parameters()]
    out = solve_convex(job.convex)
    loss0 = ls.points_loss(job)
    kw = dict(write=lambda W, b: ls.write(job, W, b), restore=lambda s: ls.restore(job, s),
              points_loss=lambda: ls.points_loss(job), watched=lambda: (0.0, {}), watched_before=1.0,
              accept=AcceptConfig(accept_on="loss"), loss_before=loss0)
    bad = decide_sweep(job, dataclasses.replace(out, true_loss=out.true_loss * 1.01 + 1.0), **kw)
    assert not bad.accepted and "forward pass gives" in bad.reason
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    good = decide_sweep(job, out, **kw)
    assert good.accepted and sweep_loss("classification", outputs(X), y, 0.0, "ce") < loss0


def test_sweep_with_an_instance_path_builds_and_saves_the_instance(tmp_path):
    """gdsolver.sweep solves a convex head from its arrays unless the instance is asked for: then
    it is built, solved the instance way and saved, and the saved answer verifies."""
    import gdsolver
    from gdsolver.ir import load

    model, X, y, _ = _net_and_data("classification")
    path = tmp_path / "s.gdsm"
    rep = gdsolver.sweep(model, (X, y), layer="2", inplace=False, instance_path=path)
    assert rep.n_cons > 0 and path.exists() and "solved directly (" in rep.reason
    inst = load(path)
    assert inst.meta["mode"] == "ce" and inst.num_rows == rep.n_cons
    lazy = gdsolver.sweep(model, (X, y), layer="2", inplace=False)
    assert lazy.n_cons == 0 and "from its arrays" in lazy.reason
    assert lazy.loss_after == pytest.approx(rep.loss_after, rel=1e-5)


def test_trainer_dumps_a_sweep_solved_from_arrays_and_replay_reproduces_it(tmp_path):
    """GDSolver solves its last-layer ce sweeps from arrays; with dump_dir the instance is built
    afterwards and dumped with that answer as its point: it verifies, its weights are the ones
    the model got, and `replay` re-solves the instance to the same answer."""
    import torch

    from gdsolver.formulate.claims import swept_weights
    from gdsolver.pipeline import replay
    from gdsolver.train.hybrid import GDSolver
    from tests.test_train import sweep_files

    model, X, y, _ = _net_and_data("classification", seed=1)
    tr = GDSolver(model, "classification", lr=1e-3, epochs=2, phase_epochs=1, max_sweeps=1, layers=["2"], seed=0,
                  dump_dir=tmp_path, time_limit=30)
    hist = tr.fit((X.numpy(), y), (X.numpy()[:60], y[:60]))
    sweep = hist.sweeps[0]
    assert sweep["n_cons"] == 0 and "from its arrays" in sweep["reason"]
    inst, res, _ = sweep_files(tmp_path, 1)
    assert res.x is not None and verify(inst, res.x).ok and res.options["pipeline"]["from_arrays"]
    assert sweep["accepted"]  # (deterministic here) so the dumped point must be the model's weights
    W, b = swept_weights(inst, res.x)
    np.testing.assert_allclose(W, model[2].weight.detach().double().numpy(), atol=1e-6)
    np.testing.assert_allclose(b, model[2].bias.detach().double().numpy(), atol=1e-6)
    rows = list(replay(tmp_path / "sweeps"))
    assert rows and all(r.ok and r.recorded_x_ok for r in rows)


def test_a_direct_solve_cut_by_its_iteration_cap_is_feasible_and_says_why(monkeypatch):
    """L-BFGS-B stopped by its iteration cap (or an abnormal line search) is a FEASIBLE answer,
    never worse than the start, with a termination the result format knows (it raised before)."""
    import gdsolver.compile.convex as cv
    from gdsolver.pipeline import solve_convex
    from gdsolver.train.sweep import prepare_sweep

    monkeypatch.setattr(cv, "CE_MAXITER", 2)
    _, X, y, net = _net_and_data("classification")
    job = prepare_sweep(net, X.numpy(), y, task="classification", layer=1, radius=0.5, points=None, lazy=True)
    out = solve_convex(job.convex)
    assert out.status == "FEASIBLE" and out.result.termination == "iteration_limit"
    assert out.true_loss <= job.convex.loss(job.convex.x0)
    full = prepare_sweep(net, X.numpy(), y, task="classification", layer=1, radius=0.5, points=None)
    ref = solve_sweep(full.instance)
    assert ref.status == "FEASIBLE" and ref.result.termination == "iteration_limit" and verify(full.instance, ref.x).ok


def test_an_answer_from_arrays_that_does_not_check_out_leaves_the_instance_the_time_left(monkeypatch):
    """When the answer from a convex sweep's arrays does not check out, the instance is built and
    solved the one way within what the direct solve left of the limit (it got the whole limit
    again: a sweep could take twice its time)."""
    import gdsolver.pipeline as pl
    from gdsolver.train import one_sweep
    from gdsolver.train.sweep import prepare_sweep

    _, X, y, net = _net_and_data("classification")
    job = prepare_sweep(net, X.numpy(), y, task="classification", layer=1, radius=0.2, points=None, lazy=True)

    def refused(problem, settings):  # a slow direct solve whose answer is refused
        time.sleep(0.3)
        return None

    limits, real = [], one_sweep.solve_sweep
    monkeypatch.setattr(pl, "solve_convex", refused)
    monkeypatch.setattr(one_sweep, "solve_sweep", lambda inst, s: limits.append(s.time_limit) or real(inst, s))
    out = one_sweep.solve(job, SolveSettings(time_limit=5.0))
    assert job.built is not None and not job.from_arrays and limits and limits[0] <= 5.0 - 0.3
    assert out.usable and verify(job.instance, out.x).ok


def test_a_sweep_started_at_its_optimum_is_not_refused_for_rounding():
    """A least-squares sweep from weights already optimal in its box (e.g. a polish again with
    nothing changed since) ends within rounding of the start's loss: still an answer from the
    arrays (an ulp above the start's loss, 1.2e-16 relative, refused seed 18 of these, and the
    instance was built and solved again)."""
    from gdsolver.compile.convex import ConvexSweep
    from gdsolver.pipeline import solve_convex

    for seed in range(20):
        rng = np.random.default_rng(seed)
        H = np.maximum(rng.normal(size=(300, 8)), 0) * np.logspace(-1, 1, 8)
        Y, x0 = rng.normal(size=(300, 3)), rng.normal(size=(3, 9)) * 0.3
        V = ConvexSweep("squared", H, Y, x0 - 50, x0 + 50, x0).solve()[0].astype(np.float32).astype(np.float64)
        again = ConvexSweep("squared", H, Y, V - 0.5, V + 0.5, V)
        out = solve_convex(again)
        assert out is not None and out.true_loss == pytest.approx(again.loss(V), rel=1e-9), seed
