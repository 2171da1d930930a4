"""Tuned baselines against GDSolver on the paper's regression model (issues 15 and 19).

Part of `gdsolver bench regression`. Per equation and seed (the seed draws the data and
initialises Linear(3,2)-ReLU-Linear(2,2); every method of a seed starts from those weights):

- tuned GD baselines: SGD, SGD + LR schedule, Adam, Adam + LR schedule, each run for
  `epochs` (20) at every rate of `lr_grid`; the rate of a (equation, method) is chosen by the
  mean validation MSE over the seeds after `epochs` (gdsolver.bench.tuning), the same rule for all;
- L-BFGS (full batch, strong Wolfe, lr 1: the line search sets the step, no rate to tune) for
  `epochs` epochs, once and best of `restarts` (chosen on validation, every restart's time counted);
- GDSolver rows "gdsolver[X]": the GD phase of baseline X (its tuned rate; `gd_epochs` epochs for
  a GD method, the whole L-BFGS best-of-K run for L-BFGS), then `rounds` sweep rounds over all
  layers (hidden, then final) with the squared-error head. Each round is one
  GDSolver(epochs=0, max_sweeps=1, layers="all") fit on the model, seed + 1000 r for its points:
  GDSolver(max_sweeps=R) ends after the first round with an accepted sweep once its epoch budget
  is spent, and the measured recipe is R rounds. Every sweep is verified and kept only if it
  lowers the loss on its points and raises the validation MSE by at most 1%.

Reported: mean, std, median test MSE over seeds, wins against the best baseline (the baseline
with the lowest mean test MSE after `epochs`, L-BFGS included; "best GD baseline" among the four
tuned GD methods) and the paired difference, GD and solver time; for each GDSolver row, per seed,
whether the sweeps helped, hurt or did nothing against the model they started from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gdsolver.bench.plots import fmt_num, fmt_pm, md_table
from gdsolver.bench.tuning import LR_GRID, TUNED_METHODS, choose_lr, lbfgs_name
from gdsolver.errors import GdsolverError

HURT_TOLERANCE = 0.01  # "hurt" beyond this relative rise of a seed's test MSE is what the accept rule should prevent
SAME = 1e-9  # relative change below which the sweeps "did nothing"

TUNED_CSV_COLUMNS = ("equation", "seed", "method", "lr", "epochs", "val_mse", "test_mse", "test_mse_before",
                     "val_mse_before", "gd_time_s", "solver_time_s", "time_s", "sweeps", "sweeps_accepted",
                     "round_test_mse", "error")


@dataclass(frozen=True)
class TunedConfig:
    lr_grid: tuple[float, ...] = LR_GRID
    methods: tuple[str, ...] = TUNED_METHODS  # tuned GD baselines
    epochs: int = 20  # the baselines' budget
    gd_epochs: int = 10  # GD epochs before GDSolver's sweeps (GD methods)
    restarts: int = 5  # L-BFGS best of K
    on: tuple[str, ...] = ("sgd", "adam-lrs", "lbfgs-best")  # GD phases of the GDSolver rows
    rounds: int = 2
    radius: float = 1.0
    solver_points: int | str = "auto"  # 50 points for the hidden layer (a MIP), every point for the final LP
    time_limit: float = 10.0  # per sweep (all refinement rounds of its head included)
    mode: str = "squared"
    gdsolver_seeds: tuple[int, ...] | None = None  # None: every seed of the run

    def check(self, seeds: tuple[int, ...]) -> "TunedConfig":
        if not self.lr_grid or any(not (lr > 0 and math.isfinite(lr)) for lr in self.lr_grid):
            raise GdsolverError(f"lr_grid: give finite rates > 0, got {list(self.lr_grid)}")
        bad = [m for m in self.methods if m not in TUNED_METHODS]
        if bad:
            raise GdsolverError(f"tuned methods: {bad}, expected some of {list(TUNED_METHODS)}")
        bad = [m for m in self.on if m != "lbfgs-best" and m not in self.methods]
        if bad:
            raise GdsolverError(f"gdsolver on: {bad}, expected 'lbfgs-best' or tuned methods {list(self.methods)}")
        if not 1 <= self.gd_epochs <= self.epochs:
            raise GdsolverError(f"gd_epochs: must be in 1..{self.epochs}, got {self.gd_epochs}")
        if self.restarts < 1 or self.rounds < 0:
            raise GdsolverError("restarts must be >= 1 and rounds >= 0")
        if self.gdsolver_seeds is not None and not set(self.gdsolver_seeds) <= set(seeds):
            raise GdsolverError(f"gdsolver_seeds: {list(self.gdsolver_seeds)} not among the seeds {list(seeds)}")
        return self

    @property
    def lbfgs_best(self) -> str:
        return lbfgs_name(self.restarts)

    def baseline_names(self) -> list[str]:
        return [*self.methods, "lbfgs", *([self.lbfgs_best] if self.restarts > 1 else [])]

    def gd_phase(self, on: str) -> str:
        """The baseline name of a GDSolver row's GD phase."""
        return self.lbfgs_best if on == "lbfgs-best" else on

    def gdsolver_names(self) -> list[str]:
        return [f"gdsolver[{self.gd_phase(o)}]" for o in self.on]


def with_rows(t: TunedConfig, rows: list[str]) -> TunedConfig:
    """The comparison restricted to `rows`: tuned GD baselines ("sgd", "adam-lrs", ...), GDSolver
    rows ("gdsolver[adam-lrs]", "gdsolver[lbfgs-best5]"); L-BFGS once and best of K always run
    (they are cheap, and the best baseline is chosen among them), so "lbfgs" and "lbfgs-bestK"
    are accepted and add nothing."""
    methods, on = [], []
    for r in rows:
        if r in TUNED_METHODS:
            methods.append(r)
        elif r.startswith("gdsolver[") and r.endswith("]"):
            inner = r[len("gdsolver["):-1]
            if inner == t.lbfgs_best:
                on.append("lbfgs-best")
            elif inner in TUNED_METHODS:
                on.append(inner)
                methods.append(inner)  # its GD phase runs at that baseline's tuned rate
            else:
                raise GdsolverError(f"row {r!r}: expected gdsolver[{t.lbfgs_best}] or gdsolver[M] for a tuned method "
                                    f"M of {list(TUNED_METHODS)}")
        elif r not in ("lbfgs", t.lbfgs_best):
            raise GdsolverError(f"row {r!r}: expected one of {[*TUNED_METHODS, 'lbfgs', t.lbfgs_best]} or a "
                                "gdsolver[...] row")
    return replace(t, methods=tuple(dict.fromkeys(methods)), on=tuple(dict.fromkeys(on)))


@dataclass(frozen=True)
class TunedCell:
    """A tuned-comparison cell's run: kind "gd" (method at rate lr), "lbfgs" (method "lbfgs" or
    "lbfgs-bestK") or "gdsolver" (the GD phase of baseline `method` at rate lr, then sweeps)."""

    equation: str
    seed: int
    kind: str
    method: str
    lr: float | None = None

    @classmethod
    def of(cls, cell: dict[str, Any]) -> "TunedCell":
        """From a cell of the bench (its method the row's name: "sgd", "lbfgs-best5", "gdsolver[adam-lrs]")."""
        m = cell["method"]
        if m.startswith("gdsolver[") and m.endswith("]"):
            return cls(cell["equation"], cell["seed"], "gdsolver", m[len("gdsolver["):-1], cell.get("lr"))
        return cls(cell["equation"], cell["seed"], "lbfgs" if m.startswith("lbfgs") else "gd", m, cell.get("lr"))


def tuned_cells(cfg, chosen: dict[tuple[str, str], float | None] | None = None
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(first stage, second stage) cells: the rate grid and L-BFGS (and GDSolver on L-BFGS, which
    needs no tuned rate); then GDSolver on the tuned GD methods at the rates `chosen` over the
    first stage ((equation, method) -> rate; None: not yet chosen). A cell's keys are its rows'."""
    t: TunedConfig = cfg.tuned
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []
    g_seeds = set(cfg.seeds if t.gdsolver_seeds is None else t.gdsolver_seeds)
    for eq in cfg.equations:
        for seed in cfg.seeds:
            base = {"part": "tuned", "equation": eq, "seed": seed}
            first += [{**base, "method": m, "lr": lr} for m in t.methods for lr in t.lr_grid]
            first += [{**base, "method": n} for n in dict.fromkeys(["lbfgs", t.lbfgs_best])]
            if seed not in g_seeds:
                continue
            for on in t.on:
                if on == "lbfgs-best":
                    first.append({**base, "method": f"gdsolver[{t.lbfgs_best}]"})
                else:
                    second.append({**base, "method": f"gdsolver[{on}]", "lr": (chosen or {}).get((eq, on))})
    return first, second


# ---------------------------------------------------------------------------------- running
def _restarts(name: str) -> int:
    return int(name[len("lbfgs-best"):]) if name.startswith("lbfgs-best") else 1


def _gd_options(method: str, lr: float | None) -> dict[str, Any]:
    """GDSolver / GDTrainer options of baseline `method`'s GD."""
    if method.startswith("lbfgs"):
        return dict(optimizer="lbfgs", restarts=_restarts(method))
    from gdsolver.train.methods import gd_phase_options

    return gd_phase_options(method, lr)


def run_gd_cell(cell: TunedCell, cfg, split, init, test) -> list[dict[str, Any]]:
    """A tuned-grid run: rows at gd_epochs and epochs with validation and test MSE."""
    from gdsolver.train.methods import make_trainer
    from gdsolver.train.trainer import clone_model

    t: TunedConfig = cfg.tuned
    wanted = {t.gd_epochs, t.epochs}
    rows: list[dict[str, Any]] = []
    state: dict[str, Any] = {"gd": 0.0}

    def on_row(row: dict[str, Any]) -> None:
        if row["kind"] != "epoch":
            return
        state["gd"] += float(row["gd_time_s"] or 0.0)
        if int(row["epoch"]) in wanted:
            rows.append({"method": cell.method, "lr": cell.lr, "epochs": int(row["epoch"]),
                         "val_mse": float(row["val_loss"]), "test_mse": state["trainer"].evaluate(test)["loss"],
                         "gd_time_s": state["gd"], "solver_time_s": 0.0, "time_s": state["gd"]})

    tr = make_trainer(cell.method, clone_model(init), "regression", lr=cell.lr, epochs=t.epochs,
                      batch_size=cfg.batch_size, seed=cell.seed, threads=cfg.threads, callback=on_row)
    state["trainer"] = tr
    tr.fit(split.train, split.val)
    return rows


def run_lbfgs_cell(cell: TunedCell, cfg, split, init, test) -> list[dict[str, Any]]:
    from gdsolver.train.methods import make_trainer
    from gdsolver.train.trainer import clone_model

    t: TunedConfig = cfg.tuned
    tr = make_trainer("lbfgs", clone_model(init), "regression", epochs=t.epochs, seed=cell.seed,
                      threads=cfg.threads, restarts=_restarts(cell.method))
    h = tr.fit(split.train, split.val)
    gd = h.summary()["gd_time_s"]  # every restart's steps
    return [{"method": cell.method, "lr": tr.lr, "epochs": t.epochs, "val_mse": tr.evaluate(split.val)["loss"],
             "test_mse": tr.evaluate(test)["loss"], "gd_time_s": gd, "solver_time_s": 0.0, "time_s": gd}]


def sweep_settings(cfg) -> dict[str, Any]:
    t: TunedConfig = cfg.tuned
    return dict(layers="all", radius=t.radius, solver_points=t.solver_points, time_limit=t.time_limit, mode=t.mode,
                backend=cfg.backend)


def run_gdsolver_cell(cell: TunedCell, cfg, split, init, test) -> list[dict[str, Any]]:
    """The GD phase of baseline cell.method (GDSolver with max_sweeps=0: the same run as that
    baseline's first epochs, restarts included), then cfg.tuned.rounds sweep rounds."""
    from gdsolver.train.hybrid import GDSolver
    from gdsolver.train.trainer import clone_model

    t: TunedConfig = cfg.tuned
    lbfgs = cell.method.startswith("lbfgs")
    if not lbfgs and cell.lr is None:
        raise GdsolverError(f"no tuned rate for {cell.method}: every rate of the grid failed")
    model = clone_model(init)
    epochs = t.epochs if lbfgs else t.gd_epochs
    g = GDSolver(model, "regression", epochs=epochs, phase_epochs=epochs, max_sweeps=0, patience=None,
                 batch_size=cfg.batch_size, seed=cell.seed, threads=cfg.threads, **_gd_options(cell.method, cell.lr))
    h = g.fit(split.train, split.val)
    gd = h.summary()["gd_time_s"]
    val0, test0 = g.evaluate(split.val)["loss"], g.evaluate(test)["loss"]
    solver, n_sweeps, n_acc, per_round = 0.0, 0, 0, []
    for r in range(t.rounds):
        g = GDSolver(model, "regression", epochs=0, max_sweeps=1, seed=cell.seed + 1000 * r, threads=cfg.threads,
                     **sweep_settings(cfg))
        s = g.fit(split.train, split.val).summary()
        solver += s["solver_time_s"]
        n_sweeps += s["sweeps"]
        n_acc += s["sweeps_accepted"]
        per_round.append(g.evaluate(test)["loss"])
    test1 = per_round[-1] if per_round else test0
    val1 = g.evaluate(split.val)["loss"] if per_round else val0
    return [{"method": f"gdsolver[{cell.method}]", "lr": 1.0 if lbfgs else cell.lr, "epochs": epochs, "val_mse": val1,
             "test_mse": test1, "val_mse_before": val0, "test_mse_before": test0, "gd_time_s": gd,
             "solver_time_s": solver, "time_s": gd + solver, "sweeps": n_sweeps, "sweeps_accepted": n_acc,
             "round_test_mse": per_round}]


def run_tuned_cell(c: dict[str, Any], cfg) -> list[dict[str, Any]]:
    """The rows of one tuned-comparison cell; a GdsolverError (e.g. a diverged rate) becomes an error row."""
    from gdsolver.bench.regression_setup import regression_setup, regression_test_data

    cell = TunedCell.of(c)
    base = {"equation": cell.equation, "seed": cell.seed, "part": "tuned"}
    name = f"gdsolver[{cell.method}]" if cell.kind == "gdsolver" else cell.method
    try:
        split, init = regression_setup(cell.equation, cell.seed)
        test = regression_test_data(split)
        run = {"gd": run_gd_cell, "lbfgs": run_lbfgs_cell, "gdsolver": run_gdsolver_cell}[cell.kind]
        return [{**base, **r} for r in run(cell, cfg, split, init, test)]
    except GdsolverError as exc:
        return [{**base, "method": name, "lr": cell.lr, "epochs": cfg.tuned.epochs, "test_mse": None,
                 "val_mse": None, "error": str(exc)}]


def _rate_runs(rows: list[dict[str, Any]], cfg, equation: str, method: str) -> list[dict[str, Any]]:
    """The rate grid's rows of (equation, method) after `epochs`; a run missing for a (rate, seed)
    (its task was lost) counts as diverged."""
    t: TunedConfig = cfg.tuned
    runs = [r for r in rows if r["equation"] == equation and r["method"] == method and r.get("lr") is not None
            and r.get("epochs") == t.epochs]
    return runs + [{"lr": lr, "val_mse": None} for lr in t.lr_grid for s in cfg.seeds
                   if not any(r["lr"] == lr and r["seed"] == s for r in runs)]


def choose_rates(rows: list[dict[str, Any]], cfg) -> dict[tuple[str, str], float | None]:
    """(equation, method) -> the rate with the lowest mean validation MSE over the seeds after `epochs`."""
    return {(eq, m): choose_lr(_rate_runs(rows, cfg, eq, m), key="val_mse")[0]
            for eq in cfg.equations for m in cfg.tuned.methods}


def rate_scores(rows: list[dict[str, Any]], cfg) -> dict[str, dict[str, dict[str, float]]]:
    """equation -> method -> {rate: mean validation MSE}, for the report."""
    return {eq: {m: {f"{k:g}": v for k, v in choose_lr(_rate_runs(rows, cfg, eq, m), key="val_mse")[1].items()}
                 for m in cfg.tuned.methods} for eq in cfg.equations}


# ---------------------------------------------------------------------------------- summary
def final_rows(rows: list[dict[str, Any]], cfg, chosen: dict[tuple[str, str], float | None]) -> list[dict[str, Any]]:
    """The rows of the comparison: tuned methods at their chosen rate (after `epochs`), L-BFGS, GDSolver."""
    t: TunedConfig = cfg.tuned
    out = []
    for r in rows:
        m = r["method"]
        if m in t.methods:
            if r.get("epochs") == t.epochs and r.get("lr") == chosen.get((r["equation"], m)):
                out.append(r)
        else:
            out.append(r)
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{100 * v:+.1f}%"


def summarize(rows: list[dict[str, Any]], cfg, chosen: dict[tuple[str, str], float | None]) -> dict[str, Any]:
    """Per equation: every method's statistics over seeds against the best baseline; per seed the
    sweeps' effect for every GDSolver row."""
    t: TunedConfig = cfg.tuned
    fin = final_rows(rows, cfg, chosen)
    names = t.baseline_names() + t.gdsolver_names()
    out: dict[str, Any] = {"equations": [], "effects": []}
    for eq in cfg.equations:
        by = {m: {r["seed"]: r for r in fin if r["equation"] == eq and r["method"] == m} for m in names}

        def test_of(m: str, s: int) -> float:
            v = by[m].get(s, {}).get("test_mse")
            return math.nan if v is None else float(v)

        def mean_test(m: str) -> float:
            v = [test_of(m, s) for s in cfg.seeds]
            return float(np.mean(v)) if v and all(math.isfinite(x) for x in v) else math.nan

        finite = lambda ms: [(mean_test(m), m) for m in ms if math.isfinite(mean_test(m))]  # noqa: E731
        best = min(finite(t.baseline_names()), default=(math.nan, None))[1]
        best_gd = min(finite(t.methods), default=(math.nan, None))[1]
        stats = []
        for m in names:
            seeds = sorted(by[m])
            v = np.array([test_of(m, s) for s in seeds], float)
            ok = np.isfinite(v)
            ref = np.array([test_of(best, s) for s in seeds], float) if best else np.full(len(seeds), np.nan)
            both = ok & np.isfinite(ref)
            diff = v[both] - ref[both]
            bm = float(np.mean(ref[both])) if both.any() else math.nan  # the best baseline on the same seeds
            rs = [by[m][s] for s in seeds]
            stats.append({
                "method": m, "lr": chosen.get((eq, m)) if m in t.methods else (rs[0].get("lr") if rs else None),
                "n": int(ok.sum()), "mean": float(v[ok].mean()) if ok.any() else math.nan,
                "std": float(v[ok].std(ddof=1)) if ok.sum() > 1 else 0.0 if ok.any() else math.nan,
                "median": float(np.median(v[ok])) if ok.any() else math.nan,
                "wins": int((diff < 0).sum()), "paired_n": int(both.sum()),
                "paired_diff": float(diff.mean()) if len(diff) else math.nan,
                "paired_diff_std": float(diff.std(ddof=1)) if len(diff) > 1 else math.nan,
                "vs_best": (float(v[both].mean()) - bm) / bm if both.any() and bm else math.nan,
                "vs_best_gd": _on_seeds(v, seeds, best_gd, test_of),
                "gd_time_s": _mean([r.get("gd_time_s") for r in rs]),
                "solver_time_s": _mean([r.get("solver_time_s") for r in rs]),
                "time_s": _mean([r.get("time_s") for r in rs]),
                "errors": sum(1 for r in rs if r.get("error")),
            })
        out["equations"].append({"equation": eq, "best_baseline": best, "best_gd_baseline": best_gd,
                                 "methods": stats})
        for m in t.gdsolver_names():
            for s in sorted(by[m]):
                r = by[m][s]
                if r.get("error") or r.get("test_mse_before") is None:
                    continue
                b, a = float(r["test_mse_before"]), float(r["test_mse"])
                rel = (a - b) / b if b else (0.0 if a == b else math.inf)
                out["effects"].append({"equation": eq, "method": m, "seed": s, "before": b, "after": a,
                                       "relative": rel, "verdict": verdict(b, a),
                                       "val_before": r.get("val_mse_before"), "val_after": r.get("val_mse"),
                                       "sweeps": r.get("sweeps"), "accepted": r.get("sweeps_accepted"),
                                       "solver_time_s": r.get("solver_time_s")})
    return out


def _on_seeds(v, seeds, ref_name, test_of) -> float:
    """Relative difference of mean test MSE against `ref_name` on the same seeds."""
    if not ref_name:
        return math.nan
    ref = np.array([test_of(ref_name, s) for s in seeds], float)
    ok = np.isfinite(v) & np.isfinite(ref)
    if not ok.any() or not ref[ok].mean():
        return math.nan
    return float((v[ok].mean() - ref[ok].mean()) / ref[ok].mean())


def _mean(vals) -> float:
    v = [float(x) for x in vals if x is not None and math.isfinite(float(x))]
    return float(np.mean(v)) if v else math.nan


def verdict(before: float, after: float) -> str:
    """helped / hurt / nothing (relative change within SAME); "hurt>1%" beyond HURT_TOLERANCE."""
    if before == after or abs(after - before) <= SAME * max(abs(before), 1e-300):
        return "nothing"
    if after < before:
        return "helped"
    return "hurt>1%" if after > before * (1 + HURT_TOLERANCE) else "hurt"


def effect_counts(effects: list[dict[str, Any]], method: str, equation: str | None = None) -> dict[str, Any]:
    es = [e for e in effects if e["method"] == method and (equation is None or e["equation"] == equation)]
    counts = {k: sum(1 for e in es if e["verdict"] == k) for k in ("helped", "nothing", "hurt", "hurt>1%")}
    rises = [e["relative"] for e in es if e["relative"] > 0]
    return {**counts, "n": len(es), "max_rise": max(rises) if rises else 0.0,
            "best_drop": min((e["relative"] for e in es), default=0.0)}


def markdown_lines(doc: dict[str, Any], cfg) -> list[str]:
    t: TunedConfig = cfg.tuned
    s = doc["tuned"]
    gseeds = list(cfg.seeds if t.gdsolver_seeds is None else t.gdsolver_seeds)
    lines = ["## Tuned baselines against GDSolver (issues 15 and 19)", "",
             f"Each GD baseline ran {t.epochs} epochs at every rate of {list(t.lr_grid)}; the rate of an (equation, "
             "method) is the one with the lowest mean validation MSE over the seeds (the test split is never "
             f"looked at). L-BFGS: full batch, strong-Wolfe line search, {t.epochs} epochs of at most 20 "
             f"iterations, once and best of {t.restarts} restarts (chosen on validation; all restarts' time counted). "
             f"gdsolver[X]: the GD phase of baseline X ({t.gd_epochs} epochs at X's tuned rate; the whole run for "
             f"L-BFGS), then {t.rounds} sweep rounds over all layers (hidden layer, then final), head "
             f"\"{t.mode}\", radius {t.radius}, points {t.solver_points!r} (50 for the hidden layer's MIP, all 680 "
             f"for the final LP), {t.time_limit:g} s per sweep; a round is a GDSolver(epochs=0, max_sweeps=1, "
             "layers=\"all\") fit. Every sweep is kept only if it lowers the loss on its points (a hidden-layer "
             "sweep: the training loss after a least-squares refit of the final layer in its box) and the "
             f"validation MSE rises by at most 1%. Seeds {list(cfg.seeds)}" +
             (f" (GDSolver rows: seeds {gseeds})" if gseeds != list(cfg.seeds) else "") + ". \"best baseline\" is the "
             f"baseline with the lowest mean test MSE after {t.epochs} epochs (L-BFGS included); wins and the paired "
             "difference are against it, seed by seed. Times are means per seed: GD steps (every restart's), "
             "solver (formulation + solve of every sweep).", ""]
    for e in s["equations"]:
        lines += [f"### {e['equation']}: best baseline {e['best_baseline']}, best tuned GD baseline "
                  f"{e['best_gd_baseline']}", ""]
        cols = ["method", "lr", "test MSE mean ± std", "median", "vs best baseline", "vs best GD baseline",
                f"wins vs {e['best_baseline']}", "paired diff", "GD s", "solver s", "total s"]
        body = []
        for m in e["methods"]:
            body.append([m["method"], fmt_num(m["lr"], 3), fmt_pm(m["mean"], m["std"]), fmt_num(m["median"]),
                         _pct(m["vs_best"]), _pct(m["vs_best_gd"]), f"{m['wins']}/{m['paired_n']}",
                         fmt_pm(m["paired_diff"], m["paired_diff_std"]), fmt_num(m["gd_time_s"], 3),
                         fmt_num(m["solver_time_s"], 3), fmt_num(m["time_s"], 3)
                         + (f" ({m['errors']} failed)" if m["errors"] else "")])
        lines += md_table(cols, body) + [""]
    lines += ["### Targets, as measured", ""]
    for g in t.gdsolver_names():
        if g.startswith("gdsolver[lbfgs"):
            continue
        parts = []
        for e in s["equations"]:
            m = next(x for x in e["methods"] if x["method"] == g)
            parts.append(f"{e['equation']} {_pct(m['vs_best_gd'])} vs {e['best_gd_baseline']}, "
                         f"{_pct(m['vs_best'])} vs {e['best_baseline']} (total {fmt_num(m['time_s'], 3)} s)")
        lines.append(f"- issue 15, {g} (mean test MSE; target <= -40% against the best tuned baseline after "
                     f"{t.epochs} epochs): " + "; ".join(parts) + ".")
    lb = f"gdsolver[{t.lbfgs_best}]"
    if lb in t.gdsolver_names():
        parts = []
        for e in s["equations"]:
            base = next(x for x in e["methods"] if x["method"] == t.lbfgs_best)
            m = next(x for x in e["methods"] if x["method"] == lb)
            c = effect_counts(s["effects"], lb, e["equation"])
            rel = (m["mean"] - base["mean"]) / base["mean"] if base["mean"] and m["n"] == base["n"] else math.nan
            parts.append(f"{e['equation']} {_pct(rel)} (helped {c['helped']}, nothing {c['nothing']}, hurt "
                         f"{c['hurt'] + c['hurt>1%']}, of which >1%: {c['hurt>1%']}; largest rise {_pct(c['max_rise'])})")
        lines.append(f"- issue 19, {lb} against {t.lbfgs_best} alone (mean test MSE; target <= -30%, no seed above "
                     "+1%): " + "; ".join(parts) + ".")
    lines += ["", "### Effect of the sweeps per seed (test MSE before -> after the sweep rounds)", ""]
    for g in t.gdsolver_names():
        es = [x for x in s["effects"] if x["method"] == g]
        c = effect_counts(s["effects"], g)
        lines += [f"**{g}**: helped {c['helped']}, nothing {c['nothing']}, hurt {c['hurt']} (within 1%), hurt by more "
                  f"than 1% {c['hurt>1%']}, of {c['n']} seeds; largest rise {_pct(c['max_rise'])}, largest drop "
                  f"{_pct(c['best_drop'])}.", ""]
        body = [[x["equation"], x["seed"], fmt_num(x["before"]), fmt_num(x["after"]), _pct(x["relative"]), x["verdict"],
                 f"{x['accepted']}/{x['sweeps']}", fmt_num(x["val_before"]), fmt_num(x["val_after"])] for x in es]
        lines += md_table(["equation", "seed", "test before", "test after", "change", "verdict", "accepted sweeps",
                           "val before", "val after"], body) + [""]
    lines += ["### Rates: mean validation MSE over the seeds", ""]
    cols = ["equation", "method"] + [f"{lr:g}" for lr in t.lr_grid] + ["chosen"]
    body = []
    for eq, per in s["rate_scores"].items():
        for m, sc in per.items():
            body.append([eq, m] + [fmt_num(sc.get(f"{lr:g}")) if sc.get(f"{lr:g}") is not None
                                   and math.isfinite(sc.get(f"{lr:g}")) else "diverged" for lr in t.lr_grid]
                        + [fmt_num(doc["tuned"]["chosen"].get(f"{eq}/{m}"), 3)])
    lines += md_table(cols, body) + [""]
    return lines


def tuning_cost(rows: list[dict[str, Any]], cfg) -> dict[str, float]:
    """Total GD time of the whole rate grid per method (every rate, seed and equation)."""
    t: TunedConfig = cfg.tuned
    return {m: float(sum(float(r.get("time_s") or 0.0) for r in rows
                         if r["method"] == m and r.get("epochs") == t.epochs)) for m in t.methods}


def plot(doc: dict[str, Any], rows: list[dict[str, Any]], cfg, path) -> int:
    """Per equation: every seed's test MSE for each method of the comparison (log scale), the mean marked."""
    from gdsolver.bench.plots import pyplot, save_figure

    t: TunedConfig = cfg.tuned
    plt = pyplot()
    eqs = doc["tuned"]["equations"]
    fin = final_rows(rows, cfg, {tuple(k.split("/", 1)): v
                                                       for k, v in doc["tuned"]["chosen"].items()})
    names = t.baseline_names() + t.gdsolver_names()
    fig, axes = plt.subplots(1, len(eqs), figsize=(3.4 * len(eqs), 3.6), squeeze=False)
    for j, e in enumerate(eqs):
        ax = axes[0, j]
        for i, m in enumerate(names):
            v = [float(r["test_mse"]) for r in fin if r["equation"] == e["equation"] and r["method"] == m
                 and r.get("test_mse") is not None and math.isfinite(float(r["test_mse"]))]
            v = [max(x, 1e-6) for x in v]
            color = "C3" if m.startswith("gdsolver") else "C0"
            ax.scatter([i] * len(v), v, s=10, alpha=0.6, color=color)
            if v:
                ax.scatter([i], [float(np.mean(v))], marker="_", s=300, color="k")
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=70, fontsize=7)
        ax.set_title(e["equation"], fontsize=9)
        ax.grid(alpha=0.3, axis="y")
        if j == 0:
            ax.set_ylabel("test MSE (per seed; bar: mean)")
    fig.tight_layout()
    return save_figure(fig, path)


def write_tuned_json(doc: dict[str, Any], path) -> None:
    """The tuned comparison's summary with the run's machine, versions, command and load (small
    enough to commit beside the full run's JSON)."""
    from gdsolver.bench.plots import run_fields, write_json

    keys = ("benchmark", "preset", "machine", "versions", "command", "wall_s", "load_average", "executor")
    doc = run_fields(doc)
    write_json(path, {**{k: doc.get(k) for k in keys}, "config": doc["config"]["tuned"],
                      "seeds": doc["config"]["seeds"], "equations": doc["config"]["equations"], "tuned": doc["tuned"]})
