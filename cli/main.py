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


# Commands defined in their own modules register themselves on `app` / `bench_app`.
from . import compile_cmd  # noqa: E402,F401
from . import solve_cmd  # noqa: E402,F401
from . import model_cmds  # noqa: E402,F401
from . import inspect_cmd  # noqa: E402,F401
from . import replay_cmd  # noqa: E402,F401
from . import demo_cmd  # noqa: E402,F401
from . import train_cmd  # noqa: E402,F401
from . import bench_cmds  # noqa: E402,F401
from . import backends_cmd  # noqa: E402,F401
from . import repair_cmd  # noqa: E402,F401

if __name__ == "__main__":
    app()
