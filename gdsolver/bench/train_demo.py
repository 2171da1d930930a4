"""`gdsolver demo` (what `make demo` runs): train on built-in data with GDSolver (HiGHS)
and the SGD baseline from the same initial weights, compare them, then replay the dumped
solver sweeps without any training code.

1. digits (sklearn's bundled 8x8 digits): MLP 64-32-10, SGD lr 0.05, batch 32, 10 epochs;
   GDSolver: GD until the validation loss plateaus (patience 2), then a sweep on 32
   misclassified training points, at most 2 sweeps.
2. affine regression equation (y = 3x + 4, the paper's model Linear(3,2)-ReLU-Linear(2,2)):
   5 epochs of GD, then one sweep (an L1 LP over all training points).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEMO_CASES: tuple[dict[str, Any], ...] = (
    {"dataset": "digits", "model": "mlp", "epochs": 10, "max_sweeps": 2},
    {"dataset": "affine", "model": "paper", "epochs": 5, "max_sweeps": 1},
)


def run_training_demo(on_result: Callable[[str, list], None], *, dump_dir: str | os.PathLike | None = None,
                      seed: int = 0, threads: int = 2) -> list[tuple[str, list]]:
    """Train each demo case with gdsolver and sgd; return [(case title, RunResults)]."""
    from gdsolver.train.models import build_model
    from gdsolver.train.runs import load_split_for, outputs_of, run_methods

    out = []
    root = Path(dump_dir) if dump_dir is not None else Path(tempfile.mkdtemp(prefix="gdsolver-demo-"))
    for case in DEMO_CASES:
        split = load_split_for(case["dataset"], None, seed=seed)
        net = build_model(case["model"], tuple(split.train[0].shape[1:]), outputs_of(split), seed=seed,
                          dataset=case["dataset"])
        results = run_methods(["gdsolver", "sgd"], net, split, dump_dir=root / case["dataset"], seed=seed,
                              threads=threads, epochs=case["epochs"], max_sweeps=case["max_sweeps"])
        title = (f"{case['dataset']} ({split.task}): {len(split.train[1])} train / {len(split.val[1])} val / "
                 f"{len(split.test[1])} test points, {case['epochs']} epochs, seed {seed}")
        on_result(title, results)
        out.append((title, results))
    return out
