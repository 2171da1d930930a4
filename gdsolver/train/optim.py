"""The GD optimizers and learning-rate schedules the trainers build, by name."""

from __future__ import annotations

import torch

from gdsolver.errors import GdsolverError

OPTIMIZERS = ("sgd", "adam", "lbfgs")
# L-BFGS: one "epoch" is one full-batch torch.optim.LBFGS step of at most this many iterations
LBFGS_ITERATIONS = 20
LR_SCHEDULES = (None, "step", "plateau", "cosine")


def make_optimizer(name: str, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "lbfgs":  # full batch, strong-Wolfe line search (what scipy/sklearn's lbfgs does)
        if weight_decay:
            raise GdsolverError("weight_decay: not supported with optimizer 'lbfgs'")
        return torch.optim.LBFGS(params, lr=lr, max_iter=LBFGS_ITERATIONS, history_size=100,
                                 line_search_fn="strong_wolfe")
    raise GdsolverError(f"optimizer: {name!r}, expected one of {list(OPTIMIZERS)}")


def make_scheduler(name: str | None, opt, epochs: int, stop_patience: int | None = None):
    """An LR schedule stepped once per epoch ("plateau" on the validation loss).

    "plateau" halves the LR after 2 epochs without improvement; with early stopping after
    `stop_patience` such epochs it acts one epoch sooner, so that the lower LR gets tried
    before the phase ends (otherwise both fire on the same epoch and the cut is wasted)."""
    if name is None:
        return None
    if name == "step":  # halve the LR three times over the run
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 4), gamma=0.5)
    if name == "plateau":
        patience = 1 if stop_patience is None else max(0, min(1, stop_patience - 2))
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=patience)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    raise GdsolverError(f"lr_schedule: {name!r}, expected one of {list(LR_SCHEDULES)}")
