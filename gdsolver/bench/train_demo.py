"""`gdsolver demo` (what `make demo` runs): what gdsolver does best, with the comparison beside
it, from the same initial weights; then every dumped solver sweep is replayed without any
training code.

1. polynomial regression (y = 3x^4 + 6x^3 + 2x^2 + x + 9 on the first two inputs; the paper's
   model Linear(3,2)-ReLU-Linear(2,2), 680 training points): Adam with a step LR schedule for
   20 epochs; GDSolver = 10 of those epochs, then rounds of sweeps over BOTH layers (the hidden
   layer with its ReLUs encoded exactly, then the output layer), squared-error heads; and the
   baseline a practitioner would use for a model this small, full-batch L-BFGS best of 5
   restarts, with and without sweeps on top. Then the same at equal time (3 s each): Adam
   continued, L-BFGS restarts filling the time (best on validation), and the time-aware
   GDSolver on each (budget_s: it spends the seconds on what paid most per second so far).
2. digits classification (MLP 64-32-10): Adam with the plateau schedule at the rate the data-
   efficiency benchmark tuned on validation (0.03), with and without final-layer sweeps on the
   cross-entropy head, for 4 epochs (a short budget: the sweeps help) and for 10 (Adam has
   converged: they do not); then at equal time (DIGITS_BUDGET_S each): Adam continued, the
   time-aware GDSolver (its cross-entropy sweep of the last layer runs at the end of the budget) and
   the same without sweeps (its ablation); not dumped (building and writing a dump takes longer
   than this budget, and the equal-time bench does not dump either).
`quick=True` (tests) keeps only Adam vs GDSolver on the regression, with shorter solves.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ADAM_LR = 0.01
DIGITS_ADAM_LR = 0.03  # adam-lrs's rate for the MLP on all 1117 points, chosen on validation by bench data-efficiency
SWEEPS = dict(layers="all", radius=1.0, phase_epochs=10, max_sweeps=2, time_limit=10.0)
BUDGET_S = 3.0  # the equal-time case: seconds per method
BUDGET_SWEEPS = dict(layers="all", radius=1.0)  # the time-aware GDSolver decides when to sweep
DIGITS_BUDGET_S = 0.15  # 2-4 epochs of the digits MLP on a quiet 2-core machine, where its sweeps pay (bench equal-time)

DEMO_CASES: tuple[dict[str, Any], ...] = (
    {"dataset": "polynomial", "model": "paper", "epochs": 20, "methods": {
        "adam-lrs": dict(lr=ADAM_LR, lr_schedule="step"),
        "gdsolver": dict(optimizer="adam", lr=ADAM_LR, lr_schedule="step", patience=None, **SWEEPS),
        "lbfgs": dict(restarts=5),
        "gdsolver-lbfgs": dict(restarts=5, patience=None, **SWEEPS),
    }},
    # equal time: each method gets the same seconds (a user pays in seconds, not epochs)
    {"dataset": "polynomial", "name": f"polynomial-{BUDGET_S:g}-seconds", "model": "paper", "epochs": 10**6,
     "budget_s": BUDGET_S, "methods": {
        "adam-lrs": dict(lr=ADAM_LR, lr_schedule="step", budget_s=BUDGET_S),
        "gdsolver": dict(optimizer="adam", lr=ADAM_LR, lr_schedule="step", budget_s=BUDGET_S, **BUDGET_SWEEPS),
        "lbfgs": dict(restarts="fill", patience=2, budget_s=BUDGET_S),
        "gdsolver-lbfgs": dict(budget_s=BUDGET_S, **BUDGET_SWEEPS),
    }},
    *({"dataset": "digits", "name": f"digits-{e}-epochs", "model": "mlp", "epochs": e, "methods": {
        "adam-lrs": dict(lr=DIGITS_ADAM_LR),
        "gdsolver": dict(optimizer="adam", lr=DIGITS_ADAM_LR, lr_schedule="plateau", max_sweeps=2)}}
      for e in (4, 10)),
    # equal time on digits: Adam continued against the time-aware GDSolver, whose last-layer sweep runs
    # at the end of the budget
    {"dataset": "digits", "name": f"digits-{DIGITS_BUDGET_S:g}-seconds", "model": "mlp", "epochs": 10**6,
     "budget_s": DIGITS_BUDGET_S, "dump": False, "methods": {
        "adam-lrs": dict(lr=DIGITS_ADAM_LR, patience=None, budget_s=DIGITS_BUDGET_S),
        "gdsolver": dict(optimizer="adam", lr=DIGITS_ADAM_LR, lr_schedule="plateau", budget_s=DIGITS_BUDGET_S),
        "gdsolver-no-sweeps": dict(optimizer="adam", lr=DIGITS_ADAM_LR, lr_schedule="plateau",
                                   budget_s=DIGITS_BUDGET_S)}},
)
QUICK_CASES: tuple[dict[str, Any], ...] = (
    {"dataset": "polynomial", "model": "paper", "epochs": 20, "methods": {
        "adam-lrs": DEMO_CASES[0]["methods"]["adam-lrs"],
        "gdsolver": {**DEMO_CASES[0]["methods"]["gdsolver"], "time_limit": 3.0, "max_sweeps": 1}}},
)


def run_training_demo(on_result: Callable[[str, list], None], *, dump_dir: str | os.PathLike | None = None,
                      seed: int = 0, threads: int = 1, quick: bool = False) -> list[tuple[str, list]]:
    """Train each demo case's methods; return [(case title, RunResults)]."""
    from gdsolver.train.models import build_model
    from gdsolver.modelfile.data import load_split_for, outputs_of
    from gdsolver.train.runs import run_methods

    out = []
    root = Path(dump_dir) if dump_dir is not None else Path(tempfile.mkdtemp(prefix="gdsolver-demo-"))
    for case in QUICK_CASES if quick else DEMO_CASES:
        split = load_split_for(case["dataset"], None, seed=seed)
        net = build_model(case["model"], tuple(split.train[0].shape[1:]), outputs_of(split), seed=seed,
                          dataset=case["dataset"])
        methods = case["methods"]
        dump = root / case.get("name", case["dataset"]) if case.get("dump", True) else None
        results = run_methods(list(methods), net, split, dump_dir=dump,
                              seed=seed, threads=threads, epochs=case["epochs"], method_opts=methods)
        length = f"{case['budget_s']:g} s each" if "budget_s" in case else f"{case['epochs']} epochs"
        title = (f"{case['dataset']} ({split.task}): {len(split.train[1])} train / {len(split.val[1])} val / "
                 f"{len(split.test[1])} test points, {length}, seed {seed}")
        on_result(title, results)
        out.append((title, results))
    return out
