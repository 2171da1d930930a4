"""compile.memory: HiGHS's peak memory estimated from an instance's sizes, checked against the
fit's formula, against a child process's measured peak (VmHWM, as the fit was made), and as
`gdsolver inspect` prints it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gdsolver.compile.memory import FEATURES, HIGHS_FIT, estimate_peak_mb, instance_sizes
from gdsolver.formulate import Dense, sweep_instance
from gdsolver.ir import save

from clirun import run

REPO = Path(__file__).resolve().parent.parent


def instance(T: int, radius: float = 0.3):
    rng = np.random.default_rng(0)
    layers = [Dense(rng.normal(size=(20, 30)) / 5, rng.normal(size=20) * 0.1, "relu"),
              Dense(rng.normal(size=(4, 20)) / 4, np.zeros(4), "identity")]
    return sweep_instance(layers, 0, rng.normal(size=(T, 30)), rng.integers(0, 4, T), task="classification",
                          radius=radius, mode="ce")


def test_the_estimate_is_the_fit_on_the_instances_sizes():
    inst = instance(20)
    s = instance_sizes(inst)
    assert s == {"cols": inst.num_vars, "rows": inst.num_rows + inst.num_indicators,
                 "nnz": inst.A.nnz + inst.ind_A.nnz, "binaries": int(inst.num_integer)}
    got = estimate_peak_mb(inst)
    want = HIGHS_FIT["intercept_mb"] + sum(HIGHS_FIT["mb_per"][f] * s[f] for f in FEATURES)
    assert got["solve_mb"] == pytest.approx(want) and got["instance_mb"] > 0
    assert estimate_peak_mb(instance(80))["solve_mb"] > got["solve_mb"]  # more points, more memory
    assert estimate_peak_mb(inst, "gurobi") is None  # only HiGHS is measured


@pytest.mark.slow  # a child process solving for up to 5 s
def test_the_estimate_is_within_the_fits_worst_error_of_a_measured_child(tmp_path):
    path = save(instance(200, radius=0.05), tmp_path / "m.gdsm")
    got = subprocess.run([sys.executable, str(REPO / "benchmarks/scripts/memory_fit.py"), "--child", str(path),
                          "--time-limit", "5"], capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr
    measured = json.loads(got.stdout.strip().splitlines()[-1])["solve_mb"]
    est = estimate_peak_mb(instance(200, radius=0.05))["solve_mb"]
    assert abs(est - measured) <= HIGHS_FIT["loo_rel_err_max"] * measured, (est, measured)


def test_inspect_prints_the_estimate(tmp_path):
    save(instance(20), tmp_path / "i.gdsm")
    p = run("inspect", "i.gdsm", "--no-presolve", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    line = next(ln for ln in p.stdout.splitlines() if "peak memory (estimate)" in ln)
    assert "HiGHS ~" in line and "MB solving" in line
    p = run("inspect", "i.gdsm", "--no-presolve", "--json", cwd=tmp_path)
    assert json.loads(p.stdout)["memory"]["backend"] == "highs"
