"""`gdsolver inspect` and `gdsolver export`: what an instance holds (gdsolver.modelfile.inspect),
and the instance as MPS or LP for other solvers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .apps import app
from .common import console, fmt, table, user_errors


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
    from gdsolver.modelfile.inspect import instance_report

    s = instance_report(load(instance), presolve)
    if as_json:
        console.print_json(json.dumps(s))
        return
    layer_rows = []
    la = s["meta"].get("layer") or {}
    if isinstance(la.get("index"), int):
        net = s["meta"].get("network") or []
        shapes = " -> ".join(f"{'x'.join(map(str, n['shape']))} {n['activation']}" for n in net)
        layer_rows = [["swept layer", f"{la['index']} of {la.get('count')}" + (f" ({la['name']})" if la.get("name") else "")],
                      ["layers encoded", shapes or "-"], ["ReLU binaries", s["meta"].get("relu_binaries", 0)]]
    console.print(table(f"{instance}", ["", ""], layer_rows + [
        ["variables", f"{s['variables']} ({s['continuous']} continuous, {s['binary']} binary, {s['integer']} integer)"],
        ["rows", s["rows"]], ["indicators", s["indicators"]], ["nonzeros", f"{s['nnz']} rows + {s['indicator_nnz']} indicators"],
        ["sense", s["sense"]], ["coefficient range", _rng(s["coefficient_range"])],
        ["objective range", _rng(s["objective_range"])], ["bound range", _rng(s["bound_range"])],
        ["rhs range", _rng(s["rhs_range"])], ["big-M range", _rng(s["big_m_range"])],
        ["infinite big-M", s["big_m_infinite"]], ["unbounded vars", s["unbounded_vars"]],
        ["MIP start", "yes" if s["has_start"] else "no"],
        ["peak memory (estimate)", _memory_text(s["memory"])],
        ["numerics", "ok (significant coefficients span " + fmt(s["numerics"]["significant_coefficient_range"], 3)
         + (f"; {s['numerics']['negligible_coefficients']} negligible" if s["numerics"]["negligible_coefficients"]
            else "") + ")" if s["numerics"]["solvable"] else "solve refuses it: " + s["numerics"]["reason"]],
    ]))
    console.print(table("blocks", ["block", "offset", "shape"],
                        [[k, v["offset"], "x".join(map(str, v["shape"]))] for k, v in s["blocks"].items()]))
    groups = [["rows", k, v["offset"], v["count"]] for k, v in s["row_groups"].items()]
    groups += [["indicators", k, v["offset"], v["count"]] for k, v in s["indicator_groups"].items()]
    if groups:
        console.print(table("constraint groups", ["kind", "group", "offset", "count"], groups))
    console.print(table("meta", ["key", "value"], [[k, _meta_text(v)] for k, v in s["meta"].items()]))
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


def _memory_text(m: dict | None) -> str:
    """The solve's estimated peak (gdsolver.compile.memory) and how far the fit can be off."""
    if m is None:
        return "-"
    med, worst = m["rel_err"]
    return (f"HiGHS ~{m['solve_mb']:.0f} MB solving, besides the instance's {m['instance_mb']:.0f} MB "
            f"(fit on {m['instances']} sweeps: median error {100 * med:.0f}%, worst {100 * worst:.0f}%)")


def _meta_text(v, most: int = 12) -> str:
    """A meta value for the table: long lists (the points) shortened, with their length."""
    if isinstance(v, str):
        return v
    if isinstance(v, list) and len(v) > most:
        return json.dumps(v[:most])[:-1] + f", ... ({len(v)} in all)]"
    return json.dumps(v)


def _rng(r) -> str:
    return "-" if r is None else f"[{fmt(r[0], 3)}, {fmt(r[1], 3)}]"


@app.command()
@user_errors
def export(
    instance: Annotated[Path, typer.Argument(help="Instance file (.gdsm).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="OUT.mps or OUT.lp")],
    keep_indicators: Annotated[bool, typer.Option(
        help="LP only: keep indicator constraints (written by gurobipy) instead of lowering to big-M. Gurobi "
             "and SCIP read that LP to the same optimum; HiGHS cannot (its LP reader has no indicators): "
             "for HiGHS export without this option (the big-M MPS or LP).")] = False,
) -> None:
    """Export an instance to MPS or LP for other solvers (indicators lowered to big-M by default:
    every solver reads that; --keep-indicators: Gurobi and SCIP, not HiGHS)."""
    from gdsolver.compile.export import export_model
    from gdsolver.ir import load
    from gdsolver.paths import check_output

    check_output(output, inputs=(instance,), what="export")
    inst = load(instance)
    export_model(inst, output, keep_indicators=keep_indicators)
    console.print(f"wrote {output} ({output.stat().st_size} bytes)")
