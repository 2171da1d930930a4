"""`gdsolver` command line: compile, solve, inspect, export, replay, bench, demo."""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from gdsolver.compile.registry import backend_help, native_options_help
from gdsolver.formulate.sweep import CLASSIFICATION_MODES, DEFAULT_MODE, REGRESSION_MODES
from gdsolver.modeldef import ACTIVATIONS, TASKS
from gdsolver.pipeline import SOLVE_DEFAULTS
from gdsolver.train.config import RECIPE
from gdsolver.modelfile.compile import DEFAULT_KEEP_CORRECT
from gdsolver.train.sweep import DEFAULT_CE_POINTS, DEFAULT_DIRECT_POINTS, DEFAULT_MIP_POINTS

from . import checks
from .common import console, err_console, fail, fmt, table, user_errors

from .apps import app, bench_app
from .ray_opts import RayAddress, RayFlag, executor_for

from .options import Task


def _version_callback(value: bool) -> None:
    if value:
        from gdsolver import __version__

        console.print(f"gdsolver {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version_callback, is_eager=True,
                                                    help="Print the version and exit.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show library warnings (numpy) and onnxruntime's "
                                          "log lines, hidden by default (also GDSOLVER_VERBOSE=1).")] = False,
) -> None:
    from .checks import check_stdout, quiet_libraries
    from .checks import verbose as verbose_env

    check_stdout()
    quiet_libraries(verbose or verbose_env())


# ---------------------------------------------------------------- replay
def _replay_tasks(path: Path, **kw):
    """One task per recorded instance, loaded (and checked) here as the tasks are submitted,
    so a worker needs neither the files nor a shared file system."""
    from gdsolver.compile.replay import find_pairs, load_pair
    from gdsolver.pipeline import replay_loaded
    from gdsolver.train.executor import Task

    for inst_path, res_path in find_pairs(path):
        yield Task(replay_loaded, (inst_path, *load_pair(inst_path, res_path)), kw, label=inst_path.name)


@app.command()
@user_errors
def replay(
    path: Annotated[Path, typer.Argument(help="An instance with its result beside it, or a directory of them.")],
    backend: Annotated[Optional[str], typer.Option(help="Override the recorded backend. " + backend_help(None))] = None,
    tol: Annotated[float, typer.Option(help=f"Relative/absolute objective tolerance, in [0, {checks.MAX_TOL:g}].")] = 1e-6,
    time_limit: Annotated[Optional[float], typer.Option(help="Override the recorded time limit.")] = None,
    ray: RayFlag = False,
    ray_address: RayAddress = None,
) -> None:
    """Re-solve recorded instances; print recorded vs replayed; exit 1 if an objective differs (or,
    with --ray, if an instance's task failed). With --ray every instance is a Ray task."""
    checks.tol("--tol", tol)  # inf, nan or 1e300 would make any recorded objective "match"
    checks.time_limit("--time-limit", time_limit)
    from gdsolver.pipeline import replay as run_replay

    if ray or ray_address is not None:
        with executor_for(ray, ray_address) as ex:
            outs = ex.run(_replay_tasks(path, backend=backend, tol=tol, time_limit=time_limit))
        results = [o.value if o.ok else (o.label, o.error) for o in outs]
    else:
        results = run_replay(path, backend=backend, tol=tol, time_limit=time_limit)
    rows, bad = [], 0
    for r in results:
        if isinstance(r, tuple):  # the task failed: (instance name, error)
            bad += 1
            rows.append([r[0], "-", "-", None, None, None, None, "-", f"NO (task failed: {r[1]})"])
            continue
        bad += not r.ok
        name = os.path.relpath(r.instance, path) if path.is_dir() else r.instance.name
        rows.append([name, r.recorded.status, r.replayed.status, r.recorded.objective,
                     r.replayed.objective, r.recorded.runtime_s, r.replayed.runtime_s,
                     {None: "-", True: "yes", False: "NO"}[r.recorded_x_ok],
                     ("yes (limit: within bounds)" if r.limited else "yes") if r.ok else
                     ("NO (instance changed)" if not r.fingerprint_ok else "NO")])
    console.print(table(None, ["instance", "status rec", "status rep", "objective rec", "objective rep",
                               "time rec (s)", "time rep (s)", "rec x verifies", "match"], rows))
    if bad:
        console.print(f"{bad} of {len(rows)} replays differ")
        raise typer.Exit(1)
    console.print(f"all {len(rows)} replays match")


# ---------------------------------------------------------------- bench / demo
@bench_app.command("compile")
@user_errors
def bench_compile(
    out_dir: Annotated[Path, typer.Option("--out", help="Results directory.")] = Path("benchmarks/results"),
    quick: Annotated[bool, typer.Option(help="Small sizes only (seconds).")] = False,
) -> None:
    """Bulk (numpy -> passModel) vs per-element (highspy modelling API) instance building."""
    from gdsolver.bench.compile_bench import run_compile_bench

    run_compile_bench(out_dir, quick=quick, echo=console.print)


@bench_app.command("formulations")
@user_errors
def bench_formulations(
    out_dir: Annotated[Path, typer.Option("--out", help="Results directory.")] = Path("benchmarks/results"),
    quick: Annotated[bool, typer.Option(help="One small case only.")] = False,
    time_limit: Annotated[float, typer.Option(help="Per-solve time limit (s).")] = 120.0,
    radius: Annotated[float, typer.Option(help="Box half-width.")] = 0.01,
) -> None:
    """Classification sweeps: paper vs compact formulation, same points, same run."""
    from gdsolver.bench.formulation_bench import run_formulation_bench

    run_formulation_bench(out_dir, quick=quick, echo=console.print, time_limit=time_limit, radius=radius)


@bench_app.command("numerics")
@user_errors
def bench_numerics(
    out_dir: Annotated[Path, typer.Option("--out", help="Results directory.")] = Path("benchmarks/results"),
    quick: Annotated[bool, typer.Option(help="Six scales, one seed (about a minute).")] = False,
) -> None:
    """Feature scales 1e-12..1e12: which the solvers answer correctly, and what the numerics check refuses."""
    from gdsolver.bench.numerics_bench import run_numerics_bench

    run_numerics_bench(out_dir, quick=quick, echo=console.print)


@bench_app.command("closest")
@user_errors
def bench_closest(
    out_dir: Annotated[Path, typer.Option("--out", help="Results directory.")] = Path("benchmarks/results"),
    quick: Annotated[bool, typer.Option(help="One random instance (paper mode) and the resnet-like model.")] = False,
    threads: Annotated[int, typer.Option(help="Solver threads.")] = 1,
    time_limit: Annotated[float, typer.Option(help="Per-solve time limit (s).")] = 120.0,
    resnet: Annotated[bool, typer.Option(help="Also sweep a small resnet-like torch model (needs torch).")] = True,
) -> None:
    """Closest-point LP vs the MIP it follows on a 512 x 10 head; current vs first LP form."""
    from gdsolver.bench.closest_bench import run_closest_bench

    run_closest_bench(out_dir, quick=quick, echo=console.print, threads=threads, time_limit=time_limit,
                      resnet=resnet)


@app.command()
@user_errors
def demo(
    sweeps_only: Annotated[bool, typer.Option("--sweeps-only", help="Only formulate and solve two built-in "
                                              "final-layer instances (no training; seconds).")] = False,
    dump: Annotated[Optional[Path], typer.Option(help="Keep the runs here (default: a temporary directory).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the splits, models and training.")] = 0,
    quick: Annotated[bool, typer.Option(help="Only Adam vs GDSolver on the polynomial equation, short solves.")] = False,
) -> None:
    """Train the paper's regression model with GDSolver (sweeps of every layer) beside Adam and
    L-BFGS, and digits with and without a cross-entropy sweep, from the same initial weights;
    print the comparison and replay the dumped solver sweeps."""
    if sweeps_only:
        from gdsolver.bench.demo import run_demo

        run_demo(echo=console.print)
        return
    import tempfile

    from gdsolver.bench.train_demo import run_training_demo
    from gdsolver.pipeline import replay as replay_run

    from .train_cmd import SUMMARY_COLUMNS, print_sweeps, summary_rows

    def show(title: str, results: list) -> None:
        console.print(table(title, SUMMARY_COLUMNS, summary_rows(results)))
        print_sweeps(results)
        console.print()

    root = dump if dump is not None else Path(tempfile.mkdtemp(prefix="gdsolver-demo-"))
    run_training_demo(show, dump_dir=root, seed=seed, quick=quick)
    rows = [r for d in sorted(root.glob("*/gdsolver*")) if (d / "sweeps").is_dir() for r in replay_run(d)]
    bad = sum(not r.ok for r in rows)
    console.print(f"replayed {len(rows)} dumped sweep instances from {root} without the training code: "
                  f"{'all match' if not bad else f'{bad} differ'}")
    if bad:
        raise typer.Exit(1)


# Commands defined in their own modules register themselves on `app` / `bench_app`.
from . import compile_cmd  # noqa: E402,F401
from . import solve_cmd  # noqa: E402,F401
from . import model_cmds  # noqa: E402,F401
from . import inspect_cmd  # noqa: E402,F401
from . import train_cmd  # noqa: E402,F401
from . import bench_cmds  # noqa: E402,F401
from . import backends_cmd  # noqa: E402,F401
from . import repair_cmd  # noqa: E402,F401

if __name__ == "__main__":
    app()
