"""The configuration and the workloads of `gdsolver bench equal-time` (gdsolver.bench.
equal_time_bench says what it compares): the presets, each workload's data, model and tuned GD,
the trainer each method runs under a budget, the untimed warm-up, the measured epoch-equivalent
and MNIST's rate tuning."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gdsolver.bench.equal_time_report import ABLATION, GDSOLVER
from gdsolver.errors import GdsolverError

WORKLOADS = ("polynomial", "formula", "digits", "mnist")
REGRESSION_WORKLOADS = ("polynomial", "formula")
METHODS = ("gd", "restarts", GDSOLVER, ABLATION)
LARGE_EPOCHS = 10**6  # under budget_s, epochs is only an upper bound
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
    # the MLP 784-256-128-10 (train.models "mlp2"; the same weights as before it was a model kind)
    return wl.split_cache, build_model("mlp2", tuple(wl.split_cache.train[0].shape[1:]), 10, seed=seed)


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
