"""`gdsolver bench backends`: every available backend on the same instances.

Instances come from named instance sets (INSTANCE_SETS). Built in: the demo's digits
final layer (K misclassified points, paper and compact modes, identity and ReLU
heads), the demo's regression layer (L1 mode, T sampled points, ReLU = a MILP,
identity = an LP), the MNIST-head-shaped sweeps of `gdsolver bench sweeps` (paper mode,
1875 inputs x 10 classes; over Gurobi's pip licence) and hidden-layer sweeps of a small
digits MLP (layer 0, its ReLUs and the final layer encoded exactly; paper, ce and squared
heads). To add a set, write a function `(quick: bool) -> list[description]` and decorate
it with `@instance_set("name", build, note)`, where `build(description) -> MilpInstance`
makes the (seeded) instance in whatever process runs the case (`--ray`) and `note` says
what the instances are in the results; a description is a small JSON-able dict with at
least "set" and "case" and maybe "mode", "activation", "points", "radius", "seed".

Every backend gets the same threads, time limit and relative gap. HiGHS solves the
big-M lowered form, Gurobi and SCIP native indicators. "solve" is the solver's own
run time (SolveResult.runtime_s), "wall" adds building the model (and Gurobi's
environment start); ratios are against the default backend, measured in the same
run. An instance over a backend's licence is listed as skipped for it. All OPTIMAL
objectives of a row must agree (checked, reported per row)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdsolver.bench.demo import digits_case, regression_case
from gdsolver.bench.machine import machine_line
from gdsolver.bench.plots import executor_text, md_table
from gdsolver.bench.runner import Bench, run_bench
from gdsolver.compile import DEFAULT_BACKEND, available_backends, get_backend, solve
from gdsolver.compile.registry import check_backend_name
from gdsolver.errors import GdsolverError, LicenseLimitError
from gdsolver.formulate import classification, correct_mask, forward, regression
from gdsolver.ir import MilpInstance, verify

if TYPE_CHECKING:
    from gdsolver.train.executor import Executor

AGREE_RTOL = 1e-5  # optimal objectives agree to this, relative to max(1, |objective|) (gap 1e-6)


@dataclass(frozen=True)
class InstanceSet:
    cases: Callable[[bool], list[dict[str, Any]]]  # quick -> descriptions
    build: Callable[[dict[str, Any]], MilpInstance]  # description -> instance (seeded; any process)
    note: str = ""  # what the instances are, one or two sentences for the results' header


#: name -> instance set; the order is the table's
INSTANCE_SETS: dict[str, InstanceSet] = {}


def instance_set(name: str, build: Callable[[dict[str, Any]], MilpInstance], note: str = ""):
    """Register the decorated `(quick) -> [description]` as the instance set `name`, its
    instances made by `build(description)` (the hook for extra sets); `note` describes them
    in the results."""
    def register(cases: Callable[[bool], list[dict[str, Any]]]):
        INSTANCE_SETS[name] = InstanceSet(cases, build, note)
        return cases
    return register


def build_case(desc: dict[str, Any]) -> MilpInstance:
    """The instance a description stands for (the same in every process)."""
    return INSTANCE_SETS[desc["set"]].build(desc)


@functools.lru_cache(maxsize=2)
def _layer(case: str) -> dict[str, np.ndarray]:
    return digits_case() if case == "digits" else regression_case()


def _build_demo_case(desc: dict[str, Any]) -> MilpInstance:
    d = _layer(desc["case"])
    W, b, H, y = d["W"], d["b"], d["H"], d["y"]
    rng = np.random.default_rng(desc["seed"])
    if desc["case"] == "digits":
        wrong = np.flatnonzero(~correct_mask(forward(W, b, H, "identity"), y, 1e-3))
        pick = rng.choice(wrong, size=desc["points"], replace=False)
        return classification(W, b, H[pick], y[pick], radius=desc["radius"], activation=desc["activation"],
                              mode=desc["mode"])
    pick = rng.choice(len(H), size=desc["points"], replace=False)
    return regression(W, b, H[pick], y[pick], radius=desc["radius"], activation=desc["activation"], mode="l1")


@instance_set("digits", _build_demo_case, note="Digits: final layer of the demo's model, K misclassified points.")
def digits_cases(quick: bool) -> list[dict[str, Any]]:
    return [{"set": "digits", "case": "digits", "mode": mode, "activation": act, "points": K, "radius": 0.01,
             "seed": seed}
            for K in ((16,) if quick else (16, 32, 64)) for act in ("identity", "relu")
            for mode in ("paper", "compact") for seed in ((0,) if quick else (0, 1))]


@instance_set("regression", _build_demo_case, note="Regression: the demo's layer, L1 mode, T sampled points.")
def regression_cases(quick: bool) -> list[dict[str, Any]]:
    reg = [(50, "relu")] if quick else [(50, "relu"), (100, "relu"), (200, "relu"), (200, "identity")]
    return [{"set": "regression", "case": "regression", "mode": "l1", "activation": act, "points": T, "radius": 0.05,
             "seed": seed}
            for T, act in reg for seed in ((0,) if quick else (0, 1))]


@functools.lru_cache(maxsize=1)  # cases are listed seed by seed: one trained head in memory at a time
def _head(seed: int, image: int):
    from gdsolver.bench.sweep_instances import head_case

    return head_case(seed, image=image)


def _build_mnist_head(desc: dict[str, Any]) -> MilpInstance:
    from gdsolver.bench.sweep_instances import mnist_head_sweep

    return mnist_head_sweep(desc["seed"], desc["radius"], points=desc["points"], mode=desc["mode"],
                            case=_head(desc["seed"], desc["image"]))


@instance_set("mnist-head", _build_mnist_head, note=(
    "MNIST head: the seeded MNIST-head-shaped sweeps of `gdsolver bench sweeps` (gdsolver/bench/sweep_instances.py; "
    "Conv2d(1, 3, 4)-ReLU features of synthetic 28x28 digits, 1875 inputs x 10 classes), n misclassified points, "
    "paper mode; at radius 0.002 about half the points can be fixed. mnist-head-14px (quick): the same from 14x14 "
    "images (363 inputs)."))
def mnist_head_cases(quick: bool) -> list[dict[str, Any]]:
    rows = [(14, 16, 0.01)] if quick else [(28, 32, 0.05), (28, 32, 0.002), (28, 128, 0.002)]
    return [{"set": "mnist-head", "case": "mnist-head" if image == 28 else f"mnist-head-{image}px", "mode": "paper",
             "activation": "identity", "points": n, "radius": r, "seed": seed, "image": image}
            for seed in ((0,) if quick else (0, 1)) for image, n, r in rows]


@functools.lru_cache(maxsize=2)
def _mlp(seed: int, hidden: int, epochs: int):
    from gdsolver.bench.sweep_instances import trained_network

    return trained_network("mlp", seed, epochs=epochs, hidden=hidden)


def _build_digits_hidden(desc: dict[str, Any]) -> MilpInstance:
    from gdsolver.bench.sweep_instances import trained_sweep

    return trained_sweep("mlp", desc["seed"], desc["radius"], points=desc["points"], mode=desc["mode"],
                         epochs=desc["epochs"], hidden=desc["hidden"], layer=desc["layer"],
                         task="regression" if desc["mode"] == "squared" else "classification",
                         trained=_mlp(desc["seed"], desc["hidden"], desc["epochs"]))


@instance_set("digits-hidden", _build_digits_hidden, note=(
    "Digits hidden layer: digits-mlpH sweeps layer 0, Linear(64, H), of a 64-H-10 ReLU MLP trained 3 SGD epochs on "
    "sklearn digits (seeded), its H ReLUs per point and the final layer encoded exactly; paper: n misclassified "
    "points; ce: the first tangent round of the cross-entropy head on n sampled points; squared: the first round "
    "of the squared-error regression head (the 10 outputs fitted to the one-hot labels; the current residual and a "
    "5-point grid per output) on n sampled points."))
def digits_hidden_cases(quick: bool) -> list[dict[str, Any]]:
    rows = ([(16, "paper", 16, 0.01), (16, "ce", 16, 0.01), (16, "squared", 8, 0.01)] if quick else
            [(16, "paper", 16, 0.01), (16, "ce", 16, 0.01), (16, "squared", 16, 0.01), (32, "paper", 16, 0.01),
             (32, "ce", 32, 0.01)])
    return [{"set": "digits-hidden", "case": f"digits-mlp{h}", "mode": mode, "activation": "relu", "points": n,
             "radius": r, "seed": seed, "hidden": h, "layer": 0, "epochs": 3}
            for seed in ((0,) if quick else (0, 1)) for h, mode, n, r in rows]


def _run(inst: MilpInstance, backend: str, **kw: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    res = solve(inst, backend, **kw)
    wall = time.perf_counter() - t0
    return {"status": res.status.value, "objective": res.objective, "bound": res.bound, "gap": res.gap,
            "solve_s": res.runtime_s, "wall_s": wall, "nodes": res.nodes, "version": res.backend_version,
            "verifies": bool(verify(inst, res.x).ok) if res.x is not None else None}


PROVEN = ("OPTIMAL", "INFEASIBLE", "UNBOUNDED")  # the solver finished; anything else stopped at a limit


def _agree(results: list[dict[str, Any]], sense: str = "max") -> bool | None:
    """All OPTIMAL objectives equal, and no other backend's point beats the optimum nor its
    bound cuts it off (False if either fails; None when fewer than two are OPTIMAL and nothing
    contradicts the one optimum)."""
    objs = [r["objective"] for r in results if r["status"] == "OPTIMAL"]
    if not objs:
        return None
    tol = AGREE_RTOL * max(1.0, max(abs(o) for o in objs))
    if max(objs) - min(objs) > tol:
        return False
    sign, opt = (1.0 if sense == "max" else -1.0), objs[0]
    for r in results:
        if r["status"] == "OPTIMAL":
            continue
        if r["objective"] is not None and sign * (r["objective"] - opt) > tol:
            return False
        if r["bound"] is not None and sign * (opt - r["bound"]) > tol:
            return False
    return True if len(objs) >= 2 else None


def _ratios(res: dict[str, dict[str, Any]], base: str) -> tuple[dict[str, float], dict[str, list]]:
    """Solve-time ratios over `base` where both finished, and bounds on them where one stopped
    at the time limit: [">=", t/t_base] when only the baseline finished, ["<=", ...] when only
    the other did (nothing when neither did)."""
    ratios: dict[str, float] = {}
    bounds: dict[str, list] = {}
    if base not in res:
        return ratios, bounds
    t0 = max(res[base]["solve_s"], 1e-9)
    for n, r in res.items():
        if n == base:
            continue
        done, done0 = r["status"] in PROVEN, res[base]["status"] in PROVEN
        if done and done0:
            ratios[n] = r["solve_s"] / t0
        elif done0 or done:
            bounds[n] = [">=" if done0 else "<=", r["solve_s"] / t0]
    return ratios, bounds


def _geomean(xs: list[float]) -> float | None:
    return float(np.exp(np.mean(np.log(xs)))) if xs else None


_WARM: set[str] = set()  # backends this process has solved with (first-use costs stay out of the table)


def run_case(desc: dict[str, Any], names: list[str], time_limit: float, threads: int | None,
             mip_gap: float) -> dict[str, Any]:
    """One row: the case solved by every backend in `names` that accepts it. A pure function of
    its arguments apart from the timings, so cases can run in any process (`--ray`)."""
    kw = dict(time_limit=time_limit, threads=threads, mip_gap=mip_gap)
    inst = build_case(desc)
    row: dict[str, Any] = {**desc, "variables": inst.num_vars, "rows": inst.num_rows,
                           "indicators": inst.num_indicators, "integers": inst.num_integer, "results": {},
                           "skipped": {}, "sense": inst.sense}
    for name in names:
        ok, why = get_backend(name).accepts(inst)
        if not ok:
            row["skipped"][name] = why
            continue
        if name not in _WARM:  # warm up on a small instance: imports, HiGHS banner, Gurobi environment
            solve(build_case(digits_cases(True)[0]), name, **kw)
            _WARM.add(name)
        try:
            row["results"][name] = _run(inst, name, **kw)
        except LicenseLimitError as exc:
            row["skipped"][name] = str(exc)
    row["ratios"], row["ratio_bounds"] = _ratios(row["results"], names[0])
    row["agree"] = _agree(list(row["results"].values()), inst.sense)
    return row


def _label(desc: dict[str, Any]) -> str:
    return " ".join(str(desc.get(k, "-")) for k in ("case", "mode", "activation", "points", "radius", "seed"))


def _describe(row: dict[str, Any]) -> str:
    solves = "  ".join(f"{n} {r['status']} {r['solve_s']:.3f}s" for n, r in row["results"].items())
    return (f"{_label(row):<40} {solves}"
            + (f"  skipped {sorted(row['skipped'])}" if row["skipped"] else "") + f"  agree {row['agree']}")


def backends_bench(quick: bool = False, time_limit: float = 60.0, threads: int | None = None, mip_gap: float = 1e-6,
                   backends: list[str] | None = None, sets: list[str] | None = None) -> Bench:
    """The cells (one per instance description of the chosen sets) and how one is measured
    (`run_case`: every backend on it; a partial of it, so the cells can run as Ray tasks)."""
    names = list(backends) if backends else list(available_backends())
    for name in names:
        check_backend_name(name, allow_auto=False)
    names = [DEFAULT_BACKEND, *(n for n in names if n != DEFAULT_BACKEND)]  # the baseline of every ratio first
    unusable = [n for n in names if n not in available_backends()]
    if unusable:
        raise GdsolverError(f"bench backends: {unusable} not usable here (see `gdsolver backends`)")
    sets = list(sets) if sets else list(INSTANCE_SETS)
    unknown = [s for s in sets if s not in INSTANCE_SETS]
    if unknown:
        raise GdsolverError(f"--set: unknown instance set(s) {unknown}, expected some of {list(INSTANCE_SETS)}")
    meta = {"time_limit_s": time_limit, "threads": threads, "mip_gap": mip_gap, "backends": names,
            "baseline": DEFAULT_BACKEND, "sets": sets,
            "notes": {s: INSTANCE_SETS[s].note for s in sets if INSTANCE_SETS[s].note},
            "versions": {n: get_backend(n).version() for n in names},
            "licences": {n: get_backend(n).licence().state for n in names}}
    return Bench("backends", [d for s in sets for d in INSTANCE_SETS[s].cases(quick)],
                 functools.partial(run_case, names=names, time_limit=time_limit, threads=threads, mip_gap=mip_gap),
                 report, meta=meta, summarize=lambda doc: summarize(doc["rows"], names, DEFAULT_BACKEND),
                 describe=_describe, label=_label, header=False, cpus=threads or 1)


def run_backends_bench(out_dir: str | Path = "benchmarks/results", quick: bool = False, echo: Callable = print,
                       time_limit: float = 60.0, threads: int | None = None, mip_gap: float = 1e-6,
                       backends: list[str] | None = None, sets: list[str] | None = None,
                       executor: Executor | None = None) -> dict:
    """`executor` (gdsolver.train.executor) runs the cases, one task each; default: one after
    another here. Parallel cases share the machine's cores, so solve times are only comparable
    within a run made the same way."""
    bench = backends_bench(quick, time_limit, threads, mip_gap, backends, sets)
    result = run_bench(bench, out_dir, "backends-quick" if quick else "backends", echo=echo, executor=executor)
    for n, g in result["geomean_ratio"].items():
        echo(f"geometric mean {n}/{DEFAULT_BACKEND} solve-time ratio: {g:.2f}" if g else f"{n}: no ratio")
    return result


def summarize(rows: list[dict[str, Any]], names: list[str], base: str) -> dict[str, Any]:
    """The result's figures over its rows (geometric means of the ratios where both backends
    finished, totals over the rows every backend finished, agreement, verify failures)."""
    geomean = {n: _geomean([r["ratios"][n] for r in rows if n in r["ratios"]]) for n in names if n != base}
    groups: dict[str, dict[str, float | None]] = {}
    for key in dict.fromkeys((r["case"], r.get("activation", "-")) for r in rows):
        sel = [r for r in rows if (r["case"], r.get("activation", "-")) == key]
        groups[f"{key[0]} {key[1]}"] = {n: _geomean([r["ratios"][n] for r in sel if n in r["ratios"]])
                                        for n in names if n != base}
    common = [r for r in rows if all(n in r["results"] and r["results"][n]["status"] in PROVEN
                                     for n in names)]  # rows every backend finished
    return {"geomean_ratio": geomean, "geomean_ratio_by_group": groups,
            "total_solve_s": {n: sum(r["results"][n]["solve_s"] for r in common) for n in names},
            "total_rows": len(common),
            "all_agree": all(r["agree"] is not False for r in rows),
            "disagreements": sum(r["agree"] is False for r in rows),
            "not_verified": sum(v["verifies"] is False for r in rows for v in r["results"].values())}


def _cell(r: dict[str, Any] | None, skipped: str | None) -> str:
    if r is None:
        return "skipped" if skipped else "-"
    mark = "" if r["status"] == "OPTIMAL" else f" {r['status']}"
    if r["status"] not in PROVEN and r["objective"] is not None:
        mark += f" {r['objective']:.6g}" + (f" (bound {r['bound']:.6g})" if r["bound"] is not None else "")
    mark += " (x fails verify)" if r["verifies"] is False else ""
    return f"{r['solve_s']:.3f} / {r['wall_s']:.3f}{mark}"


def _load_text(load: dict | None, cores: int | None) -> str:
    if not load or load.get("start") is None:
        return ""
    text = f" 1-minute load average {load['start']:g} at the start, {load['end']:g} at the end"
    if load.get("rows_median") is not None:
        text += (f", {load['rows_min']:g} / {load['rows_median']:g} / {load['rows_max']:g} (min / median / max) "
                 "as the rows started")
    if max(v for v in load.values() if v is not None) > (cores or 1):
        text += " (above the core count: other jobs shared the machine, compare ratios within a row)"
    return text + "."


def report(result: dict) -> list[str]:
    """The report of a run's result document (its rows: the cases that ran), as lines."""
    m = result["machine"]
    names, base = result["backends"], result["baseline"]
    others = [n for n in names if n != base]
    thr = result["threads"] if result["threads"] is not None else "solver default"
    versions = ", ".join(f"{n} {result['versions'][n]} (licence: {result['licences'][n]})" for n in names)
    lines = ["# gdsolver bench backends", "",
             f"Backends: {versions}. Instance sets: {', '.join(result['sets'])}.", "",
             "HiGHS solves the big-M lowered form, Gurobi and SCIP native indicators. "
             + " ".join(result.get("notes", {}).values()) + " r: the weight box's radius.", "",
             f"Time limit {result['time_limit_s']:g} s, threads {thr}, relative gap {result['mip_gap']:g}. Cells: "
             "\"solve / wall\" seconds (solve = the solver's run; wall adds building the model); ratios = solve time "
             f"over {base}'s, same run.", "",
             # results from before the runner say here how the cells ran and the load; the runner's footer does now
             machine_line(m, "python") + f"{executor_text(result.get('executor'))}."
             + _load_text(result.get("load_average_1min"), m["cores"]), ""]
    body = []
    for r in result["rows"]:
        key = [r["case"], r.get("mode", "-"), r.get("activation", "-"), r.get("points", "-"), r.get("radius", "-"),
               r.get("seed", "-")]
        cells = [_cell(r["results"].get(n), r["skipped"].get(n)) for n in names]
        bounds = r.get("ratio_bounds", {})
        ratios = [f"{r['ratios'][n]:.2f}" if n in r["ratios"] else
                  f"{'≥' if bounds[n][0] == '>=' else '≤'} {bounds[n][1]:.2f}" if n in bounds else "-" for n in others]
        objs = [v["objective"] for v in r["results"].values() if v["status"] == "OPTIMAL"]
        obj = f"{objs[0]:.6g}" if objs else "-"
        agree = {True: "yes", False: "NO", None: "-"}[r["agree"]]
        body.append(key + [r["variables"], r["rows"], r["indicators"], *cells, *ratios, obj, agree])
    lines += md_table(["case", "mode", "act", "n", "r", "seed", "vars", "rows", "ind", *names,
                       *(f"{n}/{base}" for n in others), "objective", "agree"], body,
                      "lll" + "r" * (6 + len(names) + len(others) + 1) + "l")
    lines += ["", "A cell that stopped at the time limit shows its status, objective and bound; its ratio is then a "
                  f"bound (≥: only {base} finished, ≤: only the other did) and stays out of the means. Objective: the "
                  "proven optimum; agree: every proven optimum equal and no other point or bound contradicting it "
                  "(- when fewer than two backends proved it).", "",
              f"Geometric mean of the solve-time ratio over {base} where both finished (below 1: faster than {base}):"]
    for n in others:
        g = result["geomean_ratio"][n]
        by = "; ".join(f"{k}: {v[n]:.2f}" for k, v in result["geomean_ratio_by_group"].items() if v.get(n))
        lines.append(f"- {n}: {g:.2f} ({by})" if g else f"- {n}: -")
    totals = result["total_solve_s"]
    lines += ["", f"Total solve time over the {result['total_rows']} rows every backend finished (dominated by the "
                  "largest instances, where the geometric mean is dominated by the many small ones): "
              + ", ".join(f"{n} {t:.2f} s" for n, t in totals.items()) + "."]
    skipped = sorted({n for r in result["rows"] for n in r["skipped"]})
    if skipped:
        lines += ["", "Skipped: " + "; ".join(
            f"{n} on {sum(n in r['skipped'] for r in result['rows'])} instances "
            f"(the first: {next(r['skipped'][n] for r in result['rows'] if n in r['skipped'])})" for n in skipped)]
    lines += ["", f"Objectives agree on every row where several backends proved optimality (to {AGREE_RTOL:g} "
                  f"relative): {'yes' if result['all_agree'] else 'NO (' + str(result['disagreements']) + ' rows)'}. "
                  f"Points failing ir.verify: {result['not_verified']}."]
    return lines

