"""Option types more than one command shares (typer reads the Annotated metadata), so a shared
option is spelled once: the task and activation choices, and the benchmarks' common options."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from gdsolver.compile.registry import backend_help
from gdsolver.modeldef import ACTIVATIONS, TASKS

# the choices typer shows, from the one place the names are defined
Task = Enum("Task", {t: t for t in TASKS}, type=str)
Activation = Enum("Activation", {a: a for a in ACTIVATIONS}, type=str)

RESULTS_DIR = Path("benchmarks/results")
OutDir = Annotated[Path, typer.Option("--out", help="Results directory.")]
Seeds = Annotated[Optional[int], typer.Option(help="Number of seeds (0..N-1), overriding the preset.")]
RunThreads = Annotated[int, typer.Option(help="Torch and solver threads per run.")]
Plots = Annotated[bool, typer.Option(help="Write the PNG plots.")]
Backend = Annotated[str, typer.Option(help=backend_help())]
PerSolveLimit = Annotated[float, typer.Option(help="Per-solve time limit (s).")]

