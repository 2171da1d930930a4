"""Why a repair is infeasible: a minimal set of fix points that cannot be repaired together at
that layer (with the keep points that were in the MILP), and what would help.

With no ReLU binary after the layer the repair is an LP, and the fix points' margin rows are
the key groups of an `ir.subsystem.Subsystem` (formulate.repair.fix_subsystem): HiGHS's Farkas
ray names an infeasible subset and deletion filtering shrinks it (compile.mfs.minimal_infeasible,
the route the Benders search takes for its cuts); each member is then dropped once more to
prove the set minimal. With ReLU binaries each test is a MILP feasibility solve: the shortest
infeasible prefix is found by bisection, then deletion filtering inside it, under a deadline
(a test the deadline cuts short keeps its point: the set stays infeasible, at worst not minimal).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gdsolver.compile.mfs import SubsystemLP, minimal_infeasible, release_threads
from gdsolver.compile.registry import solve
from gdsolver.formulate.repair import fix_subsystem, repair_instance
from gdsolver.ir.instance import MilpInstance
from gdsolver.ir.subsystem import restrict
from gdsolver.modeldef import Dense
from gdsolver.compile.registry import DEFAULT_BACKEND

LARGER_BOX = 100.0  # the box the suggestion tries: this many times the repair's radius


@dataclass
class Conflict:
    """fix_points: indices into the fix set. minimal: dropping any one of them makes the rest
    repairable (proved); feasible_alone: the set is repairable without the keep points;
    feasible_wider: with the box LARGER_BOX times wider (None: not tested)."""

    fix_points: list[int]
    minimal: bool
    feasible_alone: bool | None = None
    feasible_wider: bool | None = None
    time_s: float = 0.0
    suggestion: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"fix_points": self.fix_points, "minimal": self.minimal, "feasible_alone": self.feasible_alone,
                "feasible_wider": self.feasible_wider, "time_s": self.time_s, "suggestion": self.suggestion}


def duplicate_conflict(H_fix: np.ndarray, y_fix: np.ndarray, H_keep: np.ndarray, y_keep: np.ndarray) -> Conflict | None:
    """Two points with the same inputs at the layer and different labels: no change of this layer
    or any later one separates them (found without a solver). The fix point(s) involved, with
    the keep point in `details` when one is."""
    H = np.vstack([H_fix, H_keep])
    y = np.concatenate([y_fix, y_keep])
    _, inv = np.unique(H, axis=0, return_inverse=True)
    inv = inv.ravel()
    F = len(H_fix)
    for t in range(F):
        same = np.flatnonzero((inv == inv[t]) & (y != y[t]))
        if len(same):
            o = int(same[0])
            pts = [t] if o >= F else sorted([t, o])
            c = Conflict(pts, True, details={"keep_point": o - F} if o >= F else {})
            who = f"keep point {o - F}" if o >= F else f"fix point {o}"
            c.suggestion = (f"fix point {t} has the same inputs at this layer as {who} but another label: no change "
                            "of this layer or a later one separates them; repair an earlier layer or drop one")
            return c
    return None


def _feasible(inst: MilpInstance, backend: str, time_limit: float | None) -> bool | None:
    """True / False when the solver settles whether inst has a point; None when it does not in time."""
    res = solve(inst, backend, time_limit=None if time_limit is None else max(time_limit, 0.05), mip_gap=1.0,
                use_start=False)
    if res.status == "INFEASIBLE":
        return False
    return True if res.has_solution else None


def find_conflict(layers: list[Dense], k: int, H_fix: np.ndarray, y_fix: np.ndarray, H_keep: np.ndarray,
                  y_keep: np.ndarray, *, norm: str, margin: float, radius: float, patterns: str = "free",
                  backend: str = DEFAULT_BACKEND, time_limit: float | None = 60.0,
                  keep_margin: float | None = None) -> Conflict:
    """A minimal infeasible set of fix points (module docstring); H_keep/y_keep: the keep points
    the infeasible MILP held."""
    t0 = time.perf_counter()
    deadline = np.inf if time_limit is None else t0 + time_limit

    def build(sel: np.ndarray, keep: bool = True, r: float = radius) -> MilpInstance:
        return repair_instance(layers, k, H_fix[sel], y_fix[sel], H_keep if keep else None,
                               y_keep if keep else None, norm=norm, margin=margin, radius=r, patterns=patterns,
                               fix_bias=not getattr(layers[k], "has_bias", True), keep_margin=keep_margin)

    def left() -> float | None:
        return None if deadline == np.inf else max(0.05, deadline - time.perf_counter())

    dup = duplicate_conflict(H_fix, y_fix, H_keep, y_keep)
    if dup is not None:
        dup.time_s = time.perf_counter() - t0
        return dup
    F = len(H_fix)
    full = build(np.arange(F))
    if full.num_integer == 0:
        members, minimal = _lp_conflict(full, deadline)
    else:
        members, minimal = _milp_conflict(lambda sel: _feasible(build(sel), backend, left()), F, deadline)
    sel = np.asarray(members, np.int64)
    alone = _feasible(build(sel, keep=False), backend, left()) if len(H_keep) else None
    wider = _feasible(build(sel, r=radius * LARGER_BOX), backend, left())
    out = Conflict([int(i) for i in members], minimal, alone, wider, time.perf_counter() - t0)
    out.suggestion = _suggest(out, k, radius)
    if patterns != "free" and full.meta["relu"]:
        out.suggestion += "; or let the ReLU phases change (patterns free)"
    return out


def _lp_conflict(inst: MilpInstance, deadline: float) -> tuple[list[int], bool]:
    sub = fix_subsystem(inst)
    lp = SubsystemLP(sub)
    try:
        everyone = np.ones(sub.num_keys, bool)
        if lp.feasible(everyone):  # the pipeline said INFEASIBLE; the LP disagrees (tolerances)
            return list(range(sub.num_keys)), False
        found = minimal_infeasible(lp, everyone, deadline=deadline, iteration_limit=None)
        members = np.flatnonzero(found)
        small = SubsystemLP(restrict(sub, found))
        minimal = True
        for i in range(len(members)):  # proof of minimality: every member is needed
            if time.perf_counter() > deadline:
                minimal = False
                break
            on = np.ones(len(members), bool)
            on[i] = False
            if not small.feasible(on):
                minimal = False
                break
        return [int(m) for m in members], minimal
    finally:
        release_threads()


def _milp_conflict(feasible, F: int, deadline: float) -> tuple[list[int], bool]:
    """Shortest infeasible prefix by bisection, then deletion filtering in it."""
    lo, hi = 1, F  # prefix of length hi is infeasible (the whole set is)
    minimal = True
    while lo < hi and time.perf_counter() < deadline:
        mid = (lo + hi) // 2
        got = feasible(np.arange(mid))
        if got is False:
            hi = mid
        else:
            minimal = minimal and got is True  # an unsettled test: the prefix may not be the shortest
            lo = mid + 1
    if lo < hi:
        minimal = False
    members = list(range(hi))
    for i in list(members)[::-1]:  # the last point of the prefix is needed; test the others
        if len(members) == 1:
            break
        if time.perf_counter() > deadline:
            minimal = False
            break
        trial = [m for m in members if m != i]
        got = feasible(np.array(trial))
        if got is False:
            members = trial
        elif got is None:
            minimal = False
    return members, minimal


def _suggest(c: Conflict, k: int, radius: float) -> str:
    pts = ", ".join(str(i) for i in c.fix_points[:10]) + (" ..." if len(c.fix_points) > 10 else "")
    what = f"fix point{'s' if len(c.fix_points) != 1 else ''} {pts}"
    if c.feasible_wider:
        return f"{what} can be repaired together with a larger box: try --radius {radius * LARGER_BOX:.4g}"
    if c.feasible_alone:
        return (f"{what} can be repaired at layer {k} only by breaking keep points: drop some keep points, or "
                f"repair an earlier layer")
    return f"no change of layer {k} repairs {what} together: repair an earlier layer, or drop one of them"
