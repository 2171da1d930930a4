"""Backends: compile a MilpInstance into a solver and solve it.

`solve(inst, backend=..., ...)` is the short form; the contract every backend follows
is in `base` (Backend, Feature, SolveOptions, assemble_result), the list of backends
and `auto` in `registry`, the outcome in `status` (Status, Termination) and
`result` (SolveResult and its files). `run_search` (search.py) wraps them with searches for
count objectives: interval presolve, a greedy incumbent, combinatorial Benders. The whole
sweep (rounds, checks, closest point) is gdsolver.pipeline.solve_sweep."""

from gdsolver.compile.base import Backend, Feature, LicenceStatus, SolveOptions
from gdsolver.compile.registry import (AUTO, DEFAULT_BACKEND, available_backends, backend_choices, backend_info,
                                       backend_names, get_backend, solve)
from gdsolver.compile.result import STATUSES, SolveResult, load_result, result_paths, save_result
from gdsolver.compile.search import SEARCHES, run_search
from gdsolver.compile.status import Status, Termination

__all__ = ["Backend", "Feature", "LicenceStatus", "SolveOptions", "Status", "Termination", "AUTO",
           "DEFAULT_BACKEND", "available_backends", "backend_choices", "backend_info", "backend_names",
           "get_backend", "solve", "SolveResult", "STATUSES", "save_result", "load_result", "result_paths",
           "run_search", "SEARCHES"]
