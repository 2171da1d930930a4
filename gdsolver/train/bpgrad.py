"""BPGrad (Zhang, Wu, Wang, "BPGrad: Towards Global Optimality in Deep Learning via Branch
and Pruning", CVPR 2018) as a trainer with the common fit / history API.

The step size comes from a Lipschitz bound L on the loss: at minibatch step t, with f_t the
minibatch loss and f* = rho * min_{s<=t} f_s the estimate of the global minimum,

    eta_t = (f_t - rho * min_{s<=t} f_s) / L

("no smaller step can reach the global optimum": within radius eta_t of the current weights
the loss cannot fall below f* when it is L-Lipschitz). As in the authors' released MatConvNet
solver (cnn_train_v2_cifar_BPGrad.m, function accumulateGradients), the direction is the
minibatch gradient plus weight decay, divided by the global 2-norm of the loss gradient
alone (over all parameters), and momentum accumulates it:

    d_t = (g_t + weight_decay * w_t) / ||g_t||
    v_t = momentum * v_{t-1} - d_t
    w_{t+1} = w_t + eta_t * v_t

Defaults are the released code's: rho = 0.1, L = 50, momentum = 0.9, weight decay 5e-4
(applied to every parameter, biases included, as MatConvNet's default per-layer
weightDecay of 1 does). When the loss gradient is exactly zero the normalised direction is
undefined; that step only lets the momentum run on (d_t = 0).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gdsolver.train.config import GD_DEFAULTS as GD
from gdsolver.errors import GdsolverError
from gdsolver.train.history import History
from gdsolver.train.trainer import Trainer, _positive_float, _positive_int

GRAD_EPS = 1e-30  # a loss gradient with a smaller norm counts as zero


def _nonneg_float(name: str, value: Any, hi: float | None = None) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise GdsolverError(f"{name}: must be a number, got {value!r}") from None
    if not (math.isfinite(v) and v >= 0 and (hi is None or v <= hi)):
        rng = f"in [0, {hi:g}]" if hi is not None else ">= 0"
        raise GdsolverError(f"{name}: must be a finite number {rng}, got {value!r}")
    return v


class BPGradTrainer(Trainer):
    """BPGrad: minibatch steps of length eta_t = (f_t - rho * min_{s<=t} f_s) / L along the
    normalised (sub)gradient with weight decay and momentum. The history's `lr` column is the
    last step size eta_t of each epoch. `patience` (optional) stops early after that many
    epochs without a new best monitored loss (validation loss when given)."""

    method = "bpgrad"

    def __init__(self, model: nn.Module, task: str = "classification", *, L: float = 50.0, rho: float = 0.1,
                 momentum: float = 0.9, weight_decay: float = 5e-4, epochs: int = GD.epochs,
                 batch_size: int = GD.batch_size, patience: int | None = GD.patience, seed: int = GD.seed,
                 threads: int | None = GD.threads,
                 dump_dir: str | os.PathLike | None = None,
                 callback: Callable[[dict[str, Any]], None] | None = None, verbose: bool | int = False) -> None:
        super().__init__(model, task, epochs=epochs, batch_size=batch_size, seed=seed, threads=threads,
                         dump_dir=dump_dir, callback=callback, verbose=verbose)
        self.L = _positive_float("L", L)
        self.rho = _nonneg_float("rho", rho, hi=1.0)
        self.momentum = _nonneg_float("momentum", momentum, hi=1.0)
        if self.momentum >= 1.0:
            raise GdsolverError(f"momentum: must be < 1, got {momentum!r}")
        self.weight_decay = _nonneg_float("weight_decay", weight_decay)
        self.patience = None if patience is None else _positive_int("patience", patience)
        self.history = History(self.method)
        self._steps: list[float] = []

    @property
    def step_sizes(self) -> list[float]:
        """eta_t of every minibatch step of the last fit(), in order."""
        return list(self._steps)

    def _fit(self) -> None:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise GdsolverError("bpgrad: the model has no trainable parameters")
        velocity = [torch.zeros_like(p) for p in params]
        self._steps = []
        f_min = math.inf
        best, since = math.inf, 0
        for _ in range(self.epochs):
            t0 = time.perf_counter()
            self._train_mode()
            eta = None
            for i, (xb, yb) in enumerate(self._batches()):
                loss = self.loss_fn(self.model(xb), yb)
                self._check_finite(loss, i)
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
                f_t = float(loss.detach())
                f_min = min(f_min, f_t)
                eta = (f_t - self.rho * f_min) / self.L
                gnorm = math.sqrt(sum(float(torch.sum(g.double() * g.double())) for g in grads))
                with torch.no_grad():
                    for p, g, v in zip(params, grads, velocity):
                        v.mul_(self.momentum)
                        if gnorm > GRAD_EPS:
                            d = g + self.weight_decay * p if self.weight_decay else g
                            v.sub_(d, alpha=1.0 / gnorm)
                        p.add_(v, alpha=eta)
                self._steps.append(eta)
            row = self._record_epoch(time.perf_counter() - t0, eta)
            watched = self._monitored_loss(row)
            if watched < best - 1e-12:
                best, since = watched, 0
            else:
                since += 1
                if self.patience is not None and since >= self.patience:
                    break
