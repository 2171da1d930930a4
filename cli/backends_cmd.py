"""`gdsolver backends` (what each solver backend can do here) and `gdsolver bench
backends` (HiGHS vs Gurobi solve times on the same instances)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .apps import app, bench_app
from .common import console, table, user_errors
from .ray_opts import RayAddress, RayFlag, executor_for


def _licence_text(lic: dict[str, Any]) -> str:
    state = lic["state"]
    if state == "restricted":
        return f"restricted: {lic['max_variables']} vars, {lic['max_constraints']} linear + indicator constrs"
    return state


@app.command("backends")
@user_errors
def backends(
    as_json: Annotated[bool, typer.Option("--json", help="Print the information as JSON.")] = False,
) -> None:
    """List the solver backends: available or not (and why), version, licence, features, and what
    `--backend auto` does."""
    from gdsolver.compile.backend import BACKENDS, FEATURES, backend_info

    infos = [backend_info(name) for name in BACKENDS]
    gurobi = next(i for i in infos if i["name"] == "gurobi")
    if not gurobi["available"]:
        auto = "highs for every instance (Gurobi is not usable here)"
    elif gurobi["licence"]["state"] == "full":
        auto = "gurobi for every instance (full licence)"
    else:
        auto = (f"gurobi for instances of at most {gurobi['licence']['max_variables']} variables and "
                f"{gurobi['licence']['max_constraints']} linear + indicator constraints, highs otherwise")
    if as_json:
        console.print_json(json.dumps({"backends": infos, "auto": auto}))
        return
    rows = []
    for i in infos:
        rows.append([i["name"], "yes" if i["available"] else f"no: {i['reason']}", i["version"] or "-",
                     _licence_text(i["licence"]), i["indicators"],
                     ", ".join(f for f in FEATURES if i["features"][f] and f != "indicators")])
    console.print(table(None, ["backend", "available", "version", "licence", "indicators", "features"], rows))
    console.print(f"--backend auto: {auto}")


@bench_app.command("backends")
@user_errors
def bench_backends(
    out_dir: Annotated[Path, typer.Option("--out", help="Results directory.")] = Path("benchmarks/results"),
    quick: Annotated[bool, typer.Option(help="One small instance per kind (seconds).")] = False,
    time_limit: Annotated[float, typer.Option(help="Per-solve time limit (s).")] = 60.0,
    threads: Annotated[Optional[int], typer.Option(help="Threads for both solvers (default: theirs).")] = None,
    ray: RayFlag = False,
    ray_address: RayAddress = None,
) -> None:
    """HiGHS vs Gurobi solve time on the same instances (within Gurobi's licence), with the ratio;
    exits 1 if the two disagree on an optimal objective. With --ray each instance is a Ray task
    (parallel solves share the cores: compare times only between runs made the same way)."""
    from gdsolver.bench.backends_bench import run_backends_bench

    with executor_for(ray, ray_address) as ex:
        result = run_backends_bench(out_dir, quick=quick, echo=console.print, time_limit=time_limit,
                                    threads=threads, executor=ex)
    if not result["all_agree"]:
        console.print(f"{result['disagreements']} instances with different optimal objectives")
        raise typer.Exit(1)
