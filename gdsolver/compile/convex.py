"""Exact solvers for the convex sweeps: a final layer with an identity output under a squared or
cross-entropy loss, its weights in a box. There the MILP's tangent-cut rounds only approximate a
smooth convex problem that scipy solves to optimality directly, in a fraction of the time
(bounded least squares per output; L-BFGS-B on the multinomial log-likelihood).

Arrays in, arrays out (numpy and scipy only); gdsolver.pipeline turns the answer into a point
of the instance and checks it like any solver's.
"""

from __future__ import annotations

import numpy as np

#: L-BFGS-B stops when the projected gradient's largest entry is below this, relative to the loss
CE_PGTOL = 1e-9
CE_MAXITER = 15000


def bounded_least_squares(F: np.ndarray, Y: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                          x0: np.ndarray) -> tuple[np.ndarray, bool, str]:
    """argmin sum_t ||W f_t + b - y_t||^2 over lo <= [W | b] <= hi, entry by entry.

    F (T, N) inputs, Y (T, M) targets; lo, hi, x0 (M, N + 1): the bounds and the current
    [W | b] (a fixed bias is lo == hi). Outputs are independent: one bounded least-squares
    problem each (scipy lsq_linear, BVLS: exact active set). Returns ([W | b], converged, message)."""
    from scipy.optimize import lsq_linear

    A = np.hstack([F, np.ones((len(F), 1))])
    out = np.array(x0, np.float64, copy=True)
    ok, msgs = True, []
    for m in range(Y.shape[1]):
        free = lo[m] < hi[m]
        target = Y[:, m] - A[:, ~free] @ out[m, ~free]  # fixed entries (a pinned bias) moved to the target
        if free.any():
            r = lsq_linear(A[:, free], target, bounds=(lo[m, free], hi[m, free]), method="bvls")
            out[m, free] = np.clip(r.x, lo[m, free], hi[m, free])
            ok &= bool(r.success)
            if not r.success:
                msgs.append(f"output {m}: {r.message}")
    return out, ok, "; ".join(msgs) or "bounded least squares (BVLS): optimal"


def bounded_softmax_regression(F: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                               x0: np.ndarray) -> tuple[np.ndarray, bool, str]:
    """argmin sum_t CE(W f_t + b, y_t) over lo <= [W | b] <= hi (L-BFGS-B from x0).

    F (T, N) inputs, y (T,) labels in [0, M); lo, hi, x0 (M, N + 1). Returns ([W | b],
    converged, message)."""
    from scipy.optimize import minimize

    T, N = F.shape
    M = x0.shape[0]
    A = np.hstack([F, np.ones((T, 1))])
    y = np.asarray(y, np.int64)
    rows = np.arange(T)

    def f(v: np.ndarray) -> tuple[float, np.ndarray]:
        V = v.reshape(M, N + 1)
        o = A @ V.T
        z = o - o.max(axis=1, keepdims=True)
        ez = np.exp(z)
        s = ez.sum(axis=1, keepdims=True)
        loss = float((np.log(s[:, 0]) - z[rows, y]).sum())
        g = ez / s
        g[rows, y] -= 1.0
        return loss, (g.T @ A).ravel()

    start = np.clip(np.asarray(x0, np.float64), lo, hi).ravel()
    scale = max(1.0, f(start)[0])
    r = minimize(f, start, jac=True, method="L-BFGS-B", bounds=np.column_stack([lo.ravel(), hi.ravel()]),
                 options={"maxiter": CE_MAXITER, "ftol": 1e-15, "gtol": CE_PGTOL * scale, "maxcor": 20})
    v = np.clip(r.x, lo.ravel(), hi.ravel()).reshape(M, N + 1)
    if f(v)[0] > f(start)[0]:  # never worse than where it started (the current weights are feasible)
        v = start.reshape(M, N + 1)
    return v, bool(r.success), f"L-BFGS-B: {r.message} ({r.nit} iterations)"
