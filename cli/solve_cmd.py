"""`gdsolver solve`: an instance solved the way a trainer's sweep is (gdsolver.pipeline), its
result printed and written (gdsolver.modelfile.solve)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from gdsolver.compile.registry import backend_help, native_options_help
from gdsolver.pipeline import SOLVE_DEFAULTS

from . import checks
from .apps import app
from .common import console, err_console, fail, fmt, table, user_errors

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_SOLVER_ERROR = 1

Backend = Annotated[str, typer.Option(help=backend_help())]
TimeLimit = Annotated[Optional[float], typer.Option(
    help="Time limit in seconds for the whole sweep (every round and the closest point).")]
Threads = Annotated[Optional[int], typer.Option(help="Solver threads (at most 4 x the CPU cores; default: the "
                                                "solver's).")]
MipGap = Annotated[Optional[float], typer.Option(help="Relative MIP gap to stop at.")]
NoStart = Annotated[bool, typer.Option("--no-start", help="Do not pass the current weights as MIP start.")]
NativeOption = Annotated[list[str], typer.Option("--option", help=native_options_help())]
Fallback = Annotated[Optional[str], typer.Option(
    help="Solve with this backend when --backend's package is missing or its licence is too small for the "
         "instance.")]
Search = Annotated[str, typer.Option(
    help="auto (default): benders for count objectives of the maximum-feasible-subsystem shape "
         "(classification sweeps with the paper or compact head), else mip | mip: the instance as it is | "
         "presolve: interval presolve + greedy incumbent + MIP | benders: presolve + combinatorial "
         "Benders (its LPs and master on HiGHS).")]
ResultOut = Annotated[Optional[Path], typer.Option("-o", "--output", help="Result JSON (default: "
                                                   "INSTANCE.result.json).")]
Closest = Annotated[bool, typer.Option(
    "--closest/--no-closest",
    help="After a solution: keep its integer decisions and objective and move the weights as little as "
         "possible from the current ones (an LP; what the trainer does). The result's x is that point; "
         "the result records both.")]
Rounds = Annotated[int, typer.Option(
    help="Squared / cross-entropy heads: at most this many rounds of tangent cuts after the first solve.")]
RoundTol = Annotated[float, typer.Option(
    help="... until the surrogate promises less than this (relative) over the true loss.")]
Convex = Annotated[str, typer.Option(
    help="A convex sweep (the last layer, identity output, squared / ce head): direct (scipy, exact; the "
         "default) or cuts (the tangent-cut rounds on --backend).")]


@app.command()
@user_errors
def solve(
    instance: Annotated[Path, typer.Argument(help="Instance file (.gdsm).")],
    backend: Backend = SOLVE_DEFAULTS.backend,
    time_limit: TimeLimit = None,
    threads: Threads = None,
    mip_gap: MipGap = None,
    no_start: NoStart = False,
    option: NativeOption = [],
    fallback: Fallback = None,
    search: Search = SOLVE_DEFAULTS.search,
    output: ResultOut = None,
    closest: Closest = SOLVE_DEFAULTS.closest,
    rounds: Rounds = SOLVE_DEFAULTS.rounds,
    round_tol: RoundTol = SOLVE_DEFAULTS.round_tol,
    convex: Convex = SOLVE_DEFAULTS.convex,
) -> None:
    """Solve an instance the way a trainer's sweep does (gdsolver.pipeline: the search, refinement
    rounds for the squared / cross-entropy heads, ir.verify and the float64 forward-pass check, the
    closest point); print status, objective, bound, gap and time; write the result JSON and x.
    Exit 1 when the solver reports ERROR (nothing written), or when the answer fails ir.verify or
    the float64 forward-pass check of its claims (recorded as ERROR, "VERIFY FAILED"); on Ctrl-C
    the best point found so far is written as a FEASIBLE result and the exit code is 130."""
    from gdsolver.compile import result_paths
    from gdsolver.errors import SolveInterrupted
    from gdsolver.ir import load
    from gdsolver.modelfile.solve import mark_unverified, write_result
    from gdsolver.paths import check_output
    from gdsolver.pipeline import SolveSettings, solve_sweep

    # everything that can be refused is checked before the instance is loaded and solved
    settings = SolveSettings(backend=backend, search=search, time_limit=time_limit, threads=threads, mip_gap=mip_gap,
                             use_start=not no_start, closest=closest, rounds=rounds, round_tol=round_tol,
                             options=_parse_options(option), fallback=fallback, convex=convex)
    checks.native_options(backend, settings.options)  # every --option KEY against the backend ...
    checks.options_for_search(settings.options, search, backend)  # ... and the search that will run
    if output is not None and (output.is_dir() or output.suffix != ".json"):
        fail(f"{output}: --output must be a .json file path (x is written beside it)")
    out = output or result_paths(instance)[0]
    check_output(out, inputs=(instance,), what="result")
    inst = load(instance)
    checks.options_for_search(settings.options, search, backend, inst)
    try:
        with console.status(f"solving {instance.name} with {backend} (search {search})...", spinner="dots"):
            outcome = solve_sweep(inst, settings)
    except SolveInterrupted as exc:
        _interrupted(exc.result, instance, inst, out)
    if outcome.error is not None:  # licence limit, missing backend: a user error, nothing written
        raise outcome.error
    res = outcome.result
    if res.status == "ERROR":  # nothing to keep; an earlier result at `out` stays as it was
        _print_result(instance, inst, res, None)
        fail(f"the solver reported ERROR: {res.message} (nothing written)", code=EXIT_SOLVER_ERROR)
    shown = mark_unverified(outcome)  # never hand on an answer that fails its checks
    _print_result(instance, inst, res, write_result(res, instance, out), shown_status=shown,
                  extra=_search_rows(res, outcome))
    if shown is not None:
        raise typer.Exit(EXIT_SOLVER_ERROR)


def _parse_options(items: list[str]) -> dict:
    """KEY=VALUE solver options; values parsed as JSON when possible (numbers, bools)."""
    out = {}
    for item in items:
        if "=" not in item:
            fail(f"--option {item!r}: expected KEY=VALUE")
        key, raw = item.split("=", 1)
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _interrupted(res, instance: Path, inst, out: Path) -> None:
    """Ctrl-C: write what the solver had (whole, atomically) or nothing; exit 130."""
    from gdsolver.modelfile.solve import write_result

    if res is None:
        err_console.print("interrupted: no feasible point was found; nothing written")
    else:
        json_path = write_result(res, instance, out)
        _print_result(instance, inst, res, json_path)
        err_console.print(f"interrupted: the best point found so far is written as a {res.status} result to "
                          f"{json_path}", markup=False)
    raise typer.Exit(EXIT_INTERRUPTED)


def _search_rows(res, outcome) -> list[list]:
    """What the pipeline adds to the result table: the search that ran, presolve's counts, when
    the first incumbent came, the refinement rounds of a smooth head."""
    rows = []
    info = res.search or {}
    if info.get("search"):
        rows.append(["search", info["search"]])
    cnt = (info.get("presolve") or {}).get("counts") or {}
    if cnt.get("points"):
        rows.append(["presolve", f"{cnt['out']} points out, {cnt['in']} in, {cnt['free']} left of {cnt['points']}"])
    if info.get("first_incumbent_s") is not None:
        rows.append(["first incumbent (s)", info["first_incumbent_s"]])
    if outcome.true_loss is not None:
        rows.append(["refinement rounds", outcome.rounds])
        rows.append(["true loss (forward pass)", outcome.true_loss])
    return rows


def _print_result(instance: Path, inst, res, json_path: Path | None, shown_status: str | None = None,
                  extra: list[list] | None = None) -> None:
    from gdsolver.ir import verify

    rep = verify(inst, res.x) if res.x is not None else None
    rows = [["status", shown_status or res.status], ["objective", res.objective], ["bound", res.bound], ["gap", res.gap],
            ["time (s)", res.runtime_s], ["nodes", res.nodes],
            ["current objective", inst.meta.get("current_objective")],
            ["verify", str(rep) if rep else "-"], ["backend", f"{res.backend} {res.backend_version}"],
            *(extra or []), ["message", res.message], ["result", str(json_path) if json_path else "-"]]
    if res.closest:
        rows.insert(1, ["closest point", _closest_text(res.closest)])
    console.print(table(None, ["", str(instance)], rows))


def _closest_text(info: dict) -> str:
    if not info.get("applied"):
        return f"not used (x is the solver's): {info.get('reason')}"
    return (f"moved the weights {fmt(info['moved_l1'], 4)} (L1) instead of the solver's {fmt(info['mip_moved_l1'], 4)}; "
            f"objective {fmt(info['objective'])} (solver's {fmt(info['mip_objective'])}); LP {info['lp_status']} in "
            f"{fmt(info['lp_runtime_s'], 3)} s")
