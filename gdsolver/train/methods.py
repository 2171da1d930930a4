"""Training methods by name, for the CLI and the benchmarks: one place that says what
"sgd-lrs" or "gdsolver-2loop" means, so every comparison uses the same settings."""

from __future__ import annotations

from typing import Any

from torch import nn

from gdsolver.errors import GdsolverError
from gdsolver.train.config import SETTINGS, GDConfig, keywords

# name -> one-line description
METHODS: dict[str, str] = {
    "gdsolver": "GD until the validation loss plateaus, then a solver sweep; repeated (Algorithm 1)",
    "gdsolver-2loop": "at most epochs/2 GD epochs then a sweep on 32 misclassified points, twice (paper preset)",
    "sgd": "SGD, constant learning rate",
    "sgd-lrs": "SGD with an LR schedule (default: halve on a validation plateau)",
    "adam": "Adam, constant learning rate",
    "adam-lrs": "Adam with an LR schedule (default: halve on a validation plateau)",
    "lbfgs": "full-batch L-BFGS with strong-Wolfe line search (one epoch = one step of at most 20 iterations)",
    "gdsolver-lbfgs": "L-BFGS until the validation loss plateaus, then solver sweeps; repeated",
    "bpgrad": "BPGrad: step (f_t - rho min f_s) / L along the normalised gradient, with momentum (Zhang et al. 2018)",
    "lifted-bcd": "block coordinate descent on the lifted-ReLU Tikhonov objective, one sweep per epoch "
                  "(Zhang & Brand 2017; fully connected ReLU networks)",
}

# options that only some methods take; others ignore them (the sweep and accept settings come
# from their config values, so a new setting there reaches every method that sweeps)
_GD_KEYS = (*(k for k in keywords(GDConfig) if k != "optimizer"), "dump_dir", "callback", "output", "verbose")
_SOLVER_KEYS = tuple(k for cls in SETTINGS for k in keywords(cls))  # GDSolver's settings records
_BPGRAD_KEYS = ("L", "rho", "momentum", "weight_decay", "epochs", "batch_size", "patience", "seed", "threads",
                "dump_dir", "callback", "verbose")
_BCD_KEYS = ("gamma", "mu", "inner_steps", "epochs", "seed", "threads", "dump_dir", "callback", "verbose")
DEFAULT_LRS = "plateau"


def _pick(opts: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in opts.items() if k in keys and v is not None}


def method_options(method: str) -> tuple[str, ...]:
    """The options `method` takes (make_trainer ignores the others)."""
    drop: tuple[str, ...] = ()
    if method in ("lbfgs", "sgd", "adam"):
        keys, drop = _GD_KEYS, ("lr_schedule",)
    elif method in ("sgd-lrs", "adam-lrs"):
        keys = _GD_KEYS
    elif method == "gdsolver":  # its GD phase's optimizer may be chosen ("sgd", "adam", "lbfgs")
        keys = ("optimizer",) + _GD_KEYS + _SOLVER_KEYS
    elif method == "gdsolver-lbfgs":
        keys = _GD_KEYS + _SOLVER_KEYS
    elif method == "gdsolver-2loop":
        keys, drop = _GD_KEYS + _SOLVER_KEYS, ("max_sweeps", "phase_epochs", "phase_lrs", "lr")  # fixed by the preset
    elif method == "bpgrad":
        keys = _BPGRAD_KEYS
    elif method == "lifted-bcd":
        keys = _BCD_KEYS
    else:
        raise GdsolverError(f"method: {method!r}, expected one of {list(METHODS)}")
    return tuple(k for k in keys if k not in drop)


def gd_phase_options(method: str, lr: float | None = None) -> dict[str, Any]:
    """GDSolver's options for a GD phase that is the tuned baseline `method` ("sgd", "sgd-lrs",
    "adam", "adam-lrs") at rate `lr`: its optimizer, and its schedule as make_trainer gives it."""
    if method not in ("sgd", "sgd-lrs", "adam", "adam-lrs"):
        raise GdsolverError(f"method: {method!r} is not a GD baseline (sgd, sgd-lrs, adam, adam-lrs)")
    return dict(optimizer=method.split("-")[0], lr=lr, lr_schedule=DEFAULT_LRS if method.endswith("-lrs") else None)


def check_method_options(method: str, opts: dict[str, Any], where: str = "method_opts") -> None:
    """Options given for one method in particular must be ones it takes (a shared option set,
    like the CLI's, may hold options for other methods; those are ignored, not refused)."""
    unknown = sorted(k for k, v in opts.items() if v is not None and k not in method_options(method))
    if unknown:
        raise GdsolverError(f"{where}[{method!r}]: {', '.join(map(repr, unknown))} "
                            f"{'is not an option' if len(unknown) == 1 else 'are not options'} of {method}; "
                            f"it takes {', '.join(method_options(method))}")


def make_trainer(method: str, model: nn.Module, task: str, **opts: Any):
    """A trainer for `method` (see METHODS); unset options (None) take the trainer's defaults and
    options the method does not take (method_options) are ignored. Baselines run all their epochs
    unless `patience` is given; GDSolver uses patience 2."""
    from gdsolver.train.hybrid import GDSolver
    from gdsolver.train.trainer import GDTrainer

    kw = _pick(opts, method_options(method))
    if method == "lbfgs":
        return GDTrainer(model, task, optimizer="lbfgs", **kw)
    if method == "gdsolver-lbfgs":
        return GDSolver(model, task, optimizer="lbfgs", **kw)
    if method in ("sgd", "sgd-lrs", "adam", "adam-lrs"):
        if method.endswith("-lrs"):
            kw.setdefault("lr_schedule", DEFAULT_LRS)
        return GDTrainer(model, task, optimizer=method.split("-")[0], **kw)
    if method == "gdsolver":
        return GDSolver(model, task, **kw)
    if method == "gdsolver-2loop":
        return GDSolver.two_loop(model, task, **kw)
    if method == "bpgrad":
        from gdsolver.train.bpgrad import BPGradTrainer

        return BPGradTrainer(model, task, **kw)
    from gdsolver.train.lifted_bcd import LiftedBCDTrainer  # "lifted-bcd": method_options checked the name

    return LiftedBCDTrainer(model, task, **kw)


def method_names() -> list[str]:
    return list(METHODS)
