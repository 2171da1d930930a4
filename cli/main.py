"""`gdsolver` command line: compile, solve, inspect, export, replay, bench, demo."""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import console, fail, fmt, table, user_errors

from .apps import app, bench_app


class Task(str, Enum):
    regression = "regression"
    classification = "classification"


class Activation(str, Enum):
    identity = "identity"
    relu = "relu"


def _version_callback(value: bool) -> None:
    if value:
        from gdsolver import __version__

        console.print(f"gdsolver {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version_callback, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    pass


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


# ---------------------------------------------------------------- compile
@app.command("compile")
@user_errors
def compile_cmd(
    source: Annotated[Path, typer.Argument(help="LAYER.npz with arrays W (M,N), b (M,), H (T,N), y; "
                                                "or a model.onnx with --data/--dataset.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Instance file to write (.gdsm).")],
    task: Annotated[Task, typer.Option(help="Formulation to build.")],
    radius: Annotated[float, typer.Option(help="Box half-width around the current weights and biases.")] = 0.05,
    mode: Annotated[Optional[str], typer.Option(
        help="regression: l1 (default) | paper; classification: paper (default) | compact.")] = None,
    activation: Annotated[Optional[Activation], typer.Option(
        help="Output activation (layer files; detected from models). Default identity.")] = None,
    margin: Annotated[Optional[float], typer.Option(
        help="Margin for strict inequalities (default 1e-3 classification, 0 regression).")] = None,
    data: Annotated[Optional[Path], typer.Option(help="data.npz with X and y (for a model source).")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Built-in data set name (for a model source).")] = None,
    points: Annotated[Optional[int], typer.Option(
        help="Points in the instance: classification picks K misclassified (default 32); regression a "
             "seeded sample of K (default all).")] = None,
    keep_correct: Annotated[int, typer.Option(
        help="Classification: also add K currently-correct points that must stay correct.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed for point selection.")] = 0,
) -> None:
    """Build a final-layer MILP instance from a layer file (or a model plus data) and save it."""
    from gdsolver.ir import save

    if output.suffix != ".gdsm":
        fail(f"{output}: output must be a .gdsm file")
    if source.suffix.lower() == ".onnx":
        from gdsolver.train.sweep import compile_model

        inst = compile_model(source, task=task.value, data=data, dataset=dataset, radius=radius, mode=mode,
                             margin=margin, points=points, keep_correct=keep_correct, seed=seed)
    else:
        if data is not None or dataset is not None:
            fail(f"{source}: --data/--dataset apply to a model source (.onnx), not to a layer file")
        inst = _compile_layer_file(source, task.value, radius, mode, activation, margin, keep_correct)
    save(inst, output)
    s = inst.summary()
    console.print(f"wrote {output}: {s['variables']} variables ({s['binary']} binary), {s['rows']} rows, "
                  f"{s['indicators']} indicators, {s['nnz'] + s['indicator_nnz']} nonzeros")


def _compile_layer_file(source: Path, task: str, radius: float, mode: str | None,
                        activation: Activation | None, margin: float | None, keep_correct: int):
    from gdsolver.data.npz import load_arrays
    from gdsolver.errors import GdsolverError
    from gdsolver.formulate import classification, regression
    from gdsolver.ir.gdsm import array_sha256

    if keep_correct:
        fail("--keep-correct needs a model source; for a layer file put the points in H and use the Python API")
    arrs = load_arrays(source, ("W", "b", "H", "y"))
    act = activation.value if activation else "identity"
    try:
        if task == "regression":
            inst = regression(arrs["W"], arrs["b"], arrs["H"], arrs["y"], radius=radius, activation=act,
                              mode=mode or "l1", margin=0.0 if margin is None else margin)
        else:
            inst = classification(arrs["W"], arrs["b"], arrs["H"], arrs["y"], radius=radius, activation=act,
                                  mode=mode or "paper", margin=1e-3 if margin is None else margin)
    except GdsolverError as exc:  # name the file in the message
        raise type(exc)(f"{source}: {exc}") from None
    inst.meta["source"] = {"kind": "layer", "file": source.name,
                           "sha256": {k: array_sha256(v) for k, v in arrs.items()}}
    return inst


# ---------------------------------------------------------------- solve
@app.command()
@user_errors
def solve(
    instance: Annotated[Path, typer.Argument(help="Instance file (.gdsm).")],
    backend: Annotated[str, typer.Option(help="Solver backend: highs | gurobi | auto (gurobi when licensed for "
                                              "the instance, else highs).")] = "highs",
    time_limit: Annotated[Optional[float], typer.Option(help="Time limit in seconds.")] = None,
    threads: Annotated[Optional[int], typer.Option(help="Solver threads.")] = None,
    mip_gap: Annotated[Optional[float], typer.Option(help="Relative MIP gap to stop at.")] = None,
    no_start: Annotated[bool, typer.Option("--no-start", help="Do not pass the current weights as MIP start.")] = False,
    option: Annotated[list[str], typer.Option("--option", help="Backend option KEY=VALUE (repeatable).")] = [],
    fallback: Annotated[Optional[str], typer.Option(
        help="With --backend gurobi: solve with this backend when the licence is too small.")] = None,
    search: Annotated[str, typer.Option(
        help="auto (default): benders for count objectives of the maximum-feasible-subsystem shape "
             "(classification sweeps), else mip | mip: the instance as it is | presolve: interval "
             "presolve + greedy incumbent + MIP | benders: presolve + combinatorial Benders (HiGHS).")] = "auto",
    output: Annotated[Optional[Path], typer.Option("-o", "--output",
                                                    help="Result JSON (default: INSTANCE.result.json).")] = None,
) -> None:
    """Solve an instance; print status, objective, bound, gap and time; write the result JSON and x."""
    from gdsolver.compile import get_backend, result_paths, save_result, solve_sweep
    from gdsolver.ir import load, verify

    inst = load(instance)
    opts = _parse_options(option)
    kwargs = dict(time_limit=time_limit, threads=threads, mip_gap=mip_gap, use_start=not no_start, options=opts)
    if fallback:
        if backend != "gurobi":
            fail("--fallback applies to --backend gurobi only")
        kwargs["fallback"] = fallback
    outcome = None
    with console.status(f"solving {instance.name} with {backend} (search {search})...", spinner="dots"):
        if search == "mip":  # the backend alone, exactly as before searches existed
            res = get_backend(backend).solve(inst, **kwargs)
        else:
            outcome = solve_sweep(inst, search=search, backend=backend, **kwargs)
            res = outcome.result
    kind = outcome.search if outcome is not None else "mip"
    if output is not None and (output.is_dir() or output.suffix != ".json"):
        fail(f"{output}: --output must be a .json file path (x is written beside it)")
    out = output or result_paths(instance)[0]
    res.instance_file = os.path.relpath(instance.resolve(), Path(out).resolve().parent)
    json_path, x_path = save_result(res, out)
    rep = verify(inst, res.x) if res.x is not None else None
    rows = [["status", res.status], ["objective", res.objective], ["bound", res.bound], ["gap", res.gap],
            ["time (s)", res.runtime_s], ["nodes", res.nodes],
            ["current objective", inst.meta.get("current_objective")],
            ["verify", str(rep) if rep else "-"], ["backend", f"{res.backend} {res.backend_version}"],
            ["search", kind], ["message", res.message], ["result", str(json_path)]]
    if outcome is not None and outcome.presolve is not None and outcome.presolve["counts"]["points"]:
        cnt = outcome.presolve["counts"]
        rows.insert(-3, ["presolve", f"{cnt['out']} points out, {cnt['in']} in, {cnt['free']} left of {cnt['points']}"])
    if outcome is not None and outcome.first_incumbent_s is not None:
        rows.insert(-3, ["first incumbent (s)", outcome.first_incumbent_s])
    console.print(table(None, ["", str(instance)], rows))


# ---------------------------------------------------------------- apply
@app.command()
@user_errors
def apply(
    model: Annotated[Path, typer.Argument(help="The model the instance was compiled from (.onnx).")],
    result: Annotated[Path, typer.Argument(help="Result JSON written by `gdsolver solve`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Improved model to write (.onnx).")],
    instance: Annotated[Optional[Path], typer.Option(
        help="The instance (default: the one recorded in the result).")] = None,
    force: Annotated[bool, typer.Option(help="Apply a result that is not OPTIMAL/FEASIBLE/TIME_LIMIT-with-x.")] = False,
) -> None:
    """Write a solved sweep's final-layer weights into the model it came from."""
    from gdsolver.train.apply import apply_result_to_onnx

    summary = apply_result_to_onnx(model, result, output, instance=instance, force=force)
    console.print(table(None, ["", str(output)], [[k, v] for k, v in summary.items()]))


# ---------------------------------------------------------------- evaluate
@app.command()
@user_errors
def evaluate(
    models: Annotated[list[Path], typer.Argument(help="One or more models (.onnx) to compare.")],
    task: Annotated[Task, typer.Option(help="How to score the outputs.")],
    data: Annotated[Optional[Path], typer.Option(help="data.npz with X and y.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Built-in data set name.")] = None,
    instance: Annotated[Optional[Path], typer.Option(
        help="Also score the points of this sweep instance (comparable with its objective).")] = None,
) -> None:
    """Accuracy (classification) or MSE/MAE (regression) of models on data, side by side."""
    from gdsolver.ir import load
    from gdsolver.train.evaluate import evaluate_onnx
    from gdsolver.train.sweep import load_data

    from gdsolver.train.evaluate import check_instance_data

    X, y, prov = load_data(data, dataset)
    meta = load(instance).meta if instance else None
    if meta is not None:
        check_instance_data(meta, prov)
    results = [evaluate_onnx(m, X, y, task.value, meta) for m in models]
    keys = list(results[0])
    console.print(table(None, ["metric", *[m.name for m in models]], [[k, *[r[k] for r in results]] for k in keys]))


# ---------------------------------------------------------------- inspect
@app.command()
@user_errors
def inspect(
    instance: Annotated[Path, typer.Argument(help="Instance file (.gdsm).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    presolve: Annotated[bool, typer.Option(help="Also run the interval presolve (ir.presolve) and report what "
                                           "it decides: points out/in, sizes after.")] = True,
) -> None:
    """Blocks, counts, nonzeros, coefficient, bound and big-M ranges, and meta of an instance."""
    from gdsolver.ir import load

    inst = load(instance)
    s = inst.summary()
    if presolve:
        s["presolve"] = _presolve_summary(inst)
    if as_json:
        console.print_json(json.dumps(s))
        return
    console.print(table(f"{instance}", ["", ""], [
        ["variables", f"{s['variables']} ({s['continuous']} continuous, {s['binary']} binary, {s['integer']} integer)"],
        ["rows", s["rows"]], ["indicators", s["indicators"]], ["nonzeros", f"{s['nnz']} rows + {s['indicator_nnz']} indicators"],
        ["sense", s["sense"]], ["coefficient range", _rng(s["coefficient_range"])],
        ["objective range", _rng(s["objective_range"])], ["bound range", _rng(s["bound_range"])],
        ["rhs range", _rng(s["rhs_range"])], ["big-M range", _rng(s["big_m_range"])],
        ["infinite big-M", s["big_m_infinite"]], ["unbounded vars", s["unbounded_vars"]],
        ["MIP start", "yes" if s["has_start"] else "no"],
    ]))
    console.print(table("blocks", ["block", "offset", "shape"],
                        [[k, v["offset"], "x".join(map(str, v["shape"]))] for k, v in s["blocks"].items()]))
    groups = [["rows", k, v["offset"], v["count"]] for k, v in s["row_groups"].items()]
    groups += [["indicators", k, v["offset"], v["count"]] for k, v in s["indicator_groups"].items()]
    if groups:
        console.print(table("constraint groups", ["kind", "group", "offset", "count"], groups))
    console.print(table("meta", ["key", "value"], [[k, json.dumps(v) if not isinstance(v, str) else v]
                                                  for k, v in s["meta"].items()]))
    if presolve:
        p = s["presolve"]
        rows = [["status", p["status"] + (f" ({p['message']})" if p["message"] else "")]]
        if p["counts"]["points"]:
            c = p["counts"]
            rows.append(["points (objective binaries)", f"{c['out']} out, {c['in']} in, {c['free']} left of {c['points']}"])
        if p["reduced"]:
            o, r = p["original"], p["reduced"]
            for key in ("variables", "binary", "rows", "indicators"):
                rows.append([key, f"{o[key]} -> {r[key]}"])
        for name, b in p["blocks"].items():
            decided = b.get("fixed_to_0", 0) + b.get("fixed_to_1", 0) + b["fixed_other"] + b["aggregated"]
            if decided:
                parts = [f"{b[k]} {label}" for k, label in (("fixed_to_0", "fixed to 0"), ("fixed_to_1", "fixed to 1"),
                                                            ("fixed_other", "fixed"), ("aggregated", "aggregated"))
                         if b.get(k)]
                rows.append([f"block {name}", ", ".join(parts) + f" of {b['size']}"])
        rows.append(["time (s)", fmt(p["time_s"], 3)])
        console.print(table("presolve (interval reasoning, ir.presolve)", ["", ""], rows))


def _presolve_summary(inst) -> dict:
    import time

    from gdsolver.compile.search import count_fixings
    from gdsolver.ir.presolve import presolve

    t0 = time.perf_counter()
    pre = presolve(inst)
    return {**pre.summary(inst), "counts": count_fixings(inst, pre), "time_s": time.perf_counter() - t0}


def _rng(r) -> str:
    return "-" if r is None else f"[{fmt(r[0], 3)}, {fmt(r[1], 3)}]"


# ---------------------------------------------------------------- export
@app.command()
@user_errors
def export(
    instance: Annotated[Path, typer.Argument(help="Instance file (.gdsm).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="OUT.mps or OUT.lp")],
    keep_indicators: Annotated[bool, typer.Option(
        help="LP only: keep indicator constraints (written by gurobipy) instead of lowering to big-M.")] = False,
) -> None:
    """Export an instance to MPS or LP for other solvers (indicators lowered to big-M by default)."""
    from gdsolver.compile.export import export_model
    from gdsolver.ir import load

    inst = load(instance)
    export_model(inst, output, keep_indicators=keep_indicators)
    console.print(f"wrote {output} ({output.stat().st_size} bytes)")


# ---------------------------------------------------------------- replay
@app.command()
@user_errors
def replay(
    path: Annotated[Path, typer.Argument(help="An instance with its result beside it, or a directory of them.")],
    backend: Annotated[Optional[str], typer.Option(help="Override the recorded backend: highs | gurobi | auto.")] = None,
    tol: Annotated[float, typer.Option(help="Relative/absolute objective tolerance.")] = 1e-6,
    time_limit: Annotated[Optional[float], typer.Option(help="Override the recorded time limit.")] = None,
) -> None:
    """Re-solve recorded instances; print recorded vs replayed; exit 1 if an objective differs."""
    from gdsolver.compile.replay import replay as run_replay

    rows, bad = [], 0
    for r in run_replay(path, backend=backend, tol=tol, time_limit=time_limit):
        bad += not r.ok
        rows.append([r.instance.name, r.recorded.status, r.replayed.status, r.recorded.objective,
                     r.replayed.objective, r.recorded.runtime_s, r.replayed.runtime_s,
                     {None: "-", True: "yes", False: "NO"}[r.recorded_x_ok],
                     "yes" if r.ok else ("NO (instance changed)" if not r.fingerprint_ok else "NO")])
    console.print(table(None, ["instance", "status rec", "status rep", "objective rec", "objective rep",
                               "time rec (s)", "time rep (s)", "rec x verifies", "match"], rows))
    if bad:
        console.print(f"{bad} of {len(rows)} replays differ")
        raise typer.Exit(1)
    console.print(f"all {len(rows)} replays match")


# ---------------------------------------------------------------- bench / demo
@bench_app.command("compile")
@user_errors
def bench_compile(
    out_dir: Annotated[Path, typer.Option("--out", help="Results directory.")] = Path("benchmarks/results"),
    quick: Annotated[bool, typer.Option(help="Small sizes only (seconds).")] = False,
) -> None:
    """Bulk (numpy -> passModel) vs per-element (highspy modelling API) instance building."""
    from gdsolver.bench.compile_bench import run_compile_bench

    run_compile_bench(out_dir, quick=quick, echo=console.print)


@bench_app.command("formulations")
@user_errors
def bench_formulations(
    out_dir: Annotated[Path, typer.Option("--out", help="Results directory.")] = Path("benchmarks/results"),
    quick: Annotated[bool, typer.Option(help="One small case only.")] = False,
    time_limit: Annotated[float, typer.Option(help="Per-solve time limit (s).")] = 120.0,
    radius: Annotated[float, typer.Option(help="Box half-width.")] = 0.01,
) -> None:
    """Classification sweeps: paper vs compact formulation, same points, same run."""
    from gdsolver.bench.formulation_bench import run_formulation_bench

    run_formulation_bench(out_dir, quick=quick, echo=console.print, time_limit=time_limit, radius=radius)


@app.command()
@user_errors
def demo(
    sweeps_only: Annotated[bool, typer.Option("--sweeps-only", help="Only formulate and solve two built-in "
                                              "final-layer instances (no training; seconds).")] = False,
    dump: Annotated[Optional[Path], typer.Option(help="Keep the runs here (default: a temporary directory).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the splits, models and training.")] = 0,
) -> None:
    """Train on digits and on the affine equation with GDSolver (HiGHS) and SGD from the same
    initial weights, print the comparison, and replay the dumped solver sweeps."""
    if sweeps_only:
        from gdsolver.bench.demo import run_demo

        run_demo(echo=console.print)
        return
    import tempfile

    from gdsolver.bench.train_demo import run_training_demo
    from gdsolver.compile.replay import replay as replay_run

    from .train_cmd import SUMMARY_COLUMNS, print_sweeps, summary_rows

    def show(title: str, results: list) -> None:
        console.print(table(title, SUMMARY_COLUMNS, summary_rows(results)))
        print_sweeps(results)
        console.print()

    root = dump if dump is not None else Path(tempfile.mkdtemp(prefix="gdsolver-demo-"))
    run_training_demo(show, dump_dir=root, seed=seed)
    rows = [r for d in sorted(root.glob("*/gdsolver")) if (d / "sweeps").is_dir() for r in replay_run(d)]
    bad = sum(not r.ok for r in rows)
    console.print(f"replayed {len(rows)} dumped sweep instances from {root} without the training code: "
                  f"{'all match' if not bad else f'{bad} differ'}")
    if bad:
        raise typer.Exit(1)


# Commands defined in their own modules register themselves on `app` / `bench_app`.
from . import train_cmd  # noqa: E402,F401
from . import bench_cmds  # noqa: E402,F401
from . import backends_cmd  # noqa: E402,F401

if __name__ == "__main__":
    app()
