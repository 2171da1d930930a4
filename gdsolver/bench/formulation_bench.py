"""`gdsolver bench formulations`: paper vs compact classification sweeps, same points.

The instances come from the demo's digits layer (sklearn digits, random ReLU body,
short softmax-regression GD), K misclassified points per sweep, several seeds. Both
modes must reach the same optimum (checked); what differs is size and solve time.
Times are reported as compact / paper ratios measured in the same run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from gdsolver.bench.demo import digits_case
from gdsolver.bench.machine import machine_line
from gdsolver.bench.plots import md_table
from gdsolver.bench.runner import Bench, run_bench
from gdsolver.compile import DEFAULT_BACKEND, solve
from gdsolver.formulate import classification, correct_mask, forward


def report(result: dict) -> list[str]:
    """The report of a run's result document, as lines."""
    lines = ["# gdsolver bench formulations", "",
             f"Instances: {result['instances']}; HiGHS, time limit {result['time_limit_s']:g} s. Same points for both "
             "modes.", "", machine_line(result["machine"], "python", "highspy"), ""]
    lines += md_table(["K", "act", "seed", "paper bin", "compact bin", "paper (s)", "compact (s)", "compact/paper",
                       "objective"],
                      [[r["points"], r["activation"], r["seed"], r["paper"]["binaries"], r["compact"]["binaries"],
                        f"{r['paper']['time_s']:.3f}", f"{r['compact']['time_s']:.3f}",
                        f"{r['time_ratio_compact_over_paper']:.2f}", r["compact"]["objective"]]
                       for r in result["rows"]], "rlrrrrrrr")
    if result["geomean_ratio_compact_over_paper"] is not None:
        lines += ["", f"Geometric mean of compact/paper time: {result['geomean_ratio_compact_over_paper']:.2f}"]
    return lines


def markdown(result: dict) -> str:
    """The report of a run's result document (without the runner's footer)."""
    return "\n".join(report(result)) + "\n"


def formulation_bench(quick: bool = False, time_limit: float = 120.0, radius: float = 0.01) -> Bench:
    """The cells (points K, activation, seed) and how one is measured: both modes on the same points."""
    case = digits_case()
    W, b, H, y = case["W"], case["b"], case["H"], case["y"]
    wrong = np.flatnonzero(~correct_mask(forward(W, b, H, "identity"), y, 1e-3))
    cells = [{"points": K, "activation": act, "seed": seed} for K in ((16,) if quick else (32, 64))
             for act in ("identity", "relu") for seed in ((0,) if quick else (0, 1, 2))]

    def run_cell(cell: dict) -> dict:
        pick = np.random.default_rng(cell["seed"]).choice(wrong, size=cell["points"], replace=False)
        row = dict(cell)
        for mode in ("paper", "compact"):
            inst = classification(W, b, H[pick], y[pick], radius=radius, activation=cell["activation"], mode=mode)
            res = solve(inst, time_limit=time_limit)
            row[mode] = {"status": res.status, "objective": res.objective, "time_s": res.runtime_s,
                         "binaries": inst.num_integer, "indicators": inst.num_indicators, "nodes": res.nodes}
        both_optimal = row["paper"]["status"] == row["compact"]["status"] == "OPTIMAL"
        if both_optimal and not np.isclose(row["paper"]["objective"], row["compact"]["objective"]):
            raise RuntimeError(f"paper and compact optima differ: {row}")
        row["time_ratio_compact_over_paper"] = row["compact"]["time_s"] / max(row["paper"]["time_s"], 1e-9)
        return row

    def describe(r: dict) -> str:
        return (f"K={r['points']:>3} {r['activation']:<8} seed={r['seed']}  paper {r['paper']['status']} "
                f"{r['paper']['time_s']:.3f}s  compact {r['compact']['status']} {r['compact']['time_s']:.3f}s  "
                f"ratio {r['time_ratio_compact_over_paper']:.2f}  objective {r['compact']['objective']}")

    def summarize(doc: dict) -> dict:
        ratios = [r["time_ratio_compact_over_paper"] for r in doc["rows"]]
        return {"geomean_ratio_compact_over_paper": float(np.exp(np.mean(np.log(ratios)))) if ratios else None}

    meta = {"instances": f"digits final layer (demo), K misclassified points, radius {radius:g}",
            "backend": DEFAULT_BACKEND, "time_limit_s": time_limit}
    return Bench("formulations", cells, run_cell, report, meta=meta,
                 summarize=summarize, describe=describe, header=False)


def run_formulation_bench(out_dir: str | Path = "benchmarks/results", quick: bool = False, echo: Callable = print,
                          time_limit: float = 120.0, radius: float = 0.01, tick: Callable | None = None) -> dict:
    doc = run_bench(formulation_bench(quick, time_limit, radius), out_dir,
                    "formulations-quick" if quick else "formulations", echo=echo, tick=tick)
    if doc["geomean_ratio_compact_over_paper"] is not None:
        echo(f"geometric mean compact/paper time ratio: {doc['geomean_ratio_compact_over_paper']:.2f}")
    return doc
