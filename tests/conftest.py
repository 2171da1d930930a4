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


# How `make test` shares the tests between its two pytest-xdist workers (`--dist loadscope`): by
# module, so a module-scoped fixture (a trained model, a compiled instance) is built once, on one
# worker; and the two modules that start a local Ray as one unit, so one worker runs them one
# after the other and two local Rays (2 CPUs each) never share the two cores. (xdist's own
# `xdist_group` marks do nothing under pytest 9.2: xdist 3.8 writes the group into item._nodeid,
# which pytest 9.2 no longer reads, so this is done in the scheduler.)
LOCAL_RAY_MODULES = {"test_ray.py", "test_portfolio.py"}


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown without pytest-xdist
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadscope":
        return None  # xdist's own scheduler for any other --dist
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "local Ray" if module.rsplit("/", 1)[-1] in LOCAL_RAY_MODULES else module

        def _assign_work_unit(self, node) -> None:
            # the Ray unit first: much of its time is Ray starting and waiting, which the other
            # worker's tests fill (last, it ran alone for its 150 s at the end of the run)
            if "local Ray" in self.workqueue:
                self.workqueue.move_to_end("local Ray", last=False)
            super()._assign_work_unit(node)

    return ModuleScheduling(config, log)
