"""`gdsolver bench numerics`: which instance scales the solvers answer correctly, and what
`ir.numerics.check_numerics` does with each (the measurement behind its limits).

Final-layer instances (30 points, 8 features, 3 outputs, radius 0.05, classification margin
1e-3) whose features are scaled by 10^k, k = -12..12, several seeds, four formulations. Each is
solved by HiGHS and by Gurobi directly (bypassing the check). An answer is *right* when a
float64 forward pass confirms its claim (classification: every point counted correct beats
the others by half the margin; regression: the recomputed L1 equals the objective to 1e-6),
it is never INFEASIBLE (the current weights are feasible by construction) and, when both
solvers say OPTIMAL, its objective is within the default MIP gap (1e-4) of the better one.
A *wrong answer that passes* is one that is not right although ir.verify accepts it (or
there is no x to verify). The check should refuse every instance that produces one, and
refuse as few others as it can."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gdsolver.bench.machine import machine_line
from gdsolver.bench.plots import md_table
from gdsolver.bench.runner import Bench, run_bench
from gdsolver.compile import get_backend
from gdsolver.errors import GdsolverError
from gdsolver.formulate import classification, correct_mask, forward, regression
from gdsolver.ir import MilpInstance, verify
from gdsolver.ir.numerics import MAX_COEFFICIENT_RANGE, RESOLUTION, check_numerics, numerics

CASES = ("regression-identity", "regression-relu", "classification-identity", "classification-relu")
MARGIN = 1e-3


def instance(case: str, k: int, seed: int) -> tuple[MilpInstance, dict[str, Any]]:
    rng = np.random.default_rng(seed)
    T, N, M = 30, 8, 3
    W = rng.normal(size=(M, N)) * 0.3
    b = rng.normal(size=M) * 0.1
    H = rng.uniform(0.1, 1, size=(T, N)) * 10.0 ** k
    y = rng.integers(0, M, T)
    kind, act = case.split("-")
    if kind == "classification":
        inst = classification(W, b, H, y, radius=0.05, activation=act, mode="compact", margin=MARGIN)
        return inst, {"H": H, "y": y, "act": act}
    Y = forward(W, b, H, act) + rng.normal(size=(T, M)) * 0.1 * max(10.0 ** k, 1.0)
    return regression(W, b, H, Y, radius=0.05, activation=act), {"H": H, "y": Y, "act": act}


def _judge(inst: MilpInstance, data: dict[str, Any], res) -> dict[str, Any]:
    out: dict[str, Any] = {"status": res.status, "objective": res.objective}
    if res.x is None:
        out.update(verifies=None, right=res.status not in ("INFEASIBLE", "OPTIMAL"))
        return out
    u = inst.unpack(res.x)
    o = forward(u["w"], u["b"], data["H"], data["act"])
    if inst.meta["formulation"] == "classification":
        right = int(correct_mask(o, data["y"], MARGIN / 2).sum()) >= round(res.objective)
    else:
        l1 = float(np.abs(o - data["y"]).sum())
        right = abs(l1 - res.objective) <= 1e-6 * abs(l1)
    out.update(verifies=bool(verify(inst, res.x).ok), right=bool(right))
    return out


def _judge_row(inst: MilpInstance, data: dict[str, Any], row: dict[str, Any], backends: list[str]) -> None:
    """Every backend's answer for one instance into `row`, then the cross-check: with two or more
    OPTIMAL answers, any further than the MIP gap from the best is wrong."""
    for be in backends:
        try:
            row[be] = _judge(inst, data, get_backend(be).solve(inst, time_limit=30))
        except GdsolverError as exc:
            row[be] = {"status": "raised", "error": str(exc), "verifies": None, "right": False}
    opt = [be for be in backends if row[be]["status"] == "OPTIMAL" and row[be]["objective"] is not None]
    if len(opt) >= 2:  # (was == 2: with SCIP installed, three OPTIMAL answers skipped the check)
        objs = [row[be]["objective"] for be in opt]
        best = max(objs) if inst.sense == "max" else min(objs)
        for be in opt:
            if abs(row[be]["objective"] - best) > 1e-4 * max(abs(best), 1e-12):
                row[be].update(right=False, suboptimal=True)
    for be in backends:
        r = row[be]
        r["wrong_passed"] = bool(not r["right"] and r["verifies"] is not False and r["status"] != "raised")


def numerics_bench(quick: bool = False) -> Bench:
    """The cells (case, feature scale 10^k, seed) and how one is measured: the check's verdict and
    every usable backend's answer, judged."""
    from gdsolver.compile.registry import DEFAULT_BACKEND, available_backends

    # the default backend and every other one usable here (a second opinion on the same numbers)
    backends = [DEFAULT_BACKEND] + [b for b in available_backends() if b != DEFAULT_BACKEND]
    ks = (-9, -6, 0, 6, 9, 12) if quick else (-12, -10, -9, -8, -7, -6, -4, -2, 0, 2, 4, 6, 7, 8, 9, 10, 12)
    cells = [{"case": case, "k": k, "seed": seed} for case in CASES for k in ks
             for seed in ((0,) if quick else (0, 1, 2))]

    def run_cell(cell: dict[str, Any]) -> dict[str, Any]:
        inst, data = instance(cell["case"], cell["k"], cell["seed"])
        num = numerics(inst)
        try:
            check_numerics(inst)
            verdict = "accepted"
        except GdsolverError as exc:
            verdict = "refused: " + ("coefficient range" if "a span of" in str(exc) else "margin")
        row = {**cell, "verdict": verdict, "coefficient_range": list(inst.summary()["coefficient_range"] or []),
               "significant_range": num.range_ratio, "threshold_ratio": num.threshold_ratio}
        _judge_row(inst, data, row, backends)
        return row

    def describe(row: dict[str, Any]) -> str:
        return f"{row['case']:<24} k={row['k']:+d} seed={row['seed']} {row['verdict']:<28} " + "  ".join(
            f"{be}: {row[be]['status']}{' WRONG-PASSED' if row[be]['wrong_passed'] else ''}" for be in backends)

    def summarize(doc: dict[str, Any]) -> dict[str, Any]:
        tally: dict[str, int] = {}
        for row in doc["rows"]:
            for be in backends:
                key = ("accepted" if row["verdict"] == "accepted" else "refused") + (
                    ", wrong answer that verifies" if row[be]["wrong_passed"] else ", right or caught by verify")
                tally[key] = tally.get(key, 0) + 1
        return {"tally": tally}

    meta = {"backends": backends, "max_coefficient_range": MAX_COEFFICIENT_RANGE, "resolution": RESOLUTION,
            "margin": MARGIN}
    return Bench("numerics", cells, run_cell, report, meta=meta, summarize=summarize, describe=describe,
                 header=False)


def run_numerics_bench(out_dir: str | Path = "benchmarks/results", quick: bool = False,
                       echo: Callable = print, tick: Callable | None = None) -> dict:
    return run_bench(numerics_bench(quick), out_dir, "numerics-quick" if quick else "numerics", echo=echo, tick=tick)


def report(result: dict) -> list[str]:
    """The report of a run's result document, as lines."""
    m = result["machine"]
    bes = result["backends"]
    lines = ["# gdsolver bench numerics", "", (__doc__ or "").split("\n\n", 1)[1].strip(), "",
             f"Limits: significant coefficients within one constraint span <= {result['max_coefficient_range']:g}; "
             f"indicator thresholds "
             f">= {result['resolution']:g} x their expression's magnitude. Backends: {', '.join(bes)}.", "",
             machine_line(m, "highspy", "gurobipy"), "",
             "Per case and feature scale (all seeds): the check's verdict, and per backend the answers that were "
             "wrong yet verified (W), wrong but caught by verify or a clean error such as HiGHS refusing coefficients "
             "below 1e-9 (c), right (r).", ""]
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in result["rows"]:
        groups.setdefault((r["case"], r["k"]), []).append(r)
    body = []
    for (case, k), rs in groups.items():
        verdicts = sorted({r["verdict"] for r in rs})
        cells = []
        for be in bes:
            w = sum(r[be]["wrong_passed"] for r in rs)
            c = sum((not r[be]["right"]) and not r[be]["wrong_passed"] for r in rs)
            cells.append(f"{len(rs) - w - c}r" + (f" {c}c" if c else "") + (f" **{w}W**" if w else ""))
        body.append([case, f"1e{k:+d}", ", ".join(verdicts), *cells])
    lines += md_table(["case", "features x", "verdict", *bes], body, "lrl" + "l" * len(bes))
    lines += ["", "Totals (instances x backends):"] + [f"- {k}: {v}" for k, v in sorted(result["tally"].items())]
    return lines


def markdown(result: dict) -> str:
    """The report of a run's result document (without the runner's footer)."""
    return "\n".join(report(result)) + "\n"
