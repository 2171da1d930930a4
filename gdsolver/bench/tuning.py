"""Learning-rate tuning shared by the paper benchmarks: one rule for every method.

A GD baseline is run at every learning rate of a small grid for each seed; the rate kept for
a (problem, method) is the one with the lowest MEAN validation loss over the seeds (never the
test split, never one seed). A run that diverged counts as an infinite loss, so a rate that
diverges on any seed is never chosen; ties go to the smaller rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from gdsolver.train.methods import gd_baseline_names

LR_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 0.1)
TUNED_METHODS = tuple(gd_baseline_names())  # the paper's GD baselines (sgd, sgd-lrs, adam, adam-lrs), each tuned


def lbfgs_name(restarts: int) -> str:
    """Row name of L-BFGS with `restarts` initialisations (best on validation kept)."""
    return "lbfgs" if restarts <= 1 else f"lbfgs-best{restarts}"


def mean_val(values: Sequence[float | None]) -> float:
    """Mean validation loss over seeds; a missing or non-finite value (a diverged run) makes it inf."""
    if not values:
        return math.inf
    if any(v is None or not math.isfinite(v) for v in values):
        return math.inf
    return float(sum(values) / len(values))


def choose_lr(runs: Iterable[dict[str, Any]], key: str = "val_loss") -> tuple[float | None, dict[float, float]]:
    """(chosen rate, {rate: mean validation loss}) from rows with "lr" and `key` (one per seed)."""
    by_lr: dict[float, list[float | None]] = {}
    for r in runs:
        by_lr.setdefault(float(r["lr"]), []).append(r.get(key))
    scores = {lr: mean_val(v) for lr, v in sorted(by_lr.items())}
    finite = [(s, lr) for lr, s in scores.items() if math.isfinite(s)]
    return (min(finite)[1] if finite else None), scores
