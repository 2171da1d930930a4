"""`gdsolver export` files read back by every installed solver that can read them, to the
optimum gdsolver's own solve finds; and the indicator LP's one known reader gap: HiGHS's LP
reader has no indicator constraints (the big-M MPS is its route), as `export --help` says."""

from __future__ import annotations

import importlib.util

import pytest

from gdsolver.compile import solve
from instances import small_instances

NAME = "class-compact-relu"  # a MIP with indicator constraints


def _optimum(inst) -> float:
    return solve(inst, "highs", mip_gap=0.0).objective


def _scip(path) -> float:
    pyscipopt = pytest.importorskip("pyscipopt")
    m = pyscipopt.Model()
    m.hideOutput()
    m.readProblem(str(path))
    m.setParam("limits/gap", 0.0)
    m.optimize()
    assert m.getStatus() == "optimal"
    return m.getObjVal()


def _gurobi(path) -> float:
    from conftest import _gurobi_problem

    reason = _gurobi_problem()
    if reason is not None:
        pytest.skip(reason)
    import gurobipy

    env = gurobipy.Env(empty=True)
    env.setParam("OutputFlag", 0)
    env.start()
    try:
        m = gurobipy.read(str(path), env)
        m.setParam("MIPGap", 0.0)
        m.optimize()
        assert m.Status == gurobipy.GRB.OPTIMAL
        value = m.ObjVal
        m.dispose()
        return value
    finally:
        env.dispose()


def _highs(path) -> float:
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 0.0)
    assert h.readModel(str(path)) == highspy.HighsStatus.kOk
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return h.getInfo().objective_function_value


READERS = {"scip": _scip, "gurobi": _gurobi, "highs": _highs}


@pytest.mark.parametrize("reader", ["scip", "gurobi"])
def test_indicator_lp_reads_back_to_the_same_optimum(tmp_path, reader):
    pytest.importorskip("gurobipy")  # the indicator LP is written by gurobipy (no licence needed)
    from gdsolver.compile.export import export_model

    inst = small_instances()[NAME]
    assert inst.num_indicators > 0
    path = export_model(inst, tmp_path / "model.lp", keep_indicators=True)
    assert " -> " in path.read_text()  # LP-format indicator constraints, not big-M rows
    assert READERS[reader](path) == pytest.approx(_optimum(inst), abs=1e-6)


def test_highs_cannot_read_the_indicator_lp(tmp_path):
    """What the help and docs say: HiGHS refuses the indicator LP (if a HiGHS release learns to
    read it, this fails and the help text should change)."""
    pytest.importorskip("gurobipy")
    import highspy

    from gdsolver.compile.export import export_model

    path = export_model(small_instances()[NAME], tmp_path / "model.lp", keep_indicators=True)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    assert h.readModel(str(path)) == highspy.HighsStatus.kError


@pytest.mark.parametrize("suffix", [".mps", ".lp"])
@pytest.mark.parametrize("reader", ["highs", "scip", "gurobi"])
def test_big_m_export_reads_back_everywhere(tmp_path, suffix, reader):
    """The default export (indicators lowered to big-M rows) is every solver's route."""
    if reader == "scip" and importlib.util.find_spec("pyscipopt") is None:
        pytest.skip("pyscipopt is not installed")
    from gdsolver.compile.export import export_model

    inst = small_instances()[NAME]
    path = export_model(inst, tmp_path / f"model{suffix}")
    assert READERS[reader](path) == pytest.approx(_optimum(inst), abs=1e-6)
