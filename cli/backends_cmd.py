"""`gdsolver backends` (what each solver backend can do here) and `gdsolver bench
backends` (every available backend's solve times on the same instances)."""

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
    from gdsolver.compile.registry import AUTO, DEFAULT_BACKEND, auto_description, backend_info, backend_names

    infos = [backend_info(name) for name in backend_names()]
    auto = auto_description()
    if as_json:
        console.print_json(json.dumps({"backends": infos, "auto": auto, "auto_order": list(backend_names()),
                                       "default": DEFAULT_BACKEND}))
        return
    rows = []
    for i in infos:
        features = ", ".join(f for f, on in i["features"].items() if on and f != "indicators")
        rows.append([i["name"] + (" (default)" if i["name"] == DEFAULT_BACKEND else ""),
                     "yes" if i["available"] else f"no: {i['reason']}", i["version"] or "-",
                     _licence_text(i["licence"]), i["indicators"], features])
    console.print(table(None, ["backend", "available", "version", "licence", "indicators", "features"], rows))
    console.print(f"--backend {AUTO}: {auto}")


@bench_app.command("backends")
@user_errors
def bench_backends(
    out_dir: Annotated[Path, typer.Option("--out", help="Results directory.")] = Path("benchmarks/results"),
    quick: Annotated[bool, typer.Option(help="One small instance per kind (seconds).")] = False,
    time_limit: Annotated[float, typer.Option(help="Per-solve time limit (s).")] = 60.0,
    threads: Annotated[Optional[int], typer.Option(help="Threads for every solver (default: theirs).")] = None,
    backend: Annotated[Optional[list[str]], typer.Option(
        "--backend", help="A backend to run (repeat; default: every available one; the default backend is always "
                          "run, it is the baseline).")] = None,
    instance_set: Annotated[Optional[list[str]], typer.Option(
        "--set", help="An instance set (repeat; default: all registered).")] = None,
    ray: RayFlag = False,
    ray_address: RayAddress = None,
) -> None:
    """Every available backend's solve time on the same instances, with ratios against the default
    backend; exits 1 if two backends disagree on an optimal objective. With --ray each instance is a
    Ray task (parallel solves share the cores: compare times only between runs made the same way)."""
    from gdsolver.bench.backends_bench import run_backends_bench
    from gdsolver.compile import SolveOptions

    SolveOptions(time_limit=time_limit, threads=threads)  # refused before any work
    with executor_for(ray, ray_address) as ex:
        result = run_backends_bench(out_dir, quick=quick, echo=console.print, time_limit=time_limit, threads=threads,
                                    backends=backend, sets=instance_set, executor=ex)
    if not result["all_agree"]:
        console.print(f"{result['disagreements']} instances with different optimal objectives")
        raise typer.Exit(1)
