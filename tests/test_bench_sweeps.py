"""`gdsolver bench sweeps --quick`: files, rows, and every row's optimum recomputed by another
route (the instance rebuilt from its seed and solved by scipy's milp on a textbook model, or
by the plain MIP through the public solve)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from clirun import assert_user_error, run  # noqa: E402

from gdsolver.bench.sweep_instances import head_case, mnist_head_sweep, trained_sweep, wide_head_sweep  # noqa: E402
from gdsolver.bench.sweeps_bench import QUICK  # noqa: E402
from gdsolver.compile import solve  # noqa: E402


def test_sweeps_quick(tmp_path):
    p = run("bench", "sweeps", "--quick", "--out", str(tmp_path), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "sweeps_quick.json").read_text())
    md = (tmp_path / "sweeps_quick.md").read_text()
    assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"
    assert doc["machine"]["cores"] and doc["config"]["time_limit"] == QUICK.time_limit
    assert doc["run"]["failed"] == 0 and f"; {len(doc['rows'])} cells, 0 failed;" in md  # the runner's footer
    rows = doc["rows"]
    assert len(rows) == len(QUICK.seeds) * (len(QUICK.head_rows) + len(QUICK.trained_rows) + len(QUICK.wide_rows))
    for r in rows:
        for key in ("mip", "benders"):
            assert r[key]["status"] == "OPTIMAL" and r[key]["verified"], (key, r)
        assert r["mip"]["objective"] == r["benders"]["objective"]
        assert r["benders"]["objective"] >= r["current"]
        pre = r["presolve"]
        assert pre["out"] + pre["in"] + pre["free"] == r["points"]
        assert r["benders"]["objective"] <= r["points"] - pre["out"]
        assert f"| {r['instance']} | {r['seed']} | {r['points']} |" in md
    # the head rows, rebuilt from their seeds: optimum by the plain MIP through the public solve
    case = head_case(0, image=QUICK.image)
    for r in rows:
        if r["instance"].startswith("mnist-head"):
            inst = mnist_head_sweep(0, r["radius"], points=r["points"], mode=QUICK.mode, case=case)
            assert inst.num_vars == r["variables"]
            res = solve(inst, time_limit=60)
            assert res.status == "OPTIMAL" and res.objective == pytest.approx(r["benders"]["objective"])
    # the digits row: a real short training run, rebuilt; Gurobi (when licensed) agreed in the bench
    digits = [r for r in rows if r["instance"] == "digits-mlp"][0]
    inst = trained_sweep("mlp", 0, digits["radius"], mode=QUICK.mode, epochs=QUICK.epochs)
    res = solve(inst, time_limit=60)
    assert res.objective == pytest.approx(digits["mip"]["objective"])
    # the wide-head row (100 classes here): rebuilt, and its optimum by the plain MIP
    wide = [r for r in rows if r["instance"].startswith("wide-head")][0]
    inst = wide_head_sweep(0, wide["radius"], classes=QUICK.wide_rows[0][0], mode=QUICK.mode)
    assert inst.num_vars == wide["variables"] and inst.meta["classes"] == 100
    res = solve(inst, time_limit=60)
    assert res.status == "OPTIMAL" and res.objective == pytest.approx(wide["benders"]["objective"])
    assert wide["current"] < wide["benders"]["objective"] < wide["points"]  # some points fixable, not all
    g = digits.get("gurobi_mip")
    if g and g["status"] == "OPTIMAL":
        assert np.isclose(g["objective"], digits["benders"]["objective"])


def test_sweeps_bad_option(tmp_path):
    assert_user_error(run("bench", "sweeps", "--quick", "--mode", "fancy", "--out", str(tmp_path), cwd=tmp_path),
                      "mode", "fancy")
