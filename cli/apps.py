"""The typer apps every command module registers on (kept apart from main.py so that
command modules can import them without a cycle)."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import typer


class OneLineErrorsTyper(typer.Typer):
    """A Typer app whose usage errors (missing argument, bad option value, unknown command)
    are one `error: ...` line on stderr with exit code 2, like every other refusal, instead
    of typer's multi-line box."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from typer.main import get_command

        try:  # typer >= 0.20 carries its own copy of click
            from typer._click import exceptions as clickx
            from typer._click.utils import echo
        except ImportError:  # pragma: no cover - older typer uses click itself
            from click import echo
            from click import exceptions as clickx

        from .common import EXIT_USAGE, err_console

        def error(message: str, code: int) -> None:
            err_console.print(f"error: {message}".replace("\n", " "), markup=False, soft_wrap=True)
            sys.exit(code)

        saved_level = os.environ.get("GDSOLVER_ORT_LOG_LEVEL")
        try:
            with warnings.catch_warnings():  # the main callback silences library noise (cli.checks)
                rv = get_command(self).main(*args, standalone_mode=False, **kwargs)
        except clickx.NoArgsIsHelpError as exc:  # `gdsolver` alone: the help, as before
            echo(exc.ctx.get_help() if exc.ctx else "")
            sys.exit(EXIT_USAGE)
        except clickx.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            error(exc.format_message().strip() + where, EXIT_USAGE)
        except clickx.ClickException as exc:
            error(exc.format_message().strip(), exc.exit_code)
        except (typer.Abort, KeyboardInterrupt):
            err_console.print("interrupted")
            sys.exit(130)
        finally:  # an in-process caller (a test, an embedding program) gets its environment back
            if saved_level is None:
                os.environ.pop("GDSOLVER_ORT_LOG_LEVEL", None)
            else:
                os.environ["GDSOLVER_ORT_LOG_LEVEL"] = saved_level
        sys.exit(rv if isinstance(rv, int) else 0)


app = OneLineErrorsTyper(
    name="gdsolver",
    help="Hybrid gradient-descent + MILP training of neural networks (GDSolver): train, build, solve, inspect "
    "and replay final-layer MILPs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Reproducible benchmarks; results go to benchmarks/results/.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
