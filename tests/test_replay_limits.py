"""Replaying a solve stopped by a limit: the objectives depend on how far each solver run got,
so they are checked against each other's proven bounds instead of for equality."""

from __future__ import annotations

import numpy as np

from gdsolver.compile.replay import bounds_agree
from gdsolver.compile.result import SolveResult


def res(obj, bound, status="FEASIBLE"):
    return SolveResult(status=status, x=np.zeros(1), objective=obj, bound=bound)


def test_bounds_agree_for_minimisation_and_maximisation():
    # min: lower bounds 5 and 6, incumbents 8 and 7 -> consistent
    assert bounds_agree("min", res(8.0, 5.0), res(7.0, 6.0), 1e-9)
    # an incumbent below the other run's proven lower bound is impossible
    assert not bounds_agree("min", res(5.5, 5.0), res(7.0, 6.0), 1e-9)
    # max: upper bounds 10 and 9, incumbents 8 and 8.5
    assert bounds_agree("max", res(8.0, 10.0), res(8.5, 9.0), 1e-9)
    assert not bounds_agree("max", res(9.5, 10.0), res(8.5, 9.0), 1e-9)
    # no bound known: nothing to contradict
    assert bounds_agree("min", res(8.0, None), res(7.0, None), 1e-9)
