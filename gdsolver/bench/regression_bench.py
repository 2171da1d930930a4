"""`gdsolver bench regression`: the paper's regression experiment (Table 1).

For each equation (identity, affine, polynomial, formula) and seed (the seed draws the data,
initialises Linear(3,2)-ReLU-Linear(2,2) and orders the minibatches), every baseline (SGD,
SGD+LRS, Adam, Adam+LRS, and any other non-GDSolver method registered in
`gdsolver.train.methods.METHODS`) trains `max_epochs` epochs once from the same initial
weights; the test MSE after each epoch is recorded by the trainer's callback (a run of e
epochs is the first e epochs of a longer run: no early stopping, and the "-lrs" schedule
halves the LR on a validation plateau, which does not depend on the budget).

GDSolver(e) = e epochs of GD (SGD, lr 0.05, batch 32, no early stopping) + one solver sweep.
Its GD part is exactly the SGD baseline's run (same seed, same code path), so the SGD
model is snapshotted after each epoch and one sweep is run from each snapshot by a GDSolver
with `epochs=0, max_sweeps=1` -- the same computation as GDSolver(epochs=e, phase_epochs=e,
max_sweeps=1, patience=None) (tests check this on one cell). Sweep settings come in two
presets: "paper" (the authors' box half-widths 0.05 / 500 / 5 / 50, fixed; the paper's
feasibility formulation |o - y| <= current error - margin, margin 1e-4; 32 points) and
"default" (gdsolver's defaults: radius 0.05, the L1-minimising LP over every training point). Every sweep's
answer is verified and kept only if it improves the loss on its points and does not worsen
the validation loss by more than 1%.

Times: GD time is the sum of the GD steps' wall time (evaluation excluded), solver time is
formulation + solve; GDSolver's time is the two added. Both are reported separately.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdsolver.bench.plots import (fmt_num, fmt_pm, load_average, md_table, mean_std, out_paths, pyplot,
                                  run_header, run_metadata, save_figure, write_csv, write_outputs)
from gdsolver.bench.regression_setup import regression_setup, regression_test_data
from gdsolver.bench.regression_tuned import TunedCell, TunedConfig
from gdsolver.compile.registry import DEFAULT_BACKEND
from gdsolver.errors import GdsolverError

if TYPE_CHECKING:
    from gdsolver.train.executor import Executor

EQUATIONS = ("identity", "affine", "polynomial", "formula")
RADIUS_PRESETS = ("paper", "default")
GD_METHOD = "sgd"  # GDSolver's GD part: plain SGD, the same run as this baseline
PAPER_BASELINES = ("sgd", "sgd-lrs", "adam", "adam-lrs")  # Table 1's "best baseline" is chosen among these

# The paper's Table 1 (best baseline SGD+LRS): test MSE of GD(10), GD(20), GDSolver(10)
PAPER_TABLE1 = {
    "identity": (0.579, 0.2412, 0.109),
    "affine": (16.467, 8.075, 7.2095),
    "polynomial": (93.86, 20.805, 12.07),
    "formula": (10.44, 4.208, 3.32),
}
PAPER_TIMES = (0.03, 0.08, 0.04)  # GD(10), GD(20), GDSolver(10), seconds
PAPER_MSE_REDUCTION, PAPER_TIME_SAVING = 0.315, 0.48

CSV_COLUMNS = ("equation", "seed", "method", "preset", "epochs", "test_mse", "gd_time_s", "solver_time_s",
               "build_time_s", "solve_time_s", "time_s", "status", "accepted", "radius", "error")


@dataclass
class RegressionConfig:
    equations: tuple[str, ...] = EQUATIONS
    seeds: tuple[int, ...] = tuple(range(10))
    max_epochs: int = 20
    sweep_epochs: tuple[int, ...] = tuple(range(1, 21))  # e at which GDSolver(e) is run
    presets: tuple[str, ...] = RADIUS_PRESETS
    methods: tuple[str, ...] | None = None  # baselines; None: every non-GDSolver method registered
    lr: float = 0.05
    batch_size: int = 32
    points: int = 32  # solver points per sweep
    backend: str = DEFAULT_BACKEND
    time_limit: float = 30.0
    threads: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    # the tuned-baselines comparison (issues 15 and 19; gdsolver.bench.regression_tuned); None: not run
    tuned: TunedConfig | None = None
    table1: bool = True  # False: only the tuned comparison runs (no Table 1 cells)

    def baselines(self) -> list[str]:
        from gdsolver.train.methods import check_baselines

        names = check_baselines(self.methods)
        if GD_METHOD not in names:  # GDSolver's GD part is the SGD run
            names.insert(0, GD_METHOD)
        return names

    def table_epochs(self) -> tuple[int, int]:
        """(e_lo, e_hi) of the Table 1 columns: (10, 20) for the paper's 20 epochs."""
        hi = self.max_epochs
        return max(1, hi // 2), hi

    def check(self) -> "RegressionConfig":
        for eq in self.equations:
            if eq not in EQUATIONS:
                raise GdsolverError(f"equation: {eq!r}, expected one of {list(EQUATIONS)}")
        for p in self.presets:
            if p not in RADIUS_PRESETS:
                raise GdsolverError(f"preset: {p!r}, expected one of {list(RADIUS_PRESETS)}")
        if self.max_epochs < 1:
            raise GdsolverError(f"max_epochs: must be >= 1, got {self.max_epochs}")
        if not self.seeds:
            raise GdsolverError("seeds: give at least one")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise GdsolverError(f"lr: must be a finite number > 0, got {self.lr}")
        if not (self.time_limit > 0):
            raise GdsolverError(f"time_limit: must be > 0, got {self.time_limit}")
        bad = [e for e in self.sweep_epochs if not 1 <= e <= self.max_epochs]
        if bad:
            raise GdsolverError(f"sweep_epochs: {bad} outside 1..{self.max_epochs}")
        if self.table_epochs()[0] not in self.sweep_epochs:
            self.sweep_epochs = tuple(sorted({*self.sweep_epochs, self.table_epochs()[0]}))
        self.baselines()
        if self.tuned is not None:
            self.tuned.check(self.seeds)
        return self


QUICK = RegressionConfig(seeds=(0, 1, 2), sweep_epochs=(1, 2, 5, 10, 15, 20),
                         tuned=TunedConfig(lr_grid=(3e-3, 1e-2, 3e-2), restarts=3, rounds=1, time_limit=5.0))
FULL = RegressionConfig(tuned=TunedConfig())


def preset_config(name: str) -> RegressionConfig:
    if name not in ("quick", "full"):
        raise GdsolverError(f"preset: {name!r}, expected 'quick' or 'full'")
    return replace(QUICK if name == "quick" else FULL)


def sweep_options(preset: str, equation: str, cfg: RegressionConfig) -> dict[str, Any]:
    """GDSolver options of one sweep under radius preset `preset`."""
    if preset == "paper":
        from gdsolver.data.presets import PAPER_MARGIN, paper_radius

        return dict(radius=paper_radius(equation), adapt_radius=False, mode="paper", margin=PAPER_MARGIN,
                    solver_points=cfg.points, layers="final")
    # the paper's Table 1 setting (the final layer), at the radius and head gdsolver had before the recipe
    return dict(radius=0.05, adapt_radius=True, mode="l1", solver_points="auto", layers="final")


def total_units(cfg: RegressionConfig) -> int:
    """Progress units of a run: one per grid cell."""
    return len(grid(cfg))


# ---------------------------------------------------------------------------------- running
def run_baseline(method: str, init_model, split, cfg: RegressionConfig, seed: int, *,
                 snapshots: dict[int, Any] | None = None) -> list[dict[str, Any]]:
    """Train `method` for cfg.max_epochs epochs from a copy of `init_model`; one row per epoch
    with the test MSE and the cumulative training time. `snapshots` (if given) receives the
    model's state_dict after each epoch."""
    from gdsolver.train.methods import make_trainer
    from gdsolver.train.trainer import clone_model

    model = clone_model(init_model)
    test = regression_test_data(split)
    rows: list[dict[str, Any]] = []
    state = {"gd": 0.0, "overhead": 0.0, "trainer": None}

    def on_row(row: dict[str, Any]) -> None:
        if row["kind"] != "epoch":
            return
        t = time.perf_counter()
        if row.get("gd_time_s") is not None:
            state["gd"] += float(row["gd_time_s"])
            train_time = state["gd"]
        else:  # a trainer without per-epoch GD time: its elapsed time less our own evaluations
            train_time = float(row["elapsed_s"]) - state["overhead"]
        mse = state["trainer"].evaluate(test)["loss"]
        if snapshots is not None:
            snapshots[int(row["epoch"])] = copy.deepcopy(model.state_dict())
        rows.append({"method": method, "preset": "", "epochs": int(row["epoch"]), "test_mse": mse,
                     "gd_time_s": train_time, "solver_time_s": 0.0, "time_s": train_time})
        state["overhead"] += time.perf_counter() - t

    # L-BFGS keeps its own step (1: the strong-Wolfe line search scales it)
    trainer = make_trainer(method, model, "regression", lr=None if method == "lbfgs" else cfg.lr,
                           epochs=cfg.max_epochs,
                           batch_size=cfg.batch_size, seed=seed, threads=cfg.threads, callback=on_row)
    state["trainer"] = trainer
    trainer.fit(split.train, split.val)
    return rows


def run_sweep_from(state_dict, init_model, split, cfg: RegressionConfig, seed: int, preset: str,
                   equation: str) -> dict[str, Any]:
    """One GDSolver sweep (no GD) from the model with weights `state_dict`; the test MSE after it."""
    from gdsolver.train.hybrid import GDSolver
    from gdsolver.train.trainer import clone_model

    model = clone_model(init_model)
    model.load_state_dict(state_dict)
    g = GDSolver(model, "regression", epochs=0, max_sweeps=1, patience=None, lr=cfg.lr, batch_size=cfg.batch_size,
                 seed=seed, threads=cfg.threads, backend=cfg.backend, time_limit=cfg.time_limit,
                 **sweep_options(preset, equation, cfg))
    h = g.fit(split.train, split.val)
    s = h.sweeps[0]
    build, solve = float(s["build_time_s"] or 0.0), float(s["solver_time_s"] or 0.0)
    return {"test_mse": g.evaluate(regression_test_data(split))["loss"], "build_time_s": build, "solve_time_s": solve,
            "solver_time_s": build + solve, "status": s["status"], "accepted": bool(s["accepted"]),
            "radius": s["radius"], "reason": s["reason"]}


@dataclass(frozen=True)
class Cell:
    """One cell of the grid: one method's run for one (equation, seed). A baseline cell trains
    `method` for cfg.max_epochs epochs (one row per epoch); a GDSolver cell (method
    "gdsolver") runs one sweep with radius preset `preset` from the SGD model after `epochs`
    epochs (one row). A cell is a pure, seeded function of its fields and the config, so cells
    can run in any order, in any process (`gdsolver bench regression --ray`)."""

    equation: str
    seed: int
    method: str
    preset: str = ""
    epochs: int = 0

    @property
    def label(self) -> str:
        if self.method == "gdsolver":
            return f"{self.equation} seed {self.seed}: gdsolver[{self.preset}] e={self.epochs}"
        return f"{self.equation} seed {self.seed}: {self.method}"


@dataclass
class CellResult:
    rows: list[dict[str, Any]]
    # the SGD cell only: epoch -> (state_dict after that epoch, cumulative GD time), for the sweeps
    starts: dict[int, tuple[Any, float]] | None = None


def run_cell(cell: Cell, cfg: RegressionConfig, start: tuple[Any, float] | None = None) -> CellResult:
    """The rows of one cell. A GDSolver cell needs `start`: the SGD cell's (state_dict, GD
    time) after cell.epochs epochs (None: the SGD run failed; the row says so)."""
    base = {"equation": cell.equation, "seed": cell.seed}
    if cell.method != "gdsolver":
        split, init = regression_setup(cell.equation, cell.seed)
        snaps: dict[int, Any] | None = {} if cell.method == GD_METHOD else None
        try:
            got = run_baseline(cell.method, init, split, cfg, cell.seed, snapshots=snaps)
        except GdsolverError as exc:
            return CellResult([{**base, "method": cell.method, "preset": "", "epochs": cfg.max_epochs,
                                "test_mse": None, "error": str(exc)}])
        starts = None
        if snaps is not None:
            gd = {r["epochs"]: r["gd_time_s"] for r in got}
            starts = {e: (snaps[e], gd[e]) for e in cfg.sweep_epochs if e in snaps}
        return CellResult([{**base, **r} for r in got], starts)
    row = {**base, "method": "gdsolver", "preset": cell.preset, "epochs": cell.epochs}
    if start is None:
        return CellResult([{**row, "error": f"no SGD model after epoch {cell.epochs}"}])
    split, init = regression_setup(cell.equation, cell.seed)
    state_dict, gd = start
    try:
        sw = run_sweep_from(state_dict, init, split, cfg, cell.seed, cell.preset, cell.equation)
    except GdsolverError as exc:
        return CellResult([{**row, "error": str(exc)}])
    return CellResult([{**row, **sw, "gd_time_s": gd, "time_s": gd + sw["solver_time_s"]}])


def grid(cfg: RegressionConfig) -> list[Cell | TunedCell]:
    """Every cell, in the order of the results: per (equation, seed) the baselines, then the
    sweeps; then the tuned comparison's cells (GDSolver on a tuned GD method gets its rate once
    the rate grid has run)."""
    out: list[Cell | TunedCell] = []
    for eq in cfg.equations if cfg.table1 else ():
        for seed in cfg.seeds:
            out += [Cell(eq, seed, m) for m in cfg.baselines()]
            out += [Cell(eq, seed, "gdsolver", p, e) for p in cfg.presets for e in cfg.sweep_epochs]
    if cfg.tuned is not None:
        from gdsolver.bench.regression_tuned import tuned_cells

        first, second = tuned_cells(cfg)
        out += first + second
    return out


def run_grid(cfg: RegressionConfig, executor: Executor | None = None,
             tick: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Every cell's rows, in grid order. Two rounds of tasks: the baselines (the SGD cells
    give the sweeps their starting models; the rate grid gives the tuned rates), then the
    sweeps and GDSolver on the tuned methods. A task that failed (its error text, e.g. a
    worker that kept dying) becomes an error row of its cell. The tuned comparison's rows
    carry part="tuned"."""
    from gdsolver.bench.regression_tuned import choose_rates, fill_lrs, run_tuned_cell, tuned_cells
    from gdsolver.train.executor import LocalExecutor, Task

    executor = executor or LocalExecutor()
    tick = tick or (lambda _msg: None)
    cells = [c for c in grid(cfg) if isinstance(c, Cell)]
    t_first, t_second = tuned_cells(cfg) if cfg.tuned is not None else ([], [])

    def tuned_rows(cell: TunedCell, o) -> list[dict[str, Any]]:
        if o.ok:
            return o.value
        name = f"gdsolver[{cell.method}]" if cell.kind == "gdsolver" else cell.method
        return [{"equation": cell.equation, "seed": cell.seed, "part": "tuned", "method": name, "lr": cell.lr,
                 "epochs": cfg.tuned.epochs, "test_mse": None, "val_mse": None, "error": f"task failed: {o.error}"}]

    def on_done(o) -> None:
        tick(o.label if o.ok else f"{o.label}: failed")

    def rows_of(cell: Cell, o) -> list[dict[str, Any]]:
        if o.ok:
            return o.value.rows
        return [{"equation": cell.equation, "seed": cell.seed, "method": cell.method, "preset": cell.preset,
                 "epochs": cell.epochs or cfg.max_epochs, "error": f"task failed: {o.error}"}]

    first = [c for c in cells if c.method != "gdsolver"]
    second = [c for c in cells if c.method == "gdsolver"]
    got = executor.run([Task(run_cell, (c, cfg), label=c.label, cpus=cfg.threads) for c in first]
                       + [Task(run_tuned_cell, (c, cfg), label=c.label, cpus=cfg.threads) for c in t_first], on_done)
    outs = dict(zip(first, got[:len(first)]))
    trows: list[dict[str, Any]] = []
    for c, o in zip(t_first, got[len(first):]):
        trows += tuned_rows(c, o)
    t_second = fill_lrs(t_second, choose_rates(trows, cfg)) if t_second else []
    starts: dict[tuple[str, int], dict[int, tuple[Any, float]]] = {}
    for c, o in outs.items():
        if c.method == GD_METHOD and o.ok and o.value.starts:
            starts[(c.equation, c.seed)] = o.value.starts
    tasks = [Task(run_cell, (c, cfg, starts.get((c.equation, c.seed), {}).get(c.epochs)), label=c.label,
                  cpus=cfg.threads) for c in second]
    tasks += [Task(run_tuned_cell, (c, cfg), label=c.label, cpus=cfg.threads) for c in t_second]
    got = executor.run(tasks, on_done)
    outs.update(zip(second, got[:len(second)]))
    for c, o in zip(t_second, got[len(second):]):
        trows += tuned_rows(c, o)
    rows: list[dict[str, Any]] = []
    for c in cells:
        rows += rows_of(c, outs[c])
    return rows + trows


# ---------------------------------------------------------------------------------- summary
def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean / std over seeds per (equation, method, preset, epochs)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["equation"], r["method"], r.get("preset") or "", r["epochs"]), []).append(r)
    out = []
    for (eq, m, p, e), rs in groups.items():
        mse, mse_sd, n = mean_std([r.get("test_mse") for r in rs])
        t, t_sd, _ = mean_std([r.get("time_s") for r in rs])
        gd, _, _ = mean_std([r.get("gd_time_s") for r in rs])
        sv, _, _ = mean_std([r.get("solver_time_s") for r in rs])
        acc = [r["accepted"] for r in rs if r.get("accepted") is not None]
        out.append({"equation": eq, "method": m, "preset": p, "epochs": e, "test_mse": mse, "test_mse_std": mse_sd,
                    "n": n, "time_s": t, "time_s_std": t_sd, "gd_time_s": gd, "solver_time_s": sv,
                    "accepted": (sum(acc) / len(acc)) if acc else None,
                    "errors": sum(1 for r in rs if r.get("error"))})
    return out


def _lookup(agg: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    return {(a["equation"], a["method"], a["preset"], a["epochs"]): a for a in agg}


def table1(agg: list[dict[str, Any]], cfg: RegressionConfig, preset: str) -> dict[str, Any]:
    """Table 1 for one radius preset: per equation the best of the paper's baselines (lowest
    mean test MSE at e_hi) at e_lo and e_hi, GDSolver(e_lo), and the relative MSE reduction /
    time saving of GDSolver(e_lo) against that baseline at e_hi (the paper's headline
    comparison); also the best of the other methods (BPGrad, lifted BCD, ...) at e_hi."""
    lo, hi = cfg.table_epochs()
    L = _lookup(agg)
    rows = []

    def best_of(eq: str, names: Sequence[str]) -> str | None:
        c = [(L[(eq, m, "", hi)]["test_mse"], m) for m in names
             if (eq, m, "", hi) in L and math.isfinite(L[(eq, m, "", hi)]["test_mse"])]
        return min(c)[1] if c else None

    paper_names = [m for m in cfg.baselines() if m in PAPER_BASELINES] or cfg.baselines()
    others = [m for m in cfg.baselines() if m not in paper_names]
    for eq in cfg.equations:
        best = best_of(eq, paper_names)
        g = L.get((eq, "gdsolver", preset, lo))
        if best is None or g is None:
            continue
        other = best_of(eq, others)
        b_lo, b_hi, sgd_lo = L.get((eq, best, "", lo)), L[(eq, best, "", hi)], L.get((eq, GD_METHOD, "", lo))
        red = (b_hi["test_mse"] - g["test_mse"]) / b_hi["test_mse"] if b_hi["test_mse"] else math.nan
        save = (b_hi["time_s"] - g["time_s"]) / b_hi["time_s"] if b_hi["time_s"] else math.nan
        vs_sgd = (sgd_lo["test_mse"] - g["test_mse"]) / sgd_lo["test_mse"] if sgd_lo and sgd_lo["test_mse"] \
            else math.nan
        rows.append({"equation": eq, "best_baseline": best, "gd_lo": b_lo, "gd_hi": b_hi, "gdsolver": g,
                     "mse_reduction": red, "time_saving": save, "sweep_gain_vs_sgd": vs_sgd,
                     "best_other": other, "other_hi": L[(eq, other, "", hi)] if other else None,
                     "paper": PAPER_TABLE1.get(eq)})
    red = [r["mse_reduction"] for r in rows if math.isfinite(r["mse_reduction"])]
    save = [r["time_saving"] for r in rows if math.isfinite(r["time_saving"])]
    return {"preset": preset, "e_lo": lo, "e_hi": hi, "rows": rows,
            "mean_mse_reduction": float(np.mean(red)) if red else math.nan,
            "mean_time_saving": float(np.mean(save)) if save else math.nan}


def _pct(v: float) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{100 * v:+.1f}%"


def markdown(doc: dict[str, Any], cfg: RegressionConfig, png_name: str | None) -> str:
    lo, hi = cfg.table_epochs()
    lines = [f"# gdsolver bench regression ({doc['preset']} preset)", "",
             "The paper's regression experiment (Table 1): test MSE of the best baseline after "
             f"{lo} and {hi} epochs vs GDSolver({lo}) = {lo} epochs of SGD + one solver sweep. Mean ± standard "
             f"deviation over seeds {list(cfg.seeds)}; times are the means of GD-step time (evaluation excluded) "
             "and, for GDSolver, GD + solver (formulation + solve).", ""]
    lines += run_header(doc)
    if doc.get("tuned"):
        from gdsolver.bench.regression_tuned import markdown_lines

        lines += markdown_lines(doc, cfg)
        if doc["tuned"].get("png"):
            lines += [f"![test MSE per seed, tuned comparison]({doc['tuned']['png']})", ""]
        lines += ["## The paper presets (for the record)", ""]
    for t in doc["table1"]:
        lines += [f"## Table 1, radius preset \"{t['preset']}\"", ""]
        cols = ["equation", "best baseline", f"GD({lo}) MSE", f"GD({hi}) MSE", f"GDSolver({lo}) MSE",
                f"GD({lo}) s", f"GD({hi}) s", f"GDSolver({lo}) s (GD + solver)", "accepted",
                f"MSE vs GD({hi})", f"time vs GD({hi})", f"vs SGD({lo})", f"best other method ({hi})"]
        body = []
        for r in t["rows"]:
            g = r["gdsolver"]
            body.append([r["equation"], r["best_baseline"],
                         fmt_pm(r["gd_lo"]["test_mse"] if r["gd_lo"] else None,
                                r["gd_lo"]["test_mse_std"] if r["gd_lo"] else None),
                         fmt_pm(r["gd_hi"]["test_mse"], r["gd_hi"]["test_mse_std"]),
                         fmt_pm(g["test_mse"], g["test_mse_std"]),
                         fmt_num(r["gd_lo"]["time_s"] if r["gd_lo"] else None, 3), fmt_num(r["gd_hi"]["time_s"], 3),
                         f"{fmt_num(g['time_s'], 3)} ({fmt_num(g['gd_time_s'], 3)} + {fmt_num(g['solver_time_s'], 3)})",
                         f"{fmt_num(100 * g['accepted'], 3)}%" if g["accepted"] is not None else "-",
                         _pct(-r["mse_reduction"]), _pct(-r["time_saving"]), _pct(-r["sweep_gain_vs_sgd"]),
                         f"{r['best_other']} {fmt_pm(r['other_hi']['test_mse'], r['other_hi']['test_mse_std'])}"
                         if r["best_other"] else "-"])
        lines += md_table(cols, body)
        lines += ["", f"Average over equations: GDSolver({lo}) has {_pct(-t['mean_mse_reduction'])} test MSE and "
                  f"{_pct(-t['mean_time_saving'])} time relative to the best of the paper's baselines "
                  f"({', '.join(PAPER_BASELINES)}) at {hi} epochs "
                  f"(the paper: {_pct(-PAPER_MSE_REDUCTION)} MSE, {_pct(-PAPER_TIME_SAVING)} time). "
                  f"\"vs SGD({lo})\" is the sweep's own effect: GDSolver({lo}) against the SGD model it started "
                  "from (equal GD epochs).", ""]
    lines += ["## The paper's Table 1 (best baseline SGD+LRS)", ""]
    lines += md_table(["equation", "GD(10)", "GD(20)", "GDSolver(10)", "MSE vs GD(20)"],
                      [[eq, *map(str, v), _pct(-(v[1] - v[2]) / v[1])] for eq, v in PAPER_TABLE1.items()])
    lines += ["", f"Times: GD(10) ~{PAPER_TIMES[0]} s, GD(20) ~{PAPER_TIMES[1]} s, GDSolver(10) ~{PAPER_TIMES[2]} s; "
              f"headline {_pct(-PAPER_MSE_REDUCTION)} MSE in {_pct(-PAPER_TIME_SAVING)} time.", ""]
    L = _lookup(doc["aggregate"])
    shown = sorted({1, lo, hi, max(1, lo // 2)} & set(range(1, hi + 1)))
    methods = [(m, "") for m in cfg.baselines()] + [("gdsolver", p) for p in cfg.presets]
    lines += ["## Test MSE by epochs, every method", ""]
    for eq in cfg.equations:
        cols = ["method"] + [f"e={e}" for e in shown]
        body = []
        for meth, p in methods:
            label = meth if not p else f"gdsolver [{p}]"
            body.append([label] + [fmt_pm(L[(eq, meth, p, e)]["test_mse"], L[(eq, meth, p, e)]["test_mse_std"])
                                   if (eq, meth, p, e) in L else "-" for e in shown])
        lines += [f"### {eq}", ""] + md_table(cols, body) + [""]
    errs = sorted({(r["equation"], r["method"], r["error"]) for r in doc["errors"]})
    if errs:
        lines += ["## Runs that failed", ""] + [f"- {eq}, {me}: {er}" for eq, me, er in errs] + [""]
    if png_name:
        lines += [f"![test MSE against epochs and wall time]({png_name})", ""]
    return "\n".join(lines)


def plot(doc: dict[str, Any], cfg: RegressionConfig, path: Path) -> int:
    plt = pyplot()
    L = _lookup(doc["aggregate"])
    eqs = list(cfg.equations)
    fig, axes = plt.subplots(len(eqs), 2, figsize=(10, 3.0 * len(eqs)), squeeze=False)
    methods = [(m, "") for m in cfg.baselines()] + [("gdsolver", p) for p in cfg.presets]
    for i, eq in enumerate(eqs):
        for meth, p in methods:
            pts = sorted((e, L[(eq, meth, p, e)]) for e in range(1, cfg.max_epochs + 1) if (eq, meth, p, e) in L)
            pts = [(e, a) for e, a in pts if math.isfinite(a["test_mse"])]
            if not pts:
                continue
            es = [e for e, _ in pts]
            mse = [a["test_mse"] for _, a in pts]
            ts = [a["time_s"] for _, a in pts]
            style = dict(marker="o", ms=4, lw=1.5) if meth == "gdsolver" else dict(lw=1.2)
            label = f"GDSolver [{p}]" if p else meth
            axes[i, 0].plot(es, mse, label=label, **style)
            axes[i, 1].plot(ts, mse, label=label, **style)
        for j, xl in enumerate(("GD epochs e", "mean wall time (s): GD steps + solver")):
            ax = axes[i, j]
            ax.set_yscale("log")
            ax.set_xlabel(xl)
            ax.set_ylabel("test MSE")
            ax.set_title(eq)
            ax.grid(alpha=0.3)
        axes[i, 0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def run_regression_bench(cfg: RegressionConfig, out_dir: str | Path = "benchmarks/results", *, tag: str = "regression",
                         preset: str = "custom", tick: Callable[[str], None] | None = None,
                         command: Sequence[str] | None = None, plots: bool = True,
                         note: str | None = None, executor: Executor | None = None) -> dict[str, Any]:
    """Run the experiment and write {tag}.csv / .json / .md / .png into out_dir; returns the JSON
    document. `executor` (gdsolver.train.executor) runs the cells; default: one after another here."""
    from gdsolver.train.executor import LocalExecutor

    cfg.check()
    paths = out_paths(out_dir, tag)
    t0 = time.perf_counter()
    load_before = load_average()
    rows = run_grid(cfg, executor, tick)
    trows = [r for r in rows if r.get("part") == "tuned"]
    rows = [r for r in rows if r.get("part") != "tuned"]
    agg = aggregate(rows)
    doc: dict[str, Any] = {"benchmark": "regression", "preset": preset, "config": asdict(cfg),
                           "baselines": cfg.baselines(), **run_metadata(command),
                           "wall_s": time.perf_counter() - t0, "note": note,
                           "load_average": {"start": load_before, "end": load_average()},
                           "executor": (executor or LocalExecutor()).describe(),
                           "sweep_presets": {p: {eq: sweep_options(p, eq, cfg) for eq in cfg.equations}
                                             for p in cfg.presets},
                           "paper": {"table1": PAPER_TABLE1, "times": PAPER_TIMES,
                                     "mse_reduction": PAPER_MSE_REDUCTION, "time_saving": PAPER_TIME_SAVING}}
    doc["aggregate"] = agg
    doc["table1"] = [table1(agg, cfg, p) for p in cfg.presets]
    doc["sweeps"] = [{k: r.get(k) for k in ("equation", "seed", "preset", "epochs", "status", "accepted", "radius",
                                            "reason", "error")} for r in rows if r["method"] == "gdsolver"]
    doc["errors"] = [r for r in rows + trows if r.get("error")]
    if cfg.tuned is not None:
        from gdsolver.bench import regression_tuned as rt

        chosen = rt.choose_rates(trows, cfg)
        doc["tuned"] = {**rt.summarize(trows, cfg, chosen), "chosen": {f"{e}/{m}": v for (e, m), v in chosen.items()},
                        "rate_scores": rt.rate_scores(trows, cfg), "tuning_cost_s": rt.tuning_cost(trows, cfg)}
        tpaths = out_paths(out_dir, f"{tag}_tuned")
        write_csv(tpaths["csv"], trows, rt.TUNED_CSV_COLUMNS)
        doc["tuned"]["csv"] = tpaths["csv"].name
        if plots:
            doc["tuned"]["png_bytes"] = rt.plot(doc, trows, cfg, tpaths["png"])
            doc["tuned"]["png"] = tpaths["png"].name
    write_outputs(doc, rows, CSV_COLUMNS, paths, plot=(lambda d, path: plot(d, cfg, path)) if plots else None,
                  markdown=lambda d, png: markdown(d, cfg, png))
    if cfg.tuned is not None:
        rt.write_tuned_json(doc, tpaths["json"])
        doc["paths"]["tuned_json"] = str(tpaths["json"])
        doc["paths"]["tuned_csv"] = str(tpaths["csv"])
        if plots:
            doc["paths"]["tuned_png"] = str(tpaths["png"])
    doc["rows"] = rows  # full precision (the CSV has 7 significant digits); not in the JSON file
    doc["tuned_rows"] = trows
    return doc
