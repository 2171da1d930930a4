"""Exact solvers for the convex sweeps: a final layer with an identity output under a squared or
cross-entropy loss, its weights in a box. There the MILP's tangent-cut rounds only approximate a
smooth convex problem that scipy solves to optimality directly, in a fraction of the time
(bounded least squares per output; L-BFGS-B on the multinomial log-likelihood).

Arrays in, arrays out (numpy and scipy only); gdsolver.pipeline turns the answer into a point
of the instance and checks it like any solver's.
"""

from __future__ import annotations

import time

import numpy as np

#: the heads whose sweep of the last layer (identity output) is convex and solved here
CONVEX_MODES = ("squared", "ce")


def is_convex_sweep(mode: str | None, *, last: bool, activation: str) -> bool:
    """Whether a sweep is one these solvers solve exactly: the last layer of the chain (`last`),
    its output the identity, under the squared or cross-entropy head. The one rule for the
    pipeline, the sweep's preparation and the time-aware polish."""
    return mode in CONVEX_MODES and last and activation == "identity"


#: L-BFGS-B stops when the projected gradient's largest entry is below this, relative to the loss
CE_PGTOL = 1e-9
#: ... or when a step lowers the loss by less than this, relative. A 4096-point MNIST head
#: (128 inputs, 10 classes, box 0.05, after one Adam epoch; measured once under load): unscaled
#: at 1e-15 5675 iterations, scaled (below) at 1e-15 1033, scaled at 1e-10 454, the loss 1.6e-8
#: (relative) above the 1e-15 answer
CE_FTOL = 1e-10
CE_MAXITER = 15000


def bounded_least_squares(F: np.ndarray, Y: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                          x0: np.ndarray, deadline: float | None = None) -> tuple[np.ndarray, bool, str]:
    """argmin sum_t ||W f_t + b - y_t||^2 over lo <= [W | b] <= hi, entry by entry.

    F (T, N) inputs, Y (T, M) targets; lo, hi, x0 (M, N + 1): the bounds and the current
    [W | b] (a fixed bias is lo == hi). Outputs are independent: one bounded least-squares
    problem each (scipy lsq_linear, BVLS: exact active set). deadline (time.perf_counter()):
    the outputs not started by then keep their x0 (not converged; each output's problem is
    separate, so the ones solved are optimal and the loss never rises). Returns ([W | b],
    converged, message)."""
    from scipy.optimize import lsq_linear

    A = np.hstack([F, np.ones((len(F), 1))])
    out = np.clip(np.array(x0, np.float64, copy=True), lo, hi)
    ok, msgs = True, []
    for m in range(Y.shape[1]):
        if deadline is not None and m and time.perf_counter() >= deadline:
            return out, False, (f"bounded least squares: time limit reached after {m} of {Y.shape[1]} outputs; "
                                "the others keep their weights")
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
                               x0: np.ndarray, deadline: float | None = None) -> tuple[np.ndarray, bool, str]:
    """argmin sum_t CE(W f_t + b, y_t) over lo <= [W | b] <= hi (L-BFGS-B from x0).

    F (T, N) inputs, y (T,) labels in [0, M); lo, hi, x0 (M, N + 1); deadline: a
    time.perf_counter() value after which the best point so far is returned (not converged).
    Returns ([W | b], converged, message)."""
    from scipy.optimize import Bounds, minimize

    T, N = F.shape
    M = x0.shape[0]
    # each input column scaled to unit RMS (a box stays a box under a diagonal change of
    # variables): ReLU features of very different sizes made L-BFGS-B take 5x the iterations
    s = np.sqrt((np.asarray(F, np.float64) ** 2).mean(axis=0)) if T else np.ones(N)
    s = np.append(np.where(s > 0, s, 1.0), 1.0)
    A = np.hstack([F, np.ones((T, 1))]) / s
    S = np.tile(s, M)
    box = (lo, hi)  # unscaled: the answer is clipped to it exactly
    lo, hi, x0 = lo.ravel() * S, hi.ravel() * S, np.asarray(x0, np.float64).ravel() * S
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

    start = np.clip(x0, lo, hi)
    f_start = f(start)[0]
    scale = max(1.0, f_start)
    timed_out = False

    def stop_at_deadline(_: object) -> None:
        nonlocal timed_out
        if deadline is not None and time.perf_counter() >= deadline:
            timed_out = True
            raise StopIteration

    r = minimize(f, start, jac=True, method="L-BFGS-B", bounds=Bounds(lo, hi), callback=stop_at_deadline,
                 options={"maxiter": CE_MAXITER, "ftol": CE_FTOL, "gtol": CE_PGTOL * scale, "maxcor": 20})
    v = np.clip(r.x, lo, hi)
    if f(v)[0] > f_start:  # never worse than where it started (the current weights are feasible)
        v = start
    V = np.clip((v / S).reshape(M, N + 1), *box)
    if timed_out:
        return V, False, f"L-BFGS-B: time limit reached after {r.nit} iterations; best point so far"
    return V, bool(r.success), f"L-BFGS-B: {r.message} ({r.nit} iterations)"


class ConvexSweep:
    """A convex sweep as arrays, solved without an instance: the last layer (identity output)
    under the "squared" or "ce" head, its [W | b] in a box.

    H (T, N) the layer's inputs at the sweep's points; y: labels (T,) for "ce", targets (T, M)
    for "squared"; lo, hi, x0 (M, N + 1): the box and the current [W | b] (a pinned bias has
    lo == hi). loss(V) is the head's loss at [W | b] = V, in float64: what the answer is judged
    by, and what a forward pass of the model must reproduce."""

    def __init__(self, mode: str, H: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 x0: np.ndarray) -> None:
        if mode not in ("squared", "ce"):
            raise ValueError(f"mode: {mode!r}, expected 'squared' or 'ce'")
        self.mode, self.H = mode, np.asarray(H, np.float64)
        self.y = np.asarray(y, np.int64) if mode == "ce" else np.asarray(y, np.float64).reshape(len(self.H), -1)
        self.lo, self.hi, self.x0 = (np.asarray(a, np.float64) for a in (lo, hi, x0))

    @property
    def shape(self) -> tuple[int, int]:
        """(M, N): outputs and inputs of the swept layer."""
        return self.x0.shape[0], self.x0.shape[1] - 1

    def loss(self, V: np.ndarray) -> float:
        o = self.H @ V[:, :-1].T + V[:, -1]
        if self.mode == "squared":
            return float(((o - self.y) ** 2).sum())
        z = o - o.max(axis=1, keepdims=True)
        return float((np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(z)), self.y]).sum())

    def solve(self, deadline: float | None = None) -> tuple[np.ndarray, bool, str]:
        """([W | b], converged, message) by bounded least squares or L-BFGS-B (above)."""
        if self.mode == "squared":
            return bounded_least_squares(self.H, self.y, self.lo, self.hi, self.x0, deadline=deadline)
        return bounded_softmax_regression(self.H, self.y, self.lo, self.hi, self.x0, deadline=deadline)
