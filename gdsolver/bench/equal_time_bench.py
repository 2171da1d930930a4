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

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

from gdsolver.bench.equal_time_report import markdown, plot, summarize
# the command's entry points (preset_config, total_units) are the workloads module's
from gdsolver.bench.equal_time_workloads import (EqualTimeConfig, Workload, _finish_mnist, make_trainer,  # noqa: F401
                                                 measure_epoch, preset_config, resolve, setup, skipped_workloads,
                                                 total_units, tune_mnist, warm_up)
from gdsolver.bench.machine import git_state, uptime
from gdsolver.bench.plots import clean, load_average, write_json
from gdsolver.bench.runner import Bench, Skip, render, run_bench
from gdsolver.errors import GdsolverError

CURVE_POINTS = 40  # validation-loss points kept per run of the largest budget


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
                "max_step_s": _max_step(h.rows), "epochs": len(h.epochs),
                # starts drawn: best-of-K's K, or the time-aware run's first fit plus its restart moves
                "restarts": s.get("restarts", 1 + max([r.get("restart") or 0 for r in h.rows], default=0)),
                "sweeps": s["sweeps"], "sweeps_accepted": s["sweeps_accepted"], "gd_time_s": s["gd_time_s"],
                "solver_time_s": s["solver_time_s"], "moves": moves or None, "error": None})
    if curve:
        row["curve"] = _curve(h.rows)
    return row


class _Run:
    """What the cells of one run share: each workload prepared on its first cell (its data loaded,
    MNIST's rate tuned, the untimed warm-up, the epoch-equivalent measured, as just before its runs),
    the workloads skipped and why, the load samples, progress."""

    def __init__(self, cfg: EqualTimeConfig, tick: Callable[[str], None], say: Callable[[str], None]):
        self.cfg, self.tick, self.say = cfg, tick, say
        self.t0 = time.perf_counter()
        self.prepared: dict[str, Workload] = {}  # name -> its workload, ready
        self.earlier: dict[str, Workload] = {}  # name -> its workload from the run a resumed run continues
        self.skipped: dict[str, str] = skipped_workloads(cfg)
        self.samples: list[dict[str, Any]] = []
        self.uptime, self.git = uptime(), git_state()
        self.resumed: dict[str, Any] | None = None
        self.t_wl: dict[str, float] = {}

    def sample_load(self, where: str) -> None:
        self.samples.append({"at_s": round(time.perf_counter() - self.t0, 1), "where": where, "load": load_average()})

    def workload(self, name: str) -> Workload:
        """The workload, prepared on its first cell (Skip, with the reason, when its data do not load)."""
        if name in self.skipped:
            raise Skip(self.skipped[name])
        if name not in self.prepared:
            before = self.earlier.get(name)
            wl = before or resolve(name, self.cfg)
            why = _prepare(wl, self.cfg, self.tick, self.say, self.sample_load, fresh=before is None)
            if why:
                self.skipped[name] = why
                raise Skip(why)
            self.prepared[name] = wl
            self.t_wl[name] = time.perf_counter()
        return self.prepared[name]

    def take_back(self, earlier: dict[str, Any]) -> None:
        """A resumed run: the earlier run's workloads keep their tuned rate and epoch-equivalent."""
        self.earlier = {w["name"]: _workload_from_json(w) for w in earlier.get("workloads", [])}
        done: dict[str, list[int]] = {}
        for r in earlier.get("rows", []):
            if r["workload"] in self.earlier and r["seed"] in self.cfg.seeds and r["seed"] not in done.get(r["workload"], []):
                if all(x.get("error") is None for x in earlier["rows"]
                       if (x["workload"], x["seed"]) == (r["workload"], r["seed"])):
                    done.setdefault(r["workload"], []).append(r["seed"])
        run = earlier.get("run") or {}
        self.resumed = {"command": run.get("command"), "started": (earlier.get("machine") or {}).get("date"),
                        "git": earlier.get("git") or run.get("git"), "load_samples": earlier.get("load_samples", []),
                        "done": done}
        self.say("resuming: " + (", ".join(f"{w} seeds {s}" for w, s in done.items()) or "nothing finished") + " done")

    def run_cell(self, cell: dict[str, Any]) -> list[dict[str, Any]]:
        """The timed runs of one workload and seed (rotated method order per budget)."""
        wl = self.workload(cell["workload"])
        cfg, seed = self.cfg, cell["seed"]
        rows = run_seed(wl, cfg, seed, self.tick, self.sample_load)
        if seed == cfg.seeds[-1]:  # the workload's last seed: its cached split can go
            wl.split_cache = None
            n = len(cfg.seeds) * len(wl.budgets) * len(cfg.methods)
            self.say(f"{wl.name}: {n} runs in {time.perf_counter() - self.t_wl[wl.name]:.0f} s")
        return rows

    def summarize(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The run's conditions (load samples, uptime, code), the skipped and prepared workloads, and
        the summary over the seeds."""
        wls = [self.prepared.get(n) or self.earlier[n] for n in self.cfg.workloads
               if n in self.prepared or (n in self.earlier and any(r["workload"] == n for r in doc["rows"]))]
        out = {"load_samples": self.samples + [{"at_s": round(time.perf_counter() - self.t0, 1), "where": "end",
                                                "load": load_average()}],
               "uptime": {"start": self.uptime, "end": uptime()}, "git": self.git, "skipped": dict(self.skipped),
               "workloads": [w.to_json() for w in wls], "methods": list(self.cfg.methods),
               "summary": summarize(doc["rows"], wls, self.cfg)}
        if self.resumed is not None:
            out["resumed"] = self.resumed
        return out


def run_seed(wl: Workload, cfg: EqualTimeConfig, seed: int, tick: Callable[[str], None],
             sample_load: Callable[[str], None]) -> list[dict[str, Any]]:
    """The timed runs of a workload for one seed: every budget, the methods in an order rotated by
    seed and budget (a drift of the machine's load favours no method)."""
    si = cfg.seeds.index(seed)
    split, init = setup(wl, cfg, seed)
    sample_load(f"{wl.name} seed {seed}")
    rows: list[dict[str, Any]] = []
    methods = list(cfg.methods)
    for bi, (b, bs) in enumerate(zip(wl.budgets, wl.budget_seconds())):
        k = (si + bi) % len(methods)
        for m in methods[k:] + methods[:k]:
            rows.append(run_one(m, wl, split, init, seed, b, bs, cfg, curve=cfg.curves and b == max(wl.budgets)))
            r = rows[-1]
            tick(f"{wl.name} seed {seed} B={b:g}{'' if wl.units == 's' else ' ep'}: {m} "
                 + (f"{r['test_loss']:.4g} in {r['wall_s']:.2f} s" if r.get("error") is None else "failed"))
    return rows


def _prepare(wl: Workload, cfg: EqualTimeConfig, tick: Callable[[str], None], say: Callable[[str], None],
             sample_load: Callable[[str], None], *, fresh: bool) -> str | None:
    """Before a workload's runs: its data loaded (why it is skipped when that fails), MNIST's rate
    tuned (unless given), the untimed warm-up, and the epoch-equivalent measured. A workload from
    an interrupted run (fresh False) keeps its rate and epoch-equivalent."""
    try:
        setup(wl, cfg, cfg.seeds[0])  # the data loads (a clear error now, not in the middle)
    except GdsolverError as exc:
        say(f"skipping {wl.name}: {exc}")
        return str(exc)
    sample_load(f"{wl.name} start")
    if fresh and wl.name == "mnist":
        if wl.gd["lr"] is None:
            tune_mnist(wl, cfg, tick)
            say(f"mnist: rate {wl.gd['lr']:g} chosen on validation (mean val loss "
                f"{wl.tuning['mean_val_loss']})")
        _finish_mnist(wl, cfg)
    warm_up(wl, cfg)
    if wl.units == "epochs" and fresh:
        measure_epoch(wl, cfg)
        say(f"{wl.name}: one epoch-equivalent of {wl.gd_label} = {wl.epoch_s:.3g} s; budgets "
            + ", ".join(f"{b:.3g} s" for b in wl.budget_seconds()))
    return None


def _workload_from_json(w: dict[str, Any]) -> Workload:
    names = {f.name for f in fields(Workload)}
    return Workload(**{k: (tuple(v) if k == "budgets" else v) for k, v in w.items() if k in names})


def report(doc: dict[str, Any]) -> list[str]:
    """The report of a result document, as lines (a document from before the runner names no plot;
    give it doc["png"])."""
    md = markdown(doc, doc.get("png") if doc.get("png_bytes") else None)
    return md.split("\n")[:-1] if md.endswith("\n") else md.split("\n")


def _plot(doc: dict[str, Any], path: Path) -> int:
    return plot(doc, path) if doc["workloads"] else 0


def equal_time_bench(cfg: EqualTimeConfig, preset: str = "custom", plots: bool = True, note: str | None = None,
                     tick: Callable[[str], None] | None = None, say: Callable[[str], None] | None = None) -> Bench:
    """The comparison as a bench: a cell per workload and seed (module docstring), run one after
    another in this process (times are the point), the rows kept after each cell."""
    cfg.check()
    run = _Run(cfg, tick or (lambda _msg: None), say or (lambda _msg: None))
    for name, why in run.skipped.items():
        run.say(f"skipping {name}: {why}")
    cells = [{"workload": w, "seed": s} for w in cfg.workloads if w not in run.skipped for s in cfg.seeds]
    return Bench("equal-time", cells, run.run_cell, report, meta={"preset": preset, "config": asdict(cfg), "note": note},
                 summarize=run.summarize, header=False, plot=_plot if plots and cells else None, report_failed=True,
                 checkpoint=True, resumed=run.take_back)


def _upgrade_partial(path: Path, preset: str, note: str | None) -> None:
    """A {tag}.partial.json written before bench/runner.py (no "benchmark"), in the runner's form:
    the settings it did not keep (preset, note) are this run's; its config is compared as usual."""
    import json

    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # the runner says why it cannot read it
    if "benchmark" in old:
        return
    write_json(path, {"benchmark": "equal-time", "preset": preset, "config": old.get("config"), "note": note,
                      "machine": {"date": old.get("started")}, "rows": old.get("rows", []),
                      "workloads": old.get("workloads", []), "load_samples": old.get("load_samples", []),
                      "run": {"command": old.get("command"), "git": old.get("git")}})


def run_equal_time_bench(cfg: EqualTimeConfig, out_dir: str | os.PathLike = "benchmarks/results", *,
                         tag: str = "equal_time", preset: str = "custom", tick: Callable[[str], None] | None = None,
                         command: Sequence[str] | None = None, plots: bool = True, note: str | None = None,
                         say: Callable[[str], None] | None = None, resume: bool = False) -> dict[str, Any]:
    """Run the comparison and write {tag}.json / .md / .png into out_dir; returns the document
    (full precision; the files keep 7 significant digits). `say` gets one-line progress notes
    (a skipped workload, a measured epoch, a tuned rate, each cell). After each (workload, seed)
    the rows so far are kept in {tag}.partial.json; `resume` continues an interrupted run of the
    same configuration from it, or reuses a finished {tag}.json's (its workloads keep their tuned
    rate and epoch-equivalent; the seeds it finished are not run again)."""
    if resume:
        _upgrade_partial(Path(out_dir) / f"{tag}.partial.json", preset, note)
    bench = equal_time_bench(cfg, preset, plots, note, tick, say)
    return run_bench(bench, out_dir, tag, echo=say or (lambda _msg: None), command=command, resume=resume)


def rewrite_report(json_path: str | os.PathLike, *, plots: bool = True) -> dict[str, Any]:
    """Recompute the summary of a saved run from its rows (the measurements are not touched) and
    write its JSON, markdown and plot again beside it: for a report whose summary code changed
    after the run."""
    import json

    from gdsolver.atomic import atomic_write_text

    path = Path(json_path)
    doc = json.loads(path.read_text())
    cfg = EqualTimeConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in doc["config"].items()})
    wls = [_workload_from_json(w) for w in doc["workloads"]]
    doc["summary"] = summarize(doc["rows"], wls, cfg)
    doc["summary_rewritten"] = True
    if plots and wls:
        doc["png_bytes"] = plot(doc, path.with_suffix(".png"))
        doc["png"] = path.with_suffix(".png").name
    write_json(path, doc)
    bench = Bench("equal-time", [], None, report, header=False, report_failed=True)
    atomic_write_text(path.with_suffix(".md"), render(bench, clean(doc, 7)))
    return doc
