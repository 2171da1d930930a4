"""Shared fixtures for the IR / formulation / backend tests."""

from __future__ import annotations

import functools

import pytest


@functools.lru_cache(maxsize=1)
def _gurobi_problem() -> str | None:
    """None when gurobipy is importable and an environment starts, else the reason."""
    try:
        import gurobipy as gp
    except ImportError:
        return "gurobipy is not installed"
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
