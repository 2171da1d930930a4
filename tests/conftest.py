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
