"""Faults while writing (issue 13, parts 2, 3, 6): a result written as one unit survives an error
or a kill between any two file operations; disk-full errors name the real destination; a dump
directory is locked per run and replay tells a mix of runs, stale files and killed runs apart."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import gdsolver.atomic
from gdsolver.compile.replay import check_run
from gdsolver.pipeline import replay
from gdsolver.compile.result import SolveResult, load_result, save_result
from gdsolver.errors import FormatError, GdsolverError
from gdsolver.train import GDSolver
from gdsolver.train.dump import DumpRun, dump_run, write_sweep

# ---------------------------------------------------------------------------------
# fault injection: every file operation of save_result can fail or be the last one
# ---------------------------------------------------------------------------------


class _Faults:
    """Counts the file operations save_result performs (temp file creation, writes, flushes,
    fsyncs, chmods, renames, unlinks) and fails at the k-th: raise OSError (an I/O error) or
    os._exit (a kill -9 just before that operation)."""

    def __init__(self, k: int | None, kill: bool = False):
        self.k, self.kill, self.n = k, kill, 0

    def hit(self, what: str) -> None:
        self.n += 1
        if self.k is not None and self.n - 1 == self.k:
            if self.kill:
                os._exit(9)
            raise OSError(errno.ENOSPC, f"injected fault at {what}")

    def install(self, mp: pytest.MonkeyPatch) -> None:
        faults = self

        def wrap(mod, name):
            real = getattr(mod, name)

            def f(*a, **kw):
                faults.hit(name)
                return real(*a, **kw)
            mp.setattr(mod, name, f)

        for name in ("replace", "rename", "unlink", "fsync", "chmod"):
            wrap(os, name)
        wrap(tempfile, "mkstemp")
        real_open = open

        class _File:
            def __init__(self, fh):
                self._fh = fh

            def write(self, data):
                faults.hit("write")
                return self._fh.write(data)

            def flush(self):
                faults.hit("flush")
                return self._fh.flush()

            def __getattr__(self, name):
                return getattr(self._fh, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return self._fh.__exit__(*exc)

        mp.setattr(gdsolver.atomic, "open", lambda *a, **kw: _File(real_open(*a, **kw)), raising=False)


def _results():
    x1 = np.linspace(0, 1, 50)
    old = SolveResult("OPTIMAL", x=x1, objective=1.0, backend="highs", message="old")
    new = SolveResult("FEASIBLE", x=x1[::-1] * 3, objective=2.0, backend="gurobi", message="new")
    none = SolveResult("INFEASIBLE", backend="highs", message="no x")
    return {"x->x": (old, new), "x->none": (old, none), "none->x": (none, new), "nothing->x": (None, new)}


def _same(a: SolveResult, b: SolveResult) -> bool:
    if (a.x is None) != (b.x is None) or (a.x is not None and a.x.tobytes() != b.x.tobytes()):
        return False
    return (a.status, a.objective, a.message) == (b.status, b.objective, b.message)


def _ops_of(tmp_path: Path, old, new, monkeypatch) -> int:
    path = tmp_path / "count" / "r.json"
    path.parent.mkdir()
    if old is not None:
        save_result(old, path)
    counter = _Faults(None)
    with monkeypatch.context() as mp:
        counter.install(mp)
        save_result(new, path)
    return counter.n


def _outcome(path: Path, old, new) -> str:
    """'old' or 'new' if that result loads whole; anything else fails the test."""
    try:
        got = load_result(path)
    except FormatError as exc:
        assert old is None and "not found" in str(exc), f"neither result loads: {exc}"
        return "old"
    if _same(got, new):
        return "new"
    assert old is not None and _same(got, old), f"a mix: {got}"
    return "old"


@pytest.mark.parametrize("case", sorted(_results()))
def test_error_at_every_file_operation_leaves_old_or_new(tmp_path, monkeypatch, case):
    old, new = _results()[case]
    n = _ops_of(tmp_path, old, new, monkeypatch)
    assert n >= 6
    seen = set()
    for k in range(n + 1):
        d = tmp_path / f"k{k}"
        d.mkdir()
        path = d / "r.json"
        if old is not None:
            save_result(old, path)
        with monkeypatch.context() as mp:
            _Faults(k).install(mp)
            with contextlib.suppress(OSError, GdsolverError):
                save_result(new, path)
        seen.add(_outcome(path, old, new))
        assert not list(d.glob(".*.tmp")), "an error leaves no temporary file"
    assert seen == {"old", "new"}


@pytest.mark.parametrize("case", ["x->x", "x->none", "nothing->x"])
def test_kill_before_every_file_operation_leaves_old_or_new(tmp_path, monkeypatch, case):
    """A forked writer killed (os._exit) just before its k-th file operation, for every k."""
    old, new = _results()[case]
    n = _ops_of(tmp_path, old, new, monkeypatch)
    seen = set()
    for k in range(n + 1):
        d = tmp_path / f"k{k}"
        d.mkdir()
        path = d / "r.json"
        if old is not None:
            save_result(old, path)
        pid = os.fork()
        if pid == 0:  # the child writes and is killed at operation k (or finishes)
            try:
                with pytest.MonkeyPatch.context() as mp:
                    _Faults(k, kill=True).install(mp)
                    save_result(new, path)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) in (0, 9)
        seen.add(_outcome(path, old, new))
    assert seen == {"old", "new"}


def test_disk_full_names_the_destination_and_keeps_the_old_result(tmp_path):
    """A file-size limit (RLIMIT_FSIZE, what a full disk looks like to a writer) mid-write."""
    script = textwrap.dedent(f"""
        import resource, signal, sys
        import numpy as np
        from gdsolver.compile.result import SolveResult, save_result
        from gdsolver.errors import GdsolverError
        path = {str(tmp_path / "r.json")!r}
        save_result(SolveResult("OPTIMAL", x=np.zeros(10), objective=0.0, message="old"), path)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            save_result(SolveResult("OPTIMAL", x=np.ones(5000), objective=1.0), path)
        except GdsolverError as exc:
            print(exc)
            sys.exit(3)
    """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == 3, p.stderr
    msg = p.stdout.strip()
    assert "r.x-" in msg and ".npy: cannot write (File too large)" in msg and ".tmp" not in msg, msg
    assert load_result(tmp_path / "r.json").message == "old"
    assert not list(tmp_path.glob(".*.tmp"))


# ---------------------------------------------------------------------------------
# dump directories: one run at a time, files tied to run.json
# ---------------------------------------------------------------------------------


def _data():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(60, 3)).astype(np.float32)
    Y = np.stack([2 * X[:, 0] + 1, X[:, 1] - X[:, 2]], 1).astype(np.float32)
    return (X, Y), (X[:20], Y[:20])


def _train(dump: Path, seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    return GDSolver(model, "regression", lr=1e-3, epochs=1, max_sweeps=1, radius=0.1, solver_points=None,
                    closest=False, dump_dir=dump, seed=seed).fit(*_data())


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    _train(root / "a", 0)
    _train(root / "b", 1)
    return root


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_a_finished_run_replays_and_records_its_files(two_runs, tmp_path):
    d = _copy(two_runs / "a", tmp_path / "a")
    doc = json.loads((d / "run.json").read_text())
    assert doc["state"] == "complete" and len(doc["run_id"]) == 32
    assert "0001.gdsm" in doc["sweep_files"] and "0001.result.json" in doc["sweep_files"]
    from gdsolver.ir import load

    assert load(d / "sweeps" / "0001.gdsm").meta["run"]["id"] == doc["run_id"]
    assert load_result(d / "sweeps" / "0001.result.json").run_id == doc["run_id"]
    assert all(r.ok for r in replay(d))
    assert (d / ".gdsolver-run.lock").read_bytes() == b""  # released


@pytest.mark.parametrize("defect", ["other run's run.json", "stale extra sweep", "missing sweep", "edited sweep",
                                    "other run's sweep", "killed run", "failed run"])
def test_replay_refuses_a_directory_that_is_not_one_whole_run(two_runs, tmp_path, defect):
    d = _copy(two_runs / "a", tmp_path / "a")
    b = two_runs / "b"
    sweeps = d / "sweeps"
    if defect == "other run's run.json":
        shutil.copy(b / "run.json", d / "run.json")
    elif defect == "stale extra sweep":
        shutil.copy(sweeps / "0001.gdsm", sweeps / "0002.gdsm")
        shutil.copy(sweeps / "0001.result.json", sweeps / "0002.result.json")
    elif defect == "missing sweep":
        (sweeps / "0001.result.json").unlink()
    elif defect == "edited sweep":
        doc = json.loads((sweeps / "0001.result.json").read_text())
        doc["message"] += " (edited)"
        (sweeps / "0001.result.json").write_text(json.dumps(doc))
    elif defect == "other run's sweep":
        for f in (b / "sweeps").iterdir():
            shutil.copy(f, sweeps / f.name)
    elif defect in ("killed run", "failed run"):
        doc = json.loads((d / "run.json").read_text())
        doc["state"] = "running" if defect == "killed run" else "failed"
        (d / "run.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError) as info:
        list(replay(d))
    assert "\n" not in str(info.value)
    with pytest.raises(FormatError):
        list(replay(d / "sweeps"))  # the sweeps directory alone is checked against its run.json too


def test_a_run_killed_inside_an_old_dump_leaves_no_old_run_json(two_runs, tmp_path):
    """The issue's case: a new run killed half-way used to leave the old run.json beside new
    sweeps, and replay said 'all match'."""
    d = _copy(two_runs / "a", tmp_path / "a")
    old_id = json.loads((d / "run.json").read_text())["run_id"]
    pid = os.fork()
    if pid == 0:
        try:
            run = DumpRun(d)
            run.acquire()
            run.begin()
            inst = __import__("gdsolver").load(two_runs / "b" / "sweeps" / "0001.gdsm")
            write_sweep(d, 1, inst, None)
        finally:
            os._exit(9)  # killed: no release, no run.json
    os.waitpid(pid, 0)
    doc = json.loads((d / "run.json").read_text())
    assert doc["state"] == "running" and doc["run_id"] != old_id
    assert not (d / "model.onnx").exists() and not (d / "model.state_dict.pt").exists()
    with pytest.raises(FormatError, match="still running or was killed"):
        list(replay(d))
    # the next run takes the dead run's lock over and says so
    _train(d, 2)
    doc2 = json.loads((d / "run.json").read_text())
    assert doc2["state"] == "complete" and doc2["took_over"]["run_id"] == doc["run_id"]
    assert all(r.ok for r in replay(d))


def test_a_second_run_into_a_locked_directory_is_refused(tmp_path):
    """In this process (a second fit while the first writes) and from another process."""
    d = tmp_path / "dump"
    with dump_run(d) as run:
        with pytest.raises(GdsolverError, match=r"another training run is writing this dump directory \(pid "
                                                rf"{os.getpid()}") as info:
            _train(d)
        assert "\n" not in str(info.value)
        code = textwrap.dedent(f"""
            from gdsolver.train.dump import dump_run
            from gdsolver.errors import GdsolverError
            try:
                with dump_run({str(d)!r}):
                    pass
            except GdsolverError as exc:
                print(exc)
        """)
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert f"run {run.run_id[:12]}" in p.stdout, p.stdout + p.stderr
    _train(d)  # released: the next run proceeds
    assert json.loads((d / "run.json").read_text())["state"] == "complete"


def test_a_failed_run_says_so_and_releases_the_lock(tmp_path):
    d = tmp_path / "dump"
    with pytest.raises(RuntimeError):
        with dump_run(d):
            raise RuntimeError("boom")
    doc = json.loads((d / "run.json").read_text())
    assert doc["state"] == "failed" and "boom" in doc["error"]
    with pytest.raises(FormatError, match="failed"):
        check_run(d)
    with dump_run(d):
        pass


def test_dump_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(GdsolverError, match="not a directory"):
        _train(f)
    assert f.read_text() == "x"


def test_version_1_run_json_still_replays(two_runs, tmp_path):
    """Dumps written before runs had ids carry nothing to check against; they replay as before."""
    d = _copy(two_runs / "a", tmp_path / "a")
    doc = json.loads((d / "run.json").read_text())
    for k in ("run_id", "state", "sweep_files", "started", "took_over"):
        doc.pop(k)
    doc["format_version"] = 1
    (d / "run.json").write_text(json.dumps(doc))
    assert all(r.ok for r in replay(d))
