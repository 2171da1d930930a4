"""Cross-entropy rounds solved by SCIP (a solver named by the user; `auto` takes Gurobi or HiGHS
first): a round whose answer fails ir.verify is refused with the reason, and the pipeline's answer
is the last round that verified. SCIP with its feasibility tolerance loosened to 1e-3 gives such
an answer deterministically (one thread) at its fifth round here; the answer kept is checked by
ir.verify and the forward pass on the given instance."""

from __future__ import annotations

import numpy as np
import pytest

from gdsolver.compile import available_backends
from gdsolver.formulate import Dense, check_claims, sweep_instance
from gdsolver.ir import verify
from gdsolver.pipeline import SolveSettings, solve_sweep

pytestmark = pytest.mark.skipif("scip" not in available_backends(), reason="pyscipopt is not installed")


def _ce_instance():
    rng = np.random.default_rng(0)
    H, y = rng.normal(size=(40, 6)), rng.integers(0, 3, 40)
    layers = [Dense(rng.normal(size=(3, 6)), rng.normal(size=3) * 0.1, "identity")]
    return sweep_instance(layers, 0, H, y, task="classification", radius=0.5, mode="ce")


@pytest.mark.parametrize("options", [{}, {"numerics/feastol": 1e-3}])
def test_scip_rounds_are_verified(options):
    inst = _ce_instance()
    out = solve_sweep(inst, SolveSettings(backend="scip", time_limit=60, options=options))
    assert out.usable and out.x is not None
    assert verify(inst, out.x).ok and check_claims(inst, out.x).ok
    assert out.result.backend == "scip"
    if options:  # the loosened tolerance: a round's answer was refused, with the reason
        assert "fails ir.verify" in out.reason and "the previous round's answer is used" in out.reason
        assert out.status == "FEASIBLE"
    else:
        assert "fails ir.verify" not in out.reason
