"""`gdsolver demo`: the paper's regression model and digits trained with and without sweeps from
the same initial weights, compared, and their dumped sweeps replayed (gdsolver.bench.train_demo)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .apps import app
from .common import console, table, user_errors


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
