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
