"""Solver-neutral outcome of a solve: why the solver stopped (`Termination`) and what
that means for the caller (`Status`).

Every backend maps its native status onto a Termination (a table in its module);
`status_of` turns a termination and whether a point is at hand into the Status a
SolveResult carries. Limits and interruptions keep the incumbent as FEASIBLE; a time
limit without one is TIME_LIMIT; anything else without a point is ERROR."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """What a SolveResult says. A StrEnum: equal to its name as a string, written to
    JSON as that string."""

    OPTIMAL = "OPTIMAL"
    FEASIBLE = "FEASIBLE"
    INFEASIBLE = "INFEASIBLE"
    UNBOUNDED = "UNBOUNDED"
    TIME_LIMIT = "TIME_LIMIT"
    ERROR = "ERROR"

    @property
    def has_solution(self) -> bool:
        """True for the statuses that come with a point x."""
        return self in (Status.OPTIMAL, Status.FEASIBLE)


class Termination(StrEnum):
    """Why the solver stopped, whatever the solver."""

    OPTIMAL = "optimal"  # includes "stopped at the requested relative gap"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    INFEASIBLE_OR_UNBOUNDED = "infeasible_or_unbounded"  # the solver could not tell which
    TIME_LIMIT = "time_limit"
    NODE_LIMIT = "node_limit"
    ITERATION_LIMIT = "iteration_limit"
    SOLUTION_LIMIT = "solution_limit"
    OBJECTIVE_LIMIT = "objective_limit"
    MEMORY_LIMIT = "memory_limit"
    OTHER_LIMIT = "other_limit"  # stall, restart, work limits ...
    INTERRUPTED = "interrupted"  # Ctrl-C or a terminate request
    NUMERICAL = "numerical"  # numerical trouble; a point may still be usable
    ERROR = "error"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        """The solver finished (proved optimality, infeasibility or unboundedness)."""
        return self in (Termination.OPTIMAL, Termination.INFEASIBLE, Termination.UNBOUNDED,
                        Termination.INFEASIBLE_OR_UNBOUNDED)


def status_of(termination: Termination, has_point: bool) -> Status:
    """The Status of a solve that stopped for `termination` with or without a point."""
    if termination == Termination.OPTIMAL:
        return Status.OPTIMAL if has_point else Status.ERROR
    if termination in (Termination.INFEASIBLE, Termination.INFEASIBLE_OR_UNBOUNDED):
        return Status.INFEASIBLE  # INF_OR_UNBD only after a re-solve could not tell which
    if termination == Termination.UNBOUNDED:
        return Status.UNBOUNDED
    if has_point:
        return Status.FEASIBLE
    return Status.TIME_LIMIT if termination == Termination.TIME_LIMIT else Status.ERROR
