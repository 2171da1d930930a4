"""The typer apps every command module registers on (kept apart from main.py so that
command modules can import them without a cycle)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="gdsolver",
    help="Hybrid gradient-descent + MILP training of neural networks (GDSolver): train, build, solve, inspect "
    "and replay final-layer MILPs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Reproducible benchmarks; results go to benchmarks/results/.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
