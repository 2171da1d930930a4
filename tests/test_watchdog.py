"""The wall-clock watchdog (compile.base.SolveRun): a solve with a time limit is stopped by the
clock, not only by the solver's own, and answers TIME_LIMIT / FEASIBLE with its best point (the
MIP start at least); the pipeline steps after it respect the same limit.

No test here times anything: the watchdog's clock (base.clock) is moved on by the test, so that
the limit passes at a known moment while the solver's own limit (60 s) cannot have; that the
watchdog, and not the solver, stopped the solve is read from the result. Wall-time figures under
load are in benchmarks/results/mnist_limits.md."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from gdsolver.compile import available_backends, solve
from gdsolver.compile import base
from gdsolver.errors import LicenseLimitError
from gdsolver.ir import verify
from instances import hard_instance, market_split

BACKENDS = available_backends()
WATCHDOG = "the wall-clock watchdog stopped the solve"


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def limit_passes_when_solver_starts(monkeypatch):
    """From the moment the solver's blocking call starts (SolveRun.__call__), the watchdog's clock
    reads 1000 s later: the limit has passed for the watchdog, not for the solver's own clock."""
    real, shift = base.clock, [0.0]
    monkeypatch.setattr(base, "clock", lambda: real() + shift[0])
    call = base.SolveRun.__call__

    def started(self, *a, **k):
        shift[0] = 1000.0
        return call(self, *a, **k)

    monkeypatch.setattr(base.SolveRun, "__call__", started)
    return shift


def _solve(inst, backend, **kw):
    try:
        return solve(inst, backend, **kw)
    except LicenseLimitError as exc:
        pytest.skip(f"needs more than the available licence: {exc}")


def _check_stopped_by_watchdog(inst, res, limit: float) -> None:
    assert res.termination == "time_limit" and res.status == "FEASIBLE", (res.status, res.termination, res.message)
    assert WATCHDOG in res.message and f"({limit:g} s, build included)" in res.message
    assert verify(inst, res.x).ok
    # at least the MIP start: a count head's objective (correct points) is never below the start's
    assert res.objective >= inst.objective_value(inst.start) - 1e-9


def test_watchdog_stops_a_solve_the_solver_would_not(backend, limit_passes_when_solver_starts):
    """hard_instance takes any backend far more than 60 s; the solver's own limit is 60 s, so only
    the watchdog can have stopped it, and the result says so."""
    inst = hard_instance()
    res = _solve(inst, backend, time_limit=60)
    _check_stopped_by_watchdog(inst, res, 60)


def test_watchdog_off_the_main_thread(backend, limit_passes_when_solver_starts):
    """Ctrl-C cannot reach a worker thread (a Ray task, a portfolio member), the watchdog can."""
    inst = hard_instance()
    box: dict = {}

    def work() -> None:
        try:
            box["res"] = _solve(inst, backend, time_limit=60)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test's thread
            box["err"] = exc

    t = threading.Thread(target=work)
    t.start()
    t.join()
    if "err" in box:
        raise box["err"]
    _check_stopped_by_watchdog(inst, box["res"], 60)


def test_no_watchdog_without_a_limit_or_before_it(backend):
    """A solve that ends by itself is not marked: the watchdog's words appear only when it fired."""
    inst, xs = market_split(m=2, with_start=True)
    res = _solve(inst, backend, time_limit=600)
    assert res.status == "OPTIMAL" and WATCHDOG not in res.message and verify(inst, res.x).ok


def test_watchdog_keeps_the_start_when_stopped_before_any_point(limit_passes_when_solver_starts):
    """market_split: no backend finds a point in seconds without help; stopped at once with a MIP
    start, HiGHS answers with the start (FEASIBLE), not with nothing."""
    inst, xs = market_split(with_start=True)
    res = _solve(inst, "highs", time_limit=60)
    assert res.status == "FEASIBLE" and res.termination == "time_limit" and WATCHDOG in res.message
    assert np.array_equal(res.x, inst.start) or res.objective <= inst.objective_value(inst.start) + 1e-9
    assert verify(inst, res.x).ok


def test_a_highs_run_that_ignores_the_stop_is_left_behind(limit_passes_when_solver_starts, monkeypatch):
    """If HiGHS does not return after the watchdog's stop (it does not poll inside sub-MIPs), the
    solve answers with the incumbent it held after the watchdog's grace (5% of the 10 s limit), and
    the run left behind is joined by the next HiGHS solve."""
    from gdsolver.compile import highs

    deaf = threading.Event()
    deaf.set()
    orig = highs._Watch.on_interrupt

    def on_interrupt(self, event):  # ignores the stop while `deaf` is set
        if not deaf.is_set():
            orig(self, event)

    monkeypatch.setattr(highs._Watch, "on_interrupt", on_interrupt)
    inst = hard_instance()
    try:
        res = _solve(inst, "highs", time_limit=10)
        assert highs._abandoned, "the run was not left behind"
        assert "did not return in time after the watchdog's stop" in res.message
        _check_stopped_by_watchdog(inst, res, 10)
    finally:
        deaf.clear()  # the run left behind now obeys its stop flag at HiGHS's next check
        assert highs.join_abandoned(30.0)
    assert not highs._abandoned


def test_the_pipeline_answers_time_limit_with_a_verified_point(limit_passes_when_solver_starts):
    """solve_sweep (search "mip": the backend's solve) on a sweep HiGHS cannot finish: the watchdog
    stops the solve, the pipeline's answer is usable (ir.verify and the forward-pass check) and says
    TIME_LIMIT / FEASIBLE; the closest-point LP after it is skipped or capped, never run past the limit."""
    from gdsolver.formulate import check_claims
    from gdsolver.pipeline import SolveSettings, solve_sweep

    inst = hard_instance()
    out = solve_sweep(inst, SolveSettings(time_limit=60, search="mip"))
    assert out.usable and out.status == "FEASIBLE", (out.status, out.reason)
    assert out.result.termination == "time_limit" and WATCHDOG in out.result.message
    assert verify(inst, out.x).ok and check_claims(inst, out.x).ok
    assert out.objective >= inst.objective_value(inst.start) - 1e-9


def _lp_with_start(n: int = 1000, seed: int = 0):
    """A random LP (n columns, n range rows, 10 distinct columns a row; within Gurobi's pip licence)
    with a feasible start: no backend solves it before the watchdog's first look."""
    from gdsolver.ir import InstanceBuilder

    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-1, 1, n)
    r = np.repeat(np.arange(n), 10)
    c = (7 * r + np.tile(np.arange(10) * (n // 10), n)) % n
    a = rng.normal(size=10 * n)
    ax0 = np.bincount(r, weights=a * x0[c], minlength=n)
    bld = InstanceBuilder()
    x = bld.add_block("x", (n,), lb=-2.0, ub=2.0, cost=rng.normal(size=n), start=x0)
    bld.add_rows("r", r, x[c], a, n, lo=ax0 - rng.uniform(0, 1, n), hi=ax0 + rng.uniform(0, 1, n))
    return bld.build("min")


@pytest.mark.parametrize("lp_backend", [b for b in BACKENDS if b != "gurobi"])
def test_an_lp_stopped_by_the_watchdog_answers_its_start(lp_backend, limit_passes_when_solver_starts):
    """A cross-entropy round is an LP: stopped before the solver holds a feasible point, the solve
    answers with the instance's start (it verifies), FEASIBLE at the time limit, not with nothing.
    Not Gurobi: a terminate() sent before its optimize() starts is lost, and it solves any LP its pip
    licence allows before the re-sent one (50 ms later) arrives, so the outcome would be a race."""
    backend = lp_backend
    inst = _lp_with_start()
    assert verify(inst, inst.start).ok
    res = _solve(inst, backend, time_limit=60)
    assert res.termination == "time_limit" and WATCHDOG in res.message, (res.status, res.message)
    assert res.status == "FEASIBLE" and verify(inst, res.x).ok


def test_a_stopped_highs_point_that_fails_verify_gives_the_start(limit_passes_when_solver_starts, monkeypatch):
    """If the stop also cuts HiGHS's polish short and its point fails ir.verify (seen on MNIST's whole
    256-128 layer), the answer is the MIP start, which verifies, not a point the pipeline must refuse.
    The cut-short polish is simulated by one that moves the point off a row."""
    from gdsolver.compile import highs

    def spoilt(h, inst, x, run):
        return x + 0.5, "polish cut short"

    monkeypatch.setattr(highs, "_polish", spoilt)
    inst = hard_instance()
    res = _solve(inst, "highs", time_limit=60)
    assert res.status == "FEASIBLE" and res.termination == "time_limit"
    assert np.array_equal(res.x, inst.start) and "kept the MIP start" in res.message
