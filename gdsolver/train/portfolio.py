"""Portfolio sweeps: which K candidate sweeps a sweep solves, and the order they are tried in.

The candidates of one sweep share its layer and differ in their box and their points:

    candidate  0     1     2     3     4     5    ...
    radius     r     2r    r/2   r     2r    r/2  ...   (r: the layer's current radius)
    points     the sweep's own sample (candidate 0 is exactly the sweep of portfolio=1), then
               a fresh seeded sample per candidate

Why these: the radius is the setting a sweep is most sensitive to (a wider box reaches a lower
loss on its points but moves further from what GD found, so validation rejects it more often,
and its MIP is often much harder; a narrower one is the safer fallback), and a fresh point
sample is a different subproblem (classification: other misclassified points to fix). The
radii stay within a factor 2 of the layer's, so a large portfolio explores many samples rather
than ever wider boxes whose MIPs would all run to the time limit. Where the points cannot differ
(regression sweeps of every point; fewer misclassified points than asked for), a candidate
whose points and radius equal an earlier one's is not solved again (its row says so); there
the first three are a line search over the radius: the widest box comes first and the narrower
ones are tried when validation rejects it. Layers are not varied inside a portfolio: a sweep
round already visits every chosen layer in turn (`layers=`), and candidates of different
layers would compete for one acceptance where the round accepts one per layer.

Order: by `gain`, the relative improvement of the solver's loss on the candidate's own points
(before - after) / before, both from a float64 forward pass of the network stored in the
instance (the claims check's), so samples of different sizes and losses compare; ties go to
the lower candidate number. Candidates without a usable answer come after, in number order.
numpy only: nothing here needs torch or Ray.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gdsolver.pipeline import SweepOutcome
from gdsolver.train.sweep import SweepJob, sweep_loss


NOT_TRIED = "not tried"  # how the reason of a candidate left untried begins


def verdict(row: dict) -> str:
    """'accepted', 'rejected', or 'not tried' (a portfolio candidate after the accepted one) for a
    history row of a sweep."""
    if row.get("accepted"):
        return "accepted"
    if row.get("candidate") is not None and str(row.get("reason") or "").startswith(NOT_TRIED):
        return NOT_TRIED
    return "rejected"


@dataclass(frozen=True)
class Candidate:
    index: int
    radius_factor: float  # times the layer's current radius
    seed: int  # of its point sample

    @property
    def label(self) -> str:
        return f"c{self.index}"


RADIUS_FACTORS = (1.0, 2.0, 0.5)


def radius_factor(j: int) -> float:
    """1, 2, 1/2, 1, 2, 1/2, ... for candidates 0, 1, 2, ..."""
    return RADIUS_FACTORS[j % len(RADIUS_FACTORS)]


def candidate_seed(seed: int, j: int) -> int:
    """The point-sample seed of candidate j of the sweep whose own seed is `seed` (j=0: that seed);
    a SeedSequence of both, so the samples of different sweeps and candidates are independent."""
    if j == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(j)]).generate_state(1, np.uint32)[0])


def plan(k: int, seed: int) -> list[Candidate]:
    """The K candidates of a sweep with point seed `seed`."""
    return [Candidate(j, radius_factor(j), candidate_seed(seed, j)) for j in range(k)]


def same_problem(a: SweepJob, b: SweepJob) -> bool:
    """Two prepared candidates that would solve the same instance (same layer, radius and points)."""
    return a.layer == b.layer and a.radius == b.radius and np.array_equal(a.points, b.points) and \
        np.array_equal(a.keep_points, b.keep_points)


def gain(task: str, job: SweepJob, outcome: SweepOutcome) -> float | None:
    """Relative improvement of the solver's loss on the job's points by its answer (see the module
    docstring); None when the outcome has no usable answer or the instance carries no network."""
    from gdsolver.formulate.claims import can_check, outputs

    if not outcome.usable or outcome.x is None:
        return None
    inst, solved = job.instance, outcome.instance or job.instance
    if not (can_check(inst) and can_check(solved)):
        return None
    y = inst.data["y"]
    if task == "classification":
        y = y.astype(np.int64)
    mode = inst.meta.get("mode")
    before = sweep_loss(task, outputs(inst), y, job.margin, mode)
    after = sweep_loss(task, outputs(solved, outcome.x), y, job.margin, mode)
    return float((before - after) / max(abs(before), np.finfo(np.float64).tiny))


def order(gains: list[float | None]) -> list[int]:
    """Candidate numbers in the order they are tried: usable ones by gain (highest first, ties
    to the lower number), then the rest by number."""
    usable = sorted((i for i, g in enumerate(gains) if g is not None and np.isfinite(g)), key=lambda i: (-gains[i], i))
    return usable + [i for i in range(len(gains)) if i not in usable]


__all__ = ["NOT_TRIED", "verdict", "Candidate", "plan", "radius_factor", "same_problem", "candidate_seed", "gain", "order"]
