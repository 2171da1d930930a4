"""`--ray` / `--ray-address` for the commands that fan work out (bench grids, replay): the
options and the executor they select (gdsolver.train.executor)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import console

RAY_PANEL = "Ray"
RayFlag = Annotated[bool, typer.Option(
    "--ray", rich_help_panel=RAY_PANEL,
    help="Run every task (grid cell, instance) as a Ray task, on a local Ray on this machine (bound to "
         "127.0.0.1; or the cluster in RAY_ADDRESS). Needs the extra: pip install -c constraints.txt '.\\[ray]'.")]
RayAddress = Annotated[Optional[str], typer.Option(
    "--ray-address", metavar="HOST:PORT", rich_help_panel=RAY_PANEL,
    help="Run on the Ray cluster at this address (its head's GCS address, as `ray start --head` printed; "
         "'auto': the cluster this machine joined). Implies --ray.")]


def executor_for(ray: bool, address: Optional[str]):
    """A LocalExecutor, or a RayExecutor (started / connected here) with a one-line summary."""
    import os

    from gdsolver.train.executor import LocalExecutor, RayExecutor

    if not ray and address is None:
        return LocalExecutor()
    address = address if address is not None else (os.environ.get("RAY_ADDRESS") or None)
    ex = RayExecutor(address)
    d = ex.describe()
    where = f"the cluster at {address}" if address else "a local Ray"
    console.print(f"ray: {where}: {d['nodes']} node{'s' if d['nodes'] != 1 else ''} "
                  f"({', '.join(d['node_addresses'])}), {d['cpus']:g} CPUs, Ray {d['ray']}", markup=False)
    return ex
