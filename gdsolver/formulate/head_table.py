"""The heads a sweep can put on the network's outputs, as one table: (task, mode) -> the head's
builder (gdsolver.formulate.heads), the sense of the objective, and the points a sweep with it
formulates when the caller says "auto". sweep_instance looks the head up here; the trainers'
and `gdsolver compile`'s defaults (gdsolver.train.sweep) are read from the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gdsolver.errors import GdsolverError
from gdsolver.formulate import heads
from gdsolver.formulate.expr import LinExpr
from gdsolver.ir.instance import InstanceBuilder
from gdsolver.modeldef import as_finite_array

# first-round tangents of r^2 per entry besides the current residual: evenly spread over the
# residual's interval over the box, so the first (possibly only, under a time limit) MILP of a
# hidden-layer sweep already sees the parabola's shape, not one line of it
SQUARED_GRID = 5
# the head when none is named, on every entry point (trainer, `gdsolver compile`, sweep_instance):
# the loss being trained. Classification "ce" was measured on digits (docs/benchmarks.md): it
# lowered the test cross-entropy 0.637 -> 0.555 over 5 seeds with every sweep accepted, where the
# counting heads were rejected by the validation check in 9 of 10 (paper) and 10 of 10 (count+ce)
DEFAULT_MODE = {"classification": "ce", "regression": "squared"}
DEFAULT_MARGIN = {"classification": 1e-3, "regression": 0.0}


@dataclass(frozen=True)
class Points:
    """The points of the data a sweep formulates when the caller says "auto"."""

    lp: int | None  # nothing from the swept layer on is a ReLU (None: every point)
    mip: int | None  # a ReLU from the swept layer on: one binary per point and unit
    # the last layer with an identity output solved directly (pipeline convex="direct")
    direct: int | None = None
    # picked among the misclassified points (the counting heads, as in the paper), not a sample
    misclassified: bool = False
    # outside a trainer (`gdsolver compile`, with no validation check to reject a sweep): this
    # many currently correct points (a seeded sample) must stay correct
    keep_correct: int = 0


@dataclass
class HeadInput:
    """What a head is built from: the outputs over the box, the targets (class labels (T,) or
    targets (T, M)), the current outputs o0 (T, M), and the head's own arguments."""

    bld: InstanceBuilder
    out: LinExpr
    target: np.ndarray
    o0: np.ndarray
    margin: float
    keep: np.ndarray
    anchors: np.ndarray | None
    correct: np.ndarray | None


# builder: HeadInput -> (meta entries, the tangent points to store with the instance or None)
Builder = Callable[[HeadInput], tuple[dict, np.ndarray | None]]


@dataclass(frozen=True)
class Head:
    task: str
    mode: str
    sense: str
    build: Builder
    points: Points
    smooth: bool = False  # a surrogate refined in rounds (gdsolver.formulate.refine)
    then: Head | None = None  # the second stage, built when the first stage's decisions are given


def _count(mode: str) -> Builder:
    def build(h: HeadInput) -> tuple[dict, np.ndarray | None]:
        return heads.count(h.bld, h.out, h.target, margin=h.margin, mode=mode, keep=h.keep), None
    return build


def _count_stage(h: HeadInput) -> tuple[dict, np.ndarray | None]:
    meta = heads.count(h.bld, h.out, h.target, margin=h.margin, mode="compact", keep=h.keep)
    return {**meta, "stage": "count"}, h.anchors  # tangent points given now are kept for the ce stage


def _ce_stage(h: HeadInput) -> tuple[dict, np.ndarray | None]:
    correct = np.asarray(h.correct, np.float64).ravel()
    T = h.o0.shape[0]
    if correct.shape != (T,) or not np.all((correct == 0) | (correct == 1)):
        raise GdsolverError(f"correct: expected {T} decisions of 0 or 1, got shape {correct.shape}")
    h.correct = correct
    counts = heads.count(h.bld, h.out, h.target, margin=h.margin, mode="compact", keep=h.keep, fixed=h.correct)
    meta, anchors = _ce(h)
    return {**meta, "stage": "ce", "count": counts["fixed_count"],
            "current_correct": counts["current_correct"]}, anchors


def _ce(h: HeadInput) -> tuple[dict, np.ndarray | None]:
    anchors = check_anchors(h.anchors, h.o0, "ce")
    return heads.ce(h.bld, h.out, h.target, anchors), anchors


def _squared(h: HeadInput) -> tuple[dict, np.ndarray | None]:
    T, M = h.o0.shape
    anchors = h.anchors
    if anchors is None:  # the current residual, and a grid over each residual's interval over the box
        lo = h.out.lo.reshape(T, M) - h.target
        hi = h.out.hi.reshape(T, M) - h.target
        grid = lo[:, :, None] + (hi - lo)[:, :, None] * np.linspace(0.0, 1.0, SQUARED_GRID)
        anchors = np.concatenate([(h.o0 - h.target)[:, :, None], grid], axis=2)
    anchors = check_anchors(anchors, h.o0 - h.target, "squared")
    return heads.squared(h.bld, h.out, h.target, anchors.reshape(T * M, -1)), anchors


def _l1(h: HeadInput) -> tuple[dict, np.ndarray | None]:
    return heads.l1(h.bld, h.out, h.target), None


def _paper_regression(h: HeadInput) -> tuple[dict, np.ndarray | None]:
    return heads.paper_regression(h.bld, h.out, h.target, margin=h.margin), None


# The points (train.sweep.default_points): the counting heads 32 misclassified points, as in the
# paper. "ce": a seeded sample of 256 (its tangent rounds are LPs with a row per point per round),
# 32 with ReLU binaries, and 4096 (more than the data: all) when the pipeline solves it directly
# (scipy's cost grows with the points linearly, and a small sample over-fits). Regression: every
# point when the sweep is an LP, else 50, chosen on the validation split (polynomial and formula,
# L-BFGS best of 5 and Adam, hidden sweeps judged after the final-layer refit): with 50 the hidden
# layer's MIP is solved to optimality, tangent rounds included, within a 10 s budget on a loaded
# 2-core machine, where 150 points hit the time limit in the first round with an answer worse than
# the start.
COUNTING = Points(lp=32, mip=32, misclassified=True, keep_correct=256)
CE = Points(lp=256, mip=32, direct=4096)
REGRESSION = Points(lp=None, mip=50)

_CE_STAGE = Head("classification", "count+ce", "min", _ce_stage, COUNTING, smooth=True)
HEADS: dict[tuple[str, str], Head] = {(h.task, h.mode): h for h in (
    Head("classification", "paper", "max", _count("paper"), COUNTING),
    Head("classification", "compact", "max", _count("compact"), COUNTING),
    Head("classification", "ce", "min", _ce, CE, smooth=True),
    Head("classification", "count+ce", "max", _count_stage, COUNTING, smooth=True, then=_CE_STAGE),
    Head("regression", "l1", "min", _l1, REGRESSION),
    Head("regression", "paper", "min", _paper_regression, REGRESSION),
    Head("regression", "squared", "min", _squared, REGRESSION, smooth=True),
)}
CLASSIFICATION_MODES = tuple(m for t, m in HEADS if t == "classification")
REGRESSION_MODES = tuple(m for t, m in HEADS if t == "regression")
SMOOTH_MODES = tuple(dict.fromkeys(h.mode for h in HEADS.values() if h.smooth))  # refined in rounds


def head_for(task: str, mode: str | None) -> Head:
    """The head of `mode` for `task` (None: the task's default, the loss being trained)."""
    mode = mode or DEFAULT_MODE[task]
    if (task, mode) not in HEADS:
        modes = [m for t, m in HEADS if t == task]
        raise GdsolverError(f"mode: {mode!r} is not a {task} mode, expected one of {modes}")
    return HEADS[task, mode]


def check_anchors(anchors: np.ndarray | None, current: np.ndarray, mode: str) -> np.ndarray:
    """Tangent points: given ones, else the current outputs (residuals for "squared": (T, M, 1);
    logits for "ce": (T, 1, M))."""
    if anchors is None:
        return current[:, :, None] if mode == "squared" else current[:, None, :]
    a = as_finite_array("anchors", anchors, 3)
    T, M = current.shape
    want = (T, M) if mode == "squared" else (T, None, M)
    if a.shape[0] != T or (mode == "squared" and a.shape[1] != M) or (mode != "squared" and a.shape[2] != M):
        raise GdsolverError(f"anchors: shape {a.shape} does not fit {T} points and {M} outputs "
                            f"(expected {'(T, M, A)' if mode == 'squared' else '(T, A, M)'}; {want})")
    return a
