"""Benchmark grids, replays and the executor on Ray: a local Ray (one per module, 2 CPUs) gives
the same rows as the serial run; a worker killed mid-grid is retried; a task that keeps
failing is reported with its error while the others complete; a two-node cluster started with
`ray start` runs a bench cell and a replay through --ray-address. All traffic stays on
loopback (checked with `ss`)."""

from __future__ import annotations

import csv
import importlib.util
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("ray") is None:  # not imported here: RayExecutor sets Ray's environment first
    pytest.skip("needs the ray extra: pip install -c constraints.txt '.[ray]'", allow_module_level=True)
pytest.importorskip("torch")
pytest.importorskip("sklearn")

from gdsolver.bench.data_efficiency_bench import DataEfficiencyConfig, run_data_efficiency_bench  # noqa: E402
from gdsolver.bench.regression_bench import RegressionConfig, cell_label, grid, run_regression_bench  # noqa: E402
from gdsolver.train.executor import Executor, LocalExecutor, RayExecutor, Task  # noqa: E402

TIMING = {"gd_time_s", "solver_time_s", "build_time_s", "solve_time_s", "time_s", "time_s_std", "cell_wall_s",
          "load_1min"}
REG = RegressionConfig(equations=("identity",), seeds=(0, 1), max_epochs=3, sweep_epochs=(1, 3),
                       methods=("sgd", "adam"))
RAY_ENV = {"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
LOCAL_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # a single-node Ray binds 127.0.0.1


# ------------------------------------------------------------------------------ helpers
def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            out.setdefault(ppid, []).append(int(d.name))
    return out


def _descendants(*roots: int) -> set[int]:
    kids, seen, todo = _children(), set(), list(roots)
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo += kids.get(p, [])
    return seen


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _host(addr: str) -> str:
    host = addr.rsplit(":", 1)[0].strip("[]")
    return host[7:] if host.startswith("::ffff:") else host


def _sockets(pids: set[int]) -> list[tuple[str, str, str]]:
    """(state, local host, peer host) of every TCP socket owned by one of `pids` (`ss -tanp`)."""
    out = subprocess.run(["ss", "-tanpH"], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        f = line.split()
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if len(f) >= 5 and owners & pids:
            rows.append((f[0], _host(f[3]), _host(f[4])))
    return rows


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SocketWatch:
    """Samples the TCP sockets of a process tree (`ss -tanp`) while a block runs."""

    def __init__(self, *roots: int, every: float = 0.2) -> None:
        self.roots, self.every, self.seen = roots, every, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.seen |= set(_sockets(_descendants(*self.roots)))
            self._stop.wait(self.every)

    def __enter__(self) -> "SocketWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.seen |= set(_sockets(_descendants(*self.roots)))

    def connections(self) -> set[tuple[str, str, str]]:
        return {s for s in self.seen if s[0] != "LISTEN"}

    def listeners(self) -> set[str]:
        return {s[1] for s in self.seen if s[0] == "LISTEN"}


def _strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def _same_rows(a: list[dict], b: list[dict]) -> bool:
    """Rows equal but for timing; a pair where either side's reason says a time limit cut a stage
    (e.g. the closest-point LP, capped at its search's time, under the load of a parallel test
    run) is compared without its reason and with its figures to 1e-5 relative."""
    a, b = _strip(a), _strip(b)
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        cut = any("TIME_LIMIT" in str(r.get("reason")) or "time limit" in str(r.get("reason")) for r in (x, y))
        if not cut:
            if x != y:
                return False
            continue
        if set(x) != set(y):
            return False
        for k in x:
            if k == "reason":
                continue
            try:  # CSV cells are strings
                u, v = float(x[k]), float(y[k])
            except (TypeError, ValueError):
                if x[k] != y[k]:
                    return False
                continue
            if abs(u - v) > 1e-5 * max(abs(u), abs(v), 1e-12):
                return False
    return True


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return _strip(list(csv.DictReader(fh)))


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def ray_env(ray_token):
    """Ray's environment for this module: token auth with the session's throw-away token (nothing
    read from or written to ~/.ray; see conftest.py), no usage reports over the network."""
    mp = pytest.MonkeyPatch()
    token = ray_token
    for k, v in {**RAY_ENV, **LOCAL_ONLY, "RAY_AUTH_TOKEN": token}.items():
        mp.setenv(k, v)
    yield token
    mp.undo()


@pytest.fixture(scope="module")
def local_ray(ray_env):
    """One local Ray (2 CPUs, 127.0.0.1) for the module, with its sockets watched throughout."""
    temp = tempfile.mkdtemp(prefix="gdr", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    watch = SocketWatch(os.getpid(), every=0.5)
    with watch:
        ex = RayExecutor(num_cpus=2, temp_dir=temp)
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
        try:
            yield ex, watch
        finally:
            ex.close()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def serial_regression(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    doc = run_regression_bench(REG, out, tag="reg", command=["test"], plots=False)
    return out, doc


# ------------------------------------------------------------------------------ local Ray
def _square_or_fail(x: int) -> int:
    if x == 3:
        raise ValueError(f"no {x}")
    return x * x


def test_ray_executor_outcomes_events_and_loopback(local_ray):
    ex, watch = local_ray
    d = ex.describe()
    assert d["executor"] == "ray" and d["nodes"] == 1 and d["cpus"] == 2 and d["node_addresses"] == ["127.0.0.1"]
    events = []
    outs = ex.map(_square_or_fail, range(6), on_done=events.append, labels=[f"x{i}" for i in range(6)])
    assert [o.value for o in outs] == [0, 1, 4, None, 16, 25], [o.error for o in outs]
    assert [o.label for o in outs] == [f"x{i}" for i in range(6)]
    assert outs[3].error == "ValueError: no 3" and "_square_or_fail" in outs[3].detail
    assert sorted(o.index for o in events) == list(range(6))  # an event per task, in completion order
    # the local Ray's processes listen on and talk over loopback only (no wildcard either)
    time.sleep(0.6)
    assert watch.seen, "ss saw no socket of the local Ray"
    assert all(_loopback(h) for h in watch.listeners()), watch.listeners()
    assert all(_loopback(a) and _loopback(b) for _, a, b in watch.connections()), watch.connections()


def test_regression_grid_on_ray_equals_serial(local_ray, serial_regression, tmp_path):
    ex, _ = local_ray
    ser_dir, ser = serial_regression
    ticks = []
    doc = run_regression_bench(REG, tmp_path, tag="reg", command=["test"], plots=False, executor=ex,
                               tick=ticks.append)
    assert len(ticks) == len(grid(REG)) == 12  # progress: one event per cell
    assert len(doc["rows"]) == 20 and _same_rows(doc["rows"], ser["rows"])
    assert not doc["errors"]
    assert _same_rows(_csv(tmp_path / "reg.csv"), _csv(ser_dir / "reg.csv"))
    a, b = (json.loads(p.read_text()) for p in (tmp_path / "reg.json", ser_dir / "reg.json"))
    assert a["run"]["executor"]["executor"] == "ray" and "executor" not in b["run"]
    assert _strip(a["aggregate"]) == _strip(b["aggregate"]) and a["config"] == b["config"]
    assert a["sweeps"] == b["sweeps"]
    for ta, tb in zip(a["table1"], b["table1"]):
        assert [r["gdsolver"]["test_mse"] for r in ta["rows"]] == [r["gdsolver"]["test_mse"] for r in tb["rows"]]
        assert ta["mean_mse_reduction"] == tb["mean_mse_reduction"]
    # the markdown's MSE tables (no timings) are identical; its header names the executor
    ma, mb = ((p / "reg.md").read_text() for p in (tmp_path, ser_dir))
    tables = [m.split("## Test MSE by epochs")[1].split("\nRun: ")[0] for m in (ma, mb)]  # the footer: times
    assert tables[0] == tables[1]
    assert "cells run as Ray tasks on 1 node with 2 CPUs" in ma and "Ray tasks" not in mb


@pytest.mark.slow  # ~10 s; the regression grid above covers Ray cells by default, test_bench_paper the tuned cells
def test_tuned_regression_cells_on_ray_equal_serial(local_ray, tmp_path):
    """Every kind of tuned-comparison cell (a rate of the grid, L-BFGS best of K, GDSolver on a
    tuned method whose rate comes from the first round, GDSolver on L-BFGS) gives the same rows
    as Ray tasks as here."""
    from gdsolver.bench.regression_tuned import TunedConfig

    ex, _ = local_ray
    cfg = RegressionConfig(equations=("identity",), seeds=(0, 1), max_epochs=1, sweep_epochs=(1,), methods=("sgd",),
                           presets=("paper",),
                           tuned=TunedConfig(lr_grid=(0.01, 0.1), methods=("sgd",), epochs=2, gd_epochs=1, restarts=2,
                                             rounds=1, solver_points=10, time_limit=60.0, on=("sgd", "lbfgs-best")))
    ser = run_regression_bench(cfg, tmp_path / "s", tag="reg", command=["test"], plots=False)
    ticks = []
    par = run_regression_bench(cfg, tmp_path / "r", tag="reg", command=["test"], plots=False, executor=ex,
                               tick=ticks.append)
    assert len(ticks) == len(grid(cfg)) == 2 * (2 + 2 + 2 + 2)  # per seed: 2 paper cells, 2 rates, 2 L-BFGS, 2 GDSolver
    assert len(ser["tuned_rows"]) == 2 * (2 * 2 + 2 + 2) and not ser["errors"]
    assert _strip(par["tuned_rows"]) == _strip(ser["tuned_rows"])
    assert _same_rows(_csv(tmp_path / "r" / "reg_tuned.csv"), _csv(tmp_path / "s" / "reg_tuned.csv"))
    a, b = (json.loads(p.read_text()) for p in (tmp_path / "r" / "reg.json", tmp_path / "s" / "reg.json"))
    assert a["tuned"]["chosen"] == b["tuned"]["chosen"]
    assert _strip(a["tuned"]["effects"]) == _strip(b["tuned"]["effects"])


@pytest.mark.slow  # ~6 s; the regression grid above covers the default run
def test_data_efficiency_grid_on_ray_equals_serial(local_ray, tmp_path):
    ex, _ = local_ray
    cfg = DataEfficiencyConfig(dataset="digits", models=("mlp",), n_values=(100,), epochs=(2,), seeds=(0,),
                               methods=("sgd",), threads=1, lr_grid=(0.01, 0.1), lbfgs_restarts=2,
                               gdsolver_tuned=True)
    ser = run_data_efficiency_bench(cfg, tmp_path / "s", tag="de", command=["test"], plots=False)
    par = run_data_efficiency_bench(cfg, tmp_path / "r", tag="de", command=["test"], plots=False, executor=ex)
    assert _same_rows(par["rows"], ser["rows"]) and len(ser["rows"]) == 6  # 2 rates, best of 2, 2loop x2, gds
    assert not any(r.get("error") for r in ser["rows"])
    assert _same_rows(_csv(tmp_path / "r" / "de.csv"), _csv(tmp_path / "s" / "de.csv"))
    assert par["smallest_n"] == ser["smallest_n"] and par["targets"] == ser["targets"]


def test_killed_worker_is_retried_and_the_grid_completes(local_ray, serial_regression, tmp_path):
    ex, _ = local_ray
    _, ser = serial_regression
    root, killed, stop = os.getpid(), [], threading.Event()

    def killer() -> None:  # SIGKILL the first worker process seen running a cell (title "ray::<cell label>")
        while not stop.is_set() and not killed:
            for pid in _descendants(root) - {root}:
                title = _cmdline(pid)
                if title.startswith("ray::") and " seed " in title:
                    os.kill(pid, signal.SIGKILL)
                    killed.append((pid, title))
                    return
            time.sleep(0.005)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    try:
        rows = run_regression_bench(REG, tmp_path, tag="reg", command=["test"], plots=False, executor=ex,
                                    echo=lambda *_: None)["rows"]
    finally:
        stop.set()
        th.join()
    assert killed, "no worker was seen running a cell"
    assert not any(r.get("error") for r in rows), [r for r in rows if r.get("error")]
    assert _same_rows(rows, ser["rows"]), f"killed {killed}"


class _Sabotage(Executor):
    """Runs tasks on `inner`, but the task labelled `target` kills its worker on every attempt."""

    kind = "ray"

    def __init__(self, inner: Executor, target: str) -> None:
        self.inner, self.target = inner, target

    def run(self, tasks, on_done=None):
        def die(*_args, **_kw):
            os._exit(7)

        return self.inner.run([Task(die, label=t.label) if t.label == self.target else t for t in tasks], on_done)

    def describe(self):
        return self.inner.describe()


def test_cell_that_keeps_failing_is_reported_and_the_others_complete(local_ray, serial_regression, tmp_path):
    _, ser = serial_regression
    target = "identity seed 1: gdsolver[paper] e=3"
    assert target in [cell_label(c) for c in grid(REG)]
    ex = _Sabotage(RayExecutor(max_retries=1), target)  # shares the module's Ray (already initialised)
    doc = run_regression_bench(REG, tmp_path, tag="reg", command=["test"], plots=False, executor=ex)
    bad = [r for r in doc["rows"] if r.get("error")]
    assert [(r["seed"], r["method"], r["preset"], r["epochs"]) for r in bad] == [(1, "gdsolver", "paper", 3)]
    assert bad[0]["error"].startswith("task failed: the worker running it died 2 times (Ray's max_retries 1)")
    good = [r for r in doc["rows"] if not r.get("error")]
    sabotaged = (1, "gdsolver", "paper", 3)
    expect = [r for r in ser["rows"] if (r["seed"], r["method"], r["preset"], r["epochs"]) != sabotaged]
    assert _same_rows(good, expect)
    md = (tmp_path / "reg.md").read_text()
    assert "## Runs that failed" in md and "gdsolver: task failed: the worker running it died" in md
    failed_csv = [r for r in _csv(tmp_path / "reg.csv") if r["error"]]
    assert len(failed_csv) == 1 and "worker running it died" in failed_csv[0]["error"]


@pytest.mark.slow  # ~35 s (two trained MLPs and MNIST heads on the workers); the paper benchmarks' cell mechanics
def test_backends_bench_on_ray_equals_serial(local_ray, gurobi, tmp_path):
    from gdsolver.bench.backends_bench import run_backends_bench

    ex, _ = local_ray
    ser = run_backends_bench(tmp_path / "s", quick=True, echo=lambda *_: None)
    par = run_backends_bench(tmp_path / "r", quick=True, echo=lambda *_: None, executor=ex)

    def key(row):  # everything but the timings (per backend, under "results"; the cell's), their ratios and the load
        strip = lambda d: {k: v for k, v in d.items() if k not in ("solve_s", "wall_s")}  # noqa: E731
        return {k: ({n: strip(r) for n, r in v.items()} if k == "results" else v)
                for k, v in row.items() if "ratio" not in k and k not in ("load_1min", "cell_wall_s")}

    assert [key(r) for r in par["rows"]] == [key(r) for r in ser["rows"]] and len(ser["rows"]) == 9
    assert par["all_agree"] and par["run"]["failed"] == 0
    assert par["run"]["executor"]["executor"] == "ray"
    assert "cells run as Ray tasks" in (tmp_path / "r" / "backends-quick.md").read_text()


# ------------------------------------------------------------------------------ two-node cluster
def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _replay_dir(root: Path) -> Path:
    """Three small solved instances (compile + solve through the CLI)."""
    d = root / "dump"
    d.mkdir()
    for s in range(3):
        rng = np.random.default_rng(s)
        H = rng.random((40, 5))
        np.savez(root / f"layer{s}.npz", W=rng.normal(size=(2, 5)), b=np.zeros(2), H=H, y=H @ rng.normal(size=(5, 2)))
        for args in (["compile", str(root / f"layer{s}.npz"), "-o", str(d / f"i{s}.gdsm"), "--task", "regression",
                      "--radius", "0.1"], ["solve", str(d / f"i{s}.gdsm")]):
            subprocess.run([sys.executable, "-m", "gdsolver.cli.main", *args], check=True, capture_output=True,
                           timeout=120)
    return d


@pytest.mark.slow  # ~30 s: two `ray start` nodes, two CLI runs, a graceful stop
def test_two_node_cluster_runs_a_bench_cell_and_a_replay(ray_env, tmp_path):
    """`ray start --head` (node IP 127.0.0.2) and a second `ray start --address` (127.0.0.3);
    the CLI connects with --ray-address; both nodes are stopped by their process ids."""
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists() or shutil.which("ss") is None:
        pytest.skip("needs the `ray` and `ss` executables")
    dump = _replay_dir(tmp_path)
    temp = tempfile.mkdtemp(prefix="gdr", dir="/tmp")
    port = _free_port("127.0.0.2")
    # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1: a worker node refuses to start without it (the module's
    # local Ray set it to 0 in this process)
    from gdsolver.train.executor import NO_CLOUD_PROBE_ENV  # the nodes' dashboards ask no cloud metadata address

    env = {**os.environ, **RAY_ENV, **NO_CLOUD_PROBE_ENV, "RAY_AUTH_TOKEN": ray_env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}
    common = ["--num-cpus=1", "--disable-usage-stats", "--block"]
    logs = [open(tmp_path / "head.log", "w"), open(tmp_path / "worker.log", "w")]
    nodes: list[subprocess.Popen] = []
    try:
        nodes.append(subprocess.Popen([str(ray_bin), "start", "--head", "--node-ip-address=127.0.0.2", f"--port={port}",
                                       "--include-dashboard=false", f"--temp-dir={temp}", *common], env=env,
                                      stdout=logs[0], stderr=subprocess.STDOUT))
        nodes.append(subprocess.Popen([str(ray_bin), "start", f"--address=127.0.0.2:{port}",
                                       "--node-ip-address=127.0.0.3", *common], env=env, stdout=logs[1],
                                      stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in (tmp_path / "worker.log").read_text():
            assert time.monotonic() < deadline and all(n.poll() is None for n in nodes), \
                (tmp_path / "head.log").read_text()[-2000:] + (tmp_path / "worker.log").read_text()[-2000:]
            time.sleep(0.2)
        address = f"127.0.0.2:{port}"
        cli = [sys.executable, "-m", "gdsolver.cli.main"]
        with SocketWatch(*(n.pid for n in nodes), every=0.2) as watch:
            bench = subprocess.Popen([*cli, "bench", "regression", "--quick", "--equation", "identity", "--seeds", "1",
                                      "--method", "sgd", "--radius-preset", "paper", "--no-tuned",
                                      "--out", str(tmp_path / "out"),
                                      "--no-plots", "--ray-address", address], env=env, cwd=tmp_path,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            watch.roots = (*watch.roots, bench.pid)
            out, err = bench.communicate(timeout=300)
            assert bench.returncode == 0, err
            rep = subprocess.run([*cli, "replay", str(dump), "--ray-address", address], env=env, cwd=tmp_path,
                                 capture_output=True, text=True, timeout=300)
            assert rep.returncode == 0, rep.stderr
        assert f"ray: the cluster at {address}: 2 nodes (127.0.0.2, 127.0.0.3), 2 CPUs" in out
        rows = list(csv.DictReader(open(tmp_path / "out" / "regression_quick.csv")))
        assert len(rows) == 20 + 6 and not any(r["error"] for r in rows)  # sgd e=1..20; sweeps at 6 values of e
        assert "all 3 replays match" in rep.stdout and rep.stdout.count(" yes ") >= 3
        # every TCP connection of the nodes and the driver joins two loopback addresses; nodes whose
        # IP is not exactly 127.0.0.1 listen on the wildcard address (Ray's rule), never on another host's
        assert watch.connections() and all(_loopback(a) and _loopback(b) for _, a, b in watch.connections()), \
            watch.connections()
        assert all(_loopback(h) or h in ("*", "0.0.0.0", "::") for h in watch.listeners()), watch.listeners()
    finally:
        tree = _descendants(*(n.pid for n in nodes)) - {n.pid for n in nodes}
        for n in nodes:  # by process id; `ray stop` would end every Ray process of this user
            n.send_signal(signal.SIGTERM)
        for n in nodes:
            try:
                n.wait(timeout=60)
            except subprocess.TimeoutExpired:
                n.kill()
                n.wait()
        for f in logs:
            f.close()
    deadline = time.monotonic() + 30
    while (left := [p for p in tree if _cmdline(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    shutil.rmtree(temp, ignore_errors=True)
    assert tree and not left, f"processes of the stopped nodes still running: {[_cmdline(p) for p in left]}"


def test_cloud_probes_go_to_loopback():
    """Ray's dashboard process asks the cloud metadata addresses at start whatever the usage-stats
    setting; under no_cloud_probes its `requests` go to a closed loopback port and fail at once
    (no packet to 169.254.169.254, no DNS lookup of metadata.google.internal), and the
    environment is put back afterwards."""
    import requests

    from gdsolver.train.executor import no_cloud_probes

    before = dict(os.environ)
    with no_cloud_probes():
        assert requests.utils.get_environ_proxies("http://169.254.169.254/latest/meta-data/")["http"] == \
            "http://127.0.0.1:9"
        assert requests.utils.get_environ_proxies("http://metadata.google.internal/computeMetadata/v1")["http"] == \
            "http://127.0.0.1:9"
        assert not requests.utils.get_environ_proxies("http://127.0.0.1:8265/api")  # loopback goes direct
        t = time.monotonic()
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get("http://169.254.169.254/latest/meta-data/", timeout=1)
        assert time.monotonic() - t < 1.0  # refused at once, not a timeout
    assert dict(os.environ) == before
