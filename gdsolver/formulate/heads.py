"""Heads: the objective and the constraints a sweep puts on the network's outputs o (T, M),
given as a LinExpr over the instance's variables.

Classification (point t correct when o_t,label - o_t,j >= margin for every j != label):
- `count`, mode "paper": binaries s_tj and c_t; s_tj = 1 => o_tl - o_tj >= margin;
  c_t = 1 => sum_j s_tj >= M - 1; maximise sum c_t (the paper's Figure 3).
- `count`, mode "compact": binaries c_t only; c_t = 1 => o_tl - o_tj >= margin for all j.
  Same optimum, T (M - 1) fewer binaries.
  Both keep at least as many points correct as the current weights (so the start is
  feasible), and `keep` points must stay correct.
Regression:
- `l1`: minimise sum |o - y| with e >= +-(o - y) (an LP when nothing downstream is a ReLU).
- `paper`: feasibility of |o - y| <= max(|o0 - y| - margin, 0) per entry (the paper's Figure 2).
- `squared`: minimise sum (o - y)^2 through tangent cuts e >= 2 a (o - y) - a^2 at anchor
  residuals a (an outer approximation: the surrogate sum e never exceeds the true loss);
  gdsolver.formulate.refine adds the tangents at the last answer's residuals, round by round.
Classification, smooth:
- `ce`: minimise the cross-entropy sum_t logsumexp(o_t) - o_t,label through tangent planes
  of logsumexp at anchor logits p: e_t >= lse(p) + softmax(p).(o_t - p) - o_t,label.
- `count+ce`: the points an answer of `count` made correct are kept correct (their c fixed),
  and among such weights the cross-entropy surrogate is minimised (the second stage of a
  lexicographic solve, as the closest-point LP keeps the decisions and minimises a distance).
"""

from __future__ import annotations

import numpy as np

from gdsolver.formulate.expr import LinExpr, take_difference, triplets, with_term
from gdsolver.ir.instance import BINARY, InstanceBuilder


def correct_mask(o: np.ndarray, labels: np.ndarray, margin: float) -> np.ndarray:
    """Points whose label output beats every other output by at least `margin`."""
    T = o.shape[0]
    true = o[np.arange(T), labels]
    others = o.copy()
    others[np.arange(T), labels] = -np.inf
    return true - others.max(axis=1) >= margin


def label_margins(bld: InstanceBuilder, out: LinExpr, labels: np.ndarray) -> tuple[LinExpr, np.ndarray, np.ndarray]:
    """o_t,label - o_t,j for every pair (t, j != label), row-major in t; with the pairs (t, j)."""
    T, M = out.shape
    t, j = (g.ravel() for g in np.meshgrid(np.arange(T), np.arange(M), indexing="ij"))
    other = j != labels[t]
    t, j = t[other], j[other]
    M = out.shape[1]
    return take_difference(out, t * M + labels[t], t * M + j, bld.var_bounds), t, j


def count(bld: InstanceBuilder, out: LinExpr, labels: np.ndarray, *, margin: float, mode: str,
          keep: np.ndarray, fixed: np.ndarray | None = None) -> dict:
    """The paper's classification head (see module docstring). Returns meta entries. `fixed`
    pins every c_t (the count+ce stage); c then costs nothing (the objective is elsewhere)."""
    T, M = out.shape
    o0 = out.value0.reshape(T, M)
    correct0 = correct_mask(o0, labels, margin)
    diff, t, j = label_margins(bld, out, labels)
    c_lb = np.zeros(T)
    c_lb[keep] = 1.0
    if mode == "paper":
        s_ub = np.ones((T, M))
        s_ub[np.arange(T), labels] = 0.0  # no s for the label itself
        s_start = np.zeros((T, M))
        s_start[t, j] = diff.value0 >= margin
        s = bld.add_block("s", (T, M), lb=0.0, ub=s_ub, vtype=BINARY, start=s_start)
    if fixed is None:
        c = bld.add_block("c", (T,), lb=c_lb, ub=1.0, vtype=BINARY, cost=1.0, start=correct0.astype(float))
    else:
        c = bld.add_block("c", (T,), lb=fixed, ub=fixed, vtype=BINARY, cost=0.0, start=fixed)
    lo = margin - diff.const  # o_l - o_j >= margin  <=>  sum >= margin - const
    if mode == "paper":
        bld.add_indicators("pair_margin", s[t, j], 1, *triplets(diff.cols, diff.vals), lo=lo, hi=np.inf)
        s_cols = s[t, j].reshape(T, M - 1)
        bld.add_indicators("all_pairs", c, 1, *triplets(s_cols, np.ones((T, M - 1))), lo=M - 1, hi=np.inf)
    else:
        bld.add_indicators("margin", c[t], 1, *triplets(diff.cols, diff.vals), lo=lo, hi=np.inf)
    count0 = int(correct0.sum())
    if fixed is None:
        bld.add_rows("no_worse", *triplets(c[None, :], np.ones((1, T))), 1, lo=count0, hi=np.inf)
    return {"current_correct": count0, "current_objective": float(count0),
            "fixed_count": None if fixed is None else int(fixed.sum())}


def l1(bld: InstanceBuilder, out: LinExpr, Y: np.ndarray) -> dict:
    """Minimise sum |o - y| through e >= o - y and e >= y - o."""
    err0 = np.abs(out.value0 - Y.ravel())
    e = bld.add_block("e", out.shape, lb=0.0, cost=1.0, start=err0.reshape(out.shape)).ravel()
    y = Y.ravel() - out.const
    # e - o >= -y  and  e + o >= y   (o = sum + const)
    cols, vals = with_term(out, e, 1.0, first=False)
    neg = vals.copy()
    neg[:, :-1] *= -1.0
    bld.add_rows("fit_above", *triplets(cols, neg), out.size, lo=-y, hi=np.inf)
    bld.add_rows("fit_below", *triplets(cols, vals), out.size, lo=y, hi=np.inf)
    return {"current_objective": float(err0.sum())}


def _variables_of(bld: InstanceBuilder, out: LinExpr) -> LinExpr:
    """out as one variable per entry (cuts over them have a few terms, not a layer's worth)."""
    from gdsolver.formulate.encoders import materialize

    if out.cols.shape[1] == 1 and np.all(out.vals == 1.0) and np.all(out.const == 0.0):
        return out
    return materialize(bld, out, "out")


def squared(bld: InstanceBuilder, out: LinExpr, Y: np.ndarray, anchors: np.ndarray) -> dict:
    """Minimise sum e, e >= 2 a r - a^2 for each anchor residual a (anchors (R, A)), r = o - y."""
    o = _variables_of(bld, out)
    y = Y.ravel()
    r0 = o.value0 - y
    e = bld.add_block("e", out.shape, lb=0.0, cost=1.0, start=(r0 ** 2).reshape(out.shape)).ravel()
    R, A = anchors.shape
    a = anchors.ravel()  # row-major: entry r's anchors are rows r*A .. r*A+A-1
    ent = np.repeat(np.arange(R), A)
    # e - 2a o >= -2a y - a^2
    cols = np.stack([e[ent], o.cols[ent, 0]], 1)
    vals = np.stack([np.ones(R * A), -2.0 * a], 1)
    bld.add_rows("sq_cut", *triplets(cols, vals), R * A, lo=-2.0 * a * y[ent] - a ** 2, hi=np.inf)
    return {"current_objective": float((r0 ** 2).sum()), "current_sse": float((r0 ** 2).sum()),
            "anchors": int(A)}


def lse(p: np.ndarray) -> np.ndarray:
    """logsumexp over the last axis, stable."""
    m = p.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(p - m).sum(axis=-1, keepdims=True)))[..., 0]


def cross_entropy(o: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-point cross-entropy of logits o (T, M)."""
    return lse(o) - o[np.arange(len(o)), labels]


CE_DROP = 1e-7  # tangent-cut coefficients below this are dropped (safely, see ce)


def ce(bld: InstanceBuilder, out: LinExpr, labels: np.ndarray, anchors: np.ndarray) -> dict:
    """Minimise sum_t e_t >= tangent planes of the cross-entropy at anchor logits (T, A, M)."""
    T, M = out.shape
    o = _variables_of(bld, out)
    o0 = o.value0.reshape(T, M)
    ce0 = cross_entropy(o0, labels)
    e = bld.add_block("e", (T,), lb=0.0, cost=1.0, start=ce0)
    A = anchors.shape[1]
    p = anchors.reshape(T * A, M)
    s = np.exp(p - lse(p)[:, None])  # softmax at the anchors
    t = np.repeat(np.arange(T), A)
    rows = np.arange(T * A)
    coef = -s
    # 1 - s_label as the sum of the other classes' shares: no cancellation when s_label ~ 1
    others = s.copy()
    others[rows, labels[t]] = 0.0
    coef[rows, labels[t]] = others.sum(1)
    lo = lse(p) - (s * p).sum(1)
    # a confident network's softmax has shares of 1e-12 and below: terms that small make a row whose
    # coefficients span more than the solvers answer correctly (ir.numerics refuses it). Drop them and
    # lower the row's bound by the most each dropped term can contribute over o's interval (finite:
    # prepare_sweep refuses infinite bounds), so the cut stays below the cross-entropy (valid) and
    # is weaker by at most CE_DROP * (o.hi - o.lo) per dropped term.
    tiny = np.abs(coef) < CE_DROP
    if tiny.any():
        olo, ohi = o.lo.reshape(T, M)[t], o.hi.reshape(T, M)[t]
        most = np.where(tiny, np.maximum(coef * olo, coef * ohi), 0.0)
        lo = lo - most.sum(1)
        coef = np.where(tiny, 0.0, coef)
    # a bound of 1e-15 is below every solver's tolerance: the answer's e = 0 would break the row by
    # more than its own (tiny) scale. 0 is weaker, so still valid, and e >= 0 holds anyway.
    lo = np.where((lo > 0.0) & (lo < CE_DROP), 0.0, lo)
    ocols = o.cols[:, 0].reshape(T, M)[t]
    cols = np.concatenate([e[t][:, None], ocols], 1)
    vals = np.concatenate([np.ones((T * A, 1)), coef], 1)
    # e + o_label - s.o >= lse(p) - s.p
    bld.add_rows("ce_cut", *triplets(cols, vals), T * A, lo=lo, hi=np.inf)
    return {"current_objective": float(ce0.sum()), "current_ce": float(ce0.sum()), "anchors": int(A)}


def paper_regression(bld: InstanceBuilder, out: LinExpr, Y: np.ndarray, *, margin: float) -> dict:
    """Feasibility of |o - y| <= max(|o0 - y| - margin, 0) per entry."""
    err0 = np.abs(out.value0 - Y.ravel())
    max_loss = np.maximum(err0 - margin, 0.0)
    y = Y.ravel() - out.const
    bld.add_rows("fit", *triplets(out.cols, out.vals), out.size, lo=y - max_loss, hi=y + max_loss)
    return {"max_loss_clipped": int(np.count_nonzero(err0 - margin < 0)), "current_objective": 0.0}
