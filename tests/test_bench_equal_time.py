"""`gdsolver bench equal-time` on a tiny configuration (one regression workload, one seed, a
fraction of a second per run): the result files, their structure, and that no run overran its
budget by more than one step of its own; the summary's arithmetic on made-up rows."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from clirun import assert_user_error, run  # noqa: E402

from gdsolver.bench.equal_time_bench import rewrite_report, run_equal_time_bench  # noqa: E402
from gdsolver.bench.equal_time_report import ABLATION, GDSOLVER, summarize  # noqa: E402
from gdsolver.bench.equal_time_workloads import (METHODS, EqualTimeConfig, Workload, preset_config,  # noqa: E402
                                                 skipped_workloads, total_units)

SLACK_S = 0.1  # fit()'s own work outside the budgeted loop (data checks, loading the best restart)


def _tiny(**kw) -> EqualTimeConfig:
    cfg = preset_config("quick")
    assert cfg.seeds == (0, 1, 2) and cfg.regression_budgets == (1.0, 3.0)
    base = dict(workloads=("polynomial",), seeds=(0,), regression_budgets=(0.3,), epoch_reps=1)
    base.update(kw)
    for k, v in base.items():
        setattr(cfg, k, v)
    return cfg.check()


def test_equal_time_tiny(tmp_path):
    cfg = _tiny()
    assert total_units(cfg) == len(METHODS)
    doc = run_equal_time_bench(cfg, tmp_path, tag="et", command=["test"])
    for ext in ("json", "md", "png"):
        p = tmp_path / f"et.{ext}"
        assert p.is_file() and p.stat().st_size > 0, p
    assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"
    assert not (tmp_path / "et.partial.json").exists()  # the crash-safety copy goes once the report is written
    saved = json.loads((tmp_path / "et.json").read_text())
    assert saved["benchmark"] == "equal-time" and saved["run"]["command"] == ["test"]
    assert saved["machine"]["cores"] and saved["run"]["versions"]["torch"]
    assert len(saved["run"]["load_average"]["start"]) == 3 and saved["load_samples"]
    assert saved["run"]["cells"] == 1 and saved["run"]["failed"] == 0
    assert saved["config"]["seeds"] == [0] and saved["skipped"] == {}
    [w] = saved["workloads"]
    assert w["name"] == "polynomial" and w["units"] == "s" and w["budgets_s"] == [0.3]
    assert w["gd"]["optimizer"] == "lbfgs"

    rows = saved["rows"]
    assert sorted(r["method"] for r in rows) == sorted(METHODS)
    for r in rows:
        assert r["error"] is None, r
        assert r["workload"] == "polynomial" and r["seed"] == 0 and r["budget_s"] == 0.3
        assert math.isfinite(r["test_loss"]) and r["test_loss"] >= 0 and r["test_acc"] is None
        assert r["epochs"] >= 1 and r["max_step_s"] > 0
        # no run overran its budget by more than one step of its own
        assert r["wall_s"] <= r["budget_s"] + r["max_step_s"] + SLACK_S, r
        assert r["curve"] and all(len(p) == 4 for p in r["curve"])  # the largest budget keeps its curve
    by = {r["method"]: r for r in rows}
    assert by["restarts"]["restarts"] >= 1
    assert by[ABLATION]["sweeps_accepted"] == 0

    [e] = saved["summary"]
    assert e["workload"] == "polynomial" and e["budget"] == 0.3 and e["best_baseline"] in ("gd", "restarts")
    assert set(e["methods"]) == set(METHODS)
    assert sum(m["wins"] for m in e["methods"].values()) >= 1
    for m in e["methods"].values():
        assert m["n"] == 1 and m["std"] == 0.0 and m["mean"] == m["median"]
        assert m["wall_max"] <= 0.3 + m["over_max"] + 1e-6
    vb, va = e["vs_best"], e["vs_ablation"]
    assert vb["n"] == 1 and va["n"] == 1 and vb["ref"] == e["best_baseline"] and va["ref"] == ABLATION
    exact = {r["method"]: r["test_loss"] for r in doc["rows"]}  # full precision (the file keeps 7 digits)
    assert doc["summary"][0]["vs_best"]["mean_diff"] == pytest.approx(exact[GDSOLVER] - exact[e["best_baseline"]],
                                                                      rel=1e-9, abs=1e-12)
    assert isinstance(e["within_5pct"], bool) and isinstance(e["sweeps_pay"], bool)

    md = (tmp_path / "et.md").read_text()
    assert "# gdsolver bench equal-time" in md and "## polynomial" in md and "Load average" in md
    assert "GDSolver (time-aware)" in md and "![test loss against the budget](et.png)" in md
    assert doc["png_bytes"] < 200_000
    assert set(e["methods"][GDSOLVER]["moves_mean"]) >= {"stop"}  # the decisions of the time-aware loop

    # the report again from the saved rows: the same summary, to the file's 7 digits
    again = rewrite_report(tmp_path / "et.json")
    assert again["summary_rewritten"] and again["summary"][0]["best_baseline"] == e["best_baseline"]
    for m, st in again["summary"][0]["methods"].items():
        assert st["mean"] == pytest.approx(e["methods"][m]["mean"], rel=1e-6) and st["wins"] == e["methods"][m]["wins"]
    md2 = (tmp_path / "et.md").read_text()
    assert len(md2.splitlines()) == len(md.splitlines()) and "## polynomial" in md2


def _row(w, seed, method, loss, budget=1.0):
    return {"workload": w, "task": "regression", "seed": seed, "budget": budget, "budget_s": budget, "method": method,
            "test_loss": loss, "test_acc": None, "wall_s": budget, "over_s": 0.0, "max_step_s": 0.1, "epochs": 3,
            "restarts": 1, "sweeps": 0, "sweeps_accepted": 0, "error": None}


def test_summary_arithmetic():
    cfg = EqualTimeConfig(workloads=("polynomial",), seeds=(0, 1, 2))
    wl = Workload("polynomial", "regression", "m", "d", {}, "L-BFGS", "", 20, (1.0,), "s")
    losses = {"gd": [1.0, 1.0, 1.0], "restarts": [0.5, 0.6, 0.4], GDSOLVER: [0.4, 0.6, 0.5], ABLATION: [0.5, 0.8, 0.4]}
    rows = [_row("polynomial", s, m, v[s]) for m, v in losses.items() for s in range(3)]
    rows.append({"workload": "polynomial", "seed": 0, "budget": 1.0, "method": "gd", "error": "boom"})  # a failed run
    rows = [r for r in rows if not (r["method"] == "gd" and r["seed"] == 0 and r.get("error") is None)]
    [e] = summarize(rows, [wl], cfg)
    assert e["best_baseline"] == "restarts"
    ms = e["methods"]
    assert ms["restarts"]["mean"] == pytest.approx(0.5) and ms["restarts"]["median"] == pytest.approx(0.5)
    assert ms["gd"]["errors"] == 1 and ms["gd"]["n"] == 2
    # seed 0: GDSolver; seed 1: restarts and GDSolver tie; seed 2: restarts and the ablation tie
    assert {m: ms[m]["wins"] for m in METHODS} == {"gd": 0, "restarts": 2, GDSOLVER: 2, ABLATION: 1}
    vb = e["vs_best"]
    assert vb["mean_diff"] == pytest.approx(0.0) and vb["better"] == 1 and vb["worse"] == 1
    assert e["within_5pct"] is True
    va = e["vs_ablation"]
    assert va["rel"] == pytest.approx((0.5 - 1.7 / 3) / (1.7 / 3)) and va["better"] == 2
    assert e["sweeps_pay"] is False  # -11.8%, the regression target is -20%


def test_mnist_skipped_without_data(tmp_path):
    cfg = EqualTimeConfig(workloads=("mnist",))
    assert "--data-dir" in skipped_workloads(cfg)["mnist"]
    assert total_units(cfg) == 0
    cfg = EqualTimeConfig(workloads=("mnist",), data_dir=str(tmp_path))
    assert "no MNIST idx files" in skipped_workloads(cfg)["mnist"]
    doc = run_equal_time_bench(cfg, tmp_path, tag="none", plots=True)
    assert doc["rows"] == [] and doc["workloads"] == [] and "mnist" in doc["skipped"]
    assert "Skipped: mnist" in (tmp_path / "none.md").read_text()


def test_config_checks():
    from gdsolver.errors import GdsolverError

    with pytest.raises(GdsolverError, match="workload"):
        EqualTimeConfig(workloads=("cifar",)).check()
    with pytest.raises(GdsolverError, match="budgets"):
        EqualTimeConfig(regression_budgets=(0.0,)).check()
    with pytest.raises(GdsolverError, match="tuning_seeds"):
        EqualTimeConfig(seeds=(0, 1000)).check()
    with pytest.raises(GdsolverError, match="one seed"):
        EqualTimeConfig(tuning_seeds=(5,)).check()
    assert EqualTimeConfig(seeds=(0, 1000), mnist_lr=1e-3).check()  # no tuning: any seeds


def test_cli_refuses_bad_options(tmp_path):
    assert_user_error(run("bench", "equal-time", "--quick", "--full", "--out", str(tmp_path), cwd=tmp_path),
                      "--quick", "--full")
    assert_user_error(run("bench", "equal-time", "-w", "imagenet", "--out", str(tmp_path), cwd=tmp_path), "workload")


@pytest.mark.slow
def test_cli_quick_regression(tmp_path):
    p = run("bench", "equal-time", "--quick", "-w", "formula", "--seeds", "1", "--budget", "0.5", "--out",
            str(tmp_path), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "equal_time_quick.json").read_text())
    assert doc["preset"] == "quick" and len(doc["rows"]) == len(METHODS)
    assert "formula B=0.5 s: GDSolver" in p.stdout


def _partial(tmp_path, cfg, rows, name="et"):
    from dataclasses import asdict

    from gdsolver.bench.equal_time_workloads import resolve
    from gdsolver.bench.plots import write_json

    w = resolve("polynomial", cfg).to_json()
    path = tmp_path / f"{name}.partial.json"
    write_json(path, {"config": asdict(cfg), "command": ["first"], "started": "then", "rows": rows,
                      "workloads": [w], "load_samples": [{"at_s": 1.0, "where": "x", "load": [1.0, 1.0, 1.0]}]})
    return path


def test_resume_refuses_a_partial_run_of_other_settings(tmp_path):
    """A {tag}.partial.json of another configuration (here one written before bench/runner.py,
    which --resume still reads) is refused before anything runs, and left as it was."""
    from gdsolver.errors import GdsolverError

    cfg = _tiny(seeds=(0, 1))
    path = _partial(tmp_path, cfg, [_row("polynomial", 0, m, 0.5, budget=0.3) for m in METHODS])
    with pytest.raises(GdsolverError, match="other config"):
        run_equal_time_bench(_tiny(seeds=(0, 1), regression_budgets=(0.5,)), tmp_path, tag="et", plots=False,
                             resume=True)
    assert json.loads(path.read_text())["rows"][0]["test_loss"] == 0.5 and not (tmp_path / "et.json").exists()


@pytest.mark.slow
def test_resume_runs_only_what_is_missing(tmp_path):
    cfg = _tiny(seeds=(0, 1))
    first = [_row("polynomial", 0, m, 123.0, budget=0.3) for m in METHODS]  # marked: not measured again
    _partial(tmp_path, cfg, first)
    doc = run_equal_time_bench(cfg, tmp_path, tag="et", plots=False, resume=True)
    assert [r["seed"] for r in doc["rows"]] == [0] * 4 + [1] * 4
    assert all(r["test_loss"] == 123.0 for r in doc["rows"][:4])
    assert all(r["error"] is None and r["test_loss"] < 123.0 for r in doc["rows"][4:])
    assert doc["resumed"]["done"] == {"polynomial": [0]} and not (tmp_path / "et.partial.json").exists()
    assert "continued an earlier one" in (tmp_path / "et.md").read_text()
