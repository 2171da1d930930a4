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
    from gdsolver.train.runs import load_split_for

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
    assert saved["machine"]["cores"] and saved["versions"]["torch"] and saved["command"] == ["test"]
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
    from gdsolver.train.runs import load_split_for

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
