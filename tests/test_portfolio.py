"""Portfolio sweeps (issue 18 item 2): K candidates per sweep, solved locally or on Ray, tried in
the order of their solver loss until one passes the accept rule.

Checked by independent routes: a one-weight model where every candidate's answer and the accept
rule's verdicts follow from arithmetic; the model's weights after each history row (a callback
snapshot) against the dumped answers and forward passes; `gdsolver replay` of every candidate's
dump; and a local Ray (module-scoped, 2 CPUs, 127.0.0.1) giving the same history as the local
executor."""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import gdsolver  # noqa: E402
from gdsolver.pipeline import replay  # noqa: E402
from gdsolver.errors import GdsolverError  # noqa: E402
from gdsolver.formulate import check_claims  # noqa: E402
from gdsolver.ir import verify  # noqa: E402
from gdsolver.ir.gdsm import fingerprint  # noqa: E402
from gdsolver.train.portfolio import order, plan, radius_factor  # noqa: E402

TIMING = {"gd_time_s", "solver_time_s", "build_time_s", "elapsed_s"}
HAS_RAY = importlib.util.find_spec("ray") is not None


def _snapshots():
    """A callback keeping (row, state_dict copy) for every history row."""
    snaps: list[tuple[dict, dict]] = []

    def cb(row, model):
        snaps.append((dict(row), {k: v.clone() for k, v in model.state_dict().items()}))

    return snaps, cb


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


# ------------------------------------------------------------------------------ the candidate set
def test_candidate_plan_and_order():
    assert [radius_factor(j) for j in range(7)] == [1, 2, 0.5, 1, 2, 0.5, 1]
    p = plan(4, 1003)
    assert p[0].seed == 1003 and len({c.seed for c in p}) == 4  # candidate 0 is the single sweep's sample
    assert [c.seed for c in plan(4, 1003)] == [c.seed for c in p]  # seeded, not random
    assert len({c.seed for c in plan(3, 1003) + plan(3, 1004)}) == 6
    # highest gain first, ties to the lower number, unusable (None) last by number
    assert order([0.25, 0.5, None, 0.5, 0.0]) == [1, 3, 0, 4, 2]
    assert order([None]) == [0]


def test_portfolio_options_are_checked():
    m = nn.Linear(1, 1)
    for kw, msg in [({"portfolio": 0}, "portfolio: must be an integer >= 1"),
                    ({"portfolio": 2.5}, "portfolio"),
                    ({"executor": "dask"}, "executor: 'dask', expected one of"),
                    ({"executor": "local", "ray_address": "127.0.0.1:1"}, "ray_address"),
                    ({"ray_address": ""}, "ray_address")]:
        with pytest.raises(GdsolverError, match=msg):
            gdsolver.GDSolver(m, "regression", **kw)
    g = gdsolver.GDSolver(m, "regression", portfolio=3)
    assert g.portfolio == 3 and g.config()["portfolio"] == 3 and g.config()["executor"] == "local"


# ------------------------------------------------------------------------------ one weight, by arithmetic
def _one_weight(tmp_path, **kw):
    """y = w x with w = 1; training targets 3x, validation targets 1.4x. A sweep of radius r moves w
    to 1 + r (the L1 optimum in the box); validation improves for r = 0.5 (w = 1.5) and worsens
    for 2r = 1 (w = 2, |2 - 1.4| > |1 - 1.4|)."""
    rng = np.random.default_rng(0)
    X, Xv = rng.random((40, 1)).astype(np.float32), rng.random((20, 1)).astype(np.float32)
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    snaps, cb = _snapshots()
    tr = gdsolver.GDSolver(model, "regression", epochs=0, max_sweeps=1, radius=0.5, mode="l1", portfolio=3,
                           dump_dir=tmp_path, callback=lambda r: cb(r, model), **kw)
    hist = tr.fit((X, 3 * X), (Xv, 1.4 * Xv))
    return model, hist, snaps, X, Xv


def test_candidates_tried_best_first_rejected_restored_accepted_written(tmp_path):
    model, hist, snaps, X, Xv = _one_weight(tmp_path)
    rows = hist.sweeps
    assert [r["candidate"] for r in rows] == [1, 0, 2]  # radius 1, 0.5, 0.25: the widest box gains most
    assert [r["radius"] for r in rows] == [1.0, 0.5, 0.25]
    for r in rows:  # the gain by arithmetic: L1 from (3 - 1) sum x to (3 - (1 + r)) sum x
        assert r["gain"] == pytest.approx(r["radius"] / 2, rel=1e-6)
        assert r["sweep"] == 1 and r["status"] == "OPTIMAL" and r["points"] == 40
    rejected, accepted, untried = rows
    assert not rejected["accepted"] and "validation loss would worsen" in rejected["reason"]
    assert accepted["accepted"] and not untried["accepted"]
    assert untried["reason"].startswith("not tried: candidate c0 came before it and was accepted")
    assert untried["sweep_loss_after"] is None
    # the weights after each row: the rejected candidate left them bit for bit, the accepted one is in
    states = {s[0]["candidate"]: s[1] for s in snaps if s[0]["kind"] == "sweep"}
    assert torch.equal(states[1]["weight"], torch.ones(1, 1))
    assert torch.equal(states[0]["weight"], states[2]["weight"]) and torch.equal(states[0]["weight"], model.weight)
    inst = gdsolver.load(tmp_path / "sweeps" / "0001-c0.gdsm")
    res = gdsolver.load_result(tmp_path / "sweeps" / "0001-c0-closest.result.json")
    x = res.x[:inst.num_vars]
    assert verify(inst, x).ok and check_claims(inst, x).ok
    w = float(inst.unpack(x)["w"][0, 0])
    assert w == pytest.approx(1.5, abs=1e-7) and float(model.weight.detach()) == pytest.approx(w, abs=1e-7)
    with torch.no_grad():  # the row's figures are the model's, by forward passes
        l1 = float(np.abs(model(torch.from_numpy(X)).double().numpy() - 3 * X).sum())
        val = float(((model(torch.from_numpy(Xv)) - torch.from_numpy(1.4 * Xv)) ** 2).mean())
    assert accepted["sweep_loss_after"] == pytest.approx(l1, rel=1e-6) and accepted["val_loss"] == pytest.approx(val)
    assert hist.summary()["sweeps"] == 1 and hist.summary()["sweeps_accepted"] == 1
    # every candidate's instance and results are dumped and replay
    names = sorted(p.name for p in (tmp_path / "sweeps").glob("*.gdsm"))
    assert names == [f"0001-c{j}{s}.gdsm" for j in range(3) for s in ("-closest", "")]
    reps = list(replay(tmp_path))
    assert len(reps) == 6 and all(r.ok for r in reps)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["config"]["portfolio"] == 3 and len([r for r in run["history"]["rows"] if r["kind"] == "sweep"]) == 3


def test_all_rejected_restores_and_adapts_the_radius():
    """Validation targets 0.5x: every move of w up from 1 worsens validation, so every candidate is
    tried and rejected, each leaves w = 1 bit for bit, and the radius is halved for the next
    sweep (they did improve their points' loss). Every point is in every candidate, so candidate
    3 (radius r, like candidate 0) is the same problem and is not solved again."""
    rng = np.random.default_rng(0)
    X, Xv = rng.random((40, 1)).astype(np.float32), rng.random((20, 1)).astype(np.float32)
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    snaps = []
    tr = gdsolver.GDSolver(model, "regression", epochs=0, max_sweeps=2, radius=0.5, mode="l1", portfolio=4,
                           val_tolerance=0.0, callback=lambda r: snaps.append((dict(r), model.weight.detach().clone())))
    hist = tr.fit((X, 3 * X), (Xv, 0.5 * Xv))
    rows = hist.sweeps
    assert [(r["sweep"], r["candidate"], r["radius"], r["status"]) for r in rows] == [
        (1, 1, 1.0, "OPTIMAL"), (1, 0, 0.5, "OPTIMAL"), (1, 2, 0.25, "OPTIMAL"), (1, 3, 0.5, "SKIPPED"),
        (2, 1, 0.5, "OPTIMAL"), (2, 0, 0.25, "OPTIMAL"), (2, 2, 0.125, "OPTIMAL"), (2, 3, 0.25, "SKIPPED")]
    assert not any(r["accepted"] for r in rows)
    tried = [r for r in rows if r["status"] == "OPTIMAL"]
    assert all("validation loss would worsen" in r["reason"] for r in tried)
    assert all(r["reason"] == "same points and radius as candidate c0: not solved again"
               for r in rows if r["status"] == "SKIPPED")
    assert all(torch.equal(w, torch.ones(1, 1)) for _, w in snaps)  # bit for bit after every row
    assert hist.summary()["sweeps"] == 2 and hist.summary()["sweeps_accepted"] == 0


def test_candidate_zero_is_the_single_sweep(tmp_path):
    """portfolio=1 dumps NNNN.gdsm with no candidate columns; candidate 0 of a portfolio is that
    same instance (same points, radius, seed: equal fingerprints)."""
    rng = np.random.default_rng(3)
    X = rng.random((60, 2)).astype(np.float32)
    Y = (X @ np.array([[1.0], [-2.0]], np.float32)) + 0.5
    fps, rows = {}, {}
    for k in (1, 2):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
        h = gdsolver.GDSolver(m, "regression", epochs=1, max_sweeps=1, solver_points=20, layers=[0], radius=0.05,
                              portfolio=k,
                              dump_dir=tmp_path / f"k{k}").fit((X[:48], Y[:48]), (X[48:], Y[48:]))
        rows[k] = h.sweeps
        name = "0001.gdsm" if k == 1 else "0001-c0.gdsm"
        fps[k] = fingerprint(gdsolver.load(tmp_path / f"k{k}" / "sweeps" / name))
    assert fps[1] == fps[2]
    assert len(rows[1]) == 1 and rows[1][0]["candidate"] is None and rows[1][0]["gain"] is None
    c0 = next(r for r in rows[2] if r["candidate"] == 0)
    for key in ("status", "objective", "radius", "points", "n_vars", "n_binary", "sweep_loss_before", "layer"):
        assert c0[key] == rows[1][0][key], key
    assert not any(p.name.startswith("0001-c") for p in (tmp_path / "k1" / "sweeps").iterdir())


def test_cli_train_portfolio(tmp_path):
    from clirun import assert_user_error, run

    p = run("train", "--dataset", "affine", "-m", "gdsolver", "--epochs", "1", "--max-sweeps", "1", "--portfolio",
            "2", "--layers", "final", "--time-limit", "20", "--n-train", "100", "--json", "out.json", "--dump", "d",
            cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    rows = json.loads((tmp_path / "out.json").read_text())["results"][0]["history"]["rows"]
    sweeps = [r for r in rows if r["kind"] == "sweep"]
    assert sorted(r["candidate"] for r in sweeps) == [0, 1] and {r["sweep"] for r in sweeps} == {1}
    assert "sweep 1 candidate 0" in p.stdout and "sweep 1 candidate 1" in p.stdout
    assert sum(1 for _ in (tmp_path / "d" / "gdsolver" / "sweeps").glob("0001-c*.gdsm")) >= 2
    assert_user_error(run("train", "--dataset", "affine", "--portfolio", "0", "--epochs", "1", cwd=tmp_path),
                      "portfolio: must be an integer >= 1")


# ------------------------------------------------------------------------------ on Ray
@pytest.fixture(scope="module")
def local_ray(ray_token):
    """A local Ray for this module: 2 CPUs, bound to 127.0.0.1, the session's throw-away auth token
    (conftest.py), no usage reports (tests/test_ray.py's settings)."""
    if not HAS_RAY:
        pytest.skip("needs the ray extra: pip install -c constraints.txt '.[ray]'")
    from gdsolver.train.executor import RayExecutor

    mp = pytest.MonkeyPatch()
    for k, v in {"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                 "RAY_AUTH_TOKEN": ray_token}.items():
        mp.setenv(k, v)
    temp = tempfile.mkdtemp(prefix="gdp", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    ex = RayExecutor(num_cpus=2, temp_dir=temp)
    try:
        yield ex
    finally:
        ex.close()
        mp.undo()
        shutil.rmtree(temp, ignore_errors=True)


def _digits_run(executor: str, dump: Path):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    snaps, cb = _snapshots()
    tr = gdsolver.GDSolver(model, "classification", epochs=2, phase_epochs=1, max_sweeps=2, time_limit=20,
                           mode="paper", portfolio=3, seed=1, executor=executor, dump_dir=dump,
                           callback=lambda r: cb(r, model))
    hist = tr.fit((X[:300], y[:300]), (X[300:450], y[300:450]))
    return model, hist, snaps, X[:300], y[:300]


def test_portfolio_on_ray_equals_local(local_ray, tmp_path):
    d = local_ray.describe()
    assert d["cpus"] == 2 and d["node_addresses"] == ["127.0.0.1"]
    m_loc, h_loc, snaps, X, y = _digits_run("local", tmp_path / "local")
    m_ray, h_ray, _, _, _ = _digits_run("ray", tmp_path / "ray")
    assert _strip(h_ray.rows) == _strip(h_loc.rows)
    for a, b in zip(m_loc.state_dict().values(), m_ray.state_dict().values()):
        assert torch.equal(a, b)
    sweeps = h_loc.sweeps
    n = len({r["sweep"] for r in sweeps})
    assert n >= 1 and len(sweeps) == 3 * n  # a row for every candidate of every sweep
    for s in {r["sweep"] for r in sweeps}:
        mine = [r for r in sweeps if r["sweep"] == s]
        assert sorted(r["candidate"] for r in mine) == [0, 1, 2]
        gains = [r["gain"] for r in mine]
        assert gains == sorted(gains, reverse=True)  # tried best first
        assert sum(bool(r["accepted"]) for r in mine) <= 1
    # the weights after each sweep row: unchanged unless that row was accepted, and then the
    # candidate's answer, whose claims a forward pass confirms
    prev = None
    for row, state in snaps:
        if row["kind"] == "sweep":
            if not row["accepted"]:
                assert all(torch.equal(state[k], prev[k]) for k in state), row
            else:
                j, stem = row["candidate"], f"{row['sweep']:04d}-c{row['candidate']}"
                inst = gdsolver.load(tmp_path / "local" / "sweeps" / f"{stem}.gdsm")
                closest = tmp_path / "local" / "sweeps" / f"{stem}-closest.result.json"
                used = closest if "closest point moved" in row["reason"] else closest.with_name(f"{stem}.result.json")
                x = gdsolver.load_result(used).x[:inst.num_vars]
                assert verify(inst, x).ok and check_claims(inst, x).ok, j
                w = inst.unpack(x)
                np.testing.assert_allclose(state["2.weight"].double().numpy(), w["w"], atol=1e-6)
                np.testing.assert_allclose(state["2.bias"].double().numpy(), w["b"], atol=1e-6)
                pts = np.array(inst.meta["points"])
                mm = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
                mm.load_state_dict(state)
                with torch.no_grad():
                    o = mm(torch.from_numpy(X[pts])).double().numpy()
                top2 = np.sort(o, axis=1)[:, -2]
                wrong = int(np.count_nonzero(~((o[np.arange(len(pts)), y[pts]] - np.where(
                    o.argmax(1) == y[pts], top2, o.max(1))) >= 0.5e-3)))
                assert wrong == row["sweep_loss_after"] < row["sweep_loss_before"]
        prev = state
    # every candidate dumped under both runs, the same instances, and they replay
    la, ra = (sorted((tmp_path / k / "sweeps").glob("*.gdsm")) for k in ("local", "ray"))
    assert [p.name for p in la] == [p.name for p in ra] and len(la) >= 3 * n
    assert all(fingerprint(gdsolver.load(a)) == fingerprint(gdsolver.load(b)) for a, b in zip(la, ra))
    reps = list(replay(tmp_path / "ray"))
    assert len(reps) == len(la) and all(r.ok for r in reps)


@pytest.mark.slow  # ~30 s: two CLI runs, one starting its own local Ray
def test_cli_train_portfolio_ray_equals_local(local_ray, tmp_path):
    from clirun import run_subprocess as run  # --ray starts its own Ray: not in this process (local_ray's)

    args = ["train", "--dataset", "digits", "-m", "gdsolver", "--epochs", "2", "--max-sweeps", "1", "--portfolio", "2",
            "--n-train", "300", "--time-limit", "30"]
    loc = run(*args, "--json", "local.json", "--dump", "dl", cwd=tmp_path)
    ray = run(*args, "--ray", "--json", "ray.json", "--dump", "dr", cwd=tmp_path)
    assert loc.returncode == 0 and ray.returncode == 0, loc.stderr + ray.stderr
    assert "ray: a local Ray: 1 node (127.0.0.1)" in ray.stdout
    hist = [json.loads((tmp_path / f).read_text())["results"][0]["history"]["rows"] for f in ("local.json", "ray.json")]
    assert _strip(hist[0]) == _strip(hist[1]) and sum(r["kind"] == "sweep" for r in hist[0]) == 2
    run_json = json.loads((tmp_path / "dr" / "gdsolver" / "run.json").read_text())
    assert run_json["config"]["executor"] == "ray" and run_json["config"]["portfolio"] == 2
