"""The paper benchmarks (regression Table 1, data efficiency) on tiny configurations: files,
table rows, finite numbers, and one cell of each recomputed independently by hand."""

from __future__ import annotations

import csv
import json
import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

from clirun import assert_user_error, run  # noqa: E402

from gdsolver.bench.data_efficiency_bench import DataEfficiencyConfig, run_data_efficiency_bench  # noqa: E402
from gdsolver.bench.regression_bench import RegressionConfig, run_regression_bench, sweep_options  # noqa: E402


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _files(tmp_path, tag):
    for ext in ("csv", "json", "md", "png"):
        p = tmp_path / f"{tag}.{ext}"
        assert p.is_file() and p.stat().st_size > 0, p
    assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"


def test_regression_tiny(tmp_path):
    from gdsolver.train.hybrid import GDSolver
    from gdsolver.train.models import build_model
    from gdsolver.modelfile.data import load_split_for

    cfg = RegressionConfig(equations=("identity",), seeds=(0,), max_epochs=2, sweep_epochs=(1, 2),
                           methods=("sgd", "adam-lrs"))
    doc = run_regression_bench(cfg, tmp_path, tag="reg", command=["test"])
    _files(tmp_path, "reg")
    rows = _csv(tmp_path / "reg.csv")
    # 2 baselines x 2 epochs + 2 radius presets x 2 sweep epochs
    assert len(rows) == 8
    assert {(r["method"], r["preset"]) for r in rows} == {("sgd", ""), ("adam-lrs", ""), ("gdsolver", "paper"),
                                                           ("gdsolver", "default")}
    for r in rows:
        assert r["error"] == ""
        for k in ("test_mse", "gd_time_s", "time_s"):
            assert math.isfinite(float(r[k])) and float(r[k]) >= 0, (k, r)
    assert all(r["status"] for r in rows if r["method"] == "gdsolver")
    saved = json.loads((tmp_path / "reg.json").read_text())
    assert saved["machine"]["cores"] and saved["run"]["versions"]["torch"] and saved["run"]["command"] == ["test"]
    assert saved["config"]["seeds"] == [0]
    assert [t["preset"] for t in saved["table1"]] == ["paper", "default"]
    for t in saved["table1"]:
        assert [r["equation"] for r in t["rows"]] == ["identity"]
        assert t["e_lo"] == 1 and t["e_hi"] == 2
        assert math.isfinite(t["mean_mse_reduction"]) and math.isfinite(t["mean_time_saving"])
    md = (tmp_path / "reg.md").read_text()
    assert "Table 1, radius preset \"paper\"" in md and "| identity |" in md
    assert doc["png_bytes"] < 200_000

    # GDSolver(2) by hand: 2 epochs of SGD + one sweep, in one run, from the same initial model
    for preset, e in (("default", 2), ("paper", 1)):
        split = load_split_for("identity", None, seed=0)
        g = GDSolver(build_model("paper", (3,), 2, seed=0), "regression", epochs=e, phase_epochs=e, max_sweeps=1,
                     patience=None, lr=0.05, batch_size=32, seed=0, threads=1, **sweep_options(preset, "identity", cfg))
        h = g.fit(split.train, split.val)
        assert len(h.epochs) == e and len(h.sweeps) == 1
        expect = g.evaluate(split.test)["loss"]
        got = [r for r in rows if r["preset"] == preset and int(r["epochs"]) == e]
        assert len(got) == 1
        assert float(got[0]["test_mse"]) == pytest.approx(expect, rel=1e-6)  # CSV: 7 significant digits
        exact = [r for r in doc["rows"] if r["method"] == "gdsolver" and r["preset"] == preset and r["epochs"] == e]
        assert exact[0]["test_mse"] == pytest.approx(expect, rel=1e-12, abs=1e-15)
        assert got[0]["status"] == h.sweeps[0]["status"]
        assert (got[0]["accepted"] == "True") == bool(h.sweeps[0]["accepted"])


def test_data_efficiency_tiny(tmp_path):
    from gdsolver.train.methods import make_trainer
    from gdsolver.train.models import build_model
    from gdsolver.modelfile.data import load_split_for

    cfg = DataEfficiencyConfig(dataset="digits", models=("conv",), n_values=(100, 200), epochs=(2,), seeds=(0,),
                               methods=("sgd",), threads=1)
    doc = run_data_efficiency_bench(cfg, tmp_path, tag="de", command=["test"])
    _files(tmp_path, "de")
    rows = _csv(tmp_path / "de.csv")
    assert sorted((int(r["n"]), r["method"]) for r in rows) == [
        (n, m) for n in (100, 200) for m in ("2loop-no-sweep", "gdsolver-2loop", "sgd")]
    for r in rows:
        assert r["error"] == "" and int(r["epochs"]) == 2
        acc = float(r["test_acc"])
        assert 0.0 <= acc <= 1.0 and math.isfinite(float(r["time_s"]))
    two = [r for r in rows if r["method"] == "gdsolver-2loop"]
    assert all(int(r["sweeps"]) == 2 for r in two)
    assert all(int(r["sweeps"]) == 0 and float(r["solver_time_s"]) == 0 for r in rows if r["method"] == "2loop-no-sweep")
    saved = json.loads((tmp_path / "de.json").read_text())
    assert {(s["model"], s["method"], s["epochs"]) for s in saved["smallest_n"]} == {
        ("conv", "sgd", 2), ("conv", "2loop-no-sweep", 2), ("conv", "gdsolver-2loop", 2)}
    assert math.isfinite(saved["targets"]["conv"])
    md = (tmp_path / "de.md").read_text()
    assert "| 100 |" in md and "| 200 |" in md and "Smallest n" in md
    assert doc["png_bytes"] < 200_000

    # the 2-loop cell at n = 200 by hand
    split = load_split_for("digits-images", None, seed=0, n_train=200)
    tr = make_trainer("gdsolver-2loop", build_model("conv", (1, 8, 8), 10, seed=0), "classification", epochs=2,
                      batch_size=32, seed=0, threads=1, time_limit=30.0)
    tr.fit(split.train, split.val)
    expect = tr.evaluate(split.test)["acc"]
    got = [r for r in two if int(r["n"]) == 200][0]
    assert float(got["test_acc"]) == pytest.approx(expect, abs=1e-6)
    exact = [r for r in doc["rows"] if r["method"] == "gdsolver-2loop" and r["n"] == 200]
    assert exact[0]["test_acc"] == pytest.approx(expect, abs=1e-12)


def test_data_efficiency_missing_files(tmp_path):
    p = run("bench", "data-efficiency", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path), "--quick",
            "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert_user_error(p, "fashion-mnist", "not found")
    assert not (tmp_path / "out" / "data_efficiency_fashion-mnist_quick.json").exists()


def test_unknown_equation_is_a_user_error(tmp_path):
    p = run("bench", "regression", "--quick", "--equation", "cubic", "--out", str(tmp_path), cwd=tmp_path)
    assert_user_error(p, "cubic")


def test_regression_tuned_tiny(tmp_path):
    """The tuned comparison (issues 15 and 19): rates chosen by the mean validation MSE over the
    seeds (recomputed from the CSV), one tuned baseline and one GDSolver cell recomputed by hand,
    GDSolver's starting point equal to its baseline's model, and the accept rule's bound on the
    validation MSE."""
    import numpy as np

    from gdsolver.bench.regression_tuned import TunedConfig
    from gdsolver.train.hybrid import GDSolver
    from gdsolver.train.models import build_model
    from gdsolver.modelfile.data import load_split_for
    from gdsolver.train.trainer import GDTrainer

    t = TunedConfig(lr_grid=(0.01, 0.1), methods=("sgd", "adam-lrs"), epochs=3, gd_epochs=2, restarts=2, rounds=1,
                    solver_points=10, time_limit=30.0, on=("adam-lrs", "lbfgs-best"), gdsolver_seeds=(0,))
    cfg = RegressionConfig(equations=("polynomial",), seeds=(0, 1), max_epochs=1, sweep_epochs=(1,), methods=("sgd",),
                           presets=("paper",), tuned=t)
    doc = run_regression_bench(cfg, tmp_path, tag="reg", command=["test"])
    assert (tmp_path / "reg_tuned.csv").is_file() and (tmp_path / "reg_tuned.png").is_file()
    rows = _csv(tmp_path / "reg_tuned.csv")
    # 2 GD methods x 2 rates x 2 seeds x rows at e = 2, 3; L-BFGS once and best of 2 x 2 seeds; 2 GDSolver rows (seed 0)
    assert len(rows) == 16 + 4 + 2 and not any(r["error"] for r in rows)
    chosen = json.loads((tmp_path / "reg.json").read_text())["tuned"]["chosen"]
    small = json.loads((tmp_path / "reg_tuned.json").read_text())
    assert small["tuned"]["chosen"] == chosen and small["machine"]["cores"] and small["config"]["rounds"] == 1

    # the rate: lowest mean validation MSE over both seeds after 3 epochs, from the CSV
    for m in ("sgd", "adam-lrs"):
        means = {lr: np.mean([float(r["val_mse"]) for r in rows if r["method"] == m and float(r["lr"]) == lr
                              and r["epochs"] == "3"]) for lr in (0.01, 0.1)}
        assert chosen[f"polynomial/{m}"] == min(means, key=means.get)
    lr = chosen["polynomial/adam-lrs"]

    split = load_split_for("polynomial", None, seed=1)
    tr = GDTrainer(build_model("paper", (3,), 2, seed=1), "regression", optimizer="adam", lr=lr,
                   lr_schedule="plateau", epochs=3, seed=1, threads=1)
    tr.fit(split.train, split.val)
    got = [r for r in doc["tuned_rows"] if r["method"] == "adam-lrs" and r["seed"] == 1 and r["lr"] == lr
           and r["epochs"] == 3]
    assert got[0]["test_mse"] == pytest.approx(tr.evaluate(split.test)["loss"], rel=1e-12)
    assert got[0]["val_mse"] == pytest.approx(tr.evaluate(split.val)["loss"], rel=1e-6)

    # GDSolver on tuned Adam + schedule, seed 0, by hand: 2 GD epochs, then one sweep round over all layers
    split = load_split_for("polynomial", None, seed=0)
    model = build_model("paper", (3,), 2, seed=0)
    GDSolver(model, "regression", optimizer="adam", lr=lr, lr_schedule="plateau", epochs=2, phase_epochs=2,
             max_sweeps=0, patience=None, seed=0, threads=1).fit(split.train, split.val)
    g = GDSolver(model, "regression", epochs=0, max_sweeps=1, layers="all", radius=1.0, solver_points=10,
                 time_limit=30.0, mode="squared", seed=0, threads=1)
    h = g.fit(split.train, split.val)
    assert len(h.sweeps) == 2 and {s["layer_name"] for s in h.sweeps} == {"0", "2"}
    row = [r for r in doc["tuned_rows"] if r["method"] == "gdsolver[adam-lrs]"][0]
    assert row["test_mse"] == pytest.approx(g.evaluate(split.test)["loss"], rel=1e-9)
    assert row["sweeps"] == 2 and row["sweeps_accepted"] == sum(bool(s["accepted"]) for s in h.sweeps)
    # its starting point is the tuned baseline's model after 2 epochs (the same run)
    base2 = [r for r in doc["tuned_rows"] if r["method"] == "adam-lrs" and r["seed"] == 0 and r["lr"] == lr
             and r["epochs"] == 2][0]
    assert row["test_mse_before"] == base2["test_mse"]
    # GDSolver on L-BFGS best of 2 starts from exactly that baseline's model
    lb = [r for r in doc["tuned_rows"] if r["method"] == "lbfgs-best2" and r["seed"] == 0][0]
    glb = [r for r in doc["tuned_rows"] if r["method"] == "gdsolver[lbfgs-best2]"][0]
    assert glb["test_mse_before"] == lb["test_mse"]
    # the accept rule: each accepted sweep raises the validation MSE by at most 1%
    for r in (row, glb):
        assert r["val_mse"] <= r["val_mse_before"] * 1.01 ** r["sweeps_accepted"] * (1 + 1e-9)

    # the summary: best baseline by mean test MSE, wins seed by seed, verdicts from before/after
    s = doc["tuned"]["equations"][0]
    fin = {(r["method"], r["seed"]): r["test_mse"] for r in doc["tuned_rows"]
           if r["method"] not in ("sgd", "adam-lrs") or (r["epochs"] == 3 and r["lr"] == chosen[f"polynomial/{r['method']}"])}
    base_names = ["sgd", "adam-lrs", "lbfgs", "lbfgs-best2"]
    best = min(base_names, key=lambda m: np.mean([fin[(m, sd)] for sd in (0, 1)]))
    assert s["best_baseline"] == best
    for m in s["methods"]:
        seeds = [sd for sd in (0, 1) if (m["method"], sd) in fin]
        assert m["wins"] == sum(fin[(m["method"], sd)] < fin[(best, sd)] for sd in seeds)
        assert m["mean"] == pytest.approx(np.mean([fin[(m["method"], sd)] for sd in seeds]))
    eff = {e["method"]: e for e in doc["tuned"]["effects"]}
    e = eff["gdsolver[adam-lrs]"]
    assert (e["before"], e["after"]) == (row["test_mse_before"], row["test_mse"])
    assert e["verdict"] == ("nothing" if row["test_mse"] == row["test_mse_before"] else
                            "helped" if row["test_mse"] < row["test_mse_before"] else e["verdict"])
    md = (tmp_path / "reg.md").read_text()
    assert "Tuned baselines against GDSolver" in md and "issue 19, gdsolver[lbfgs-best2]" in md
    assert "The paper presets (for the record)" in md and "Table 1, radius preset \"paper\"" in md


def test_data_efficiency_tuned_tiny(tmp_path):
    """Tuned rates (lowest mean validation loss over the seeds, recomputed from the CSV), only the
    chosen rate's rows in the tables, L-BFGS best of 2, GDSolver at the tuned SGD rate by hand,
    and the half-the-points table."""
    import numpy as np

    from gdsolver.train.hybrid import GDSolver
    from gdsolver.train.models import build_model
    from gdsolver.modelfile.data import load_split_for

    cfg = DataEfficiencyConfig(dataset="digits", models=("mlp",), n_values=(100, 200), epochs=(2,), seeds=(0, 1),
                               methods=("sgd", "adam-lrs"), lr_grid=(0.01, 0.1), lbfgs_restarts=2, gdsolver_tuned=True,
                               two_loop=False, threads=1)
    doc = run_data_efficiency_bench(cfg, tmp_path, tag="de", command=["test"])
    rows = _csv(tmp_path / "de.csv")
    assert sorted({r["method"] for r in rows}) == ["adam-lrs", "gdsolver[adam-lrs]", "gdsolver[sgd]", "lbfgs-best2",
                                                   "sgd"]
    assert len(rows) == 2 * 2 * (2 + 2 + 1 + 2) and not any(r["error"] for r in rows)
    assert all(0.0 <= float(r["train_acc"]) <= 1.0 for r in rows)
    for n in (100, 200):
        means = {lr: np.mean([float(r["val_loss"]) for r in rows if r["method"] == "sgd" and int(r["n"]) == n
                              and float(r["lr"]) == lr]) for lr in (0.01, 0.1)}
        lr = min(means, key=means.get)
        assert doc["chosen_lrs"][f"mlp/sgd/{n}/2"] == lr
        picked = [r for r in rows if r["method"] == "sgd" and int(r["n"]) == n and r["chosen"] == "True"]
        assert {float(r["lr"]) for r in picked} == {lr} and len(picked) == 2
        agg = [a for a in doc["aggregate"] if a["method"] == "sgd" and a["n"] == n][0]
        assert agg["test_acc"] == pytest.approx(np.mean([float(r["test_acc"]) for r in picked]), abs=1e-6)
    # GDSolver at the tuned SGD rate, n = 200, seed 1, by hand
    lr = doc["chosen_lrs"]["mlp/sgd/200/2"]
    split = load_split_for("digits", None, seed=1, n_train=200)
    g = GDSolver(build_model("mlp", (64,), 10, hidden=32, seed=1), "classification", lr=lr, epochs=2, seed=1,
                 threads=1, time_limit=30.0)
    g.fit(split.train, split.val)
    got = [r for r in doc["rows"] if r["method"] == "gdsolver[sgd]" and r["n"] == 200 and r["seed"] == 1][0]
    assert got["test_acc"] == pytest.approx(g.evaluate(split.test)["acc"], abs=1e-12) and got["lr"] == lr
    assert got["train_acc"] == pytest.approx(g.evaluate(split.train)["acc"], abs=1e-12)
    # GDSolver on Adam + plateau schedule at the tuned adam-lrs rate, by hand
    lr = doc["chosen_lrs"]["mlp/adam-lrs/200/2"]
    g = GDSolver(build_model("mlp", (64,), 10, hidden=32, seed=1), "classification", optimizer="adam",
                 lr_schedule="plateau", lr=lr, epochs=2, seed=1, threads=1, time_limit=30.0)
    g.fit(split.train, split.val)
    got = [r for r in doc["rows"] if r["method"] == "gdsolver[adam-lrs]" and r["n"] == 200 and r["seed"] == 1][0]
    assert got["test_acc"] == pytest.approx(g.evaluate(split.test)["acc"], abs=1e-12) and got["lr"] == lr
    # half the points: the best baseline's mean accuracy at n = 200, and the smallest n reaching it
    h = doc["half_data"][0]
    L = {(a["method"], a["n"]): a["test_acc"] for a in doc["aggregate"]}
    assert h["target"] == max(L[(m, 200)] for m in ("sgd", "adam-lrs", "lbfgs-best2"))
    assert h["half_n"] == 100 and h["at_half"]["gdsolver[adam-lrs]"]["test_acc"] == L[("gdsolver[adam-lrs]", 100)]
    for m, n in h["smallest_n"].items():
        reach = [k for k in (100, 200) if L[(m, k)] >= h["target"]]
        assert n == (min(reach) if reach else None)
    assert "at most half the points" in (tmp_path / "de.md").read_text()


def test_tuned_rows_restrict_the_comparison_and_skip_table1(tmp_path):
    """--tuned-row: only the rows asked for (and L-BFGS once / best of K), no Table 1 cells."""
    from dataclasses import replace

    from gdsolver.bench.regression_bench import grid
    from gdsolver.bench.regression_tuned import TunedConfig, with_rows
    from gdsolver.errors import GdsolverError

    t = TunedConfig(restarts=2)
    assert with_rows(t, ["gdsolver[lbfgs-best2]"]) == replace(t, methods=(), on=("lbfgs-best",))
    r = with_rows(t, ["sgd", "gdsolver[adam-lrs]", "lbfgs"])
    assert r.methods == ("sgd", "adam-lrs") and r.on == ("adam-lrs",)  # a GDSolver row's GD phase is tuned too
    for bad in ("cubic", "gdsolver[lbfgs-best5]", "gdsolver[nope]"):
        with pytest.raises(GdsolverError, match="row"):
            with_rows(t, [bad])
    cfg = RegressionConfig(equations=("identity",), seeds=(0, 1), table1=False,
                           tuned=with_rows(t, ["gdsolver[lbfgs-best2]"]))
    cells = grid(cfg)
    assert {(c["part"], c["method"]) for c in cells} == {("tuned", "lbfgs"), ("tuned", "lbfgs-best2"),
                                                         ("tuned", "gdsolver[lbfgs-best2]")}
    assert len(cells) == 6

