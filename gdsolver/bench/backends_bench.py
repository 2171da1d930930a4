"""`gdsolver bench backends`: HiGHS vs Gurobi on the same instances.

Instances (all within Gurobi's restricted pip licence; larger ones are listed as
skipped): the demo's digits final layer, K misclassified points, paper and compact
modes, identity and ReLU heads; and the demo's regression layer, L1 mode, T sampled
points, ReLU (a MILP) and identity (an LP) heads. HiGHS solves the big-M lowered form,
Gurobi native indicators. Both run with the same threads, time limit and relative gap;
"solve" is the solver's own run time (HiGHS run(), Gurobi optimize()), "wall" adds
building the model (and for Gurobi starting its environment). Both must reach the
same objective when both are OPTIMAL (checked, reported per row)."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdsolver.bench.demo import digits_case, regression_case
from gdsolver.bench.plots import executor_text
from gdsolver.bench.machine import machine_info
from gdsolver.compile import solve
from gdsolver.compile.gurobi import gurobi_size, licence_info
from gdsolver.errors import GdsolverError
from gdsolver.formulate import classification, correct_mask, forward, regression
from gdsolver.ir import MilpInstance, verify

if TYPE_CHECKING:
    from gdsolver.train.executor import Executor


def case_specs(quick: bool) -> list[dict[str, Any]]:
    """The instances to compare, as small descriptions (`build_case` makes the instance)."""
    out: list[dict[str, Any]] = []
    for K in (16,) if quick else (16, 32, 64):
        for act in ("identity", "relu"):
            for mode in ("paper", "compact"):
                for seed in (0,) if quick else (0, 1):
                    out.append({"case": "digits", "mode": mode, "activation": act, "points": K, "seed": seed})
    reg = [(50, "relu")] if quick else [(50, "relu"), (100, "relu"), (200, "relu"), (200, "identity")]
    for T, act in reg:
        for seed in (0,) if quick else (0, 1):
            out.append({"case": "regression", "mode": "l1", "activation": act, "points": T, "seed": seed})
    return out


@functools.lru_cache(maxsize=2)
def _layer(case: str) -> dict[str, np.ndarray]:
    return digits_case() if case == "digits" else regression_case()


def build_case(desc: dict[str, Any]) -> MilpInstance:
    """The instance a description stands for (seeded: the same in every process)."""
    d = _layer(desc["case"])
    W, b, H, y = d["W"], d["b"], d["H"], d["y"]
    rng = np.random.default_rng(desc["seed"])
    if desc["case"] == "digits":
        wrong = np.flatnonzero(~correct_mask(forward(W, b, H, "identity"), y, 1e-3))
        pick = rng.choice(wrong, size=desc["points"], replace=False)
        return classification(W, b, H[pick], y[pick], radius=0.01, activation=desc["activation"], mode=desc["mode"])
    pick = rng.choice(len(H), size=desc["points"], replace=False)
    return regression(W, b, H[pick], y[pick], radius=0.05, activation=desc["activation"], mode="l1")


def _run(inst: MilpInstance, backend: str, **kw: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    res = solve(inst, backend=backend, **kw)
    wall = time.perf_counter() - t0
    return {"status": res.status, "objective": res.objective, "bound": res.bound, "gap": res.gap,
            "solve_s": res.runtime_s, "wall_s": wall, "nodes": res.nodes, "version": res.backend_version,
            "verifies": bool(verify(inst, res.x).ok) if res.x is not None else None}


_WARM: set[str] = set()  # backends this process has solved with (first-use costs stay out of the table)


def run_case(desc: dict[str, Any], time_limit: float, threads: int | None, mip_gap: float) -> dict[str, Any]:
    """One row: the case solved by HiGHS and by Gurobi (or why it was skipped). A pure function
    of its arguments apart from the timings, so cases can run in any process (`--ray`)."""
    lic = licence_info()
    kw = dict(time_limit=time_limit, threads=threads, mip_gap=mip_gap)
    inst = build_case(desc)
    nv, nc = gurobi_size(inst)
    row = {**desc, "variables": nv, "constraints": nc, "binaries": inst.num_integer,
           "indicators": inst.num_indicators}
    if not lic.fits(inst):
        row["skipped"] = (f"{nv} variables / {nc} constraints exceed the {lic.state} Gurobi licence "
                          f"({lic.max_variables}/{lic.max_constraints})")
        return row
    for backend in ("highs", "gurobi"):
        if backend not in _WARM:  # warm up on a small instance: imports, HiGHS banner, Gurobi environment
            solve(build_case(case_specs(True)[0]), backend=backend, **kw)
            _WARM.add(backend)
    row["highs"] = _run(inst, "highs", **kw)
    row["gurobi"] = _run(inst, "gurobi", **kw)
    h, g = row["highs"], row["gurobi"]
    row["ratio_gurobi_over_highs"] = g["solve_s"] / max(h["solve_s"], 1e-9)
    row["wall_ratio_gurobi_over_highs"] = g["wall_s"] / max(h["wall_s"], 1e-9)
    if h["status"] == g["status"] == "OPTIMAL":
        row["agree"] = bool(abs(h["objective"] - g["objective"]) <= 1e-5 * max(1.0, abs(h["objective"])))
    else:
        row["agree"] = None  # not both proven optimal: nothing to compare
    return row


def _label(desc: dict[str, Any]) -> str:
    return f"{desc['case']:<10} {desc['mode']:<7} {desc['activation']:<8} n={desc['points']:<3} s={desc['seed']}"


def _echo_row(echo: Callable, row: dict[str, Any]) -> None:
    label = _label(row)
    if "error" in row:
        echo(f"{label}  failed: {row['error']}")
    elif "skipped" in row:
        echo(f"{label}  skipped: {row['skipped']}")
    else:
        h, g = row["highs"], row["gurobi"]
        echo(f"{label}  highs {h['status']} {h['solve_s']:.3f}s  gurobi {g['status']} {g['solve_s']:.3f}s  "
             f"ratio {row['ratio_gurobi_over_highs']:.2f}  objective {h['objective']} / {g['objective']}  "
             f"agree {row['agree']}")


def run_backends_bench(out_dir: str | Path = "benchmarks/results", quick: bool = False, echo: Callable = print,
                       time_limit: float = 60.0, threads: int | None = None, mip_gap: float = 1e-6,
                       executor: Executor | None = None) -> dict:
    """`executor` (gdsolver.train.executor) runs the cases, one task each; default: one after
    another here. Parallel cases share the machine's cores, so solve times are only comparable
    within a run made the same way."""
    from gdsolver.train.executor import LocalExecutor, Task

    lic = licence_info()
    if not lic.available:
        raise GdsolverError(f"bench backends needs Gurobi: {lic.reason}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    executor = executor or LocalExecutor()
    specs = case_specs(quick)
    outs = executor.run([Task(run_case, (d, time_limit, threads, mip_gap), label=_label(d), cpus=threads or 1)
                         for d in specs],
                        lambda o: _echo_row(echo, o.value if o.ok else {**specs[o.index], "error": o.error}))
    rows = [o.value if o.ok else {**d, "error": f"task failed: {o.error}"} for d, o in zip(specs, outs)]
    solved = [r for r in rows if "skipped" not in r and "error" not in r]
    groups: dict[str, float] = {}
    for key in sorted({(r["case"], r["activation"]) for r in solved}):
        ratios = [r["ratio_gurobi_over_highs"] for r in solved if (r["case"], r["activation"]) == key]
        groups[f"{key[0]} {key[1]}"] = float(np.exp(np.mean(np.log(ratios))))
    all_ratios = [r["ratio_gurobi_over_highs"] for r in solved]
    result = {"benchmark": "backends", "machine": machine_info(), "executor": executor.describe(),
              "time_limit_s": time_limit, "threads": threads,
              "mip_gap": mip_gap, "licence": lic.state, "rows": rows,
              "geomean_ratio_gurobi_over_highs": float(np.exp(np.mean(np.log(all_ratios)))) if all_ratios else None,
              "geomean_ratio_by_group": groups,
              "all_agree": all(r["agree"] is not False for r in solved),
              "disagreements": sum(r["agree"] is False for r in solved),
              "failed": sum("error" in r for r in rows)}
    tag = "backends-quick" if quick else "backends"
    (out_dir / f"{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / f"{tag}.md").write_text(markdown(result) + "\n")
    if result["geomean_ratio_gurobi_over_highs"] is not None:
        echo(f"geometric mean gurobi/highs solve-time ratio: {result['geomean_ratio_gurobi_over_highs']:.2f}")
    echo(f"wrote {out_dir / (tag + '.json')} and {out_dir / (tag + '.md')}")
    return result


def markdown(result: dict) -> str:
    m = result["machine"]
    thr = result["threads"] if result["threads"] is not None else "solver default"
    lines = ["# gdsolver bench backends", "",
             "HiGHS (big-M lowered indicators) vs Gurobi (native indicators) on the same instances: digits final "
             "layer (demo), K misclassified points, radius 0.01; regression layer (demo), L1 mode, T sampled points, "
             "radius 0.05.", "",
             f"Time limit {result['time_limit_s']:g} s, threads {thr}, relative gap {result['mip_gap']:g}; Gurobi "
             f"licence: {result['licence']}. \"solve\" = the solver's run time; \"wall\" adds model building "
             "(and Gurobi's environment start).", "",
             f"Machine: {m['cpu']} ({m['cores']} cores), Python {m['python']}, highspy {m['highspy']}, "
             f"gurobipy {m['gurobipy']}; {m['date']}{executor_text(result.get('executor'))}.", "",
             "| case | mode | act | n | seed | vars | constrs | highs solve (s) | gurobi solve (s) | gurobi/highs | "
             "highs wall (s) | gurobi wall (s) | objective | agree |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        if "error" in r:  # the case's task failed
            lines.append(f"| {r['case']} | {r['mode']} | {r['activation']} | {r['points']} | {r['seed']} | - | - |"
                         f" - | - | - | - | - | failed: {r['error']} | - |")
            continue
        head = (f"| {r['case']} | {r['mode']} | {r['activation']} | {r['points']} | {r['seed']} | {r['variables']} | "
                f"{r['constraints']} |")
        if "skipped" in r:
            lines.append(head + f" - | - | - | - | - | - | skipped: over the licence |")
            continue
        h, g = r["highs"], r["gurobi"]
        st = "" if h["status"] == g["status"] == "OPTIMAL" else f" ({h['status']}/{g['status']})"
        obj = "-" if h["objective"] is None else f"{h['objective']:.6g}"
        agree = {True: "yes", False: "NO", None: "-"}[r["agree"]]
        lines.append(head + f" {h['solve_s']:.3f} | {g['solve_s']:.3f} | {r['ratio_gurobi_over_highs']:.2f} | "
                            f"{h['wall_s']:.3f} | {g['wall_s']:.3f} | {obj}{st} | {agree} |")
    lines += ["", "Geometric mean of gurobi/highs solve time: "
              + (f"{result['geomean_ratio_gurobi_over_highs']:.2f}" if result["geomean_ratio_gurobi_over_highs"]
                 else "-")]
    lines += [f"- {k}: {v:.2f}" for k, v in result["geomean_ratio_by_group"].items()]
    lines += ["", f"Objectives agree on every row both solved to optimality: "
                  f"{'yes' if result['all_agree'] else 'NO (' + str(result['disagreements']) + ' rows)'}"]
    return "\n".join(lines)
