"""`gdsolver bench data-efficiency`: the paper's classification data-efficiency study
(its Figures 4 and 5: test accuracy against the number of training points).

For each model (the authors' conv Conv2d(1,3,k=4)-ReLU-flatten-Linear(., 10), and a plain
MLP), seed, and number of training points n (the first n points of the training set, as
the authors took them): every baseline (SGD, SGD+LRS, Adam, Adam+LRS and any other
non-GDSolver method registered) runs e epochs -- trained once for max(e) epochs, with the
test accuracy recorded after each listed e (no early stopping, so a run of e epochs is the
first e epochs of a longer one) -- and the 2-loop GDSolver (method "gdsolver-2loop": at
most e/2 epochs of SGD with lr 0.1, patience 2, then a sweep on 32 misclassified training
points; again with lr 0.05; every sweep verified, kept only if it helps) runs once per e.
All methods of a seed start from the same initial weights. A control, "2loop-no-sweep", runs
the 2-loop's exact GD schedule with the sweeps skipped, so the solver's own contribution can be
told apart from the 2-loop's different learning rates and early stopping.

Tuned baselines (issues 15 and 19; `lr_grid` set): SGD, SGD + LR schedule, Adam and Adam + LR
schedule run at every rate of the grid, and the rate of each (model, method, n, e) is the one with
the lowest mean validation cross-entropy over the seeds (gdsolver.bench.tuning: the same rule for
every method, never the test split); L-BFGS best of K ("lbfgs-bestK", `lbfgs_restarts`) runs once
per e; "gdsolver[sgd]" (`gdsolver_tuned`) is GDSolver with the trainer's defaults (GD until the
validation loss plateaus, a final-layer sweep with the default classification head, twice) and
the tuned SGD rate of its (model, n, e). Reported beside the paper's figures: the smallest n at
which each method reaches the best tuned baseline's mean accuracy at the largest n (the target
"the same accuracy with at most half the training points").

Reported: test accuracy mean and standard deviation over seeds, GD and solver time, and the
smallest n at which each method's mean accuracy reaches a target accuracy (default: the best
mean accuracy any baseline reaches with any n and e, minus 5 points).
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from gdsolver.bench.data_efficiency_report import (NO_SWEEP, TWO_LOOP, aggregate, half_data, markdown, plot,
                                                   smallest_n, targets)
from gdsolver.bench.runner import Bench, run_bench
from gdsolver.bench.tuning import LR_GRID, choose_lr
from gdsolver.compile.registry import DEFAULT_BACKEND
from gdsolver.errors import GdsolverError

if TYPE_CHECKING:
    from gdsolver.train.executor import Executor

DATASETS = ("digits", "mnist", "fashion-mnist")
MODELS = ("conv", "mlp")  # the default pair; "mlp2" (784-256-128-10) runs when asked (--model mlp2)
MODEL_CHOICES = (*MODELS, "mlp2")
GDS_TUNED = "gdsolver[sgd]"  # GDSolver with the trainer's defaults at the tuned SGD rate
# GDSolver rows on a tuned GD phase: row name -> the tuned baseline whose optimizer, schedule and rate
# its GD phase uses
GDS_ROWS = {GDS_TUNED: "sgd", "gdsolver[adam-lrs]": "adam-lrs"}

CSV_COLUMNS = ("dataset", "model", "seed", "n", "method", "lr", "chosen", "epochs", "val_loss", "train_acc", "test_acc",
               "test_loss",
               "epochs_run", "gd_time_s", "solver_time_s", "time_s", "sweeps", "sweeps_accepted", "error")


@dataclass
class DataEfficiencyConfig:
    dataset: str = "digits"
    models: tuple[str, ...] = MODELS
    n_values: tuple[int, ...] = (50, 100, 200, 400, 700, 1117)
    epochs: tuple[int, ...] = (2, 4, 10, 20)
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] | None = None  # baselines; None: every non-GDSolver method registered
    two_loop: bool = True
    control: bool = True  # also run NO_SWEEP
    lr: float = 0.05  # baselines' learning rate (the 2-loop GDSolver uses 0.1 then 0.05)
    batch_size: int = 32
    hidden: int = 32
    target: float | None = None  # absolute test accuracy; None: best baseline - TARGET_SLACK
    backend: str = DEFAULT_BACKEND
    time_limit: float = 30.0
    threads: int = 1
    data_dir: str | None = None
    lr_grid: tuple[float, ...] | None = None  # tune sgd / sgd-lrs / adam / adam-lrs on these rates (None: lr)
    lbfgs_restarts: int = 1  # > 1: also "lbfgs-bestK" rows
    gdsolver_tuned: bool = False  # also GDSolver on each tuned GD phase of GDS_ROWS that runs (needs lr_grid)

    def tuned(self) -> list[str]:
        """The baselines whose rate is tuned."""
        from gdsolver.bench.tuning import TUNED_METHODS

        return [m for m in self.baselines() if m in TUNED_METHODS] if self.lr_grid else []

    def lbfgs_best(self) -> str | None:
        from gdsolver.bench.tuning import lbfgs_name

        return lbfgs_name(self.lbfgs_restarts) if self.lbfgs_restarts > 1 else None

    def baselines(self) -> list[str]:
        from gdsolver.train.methods import check_baselines

        names = check_baselines(self.methods)
        return names

    def all_baselines(self) -> list[str]:
        return self.baselines() + ([self.lbfgs_best()] if self.lbfgs_best() else [])

    def gdsolver_rows(self) -> list[str]:
        """The GDSolver-on-tuned-GD rows that run: one per tuned baseline of GDS_ROWS."""
        return [name for name, gd in GDS_ROWS.items() if gd in self.tuned()] if self.gdsolver_tuned else []

    def all_methods(self) -> list[str]:
        return self.all_baselines() + ([NO_SWEEP] if self.two_loop and self.control else []) + \
            ([TWO_LOOP] if self.two_loop else []) + self.gdsolver_rows()

    def check(self) -> "DataEfficiencyConfig":
        if self.dataset not in DATASETS:
            raise GdsolverError(f"dataset: {self.dataset!r}, expected one of {list(DATASETS)}")
        for m in self.models:
            if m not in MODEL_CHOICES:
                raise GdsolverError(f"model: {m!r}, expected one of {list(MODEL_CHOICES)}")
        if not self.seeds or not self.n_values or not self.epochs:
            raise GdsolverError("seeds, n values and epochs: give at least one of each")
        if any(e < 1 for e in self.epochs) or any(n < 1 for n in self.n_values):
            raise GdsolverError("epochs and n values must be >= 1")
        if not self.all_methods():
            raise GdsolverError("method: nothing to run")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise GdsolverError(f"lr: must be a finite number > 0, got {self.lr}")
        if not (self.time_limit > 0):
            raise GdsolverError(f"time_limit: must be > 0, got {self.time_limit}")
        if self.lr_grid is not None and (not self.lr_grid or any(not (v > 0 and math.isfinite(v))
                                                                  for v in self.lr_grid)):
            raise GdsolverError(f"lr_grid: give finite rates > 0, got {self.lr_grid}")
        if self.lbfgs_restarts < 1:
            raise GdsolverError(f"lbfgs_restarts: must be >= 1, got {self.lbfgs_restarts}")
        if self.gdsolver_tuned and not self.gdsolver_rows():
            raise GdsolverError(f"gdsolver_tuned: needs lr_grid and one of the baselines {sorted(set(GDS_ROWS.values()))} "
                                "(its tuned rate)")
        self.epochs = tuple(sorted(set(self.epochs)))
        self.n_values = tuple(sorted(set(self.n_values)))
        return self


QUICK = {
    "digits": DataEfficiencyConfig(n_values=(100, 300, 1117), epochs=(4, 10), seeds=(0, 1), lr_grid=(0.01, 0.1),
                                   lbfgs_restarts=3, gdsolver_tuned=True),
    "fashion-mnist": DataEfficiencyConfig(dataset="fashion-mnist", n_values=(500, 2000), epochs=(2, 4), seeds=(0,),
                                          time_limit=10.0),
    # tuned as digits is: the baselines' rates chosen on validation, L-BFGS best of K, GDSolver on the tuned GD
    "mnist": DataEfficiencyConfig(dataset="mnist", n_values=(500, 2000), epochs=(2, 4), seeds=(0,), time_limit=10.0,
                                  lr_grid=(0.01, 0.1), lbfgs_restarts=3, gdsolver_tuned=True),
}
FULL = {
    # 558: exactly half the training points, where the issue-15 target is judged
    "digits": DataEfficiencyConfig(n_values=(50, 100, 200, 400, 558, 700, 1117), seeds=(0, 1, 2), epochs=(4, 20),
                                   lr_grid=LR_GRID, lbfgs_restarts=5, gdsolver_tuned=True),
    # the conv's sweeps on Fashion-MNIST (Linear(1875, 10): 18,760 weights) run into the time limit
    "fashion-mnist": DataEfficiencyConfig(dataset="fashion-mnist", n_values=(500, 1000, 2000, 5000, 10000),
                                          epochs=(2, 4), seeds=(0, 1), time_limit=10.0),
    # the paper's MNIST experiment on the real files: the same grid as Fashion-MNIST
    "mnist": DataEfficiencyConfig(dataset="mnist", n_values=(500, 1000, 2000, 5000, 10000), epochs=(2, 4),
                                  seeds=(0, 1), time_limit=10.0, lr_grid=LR_GRID, lbfgs_restarts=5,
                                  gdsolver_tuned=True),
}


def preset_config(name: str, dataset: str) -> DataEfficiencyConfig:
    if name not in ("quick", "full"):
        raise GdsolverError(f"preset: {name!r}, expected 'quick' or 'full'")
    if dataset not in DATASETS:
        raise GdsolverError(f"dataset: {dataset!r}, expected one of {list(DATASETS)}")
    return replace((QUICK if name == "quick" else FULL)[dataset])


def data_name(dataset: str, model: str) -> str:
    """The built-in data set a model trains on: the conv on digits needs the 8x8 images."""
    return "digits-images" if dataset == "digits" and model == "conv" else dataset


def total_units(cfg: DataEfficiencyConfig) -> int:
    """Progress units of a run: one per grid cell."""
    return len(grid(cfg))


# ---------------------------------------------------------------------------------- running
def _summ(history) -> dict[str, Any]:
    s = history.summary()
    return {"epochs_run": s["epochs"], "gd_time_s": s["gd_time_s"], "solver_time_s": s["solver_time_s"],
            "time_s": s["gd_time_s"] + s["solver_time_s"], "sweeps": s["sweeps"],
            "sweeps_accepted": s["sweeps_accepted"]}


def run_baseline(method: str, init_model, split, cfg: DataEfficiencyConfig, seed: int, test,
                 lr: float | None = None) -> list[dict[str, Any]]:
    """max(e) epochs of `method` (at rate `lr`, default cfg.lr); a row (validation loss, test
    accuracy, cumulative GD time) at each e in cfg.epochs."""
    from gdsolver.train.methods import make_trainer
    from gdsolver.train.trainer import clone_model

    model = clone_model(init_model)
    wanted = set(cfg.epochs)
    rows: list[dict[str, Any]] = []
    state: dict[str, Any] = {"gd": 0.0, "overhead": 0.0, "trainer": None}

    def on_row(row: dict[str, Any]) -> None:
        if row["kind"] != "epoch":
            return
        t = time.perf_counter()
        if row.get("gd_time_s") is not None:
            state["gd"] += float(row["gd_time_s"])
            train_time = state["gd"]
        else:
            train_time = float(row["elapsed_s"]) - state["overhead"]
        if int(row["epoch"]) in wanted:
            ev = state["trainer"].evaluate(test)
            rows.append({"method": method, "lr": state["trainer"].lr if hasattr(state["trainer"], "lr") else None,
                         "epochs": int(row["epoch"]), "val_loss": row.get("val_loss"),
                         "train_acc": state["trainer"].evaluate(split.train)["acc"], "test_acc": ev["acc"], "test_loss": ev["loss"],
                         "epochs_run": int(row["epoch"]), "gd_time_s": train_time, "solver_time_s": 0.0,
                         "time_s": train_time, "sweeps": 0, "sweeps_accepted": 0})
        state["overhead"] += time.perf_counter() - t

    # L-BFGS keeps its own step (1: the strong-Wolfe line search scales it)
    trainer = make_trainer(method, model, "classification",
                           lr=lr if lr is not None else None if method == "lbfgs" else cfg.lr,
                           epochs=max(cfg.epochs),
                           batch_size=cfg.batch_size, seed=seed, threads=cfg.threads, callback=on_row)
    state["trainer"] = trainer
    trainer.fit(split.train, split.val)
    return rows


def run_two_loop(init_model, split, cfg: DataEfficiencyConfig, seed: int, epochs: int, test, *,
                 sweeps: bool = True) -> dict[str, Any]:
    from gdsolver.train.methods import make_trainer
    from gdsolver.train.trainer import clone_model

    trainer = make_trainer(TWO_LOOP, clone_model(init_model), "classification", epochs=epochs,
                           batch_size=cfg.batch_size, seed=seed, threads=cfg.threads, backend=cfg.backend,
                           time_limit=cfg.time_limit, skip_sweeps=not sweeps)  # the NO_SWEEP control
    h = trainer.fit(split.train, split.val)
    ev = trainer.evaluate(test)
    return {"method": TWO_LOOP if sweeps else NO_SWEEP, "epochs": epochs,
            "train_acc": trainer.evaluate(split.train)["acc"], "test_acc": ev["acc"],
            "test_loss": ev["loss"], **_summ(h)}


def run_lbfgs_best(init_model, split, cfg: DataEfficiencyConfig, seed: int, epochs: int, test) -> dict[str, Any]:
    """L-BFGS for `epochs` epochs from cfg.lbfgs_restarts initialisations, the best on validation kept."""
    from gdsolver.train.methods import make_trainer
    from gdsolver.train.trainer import clone_model

    tr = make_trainer("lbfgs", clone_model(init_model), "classification", epochs=epochs, seed=seed,
                      threads=cfg.threads, restarts=cfg.lbfgs_restarts)
    h = tr.fit(split.train, split.val)
    ev = tr.evaluate(test)
    return {"method": cfg.lbfgs_best(), "lr": tr.lr, "epochs": epochs, "val_loss": tr.evaluate(split.val)["loss"],
            "train_acc": tr.evaluate(split.train)["acc"], "test_acc": ev["acc"], "test_loss": ev["loss"], **_summ(h)}


def run_gdsolver_tuned(init_model, split, cfg: DataEfficiencyConfig, seed: int, epochs: int, test,
                       lr: float | None, name: str = GDS_TUNED) -> dict[str, Any]:
    """GDSolver with the trainer's defaults (GD until plateau, a sweep of the final layer, twice)
    whose GD phase is the tuned baseline GDS_ROWS[name] (its optimizer and schedule) at that
    baseline's tuned rate `lr` for this (model, n, e)."""
    from gdsolver.train.methods import gd_phase_options, make_trainer
    from gdsolver.train.trainer import clone_model

    gd = GDS_ROWS[name]
    if lr is None:
        raise GdsolverError(f"no tuned {gd} rate (every rate of the grid failed)")
    tr = make_trainer("gdsolver", clone_model(init_model), "classification", **gd_phase_options(gd, lr),
                      epochs=epochs, batch_size=cfg.batch_size, seed=seed, threads=cfg.threads, backend=cfg.backend,
                      time_limit=cfg.time_limit)
    h = tr.fit(split.train, split.val)
    ev = tr.evaluate(test)
    return {"method": name, "lr": lr, "epochs": epochs, "val_loss": tr.evaluate(split.val)["loss"],
            "train_acc": tr.evaluate(split.train)["acc"], "test_acc": ev["acc"], "test_loss": ev["loss"], **_summ(h)}


@dataclass(frozen=True)
class Cell:
    """One cell of the grid: one method for one (model, seed, n). A baseline cell trains for
    max(cfg.epochs) epochs and gives a row at every e in cfg.epochs (epochs=0 here); a 2-loop
    cell (TWO_LOOP or NO_SWEEP) runs once with budget `epochs`. A cell is a pure, seeded
    function of its fields and the config, so cells can run in any order, in any process
    (`gdsolver bench data-efficiency --ray`)."""

    model: str
    seed: int
    n: int
    method: str
    epochs: int = 0
    lr: float | None = None  # a tuned baseline's rate; a GDS_ROWS row: its GD phase's tuned rate

    @property
    def label(self) -> str:
        return f"{self.model} n={self.n} seed {self.seed}: {self.method}" + (f" e={self.epochs}" if self.epochs else "") \
            + (f" lr={self.lr:g}" if self.lr is not None else "")

    def as_dict(self) -> dict[str, Any]:
        """The bench's cell: the fields its rows carry (no epochs for a baseline, lr only when tuned)."""
        return {"model": self.model, "seed": self.seed, "n": self.n, "method": self.method,
                **({"epochs": self.epochs} if self.epochs else {}), **({"lr": self.lr} if self.lr is not None else {})}


def cell_label(cell: dict[str, Any]) -> str:
    return Cell(**cell).label


@functools.lru_cache(maxsize=4)
def _setup(dataset: str, model_kind: str, seed: int, n: int, hidden: int, data_dir: str | None):
    """(split, initial model, test tensors); cached, as the cells of one (model, seed, n) that
    land in one process share them (they are not modified)."""
    import torch

    from gdsolver.train.models import build_model
    from gdsolver.modelfile.data import load_split_for
    from gdsolver.train.tensors import as_tensor_data

    split = load_split_for(data_name(dataset, model_kind), None, seed=seed, data_dir=data_dir, n_train=n)
    init = build_model(model_kind, tuple(split.train[0].shape[1:]), 10, hidden=hidden, seed=seed)
    return split, init, as_tensor_data(split.test, "classification", name="test", dtype=torch.float32)


def run_cell(cfg: DataEfficiencyConfig, c: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of one cell (an error row per epoch budget when it fails with a GdsolverError)."""
    cell = Cell(**c)
    base = {"dataset": cfg.dataset, "model": cell.model, "seed": cell.seed, "n": cell.n}
    budgets = [cell.epochs] if cell.epochs else list(cfg.epochs)
    try:
        split, init, test = _setup(cfg.dataset, cell.model, cell.seed, cell.n, cfg.hidden, cfg.data_dir)
        if cell.method in (TWO_LOOP, NO_SWEEP):
            return [{**base, **run_two_loop(init, split, cfg, cell.seed, cell.epochs, test,
                                            sweeps=cell.method == TWO_LOOP)}]
        if cell.method in GDS_ROWS:
            return [{**base, **run_gdsolver_tuned(init, split, cfg, cell.seed, cell.epochs, test, cell.lr,
                                                  cell.method)}]
        if cell.method == cfg.lbfgs_best():
            return [{**base, **run_lbfgs_best(init, split, cfg, cell.seed, cell.epochs, test)}]
        return [{**base, **r} for r in run_baseline(cell.method, init, split, cfg, cell.seed, test, cell.lr)]
    except GdsolverError as exc:
        return [{**base, "method": cell.method, "lr": cell.lr, "epochs": e, "val_loss": None, "error": str(exc)}
                for e in budgets]


def _grid(cfg: DataEfficiencyConfig) -> list[Cell]:
    """Every cell, in the order of the results: per (model, seed, n) the baselines, then the
    control and the 2-loop GDSolver per epoch budget."""
    out = []
    tuned = cfg.tuned()
    for model in cfg.models:
        for seed in cfg.seeds:
            for n in cfg.n_values:
                for m in cfg.baselines():
                    out += [Cell(model, seed, n, m, lr=lr) for lr in cfg.lr_grid] if m in tuned else \
                        [Cell(model, seed, n, m)]
                if cfg.lbfgs_best():
                    out += [Cell(model, seed, n, cfg.lbfgs_best(), e) for e in cfg.epochs]
                if cfg.two_loop:
                    for label in ((NO_SWEEP, TWO_LOOP) if cfg.control else (TWO_LOOP,)):
                        out += [Cell(model, seed, n, label, e) for e in cfg.epochs]
                for name in cfg.gdsolver_rows():  # its rate is filled in once the grid of rates has run
                    out += [Cell(model, seed, n, name, e) for e in cfg.epochs]
    return out


def grid(cfg: DataEfficiencyConfig) -> list[dict[str, Any]]:
    """Every cell (GDSolver on a tuned GD phase without its rate, chosen once the rate grid has run)."""
    return [c.as_dict() for c in _grid(cfg)]


def choose_rates(rows: list[dict[str, Any]], cfg: DataEfficiencyConfig) -> dict[tuple, float | None]:
    """(model, method, n, e) -> the rate with the lowest mean validation loss over the seeds."""
    out = {}
    for model in cfg.models:
        for m in cfg.tuned():
            for n in cfg.n_values:
                for e in cfg.epochs:
                    runs = [r for r in rows if (r["model"], r["method"], r["n"], r["epochs"]) == (model, m, n, e)]
                    runs += [{"lr": lr, "val_loss": None} for lr in cfg.lr_grid for s in cfg.seeds
                             if not any(r["lr"] == lr and r["seed"] == s for r in runs)]  # a lost task: diverged
                    out[(model, m, n, e)] = choose_lr(runs, key="val_loss")[0]
    return out


def mark_chosen(rows: list[dict[str, Any]], cfg: DataEfficiencyConfig) -> dict[tuple, float | None]:
    """Set each tuned row's "chosen" flag; returns the chosen rates."""
    chosen = choose_rates(rows, cfg)
    tuned = set(cfg.tuned())
    for r in rows:
        if r["method"] in tuned:
            r["chosen"] = r.get("lr") == chosen.get((r["model"], r["method"], r["n"], r["epochs"]))
    return chosen


def second_stage(cfg: DataEfficiencyConfig, doc: dict[str, Any]) -> Bench | None:
    """GDSolver on each tuned GD phase (GDS_ROWS) at the rate the first stage's grid chose."""
    second = [c for c in _grid(cfg) if c.method in GDS_ROWS]
    if not second:
        return None
    chosen = choose_rates(doc["rows"], cfg)
    cells = [replace(c, lr=chosen.get((c.model, GDS_ROWS[c.method], c.n, c.epochs))).as_dict() for c in second]
    return Bench("data-efficiency", cells, partial(run_cell, cfg), report, label=cell_label, cpus=cfg.threads)


def _model_text(net) -> str:
    parts = []
    for mod in net.children():
        name = type(mod).__name__
        if hasattr(mod, "in_features"):
            name += f"({mod.in_features}, {mod.out_features})"
        elif hasattr(mod, "kernel_size"):
            name += f"({mod.in_channels}, {mod.out_channels}, k={mod.kernel_size[0]})"
        parts.append(name)
    return " -> ".join(parts)


def describe_models(cfg: DataEfficiencyConfig) -> dict[str, str]:
    from gdsolver.train.models import build_model
    from gdsolver.modelfile.data import load_split_for

    out = {}
    for model in cfg.models:
        split = load_split_for(data_name(cfg.dataset, model), None, seed=cfg.seeds[0], data_dir=cfg.data_dir)
        net = build_model(model, tuple(split.train[0].shape[1:]), 10, hidden=cfg.hidden, seed=0)
        out[model] = f"{_model_text(net)} on {data_name(cfg.dataset, model)} ({len(split.train[1])} training points)"
    return out


def check_data(cfg: DataEfficiencyConfig) -> int:
    """Load the data set once (a clear error when its files are missing); its number of training points."""
    from gdsolver.modelfile.data import load_split_for

    split = load_split_for(data_name(cfg.dataset, cfg.models[0]), None, seed=cfg.seeds[0], data_dir=cfg.data_dir)
    n = len(split.train[1])
    bad = [k for k in cfg.n_values if k > n]
    if bad:
        raise GdsolverError(f"n values {bad}: {cfg.dataset} has only {n} training points")
    return n


def report(doc: dict[str, Any]) -> list[str]:
    """The report of a result document, as lines (a document from before the runner names no plot;
    give it doc["png"])."""
    cfg = DataEfficiencyConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in doc["config"].items()})
    md = markdown(doc, cfg, doc.get("png"))
    return md.split("\n")[:-1] if md.endswith("\n") else md.split("\n")


def summarize(cfg: DataEfficiencyConfig, doc: dict[str, Any]) -> dict[str, Any]:
    """The chosen rates (each tuned row marked), the means over the seeds, the targets and the
    smallest n reaching them, from every row."""
    rows = doc["rows"]
    for r in rows:  # a cell that failed outside its trainers (e.g. its worker died) is one error row
        r.setdefault("dataset", cfg.dataset)
        r.setdefault("epochs", max(cfg.epochs))
    chosen = mark_chosen(rows, cfg)
    agg = aggregate(rows)
    tgt = targets(agg, cfg)
    return {"targets": tgt, "aggregate": agg, "smallest_n": smallest_n(agg, cfg, tgt),
            "half_data": half_data(agg, cfg), "chosen_lrs": {"/".join(map(str, k)): v for k, v in chosen.items()}}


def data_efficiency_bench(cfg: DataEfficiencyConfig, preset: str = "custom", plots: bool = True,
                          note: str | None = None) -> Bench:
    """The study as a bench: every cell but GDSolver on a tuned GD phase, then second_stage's."""
    cfg.check()
    check_data(cfg)
    meta = {"dataset": cfg.dataset, "preset": preset, "config": asdict(cfg), "methods": cfg.all_methods(),
            "models": describe_models(cfg), "note": note}
    first = [c.as_dict() for c in _grid(cfg) if c.method not in GDS_ROWS]
    return Bench("data-efficiency", first, partial(run_cell, cfg), report, meta=meta, summarize=partial(summarize, cfg),
                 label=cell_label, header=False, csv_columns=CSV_COLUMNS, plot=partial(_plot, cfg) if plots else None,
                 cpus=cfg.threads, report_failed=True, next_stage=partial(second_stage, cfg))


def _plot(cfg: DataEfficiencyConfig, doc: dict[str, Any], path) -> int:
    return plot(doc, cfg, path)


def run_data_efficiency_bench(cfg: DataEfficiencyConfig, out_dir: str | os.PathLike = "benchmarks/results", *,
                              tag: str = "data_efficiency", preset: str = "custom",
                              tick: Callable[[str], None] | None = None, command: Sequence[str] | None = None,
                              plots: bool = True, note: str | None = None, executor: Executor | None = None,
                              echo: Callable = print, resume: bool = False) -> dict[str, Any]:
    """Run the study and write {tag}.csv / .json / .md / .png into out_dir; returns the JSON
    document. `executor` (gdsolver.train.executor) runs the cells; default: one after another here.
    `resume`: reuse the rows of an earlier run of the same settings (bench.runner)."""
    return run_bench(data_efficiency_bench(cfg, preset, plots, note), out_dir, tag, echo=echo, tick=tick,
                     command=command, executor=executor, resume=resume)  # full precision; the files have 7 digits
