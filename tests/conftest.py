"""Shared fixtures for the IR / formulation / backend tests.

GDSOLVER_TEST_HIDE=pyscipopt[,gurobipy] runs the suite as if those packages were not
installed: they are hidden in this process and, through a sitecustomize on
PYTHONPATH, in every Python subprocess the tests start (clirun.run_subprocess and the like)."""

from __future__ import annotations

import functools
import os
import sys
import tempfile

import pytest

# Under pytest-xdist (`make test` runs two workers on the two cores): one BLAS/OpenMP thread per
# worker. torch and OpenBLAS otherwise start a thread per core in each worker, and their threads
# spin while waiting, so two workers would run four busy threads on two cores. Set before numpy
# and torch are first imported (the test modules import them); explicit limits in the code still
# apply (torch.set_num_threads, threadpoolctl), and a subprocess inherits the setting.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

_HIDE = [n for n in os.environ.get("GDSOLVER_TEST_HIDE", "").split(",") if n]
if _HIDE:
    for _name in _HIDE:
        sys.modules[_name] = None  # import now raises ImportError
    _site = tempfile.mkdtemp(prefix="gdsolver-hide-")
    with open(os.path.join(_site, "sitecustomize.py"), "w") as _f:
        _f.write(f"import sys\nfor _n in {_HIDE!r}:\n    sys.modules[_n] = None\n")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_site, os.environ.get("PYTHONPATH")]))


@functools.lru_cache(maxsize=1)
def _gurobi_problem() -> str | None:
    """None when gurobipy is importable and an environment starts, else the reason."""
    try:
        import gurobipy as gp
    except ImportError:
        return "gurobipy is not installed (or hidden by GDSOLVER_TEST_HIDE)"
    try:
        env = gp.Env(empty=True)
        env.setParam("OutputFlag", 0)
        env.start()
        env.dispose()
    except Exception as exc:  # noqa: BLE001 - any licence/env failure means: skip
        return f"no usable Gurobi licence ({exc})"
    return None


@pytest.fixture
def gurobi():
    """Skip the test (with the reason) when Gurobi cannot be used here."""
    reason = _gurobi_problem()
    if reason is not None:
        pytest.skip(reason)
    import gurobipy

    return gurobipy


# One throw-away Ray auth token for the whole test session (nothing read from or written to
# ~/.ray): Ray keeps the token it first used for the life of the process, so a second local Ray
# started in the same pytest process (tests/test_ray.py and tests/test_portfolio.py each start
# one) fails to start its GCS when given a different token.
RAY_TEST_TOKEN = __import__("secrets").token_hex(32)


@pytest.fixture(scope="session")
def ray_token() -> str:
    return RAY_TEST_TOKEN


# Tests that start a local Ray (its fixtures `local_ray`, `ray_env`) run in one xdist group: one
# worker runs them one after another, so two local Rays never share the two cores (each asks
# for 2 CPUs). Every other test is grouped by its module, so a module-scoped fixture (a trained
# model, a compiled instance) is built once, on one worker. Used with `--dist loadgroup`
# (Makefile); without xdist the marks do nothing.
_RAY_FIXTURES = {"local_ray", "ray_env"}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        fixtures = set(getattr(item, "fixturenames", ()))
        group = "ray" if fixtures & _RAY_FIXTURES else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))
