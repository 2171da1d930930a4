"""`gdsolver bench sweeps`: classification sweeps solved by the plain MIP and by the new search.

Instances (see gdsolver/bench/sweep_instances.py):
- MNIST-head-shaped sweeps (the authors' Conv2d(1, 3, 4)-ReLU-Linear(1875, 10) head, 32
  misclassified points, margin 1e-3) at radii 0.05, 0.002, 0.0005, and 128 points at 0.002;
- digits sweeps from real short training runs (MLP 64-32-10 and the conv on the 8x8 images).

For each instance and seed: what presolve decides (points out / in), and for the plain MIP
(HiGHS on the instance as it is, started from the current weights) and the Benders search
(`run_search(search="benders")`): time to the first incumbent better than the start, time
to proof, status, objective and bound. Gurobi's plain MIP is added where its licence takes
the instance. Both runs of a row are measured in the same process one after the other;
compare them as ratios. Every answer is checked with ir.verify on the original instance,
and proven optima of the two must agree (else the row is a failed cell: listed in the report,
and the command exits 1)."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from gdsolver.bench.machine import machine_line
from gdsolver.bench.plots import md_table
from gdsolver.bench.runner import Bench, run_bench
from gdsolver.errors import GdsolverError
from gdsolver.ir.instance import MilpInstance
from gdsolver.ir.verify import verify


@dataclass(frozen=True)
class SweepsBenchConfig:
    seeds: tuple[int, ...] = (0, 1, 2)
    head_rows: tuple[tuple[int, float], ...] = ((32, 0.05), (32, 0.002), (32, 0.0005), (128, 0.002))
    image: int = 28  # MNIST-head images; 28 gives the 1875 features of the real head
    trained_rows: tuple[tuple[str, float], ...] = (("mlp", 0.05), ("mlp", 0.01), ("conv", 0.05), ("conv", 0.01))
    epochs: int = 3  # GD epochs before the digits sweeps
    wide_rows: tuple[tuple[int, float], ...] = ((1000, 0.003),)  # (classes, radius) of wide_head_sweep
    mode: str = "paper"
    time_limit: float = 120.0
    threads: int = 1
    gurobi: bool = True

    def check(self) -> "SweepsBenchConfig":
        if not self.seeds:
            raise GdsolverError("seeds: at least one")
        if not (self.time_limit > 0):
            raise GdsolverError(f"time_limit: must be > 0, got {self.time_limit}")
        if self.mode not in ("paper", "compact"):
            raise GdsolverError(f"mode: {self.mode!r}, expected paper or compact")
        return self


FULL = SweepsBenchConfig()
QUICK = SweepsBenchConfig(seeds=(0,), head_rows=((16, 0.01), (16, 0.005)), image=14,
                          trained_rows=(("mlp", 0.01),), epochs=2, time_limit=30.0, wide_rows=((100, 0.003),))


def preset_config(name: str) -> SweepsBenchConfig:
    return replace(QUICK if name == "quick" else FULL)


def cells(cfg: SweepsBenchConfig) -> list[dict[str, Any]]:
    """The description of every benchmark instance, in order (`build` makes the instance)."""
    head = "mnist-head" if cfg.image == 28 else f"mnist-head-{cfg.image}px"
    out = [{"instance": head, "seed": seed, "points": points, "radius": radius}
           for seed in cfg.seeds for points, radius in cfg.head_rows]
    out += [{"instance": f"digits-{model}", "seed": seed, "points": 32, "radius": radius}
            for model, radius in cfg.trained_rows for seed in cfg.seeds]
    out += [{"instance": f"wide-head-{classes}", "seed": seed, "points": 32, "radius": radius}
            for classes, radius in cfg.wide_rows for seed in cfg.seeds]
    return out


@functools.lru_cache(maxsize=1)  # the cells are listed seed by seed: one trained head in memory at a time
def _head(seed: int, image: int) -> Any:
    from gdsolver.bench.sweep_instances import head_case

    return head_case(seed, image=image)


def build(desc: dict[str, Any], cfg: SweepsBenchConfig) -> MilpInstance:
    """The (seeded) instance a description stands for."""
    from gdsolver.bench.sweep_instances import mnist_head_sweep, trained_sweep, wide_head_sweep

    kind, seed, radius = desc["instance"], desc["seed"], desc["radius"]
    if kind.startswith("mnist-head"):
        return mnist_head_sweep(seed, radius, points=desc["points"], mode=cfg.mode, case=_head(seed, cfg.image))
    if kind.startswith("digits-"):
        return trained_sweep(kind[len("digits-"):], seed, radius, points=desc["points"], mode=cfg.mode,
                             epochs=cfg.epochs)
    return wide_head_sweep(seed, radius, classes=int(kind[len("wide-head-"):]), mode=cfg.mode)


def traced_highs_mip(inst: MilpInstance, time_limit: float, threads: int | None) -> dict[str, Any]:
    """The plain MIP on HiGHS exactly as `gdsolver.compile.solve` builds it (indicators lowered
    by ir.lower, the instance's start passed), with HiGHS's improving-solution callback
    recording when each incumbent appeared."""
    import highspy

    from gdsolver.compile.highs import build_highs

    opts: dict[str, Any] = {"time_limit": float(time_limit)}
    if threads is not None:
        opts["threads"] = int(threads)
        highspy.Highs.resetGlobalScheduler(True)  # a thread count only takes effect on a fresh pool
    t_build = time.perf_counter()
    h, _ = build_highs(inst, opts)
    start_value = inst.objective_value(inst.start) if inst.start is not None else None
    events: list[tuple[float, float]] = []

    def on_event(kind, message, data_out, data_in, user_data):  # noqa: ARG001 - HiGHS's signature
        events.append((time.perf_counter() - t_build, float(data_out.objective_function_value)))

    h.setCallback(on_event, None)
    h.startCallback(highspy.cb.HighsCallbackType.kCallbackMipImprovingSolution)
    if inst.start is not None:
        h.setSolution(inst.num_vars, np.arange(inst.num_vars, dtype=np.int32), inst.start)
    try:
        h.run()
    finally:
        runtime = time.perf_counter() - t_build
        h.stopCallback(highspy.cb.HighsCallbackType.kCallbackMipImprovingSolution)
        highspy.Highs.resetGlobalScheduler(True)
    info = h.getInfo()
    ms = h.getModelStatus()
    has_x = info.primal_solution_status == 2
    x = np.asarray(h.getSolution().col_value) if has_x else None
    objective = inst.objective_value(x) if x is not None else None
    sign = 1.0 if inst.sense == "max" else -1.0
    better = [t for t, v in events if start_value is None or sign * (v - start_value) > 1e-9]
    best = [t for t, v in events if objective is not None and abs(v - objective) <= 1e-6 * max(1.0, abs(objective))]
    names = {highspy.HighsModelStatus.kOptimal: "OPTIMAL",
             highspy.HighsModelStatus.kTimeLimit: "FEASIBLE" if has_x else "TIME_LIMIT"}
    status = names.get(ms, h.modelStatusToString(ms))
    return {"status": status, "objective": objective,
            "bound": float(info.mip_dual_bound) if np.isfinite(info.mip_dual_bound) else None,
            "first_incumbent_s": better[0] if better else None, "best_s": best[0] if best else None,
            "proof_s": runtime if status == "OPTIMAL" else None, "runtime_s": runtime,
            "nodes": int(info.mip_node_count), "verified": bool(x is not None and verify(inst, x).ok)}


def _search_row(inst: MilpInstance, cfg: SweepsBenchConfig) -> dict[str, Any]:
    from gdsolver.compile import run_search

    res = run_search(inst, search="benders", time_limit=cfg.time_limit, threads=cfg.threads)
    info = res.search
    tr = info["trace"]
    return {"status": res.status, "objective": res.objective, "bound": res.bound,
            "first_incumbent_s": info["first_incumbent_s"], "best_s": info["best_s"],
            "proof_s": res.runtime_s if res.status == "OPTIMAL" else None, "runtime_s": res.runtime_s,
            "search": info["search"], "verified": bool(res.x is not None and verify(inst, res.x).ok),
            "presolve_s": (info["presolve"] or {}).get("time_s"),
            "pair_cuts": tr.get("pair_cuts"), "lp_cuts": tr.get("cuts"), "master_solves": tr.get("iterations"),
            "lp_solves": tr.get("lp_solves"), "lp_iterations": tr.get("lp_iterations"),
            "free_cuts": tr.get("free_cuts"), "lp_time_s": tr.get("lp_time_s"), "master_time_s": tr.get("master_time_s")}


def _gurobi_row(inst: MilpInstance, cfg: SweepsBenchConfig) -> dict[str, Any] | None:
    from gdsolver.compile import solve
    from gdsolver.compile.gurobi import GurobiBackend

    lic = GurobiBackend.licence()
    if not lic.usable:
        return {"status": "n/a", "reason": lic.reason}
    ok, why = GurobiBackend().accepts(inst)
    if not ok:
        return {"status": "n/a", "reason": why}
    res = solve(inst, backend=GurobiBackend.name, time_limit=cfg.time_limit, threads=cfg.threads)
    return {"status": res.status, "objective": res.objective, "bound": res.bound,
            "proof_s": res.runtime_s if res.status == "OPTIMAL" else None, "runtime_s": res.runtime_s,
            "verified": bool(res.x is not None and verify(inst, res.x).ok)}


def run_instance(desc: dict[str, Any], cfg: SweepsBenchConfig) -> dict[str, Any]:
    """One cell: the instance's presolve, plain MIP, Benders search (and Gurobi's plain MIP)."""
    from gdsolver.compile.search import count_fixings
    from gdsolver.ir.presolve import presolve

    t = time.perf_counter()
    inst = build(desc, cfg)
    row: dict[str, Any] = {**desc, "mode": cfg.mode, "build_s": time.perf_counter() - t,
                           "variables": inst.num_vars, "binaries": inst.num_integer,
                           "current": inst.meta.get("current_correct")}
    t = time.perf_counter()
    pre = presolve(inst)
    row["presolve_s"] = time.perf_counter() - t
    row["presolve"] = count_fixings(inst, pre)
    row["mip"] = traced_highs_mip(inst, cfg.time_limit, cfg.threads)
    row["benders"] = _search_row(inst, cfg)
    if cfg.gurobi:
        row["gurobi_mip"] = _gurobi_row(inst, cfg)
    a, b = row["mip"], row["benders"]
    if a["status"] == b["status"] == "OPTIMAL" and not np.isclose(a["objective"], b["objective"]):
        raise RuntimeError(f"plain MIP and Benders optima differ: {row}")
    g = row.get("gurobi_mip") or {}
    if g.get("status") == "OPTIMAL" and b["status"] == "OPTIMAL" and not np.isclose(g["objective"], b["objective"]):
        raise RuntimeError(f"Gurobi and Benders optima differ: {row}")
    if a["proof_s"] and b["proof_s"]:
        row["speedup"] = a["proof_s"] / b["proof_s"]
    elif b["proof_s"]:  # the plain MIP did not finish: at least this much faster
        row["speedup_at_least"] = a["runtime_s"] / b["proof_s"]
    return row


def _geomean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x and x > 0]
    return float(np.exp(np.mean(np.log(xs)))) if xs else None


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["instance"], r["points"], r["radius"]), []).append(r)
    out = []
    for (kind, points, radius), rs in groups.items():
        def proven(key: str) -> list[dict[str, Any]]:
            return [r for r in rs if r[key]["status"] == "OPTIMAL"]

        out.append({
            "instance": kind, "points": points, "radius": radius, "seeds": len(rs),
            "presolve_out": float(np.mean([r["presolve"]["out"] for r in rs])),
            "presolve_in": float(np.mean([r["presolve"]["in"] for r in rs])),
            "mip_proven": len(proven("mip")), "benders_proven": len(proven("benders")),
            "mip_proof_s_mean": float(np.mean([r["mip"]["proof_s"] for r in proven("mip")])) if proven("mip") else None,
            "benders_proof_s_mean": float(np.mean([r["benders"]["proof_s"] for r in proven("benders")]))
            if proven("benders") else None,
            "benders_proof_s_max": max((r["benders"]["proof_s"] for r in proven("benders")), default=None),
            "speedup_geomean": _geomean([r.get("speedup") for r in rs]),
            "speedup_at_least_min": min((r["speedup_at_least"] for r in rs if "speedup_at_least" in r), default=None),
            "objective_mean": float(np.mean([r["benders"]["objective"] for r in rs])),
        })
    return out


def _f(x: Any, nd: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _cell(d: dict[str, Any] | None) -> str:
    if not d:
        return "-"
    if d.get("status") == "n/a":
        return "n/a"
    obj = _f(d.get("objective"), 0)
    bound = d.get("bound")
    tag = "opt" if d["status"] == "OPTIMAL" else f"<= {_f(bound, 1)}" if bound is not None else d["status"]
    return f"{obj} ({tag})"


def report(doc: dict[str, Any]) -> list[str]:
    """The report of a run's result document (its rows: the instances that ran), as lines."""
    cfg, m = doc["config"], doc["machine"]
    load = doc.get("load_average") or doc["run"]["load_average"]  # (results from before the runner kept it here)
    lines = ["# gdsolver bench sweeps", "",
             f"Classification sweeps ({cfg['mode']} formulation, margin 1e-3), HiGHS, time limit "
             f"{cfg['time_limit']:g} s per run, {cfg['threads']} thread(s). Plain MIP: the instance as it is, "
             "started from the current weights. Benders: `run_search(search=\"benders\")` (interval presolve, "
             "greedy incumbent from warm-started LPs, pair conflicts, combinatorial Benders cuts). Times in "
             "seconds from the call; \"first inc.\" is the first incumbent better than the current weights, "
             "\"proof\" the time to a proven optimum (- when not proven in the limit).", "",
             machine_line(m, "python", "highspy", "gurobipy") + f". Load average (1 min) at start {load['start'][0]:.1f}, "
             f"at end {load['end'][0]:.1f}" + (" (the machine was shared: compare the two columns of a row, "
                                               "measured one after the other, as ratios)" if max(
                 load["start"][0], load["end"][0]) > 1.5 else "") + ".", "",
             "## Summary (per instance kind; means over seeds)", ""]
    body = []
    for s in doc["summary"]:
        sp = _f(s["speedup_geomean"], 1) + "x" if s["speedup_geomean"] else (
            f">= {_f(s['speedup_at_least_min'], 1)}x" if s["speedup_at_least_min"] else "-")
        body.append([s["instance"], s["points"], f"{s['radius']:g}", s["seeds"],
                     f"{s['presolve_out']:.1f} / {s['presolve_in']:.1f}", f"{s['mip_proven']}/{s['seeds']}",
                     _f(s["mip_proof_s_mean"]), f"{s['benders_proven']}/{s['seeds']}",
                     f"{_f(s['benders_proof_s_mean'])} / {_f(s['benders_proof_s_max'])}", sp,
                     f"{s['objective_mean']:.1f}"])
    lines += md_table(["instance", "points", "radius", "seeds", "presolve out / in", "plain proven", "plain proof",
                       "Benders proven", "Benders proof (mean / max)", "speedup (geomean)", "objective"], body)
    lines += ["", "## Every run", ""]
    body = []
    for r in doc["rows"]:
        a, b, g = r["mip"], r["benders"], r.get("gurobi_mip")
        sp = f"{r['speedup']:.1f}x" if "speedup" in r else (f">= {r['speedup_at_least']:.1f}x"
                                                           if "speedup_at_least" in r else "-")
        body.append([r["instance"], r["seed"], r["points"], f"{r['radius']:g}",
                     f"{r['presolve']['out']} / {r['presolve']['in']}", _f(a["first_incumbent_s"]), _f(a["proof_s"]),
                     _cell(a), _f(b["first_incumbent_s"]), _f(b["proof_s"]), _cell(b), sp,
                     _f((g or {}).get("proof_s")), _cell(g)])
    lines += md_table(["instance", "seed", "pts", "radius", "out / in", "plain: first inc.", "plain: proof",
                       "plain: objective", "Benders: first inc.", "Benders: proof", "Benders: objective", "speedup",
                       "Gurobi plain: proof", "Gurobi: objective"], body)
    lines += ["", "Objective cells: points correct with the margin; (opt) when proven optimal, else the bound "
              "(\"<= B\") at the time limit. Gurobi runs only where its licence takes the instance "
              "(the pip licence: 2000 variables and 2000 constraints)."]
    return lines


def _label(desc: dict[str, Any]) -> str:
    return f"{desc['instance']} seed {desc['seed']} {desc['points']} pts r={desc['radius']:g}"


def _describe(row: dict[str, Any]) -> str:
    return (f"{_label(row)}: plain {row['mip']['status']} {_f(row['mip']['runtime_s'])} s, "
            f"benders {row['benders']['status']} {_f(row['benders']['runtime_s'])} s")


def sweeps_bench(cfg: SweepsBenchConfig) -> Bench:
    """The cells (one per instance description) and how one is measured (`run_instance`)."""
    cfg = cfg.check()
    return Bench("sweeps", cells(cfg), functools.partial(run_instance, cfg=cfg), report, meta={"config": asdict(cfg)},
                 summarize=lambda doc: {"summary": summarise(doc["rows"])}, describe=_describe, label=_label,
                 header=False, cpus=cfg.threads)


def run_sweeps_bench(cfg: SweepsBenchConfig, out_dir: str | os.PathLike = "benchmarks/results", *, tag: str = "sweeps",
                     tick: Callable[[str], None] | None = None, command: list[str] | None = None,
                     echo: Callable = print) -> dict[str, Any]:
    return run_bench(sweeps_bench(cfg), out_dir, tag, echo=echo, tick=tick, command=command)


def total_units(cfg: SweepsBenchConfig) -> int:
    return len(cells(cfg))
