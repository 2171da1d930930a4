"""LP bounds of a sweep's later pre-activations, before the MIP (as MIPVerify tightens per unit).

A sweep of layer k encodes every ReLU from layer k on; a unit whose interval over the weight box
straddles 0 needs a binary. Interval bounds are exact for layers k and k + 1: a unit of layer k is
one linear form over its own boxed weights, and the units of layer k + 1 add up layer k's units,
which depend on disjoint weights (the rows of layer k), so each term takes its extremes
independently. From layer k + 2 on, the units of layer k + 1 share those weights and the interval
sum over-approximates; there the bound of a_j[t, u] is tightened to the optimum of the LP
relaxation of point t's network (the weight box, the ReLUs of the layers before j as big-M rows
with their binaries relaxed): min and max of a_j[t, u], two LPs per undecided unit, warm-started
on one HiGHS model per point and layer. A unit the LP decides (max <= 0 or min >= 0) loses its
binary. Each LP bound holds for every point of the sweep's instance (it relaxes a superset of its
rows), widened by LP_SAFETY for the solver's tolerances; the time cap stops between LPs (the
units left keep their interval bounds).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from gdsolver.formulate.encoders import encode_chain
from gdsolver.ir.instance import CONTINUOUS, InstanceBuilder
from gdsolver.modeldef import Dense

LP_SAFETY = 1e-6  # relative widening of an LP bound (HiGHS's primal/dual tolerances are 1e-7)

Bounds = dict[int, tuple[np.ndarray, np.ndarray]]  # chain layer -> (lo, hi) of its pre-activations, (T, M)


def lp_bounds(layers: Sequence[Dense], k: int, H: np.ndarray, start: tuple[np.ndarray, np.ndarray], radius: float,
              fix_bias: bool, units: np.ndarray | None, *, time_limit: float) -> tuple[Bounds, dict]:
    """Tightened (lo, hi) of the pre-activations of every ReLU layer j >= k + 2 (see the module
    docstring), and a report: candidates (undecided units by interval), lp_solves, decided (units
    the LPs decide), binaries_before / binaries_after for those layers, time_s, complete (every
    candidate was tried within time_limit seconds)."""
    from gdsolver.compile.highs import build_highs

    t0 = time.perf_counter()
    deadline = t0 + float(time_limit)
    T = H.shape[0]
    bounds: Bounds = {}
    rep = {"candidates": 0, "lp_solves": 0, "decided": 0, "time_s": 0.0, "complete": True}
    for j in range(k + 2, len(layers)):
        if layers[j].activation != "relu":
            continue
        M = layers[j].M
        lo, hi = np.full((T, M), -np.inf), np.full((T, M), np.inf)
        sub = [*layers[:j], Dense(layers[j].W, layers[j].b, "identity", layers[j].name)]
        done = 0
        for t in range(T):
            if time.perf_counter() >= deadline:
                rep["complete"] = False
                break
            done = t + 1
            bld = InstanceBuilder()
            prior = {i: (b[0][t:t + 1], b[1][t:t + 1]) for i, b in bounds.items()}
            a, _ = encode_chain(bld, sub, k, H[t:t + 1], start, radius, fix_bias, units, bounds=prior)
            lo[t], hi[t] = a.lo, a.hi
            todo = np.flatnonzero((a.lo < 0) & (a.hi > 0))
            rep["candidates"] += len(todo)
            if len(todo) == 0:
                continue
            inst = bld.build("min")
            h, low = build_highs(inst)
            ints = np.flatnonzero(low.vtype != CONTINUOUS).astype(np.int32)  # relaxed: the LP
            h.changeColsIntegrality(len(ints), ints, np.zeros(len(ints), np.uint8))
            for u in todo:
                left = deadline - time.perf_counter()
                if left <= 0:
                    rep["complete"] = False
                    break
                h.setOptionValue("time_limit", left)
                got = _extremes(h, a.cols[u], a.vals[u], inst.num_vars)
                rep["lp_solves"] += 2
                if got is None:
                    continue
                vmin, vmax = got
                pad = LP_SAFETY * (1.0 + max(abs(vmin), abs(vmax)))
                lo[t, u] = max(lo[t, u], a.const[u] + vmin - pad)
                hi[t, u] = min(hi[t, u], a.const[u] + vmax + pad)
                rep["decided"] += bool(hi[t, u] <= 0.0 or lo[t, u] >= 0.0)
        if done < T:  # the points the cap left: their interval bounds, in one build (finite, storable)
            rest = slice(done, T)
            a, _ = encode_chain(InstanceBuilder(), sub, k, H[rest], start, radius, fix_bias, units,
                                bounds={i: (b[0][rest], b[1][rest]) for i, b in bounds.items()})
            lo[rest], hi[rest] = a.lo.reshape(T - done, M), a.hi.reshape(T - done, M)
        bounds[j] = (lo, hi)
    rep["time_s"] = time.perf_counter() - t0
    return bounds, rep


def _extremes(h, cols: np.ndarray, vals: np.ndarray, n: int) -> tuple[float, float] | None:
    """(min, max) of vals . x[cols] over the model in h (its objective set to that form, then reset);
    None unless both LPs are solved to optimality."""
    import highspy

    keep = vals != 0.0
    idx = np.asarray(cols[keep], np.int32)
    out = []
    h.changeColsCost(len(idx), idx, np.asarray(vals[keep], np.float64))
    try:
        for sense in (highspy.ObjSense.kMinimize, highspy.ObjSense.kMaximize):
            h.changeObjectiveSense(sense)
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                return None
            out.append(float(h.getInfo().objective_function_value))
    finally:
        h.changeColsCost(len(idx), idx, np.zeros(len(idx)))
    return out[0], out[1]


def bounds_data(bounds: Bounds, k: int) -> dict[str, np.ndarray]:
    """The bounds as an instance's data arrays, numbered from the swept layer like W{j}."""
    out = {}
    for j, (lo, hi) in bounds.items():
        out[f"lp_lo{j - k}"], out[f"lp_hi{j - k}"] = lo, hi
    return out


def bounds_of(data: dict[str, np.ndarray]) -> Bounds | None:
    """The bounds an instance carries (bounds_data), keyed by its chain (swept layer 0)."""
    got = {int(key[5:]): (data[key], data["lp_hi" + key[5:]]) for key in data if key.startswith("lp_lo")}
    return got or None
