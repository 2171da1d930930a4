"""`gdsolver bench formulations`: paper vs compact classification sweeps, same points.

The instances come from the demo's digits layer (sklearn digits, random ReLU body,
short softmax-regression GD), K misclassified points per sweep, several seeds. Both
modes must reach the same optimum (checked); what differs is size and solve time.
Times are reported as compact / paper ratios measured in the same run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gdsolver.atomic import atomic_write_text
from gdsolver.bench.demo import digits_case
from gdsolver.bench.machine import machine_info, machine_line
from gdsolver.bench.plots import md_table
from gdsolver.compile import DEFAULT_BACKEND, solve
from gdsolver.formulate import classification, correct_mask, forward


def markdown(result: dict) -> str:
    """The report of a run's result document."""
    lines = ["# gdsolver bench formulations", "",
             f"Instances: {result['instances']}; HiGHS, time limit {result['time_limit_s']:g} s. Same points for both "
             "modes.", "", machine_line(result["machine"], "python", "highspy"), ""]
    lines += md_table(["K", "act", "seed", "paper bin", "compact bin", "paper (s)", "compact (s)", "compact/paper",
                       "objective"],
                      [[r["points"], r["activation"], r["seed"], r["paper"]["binaries"], r["compact"]["binaries"],
                        f"{r['paper']['time_s']:.3f}", f"{r['compact']['time_s']:.3f}",
                        f"{r['time_ratio_compact_over_paper']:.2f}", r["compact"]["objective"]]
                       for r in result["rows"]], "rlrrrrrrr")
    lines += ["", f"Geometric mean of compact/paper time: {result['geomean_ratio_compact_over_paper']:.2f}"]
    return "\n".join(lines) + "\n"


def run_formulation_bench(out_dir: str | Path = "benchmarks/results", quick: bool = False, echo: Callable = print,
                          time_limit: float = 120.0, radius: float = 0.01) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    case = digits_case()
    W, b, H, y = case["W"], case["b"], case["H"], case["y"]
    wrong = np.flatnonzero(~correct_mask(forward(W, b, H, "identity"), y, 1e-3))
    seeds = (0,) if quick else (0, 1, 2)
    sizes = (16,) if quick else (32, 64)
    rows = []
    for K in sizes:
        for act in ("identity", "relu"):
            for seed in seeds:
                pick = np.random.default_rng(seed).choice(wrong, size=K, replace=False)
                row = {"points": K, "activation": act, "seed": seed}
                for mode in ("paper", "compact"):
                    inst = classification(W, b, H[pick], y[pick], radius=radius, activation=act, mode=mode)
                    res = solve(inst, time_limit=time_limit)
                    row[mode] = {"status": res.status, "objective": res.objective, "time_s": res.runtime_s,
                                 "binaries": inst.num_integer, "indicators": inst.num_indicators,
                                 "nodes": res.nodes}
                both_optimal = row["paper"]["status"] == row["compact"]["status"] == "OPTIMAL"
                if both_optimal and not np.isclose(row["paper"]["objective"], row["compact"]["objective"]):
                    raise RuntimeError(f"paper and compact optima differ: {row}")
                row["time_ratio_compact_over_paper"] = row["compact"]["time_s"] / max(row["paper"]["time_s"], 1e-9)
                rows.append(row)
                echo(f"K={K:>3} {act:<8} seed={seed}  paper {row['paper']['status']} {row['paper']['time_s']:.3f}s  "
                     f"compact {row['compact']['status']} {row['compact']['time_s']:.3f}s  "
                     f"ratio {row['time_ratio_compact_over_paper']:.2f}  objective {row['compact']['objective']}")
    ratios = [r["time_ratio_compact_over_paper"] for r in rows]
    result = {"benchmark": "formulations", "instances": f"digits final layer (demo), K misclassified points, radius {radius:g}",
              "backend": DEFAULT_BACKEND, "time_limit_s": time_limit, "machine": machine_info(), "rows": rows,
              "geomean_ratio_compact_over_paper": float(np.exp(np.mean(np.log(ratios))))}
    tag = "formulations-quick" if quick else "formulations"
    atomic_write_text(out_dir / f"{tag}.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out_dir / f"{tag}.md", markdown(result))
    echo(f"geometric mean compact/paper time ratio: {result['geomean_ratio_compact_over_paper']:.2f}")
    echo(f"wrote {out_dir / (tag + '.json')} and {out_dir / (tag + '.md')}")
    return result
