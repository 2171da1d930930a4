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
"""

from __future__ import annotations

import numpy as np

from gdsolver.formulate.expr import LinExpr, difference, triplets, with_term
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
    return difference(out.at(t, labels[t]), out.at(t, j), bld.var_bounds), t, j


def count(bld: InstanceBuilder, out: LinExpr, labels: np.ndarray, *, margin: float, mode: str,
          keep: np.ndarray) -> dict:
    """The paper's classification head (see module docstring). Returns meta entries."""
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
    c = bld.add_block("c", (T,), lb=c_lb, ub=1.0, vtype=BINARY, cost=1.0, start=correct0.astype(float))
    lo = margin - diff.const  # o_l - o_j >= margin  <=>  sum >= margin - const
    if mode == "paper":
        bld.add_indicators("pair_margin", s[t, j], 1, *triplets(diff.cols, diff.vals), lo=lo, hi=np.inf)
        s_cols = s[t, j].reshape(T, M - 1)
        bld.add_indicators("all_pairs", c, 1, *triplets(s_cols, np.ones((T, M - 1))), lo=M - 1, hi=np.inf)
    else:
        bld.add_indicators("margin", c[t], 1, *triplets(diff.cols, diff.vals), lo=lo, hi=np.inf)
    count0 = int(correct0.sum())
    bld.add_rows("no_worse", *triplets(c[None, :], np.ones((1, T))), 1, lo=count0, hi=np.inf)
    return {"current_correct": count0, "current_objective": float(count0)}


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


def paper_regression(bld: InstanceBuilder, out: LinExpr, Y: np.ndarray, *, margin: float) -> dict:
    """Feasibility of |o - y| <= max(|o0 - y| - margin, 0) per entry."""
    err0 = np.abs(out.value0 - Y.ravel())
    max_loss = np.maximum(err0 - margin, 0.0)
    y = Y.ravel() - out.const
    bld.add_rows("fit", *triplets(out.cols, out.vals), out.size, lo=y - max_loss, hi=y + max_loss)
    return {"max_loss_clipped": int(np.count_nonzero(err0 - margin < 0)), "current_objective": 0.0}
