"""Backends: compile a MilpInstance into a solver and solve it."""

from gdsolver.compile.backend import BACKENDS, Backend, get_backend, solve
from gdsolver.compile.result import STATUSES, SolveResult, load_result, result_paths, save_result
from gdsolver.compile.search import SEARCHES, SweepOutcome, solve_sweep

__all__ = ["Backend", "BACKENDS", "get_backend", "solve", "SolveResult", "STATUSES", "save_result",
           "load_result", "result_paths", "solve_sweep", "SweepOutcome", "SEARCHES"]
