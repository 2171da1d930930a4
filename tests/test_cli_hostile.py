"""The CLI under hostile input (issue 13): every refusal is one `error:` line with exit code 2,
nothing hangs, outputs are checked before the work and may not be an input, a solver answer
that fails verification is reported as VERIFY FAILED with a non-zero exit. Commands run in
this process (the same entry point as the installed script) to keep the suite fast; a few
run as a subprocess to check the real script."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import gdsolver
import gdsolver.formulate
from clirun import Ran, assert_user_error, run, run_subprocess
from gdsolver.compile.result import SolveResult


@pytest.fixture
def cli():
    """cli(*args, cwd=...) -> clirun.Ran: the command in this process (clirun.run), with a 60 s
    alarm so that a hang fails the test instead of the suite."""
    def invoke(*args: str, cwd: Path) -> Ran:
        return run(*args, cwd=cwd, timeout=60)
    return invoke


@pytest.fixture
def files(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    H = rng.random((20, 4))
    np.savez(tmp_path / "reg.npz", W=rng.normal(size=(2, 4)), b=np.zeros(2), H=H, y=H @ rng.normal(size=(4, 2)))
    inst = gdsolver.formulate.regression(*(np.load(tmp_path / "reg.npz")[k] for k in ("W", "b", "H", "y")),
                                         radius=0.1)
    gdsolver.save(inst, tmp_path / "reg.gdsm")
    X = rng.random((40, 3))
    np.savez(tmp_path / "data.npz", X=X, y=X @ rng.random(3))
    os.mkfifo(tmp_path / "fifo.gdsm")
    (tmp_path / "adir.gdsm").mkdir()
    (tmp_path / "loop.gdsm").symlink_to(tmp_path / "loop.gdsm")
    (tmp_path / "zero.gdsm").symlink_to("/dev/zero")
    return tmp_path


USAGE = [
    (("solve",), "Missing argument"),
    (("solve", "reg.gdsm", "--bogus"), "No such option: --bogus"),
    (("nosuchcommand",), "No such command"),
    (("solve", "reg.gdsm", "--time-limit", "abc"), "--time-limit"),
    (("compile", "reg.npz", "-o", "x.gdsm", "--task", "sideways"), "--task"),
    (("inspect", "reg.gdsm", "extra"), "unexpected extra argument"),
    (("train", "--epochs", "many"), "--epochs"),
    (("bench", "compile", "--bogus"), "No such option"),
]


@pytest.mark.parametrize("args,needle", USAGE)
def test_usage_errors_are_one_line(cli, files, args, needle):
    """Typer printed a multi-line box for these."""
    p = cli(*args, cwd=files)
    assert_user_error(p, needle)
    assert "--help" in p.stderr


def test_usage_error_from_the_installed_script(files):
    assert_user_error(run_subprocess("solve", cwd=files), "Missing argument 'instance'")
    p = run_subprocess(cwd=files)
    assert p.returncode == 2 and "Usage" in p.stdout  # no arguments: the help, as before


PATHS = {
    "/dev/zero": "/dev/zero", "fifo": "fifo.gdsm", "directory": "adir.gdsm", "symlink loop": "loop.gdsm",
    "symlink to /dev/zero": "zero.gdsm", "missing": "nothing.gdsm",
}


@pytest.mark.parametrize("kind", sorted(PATHS))
@pytest.mark.parametrize("command", ["inspect", "solve", "export", "replay"])
def test_instance_paths_that_are_not_regular_files(cli, files, kind, command):
    """`inspect /dev/zero` (and a FIFO) hung; every command now refuses in one line."""
    args = [command, PATHS[kind]] + (["-o", "out.mps"] if command == "export" else [])
    p = cli(*args, cwd=files)
    assert_user_error(p)
    assert not (files / "out.mps").exists()


def _solved(cli, files) -> Path:
    assert cli("solve", "reg.gdsm", cwd=files).returncode == 0
    return files / "reg.result.json"


@pytest.mark.parametrize("value", ["/dev/zero", "fifo.gdsm", "adir.gdsm", 5, ["x"], "loop.gdsm"])
def test_result_naming_a_hostile_instance_file(cli, files, value):
    """apply/replay follow a result's instance_file: /dev/zero hung; an int was a traceback."""
    res = _solved(cli, files)
    doc = json.loads(res.read_text())
    doc["instance_file"] = value
    res.write_text(json.dumps(doc))
    (files / "model.onnx").write_bytes(b"not a model")
    p = cli("apply", "model.onnx", "reg.result.json", "-o", "out.onnx", cwd=files)
    assert_user_error(p)
    assert not (files / "out.onnx").exists()


@pytest.mark.parametrize("field,value", [("x_file", 7), ("x_file", "../reg.gdsm"), ("x_file", "/dev/zero"),
                                         ("objective", "1.5"), ("nodes", "many"), ("options", [])])
def test_result_fields_of_the_wrong_type(cli, files, field, value):
    res = _solved(cli, files)
    doc = json.loads(res.read_text())
    doc[field] = value
    res.write_text(json.dumps(doc))
    (files / "model.onnx").write_bytes(b"x")
    assert_user_error(cli("apply", "model.onnx", "reg.result.json", "-o", "out.onnx", cwd=files), field)


@pytest.mark.parametrize("args,needle", [
    (("solve", "reg.gdsm", "-o", "reg.gdsm"), "--output must be a .json"),
    (("compile", "reg.npz", "-o", "reg.npz", "--task", "regression"), "must be a .gdsm"),
    (("export", "reg.gdsm", "-o", "reg.gdsm"), "is also an input"),
    (("apply", "m.onnx", "reg.result.json", "-o", "m.onnx"), "is also an input"),
    (("apply", "m.onnx", "reg.result.json", "-o", "reg.result.json"), "must end with .onnx"),
    (("solve", "reg.gdsm", "-o", "nodir/r.json"), "does not exist"),
    (("solve", "reg.gdsm", "-o", "adir.gdsm"), "--output must be a .json"),
])
def test_outputs_checked_before_work_and_never_an_input(cli, files, args, needle):
    _solved(cli, files)
    (files / "m.onnx").write_bytes(b"model bytes")
    before = {f.name: f.read_bytes() for f in files.iterdir() if f.is_file() and not f.is_symlink()
              and f.name != "fifo.gdsm"}
    assert_user_error(cli(*args, cwd=files), needle)
    after = {f.name: f.read_bytes() for f in files.iterdir() if f.is_file() and not f.is_symlink()
             and f.name != "fifo.gdsm"}
    assert after == before  # nothing written, nothing overwritten


TRAIN = [
    (("--data", "x0d.npz", "--task", "regression"), "array 'X' has shape ()"),
    (("--data", "emptytest.npz", "--task", "regression", "-m", "sgd"), "'X_test' has 0 rows"),
    (("--dataset", ""), "--dataset: empty name"),
    (("--data", "data.npz", "--task", "regression", "-m", "sgd", "--epochs", "1", "--lr", "1e300"),
     "training diverged"),
    (("--data", "data.npz", "--task", "regression", "-m", "sgd", "--csv", "data.npz"), "is also an input"),
    (("--data", "data.npz", "--task", "regression", "-m", "sgd", "--json", "./data.npz"), "is also an input"),
    (("--data", "data.npz", "--task", "regression", "-m", "sgd", "--csv", "nodir/a.csv"), "does not exist"),
    (("--data", "data.npz", "--task", "regression", "-m", "sgd", "--dump", "data.npz"), "must be a directory"),
    (("--data", "/dev/zero", "--task", "regression"), "character device"),
    (("--data", "reg.gdsm", "--task", "regression"), "missing array(s) ['X', 'y']"),
    (("--data", "reg.result.json", "--task", "regression"), "not an .npz archive"),
]


@pytest.mark.parametrize("args,needle", TRAIN)
def test_train_refusals(cli, files, args, needle):
    rng = np.random.default_rng(0)
    np.savez(files / "x0d.npz", X=np.array(3.0), y=np.array([1.0]))
    X = rng.random((30, 3))
    np.savez(files / "emptytest.npz", X=X, y=X.sum(1), X_test=np.zeros((0, 3)), y_test=np.zeros(0))
    (files / "reg.result.json").write_text("{}")
    data = (files / "data.npz").read_bytes()
    assert_user_error(cli("train", *args, cwd=files), needle)
    assert (files / "data.npz").read_bytes() == data


def test_verify_failure_is_reported_and_exits_nonzero(cli, files, monkeypatch):
    """A backend answer that does not satisfy the instance is VERIFY FAILED, status ERROR, exit 1."""
    from gdsolver.compile.highs import HighsBackend

    real = HighsBackend.solve

    def wrong(self, inst, *args, **kw):
        res = real(self, inst, *args, **kw)
        res.x = res.x.copy()
        res.x[0] += 1.0  # w[0, 0] outside its box
        return res
    monkeypatch.setattr(HighsBackend, "solve", wrong)
    p = cli("solve", "reg.gdsm", cwd=files)
    assert p.returncode == 1
    assert "VERIFY FAILED (highs said OPTIMAL)" in p.stdout
    res = gdsolver.load_result(files / "reg.result.json")
    assert res.status == "ERROR" and res.message.startswith("VERIFY FAILED")
    (files / "m.onnx").write_bytes(b"x")
    assert_user_error(cli("apply", "m.onnx", "reg.result.json", "-o", "o.onnx", cwd=files), "not applied")


def test_refused_instance_numbers_are_one_line(cli, files):
    rng = np.random.default_rng(0)
    W, H = rng.normal(size=(3, 4)), rng.uniform(0.1, 1, size=(10, 4)) * 1e12
    inst = gdsolver.formulate.classification(W, np.zeros(3), H, rng.integers(0, 3, 10), radius=0.05,
                                             activation="relu")
    gdsolver.save(inst, files / "huge.gdsm")
    assert_user_error(cli("solve", "huge.gdsm", cwd=files), "coefficients of", "a span of")
    assert not (files / "huge.result.json").exists()


def test_gdsm_bomb_inspect_is_refused(cli, files):
    from test_hostile_files import _bomb

    _bomb((files / "reg.gdsm").read_bytes(), files / "bomb.gdsm", "lb.npy", (4_000_000,))
    assert_user_error(cli("inspect", "bomb.gdsm", cwd=files), "stored as 32000128 bytes")


@pytest.mark.parametrize("meta", ['"c0": 1e999', '"c0": -Infinity', '"num_vars": 1e999'])
def test_inspect_meta_with_infinities(cli, files, meta):
    from test_gdsm import _rewrite

    key = meta.split(":")[0].strip('"')

    def edit(doc):
        return json.dumps(doc).replace(f'"{key}": {json.dumps(doc[key])}', meta, 1).encode()
    _rewrite((files / "reg.gdsm").read_bytes(), files / "m.gdsm", meta=edit)
    assert_user_error(cli("inspect", "m.gdsm", cwd=files), key)


def test_inspect_shows_user_meta_with_infinities(cli, files):
    from test_gdsm import _rewrite

    _rewrite((files / "reg.gdsm").read_bytes(), files / "u.gdsm",
             meta=lambda d: d["meta"].update(big=float("inf"), low=float("-inf")))
    for args in (("inspect", "u.gdsm"), ("inspect", "u.gdsm", "--json")):
        p = cli(*args, cwd=files)
        assert p.returncode == 0, p.stderr
        assert "Infinity" in p.stdout or "inf" in p.stdout


def test_forward_pass_mismatch_is_reported_like_a_verify_failure(cli, files, monkeypatch):
    """An answer that verifies but whose claim a float64 forward pass refutes (formulate.check_claims;
    rare once check_numerics has refused margins below resolution) is VERIFY FAILED too."""
    import gdsolver.formulate
    from gdsolver.formulate.claims import ClaimReport

    monkeypatch.setattr(gdsolver.formulate, "check_claims",
                        lambda inst, x: ClaimReport(False, 3.0, 1.0, "2 point(s) counted correct are not correct"))
    p = cli("solve", "reg.gdsm", "--no-closest", cwd=files)
    assert p.returncode == 1 and "VERIFY FAILED (highs said OPTIMAL)" in p.stdout
    res = gdsolver.load_result(files / "reg.result.json")
    assert res.status == "ERROR" and "forward-pass" in res.message


# ---------------------------------------------------------------------------------
# issue 28: usage checks up front, the terminal, library noise
# ---------------------------------------------------------------------------------


def _count_instance(files: Path) -> Path:
    """A classification count head (search auto would choose Benders for it)."""
    rng = np.random.default_rng(4)
    W, H = rng.normal(size=(3, 4)), rng.normal(size=(40, 4))
    inst = gdsolver.formulate.classification(W, np.zeros(3), H, rng.integers(0, 3, 40), radius=0.5, mode="compact")
    return gdsolver.save(inst, files / "cls.gdsm")


@pytest.mark.parametrize("args,needle", [
    (("--search", "auto", "--option", "presolve=off"), "search auto would solve this instance with Benders"),
    (("--search", "benders", "--option", "presolve=off"), "search 'benders'"),
    (("--search", "auto", "--option", "no_such_option=1"), "HiGHS option 'no_such_option'"),
    (("--backend", "auto", "--option", "presolve=off"), "with --backend auto pass none"),
])
def test_solve_options_checked_against_backend_and_search(cli, files, args, needle):
    """search auto picked Benders and silently dropped --option KEY=VALUE; unknown keys were accepted."""
    _count_instance(files)
    assert_user_error(cli("solve", "cls.gdsm", *args, cwd=files), needle)
    assert not (files / "cls.result.json").exists()


def test_solve_options_used_when_the_search_takes_them(cli, files):
    _count_instance(files)
    p = cli("solve", "cls.gdsm", "--search", "mip", "--option", "presolve=off", cwd=files)
    assert p.returncode == 0, p.stderr
    assert gdsolver.load_result(files / "cls.result.json").options["presolve"] == "off"
    p = cli("solve", "reg.gdsm", "--option", "presolve=off", cwd=files)  # an LP: auto solves it with the backend
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("args,needle", [
    (("--threads", "1000000"), "--threads: 1000000 is out of range"),
    (("--mode", "l1"), "--mode 'l1': not a classification head"),
    (("--mode", "compact", "--task", "regression"), "--mode 'compact': not a regression head"),
    (("--time-limit", "nan"), "--time-limit"),
    (("--radius", "inf"), "--radius"),
])
def test_train_usage_checked_before_training(cli, files, args, needle):
    """--threads 1000000 crashed train (libgomp); --mode l1 on classification trained with every
    sweep SKIPPED."""
    rng = np.random.default_rng(0)
    X = rng.random((40, 3))
    np.savez(files / "cls.npz", X=X, y=(X[:, 0] > 0.5).astype(np.int64))
    p = cli("train", "--data", "cls.npz", "-m", "gdsolver", "--epochs", "1", *args, cwd=files)
    assert_user_error(p, needle)
    assert "epoch" not in p.stdout


def test_api_threads_bounded():
    from gdsolver.compile.base import max_threads
    from gdsolver.train import GDSolver
    import torch

    with pytest.raises(ValueError, match=f"from 1 to {max_threads()}"):
        GDSolver(torch.nn.Linear(3, 2), "classification", threads=10**6)


@pytest.mark.parametrize("redirect", ["closed", "/dev/full"])
def test_closed_or_full_stdout_is_one_line(files, redirect):
    """`gdsolver solve x.gdsm >&-` was an AttributeError traceback; `apply ... > /dev/full` wrote
    the model and then failed. Both are refused before any work, in one line."""
    import subprocess
    import sys

    if redirect == "/dev/full" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    out = subprocess.DEVNULL if redirect == "closed" else open("/dev/full", "w")  # noqa: SIM115
    try:
        cmd = [sys.executable, "-c", "import os, sys\n"
               + ("os.close(1)\n" if redirect == "closed" else "")
               + "from gdsolver.cli.main import app\napp(sys.argv[1:])", "solve", "reg.gdsm"]
        p = subprocess.run(cmd, cwd=files, stdout=out, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        if redirect != "closed":
            out.close()
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: standard output is"), p.stderr
    assert not (files / "reg.result.json").exists()  # refused before the solve


def test_library_warnings_hidden_unless_verbose(cli, files, monkeypatch):
    """numpy RuntimeWarnings leaked before error lines; -v shows them."""
    import warnings

    import gdsolver.ir.numerics as numerics

    real = numerics.check_numerics

    def noisy(inst, *a, **k):
        warnings.warn("overflow encountered in multiply", RuntimeWarning)
        return real(inst, *a, **k)
    monkeypatch.setattr(numerics, "check_numerics", noisy)
    p = cli("inspect", "reg.gdsm", cwd=files)
    assert p.returncode == 0 and "RuntimeWarning" not in p.stderr and "overflow" not in p.stderr, p.stderr
    with warnings.catch_warnings(record=True) as seen:
        p = cli("-v", "inspect", "reg.gdsm", cwd=files)
    assert p.returncode == 0
    assert any("overflow encountered" in str(w.message) for w in seen) or "overflow" in p.stderr


def test_onnxruntime_native_log_lines_hidden_unless_verbose(files):
    """onnxruntime printed its own "[E:onnxruntime:...]" line (on the C stderr) before gdsolver's
    error; now the error is one line, and -v shows the native log too."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(3, 4)).astype(np.float32), "W"),
             numpy_helper.from_array(np.zeros(3, np.float32), "b"),
             numpy_helper.from_array(np.array([7, -1], np.int64), "bad"),
             numpy_helper.from_array(np.array([-1, 4], np.int64), "shp")]
    nodes = [helper.make_node("Reshape", ["x", "bad"], ["x2"], name="oops"),  # fails at run time for 20 rows
             helper.make_node("Reshape", ["x2", "shp"], ["x3"], name="back"),
             helper.make_node("Gemm", ["x3", "W", "b"], ["y"], name="fc", transB=1)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(files / "rs.onnx"))
    np.savez(files / "rsd.npz", X=rng.normal(size=(20, 4)).astype(np.float32), y=rng.integers(0, 3, 20))
    args = ("evaluate", "rs.onnx", "--task", "classification", "--data", "rsd.npz")
    assert_user_error(run(*args, cwd=files), "onnxruntime failed", "'oops'")
    loud = run("-v", *args, cwd=files)
    assert loud.returncode == 2 and "[E:onnxruntime" in loud.stderr


def test_read_only_output_directory_is_found_before_the_work(cli, files, monkeypatch):
    """A read-only output directory was found only after the solve (issue 28). (Root ignores
    permission bits, so the test makes os.access say what a read-only file system says.)"""
    (files / "ro").mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p).name == "ro" else real(p, mode, **kw))
    for args in (("solve", "reg.gdsm", "-o", "ro/r.json"), ("export", "reg.gdsm", "-o", "ro/x.mps")):
        assert_user_error(cli(*args, cwd=files), "ro", "is not writable")
    assert not list((files / "ro").iterdir()) and not (files / "reg.result.json").exists()
