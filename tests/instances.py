"""Seeded instances shared by the backend tests (contract, parity, CLI)."""

from __future__ import annotations

import numpy as np

from gdsolver.formulate import classification, forward, regression
from gdsolver.ir import BINARY, InstanceBuilder, MilpInstance, lower


def layer(seed: int, T: int, N: int, M: int):
    rng = np.random.default_rng(seed)
    return rng, rng.normal(size=(M, N)), rng.normal(size=M), rng.normal(size=(T, N))


def two_var(vtype: int, *, unbounded: bool = False, infeasible: bool = False) -> MilpInstance:
    """max x0 + x1 s.t. x0 - x1 <= 1, x >= 0 (unbounded);  or x in [0, 1], x0 + x1 >= 3
    (infeasible)."""
    bld = InstanceBuilder()
    if unbounded:
        x = bld.add_block("x", (2,), lb=0.0, vtype=vtype, cost=1.0)
        bld.add_rows("r", np.array([0, 0]), x, np.array([1.0, -1.0]), 1, lo=-np.inf, hi=1.0)
        return bld.build("max")
    assert infeasible
    x = bld.add_block("x", (2,), lb=0.0, ub=1.0, vtype=vtype, cost=1.0)
    bld.add_rows("r", np.array([0, 0]), x, np.array([1.0, 1.0]), 1, lo=3.0, hi=np.inf)
    return bld.build("min")


def small_instances() -> dict[str, MilpInstance]:
    """One small instance of every formulation (all well inside Gurobi's free licence)."""
    rng, W, b, H = layer(0, 10, 2, 3)
    Y = rng.normal(size=(10, 3))
    labels = rng.integers(0, 3, 10)
    Wt = W + rng.uniform(-0.05, 0.05, W.shape)
    out = {}
    for act in ("identity", "relu"):
        out[f"reg-l1-{act}"] = regression(W, b, H, Y, radius=0.4, activation=act)
        Yx = np.maximum(H @ Wt.T + b, 0) if act == "relu" else H @ Wt.T + b
        out[f"reg-paper-{act}"] = regression(W, b, H, Yx, radius=0.2, activation=act, mode="paper", margin=0.005)
        out[f"reg-paper-infeasible-{act}"] = regression(W, b, H, Y, radius=0.1, activation=act, mode="paper",
                                                        margin=1e3)
        for mode in ("paper", "compact"):
            out[f"class-{mode}-{act}"] = classification(W, b, H, labels, radius=0.5, activation=act, mode=mode)
    return out


def hard_instance() -> MilpInstance:
    """A classification sweep far from solved in seconds by any backend (Gurobi needs
    far more than 20 s), with a MIP start; within the pip licence: 210 variables, 901
    constraints."""
    rng = np.random.default_rng(5)
    T, N, M = 100, 10, 10
    W, b, H = rng.normal(size=(M, N)), rng.normal(size=M), rng.normal(size=(T, N))
    return classification(W, b, H, rng.integers(0, M, T), radius=1.0, mode="compact")


def market_split(m: int = 5, seed: int = 0, with_start: bool = False) -> tuple[MilpInstance, np.ndarray]:
    """Cornuejols-Dawande market split: m equality rows over 10(m-1) binaries with
    coefficients in 0..99, made feasible by a planted point x*. Finding any feasible
    point is very hard (measured, m=5: no backend found one in 15 s without a start),
    so a solve without the start ends with no point, and one with it shows the start
    was used. Returns (instance, x*)."""
    n = 10 * (m - 1)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 100, size=(m, n)).astype(float)
    xs = (rng.random(n) < 0.5).astype(float)
    rhs = a @ xs
    bld = InstanceBuilder()
    x = bld.add_block("x", (n,), lb=0, ub=1, vtype=BINARY, cost=rng.integers(0, 10, n).astype(float),
                      start=xs if with_start else None)
    r, c = np.nonzero(np.ones((m, n)))
    bld.add_rows("split", r, x[c], a[r, c], m, lo=rhs, hi=rhs)
    return bld.build("min"), xs


def big_instance() -> MilpInstance:
    """2408 variables, 4800 rows: over Gurobi's pip licence."""
    rng, W, b, H = layer(2, 1200, 3, 2)
    return regression(W, b, H, rng.normal(size=(1200, 2)), radius=0.3)


# ---- the seeded parity set: 4 kinds x 2 activations x 7 seeds = 56 instances
KINDS = [("regression", "l1"), ("regression", "paper"), ("classification", "paper"),
         ("classification", "compact")]
ACTIVATIONS = ("identity", "relu")
SEEDS = range(7)
CASES = [(task, mode, act, seed) for task, mode in KINDS for act in ACTIVATIONS for seed in SEEDS]


def make_instance(task: str, mode: str, act: str, seed: int, T: int | None = None) -> MilpInstance:
    """A small random final-layer instance; seeded, so every run builds the same one."""
    rng = np.random.default_rng(1000 * seed + 17 * KINDS.index((task, mode)) + ACTIVATIONS.index(act))
    T = int(rng.integers(4, 25)) if T is None else T
    N = int(rng.integers(1, 5))
    M = int(rng.integers(1, 4)) if task == "regression" else int(rng.integers(2, 5))
    W, b, H = rng.normal(size=(M, N)), rng.normal(size=M), rng.normal(size=(T, N))
    radius = float(rng.choice([0.05, 0.2, 0.5]))
    if task == "classification":
        return classification(W, b, H, rng.integers(0, M, T), radius=radius, activation=act, mode=mode)
    if mode == "l1":
        return regression(W, b, H, rng.normal(size=(T, M)), radius=radius, activation=act)
    if seed % 3 == 2:  # random targets and a large margin: usually infeasible
        return regression(W, b, H, rng.normal(size=(T, M)), radius=radius, activation=act, mode="paper",
                          margin=0.5)
    # targets of weights inside the box, so that improving on the current weights is possible
    Wt = W + rng.uniform(-radius, radius, W.shape) * 0.9
    return regression(W, b, H, forward(Wt, b, H, act), radius=radius, activation=act, mode="paper",
                      margin=float(rng.choice([0.0, 1e-3])))


def scipy_reference(inst: MilpInstance) -> tuple[str, float | None]:
    """(status, objective) from scipy.optimize.milp on the big-M lowered instance: an
    answer independent of the backends (scipy's own HiGHS build, no gdsolver code past
    ir.lower). status is "OPTIMAL", "INFEASIBLE" or "UNBOUNDED"."""
    import scipy.sparse as sp
    from scipy.optimize import Bounds, LinearConstraint, milp

    low, _ = lower(inst)
    sign = 1.0 if low.sense == "min" else -1.0
    A = sp.csr_matrix((low.A.data, low.A.indices, low.A.indptr), shape=(low.num_rows, low.num_vars))
    cons = [LinearConstraint(A, low.row_lo, low.row_hi)] if low.num_rows else []
    res = milp(sign * low.c, constraints=cons, integrality=(low.vtype != 0).astype(int),
               bounds=Bounds(low.lb, low.ub), options={"mip_rel_gap": 0.0, "presolve": True})
    if res.status == 0:
        return "OPTIMAL", sign * float(res.fun) + low.c0
    if res.status == 2:
        return "INFEASIBLE", None
    if res.status == 3:
        return "UNBOUNDED", None
    raise AssertionError(f"scipy milp: status {res.status} ({res.message})")
