"""The executor layer without Ray: LocalExecutor's outcomes and events, and `--ray` without
Ray installed (one error line naming the extra). The Ray tests are in test_ray.py."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from clirun import assert_user_error

from gdsolver.errors import GdsolverError
from gdsolver.train.executor import LocalExecutor, Task, make_executor


def _inverse(x: float) -> float:
    return 1.0 / x


def test_local_executor_keeps_order_and_turns_failures_into_outcomes():
    events = []
    ex = make_executor("local")
    assert isinstance(ex, LocalExecutor) and ex.describe() == {"executor": "local"} and make_executor(ex) is ex
    outs = ex.map(_inverse, [2.0, 0.0, 4.0], on_done=events.append, labels=["a", "b", "c"])
    assert [o.index for o in outs] == [0, 1, 2] and [o.label for o in outs] == ["a", "b", "c"]
    assert outs[0].ok and outs[0].value == 0.5 and outs[2].value == 0.25
    assert not outs[1].ok and outs[1].value is None
    assert outs[1].error == "ZeroDivisionError: float division by zero"
    assert "Traceback" in outs[1].detail and "_inverse" in outs[1].detail
    assert events == outs  # one event per task, as each finished (in order here)
    assert all(o.seconds >= 0 and math.isfinite(o.seconds) for o in outs)


def test_unknown_executor_is_a_user_error():
    with pytest.raises(GdsolverError, match="executor: 'dask', expected 'local' or 'ray'"):
        make_executor("dask")


def test_local_executor_runs_tasks_with_keyword_arguments():
    outs = LocalExecutor().run([Task(divmod, (7, 2)), Task(int, ("ff",), {"base": 16}, label="hex")])
    assert [o.value for o in outs] == [(3, 1), 255] and outs[1].label == "hex"


def _without_ray_env(tmp_path) -> dict[str, str]:
    """A `ray` package that fails to import, first on the path: as if the extra were not installed."""
    fake = tmp_path / "fake" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")])}


def test_ray_option_without_ray_is_one_error_line_in_process(tmp_path, monkeypatch):
    """The same as below in this process, with `ray` hidden (sys.modules["ray"] = None)."""
    from clirun import run

    monkeypatch.setitem(sys.modules, "ray", None)
    p = run("bench", "regression", "--quick", "--ray", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert_user_error(p, "--ray", "Ray is not installed", "pip install -c constraints.txt '.[ray]'")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("args", [pytest.param(["bench", "regression", "--quick", "--ray"], marks=pytest.mark.slow),
                                  ["replay", "DIR", "--ray-address", "127.0.0.1:6379"]])
def test_ray_option_without_ray_is_one_error_line(tmp_path, args):
    """A new Python with a `ray` that fails to import first on its path (the bench case, which
    imports torch: -m slow; in this process above)."""
    args = [str(tmp_path) if a == "DIR" else a for a in args]
    p = subprocess.run([sys.executable, "-m", "gdsolver.cli.main", *args, "--out" if args[0] == "bench" else "--tol",
                        str(tmp_path / "out") if args[0] == "bench" else "1e-6"], cwd=tmp_path,
                       env=_without_ray_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert_user_error(p, "--ray", "Ray is not installed", "pip install -c constraints.txt '.[ray]'")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
