"""`gdsolver` command line: the app's callback (--version, --verbose) and the command modules,
one per command group, each registering its commands on `app` / `bench_app` (cli/apps.py):
compile_cmd, solve_cmd, model_cmds (apply, evaluate), inspect_cmd (inspect, export), replay_cmd,
demo_cmd, train_cmd, bench_cmds, backends_cmd, repair_cmd."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .apps import app
from .common import console


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


# importing a command module registers its commands (the order is the order of `gdsolver --help`)
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
