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
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdsolver.bench.plots import (fmt_num, fmt_pm, md_table, mean_std, out_paths, pyplot, run_header, save_figure,
                                  write_csv)
from gdsolver.bench.regression_setup import regression_setup, regression_test_data
from gdsolver.bench.regression_tuned import TunedConfig
from gdsolver.bench.runner import Bench, run_bench
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


# ---------------------------------------------------------------------------------- cells
# A cell is a dict its rows carry (so a resumed run finds them): part "table1" -- a baseline's run
# for one (equation, seed), one row per epoch, or one GDSolver sweep (method "gdsolver", preset,
# epochs) from the SGD model after `epochs` epochs -- or part "tuned" (gdsolver.bench.
# regression_tuned). A cell is a pure, seeded function of its fields and the config, so cells can
# run in any order, in any process (`gdsolver bench regression --ray`).
def cell_label(cell: dict[str, Any]) -> str:
    head = f"{cell['equation']} seed {cell['seed']}: "
    if cell["part"] == "table1" and cell["method"] == "gdsolver":
        return head + f"gdsolver[{cell['preset']}] e={cell['epochs']}"
    return head + cell["method"] + (f" lr={cell['lr']:g}" if cell.get("lr") is not None else "")


def table1_cells(cfg: RegressionConfig, sweeps: bool) -> list[dict[str, Any]]:
    """The baselines' cells (sweeps False) or the sweeps' (True), per (equation, seed)."""
    out: list[dict[str, Any]] = []
    for eq in cfg.equations if cfg.table1 else ():
        for seed in cfg.seeds:
            base = {"part": "table1", "equation": eq, "seed": seed}
            out += ([{**base, "method": "gdsolver", "preset": p, "epochs": e} for p in cfg.presets
                     for e in cfg.sweep_epochs] if sweeps else [{**base, "method": m} for m in cfg.baselines()])
    return out


def grid(cfg: RegressionConfig) -> list[dict[str, Any]]:
    """Every cell (the tuned GDSolver rows on a GD method without their rate, chosen once the rate
    grid has run): the first stage's, then the second's."""
    from gdsolver.bench.regression_tuned import tuned_cells

    first, second = tuned_cells(cfg) if cfg.tuned is not None else ([], [])
    return table1_cells(cfg, False) + first + table1_cells(cfg, True) + second


def run_sweep_cell(cell: dict[str, Any], cfg: RegressionConfig, gd_time: float | None) -> dict[str, Any]:
    """One GDSolver sweep from the SGD model after cell["epochs"] epochs: that SGD run again (seeded,
    the same weights bit for bit); its GD time is the SGD cell's (`gd_time`, None: that cell failed)."""
    e, seed, eq = cell["epochs"], cell["seed"], cell["equation"]
    if gd_time is None:
        return {**cell, "error": f"no SGD model after epoch {e}"}
    split, init = regression_setup(eq, seed)
    snaps: dict[int, Any] = {}
    try:
        run_baseline(GD_METHOD, init, split, replace(cfg, max_epochs=e), seed, snapshots=snaps)
        sw = run_sweep_from(snaps[e], init, split, cfg, seed, cell["preset"], eq)
    except GdsolverError as exc:
        return {**cell, "error": str(exc)}
    return {**cell, **sw, "gd_time_s": gd_time, "time_s": gd_time + sw["solver_time_s"]}


def run_cell(cfg: RegressionConfig, gd_times: dict[str, float], cell: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of one cell; `gd_times` ("equation/seed/epochs" -> the SGD cell's GD time) for the
    sweeps. A GdsolverError (e.g. a diverged run) is an error row of the cell."""
    if cell["part"] == "tuned":
        from gdsolver.bench.regression_tuned import run_tuned_cell

        return run_tuned_cell(cell, cfg)
    if cell["method"] == "gdsolver":
        return [run_sweep_cell(cell, cfg, gd_times.get(f"{cell['equation']}/{cell['seed']}/{cell['epochs']}"))]
    split, init = regression_setup(cell["equation"], cell["seed"])
    try:
        got = run_baseline(cell["method"], init, split, cfg, cell["seed"])
    except GdsolverError as exc:
        return [{**cell, "preset": "", "epochs": cfg.max_epochs, "test_mse": None, "error": str(exc)}]
    return [{**cell, **r} for r in got]


def second_stage(cfg: RegressionConfig, doc: dict[str, Any]) -> Bench | None:
    """The cells that need the first stage's rows: the sweeps (from the SGD runs) and GDSolver on
    the tuned GD methods (at the rate the grid chose)."""
    from gdsolver.bench.regression_tuned import choose_rates, tuned_cells

    rows = doc["rows"]
    gd = {f"{r['equation']}/{r['seed']}/{r['epochs']}": r["gd_time_s"] for r in rows
          if r["part"] == "table1" and r["method"] == GD_METHOD}
    cells = table1_cells(cfg, True)
    if cfg.tuned is not None:
        cells += tuned_cells(cfg, choose_rates([r for r in rows if r["part"] == "tuned"], cfg))[1]
    return Bench("regression", cells, partial(run_cell, cfg, gd), report, label=cell_label, cpus=cfg.threads) \
        if cells else None


def grid_order(rows: list[dict[str, Any]], cfg: RegressionConfig) -> list[dict[str, Any]]:
    """Table 1's rows as the grid lists them: per (equation, seed) the baselines, then the sweeps."""
    eqs, seeds = {e: i for i, e in enumerate(cfg.equations)}, {s: i for i, s in enumerate(cfg.seeds)}
    t1 = [r for r in rows if r.get("part") != "tuned"]
    return sorted(t1, key=lambda r: (eqs.get(r["equation"], 99), seeds.get(r["seed"], 99), r["method"] == "gdsolver"))


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


def config_from_json(c: dict[str, Any]) -> RegressionConfig:
    """The RegressionConfig a result document's "config" records."""
    c = {k: tuple(v) if isinstance(v, list) else v for k, v in c.items()}
    if c.get("tuned"):
        c["tuned"] = TunedConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in c["tuned"].items()})
    return RegressionConfig(**c)


def report(doc: dict[str, Any]) -> list[str]:
    """The report of a result document, as lines (a document from before the runner names no plot;
    give it doc["png"])."""
    md = markdown(doc, config_from_json(doc["config"]), doc.get("png"))
    return md.split("\n")[:-1] if md.endswith("\n") else md.split("\n")


def summarize(cfg: RegressionConfig, doc: dict[str, Any]) -> dict[str, Any]:
    """Table 1 (means over the seeds per method and epochs, the sweeps, the failed runs) and the
    tuned comparison's summary, from every row."""
    rows = grid_order(doc["rows"], cfg)
    trows = [r for r in doc["rows"] if r.get("part") == "tuned"]
    for r in rows:  # a cell that failed outside its trainers (e.g. its worker died) is one error row
        r.setdefault("preset", "")
        r.setdefault("epochs", cfg.max_epochs)
    agg = aggregate(rows)
    out: dict[str, Any] = {
        "aggregate": agg, "table1": [table1(agg, cfg, p) for p in cfg.presets],
        "sweeps": [{k: r.get(k) for k in ("equation", "seed", "preset", "epochs", "status", "accepted", "radius",
                                          "reason", "error")} for r in rows if r["method"] == "gdsolver"],
        "errors": [r for r in rows + trows if r.get("error")]}
    if cfg.tuned is not None:
        from gdsolver.bench import regression_tuned as rt

        chosen = rt.choose_rates(trows, cfg)
        out["tuned"] = {**rt.summarize(trows, cfg, chosen), "chosen": {f"{e}/{m}": v for (e, m), v in chosen.items()},
                        "rate_scores": rt.rate_scores(trows, cfg), "tuning_cost_s": rt.tuning_cost(trows, cfg)}
    return out


def write_files(cfg: RegressionConfig, tag: str, plots: bool, doc: dict[str, Any],
                paths: dict[str, Path]) -> dict[str, Path]:
    """{tag}.csv (Table 1's rows) and the tuned comparison's {tag}_tuned.csv / .json / .png."""
    write_csv(paths["csv"], grid_order(doc["rows"], cfg), CSV_COLUMNS)
    written = {"csv": paths["csv"]}
    if cfg.tuned is not None:
        from gdsolver.bench import regression_tuned as rt

        trows = [r for r in doc["rows"] if r.get("part") == "tuned"]
        tpaths = out_paths(paths["json"].parent, f"{tag}_tuned")
        write_csv(tpaths["csv"], trows, rt.TUNED_CSV_COLUMNS)
        doc["tuned"]["csv"] = tpaths["csv"].name
        if plots:
            doc["tuned"]["png_bytes"] = rt.plot(doc, trows, cfg, tpaths["png"])
            doc["tuned"]["png"] = tpaths["png"].name
        rt.write_tuned_json(doc, tpaths["json"])
        written |= {"tuned_json": tpaths["json"], "tuned_csv": tpaths["csv"]} | (
            {"tuned_png": tpaths["png"]} if plots else {})
    return written


def regression_bench(cfg: RegressionConfig, tag: str = "regression", preset: str = "custom", plots: bool = True,
                     note: str | None = None) -> Bench:
    """The experiment as a bench: the first stage's cells (the baselines, the rate grid, L-BFGS and
    GDSolver on it), then second_stage's."""
    from gdsolver.bench.regression_tuned import tuned_cells

    cfg.check()
    meta = {"preset": preset, "config": asdict(cfg), "baselines": cfg.baselines(), "note": note,
            "sweep_presets": {p: {eq: sweep_options(p, eq, cfg) for eq in cfg.equations} for p in cfg.presets},
            "paper": {"table1": PAPER_TABLE1, "times": PAPER_TIMES, "mse_reduction": PAPER_MSE_REDUCTION,
                      "time_saving": PAPER_TIME_SAVING}}
    first = table1_cells(cfg, False) + (tuned_cells(cfg)[0] if cfg.tuned is not None else [])
    return Bench("regression", first, partial(run_cell, cfg, {}), report, meta=meta, summarize=partial(summarize, cfg),
                 label=cell_label, header=False, plot=partial(_plot, cfg) if plots else None, cpus=cfg.threads,
                 report_failed=True, next_stage=partial(second_stage, cfg), files=partial(write_files, cfg, tag, plots))


def _plot(cfg: RegressionConfig, doc: dict[str, Any], path: Path) -> int:
    return plot(doc, cfg, path)


def run_regression_bench(cfg: RegressionConfig, out_dir: str | Path = "benchmarks/results", *, tag: str = "regression",
                         preset: str = "custom", tick: Callable[[str], None] | None = None,
                         command: Sequence[str] | None = None, plots: bool = True, note: str | None = None,
                         executor: Executor | None = None, echo: Callable = print,
                         resume: bool = False) -> dict[str, Any]:
    """Run the experiment and write {tag}.csv / .json / .md / .png (and {tag}_tuned.*) into
    out_dir; returns the document, its "rows" Table 1's and "tuned_rows" the tuned comparison's.
    `executor` (gdsolver.train.executor) runs the cells; default: one after another here.
    `resume`: reuse the rows of an earlier run of the same settings (bench.runner)."""
    doc = run_bench(regression_bench(cfg, tag, preset, plots, note), out_dir, tag, echo=echo, tick=tick,
                    command=command, executor=executor, resume=resume)
    doc["tuned_rows"] = [r for r in doc["rows"] if r.get("part") == "tuned"]
    doc["rows"] = grid_order(doc["rows"], cfg)
    return doc
