"""Lifted-ReLU block coordinate descent (Zhang & Brand, "Convergent Block Coordinate Descent
for Training Tikhonov Regularized Deep Neural Networks", NeurIPS 2017) as a trainer with the
common fit / history API.

The network x -> Linear_1 -> ReLU -> ... -> ReLU -> Linear_N is lifted: every hidden
activation U_n (T x d_n, one row per training point) becomes a variable constrained to
U_n >= 0, and the ReLU becomes a quadratic (Tikhonov) penalty. With U_0 = X, the augmented
~U = [U, 1] when layer n+1 has a bias (the bias is the last row of A_{n+1}), and targets Y
(one-hot for classification: the paper's least-squares loss), the objective is

    F = 1/(2T) ||~U_{N-1} A_N - Y||^2
        + sum_{n=1}^{N-1} gamma_n/(2T) ||U_n - ~U_{n-1} A_n||^2
        + sum_{n=1}^{N} mu/2 ||A_n||^2,          U_n >= 0,

A_n = [W_n^T; b_n^T] ((d_{n-1}+1) x d_n). relu(p) = argmin_{u >= 0} (u - p)^2 is what is
lifted: with the later terms held fixed, the minimum over U_n >= 0 is U_n = relu(~U_{n-1} A_n),
the network's forward pass (where the penalty is the squared negative part of the
pre-activations, not zero). Training starts from the torch model's weights and its forward
pass.

One sweep updates the blocks from the output backwards: A_N, U_{N-1}, A_{N-1}, ..., U_1, A_1.

- A_n: exact ridge least squares, (c/T ~U^T ~U + mu I) A = c/T ~U^T Z with Z = U_n (c = gamma_n)
  or Z = Y (c = 1), solved by Cholesky: the block minimum, so F cannot increase.
- U_n: `inner_steps` projected-gradient steps of length 1/Lip on the convex quadratic in U_n
  (rows independent), Lip = (gamma_n + c' ||W_{n+1}||_2^2) / T with c' = gamma_{n+1} or 1; a
  projected gradient step with step 1/Lip never increases a convex quadratic, so F does not
  increase.

Hence F is non-increasing over sweeps (`objective_trace`, and `objective_value` in the
history rows). After each sweep the weights are written into the torch model, so train/val
loss and accuracy in the history are those of the real network (cross-entropy for
classification, as for every other trainer, so methods compare; the BCD's own objective is
`objective_value`). Only fully connected ReLU networks are supported (nn.Sequential of
nn.Linear / nn.ReLU, optionally a leading nn.Flatten); biases are handled by augmentation.
All arithmetic is float64 numpy, full batch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from gdsolver.train.config import GD_DEFAULTS as GD
from gdsolver.blas import blas_threads
from gdsolver.errors import GdsolverError
from gdsolver.train.history import History
from gdsolver.train.trainer import Trainer, _positive_float, _positive_int


@dataclass
class _Layer:
    linear: nn.Linear
    A: np.ndarray  # (d_in + has_bias, d_out)
    has_bias: bool


def parse_relu_mlp(model: nn.Module) -> tuple[bool, list[nn.Linear]]:
    """(leading flatten?, the Linear layers) of an nn.Sequential Flatten? (Linear ReLU)* Linear;
    GdsolverError naming the first module that does not fit."""
    if not isinstance(model, nn.Sequential):
        raise GdsolverError(f"lifted-bcd: supports nn.Sequential of nn.Linear / nn.ReLU (optionally a leading "
                            f"nn.Flatten), got {type(model).__name__}")
    mods = list(model.children())
    flatten = bool(mods) and isinstance(mods[0], nn.Flatten)
    if flatten:
        f = mods[0]
        if f.start_dim != 1 or f.end_dim != -1:
            raise GdsolverError(f"lifted-bcd: only nn.Flatten(1, -1) is supported, got {f}")
        mods = mods[1:]
    linears: list[nn.Linear] = []
    for i, m in enumerate(mods):
        want_linear = i % 2 == 0
        if want_linear and isinstance(m, nn.Linear):
            linears.append(m)
        elif not want_linear and isinstance(m, nn.ReLU):
            continue
        else:
            where = i + int(flatten)
            expected = "nn.Linear" if want_linear else "nn.ReLU"
            raise GdsolverError(f"lifted-bcd: unsupported module {type(m).__name__} at position {where} of the "
                                f"nn.Sequential (expected {expected}); only fully connected ReLU networks "
                                "Flatten? (Linear ReLU)* Linear are supported")
    if not linears:
        raise GdsolverError("lifted-bcd: the model has no nn.Linear layer")
    if isinstance(mods[-1], nn.ReLU):
        raise GdsolverError("lifted-bcd: the model ends with nn.ReLU; the output layer must be nn.Linear "
                            "(the least-squares loss is on the linear outputs)")
    for a, b in zip(linears, linears[1:]):
        if a.out_features != b.in_features:
            raise GdsolverError(f"lifted-bcd: layer sizes do not chain ({a} then {b})")
    return flatten, linears


def _aug(U: np.ndarray, has_bias: bool) -> np.ndarray:
    return np.hstack([U, np.ones((U.shape[0], 1))]) if has_bias else U


class LiftedBCDTrainer(Trainer):
    """Block coordinate descent on the lifted-ReLU Tikhonov objective (module docstring).
    `epochs` is the number of BCD sweeps (each is one history row); `gamma` is one number or
    one per hidden layer; `mu` the ridge weight on every layer's weights and bias;
    `inner_steps` projected-gradient steps per hidden block per sweep."""

    method = "lifted-bcd"

    def __init__(self, model: nn.Module, task: str = "classification", *, gamma: float | Sequence[float] = 0.1,
                 mu: float = 1e-4, inner_steps: int = 5, epochs: int = GD.epochs, seed: int = GD.seed,
                 threads: int | None = GD.threads, dump_dir: str | os.PathLike | None = None,
                 callback: Callable[[dict[str, Any]], None] | None = None, verbose: bool | int = False) -> None:
        super().__init__(model, task, epochs=epochs, seed=seed, threads=threads,
                         dump_dir=dump_dir, callback=callback, verbose=verbose)
        self._flatten, self._linears = parse_relu_mlp(model)
        n_hidden = len(self._linears) - 1
        if isinstance(gamma, (int, float, np.integer, np.floating)) and not isinstance(gamma, bool):
            gammas = [gamma] * n_hidden
        elif isinstance(gamma, (list, tuple, np.ndarray)):
            gammas = list(gamma)
            if len(gammas) != n_hidden:
                raise GdsolverError(f"gamma: give one number or {n_hidden} (one per hidden layer), got {len(gammas)}")
        else:
            raise GdsolverError(f"gamma: must be a number or a list of numbers, got {gamma!r}")
        self.gamma = [_positive_float("gamma", g) for g in gammas]
        self.mu = _positive_float("mu", mu)
        self.inner_steps = _positive_int("inner_steps", inner_steps)
        self.history = History(self.method)
        self._trace: list[float] = []
        self._layers: list[_Layer] = []
        self._U: list[np.ndarray] = []

    # ------------------------------------------------------------------ results
    @property
    def objective_trace(self) -> list[float]:
        """F before the first sweep, then after every sweep (non-increasing)."""
        return list(self._trace)

    def forward_numpy(self, X: Any) -> np.ndarray:
        """The network's outputs computed from the BCD's own weights (float64 numpy)."""
        H = self._inputs(X)
        for k, layer in enumerate(self._layers):
            H = _aug(H, layer.has_bias) @ layer.A
            if k < len(self._layers) - 1:
                H = np.maximum(H, 0.0)
        return H

    # ------------------------------------------------------------------ internals
    def _inputs(self, X: Any) -> np.ndarray:
        X = np.asarray(X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else X, dtype=np.float64)
        if self._flatten:
            X = X.reshape(len(X), -1)
        d0 = self._linears[0].in_features
        if X.ndim != 2 or X.shape[1] != d0:
            raise GdsolverError(f"lifted-bcd: inputs of shape {X.shape} do not match the first Linear layer's "
                                f"{d0} inputs")
        return X

    def _targets(self) -> np.ndarray:
        y = self.train_data.y.numpy()
        M = self._linears[-1].out_features
        if self.task == "classification":
            Y = np.zeros((len(y), M))
            Y[np.arange(len(y)), y] = 1.0
            return Y
        return np.asarray(y, dtype=np.float64).reshape(len(y), M)

    def _objective(self, X: np.ndarray, Y: np.ndarray) -> float:
        T = len(X)
        Ls, U = self._layers, [X, *self._U]
        F = 0.5 / T * float(np.sum((_aug(U[-1], Ls[-1].has_bias) @ Ls[-1].A - Y) ** 2))
        for n in range(1, len(Ls)):
            R = U[n] - _aug(U[n - 1], Ls[n - 1].has_bias) @ Ls[n - 1].A
            F += 0.5 * self.gamma[n - 1] / T * float(np.sum(R * R))
        return F + 0.5 * self.mu * sum(float(np.sum(layer.A ** 2)) for layer in Ls)

    def _update_weights(self, k: int, U_in: np.ndarray, Z: np.ndarray, c: float) -> None:
        """Exact minimiser of c/(2T) ||~U_in A - Z||^2 + mu/2 ||A||^2 over A."""
        layer = self._layers[k]
        H = _aug(U_in, layer.has_bias)
        T = len(H)
        G = (c / T) * (H.T @ H)
        G[np.diag_indices_from(G)] += self.mu
        rhs = (c / T) * (H.T @ Z)
        try:
            Lc = np.linalg.cholesky(G)
            layer.A = np.linalg.solve(Lc.T, np.linalg.solve(Lc, rhs))
        except np.linalg.LinAlgError:  # G is symmetric positive definite (mu > 0); only round-off gets here
            layer.A = np.linalg.solve(G, rhs)

    def _update_hidden(self, n: int, U_prev: np.ndarray, U_next_target: np.ndarray, c_next: float) -> None:
        """`inner_steps` projected-gradient steps on U_n (n >= 1) of
        gamma_n/2 ||U_n - P||^2 + c_next/2 ||~U_n A_{n+1} - Z||^2 (per row; the 1/T cancels)."""
        gamma = self.gamma[n - 1]
        P = _aug(U_prev, self._layers[n - 1].has_bias) @ self._layers[n - 1].A
        nxt = self._layers[n]
        W = nxt.A[:-1] if nxt.has_bias else nxt.A  # (d_n, d_{n+1})
        lip = gamma + c_next * float(np.linalg.norm(W, 2)) ** 2
        step = 1.0 / lip
        U = self._U[n - 1]
        for _ in range(self.inner_steps):
            R = _aug(U, nxt.has_bias) @ nxt.A - U_next_target
            grad = gamma * (U - P) + c_next * (R @ W.T)
            U = np.maximum(U - step * grad, 0.0)
        self._U[n - 1] = U

    def _sweep(self, X: np.ndarray, Y: np.ndarray) -> None:
        N = len(self._layers)
        U = lambda n: X if n == 0 else self._U[n - 1]  # noqa: E731
        for k in range(N - 1, -1, -1):  # layer k maps U_k to U_{k+1} (k = N-1: to the outputs)
            if k < N - 1:  # U_{k+1} is hidden: update it before its incoming weights
                target = Y if k + 1 == N - 1 else self._U[k + 1]
                c_next = 1.0 if k + 1 == N - 1 else self.gamma[k + 1]
                self._update_hidden(k + 1, U(k), target, c_next)
            Z = Y if k == N - 1 else self._U[k]
            c = 1.0 if k == N - 1 else self.gamma[k]
            self._update_weights(k, U(k), Z, c)

    def _write_back(self) -> None:
        with torch.no_grad():
            for layer in self._layers:
                lin = layer.linear
                W = layer.A[:-1] if layer.has_bias else layer.A
                lin.weight.copy_(torch.as_tensor(W.T, dtype=lin.weight.dtype))
                if layer.has_bias:
                    lin.bias.copy_(torch.as_tensor(layer.A[-1], dtype=lin.bias.dtype))

    def _fit(self) -> None:
        with blas_threads(self.threads):
            self._run()

    def _run(self) -> None:
        X = self._inputs(self.train_data.X)
        Y = self._targets()
        self._layers = []
        for lin in self._linears:
            W = lin.weight.detach().cpu().numpy().astype(np.float64).T
            has_bias = lin.bias is not None
            A = np.vstack([W, lin.bias.detach().cpu().numpy().astype(np.float64)[None, :]]) if has_bias else W
            self._layers.append(_Layer(lin, A.copy(), has_bias))
        # start from the network's own forward pass (the minimiser of each penalty over U_n >= 0)
        self._U, H = [], X
        for layer in self._layers[:-1]:
            H = np.maximum(_aug(H, layer.has_bias) @ layer.A, 0.0)
            self._U.append(H)
        self._trace = [self._objective(X, Y)]
        for _ in range(self.epochs):
            t0 = time.perf_counter()
            self._sweep(X, Y)
            F = self._objective(X, Y)
            self._write_back()
            elapsed = time.perf_counter() - t0
            if not np.isfinite(F):
                raise GdsolverError(f"lifted-bcd: objective became {F} at sweep {len(self._trace)}; "
                                    "try a larger mu or smaller gamma")
            self._trace.append(F)
            self._record_epoch(elapsed, None, objective_value=F)
