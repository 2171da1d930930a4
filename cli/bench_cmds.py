"""`gdsolver bench ...`: the benchmarks (gdsolver.bench), with progress bars where they run a
grid; results (CSV, JSON, markdown, PNG) under --out. The options they share are spelled once,
in cli/options.py."""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from gdsolver.compile.registry import DEFAULT_BACKEND

from . import checks
from .apps import bench_app
from .common import console, err_console, fail, user_errors
from .options import RESULTS_DIR, Backend, OutDir, PerSolveLimit, Plots, RunThreads, Seeds
from .ray_opts import RayAddress, RayFlag, executor_for

def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[status]}"), console=err_console,
                    disable=not err_console.is_terminal)


def _run_with_bar(title: str, total: int, fn) -> Any:
    with _progress() as progress:
        bar = progress.add_task(title, total=total, status="")

        def tick(msg: str) -> None:
            progress.update(bar, advance=1, status=msg)

        return fn(tick)


def _seeds(n: Optional[int], default: tuple[int, ...]) -> tuple[int, ...]:
    if n is None:
        return default
    if n < 1:
        fail(f"--seeds: must be >= 1, got {n}")
    return tuple(range(n))


@bench_app.command("compile")
@user_errors
def bench_compile(
    out_dir: OutDir = RESULTS_DIR,
    quick: Annotated[bool, typer.Option(help="Small sizes only (seconds).")] = False,
) -> None:
    """Bulk (numpy -> passModel) vs per-element (highspy modelling API) instance building."""
    from gdsolver.bench.compile_bench import run_compile_bench

    run_compile_bench(out_dir, quick=quick, echo=console.print)


@bench_app.command("formulations")
@user_errors
def bench_formulations(
    out_dir: OutDir = RESULTS_DIR,
    quick: Annotated[bool, typer.Option(help="One small case only.")] = False,
    time_limit: PerSolveLimit = 120.0,
    radius: Annotated[float, typer.Option(help="Box half-width.")] = 0.01,
) -> None:
    """Classification sweeps: paper vs compact formulation, same points, same run."""
    from gdsolver.bench.formulation_bench import run_formulation_bench

    run_formulation_bench(out_dir, quick=quick, echo=console.print, time_limit=time_limit, radius=radius)


@bench_app.command("numerics")
@user_errors
def bench_numerics(
    out_dir: OutDir = RESULTS_DIR,
    quick: Annotated[bool, typer.Option(help="Six scales, one seed (about a minute).")] = False,
) -> None:
    """Feature scales 1e-12..1e12: which the solvers answer correctly, and what the numerics check refuses."""
    from gdsolver.bench.numerics_bench import run_numerics_bench

    run_numerics_bench(out_dir, quick=quick, echo=console.print)


@bench_app.command("closest")
@user_errors
def bench_closest(
    out_dir: OutDir = RESULTS_DIR,
    quick: Annotated[bool, typer.Option(help="One random instance (paper mode) and the resnet-like model.")] = False,
    threads: Annotated[int, typer.Option(help="Solver threads.")] = 1,
    time_limit: PerSolveLimit = 120.0,
    resnet: Annotated[bool, typer.Option(help="Also sweep a small resnet-like torch model (needs torch).")] = True,
) -> None:
    """Closest-point LP vs the MIP it follows on a 512 x 10 head; current vs first LP form."""
    from gdsolver.bench.closest_bench import run_closest_bench

    run_closest_bench(out_dir, quick=quick, echo=console.print, threads=threads, time_limit=time_limit,
                      resnet=resnet)


@bench_app.command("regression")
@user_errors
def bench_regression(
    quick: Annotated[bool, typer.Option(help="Quick preset (3 seeds, sweeps at e = 1, 2, 5, 10, 15, 20): a few "
                                        "minutes on 2 cores. Default: the full preset (10 seeds, e = 1..20).")] = False,
    out_dir: OutDir = RESULTS_DIR,
    seeds: Seeds = None,
    equation: Annotated[Optional[list[str]], typer.Option("--equation", "-q", help="Equation; repeat for several "
                                                          "(default: identity, affine, polynomial, formula).")] = None,
    method: Annotated[Optional[list[str]], typer.Option("--method", "-m", help="Baseline; repeat for several "
                                                        "(default: every registered non-GDSolver method; sgd is "
                                                        "always run, it is GDSolver's GD part).")] = None,
    preset: Annotated[Optional[list[str]], typer.Option("--radius-preset", help="Sweep preset: paper, default "
                                                        "(repeat; default both).")] = None,
    backend: Backend = DEFAULT_BACKEND,
    time_limit: Annotated[Optional[float], typer.Option(help="Per-sweep solver time limit (s); default 30.")] = None,
    threads: RunThreads = 1,
    plots: Plots = True,
    tuned: Annotated[bool, typer.Option(help="Also run the tuned-baselines comparison (rates chosen on validation, "
                                        "L-BFGS, GDSolver on tuned optimizers).")] = True,
    gdsolver_seeds: Annotated[Optional[int], typer.Option(help="Seeds (0..N-1) of the tuned comparison's GDSolver "
                                                          "rows, the slowest part (default: every seed).")] = None,
    tuned_row: Annotated[Optional[list[str]], typer.Option("--tuned-row", help="Run only the tuned comparison, "
                                                           "with these rows (repeat): tuned GD baselines (sgd, "
                                                           "adam-lrs, ...) and GDSolver rows (gdsolver[lbfgs-best5], "
                                                           "gdsolver[sgd], ...); L-BFGS once and best of 5 always "
                                                           "run. Skips Table 1.")] = None,
    ray: RayFlag = False,
    ray_address: RayAddress = None,
    resume: Annotated[bool, typer.Option(help="Reuse the rows of an earlier run of the same settings under --out "
                                         "(<tag>.json, or <tag>.partial.json of a run cut short); run the rest.")] = False,
) -> None:
    """The paper's Table 1: GD baselines for 1..20 epochs vs GDSolver = e epochs of SGD + one sweep;
    and the tuned comparison: SGD / Adam (with and without schedule) at rates chosen on validation,
    L-BFGS once and best of 5, and GDSolver (10 epochs of a tuned optimizer, or L-BFGS best of 5,
    then sweep rounds over all layers with the squared-error head).
    Every cell of the grid (a method's run for one equation and seed, or one GDSolver sweep) is a
    task; with --ray the tasks run on Ray, with the same results (timings aside)."""
    from gdsolver.bench.regression_bench import grid, preset_config, run_regression_bench

    name = "quick" if quick else "full"
    cfg = preset_config(name)
    cfg = replace(cfg, seeds=_seeds(seeds, cfg.seeds), backend=backend, threads=threads,
                  time_limit=cfg.time_limit if time_limit is None else time_limit, equations=tuple(equation) if equation else cfg.equations,
                  methods=tuple(method) if method else cfg.methods,
                  presets=tuple(preset) if preset else cfg.presets)
    if not tuned:
        cfg = replace(cfg, tuned=None)
    elif gdsolver_seeds is not None and cfg.tuned is not None:
        cfg = replace(cfg, tuned=replace(cfg.tuned, gdsolver_seeds=_seeds(gdsolver_seeds, cfg.seeds)))
    if tuned_row:
        if cfg.tuned is None:
            fail("--tuned-row: needs the tuned comparison (drop --no-tuned)")
        from gdsolver.bench.regression_tuned import with_rows

        cfg = replace(cfg, table1=False, tuned=with_rows(cfg.tuned, list(tuned_row)))
    cfg = cfg.check()
    tag = "regression_quick" if quick else "regression"
    console.print(f"regression benchmark ({name} preset): equations {list(cfg.equations)}, seeds {list(cfg.seeds)}, "
                  f"baselines {cfg.baselines()}, GDSolver at e = {list(cfg.sweep_epochs)}, radius presets "
                  f"{list(cfg.presets)}")
    with executor_for(ray, ray_address) as ex:
        doc = _run_with_bar("regression", len(grid(cfg)),
                            lambda tick: run_regression_bench(cfg, out_dir, tag=tag, preset=name, tick=tick,
                                                              command=["gdsolver", *sys.argv[1:]], plots=plots,
                                                              executor=ex, resume=resume,
                                                              echo=lambda m: console.print(m, markup=False)))
    lo, hi = cfg.table_epochs()
    for t in doc["table1"] if cfg.table1 else ():
        console.print(f"[{t['preset']}] GDSolver({lo}) vs best baseline at {hi} epochs: test MSE "
                      f"{-100 * t['mean_mse_reduction']:+.1f}%, time {-100 * t['mean_time_saving']:+.1f}% "
                      "(paper: -31.5% MSE, -48% time)", markup=False)
    for e in (doc.get("tuned") or {}).get("equations", []):
        ms = {m["method"]: m for m in e["methods"]}
        console.print(f"[tuned] {e['equation']}: best baseline {e['best_baseline']} "
                      f"{ms[e['best_baseline']]['mean']:.4g}; " + ", ".join(
                          f"{n} {m['mean']:.4g} ({100 * m['vs_best']:+.1f}%)" for n, m in ms.items()
                          if n.startswith("gdsolver")), markup=False)


@bench_app.command("data-efficiency")
@user_errors
def bench_data_efficiency(
    dataset: Annotated[str, typer.Option(help="digits (bundled), mnist or fashion-mnist (idx files: --data-dir, "
                                         "GDSOLVER_DATA, or apt-get install dataset-fashion-mnist).")] = "digits",
    data_dir: Annotated[Optional[Path], typer.Option(help="Directory of the MNIST / Fashion-MNIST idx files "
                                                     "(e.g. ../shared/data/mnist).")] = None,
    quick: Annotated[bool, typer.Option(help="Quick preset (fewer n, e and seeds): a few minutes on 2 cores.")] = False,
    out_dir: OutDir = RESULTS_DIR,
    seeds: Seeds = None,
    model: Annotated[Optional[list[str]], typer.Option("--model", help="conv, mlp and/or mlp2 (784-256-128-10) (repeat; default conv and mlp).")] = None,
    n: Annotated[Optional[list[int]], typer.Option("--n", help="Training-set sizes (repeat), overriding the "
                                                   "preset.")] = None,
    epochs: Annotated[Optional[list[int]], typer.Option("--epochs", "-e", help="Epoch budgets (repeat), overriding "
                                                        "the preset.")] = None,
    method: Annotated[Optional[list[str]], typer.Option("--method", "-m", help="Baseline; repeat for several "
                                                        "(default: every registered non-GDSolver method).")] = None,
    target: Annotated[Optional[float], typer.Option(help="Target test accuracy for the smallest-n table "
                                                    "(default: best baseline mean - 0.05).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate of the untuned baselines (default 0.05; the 2-loop "
                                                "GDSolver always uses 0.1 then 0.05).")] = None,
    backend: Backend = DEFAULT_BACKEND,
    time_limit: Annotated[Optional[float], typer.Option(help="Per-sweep solver time limit (s); default 30 "
                                                        "(digits), 10 (mnist, fashion-mnist).")] = None,
    threads: RunThreads = 1,
    plots: Plots = True,
    tuned: Annotated[bool, typer.Option(help="Tune the GD baselines' rates on validation, add L-BFGS best of K and "
                                        "GDSolver at the tuned SGD rate, where the preset does (digits).")] = True,
    ray: RayFlag = False,
    ray_address: RayAddress = None,
    resume: Annotated[bool, typer.Option(help="Reuse the rows of an earlier run of the same settings under --out "
                                         "(<tag>.json, or <tag>.partial.json of a run cut short); run the rest.")] = False,
) -> None:
    """The paper's data-efficiency study: test accuracy against training points n and epochs e.
    Every cell (one method for one model, seed and n; the 2-loop runs per epoch budget) is a
    task; with --ray the tasks run on Ray, with the same results (timings aside)."""
    from gdsolver.bench.data_efficiency_bench import grid, preset_config, run_data_efficiency_bench

    name = "quick" if quick else "full"
    cfg = preset_config(name, dataset)
    cfg = replace(cfg, seeds=_seeds(seeds, cfg.seeds), models=tuple(model) if model else cfg.models,
                  n_values=tuple(n) if n else cfg.n_values, epochs=tuple(epochs) if epochs else cfg.epochs,
                  methods=tuple(method) if method else cfg.methods, target=target, backend=backend,
                  time_limit=cfg.time_limit if time_limit is None else time_limit, threads=threads,
                  lr=cfg.lr if lr is None else lr,
                  # Ray workers need not share our working directory
                  data_dir=None if data_dir is None else str(data_dir.resolve() if ray or ray_address else data_dir)
                  )
    if not tuned:
        cfg = replace(cfg, lr_grid=None, lbfgs_restarts=1, gdsolver_tuned=False)
    cfg = cfg.check()
    stem = "data_efficiency" if dataset == "digits" else f"data_efficiency_{dataset}"
    tag = f"{stem}_quick" if quick else stem
    console.print(f"data-efficiency benchmark ({name} preset): {dataset}, models {list(cfg.models)}, n "
                  f"{list(cfg.n_values)}, e {list(cfg.epochs)}, seeds {list(cfg.seeds)}, methods {cfg.all_methods()}",
                  markup=False)
    with executor_for(ray, ray_address) as ex:
        doc = _run_with_bar(f"data-efficiency {dataset}", len(grid(cfg)),
                            lambda tick: run_data_efficiency_bench(cfg, out_dir, tag=tag, preset=name, tick=tick,
                                                                   command=["gdsolver", *sys.argv[1:]], plots=plots,
                                                                   executor=ex, resume=resume,
                                                                   echo=lambda m: console.print(m, markup=False)))
    for s in doc["smallest_n"]:
        if s["epochs"] == max(cfg.epochs):
            console.print(f"{s['model']} e={s['epochs']} {s['method']}: smallest n reaching "
                          f"{s['target']:.3f}: {s['smallest_n'] if s['smallest_n'] is not None else 'not reached'}",
                          markup=False)
    for h in doc.get("half_data") or []:
        if h["epochs"] == max(cfg.epochs) and cfg.lr_grid:
            console.print(f"{h['model']} e={h['epochs']}: best baseline at n={h['n_max']} {h['best_baseline']} "
                          f"{h['target']:.3f}; smallest n reaching it: " + ", ".join(
                              f"{m} {n if n is not None else '-'}" for m, n in h["smallest_n"].items()), markup=False)


@bench_app.command("equal-time")
@user_errors
def bench_equal_time(
    quick: Annotated[bool, typer.Option(help="Quick preset: 3 seeds, budgets 1 and 3 s (regression), 1 and 2 "
                                        "epoch-equivalents (classification).")] = False,
    full: Annotated[bool, typer.Option(help="Full preset: the default one plus a 30 s regression budget.")] = False,
    out_dir: OutDir = RESULTS_DIR,
    seeds: Seeds = None,
    workload: Annotated[Optional[list[str]], typer.Option("--workload", "-w", help="polynomial, formula, digits, "
                                                          "mnist (repeat; default all).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Directory of the real MNIST idx files (e.g. "
                                                     "../shared/data/mnist); without it mnist is skipped.")] = None,
    budget: Annotated[Optional[list[float]], typer.Option("--budget", help="Regression budgets in seconds (repeat), "
                                                          "overriding the preset.")] = None,
    epoch_budget: Annotated[Optional[list[float]], typer.Option("--epoch-budget", help="Classification budgets in "
                                                                "epoch-equivalents (repeat), overriding the "
                                                                "preset.")] = None,
    method: Annotated[Optional[list[str]], typer.Option("--method", "-m", help="gd, restarts, gdsolver, "
                                                        "gdsolver-no-sweeps (repeat; default all).")] = None,
    mnist_lr: Annotated[Optional[float], typer.Option(help="MNIST Adam rate; default: tuned in the run on "
                                                      "validation over 3 tuning seeds.")] = None,
    threads: RunThreads = 1,
    plots: Plots = True,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run of the same configuration from its "
                                         "partial results (<tag>.partial.json under --out).")] = False,
) -> None:
    """Equal-time (anytime) comparison: at each wall-clock budget, from the same initial
    weights, the tuned GD continued, restarts (best of K on validation, K filling the budget), the
    time-aware GDSolver and its no-sweeps ablation; test loss statistics, wins, paired differences
    and every run's wall time. Runs one after another (times are the point)."""
    from gdsolver.bench.equal_time_bench import preset_config, run_equal_time_bench, total_units

    if quick and full:
        fail("--quick and --full: give at most one")
    name = "quick" if quick else "full" if full else "default"
    cfg = preset_config(name)
    cfg = replace(cfg, seeds=_seeds(seeds, cfg.seeds), workloads=tuple(workload) if workload else cfg.workloads,
                  data_dir=None if data_dir is None else str(data_dir),
                  regression_budgets=tuple(budget) if budget else cfg.regression_budgets,
                  classification_budgets=tuple(epoch_budget) if epoch_budget else cfg.classification_budgets,
                  methods=tuple(method) if method else cfg.methods, mnist_lr=mnist_lr, threads=threads).check()
    tag = {"quick": "equal_time_quick", "full": "equal_time_full"}.get(name, "equal_time")
    console.print(f"equal-time benchmark ({name} preset): workloads {list(cfg.workloads)}, seeds {list(cfg.seeds)}, "
                  f"budgets {list(cfg.regression_budgets)} s (regression), {list(cfg.classification_budgets)} "
                  f"epoch-equivalents (classification), methods {list(cfg.methods)}", markup=False)
    doc = _run_with_bar("equal-time", total_units(cfg),
                        lambda tick: run_equal_time_bench(cfg, out_dir, tag=tag, preset=name, tick=tick,
                                                          command=["gdsolver", *sys.argv[1:]], plots=plots,
                                                          say=lambda m: console.print(m, markup=False),
                                                          resume=resume))
    for e in doc["summary"]:
        vb, va = e.get("vs_best") or {}, e.get("vs_ablation") or {}
        unit = "s" if e["units"] == "s" else "ep"
        console.print(f"{e['workload']} B={e['budget']:g} {unit}: GDSolver {vb.get('mean', float('nan')):.4g} vs "
                      f"{e['best_baseline']} {vb.get('ref_mean', float('nan')):.4g} "
                      f"({100 * vb.get('rel', float('nan')):+.1f}%, better on {vb.get('better', 0)}/{vb.get('n', 0)}); "
                      f"vs no sweeps {100 * va.get('rel', float('nan')):+.1f}%", markup=False)


@bench_app.command("sweeps")
@user_errors
def bench_sweeps(
    quick: Annotated[bool, typer.Option(help="Quick preset (one seed, a 14x14-pixel head, 16 points, one digits "
                                        "sweep; under a minute). Default: the full preset (3 seeds; MNIST-head "
                                        "rows at radii 0.05, 0.002, 0.0005 and 128 points at 0.002; digits MLP "
                                        "and conv sweeps).")] = False,
    out_dir: OutDir = RESULTS_DIR,
    seeds: Seeds = None,
    mode: Annotated[Optional[str], typer.Option(help="Classification formulation: paper (default) or compact.")] = None,
    time_limit: Annotated[Optional[float], typer.Option(help="Per-run time limit (s); default 120 (quick 30).")] = None,
    threads: Annotated[int, typer.Option(help="Solver threads per run.")] = 1,
    gurobi: Annotated[bool, typer.Option(help="Also run Gurobi's plain MIP where its licence takes the "
                                         "instance.")] = True,
) -> None:
    """Classification sweeps: plain MIP vs presolve + Benders search (points fixed, time to first
    incumbent, time to proof, objective)."""
    from gdsolver.bench.sweeps_bench import preset_config, run_sweeps_bench, total_units

    name = "quick" if quick else "full"
    cfg = preset_config(name)
    cfg = replace(cfg, seeds=_seeds(seeds, cfg.seeds), mode=mode or cfg.mode, threads=threads, gurobi=gurobi,
                  time_limit=cfg.time_limit if time_limit is None else time_limit).check()
    tag = "sweeps_quick" if quick else "sweeps"
    console.print(f"sweeps benchmark ({name} preset): seeds {list(cfg.seeds)}, MNIST-head rows {list(cfg.head_rows)}, "
                  f"digits rows {list(cfg.trained_rows)}, mode {cfg.mode}, time limit {cfg.time_limit:g} s",
                  markup=False)
    doc = _run_with_bar("sweeps", total_units(cfg),
                        lambda tick: run_sweeps_bench(cfg, out_dir, tag=tag, tick=tick,
                                                      command=["gdsolver", *sys.argv[1:]],
                                                      echo=lambda m: console.print(m, markup=False)))
    for s in doc["summary"]:
        sp = s["speedup_geomean"]
        console.print(f"{s['instance']} {s['points']} pts r={s['radius']:g}: presolve out {s['presolve_out']:.1f} "
                      f"in {s['presolve_in']:.1f}; proven plain {s['mip_proven']}/{s['seeds']}, benders "
                      f"{s['benders_proven']}/{s['seeds']}" + (f"; speedup {sp:.1f}x" if sp else ""), markup=False)
    if doc["run"]["failed"]:  # e.g. the plain MIP and Benders proved different optima: the report lists them
        console.print(f"{doc['run']['failed']} instance(s) failed (see the report)", markup=False)
        raise typer.Exit(1)


@bench_app.command("repair")
@user_errors
def bench_repair(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Directory with the MNIST idx files.")],
    out_dir: OutDir = RESULTS_DIR,
    sizes: Annotated[str, typer.Option(help="Fix-set sizes, comma-separated.")] = "10,50,100",
    layer: Annotated[Optional[list[str]], typer.Option("--layer", help="final and/or hidden (default both).")]
    = None,
    epochs: Annotated[int, typer.Option(help="Adam epochs of the MLP before the repairs.")] = 3,
    keep: Annotated[int, typer.Option(help="Keep pool: correct training points (their rows enter the LP when "
                                           "broken).")] = 10000,
    time_limit: Annotated[float, typer.Option(help="Seconds per repair.")] = 600.0,
    seed: Annotated[int, typer.Option(help="Seed of the training and the point choice.")] = 0,
    norm: Annotated[Optional[list[str]], typer.Option("--norm", help="l1 and/or linf (default l1).")] = None,
    model: Annotated[Optional[list[str]], typer.Option("--model", help="mlp and/or conv (default mlp).")] = None,
    keep_hidden: Annotated[int, typer.Option(help="Keep points the hidden layer's repair is given (the pool's "
                                                  "first).")] = 1000,
    keep_margin: Annotated[Optional[float], typer.Option(
        help="Logit gap each keep point keeps (or its current gap when smaller); default: the margin.")] = None,
) -> None:
    """Certified repair on MNIST (fix sets of misclassified test points, a keep pool of 10,000
    correct training points; final and hidden layer) beside Adam fine-tuning: efficacy, drawdown,
    generalisation, time, memory -> OUT/repair.{json,md}."""
    from gdsolver.bench.repair_bench import LAYERS, MODELS, run_repair_bench

    try:
        ns = tuple(int(s) for s in sizes.split(","))
    except ValueError:
        fail(f"--sizes: expected comma-separated integers, got {sizes!r}")
    layers = tuple(layer or ("final", "hidden"))
    bad = [x for x in layers if x not in LAYERS]
    if bad:
        fail(f"--layer: {bad[0]!r}, expected one of {list(LAYERS)}")
    if any(n < 1 for n in ns):
        fail(f"--sizes: {sizes!r}, expected counts >= 1")
    for name, value in (("--epochs", epochs), ("--keep", keep), ("--keep-hidden", keep_hidden)):
        if value < 1:
            fail(f"{name}: {value}, expected a count >= 1")
    if not (math.isfinite(time_limit) and time_limit > 0):
        fail(f"--time-limit: {time_limit}, expected a finite number of seconds > 0")
    wrong = [x for x in norm or () if x not in ("l1", "linf")]
    if wrong:
        fail(f"--norm: {wrong[0]!r}, expected l1 or linf")
    bad = [x for x in model or () if x not in MODELS]
    if bad:
        fail(f"--model: {bad[0]!r}, expected one of {list(MODELS)}")
    checks.number("--keep-margin", keep_margin, lo=0.0, lo_open=True)
    doc = run_repair_bench(data_dir, out_dir, sizes=ns, layers=layers, seed=seed, epochs=epochs, keep=keep,
                           time_limit=time_limit, norms=tuple(norm or ("l1",)), models=tuple(model or ("mlp",)),
                           keep_margin=keep_margin, keep_hidden=keep_hidden,
                           progress=lambda m: err_console.print(m, markup=False))  # (with the files written)
    if doc["run"]["failed"]:
        console.print(f"{doc['run']['failed']} cell(s) failed (see the report)", markup=False)
        raise typer.Exit(1)
