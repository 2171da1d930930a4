"""`gdsolver bench equal-time`: every method gets the same wall time (issue 29, item 1).

A user pays in seconds, so here the methods are compared at equal wall-clock budgets, not at
equal epochs. Per workload, seed and budget B, four runs start from the SAME initial weights
(the seed draws the data where the data set is drawn, initialises the model and orders the
minibatches):

- "gd": the workload's tuned GD continued for B (`GDTrainer(..., epochs=<large>, budget_s=B)`,
  no early stopping: the same run, longer);
- "restarts": best of K on validation with K filling B (`restarts="fill"`, `budget_s=B`): each
  initialisation trains with the same GD to its plateau (patience 2, GDSolver's default), at
  most 20 L-BFGS steps for the regression model (`bench regression`'s L-BFGS best-of-K), then
  the next starts;
- "gdsolver": the time-aware GDSolver (`GDSolver(..., budget_s=B)`) with its defaults except the
  GD phase, which is the same tuned GD, each phase and restart capped like one of the restarts;
- "gdsolver-no-sweeps": its ablation, the same run with `skip_sweeps=True`.

Workloads and their tuned GD (never tuned on the test split, never on one seed):
- "polynomial", "formula": the paper's Linear(3,2)-ReLU-Linear(2,2) on the equations (1000 points
  drawn per seed: 680 train, 320 val; 1000 test). GD = full-batch L-BFGS (strong-Wolfe line
  search, lr 1: nothing to tune), the best baseline of every equation in `bench regression`'s
  tuned comparison (L-BFGS best of 5, chosen there among tuned SGD / Adam with and without
  schedule). Budgets in seconds.
- "digits": sklearn digits with the data-efficiency bench's MLP Linear(64,32)-ReLU-Linear(32,10),
  all 1117 training points; GD = Adam + plateau schedule at lr 0.03, batch 32, the rate `bench
  data-efficiency` chose for this model at n=1117 (lowest mean validation cross-entropy over its
  3 seeds, at e=4 and at e=20). Budgets in epoch-equivalents of that GD.
- "mnist": the real MNIST idx files (`data_dir`; skipped without them), MLP 784-256-128-10,
  Adam + plateau schedule, batch 128; its rate is tuned here, on the validation split (the last
  5000 training-file images), by gdsolver.bench.tuning's rule over `tuning_seeds` (seeds the
  comparison does not use), after as many epochs as the largest budget. Budgets in
  epoch-equivalents.

An epoch-equivalent is the wall time of one `fit()` of the tuned GD for one epoch (its evaluation
included), measured in the same run (median of `epoch_reps`), so budgets follow the machine.
Every time is a method's `fit()` wall time from its start: GD, evaluations, restarts, sweeps
(extraction, build, solve, refinement rounds, refit, checks) all count. A one-off untimed warm-up
per workload (a GD and a GDSolver fit on a few points) keeps lazy imports out of the first run.
Within a (seed, budget) the four methods run one after another in an order rotated by seed and
budget, so a slow drift of the machine's load favours none of them.

Reported at each budget (over the seeds): mean, median and standard deviation of the test loss
(MSE for regression, cross-entropy for classification) and the test accuracy; wins (seeds on
which a method has the lowest test loss, ties shared); the paired difference of GDSolver against
the best equal-time baseline ("gd" or "restarts", whichever has the lower mean test loss at that
budget) and against its ablation (mean difference, relative difference of the means, seeds on
which GDSolver is lower); every run's wall time (mean, max, and the largest overrun of the budget
beside the longest single step of that run).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from gdsolver.bench.plots import (fmt_num, fmt_pm, load_average, md_table, pyplot, run_header, run_metadata,
                                  save_figure, write_json)
from gdsolver.errors import GdsolverError

WORKLOADS = ("polynomial", "formula", "digits", "mnist")
REGRESSION_WORKLOADS = ("polynomial", "formula")
METHODS = ("gd", "restarts", "gdsolver", "gdsolver-no-sweeps")
BASELINES = ("gd", "restarts")  # the equal-time baselines GDSolver is judged against
GDSOLVER, ABLATION = "gdsolver", "gdsolver-no-sweeps"
LARGE_EPOCHS = 10**6  # under budget_s, epochs is only an upper bound
WITHIN = 0.05  # issue 29's target: GDSolver's mean test loss at most 5% above the best baseline
TIE_ABS = 1e-6  # differences of mean test loss below this count as ties (both at ~0)
PAY = {"regression": 0.20, "classification": 0.10}  # sweeps "pay": this relative drop against the ablation
OVERRAN = 1.25  # a run whose wall time exceeded this multiple of its budget is listed as an overrun
WIN_TIE_REL = 1e-9  # per-seed wins: losses within this relative difference share the win
CURVE_POINTS = 40  # validation-loss points kept per run of the largest budget
WARMUP_POINTS = 256

# the tuned settings the other benches chose (module docstring)
DIGITS_ADAM_LRS_LR = 0.03  # bench data-efficiency (full preset): mlp, n=1117, e=4 and e=20, adam-lrs
LBFGS_RESTART_EPOCHS = 20  # bench regression's L-BFGS runs (and best of K): 20 steps of <= 20 iterations
RESTART_PATIENCE = 2  # GDSolver's default patience: a restart trains to its plateau


@dataclass
class EqualTimeConfig:
    workloads: tuple[str, ...] = WORKLOADS
    seeds: tuple[int, ...] = tuple(range(10))
    regression_budgets: tuple[float, ...] = (1.0, 3.0, 10.0)  # seconds
    classification_budgets: tuple[float, ...] = (1.0, 2.0, 5.0)  # epoch-equivalents of the tuned GD
    methods: tuple[str, ...] = METHODS
    data_dir: str | None = None  # MNIST idx files; None: the mnist workload is skipped
    threads: int = 1
    lbfgs_restart_epochs: int = LBFGS_RESTART_EPOCHS  # at most this many L-BFGS steps per restart
    classification_restart_epochs: int | None = None  # at most this many epochs per restart; None: no cap
    restart_patience: int = RESTART_PATIENCE  # each restart trains to its plateau
    digits_lr: float = DIGITS_ADAM_LRS_LR
    digits_hidden: int = 32
    digits_batch: int = 32
    mnist_batch: int = 128
    mnist_lr: float | None = None  # None: tuned in the run on mnist_lr_grid
    mnist_lr_grid: tuple[float, ...] = (3e-4, 1e-3, 3e-3, 1e-2)
    tuning_seeds: tuple[int, ...] = (1000, 1001, 1002)
    epoch_reps: int = 5
    curves: bool = True

    def check(self) -> "EqualTimeConfig":
        bad = [w for w in self.workloads if w not in WORKLOADS]
        if bad or not self.workloads:
            raise GdsolverError(f"workload: {bad or 'none given'}, expected some of {list(WORKLOADS)}")
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise GdsolverError(f"method: {bad or 'none given'}, expected some of {list(METHODS)}")
        if not self.seeds or any(s < 0 for s in self.seeds):
            raise GdsolverError(f"seeds: give at least one seed >= 0, got {list(self.seeds)}")
        for name, b in (("regression budgets", self.regression_budgets),
                        ("classification budgets", self.classification_budgets)):
            if not b or any(not (x > 0 and math.isfinite(x)) for x in b):
                raise GdsolverError(f"{name}: give finite numbers > 0, got {list(b)}")
        for name in ("lbfgs_restart_epochs", "classification_restart_epochs", "restart_patience", "digits_hidden",
                     "digits_batch", "mnist_batch", "epoch_reps", "threads"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise GdsolverError(f"{name}: must be >= 1, got {getattr(self, name)}")
        lrs = [self.digits_lr, *([self.mnist_lr] if self.mnist_lr is not None else []), *self.mnist_lr_grid]
        if any(not (x > 0 and math.isfinite(x)) for x in lrs) or not self.mnist_lr_grid:
            raise GdsolverError("learning rates: give finite numbers > 0")
        if len(self.tuning_seeds) < 2 and self.mnist_lr is None and "mnist" in self.workloads:
            raise GdsolverError("tuning_seeds: give at least two (a rate is never chosen on one seed)")
        if set(self.tuning_seeds) & set(self.seeds) and self.mnist_lr is None and "mnist" in self.workloads:
            raise GdsolverError(f"tuning_seeds {list(self.tuning_seeds)}: must not be among the seeds compared "
                                f"{list(self.seeds)}")
        self.regression_budgets = tuple(sorted(set(float(x) for x in self.regression_budgets)))
        self.classification_budgets = tuple(sorted(set(float(x) for x in self.classification_budgets)))
        return self


QUICK = EqualTimeConfig(seeds=(0, 1, 2), regression_budgets=(1.0, 3.0), classification_budgets=(1.0, 2.0))
DEFAULT = EqualTimeConfig()
FULL = EqualTimeConfig(regression_budgets=(1.0, 3.0, 10.0, 30.0))
PRESETS = {"quick": QUICK, "default": DEFAULT, "full": FULL}


def preset_config(name: str) -> EqualTimeConfig:
    if name not in PRESETS:
        raise GdsolverError(f"preset: {name!r}, expected one of {list(PRESETS)}")
    return replace(PRESETS[name])


def task_of(workload: str) -> str:
    return "regression" if workload in REGRESSION_WORKLOADS else "classification"


def mnist_skip_reason(cfg: EqualTimeConfig) -> str | None:
    """Why the mnist workload cannot run (None: it can): no --data-dir, or no idx files there."""
    if "mnist" not in cfg.workloads:
        return None
    if cfg.data_dir is None:
        return "no --data-dir given: the real MNIST idx files are needed (e.g. --data-dir ../shared/data/mnist)"
    from gdsolver.data.idx import IDX_FILES, idx_file

    missing = [base for base in IDX_FILES.values() if idx_file(Path(cfg.data_dir), base) is None]
    if missing:
        return f"{cfg.data_dir}: no MNIST idx files {missing} (raw or .gz)"
    return None


def skipped_workloads(cfg: EqualTimeConfig) -> dict[str, str]:
    reason = mnist_skip_reason(cfg)
    return {"mnist": reason} if reason else {}


def total_units(cfg: EqualTimeConfig) -> int:
    """Progress units: one per timed run and one per rate-tuning run."""
    skip = skipped_workloads(cfg)
    n = 0
    for w in cfg.workloads:
        if w in skip:
            continue
        budgets = cfg.regression_budgets if task_of(w) == "regression" else cfg.classification_budgets
        n += len(cfg.seeds) * len(budgets) * len(cfg.methods)
        if w == "mnist" and cfg.mnist_lr is None:
            n += len(cfg.mnist_lr_grid) * len(cfg.tuning_seeds)
    return n


# ---------------------------------------------------------------------------------- workloads
@dataclass
class Workload:
    """One workload, resolved: data, model, the tuned GD and the restarts' length."""

    name: str
    task: str
    model: str  # description
    data: str  # description
    gd: dict[str, Any]  # optimizer, lr, lr_schedule, batch_size
    gd_label: str
    gd_source: str
    restart_epochs: int | None  # cap per restart (None: to the plateau only)
    budgets: tuple[float, ...]  # in `units`
    units: str  # "s" or "epochs"
    epoch_s: float | None = None  # classification: one epoch-equivalent (s)
    epoch_reps_s: list[float] = field(default_factory=list)
    tuning: dict[str, Any] | None = None
    split_cache: Any = field(default=None, repr=False)  # a split that does not depend on the seed (mnist)

    def budget_seconds(self) -> list[float]:
        return [b if self.units == "s" else b * float(self.epoch_s) for b in self.budgets]

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "split_cache"}
        d["budgets_s"] = self.budget_seconds() if self.units == "s" or self.epoch_s else None
        return d


def _mnist_mlp(seed: int):
    import torch
    from torch import nn

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 10))
    finally:
        torch.random.set_rng_state(state)


def setup(wl: Workload, cfg: EqualTimeConfig, seed: int):
    """(split, initial model) of a workload and seed: the same seed, the same weights."""
    from gdsolver.train.models import build_model
    from gdsolver.modelfile.data import load_split_for

    if wl.name in REGRESSION_WORKLOADS:
        from gdsolver.bench.regression_setup import regression_setup

        return regression_setup(wl.name, seed)
    if wl.name == "digits":
        split = load_split_for("digits", None, seed=seed)
        return split, build_model("mlp", tuple(split.train[0].shape[1:]), 10, hidden=cfg.digits_hidden, seed=seed)
    if wl.split_cache is None:  # mnist: the split is the files' (the seed is unused)
        wl.split_cache = load_split_for("mnist", None, seed=0, data_dir=cfg.data_dir)
    return wl.split_cache, _mnist_mlp(seed)


def resolve(name: str, cfg: EqualTimeConfig) -> Workload:
    if name in REGRESSION_WORKLOADS:
        return Workload(name, "regression", "Linear(3,2)-ReLU-Linear(2,2)",
                        f"equation {name}: 680 train / 320 val / 1000 test points drawn per seed",
                        dict(optimizer="lbfgs", lr=None, lr_schedule=None, batch_size=32), "L-BFGS",
                        "full-batch L-BFGS, strong-Wolfe line search, lr 1 (nothing to tune); the best baseline of "
                        "bench regression's tuned comparison on every equation (L-BFGS best of 5)",
                        cfg.lbfgs_restart_epochs, cfg.regression_budgets, "s")
    if name == "digits":
        return Workload(name, "classification", f"Linear(64,{cfg.digits_hidden})-ReLU-Linear({cfg.digits_hidden},10)",
                        "sklearn digits: 1117 train / 320 val / 360 test (seeded permutation)",
                        dict(optimizer="adam", lr=cfg.digits_lr, lr_schedule="plateau", batch_size=cfg.digits_batch),
                        f"Adam + plateau schedule, lr {cfg.digits_lr:g}, batch {cfg.digits_batch}",
                        "the rate bench data-efficiency chose for this MLP at n=1117 (lowest mean validation "
                        "cross-entropy over 3 seeds, at e=4 and e=20)",
                        cfg.classification_restart_epochs, cfg.classification_budgets, "epochs")
    return Workload(name, "classification", "MLP 784-256-128-10 (Flatten, Linear, ReLU, Linear, ReLU, Linear)",
                    f"MNIST idx files from {cfg.data_dir}: 55000 train / 5000 val (the last of the training file) / "
                    "10000 test",
                    dict(optimizer="adam", lr=cfg.mnist_lr, lr_schedule="plateau", batch_size=cfg.mnist_batch),
                    "", "", cfg.classification_restart_epochs, cfg.classification_budgets, "epochs")


def _gd_trainer(wl: Workload, model, seed: int, cfg: EqualTimeConfig, **kw: Any):
    from gdsolver.train.trainer import GDTrainer

    gd = wl.gd
    return GDTrainer(model, wl.task, optimizer=gd["optimizer"], lr=gd["lr"], lr_schedule=gd["lr_schedule"],
                     batch_size=gd["batch_size"], seed=seed, threads=cfg.threads, **kw)


def make_trainer(method: str, wl: Workload, model, seed: int, budget_s: float, cfg: EqualTimeConfig):
    """The trainer of `method` for budget `budget_s` (module docstring)."""
    if method == "gd":
        return _gd_trainer(wl, model, seed, cfg, epochs=LARGE_EPOCHS, patience=None, budget_s=budget_s)
    if method == "restarts":
        return _gd_trainer(wl, model, seed, cfg, epochs=wl.restart_epochs or LARGE_EPOCHS,
                           patience=cfg.restart_patience, restarts="fill", budget_s=budget_s)
    if method in (GDSOLVER, ABLATION):
        from gdsolver.train.hybrid import GDSolver

        gd = wl.gd
        extra = {"skip_sweeps": True} if method == ABLATION else {}
        return GDSolver(model, wl.task, optimizer=gd["optimizer"], lr=gd["lr"], lr_schedule=gd["lr_schedule"],
                        batch_size=gd["batch_size"], epochs=wl.restart_epochs or LARGE_EPOCHS, seed=seed,
                        threads=cfg.threads, budget_s=budget_s, **extra)
    raise GdsolverError(f"method: {method!r}, expected one of {list(METHODS)}")


def _subset(data, n: int):
    return data[0][:n], data[1][:n]


def warm_up(wl: Workload, cfg: EqualTimeConfig) -> None:
    """Untimed: one GD and one GDSolver fit (with a sweep) on a few points, so that lazy imports
    (torch's optimizers, the solver stack) are not charged to the first timed run."""
    from gdsolver.train.hybrid import GDSolver
    from gdsolver.train.trainer import warm_up as torch_warm_up

    torch_warm_up()
    split, init = setup(wl, cfg, cfg.seeds[0])
    train, val = _subset(split.train, WARMUP_POINTS), _subset(split.val, WARMUP_POINTS)
    _gd_trainer(wl, init, 0, cfg, epochs=1).fit(train, val)
    gd = wl.gd
    try:
        GDSolver(init, wl.task, optimizer=gd["optimizer"], lr=gd["lr"], lr_schedule=gd["lr_schedule"],
                 batch_size=gd["batch_size"], epochs=1, max_sweeps=1, seed=0, threads=cfg.threads).fit(train, val)
    except GdsolverError:
        pass  # a warm-up only


def measure_epoch(wl: Workload, cfg: EqualTimeConfig) -> None:
    """One epoch-equivalent: the median wall time of `epoch_reps` fits of the tuned GD for one
    epoch (evaluation included), from the first seeds' initial weights."""
    from gdsolver.train.trainer import clone_model

    reps = []
    for i in range(cfg.epoch_reps):
        seed = cfg.seeds[i % len(cfg.seeds)]
        split, init = setup(wl, cfg, seed)
        tr = _gd_trainer(wl, clone_model(init), seed, cfg, epochs=1)
        t = time.perf_counter()
        tr.fit(split.train, split.val)
        reps.append(time.perf_counter() - t)
    wl.epoch_reps_s = reps
    wl.epoch_s = float(statistics.median(reps))


def tune_mnist(wl: Workload, cfg: EqualTimeConfig, tick: Callable[[str], None]) -> None:
    """The rate of MNIST's Adam + schedule: gdsolver.bench.tuning's rule (lowest mean validation
    loss over the tuning seeds, a diverged run is infinite) after max(budgets) epochs."""
    from gdsolver.bench.tuning import choose_lr
    from gdsolver.train.trainer import clone_model

    epochs = max(1, math.ceil(max(wl.budgets)))
    runs = []
    t0 = time.perf_counter()
    for lr in cfg.mnist_lr_grid:
        for seed in cfg.tuning_seeds:
            split, init = setup(wl, cfg, seed)
            tr = _gd_trainer(replace(wl, gd={**wl.gd, "lr": lr}), clone_model(init), seed, cfg, epochs=epochs)
            try:
                h = tr.fit(split.train, split.val)
                val = h.epochs[-1]["val_loss"]
            except GdsolverError:
                val = None
            runs.append({"lr": lr, "seed": seed, "val_loss": val})
            tick(f"mnist tuning lr={lr:g} seed {seed}")
    chosen, scores = choose_lr(runs, key="val_loss")
    if chosen is None:
        raise GdsolverError(f"mnist: every rate of {list(cfg.mnist_lr_grid)} diverged")
    wl.gd = {**wl.gd, "lr": chosen}
    wl.tuning = {"grid": list(cfg.mnist_lr_grid), "seeds": list(cfg.tuning_seeds), "epochs": epochs,
                 "mean_val_loss": {f"{k:g}": v for k, v in scores.items()}, "chosen": chosen, "runs": runs,
                 "wall_s": time.perf_counter() - t0}


def _finish_mnist(wl: Workload, cfg: EqualTimeConfig) -> None:
    lr = wl.gd["lr"]
    wl.gd_label = f"Adam + plateau schedule, lr {lr:g}, batch {cfg.mnist_batch}"
    if wl.tuning:
        t = wl.tuning
        wl.gd_source = (f"rate tuned in this run: lowest mean validation cross-entropy after {t['epochs']} epochs "
                        f"over tuning seeds {t['seeds']} (not compared), grid {t['grid']}")
    else:
        wl.gd_source = "rate given (mnist_lr)"


# ---------------------------------------------------------------------------------- running
def _max_step(rows: list[dict[str, Any]]) -> float:
    """The longest single move of a run: the largest gap between consecutive rows' elapsed time
    (an epoch with its evaluation, or a sweep), the first row's from the start."""
    ts = [float(r["elapsed_s"]) for r in rows if r.get("elapsed_s") is not None]
    if not ts:
        return 0.0
    gaps = [ts[0]] + [b - a for a, b in zip(ts, ts[1:])]
    return float(max(gaps))


def _curve(rows: list[dict[str, Any]], n: int = CURVE_POINTS) -> list[list[float | None]]:
    """[elapsed_s, epoch, val_loss, restart] of the rows with a validation loss, at most n of them
    (evenly spaced, the last kept)."""
    pts = [[r["elapsed_s"], r.get("epoch"), r["val_loss"], r.get("restart")] for r in rows
           if r.get("val_loss") is not None and r.get("elapsed_s") is not None]
    if len(pts) > n:
        idx = sorted(set(np.linspace(0, len(pts) - 1, n).round().astype(int).tolist()))
        pts = [pts[i] for i in idx]
    return pts


def run_one(method: str, wl: Workload, split, init, seed: int, budget: float, budget_s: float,
            cfg: EqualTimeConfig, *, curve: bool = False) -> dict[str, Any]:
    """One timed run: the trainer's fit() wall time, test / validation figures, what it did."""
    from gdsolver.train.trainer import clone_model

    row: dict[str, Any] = {"workload": wl.name, "task": wl.task, "seed": seed, "budget": budget,
                           "budget_s": budget_s, "method": method}
    try:
        tr = make_trainer(method, wl, clone_model(init), seed, budget_s, cfg)
        t = time.perf_counter()
        h = tr.fit(split.train, split.val)
        wall = time.perf_counter() - t
    except Exception as exc:  # noqa: BLE001 - one failed run is a row of the report, not the end of the bench
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return {**row, "error": f"{type(exc).__name__}: {msg}"}
    test, val = tr.evaluate(split.test), tr.evaluate(split.val)
    s = h.summary()
    moves: dict[str, int] = {}
    for d in getattr(h, "decisions", None) or []:
        k = "stop" if d.get("move") is None else str(d.get("move"))
        moves[k] = moves.get(k, 0) + 1
    row.update({"test_loss": test["loss"], "test_acc": test["acc"], "val_loss": val["loss"], "val_acc": val["acc"],
                "train_loss": s["train_loss"], "wall_s": wall, "over_s": wall - budget_s,
                "max_step_s": _max_step(h.rows), "epochs": len(h.epochs), "restarts": s.get("restarts", 1),
                "sweeps": s["sweeps"], "sweeps_accepted": s["sweeps_accepted"], "gd_time_s": s["gd_time_s"],
                "solver_time_s": s["solver_time_s"], "moves": moves or None, "error": None})
    if curve:
        row["curve"] = _curve(h.rows)
    return row


def run_workload(wl: Workload, cfg: EqualTimeConfig, tick: Callable[[str], None],
                 sample_load: Callable[[str], None], *, done: Sequence[int] = (),
                 seed_done: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """The timed runs of a workload, seed by seed (seeds in `done` skipped: a resumed run);
    `seed_done` gets the rows so far after each seed."""
    budgets_s = wl.budget_seconds()
    rows: list[dict[str, Any]] = []
    methods = list(cfg.methods)
    for si, seed in enumerate(cfg.seeds):
        if seed in done:
            continue
        split, init = setup(wl, cfg, seed)
        sample_load(f"{wl.name} seed {seed}")
        for bi, (b, bs) in enumerate(zip(wl.budgets, budgets_s)):
            k = (si + bi) % len(methods)  # rotated order: a drift of the machine's load favours no method
            for m in methods[k:] + methods[:k]:
                rows.append(run_one(m, wl, split, init, seed, b, bs, cfg,
                                    curve=cfg.curves and b == max(wl.budgets)))
                r = rows[-1]
                tick(f"{wl.name} seed {seed} B={b:g}{'' if wl.units == 's' else ' ep'}: {m} "
                     + (f"{r['test_loss']:.4g} in {r['wall_s']:.2f} s" if r.get("error") is None else "failed"))
        if seed_done is not None:
            seed_done(rows)
    return rows


def _workload_from_json(w: dict[str, Any]) -> Workload:
    names = {f.name for f in fields(Workload)}
    return Workload(**{k: (tuple(v) if k == "budgets" else v) for k, v in w.items() if k in names})


def load_partial(path: Path, cfg: EqualTimeConfig) -> dict[str, Any]:
    """What an interrupted run of the same configuration finished: its workloads (settings, tuned
    rate, epoch-equivalent), the rows of every (workload, seed) it completed, its load samples.
    Refused (GdsolverError) when that run's seeds, budgets or methods differ from cfg's."""
    import json

    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GdsolverError(f"--resume: cannot read {path}: {exc}") from None
    want = {"seeds": list(cfg.seeds), "methods": list(cfg.methods), "regression_budgets":
            list(cfg.regression_budgets), "classification_budgets": list(cfg.classification_budgets)}
    got = old.get("config")
    if got is not None:
        bad = [k for k, v in want.items() if [float(x) if "budget" in k else x for x in got.get(k, [])] != v]
        if bad:
            raise GdsolverError(f"--resume: {path} is a run with other {', '.join(bad)}")
    wls = {w["name"]: _workload_from_json(w) for w in old.get("workloads", [])}
    for w in wls.values():
        b = cfg.regression_budgets if w.task == "regression" else cfg.classification_budgets
        if tuple(w.budgets) != tuple(b):
            raise GdsolverError(f"--resume: {path} ran {w.name} at budgets {list(w.budgets)}, not {list(b)}")
    rows, done = [], {}
    for name in wls:
        for seed in cfg.seeds:
            rs = [r for r in old.get("rows", []) if r["workload"] == name and r["seed"] == seed]
            if rs and {(r["budget"], r["method"]) for r in rs} == {(b, m) for b in wls[name].budgets
                                                                   for m in cfg.methods}:
                rows += rs
                done.setdefault(name, []).append(seed)
    return {"workloads": wls, "rows": rows, "done": done, "load_samples": old.get("load_samples", []),
            "command": old.get("command"), "started": old.get("started") or (old.get("machine") or {}).get("date"),
            "git": old.get("git")}


# ---------------------------------------------------------------------------------- summary
def _stats(v: Sequence[float]) -> dict[str, float]:
    a = np.array([x for x in v if x is not None and math.isfinite(x)], float)
    if not len(a):
        return {"n": 0, "mean": math.nan, "median": math.nan, "std": math.nan, "q25": math.nan, "q75": math.nan}
    return {"n": int(len(a)), "mean": float(a.mean()), "median": float(np.median(a)),
            "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "q25": float(np.percentile(a, 25)),
            "q75": float(np.percentile(a, 75))}


def _paired(by: dict[str, dict[int, dict[str, Any]]], a: str, b: str, seeds: Sequence[int]) -> dict[str, Any]:
    """a against b on the seeds both finished: mean difference (a - b), its std, the relative
    difference of the means, and on how many seeds a is lower."""
    pairs = [(by[a][s]["test_loss"], by[b][s]["test_loss"]) for s in seeds
             if _ok(by.get(a, {}).get(s)) and _ok(by.get(b, {}).get(s))]
    if not pairs:
        return {"ref": b, "n": 0, "mean_diff": math.nan, "std_diff": math.nan, "rel": math.nan, "better": 0,
                "worse": 0}
    x, y = np.array(pairs, float).T
    d = x - y
    rel = (x.mean() - y.mean()) / y.mean() if y.mean() else (0.0 if x.mean() == y.mean() else math.inf)
    return {"ref": b, "n": len(d), "mean_diff": float(d.mean()),
            "std_diff": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
            "rel": float(rel), "ref_mean": float(y.mean()), "mean": float(x.mean()),
            "better": int((d < 0).sum()), "worse": int((d > 0).sum())}


def _ok(r: dict[str, Any] | None) -> bool:
    return r is not None and r.get("error") is None and r.get("test_loss") is not None \
        and math.isfinite(r["test_loss"])


def _moves_mean(rows: list[dict[str, Any]]) -> dict[str, float] | None:
    """GDSolver under a budget: the mean number of times each move was chosen per run
    (history.decisions; "stop" is the final choice), None for a trainer that makes none."""
    ms = [r.get("moves") or {} for r in rows]
    names = sorted({k for m in ms for k in m})
    return {k: float(np.mean([m.get(k, 0) for m in ms])) for k in names} if names and ms else None


def summarize(rows: list[dict[str, Any]], workloads: list[Workload], cfg: EqualTimeConfig) -> list[dict[str, Any]]:
    out = []
    for wl in workloads:
        for b, bs in zip(wl.budgets, wl.budget_seconds()):
            rs = [r for r in rows if r["workload"] == wl.name and r["budget"] == b]
            by = {m: {r["seed"]: r for r in rs if r["method"] == m} for m in cfg.methods}
            wins = {m: 0 for m in cfg.methods}
            for s in cfg.seeds:
                got = {m: by[m][s]["test_loss"] for m in cfg.methods if _ok(by[m].get(s))}
                if not got:
                    continue
                lo = min(got.values())
                for m, v in got.items():
                    if v <= lo + WIN_TIE_REL * abs(lo):
                        wins[m] += 1
            ms = {}
            for m in cfg.methods:
                good = [r for r in by[m].values() if _ok(r)]
                ran = [r for r in by[m].values() if r.get("wall_s") is not None]
                st = _stats([r["test_loss"] for r in good])
                acc = _stats([r["test_acc"] for r in good if r.get("test_acc") is not None])
                ms[m] = {**st, "acc_mean": acc["mean"], "acc_std": acc["std"], "wins": wins[m],
                         "wall_mean": _stats([r["wall_s"] for r in ran])["mean"],
                         "wall_max": max((r["wall_s"] for r in ran), default=math.nan),
                         "over_max": max((r["over_s"] for r in ran), default=math.nan),
                         # the largest overrun measured in steps of its own run (<= 1: within one step)
                         "over_steps_max": max((max(r["over_s"], 0.0) / r["max_step_s"] if r["max_step_s"] else
                                                (0.0 if r["over_s"] <= 0 else math.inf) for r in ran),
                                               default=math.nan),
                         # wall time as a multiple of the budget: what a reader compares at "equal time"
                         "wall_ratio_mean": _stats([r["wall_s"] / r["budget_s"] for r in ran])["mean"],
                         "wall_ratio_max": max((r["wall_s"] / r["budget_s"] for r in ran), default=math.nan),
                         "overran": sum(1 for r in ran if r["wall_s"] > OVERRAN * r["budget_s"]),
                         "epochs_mean": _stats([r["epochs"] for r in ran])["mean"],
                         "restarts_mean": _stats([r["restarts"] for r in ran])["mean"],
                         "sweeps_mean": _stats([r["sweeps"] for r in ran])["mean"],
                         "sweeps_accepted_mean": _stats([r["sweeps_accepted"] for r in ran])["mean"],
                         "moves_mean": _moves_mean(ran),
                         "errors": sum(1 for r in by[m].values() if r.get("error"))}
            base = [(ms[m]["mean"], m) for m in BASELINES if m in ms and math.isfinite(ms[m]["mean"])]
            best = min(base)[1] if base else None
            entry: dict[str, Any] = {"workload": wl.name, "task": wl.task, "budget": b, "budget_s": bs,
                                     "units": wl.units, "methods": ms, "best_baseline": best}
            if GDSOLVER in ms and best:
                vb = _paired(by, GDSOLVER, best, cfg.seeds)
                entry["vs_best"] = vb
                entry["within_5pct"] = bool(vb["n"] and (vb["rel"] <= WITHIN or
                                                         abs(vb["mean"] - vb["ref_mean"]) <= TIE_ABS))
            if GDSOLVER in ms and ABLATION in ms:
                va = _paired(by, GDSOLVER, ABLATION, cfg.seeds)
                entry["vs_ablation"] = va
                entry["sweeps_pay"] = bool(va["n"] and va["rel"] <= -PAY[wl.task])
            out.append(entry)
    return out


# ---------------------------------------------------------------------------------- report
NAMES = {"gd": "GD continued", "restarts": "restarts (best of K)", "gdsolver": "GDSolver (time-aware)",
         "gdsolver-no-sweeps": "GDSolver, no sweeps"}


def _pct(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{100 * v:+.1f}%"


def _ratio(s: dict[str, Any] | None) -> str:
    if not s or not math.isfinite(s.get("wall_ratio_mean", math.nan)):
        return "-"
    return f"{s['wall_ratio_mean']:.2f}, {s['wall_ratio_max']:.2f}"


def _budget_text(e: dict[str, Any]) -> str:
    return f"{e['budget']:g} s" if e["units"] == "s" else f"{e['budget']:g} ep ({e['budget_s']:.3g} s)"


def markdown(doc: dict[str, Any], png_name: str | None) -> str:
    cfg = doc["config"]
    lines = [f"# gdsolver bench equal-time ({doc['preset']} preset)", "",
             "Every method gets the same wall-clock budget and starts from the same weights (issue 29, item 1). "
             "Per workload, seed and budget: **GD continued** (the tuned GD for the whole budget, no early "
             "stopping), **restarts** (best of K on validation, K filling the budget), **GDSolver** (time-aware: "
             "`GDSolver(budget_s=B)`, its defaults, the GD phase the same tuned GD) and its ablation **GDSolver, "
             "no sweeps** (`skip_sweeps=True`). A run's time is its `fit()` wall time from the start (GD, "
             "evaluations, restarts, sweeps: extraction, build, solve, refinement rounds, refit, checks). "
             "Classification budgets are epoch-equivalents: the wall time of one epoch's fit of the tuned GD, "
             f"measured in this run (median of {cfg['epoch_reps']}). Seeds {list(cfg['seeds'])}. Test loss: MSE "
             "(regression), cross-entropy (classification). Wins: seeds on which a method's test loss is the "
             "lowest of the four (ties shared). \"best baseline\": GD continued or restarts, whichever has the lower "
             "mean test loss at that budget; paired differences are GDSolver minus the reference, seed by seed.", ""]
    lines += run_header(doc)
    ls = doc.get("load_samples") or []
    if ls:
        one = [x["load"][0] for x in ls if x.get("load")]
        lines += [f"1-minute load sampled {len(one)} times during the run (at each workload and seed): "
                  f"{min(one):.2f} to {max(one):.2f}, median {statistics.median(one):.2f}, on "
                  f"{doc['machine']['cores']} cores; `uptime` at the start: `{doc.get('uptime', {}).get('start') or '-'}`, at the end: "
                  f"`{doc.get('uptime', {}).get('end') or '-'}`.", ""]
    g = doc.get("git")
    if g:
        lines += [f"Code: commit {g['head'][:10]}" + (f", with uncommitted changes in {', '.join(g['modified'])}"
                                                     if g["modified"] else "") + ".", ""]
    rs = doc.get("resumed")
    if rs:
        one = [x["load"][0] for x in rs.get("load_samples") or [] if x.get("load")]
        eg = rs.get("git") or {}
        lines += ["This run continued an earlier one of the same configuration (`" + " ".join(rs.get("command") or ["?"])
                  + f"`, {rs.get('started') or 'earlier'}"
                  + (f", code at commit {eg['head'][:10]}" if eg.get("head") else "") + "): its finished seeds ("
                  + "; ".join(f"{w} {s}" for w, s in rs["done"].items()) + ") were measured then, with their "
                  "workloads' tuned rate and epoch-equivalent; the rest now."
                  + (f" 1-minute load during the earlier part: {min(one):.2f} to {max(one):.2f}." if one else ""), ""]
    for name, why in (doc.get("skipped") or {}).items():
        lines += [f"**Skipped: {name}**: {why}.", ""]
    summ = doc["summary"]
    if summ:
        lines += ["## GDSolver against the best equal-time baseline and against its ablation", "",
                  f"Target (issue 29): GDSolver's mean test loss at most {100 * WITHIN:g}% above the best baseline; "
                  f"the sweeps pay where GDSolver is at least {100 * PAY['regression']:g}% (regression) / "
                  f"{100 * PAY['classification']:g}% (classification) below its ablation.", ""]
        body = []
        for e in summ:
            vb, va = e.get("vs_best") or {}, e.get("vs_ablation") or {}
            body.append([e["workload"], _budget_text(e), e["best_baseline"] or "-",
                         fmt_num(vb.get("ref_mean")), fmt_num(vb.get("mean")), _pct(vb.get("rel")),
                         f"{vb.get('better', 0)}/{vb.get('n', 0)}", fmt_num(vb.get("mean_diff")),
                         "yes" if e.get("within_5pct") else "no",
                         _ratio(e["methods"].get(GDSOLVER)),
                         fmt_num(va.get("ref_mean")), _pct(va.get("rel")), f"{va.get('better', 0)}/{va.get('n', 0)}",
                         "yes" if e.get("sweeps_pay") else "no"])
        lines += md_table(["workload", "budget", "best baseline", "its mean", "GDSolver mean", "vs best",
                           "seeds better", "paired diff", "within 5%", "GDSolver wall / budget (mean, max)",
                           "ablation mean", "vs ablation",
                           "seeds better", "sweeps pay"], body) + [""]
    for w in doc["workloads"]:
        es = [e for e in summ if e["workload"] == w["name"]]
        lines += [f"## {w['name']}: {w['model']}", "",
                  f"Data: {w['data']}. Tuned GD: {w['gd_label']} ({w['gd_source']}). Restarts: each initialisation "
                  f"trains with that GD to its plateau (patience {cfg['restart_patience']}"
                  + (f", at most {w['restart_epochs']} epochs" if w["restart_epochs"] else "")
                  + (" of one L-BFGS step of at most 20 iterations" if w["task"] == "regression" else "") + "), K as "
                  "many as the budget allows, the best on validation kept."
                  + (f" One epoch-equivalent: {w['epoch_s']:.3g} s (runs: "
                     f"{', '.join(f'{x:.3g}' for x in w['epoch_reps_s'])} s)." if w.get("epoch_s") else "")
                  + (f" Rate tuning: mean validation loss {w['tuning']['mean_val_loss']} after "
                     f"{w['tuning']['epochs']} epochs, chosen {w['tuning']['chosen']:g} "
                     f"({w['tuning']['wall_s']:.0f} s)." if w.get("tuning") else ""), ""]
        body = []
        for e in es:
            for m, s in e["methods"].items():
                body.append([_budget_text(e), NAMES.get(m, m), fmt_pm(s["mean"], s["std"]), fmt_num(s["median"]),
                             fmt_pm(s["acc_mean"], s["acc_std"], 3) if w["task"] == "classification" else "-",
                             f"{s['wins']}/{len(cfg['seeds'])}",
                             f"{fmt_num(s['wall_mean'], 3)} ({fmt_num(s['wall_max'], 3)})",
                             f"{s['over_max']:+.3f} s" if math.isfinite(s["over_max"]) else "-",
                             fmt_num(s["epochs_mean"], 3), fmt_num(s["restarts_mean"], 3),
                             f"{fmt_num(s['sweeps_accepted_mean'], 2)}/{fmt_num(s['sweeps_mean'], 2)}"
                             + (f" ({s['errors']} failed)" if s["errors"] else "")])
        lines += md_table(["budget", "method", "test loss mean ± std", "median", "test acc", "wins",
                           "wall s mean (max)", "max over budget", "epochs", "restarts", "sweeps kept/run"], body)
        lines += [""]
        mv = [(e, m, s["moves_mean"]) for e in es for m, s in e["methods"].items() if s.get("moves_mean")]
        if mv:
            lines += ["GDSolver's choices under the budget (history.decisions): mean times each move was chosen "
                      "per run (\"stop\": the budget was spent or nothing fitted).", ""]
            body = [[_budget_text(e), NAMES.get(m, m), ", ".join(f"{k} ×{v:.3g}" for k, v in x.items())]
                    for e, m, x in mv]
            lines += md_table(["budget", "method", "moves chosen (mean per run)"], body) + [""]
    over = [(e["workload"], _budget_text(e), m, s["over_steps_max"]) for e in summ for m, s in e["methods"].items()
            if math.isfinite(s["over_steps_max"]) and s["over_steps_max"] > 1.0]
    lines += ["## Overruns", ""]
    lines += (["Every run ended within its budget plus one step of its own (the longest epoch or sweep of that "
               "run).", ""] if not over else
              ["Runs that overran their budget by more than their own longest step:", ""]
              + [f"- {w}, {b}, {NAMES.get(m, m)}: {x:.2f} steps" for w, b, m, x in over] + [""])
    big = [(e["workload"], _budget_text(e), m, s) for e in summ for m, s in e["methods"].items() if s.get("overran")]
    if big:
        lines += [f"Runs whose wall time exceeded {OVERRAN:g} x their budget (a step longer than the time left, "
                  "e.g. a sweep, was started): their figures are not at equal time.", ""]
        body = [[w, b, NAMES.get(m, m), f"{s['overran']}/{s['n'] + s['errors']}", f"{s['wall_ratio_mean']:.2f}",
                 f"{s['wall_ratio_max']:.2f}"] for w, b, m, s in big]
        lines += md_table(["workload", "budget", "method", "runs", "wall / budget, mean", "max"], body) + [""]
    errs = [r for r in doc["rows"] if r.get("error")]
    if errs:
        lines += ["## Runs that failed", ""] + sorted({f"- {r['workload']}, {r['method']}: {r['error']}"
                                                       for r in errs}) + [""]
    if png_name:
        lines += ["Plot: mean test loss per method against the mean wall time its runs of each budget took (the "
                  "ticks are the budgets: a point right of its tick overran), the seeds' 25th-75th percentile "
                  "shaded.", "", f"![test loss against the budget]({png_name})", ""]
    return "\n".join(lines)


# colour, marker, line style: GD and the ablation often coincide, so they are drawn differently
STYLE = {"gd": ("C0", "o", "-"), "restarts": ("C2", "s", "-"), "gdsolver": ("C3", "D", "-"),
         "gdsolver-no-sweeps": ("C7", "v", "--")}


def plot(doc: dict[str, Any], path) -> int:
    """Per workload: mean test loss against time (log-log), one line per method, the seeds'
    25th-75th percentile shaded; each point sits at the mean wall time the method's runs of that
    budget took (the ticks are the budgets), so a method that overran its budget is seen to."""
    plt = pyplot()
    wls = [w for w in doc["workloads"]]
    fig, axes = plt.subplots(1, max(1, len(wls)), figsize=(3.8 * max(1, len(wls)), 3.4), squeeze=False)
    for j, w in enumerate(wls):
        ax = axes[0, j]
        es = [e for e in doc["summary"] if e["workload"] == w["name"]]
        xs = [e["budget_s"] for e in es]
        for m in doc["config"]["methods"]:
            mean = [e["methods"][m]["mean"] for e in es]
            lo = [e["methods"][m]["q25"] for e in es]
            hi = [e["methods"][m]["q75"] for e in es]
            c, mk, ls = STYLE.get(m, ("k", ".", "-"))
            at = [e["methods"][m]["wall_mean"] if math.isfinite(e["methods"][m].get("wall_mean", math.nan))
                  else e["budget_s"] for e in es]
            ax.plot(at, mean, marker=mk, ms=4, color=c, ls=ls, lw=1.8 if m == GDSOLVER else 1.2,
                    label=NAMES.get(m, m))
            ax.fill_between(at, lo, hi, color=c, alpha=0.15, lw=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{e['budget']:g}" + ("" if e["units"] == "s" else f" ep\n{e['budget_s']:.2g} s")
                            for e in es], fontsize=7)
        ax.minorticks_off()
        ax.set_title(f"{w['name']} ({w['gd_label'].split(',')[0]})", fontsize=9)
        ax.set_xlabel("wall time used (s); ticks: budgets" if w["units"] == "s" else
                      "wall time used; ticks: budgets (epoch-equivalents)", fontsize=8)
        if j == 0:
            ax.set_ylabel("test loss (mean; 25-75% of seeds shaded)", fontsize=8)
        ax.set_xlim(min(xs) / 1.5, max(max(xs) * 1.5, max((e["methods"][m].get("wall_mean") or 0)
                                                           for e in es for m in e["methods"]) * 1.2))
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def _git_state() -> dict[str, Any] | None:
    """The commit the run's code came from and the files under gdsolver/ that differed from it
    (the trainers change under a running bench on a shared tree)."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "gdsolver"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"head": head or None, "modified": sorted(x[3:] for x in dirty if x.strip())} if head else None


def _uptime() -> str | None:
    import subprocess

    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_equal_time_bench(cfg: EqualTimeConfig, out_dir: str | os.PathLike = "benchmarks/results", *,
                         tag: str = "equal_time", preset: str = "custom", tick: Callable[[str], None] | None = None,
                         command: Sequence[str] | None = None, plots: bool = True, note: str | None = None,
                         say: Callable[[str], None] | None = None, resume: bool = False) -> dict[str, Any]:
    """Run the comparison and write {tag}.json / .md / .png into out_dir; returns the document
    (full precision; the files keep 7 significant digits). `say` gets one-line progress notes
    (a skipped workload, a measured epoch, a tuned rate). After each (workload, seed) the rows so
    far are kept in {tag}.partial.json; `resume` continues an interrupted run of the same
    configuration from it (its workloads keep their tuned rate and epoch-equivalent; the seeds
    it finished are not run again)."""
    cfg.check()
    tick = tick or (lambda _msg: None)
    say = say or (lambda _msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {ext: out / f"{tag}.{ext}" for ext in ("json", "md", "png")}
    partial = out / f"{tag}.partial.json"
    t0 = time.perf_counter()
    load_before, up_before, git = load_average(), _uptime(), _git_state()
    samples: list[dict[str, Any]] = []

    def sample_load(where: str) -> None:
        samples.append({"at_s": round(time.perf_counter() - t0, 1), "where": where, "load": load_average()})

    import datetime

    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    earlier = None
    if resume:
        if not partial.is_file():
            raise GdsolverError(f"--resume: no interrupted run to continue ({partial} not found)")
        earlier = load_partial(partial, cfg)
        say(f"resuming {partial}: " + (", ".join(f"{w} seeds {s}" for w, s in earlier["done"].items())
                                       or "nothing finished") + " done")
    skipped = skipped_workloads(cfg)
    for name, why in skipped.items():
        say(f"skipping {name}: {why}")
    workloads: list[Workload] = []
    rows: list[dict[str, Any]] = list(earlier["rows"]) if earlier else []

    def keep(extra: list[dict[str, Any]]) -> None:
        """The rows so far survive a crash of a long run (the file goes once the report is written)."""
        write_json(partial, {"config": asdict(cfg), "command": list(command) if command is not None else None,
                             "started": started, "rows": rows + extra,
                             "workloads": [w.to_json() for w in workloads], "load_samples": samples})

    for name in cfg.workloads:
        if name in skipped:
            continue
        before = (earlier or {}).get("workloads", {}).get(name)
        done = (earlier or {}).get("done", {}).get(name, [])
        wl = before or resolve(name, cfg)
        try:
            setup(wl, cfg, cfg.seeds[0])  # the data loads (a clear error now, not in the middle)
        except GdsolverError as exc:
            skipped[name] = str(exc)
            say(f"skipping {name}: {exc}")
            continue
        sample_load(f"{name} start")
        if before is None and name == "mnist":
            if wl.gd["lr"] is None:
                tune_mnist(wl, cfg, tick)
                say(f"mnist: rate {wl.gd['lr']:g} chosen on validation (mean val loss "
                    f"{wl.tuning['mean_val_loss']})")
            _finish_mnist(wl, cfg)
        warm_up(wl, cfg)
        if wl.units == "epochs" and before is None:
            measure_epoch(wl, cfg)
            say(f"{name}: one epoch-equivalent of {wl.gd_label} = {wl.epoch_s:.3g} s; budgets "
                + ", ".join(f"{b:.3g} s" for b in wl.budget_seconds()))
        workloads.append(wl)
        t_wl = time.perf_counter()
        got = run_workload(wl, cfg, tick, sample_load, done=done, seed_done=keep)
        rows += got
        wl.split_cache = None
        bad = sum(1 for r in got if r.get("error"))
        say(f"{name}: {len(got)} runs in {time.perf_counter() - t_wl:.0f} s" + (f", {bad} failed" if bad else "")
            + (f" (seeds {done} from the earlier run)" if done else ""))
        keep([])
    sample_load("end")
    # rows in the order of the workloads, seeds and budgets (a resumed run appends)
    order = {n: i for i, n in enumerate(cfg.workloads)}
    rows.sort(key=lambda r: (order.get(r["workload"], 99), cfg.seeds.index(r["seed"]) if r["seed"] in cfg.seeds
                             else 99, r["budget"]))
    doc: dict[str, Any] = {"benchmark": "equal-time", "preset": preset, "config": asdict(cfg),
                           **run_metadata(command), "wall_s": time.perf_counter() - t0, "note": note,
                           "load_average": {"start": load_before, "end": load_average()}, "load_samples": samples,
                           "uptime": {"start": up_before, "end": _uptime()}, "git": git, "skipped": skipped,
                           "workloads": [w.to_json() for w in workloads], "methods": list(cfg.methods),
                           "summary": summarize(rows, workloads, cfg), "rows": rows}
    if earlier is not None:
        doc["resumed"] = {"command": earlier["command"], "started": earlier["started"], "git": earlier["git"],
                          "load_samples": earlier["load_samples"], "done": earlier["done"]}
    png = None
    if plots and workloads:
        doc["png_bytes"] = plot(doc, paths["png"])
        png = paths["png"].name
    write_json(paths["json"], doc)
    from gdsolver.atomic import atomic_write_text

    atomic_write_text(paths["md"], markdown(doc, png))
    partial.unlink(missing_ok=True)
    doc["paths"] = {k: str(v) for k, v in paths.items() if k != "png" or png}
    return doc


def rewrite_report(json_path: str | os.PathLike, *, plots: bool = True) -> dict[str, Any]:
    """Recompute the summary of a saved run from its rows (the measurements are not touched) and
    write its JSON, markdown and plot again beside it: for a report whose summary code changed
    after the run."""
    import json

    path = Path(json_path)
    doc = json.loads(path.read_text())
    cfg = EqualTimeConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in doc["config"].items()})
    wls = [_workload_from_json(w) for w in doc["workloads"]]
    doc["summary"] = summarize(doc["rows"], wls, cfg)
    doc["summary_rewritten"] = True
    png = None
    if plots and wls:
        doc["png_bytes"] = plot(doc, path.with_suffix(".png"))
        png = path.with_suffix(".png").name
    write_json(path, doc)
    from gdsolver.atomic import atomic_write_text

    atomic_write_text(path.with_suffix(".md"), markdown(doc, png))
    return doc
