"""The CLI end to end, as a user runs it, including bad-input exit codes. Commands run in this
process (clirun.run); --version also through the installed script (test_cli_models runs a
compile -> solve -> apply chain through it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import gdsolver
from clirun import assert_user_error, run, run_subprocess
from gdsolver.formulate import correct_mask, forward


@pytest.fixture
def layer_files(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    H = rng.random((60, 5))
    W = rng.normal(size=(2, 5))
    np.savez(tmp_path / "reg.npz", W=W, b=np.zeros(2), H=H, y=H @ rng.normal(size=(5, 2)))
    Wc = rng.normal(size=(3, 5))
    np.savez(tmp_path / "cls.npz", W=Wc, b=np.zeros(3), H=H[:12], y=rng.integers(0, 3, 12))
    return tmp_path


def test_help_lists_every_command(tmp_path: Path) -> None:
    p = run("--help", cwd=tmp_path)
    assert p.returncode == 0
    for cmd in ("compile", "solve", "inspect", "export", "replay", "bench", "demo"):
        assert cmd in p.stdout


def test_version_from_the_installed_script(tmp_path: Path) -> None:
    p = run_subprocess("--version", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"gdsolver {gdsolver.__version__}\n" and p.stderr == ""
    assert run("--version", cwd=tmp_path).stdout == p.stdout


def test_regression_end_to_end(layer_files: Path) -> None:
    d = layer_files
    p = run("compile", "reg.npz", "-o", "reg.gdsm", "--task", "regression", "--radius", "0.1", "--mode", "l1", cwd=d)
    assert p.returncode == 0, p.stderr
    p = run("inspect", "reg.gdsm", "--json", cwd=d)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["variables"] == 2 * 5 + 2 + 60 * 2
    assert summary["meta"]["formulation"] == "regression"
    p = run("solve", "reg.gdsm", cwd=d)
    assert p.returncode == 0, p.stderr
    assert "OPTIMAL" in p.stdout
    res = gdsolver.load_result(d / "reg.result.json")
    inst = gdsolver.load(d / "reg.gdsm")
    assert gdsolver.verify(inst, res.x).ok
    # independent check: the solver's objective is the L1 of the unpacked weights, and no worse than before
    arr = np.load(d / "reg.npz")
    new = inst.unpack(res.x)
    l1 = np.abs(forward(new["w"], new["b"], arr["H"], "identity") - arr["y"]).sum()
    assert l1 == pytest.approx(res.objective, rel=1e-7, abs=1e-7)
    assert l1 <= inst.meta["current_l1"] + 1e-9
    # export, and re-solve the MPS with HiGHS directly
    p = run("export", "reg.gdsm", "-o", "reg.mps", cwd=d)
    assert p.returncode == 0, p.stderr
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.readModel(str(d / "reg.mps"))
    h.run()
    assert h.getInfo().objective_function_value == pytest.approx(res.objective, rel=1e-7)
    p = run("replay", "reg.gdsm", cwd=d)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "all 1 replays match" in p.stdout


def test_classification_solve_and_replay_directory(layer_files: Path) -> None:
    d = layer_files
    sweeps = d / "sweeps"
    sweeps.mkdir()
    for mode in ("paper", "compact"):
        p = run("compile", "cls.npz", "-o", f"sweeps/{mode}.gdsm", "--task", "classification", "--radius", "0.5",
                "--mode", mode, cwd=d)
        assert p.returncode == 0, p.stderr
        p = run("solve", f"sweeps/{mode}.gdsm", cwd=d)
        assert p.returncode == 0, p.stderr
    arr = np.load(d / "cls.npz")
    objs = []
    for mode in ("paper", "compact"):
        inst = gdsolver.load(sweeps / f"{mode}.gdsm")
        res = gdsolver.load_result(sweeps / f"{mode}.result.json")
        new = inst.unpack(res.x)
        o = forward(new["w"], new["b"], arr["H"], "identity")
        assert correct_mask(o, arr["y"], 1e-3 - 1e-6).sum() == round(res.objective)
        objs.append(res.objective)
    assert objs[0] == pytest.approx(objs[1])
    p = run("replay", "sweeps", cwd=d)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "all 2 replays match" in p.stdout


def test_replay_exits_1_on_a_different_objective(layer_files: Path) -> None:
    d = layer_files
    assert run("compile", "reg.npz", "-o", "r.gdsm", "--task", "regression", cwd=d).returncode == 0
    assert run("solve", "r.gdsm", cwd=d).returncode == 0
    doc = json.loads((d / "r.result.json").read_text())
    doc["objective"] = doc["objective"] * 1.01 + 1.0
    (d / "r.result.json").write_text(json.dumps(doc))
    p = run("replay", "r.gdsm", cwd=d)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "differ" in p.stdout


def test_bad_inputs_exit_2_with_one_line(layer_files: Path) -> None:
    d = layer_files
    assert run("compile", "reg.npz", "-o", "ok.gdsm", "--task", "regression", cwd=d).returncode == 0
    data = (d / "ok.gdsm").read_bytes()
    (d / "trunc.gdsm").write_bytes(data[: len(data) // 2])
    (d / "junk.gdsm").write_bytes(b"not a zip at all")
    rng = np.random.default_rng(0)
    np.savez(d / "nan.npz", W=np.ones((2, 5)), b=np.zeros(2), H=np.full((4, 5), np.nan), y=np.zeros((4, 2)))
    np.savez(d / "shape.npz", W=np.ones((2, 5)), b=np.zeros(3), H=rng.random((4, 5)), y=np.zeros((4, 2)))
    np.savez(d / "labels.npz", W=np.ones((3, 5)), b=np.zeros(3), H=rng.random((4, 5)), y=np.array([0, 1, 2, 7]))
    np.savez(d / "missing.npz", W=np.ones((2, 5)))
    np.save(d / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(d / "single.npy", rng.random((3, 3)))
    np.savez(d / "complex.npz", W=np.ones((2, 5)) + 1j, b=np.zeros(2), H=rng.random((4, 5)), y=np.zeros((4, 2)))
    np.savez(d / "dates.npz", W=np.zeros((2, 5), dtype="datetime64[D]"), b=np.zeros(2), H=rng.random((4, 5)),
             y=np.zeros((4, 2)))
    (d / "adir").mkdir()
    cases = [
        (("solve", "trunc.gdsm"), ("trunc.gdsm",)),
        (("solve", "junk.gdsm"), ("junk.gdsm",)),
        (("solve", "absent.gdsm"), ("absent.gdsm", "not found")),
        (("inspect", "trunc.gdsm"), ("trunc.gdsm",)),
        (("solve", "ok.gdsm", "--backend", "cplex"), ("backend", "cplex")),
        (("solve", "ok.gdsm", "--option", "no_such_option=1"), ("no_such_option",)),
        (("solve", "ok.gdsm", "--time-limit", "0"), ("time_limit",)),
        (("compile", "reg.npz", "-o", "x.gdsm", "--task", "regression", "--radius", "-1"), ("radius",)),
        (("compile", "nan.npz", "-o", "x.gdsm", "--task", "regression"), ("nan.npz", "NaN")),
        (("compile", "shape.npz", "-o", "x.gdsm", "--task", "regression"), ("shape.npz", "b")),
        (("compile", "labels.npz", "-o", "x.gdsm", "--task", "classification"), ("labels.npz", "label 7")),
        (("compile", "missing.npz", "-o", "x.gdsm", "--task", "regression"), ("missing.npz", "missing")),
        (("compile", "obj.npy", "-o", "x.gdsm", "--task", "regression"), ("obj.npy",)),
        (("compile", "reg.npz", "-o", "x.gdsm", "--task", "regression", "--mode", "compact"), ("mode",)),
        (("export", "ok.gdsm", "-o", "x.txt"), ("x.txt",)),
        (("compile", "single.npy", "-o", "x.gdsm", "--task", "regression"), ("single.npy", "single array")),
        (("compile", "complex.npz", "-o", "x.gdsm", "--task", "regression"), ("complex", "W")),
        (("compile", "dates.npz", "-o", "x.gdsm", "--task", "regression"), ("datetime", "W")),
        (("solve", "ok.gdsm", "-o", "adir"), ("adir", ".json")),
        (("solve", "ok.gdsm", "-o", "res.txt"), ("res.txt", ".json")),
        (("export", "ok.gdsm", "-o", "nodir/x.mps"), ("does not exist",)),
        (("export", "ok.gdsm", "-o", "adir/"), ("directory",)),
        (("compile", "reg.npz", "-o", "nodir/x.gdsm", "--task", "regression"), ("does not exist",)),
        (("solve", "ok.gdsm", "--backend", "gurobi", "--option", "TimeLimit=abc"), ("TimeLimit",)),
        (("replay", "ok.gdsm"), ("ok.gdsm", "result")),
    ]
    for args, needles in cases:
        assert_user_error(run(*args, cwd=d), *needles)
    assert not (d / "x.gdsm").exists()  # no partial output
    assert not list(d.glob(".*.tmp"))
    assert not (d / "adir.result.json").exists() and not (d / "res.txt.result.json").exists()


def test_written_files_get_normal_permissions(layer_files: Path) -> None:
    import os
    import stat

    d = layer_files
    assert run("compile", "reg.npz", "-o", "p.gdsm", "--task", "regression", cwd=d).returncode == 0
    assert run("solve", "p.gdsm", cwd=d).returncode == 0
    umask = os.umask(0)
    os.umask(umask)
    (x_file,) = d.glob("p.result.x-*.npy")
    for name in ("p.gdsm", "p.result.json", x_file.name):
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o666 & ~umask, name


def test_gurobi_licence_limit_is_a_clean_error(tmp_path: Path) -> None:
    pytest.importorskip("gurobipy")
    rng = np.random.default_rng(0)
    H = rng.random((1100, 4))
    np.savez(tmp_path / "big.npz", W=rng.normal(size=(2, 4)), b=np.zeros(2), H=H, y=rng.random((1100, 2)))
    assert run("compile", "big.npz", "-o", "big.gdsm", "--task", "regression", "--mode", "l1",
               cwd=tmp_path).returncode == 0
    p = run("solve", "big.gdsm", "--backend", "gurobi", cwd=tmp_path)
    if p.returncode == 0:
        pytest.skip("this machine has a Gurobi licence larger than the pip package's restricted one")
    assert_user_error(p, "2000", "2210 variables")
    p = run("solve", "big.gdsm", "--backend", "gurobi", "--fallback", "highs", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "solved with highs" in p.stdout


def test_demo_sweeps_only_runs(tmp_path: Path) -> None:
    p = run("demo", "--sweeps-only", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "OPTIMAL" in p.stdout and "yes" in p.stdout
    assert "NO" not in p.stdout


def test_demo_trains_compares_and_replays(tmp_path: Path) -> None:
    p = run("demo", "--quick", "--dump", str(tmp_path / "demo"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "polynomial (regression)" in p.stdout
    assert p.stdout.count("\ngdsolver ") == 1 and p.stdout.count("\nadam-lrs ") == 1
    assert "without the training code: all match" in p.stdout
    # what the table reports is what the run directories hold
    import json

    for case in ("polynomial",):
        doc = json.loads((tmp_path / "demo" / case / "gdsolver" / "run.json").read_text())
        assert doc["summary"]["sweeps"] == len(doc["history"]["rows"]) - doc["summary"]["epochs"] >= 1
        assert f"{doc['summary']['sweeps']} ({doc['summary']['sweeps_accepted']})" in p.stdout
        # the row is GDSolver on the Adam + step schedule it is compared with (it once ran SGD silently)
        assert (doc["config"]["optimizer"], doc["config"]["lr_schedule"]) == ("adam", "step")


def test_bench_compile_quick(tmp_path: Path) -> None:
    p = run("bench", "compile", "--quick", "--out", str(tmp_path / "res"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "res" / "compile-quick.json").read_text())
    assert doc["machine"]["cores"] >= 1
    sizes = [r for r in doc["rows"] if r["kind"] == "size"]
    assert [r["T"] for r in sizes] == [10, 50] and doc["run"]["failed"] == 0
    assert all(r["nnz"] == 2 * r["T"] * r["M"] * (r["N"] + 2) for r in sizes)
    assert all("speedup" in r for r in sizes)
    import importlib.util

    scip = importlib.util.find_spec("pyscipopt") is not None  # else the routes cell is skipped, with the reason
    assert [r["kind"] for r in doc["rows"]] == ["size", "size", *(["scip-routes"] if scip else []), "hidden", "hidden"]
    assert doc["run"]["skipped"] == ([] if scip else [{"kind": "scip-routes", "T": 50,
                                                       "reason": "pyscipopt is not installed"}])
    md = (tmp_path / "res" / "compile-quick.md").read_text()  # each kind of cell in its own table
    assert all(f"| {r['T']} | {r['nnz']} |" in md for r in sizes) and "Run: `" in md
    assert all(f"| {r['case']} | {r['nnz']} | {r['variables']} |" in md for r in doc["rows"] if r["kind"] == "hidden")


def test_bench_formulations_quick(tmp_path: Path) -> None:
    p = run("bench", "formulations", "--quick", "--out", str(tmp_path / "res"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "res" / "formulations-quick.json").read_text())
    for r in doc["rows"]:
        # same points, same optimum; compact has no s binaries
        assert r["paper"]["objective"] == r["compact"]["objective"]
        assert r["compact"]["binaries"] < r["paper"]["binaries"]
