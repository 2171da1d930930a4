"""`gdsolver replay`: recorded instances re-solved and compared with their results, here or as
Ray tasks (gdsolver.pipeline.replay)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from gdsolver.compile.registry import backend_help

from . import checks
from .apps import app
from .common import console, table, user_errors
from .ray_opts import RayAddress, RayFlag, executor_for


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
