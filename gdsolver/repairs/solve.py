"""The repair search on a chain of dense layers (numpy arrays in, new weights of one layer out).

One repair MILP (gdsolver.formulate.repair) solved by the one sweep pipeline (solve_sweep:
the solve, ir.verify, the float64 forward-pass check of its claims), with two things around it:

- keep points enter lazily (constraint generation): the first MILP holds the fix points only;
  the answer is run forward on every keep point, and those that lose their label (or come
  within their required gap) are added, until none does. Every MILP is a relaxation of the
  full one, so its optimum is a lower bound, and the last one's optimum satisfies every keep
  row: it is the full problem's optimum. Most keep points are far from their decision
  boundary, so the MILPs stay a fraction of the size.
- the box: with no ReLU after the layer the MILP is an LP and the box is wide; with ReLUs the
  box decides the big-M constants and the binaries, so it starts narrow and widens (x4) while
  the repair is infeasible in it (when the radius is not given).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gdsolver.formulate.repair import (DEFAULT_MARGIN, change_norms, keep_margins, label_gaps, proved_global,
                                       repair_instance)
from gdsolver.ir.instance import MilpInstance
from gdsolver.modeldef import Dense, forward_chain
from gdsolver.pipeline import SolveSettings, solve_sweep
from gdsolver.compile.registry import DEFAULT_BACKEND

WIDE_BOX = 10.0  # radius of an LP repair, in units of the layer's largest weight (at least 1)
NARROW_BOX = 0.05  # first radius of a repair with ReLUs after the layer, same units
WIDEN = 4.0
MAX_WIDENINGS = 4  # narrow box x 4^4 = 12.8 x the largest weight
ADD_NEAR = 1.0  # keep rows (point, class) whose gap is below ADD_NEAR x the point's required gap join the MILP
ADD_PER_ROUND = 1000  # at most this many keep rows join per round, the most violated first
ADD_POINTS_PINNED = 50  # ... and at most this many new keep points when each brings its pinned ReLU rows


@dataclass
class RepairSolution:
    """What the search found. status: "repaired" (W, b satisfy every point in a float64 forward
    pass), "infeasible" (proved: no change of the layer within the box does it), or "no repair"
    (the time limit or the solver stopped first; `reason` says which)."""

    status: str
    W: np.ndarray | None = None
    b: np.ndarray | None = None
    solver_status: str = ""
    objective: float | None = None
    bound: float | None = None
    minimal: bool = False  # the last MILP was solved to optimality
    global_minimal: bool = False  # ... and no change of the layer outside the box is smaller
    radius: float = 0.0
    norm: str = "l1"
    margin: float = DEFAULT_MARGIN
    keep_rounds: int = 0
    keep_in_milp: int = 0  # keep points with a row in the last MILP
    keep_rows: int = 0  # ... and their (point, class) rows
    keep_pool: int = 0  # keep points checked by the forward pass each round
    solver_time_s: float = 0.0
    time_s: float = 0.0
    reason: str = ""
    change: dict[str, float] = field(default_factory=dict)
    instance: MilpInstance | None = None  # the last MILP
    binaries: int = 0
    pinned: bool = False  # ReLU phases after the layer were pinned (the minimality is among such changes)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "solver_status": self.solver_status, "objective": self.objective,
                "bound": self.bound, "minimal": self.minimal, "global_minimal": self.global_minimal,
                "radius": self.radius, "norm": self.norm, "margin": self.margin, "keep_rounds": self.keep_rounds,
                "keep_in_milp": self.keep_in_milp, "keep_rows": self.keep_rows, "keep_pool": self.keep_pool,
                "relu_binaries": self.binaries,
                "solver_time_s": self.solver_time_s, "time_s": self.time_s, "reason": self.reason,
                "change": self.change}


def _pair_gaps(o: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """o_t,label - o_t,j for every class j (inf at j = label): (T, M)."""
    g = o[np.arange(len(o)), labels][:, None] - o
    g[np.arange(len(o)), labels] = np.inf
    return g


def _record(sol: RepairSolution, inst: MilpInstance, out: Any, layer: Dense) -> tuple[np.ndarray, np.ndarray]:
    """Put a solve's answer (new W, b), objective, bound and proof status into `sol`."""
    blocks = inst.unpack(out.x)
    sol.W, sol.b, sol.objective = blocks["w"].copy(), blocks["b"].copy(), float(out.objective)
    res = out.result
    sol.bound = None if res is None or res.bound is None else float(res.bound)
    sol.minimal = out.status == "OPTIMAL"
    linf = float(max(np.abs(sol.W - layer.W).max(), np.abs(sol.b - layer.b).max()))
    sol.global_minimal = sol.minimal and proved_global(inst, sol.objective, linf)
    sol.pinned = inst.meta.get("patterns") != "free" and bool(inst.meta["relu"])
    return sol.W, sol.b


def _add_broken(active: np.ndarray, o: np.ndarray, y_keep: np.ndarray, kmarg: np.ndarray,
                max_points: int | None = None) -> bool:
    """Mark in `active` (K, M) the keep rows the outputs o break (gap below ADD_NEAR x the
    point's required gap), at most ADD_PER_ROUND, the most violated first (the rest may hold
    once those do), and rows of at most `max_points` points not in the problem yet (a point
    whose ReLU phases are pinned brings a row per unit: 128 at the MNIST MLP's hidden layer).
    Returns whether any was added."""
    slack = _pair_gaps(o, y_keep) - ADD_NEAR * kmarg[:, None]
    slack[active] = np.inf
    near = np.flatnonzero(slack.ravel() < 0)
    near = near[np.argsort(slack.ravel()[near], kind="stable")]
    if max_points is not None:
        pts, held = near // active.shape[1], active.any(axis=1)
        uniq, first = np.unique(pts, return_index=True)
        fresh = ~held[uniq]
        admitted = uniq[fresh][np.argsort(first[fresh], kind="stable")[:max_points]]  # most violated first
        near = near[held[pts] | np.isin(pts, admitted)]
    near = near[:ADD_PER_ROUND]
    active.ravel()[near] = True
    return len(near) > 0


def has_relu_after(layers: list[Dense], k: int) -> bool:
    return any(la.activation == "relu" for la in layers[k:])


def default_radius(layers: list[Dense], k: int, binaries: bool) -> float:
    """The box when none is given: wide for an LP, narrow (then widened) with ReLU binaries."""
    scale = max(1e-3, float(np.abs(layers[k].W).max()), float(np.abs(layers[k].b).max(initial=0.0)))
    return NARROW_BOX * scale if binaries else WIDE_BOX * max(scale, 1.0)


def solve_repair(layers: list[Dense], k: int, H_fix: np.ndarray, y_fix: np.ndarray, H_keep: np.ndarray,
                 y_keep: np.ndarray, *, norm: str = "l1", margin: float = DEFAULT_MARGIN, radius: float | None = None,
                 time_limit: float | None = None, backend: str = DEFAULT_BACKEND, threads: int | None = None,
                 lazy_keep: bool = True, patterns: str = "free", keep_margin: float | None = None,
                 options: dict[str, Any] | None = None,
                 progress: Callable[[str], None] | None = None) -> RepairSolution:
    """Search for the minimal change of layer k (module docstring). y_keep: the labels the keep
    points must keep (their predictions, for "keep what it predicts")."""
    t0 = time.perf_counter()
    k = int(k) % len(layers)
    auto = radius is None
    binaries = has_relu_after(layers, k) and patterns != "all"  # pinned phases leave an LP: no big-M to keep small
    r = default_radius(layers, k, binaries) if auto else float(radius)
    widenings = MAX_WIDENINGS if auto and binaries else 0
    y_keep = np.asarray(y_keep, np.int64)
    K = len(H_keep)
    kmarg = keep_margins(label_gaps(forward_chain(layers, H_keep, start=k), y_keep),
                         margin if keep_margin is None else keep_margin) if K else np.zeros(0)
    M = layers[-1].M
    # (point, class) keep rows in the MILP; lazily none at first, else every class but the label
    active = np.zeros((K, M), bool) if lazy_keep else np.ones((K, M), bool)
    active[np.arange(K), y_keep] = False
    sol = RepairSolution("no repair", radius=r, norm=norm, margin=margin, keep_pool=K)
    solver_time = 0.0
    while True:
        left = None if time_limit is None else time_limit - (time.perf_counter() - t0)
        if left is not None and left <= 0.05:
            sol.reason = "time limit reached" + (" (before a repair was found)" if sol.W is None else "")
            break
        pts = active.any(axis=1)
        inst = repair_instance(layers, k, H_fix, y_fix, H_keep[pts], y_keep[pts], norm=norm, margin=margin,
                               radius=r, patterns=patterns, fix_bias=not getattr(layers[k], "has_bias", True),
                               keep_pairs=active[pts] if lazy_keep else None, keep_margin=keep_margin)
        settings = SolveSettings(backend=backend, search="mip", time_limit=left, threads=threads, closest=False,
                                 use_start=False, options=dict(options or {}))
        out = solve_sweep(inst, settings)
        solver_time += out.solver_time_s
        if progress is not None:
            progress(f"radius {r:.4g}, {int(pts.sum())} keep points ({int(active.sum())} rows), "
                     f"{inst.meta['relu_binaries']} binaries: {out.status} in {out.solver_time_s:.2f} s")
        sol.instance, sol.solver_status = inst, out.status
        sol.keep_in_milp, sol.keep_rows = int(pts.sum()), int(active.sum())
        sol.binaries = int(inst.meta["relu_binaries"])
        if out.error is not None:
            raise out.error
        if out.status == "INFEASIBLE":
            if widenings > 0:
                widenings -= 1
                r *= WIDEN
                sol.radius = r
                continue
            sol.status, sol.W, sol.b = "infeasible", None, None
            sol.reason = f"no change of layer {k} within |dW| <= {r:.4g} classifies every fix point as its label " \
                         f"by the margin {margin:g}" + (" while keeping the keep points" if active.any() else "")
            break
        if not out.usable or out.x is None:
            sol.reason = out.reason or f"the solver stopped with status {out.status}"
            break
        W, b = _record(sol, inst, out, layers[k])
        if K:
            o = forward_chain(layers, H_keep, start=k, weights={k: (W, b)})
            if _add_broken(active, o, y_keep, kmarg, ADD_POINTS_PINNED if sol.pinned else None):
                sol.keep_rounds += 1
                sol.status, sol.minimal, sol.global_minimal = "no repair", False, False
                continue
        sol.status = "repaired"
        sol.reason = ""
        break
    if sol.W is not None:
        sol.change = change_norms(sol.W - layers[k].W, sol.b - layers[k].b)
        if sol.status != "repaired":  # an answer that misses keep points is not a repair
            sol.W = sol.b = None
    sol.solver_time_s = solver_time
    sol.time_s = time.perf_counter() - t0
    return sol


def solve_interval_repair(layers: list[Dense], k: int, H_fix: np.ndarray, lo_fix: np.ndarray, hi_fix: np.ndarray,
                          H_keep: np.ndarray, lo_keep: np.ndarray, hi_keep: np.ndarray, *, norm: str = "l1",
                          margin: float = DEFAULT_MARGIN, radius: float | None = None,
                          time_limit: float | None = None, backend: str = DEFAULT_BACKEND, threads: int | None = None,
                          patterns: str = "all") -> RepairSolution:
    """Regression: the minimal change of layer k that puts every output of every fix and keep
    point inside its interval (formulate.repair.interval_instance); keep points enter lazily,
    a point at a time, when a forward pass finds an output of theirs outside (by the margin).
    The box: wide, or given (no widening: with ReLU binaries, give `radius`)."""
    from gdsolver.formulate.repair import interval_instance

    t0 = time.perf_counter()
    k = int(k) % len(layers)
    r = default_radius(layers, k, False) if radius is None else float(radius)
    K = len(H_keep)
    active = np.zeros(K, bool)
    sol = RepairSolution("no repair", radius=r, norm=norm, margin=margin, keep_pool=K)
    solver_time = 0.0
    while True:
        left = None if time_limit is None else time_limit - (time.perf_counter() - t0)
        if left is not None and left <= 0.05:
            sol.reason = "time limit reached"
            break
        inst = interval_instance(layers, k, H_fix, lo_fix, hi_fix, H_keep[active], lo_keep[active], hi_keep[active],
                                 norm=norm, margin=margin, radius=r, patterns=patterns,
                                 fix_bias=not getattr(layers[k], "has_bias", True))
        out = solve_sweep(inst, SolveSettings(backend=backend, search="mip", time_limit=left, threads=threads,
                                              closest=False, use_start=False))
        solver_time += out.solver_time_s
        sol.instance, sol.solver_status, sol.keep_in_milp = inst, out.status, int(active.sum())
        sol.keep_rows = int(inst.row_groups.get("keep_interval", (0, 0))[1])
        sol.binaries = int(inst.meta["relu_binaries"])
        if out.error is not None:
            raise out.error
        if out.status == "INFEASIBLE":
            sol.status, sol.W, sol.b = "infeasible", None, None
            sol.reason = (f"no change of layer {k} within |dW| <= {r:.4g} puts every fix point's outputs inside "
                          f"their intervals by the margin {margin:g}"
                          + (" while keeping the keep points' in theirs" if active.any() else ""))
            break
        if not out.usable or out.x is None:
            sol.reason = out.reason or f"the solver stopped with status {out.status}"
            break
        _record(sol, inst, out, layers[k])
        if K:
            o = forward_chain(layers, H_keep, start=k, weights={k: (sol.W, sol.b)})
            near = ((o < lo_keep + ADD_NEAR * margin) | (o > hi_keep - ADD_NEAR * margin)).any(axis=1) & ~active
            if near.any():
                active |= near
                sol.keep_rounds += 1
                sol.minimal = sol.global_minimal = False
                continue
        sol.status, sol.reason = "repaired", ""
        break
    if sol.W is not None:
        sol.change = change_norms(sol.W - layers[k].W, sol.b - layers[k].b)
        if sol.status != "repaired":
            sol.W = sol.b = None
    sol.solver_time_s, sol.time_s = solver_time, time.perf_counter() - t0
    return sol
