"""`gdsolver bench compile`: time to build an instance and pass it to HiGHS.

Bulk path (gdsolver): formulate.regression (numpy) -> ir.lower -> one passModel
call from the CSR arrays. Baseline, measured in the same run: the same LP built
element by element with highspy's modelling API (addVariable / addConstr with
expressions), the way a straightforward script would. Both are checked to hold
the same number of nonzeros, and at the smallest size to have the same optimum.
The instance is the regression l1 LP of a final layer with M outputs and N
features over T points: nnz = 2 T M (N + 2).

SCIP (when pyscipopt is installed): the same instances through build_scip, and, at
one size, the ways pyscipopt offers to load rows, timed in the same run (it has no
call that takes a sparse matrix): one addCoefLinear call per nonzero after the row's
first term (what build_scip does), a {Term: coefficient} expression per row, and an
MPS file written by HiGHS and read by SCIP.

Hidden-layer sweeps: sweep_instance against one CSR build of the same nonzeros.

Three kinds of cell, one bench: "size" (one T: bulk, per-element and SCIP builds), "scip-routes"
(the row-loading routes at one T) and "hidden" (one hidden-layer sweep); each is timed best of
`repeats` runs, after one warm-up of the builders before the first size cell."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gdsolver.bench.machine import machine_line
from gdsolver.bench.plots import md_table
from gdsolver.bench.runner import Bench, Skip, run_bench
from gdsolver.compile.highs import build_highs, new_highs
from gdsolver.formulate import regression

M_OUT, N_FEAT = 10, 100
PER_ELEMENT_SIZES = (10, 50, 150)  # T; the per-element path takes seconds here already
BULK_SIZES = (10, 50, 150, 1000, 2500, 5000)
QUICK_SIZES = (10, 50)


def _layer(T: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    H = np.maximum(rng.normal(size=(T, N_FEAT)), 0) + 0.01  # dense features (no zeros dropped)
    W = rng.normal(size=(M_OUT, N_FEAT))
    b = rng.normal(size=M_OUT)
    Y = H @ W.T + b + rng.normal(scale=0.1, size=(T, M_OUT))
    return W, b, H, Y


def bulk_build(T: int, radius: float = 0.05):
    W, b, H, Y = _layer(T)
    t0 = time.perf_counter()
    inst = regression(W, b, H, Y, radius=radius, mode="l1")
    t1 = time.perf_counter()
    h, _ = build_highs(inst)
    t2 = time.perf_counter()
    return h, {"formulate_s": t1 - t0, "pass_s": t2 - t1, "total_s": t2 - t0, "nnz": int(h.getNumNz())}


def scip_build(T: int, radius: float = 0.05):
    from gdsolver.compile.scip import build_scip

    W, b, H, Y = _layer(T)
    t0 = time.perf_counter()
    inst = regression(W, b, H, Y, radius=radius, mode="l1")
    t1 = time.perf_counter()
    m, _ = build_scip(inst)
    t2 = time.perf_counter()
    return m, {"formulate_s": t1 - t0, "build_s": t2 - t1, "total_s": t2 - t0, "nnz": int(inst.A.nnz)}


def scip_row_routes(T: int) -> dict[str, float]:
    """Seconds to load the rows of the T-point instance into pyscipopt three ways
    (variables created beforehand, not timed)."""
    import os
    import tempfile

    import pyscipopt as ps
    from pyscipopt.scip import Expr, ExprCons, Term

    W, b, H, Y = _layer(T)
    inst = regression(W, b, H, Y, radius=0.05, mode="l1")
    A, lo, hi = inst.A, inst.row_lo.tolist(), inst.row_hi.tolist()
    side = lambda v: v if np.isfinite(v) else None  # noqa: E731

    def model():
        m = ps.Model()
        m.hideOutput()
        xs = [m.addVar(lb=None, ub=None) for _ in range(inst.num_vars)]
        return m, xs

    out: dict[str, float] = {}
    m, xs = model()
    var_of = np.empty(len(xs), dtype=object)
    var_of[:] = xs
    cols, vals, ptr = var_of[A.indices].tolist(), A.data.tolist(), A.indptr.tolist()
    t = time.perf_counter()
    for r in range(A.nrows):
        s, e = ptr[r], ptr[r + 1]
        c = m.addCons(ExprCons(Expr({Term(cols[s]): vals[s]}), lhs=side(lo[r]), rhs=side(hi[r])))
        for k in range(s + 1, e):
            m.addCoefLinear(c, cols[k], vals[k])
    out["addCoefLinear per nonzero"] = time.perf_counter() - t
    m, xs = model()
    terms = np.empty(len(xs), dtype=object)
    terms[:] = [Term(v) for v in xs]
    tl = terms[A.indices].tolist()
    t = time.perf_counter()
    for r in range(A.nrows):
        s, e = ptr[r], ptr[r + 1]
        m.addCons(ExprCons(Expr(dict(zip(tl[s:e], vals[s:e]))), lhs=side(lo[r]), rhs=side(hi[r])))
    out["expression dict per row"] = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        h, _ = build_highs(inst)
        h.writeModel(os.path.join(d, "m.mps"))
        m = ps.Model()
        m.hideOutput()
        m.readProblem(os.path.join(d, "m.mps"))
        out["MPS file (HiGHS writes, SCIP reads; incl. variables)"] = time.perf_counter() - t
    return out


def per_element_build(T: int, radius: float = 0.05):
    """The same LP through highspy's modelling API, one coefficient at a time."""
    W, b, H, Y = _layer(T)
    t0 = time.perf_counter()
    h = new_highs()
    w = [[h.addVariable(lb=W[j, n] - radius, ub=W[j, n] + radius) for n in range(N_FEAT)] for j in range(M_OUT)]
    bb = [h.addVariable(lb=b[j] - radius, ub=b[j] + radius) for j in range(M_OUT)]
    e = [[h.addVariable(lb=0.0, obj=1.0) for _ in range(M_OUT)] for _ in range(T)]
    for t in range(T):
        for j in range(M_OUT):
            a = bb[j] + 0.0
            for n in range(N_FEAT):
                a += H[t, n] * w[j][n]
            h.addConstr(e[t][j] - a >= -Y[t, j])
            h.addConstr(e[t][j] + a >= Y[t, j])
    t1 = time.perf_counter()
    return h, {"total_s": t1 - t0, "nnz": int(h.getNumNz())}


def best_of(fn: Callable, T: int, repeats: int):
    """Fastest of `repeats` runs (timeit's rule: slower runs measure interference,
    e.g. first-touch page faults, not the code)."""
    runs = [fn(T) for _ in range(repeats)]
    return min(runs, key=lambda r: r[1]["total_s"])


def _optimum(h) -> float:
    h.run()
    return float(h.getInfo().objective_function_value)


def _has_scip() -> bool:
    try:
        import pyscipopt  # noqa: F401
    except ImportError:
        return False
    return True


def _size_row(T: int, repeats: int, per_element: bool, check_optimum: bool, scip: bool) -> dict[str, Any]:
    """One size: the bulk build, and the per-element and SCIP builds where asked (the same
    nonzeros, and at the first per-element size the same optimum, checked)."""
    h, bulk = best_of(bulk_build, T, repeats)
    row = {"kind": "size", "T": T, "M": M_OUT, "N": N_FEAT, "nnz": bulk["nnz"], "bulk_s": bulk["total_s"],
           "bulk_formulate_s": bulk["formulate_s"], "bulk_pass_s": bulk["pass_s"],
           "bulk_nnz_per_s": bulk["nnz"] / bulk["total_s"]}
    if per_element:
        h2, per = best_of(per_element_build, T, repeats)
        if per["nnz"] != bulk["nnz"]:
            raise RuntimeError(f"T={T}: per-element model has {per['nnz']} nonzeros, bulk {bulk['nnz']}")
        if check_optimum:
            o1, o2 = _optimum(h), _optimum(h2)
            if not np.isclose(o1, o2, rtol=1e-7, atol=1e-7):
                raise RuntimeError(f"T={T}: optima differ: bulk {o1} vs per-element {o2}")
            row["same_optimum_checked"] = o1
        row.update(per_element_s=per["total_s"], per_element_nnz_per_s=per["nnz"] / per["total_s"],
                   speedup=per["total_s"] / bulk["total_s"])
    if scip:
        _, sc = best_of(scip_build, T, repeats)
        row.update(scip_s=sc["total_s"], scip_nnz_per_s=sc["nnz"] / sc["total_s"],
                   scip_over_bulk=sc["total_s"] / bulk["total_s"])
    return row


def _routes_row(T: int, repeats: int) -> dict[str, Any]:
    if not _has_scip():
        raise Skip("pyscipopt is not installed")
    routes: dict[str, float] = {}
    for _ in range(repeats):  # best of `repeats`, like the sizes
        for k, v in scip_row_routes(T).items():
            routes[k] = min(v, routes.get(k, float("inf")))
    return {"kind": "scip-routes", "T": T, "nnz": 2 * T * M_OUT * (N_FEAT + 2), "seconds": routes}


def _describe(r: dict[str, Any]) -> str:
    if r["kind"] == "scip-routes":
        return f"SCIP rows, T={r['T']}: " + "; ".join(f"{k}: {v:.3f} s ({v / r['nnz'] * 1e9:.0f} ns/nnz)"
                                                     for k, v in r["seconds"].items())
    if r["kind"] == "hidden":
        return (f"{r['case']}: nnz={r['nnz']} build {r['build_s']:.4f} s; one scipy CSR build {r['csr_s']:.5f} s "
                f"(ratio {r['ratio']:.1f}x); presorted floor {r['sorted_floor_s']:.5f} s ({r['ratio_floor']:.0f}x)")
    return (f"T={r['T']:>5} nnz={r['nnz']:>9}  bulk {r['bulk_s']:.4f} s ({r['bulk_nnz_per_s'] / 1e6:.1f} M nnz/s)"
            + (f"  per-element {r['per_element_s']:.3f} s  speedup {r['speedup']:.0f}x" if "speedup" in r else "")
            + (f"  scip {r['scip_s']:.3f} s ({r['scip_over_bulk']:.0f}x bulk)" if "scip_s" in r else ""))


def compile_bench(quick: bool = False, repeats: int = 3) -> Bench:
    """The cells: a "size" cell per T, one "scip-routes" cell, a "hidden" cell per sweep case;
    how one is measured: `_size_row`, `_routes_row`, `_hidden_row`."""
    per_sizes = QUICK_SIZES if quick else PER_ELEMENT_SIZES
    scip_sizes = QUICK_SIZES if quick else BULK_SIZES[:-1]  # SCIP takes ~10 s at the largest
    scip = _has_scip()
    cells = [{"kind": "size", "T": T} for T in (QUICK_SIZES if quick else BULK_SIZES)]
    cells += [{"kind": "scip-routes", "T": QUICK_SIZES[-1] if quick else 150}]
    cells += [{"kind": "hidden", "model": m} for m in HIDDEN_MODELS]
    warm: list[bool] = []

    def run_cell(cell: dict[str, Any]) -> dict[str, Any]:
        if cell["kind"] == "scip-routes":
            return _routes_row(cell["T"], repeats)
        if cell["kind"] == "hidden":
            return _hidden_row(cell["model"], quick, repeats)
        if not warm:  # imports and HiGHS's first construction are not build time
            bulk_build(QUICK_SIZES[0])
            per_element_build(QUICK_SIZES[0])
            warm.append(True)
        T = cell["T"]
        return _size_row(T, repeats, T in per_sizes, T == per_sizes[0], scip and T in scip_sizes)

    meta = {"instance": "regression l1 LP (formulate + lower + passModel)",
            "timing": f"best of {repeats} runs per size and path"}
    return Bench("compile", cells, run_cell, report, meta=meta, describe=_describe, header=False)


def run_compile_bench(out_dir: str | Path = "benchmarks/results", quick: bool = False,
                      echo: Callable = print, repeats: int = 3, tick: Callable | None = None) -> dict:
    return run_bench(compile_bench(quick, repeats), out_dir, "compile-quick" if quick else "compile", echo=echo,
                     tick=tick)


HIDDEN_MODELS = ("digits-mlp", "paper-model")


def _hidden_case(model: str, quick: bool) -> tuple[str, list, int, np.ndarray, np.ndarray, str]:
    """(name, layers, k, H, y, task): a sweep of a hidden layer with the layers after it encoded."""
    from gdsolver.data import load_split
    from gdsolver.formulate import Dense

    rng = np.random.default_rng(0)  # both models drawn from one stream, in this order, as they always were
    mlp = [Dense(rng.normal(scale=0.2, size=(32, 64)), rng.normal(scale=0.1, size=32), "relu"),
           Dense(rng.normal(scale=0.3, size=(10, 32)), rng.normal(scale=0.1, size=10), "identity")]
    paper = [Dense(rng.normal(size=(2, 3)), rng.normal(size=2), "relu"), Dense(rng.normal(size=(2, 2)), np.zeros(2))]
    if model == "digits-mlp":
        Xd, yd = load_split("digits", seed=0).train
        return ("digits MLP 64-32-10, layer 0 (32x64), 32 points, count", mlp, 0, Xd[:32].astype(float), yd[:32],
                "classification")
    Xp, yp = load_split("polynomial", seed=0).train
    n = 100 if quick else len(Xp)
    return f"paper model 3-2-2, layer 0 (2x3), {n} points, l1", paper, 0, Xp[:n].astype(float), yp[:n], "regression"


def _hidden_row(model: str, quick: bool, repeats: int) -> dict[str, Any]:
    """A hidden-layer sweep: sweep_instance time against one CSR build of the same nonzeros in the
    same run: scipy.sparse.csr_matrix((data, (row, col))) (the usual numpy-stack CSR build: the
    target is <= 10x of it), and the floor, our Csr.from_coo on triplets already sorted by row."""
    import scipy.sparse as sp

    from gdsolver.formulate import sweep_instance
    from gdsolver.ir.csr import Csr

    name, layers, k, H, y, task = _hidden_case(model, quick)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        inst = sweep_instance(layers, k, H, y, task=task, radius=0.05)
        times.append(time.perf_counter() - t0)
    coo = [(m.row_ids(), m.indices.astype(np.int64), m.data, m.nrows) for m in (inst.A, inst.ind_A)]
    floor, scipy_t = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for r, c, v, nr in coo:
            Csr.from_coo(r, c, v, nr, inst.num_vars)
        floor.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for r, c, v, nr in coo:
            sp.csr_matrix((v, (r, c)), shape=(nr, inst.num_vars))
        scipy_t.append(time.perf_counter() - t0)
    nnz = inst.A.nnz + inst.ind_A.nnz
    return {"kind": "hidden", "model": model, "case": name, "nnz": int(nnz), "variables": inst.num_vars,
            "binaries": inst.num_integer, "build_s": min(times), "csr_s": min(scipy_t),
            "ratio": min(times) / min(scipy_t), "sorted_floor_s": min(floor), "ratio_floor": min(times) / min(floor)}


def _parts(doc: dict[str, Any]) -> tuple[list[dict], dict[str, Any], list[dict]]:
    """The size rows, the SCIP row routes and the hidden-layer rows of a result document (one
    written before the runner kept the last two beside the rows)."""
    rows = doc["rows"]
    routes = next((r for r in rows if r.get("kind") == "scip-routes"), doc.get("scip_row_routes", {"seconds": {}}))
    return ([r for r in rows if r.get("kind", "size") == "size"], routes,
            [r for r in rows if r.get("kind") == "hidden"] + doc.get("hidden_layer_rows", []))


def report(result: dict) -> list[str]:
    """The report of a run's result document, as lines."""
    m = result["machine"]
    sizes, routes, hidden = _parts(result)
    lines = [
        "# gdsolver bench compile", "",
        f"Instance: {result['instance']}; M = {M_OUT} outputs, N = {N_FEAT} features, T points, nnz = 2 T M (N + 2).",
        "Baseline (same run): the same LP built element by element with highspy's modelling API.",
        f"Timing: {result['timing']}.", "",
        machine_line(m, "python", "numpy", "highspy", platform=True), "",
    ]
    body = []
    for r in sizes:
        pe = ([f"{r['per_element_s']:.3f}", f"{r['per_element_nnz_per_s'] / 1e6:.3f}", f"{r['speedup']:.0f}x"]
              if "speedup" in r else ["-"] * 3)
        sc = ([f"{r['scip_s']:.3f}", f"{r['scip_nnz_per_s'] / 1e6:.2f}", f"{r['scip_over_bulk']:.0f}x"]
              if "scip_s" in r else ["-"] * 3)
        body.append([r["T"], r["nnz"], f"{r['bulk_s']:.4f}", f"{r['bulk_nnz_per_s'] / 1e6:.2f}", *pe, *sc])
    lines += md_table(["T", "nnz", "bulk (s)", "bulk M nnz/s", "per-element (s)", "per-element M nnz/s", "speedup",
                       "SCIP build (s)", "SCIP M nnz/s", "SCIP / bulk"], body, "r" * 10)
    if routes["seconds"]:
        lines += ["", f"SCIP (pyscipopt has no sparse-matrix call): loading the rows of the T = {routes['T']} instance "
                      f"({routes['nnz']} nonzeros) into a model whose variables exist, same run:", ""]
        lines += md_table(["route", "seconds", "ns per nonzero"],
                          [[k, f"{v:.3f}", f"{v / routes['nnz'] * 1e9:.0f}"] for k, v in routes["seconds"].items()])
    lines += ["", "## Hidden-layer sweeps", "",
              "sweep_instance (formulate the swept layer, the ReLUs and the layers after it, the head) against one "
              "CSR build of the same nonzeros, same run: scipy.sparse.csr_matrix((data, (row, col))) (target <= 10x), "
              "and the floor, Csr.from_coo on triplets already sorted by row (bincount + cumsum).", ""]
    lines += md_table(["case", "nnz", "variables", "binaries", "build (s)", "scipy CSR build (s)", "ratio",
                       "presorted floor (s)", "ratio"],
                      [[r["case"], r["nnz"], r["variables"], r["binaries"], f"{r['build_s']:.4f}", f"{r['csr_s']:.5f}",
                        f"{r['ratio']:.1f}x", f"{r['sorted_floor_s']:.5f}", f"{r['ratio_floor']:.0f}x"]
                       for r in hidden])
    return lines
