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
from gdsolver.bench.plots import load_average, run_metadata, write_json
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
    load_before, up_before, git = load_average(), uptime(), git_state()
    samples: list[dict[str, Any]] = []

    def sample_load(where: str) -> None:
        samples.append({"at_s": round(time.perf_counter() - t0, 1), "where": where, "load": load_average()})

    import datetime

    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    earlier = _earlier(partial, cfg, say) if resume else None
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
        why = _prepare(wl, cfg, tick, say, sample_load, fresh=before is None)
        if why:
            skipped[name] = why
            continue
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
                           "uptime": {"start": up_before, "end": uptime()}, "git": git, "skipped": skipped,
                           "workloads": [w.to_json() for w in workloads], "methods": list(cfg.methods),
                           "summary": summarize(rows, workloads, cfg), "rows": rows}
    if earlier is not None:
        doc["resumed"] = {"command": earlier["command"], "started": earlier["started"], "git": earlier["git"],
                          "load_samples": earlier["load_samples"], "done": earlier["done"]}
    png = _write(doc, paths["json"], plots and bool(workloads))
    partial.unlink(missing_ok=True)
    doc["paths"] = {k: str(v) for k, v in paths.items() if k != "png" or png}
    return doc


def _earlier(partial: Path, cfg: EqualTimeConfig, say: Callable[[str], None]) -> dict[str, Any]:
    """What an interrupted run of the same configuration kept (load_partial)."""
    if not partial.is_file():
        raise GdsolverError(f"--resume: no interrupted run to continue ({partial} not found)")
    earlier = load_partial(partial, cfg)
    say(f"resuming {partial}: " + (", ".join(f"{w} seeds {s}" for w, s in earlier["done"].items())
                                   or "nothing finished") + " done")
    return earlier


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


def _write(doc: dict[str, Any], json_path: Path, plots: bool) -> str | None:
    """The document's JSON, its markdown report and (plots) its plot beside it; the plot's file
    name or None."""
    from gdsolver.atomic import atomic_write_text

    png = None
    if plots:
        doc["png_bytes"] = plot(doc, json_path.with_suffix(".png"))
        png = json_path.with_suffix(".png").name
    write_json(json_path, doc)
    atomic_write_text(json_path.with_suffix(".md"), markdown(doc, png))
    return png


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
    _write(doc, path, plots and bool(wls))
    return doc
