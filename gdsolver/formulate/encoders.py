"""Encoders: each adds one piece of the network to an InstanceBuilder and returns the
piece's outputs as a LinExpr (T, M) with exact intervals over the variable box.

- `swept_dense`: the layer being swept; its weights and bias are variables boxed
  |W - W0| <= r, |b - b0| <= r; a = h W^T + b is linear in them (h is data).
- `fixed_dense`: a later layer; its weights are data, its inputs are variables.
- `relu`: o = max(a, 0), exact. A unit whose interval decides its sign gets no binary
  (dead: o fixed to 0; active: o = a as one row); an undecided one gets a binary z with
      z = 1 => o - a = 0;   z = 0 => a <= 0;   z = 0 => o <= 0
  as indicator constraints (Gurobi/SCIP take them natively, ir.lower makes big-M rows with
  the same intervals for HiGHS), plus the always-valid row o >= a, which the big-M form
  alone does not imply and which tightens the LP relaxation.
- `materialize`: expressions as variables (equality rows), so that a fixed layer reading
  them has one term per input instead of a product of two layers' terms.

Intervals are propagated layer by layer; an infinite one is an error naming the layer and
unit (it would become an infinite big-M).
"""

from __future__ import annotations

import numpy as np

from gdsolver.errors import GdsolverError
from gdsolver.formulate.expr import LinExpr, interval_of, triplets, variables, with_term
from gdsolver.ir.instance import BINARY, InstanceBuilder
from gdsolver.modeldef import Dense, forward_chain


def weight_box(bld: InstanceBuilder, W: np.ndarray, b: np.ndarray, radius: float,
               fix_bias: bool = False, start: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Blocks w (M, N) and b (M,) boxed |w - W0| <= r, |b - b0| <= r, started at W0, b0 (or at
    `start`, a point in the box). fix_bias pins b to b0 (a layer without a bias cannot take one)."""
    Ws, bs = (W, b) if start is None else start
    w = bld.add_block("w", W.shape, lb=W - radius, ub=W + radius, start=Ws)
    bb = bld.add_block("b", b.shape, lb=b - bias_radius(radius, fix_bias), ub=b + bias_radius(radius, fix_bias),
                       start=bs)
    return w, bb


def bias_radius(radius: float, fix_bias: bool) -> float:
    return 0.0 if fix_bias else radius


def swept_dense(bld: InstanceBuilder, H: np.ndarray, W: np.ndarray, b: np.ndarray, w: np.ndarray,
                bb: np.ndarray, radius: float, bias_radius: float,
                centre: tuple[np.ndarray, np.ndarray] | None = None) -> LinExpr:
    """a[t, j] = H[t] . w[j] + b[j] over the weight variables (w, bb) boxed by radius / bias_radius
    around `centre` (default (W, b)); (W, b) is the start point.

    Its interval is exact and closed-form: each term H_tn w_jn moves by radius |H_tn|."""
    T, M = H.shape[0], W.shape[0]
    N = H.shape[1]
    cols = np.empty((T, M, N + 1), np.int64)
    cols[:, :, :N] = w[None, :, :]
    cols[:, :, N] = bb[None, :]
    vals = np.empty((T, M, N + 1))
    vals[:, :, :N] = H[:, None, :]
    vals[:, :, N] = 1.0
    value0 = (H @ W.T + b).ravel()
    Wc, bc = (W, b) if centre is None else centre
    mid = value0 if centre is None else (H @ Wc.T + bc).ravel()
    with np.errstate(over="ignore"):  # an overflow is an infinite bound, reported by check_finite
        spread = np.tile(radius * np.abs(H).sum(axis=1)[:, None] + bias_radius, (1, M)).ravel()
    return LinExpr(cols.reshape(T * M, N + 1), vals.reshape(T * M, N + 1), np.zeros(T * M), mid - spread,
                   mid + spread, value0, (T, M))


def fixed_dense(bld: InstanceBuilder, h: LinExpr, W: np.ndarray, b: np.ndarray, name: str,
                offset: np.ndarray | None = None) -> LinExpr:
    """a[t, j] = W[j] . h[t] + b[j] (+ offset[t, j]) with W, b data; h is made of variables first if
    it is not. offset (T, M): a per-point constant, the part of the previous layer held fixed (a
    block sweep's fixed units: their outputs are data, not variables)."""
    if h.cols.shape[1] != 1 or np.any(h.vals != 1.0) or np.any(h.const != 0.0):
        h = materialize(bld, h, f"{name}_in")
    T, Mp = h.shape
    M = W.shape[0]
    ids = h.cols[:, 0].reshape(T, Mp)
    cols = np.broadcast_to(ids[:, None, :], (T, M, Mp)).reshape(T * M, Mp)
    vals = np.broadcast_to(W[None, :, :], (T, M, Mp)).reshape(T * M, Mp).copy()
    # inputs fixed at 0 (dead ReLU units) contribute nothing: drop their terms
    lb, ub = bld.var_bounds(ids)
    dead = ((lb == 0.0) & (ub == 0.0))
    vals[np.broadcast_to(dead[:, None, :], (T, M, Mp)).reshape(T * M, Mp)] = 0.0
    const = np.broadcast_to(b[None, :], (T, M)).ravel().astype(np.float64)
    value0 = (h.value0.reshape(T, Mp) @ W.T + b).ravel()
    if offset is not None:
        off = np.asarray(offset, np.float64).reshape(T * M)
        const, value0 = const + off, value0 + off
    lo, hi = interval_of(vals, const, cols, bld.var_bounds)
    return LinExpr(cols, vals, const, lo, hi, value0, (T, M))


def materialize(bld: InstanceBuilder, e: LinExpr, name: str) -> LinExpr:
    """Variables v = e (one equality row each), bounded by e's interval."""
    v = bld.add_block(name, e.shape, lb=e.lo.reshape(e.shape), ub=e.hi.reshape(e.shape),
                      start=e.value0.reshape(e.shape))
    cols, vals = with_term(e, v.ravel(), -1.0)  # e - v = 0  <=>  sum - v = -const
    bld.add_rows(f"{name}_def", *triplets(cols, vals), e.size, lo=-e.const, hi=-e.const)
    return variables(v, e.lo, e.hi, e.value0)


def relu(bld: InstanceBuilder, a: LinExpr, name: str, z_name: str) -> tuple[LinExpr, dict]:
    """o = max(a, 0) as variables `name` (shape of a) and binaries `z_name` (one per undecided
    unit). Returns the outputs and counts {units, binaries, active, dead}."""
    dead = a.hi <= 0.0
    active = (a.lo >= 0.0) & ~dead
    undecided = ~dead & ~active
    o_lo, o_hi = np.maximum(a.lo, 0.0), np.maximum(a.hi, 0.0)
    o0 = np.maximum(a.value0, 0.0)
    o = bld.add_block(name, a.shape, lb=o_lo.reshape(a.shape), ub=o_hi.reshape(a.shape), start=o0.reshape(a.shape))
    of = o.ravel()
    # active: o - a = 0, i.e. o - sum = const
    ra = np.flatnonzero(active)
    if len(ra):
        e = a.take(ra)
        cols, vals = _o_minus_a(e, of[ra])
        bld.add_rows(f"{name}_active", *triplets(cols, vals), len(ra), lo=e.const, hi=e.const)
    ru = np.flatnonzero(undecided)
    if len(ru):
        e = a.take(ru)
        z = bld.add_block(z_name, (len(ru),), lb=0.0, ub=1.0, vtype=BINARY,
                          start=(e.value0 > 0).astype(np.float64))
        o_minus_a = triplets(*_o_minus_a(e, of[ru]))
        # o >= a always (valid for every unit; not implied by the big-M rows of the indicators)
        bld.add_rows(f"{name}_ge", *o_minus_a, len(ru), lo=e.const, hi=np.inf)
        bld.add_indicators(f"{name}_on", z, 1, *o_minus_a, lo=e.const, hi=e.const)
        bld.add_indicators(f"{name}_off_a", z, 0, *triplets(e.cols, e.vals), lo=-np.inf, hi=-e.const)
        bld.add_indicators(f"{name}_off_o", z, 0, *triplets(of[ru][:, None], np.ones((len(ru), 1))), lo=-np.inf, hi=0.0)
    counts = {"units": int(a.size), "binaries": int(len(ru)), "active": int(len(ra)), "dead": int(dead.sum())}
    return variables(o, o_lo, o_hi, o0), counts


def _o_minus_a(a: LinExpr, o: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cols, vals) of o - (a - const): the rows o - a = 0 read o - sum = const."""
    cols, vals = with_term(a, o, 1.0)
    vals = vals.copy()
    vals[:, 1:] *= -1.0
    return cols, vals


def check_finite(e: LinExpr, what: str) -> None:
    """Intervals must be finite: an infinite one would be an infinite big-M (or a huge one)."""
    bad = ~(np.isfinite(e.lo) & np.isfinite(e.hi) & np.isfinite(e.value0))
    if np.any(bad):
        r = int(np.argmax(bad))
        t, j = np.unravel_index(r, e.shape) if len(e.shape) == 2 else (r, 0)
        raise GdsolverError(f"{what}: unit {int(j)} has an infinite interval bound [{e.lo[r]}, {e.hi[r]}] over the "
                            f"weight box (point {int(t)}); scale the data or the weights down")


def encode_chain(bld: InstanceBuilder, layers: list[Dense], k: int, H: np.ndarray,
                 start: tuple[np.ndarray, np.ndarray], radius: float, fix_bias: bool, units: np.ndarray | None = None,
                 bounds: dict[int, tuple[np.ndarray, np.ndarray]] | None = None) -> tuple[LinExpr, list[dict]]:
    """Layer k of `layers` swept in its box (its weights at `start`), every later layer fixed: the
    network's outputs over the box, and the ReLU binaries' counts per layer. With units (a block),
    only those units of layer k are encoded; the others' outputs are data, added to layer k + 1 as
    a per-point constant. bounds: tightened pre-activation bounds by layer (formulate.tighten)."""
    swept = layers[k]
    W0, b0 = (swept.W, swept.b) if units is None else (swept.W[units], swept.b[units])
    w, bb = weight_box(bld, W0, b0, radius, fix_bias, start=start)
    out = swept_dense(bld, H, *start, w, bb, radius, bias_radius(radius, fix_bias), centre=(W0, b0))
    offset = None
    if units is not None:  # the fixed units' outputs, through layer k + 1's weights
        fixed = np.setdiff1d(np.arange(swept.M), units)
        o_fixed = forward_chain([Dense(swept.W[fixed], swept.b[fixed], swept.activation)], H)
        offset = o_fixed @ layers[k + 1].W[:, fixed].T
    relus = []
    for j in range(k, len(layers)):
        layer = layers[j]
        if j == k + 1 and units is not None:
            out = fixed_dense(bld, out, layer.W[:, units], layer.b, f"a{j}", offset=offset)
        elif j > k:
            out = fixed_dense(bld, out, layer.W, layer.b, f"a{j}")
        if bounds and j in bounds:  # tightened bounds (LP): they hold over the box, so intersect
            out.lo = np.maximum(out.lo, np.ravel(bounds[j][0]))
            out.hi = np.minimum(out.hi, np.ravel(bounds[j][1]))
        check_finite(out, f"layer {j}" + (f" ({layer.name})" if layer.name else ""))
        if layer.activation == "relu":
            out, counts = relu(bld, out, f"o{j}", f"z{j}")
            relus.append({"layer": j, **counts})
    return out, relus
