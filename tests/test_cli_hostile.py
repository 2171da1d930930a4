"""The CLI under hostile input (issue 13): every refusal is one `error:` line with exit code 2,
nothing hangs, outputs are checked before the work and may not be an input, a solver answer
that fails verification is reported as VERIFY FAILED with a non-zero exit. Commands run in
this process (the same entry point as the installed script) to keep the suite fast; a few
run as a subprocess to check the real script."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

import gdsolver
import gdsolver.formulate
from clirun import assert_user_error, run
from gdsolver.cli.main import app
from gdsolver.compile.result import SolveResult


class Ran:
    def __init__(self, code, out, err):
        self.returncode, self.stdout, self.stderr = code, out, err


@pytest.fixture
def cli(capsys, monkeypatch):
    """cli(*args, cwd=...) -> Ran, with a 60 s alarm: a hang fails the test instead of the suite."""
    def invoke(*args: str, cwd: Path) -> Ran:
        monkeypatch.chdir(cwd)
        capsys.readouterr()

        def timeout(*_):
            raise TimeoutError(f"gdsolver {' '.join(args)} hung")
        old = signal.signal(signal.SIGALRM, timeout)
        signal.alarm(60)
        try:
            app(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)
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
    assert_user_error(run("solve", cwd=files), "Missing argument 'instance'")
    p = run(cwd=files)
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
