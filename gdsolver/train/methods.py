"""Training methods by name, for the CLI and the benchmarks: one table of records that says what
"sgd-lrs" or "gdsolver-2loop" means (its options, the trainer that runs it, its one-line help),
so every comparison uses the same settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gdsolver.errors import GdsolverError
from gdsolver.train.config import SETTINGS, GDConfig, keywords

if TYPE_CHECKING:  # the table is read without torch (CLI help, bench configs); trainers import it
    from torch import nn

DEFAULT_LRS = "plateau"

# options that only some methods take; others ignore them (the sweep and accept settings come
# from their config values, so a new setting there reaches every method that sweeps)
_GD_KEYS = (*(k for k in keywords(GDConfig) if k != "optimizer"), "dump_dir", "callback", "output", "verbose")
_SOLVER_KEYS = tuple(k for cls in SETTINGS for k in keywords(cls))  # GDSolver's settings records
_BPGRAD_KEYS = ("L", "rho", "momentum", "weight_decay", "epochs", "batch_size", "patience", "seed", "threads",
                "dump_dir", "callback", "verbose")
_BCD_KEYS = ("gamma", "mu", "inner_steps", "epochs", "seed", "threads", "dump_dir", "callback", "verbose")


@dataclass(frozen=True)
class Method:
    """One training method: its name, the options its trainer takes (make_trainer drops the
    others), the factory (model, task, **options) -> trainer, and its one-line help. A GD
    baseline also names its optimizer and LR schedule (what a GDSolver GD phase copies)."""

    name: str
    help: str
    options: tuple[str, ...]
    factory: Callable[..., Any]
    optimizer: str | None = None  # GD baselines: torch optimizer
    lr_schedule: str | None = None  # GD baselines: the schedule it runs with unless told

    @property
    def sweeps(self) -> bool:
        """A GDSolver method (GD phases and solver sweeps), not a baseline."""
        return self.name.startswith("gdsolver")


def _without(keys: tuple[str, ...], *drop: str) -> tuple[str, ...]:
    return tuple(k for k in keys if k not in drop)


def _gd(optimizer: str, schedule: str | None) -> Callable[..., Any]:
    def make(model: nn.Module, task: str, **kw: Any):
        from gdsolver.train.trainer import GDTrainer

        if schedule is not None:
            kw.setdefault("lr_schedule", schedule)
        return GDTrainer(model, task, optimizer=optimizer, **kw)

    return make


def _gdsolver(**fixed: Any) -> Callable[..., Any]:
    def make(model: nn.Module, task: str, **kw: Any):
        from gdsolver.train.hybrid import GDSolver

        return GDSolver(model, task, **fixed, **kw)

    return make


def _two_loop(model: nn.Module, task: str, **kw: Any):
    from gdsolver.train.hybrid import GDSolver

    return GDSolver.two_loop(model, task, **kw)


def _bpgrad(model: nn.Module, task: str, **kw: Any):
    from gdsolver.train.bpgrad import BPGradTrainer

    return BPGradTrainer(model, task, **kw)


def _lifted_bcd(model: nn.Module, task: str, **kw: Any):
    from gdsolver.train.lifted_bcd import LiftedBCDTrainer

    return LiftedBCDTrainer(model, task, **kw)


def _gd_baseline(name: str, help: str) -> Method:
    optimizer, _, lrs = name.partition("-")
    keys = _GD_KEYS if lrs else _without(_GD_KEYS, "lr_schedule")  # a constant rate has no schedule
    schedule = DEFAULT_LRS if lrs else None
    return Method(name, help, keys, _gd(optimizer, schedule), optimizer=optimizer, lr_schedule=schedule)


TABLE: tuple[Method, ...] = (
    # its GD phase's optimizer may be chosen ("sgd", "adam", "lbfgs")
    Method("gdsolver", "GD until the validation loss plateaus, then a solver sweep; repeated (Algorithm 1)",
           ("optimizer",) + _GD_KEYS + _SOLVER_KEYS, _gdsolver()),
    Method("gdsolver-no-sweeps", "GDSolver's GD phases, restarts and time-aware choices without the solver "
           "(its ablation: the run to compare it with)",
           ("optimizer",) + _GD_KEYS + _without(_SOLVER_KEYS, "skip_sweeps"), _gdsolver(skip_sweeps=True)),
    Method("gdsolver-2loop", "at most epochs/2 GD epochs then a sweep on 32 misclassified points, twice "
           "(paper preset)",  # the sweeps, phases and rates are fixed by the preset
           _without(_GD_KEYS + _SOLVER_KEYS, "max_sweeps", "phase_epochs", "phase_lrs", "lr"), _two_loop),
    _gd_baseline("sgd", "SGD, constant learning rate"),
    _gd_baseline("sgd-lrs", "SGD with an LR schedule (default: halve on a validation plateau)"),
    _gd_baseline("adam", "Adam, constant learning rate"),
    _gd_baseline("adam-lrs", "Adam with an LR schedule (default: halve on a validation plateau)"),
    Method("lbfgs", "full-batch L-BFGS with strong-Wolfe line search (one epoch = one step of at most 20 "
           "iterations)", _without(_GD_KEYS, "lr_schedule"), _gd("lbfgs", None)),
    Method("gdsolver-lbfgs", "L-BFGS until the validation loss plateaus, then solver sweeps; repeated",
           _GD_KEYS + _SOLVER_KEYS, _gdsolver(optimizer="lbfgs")),
    Method("bpgrad", "BPGrad: step (f_t - rho min f_s) / L along the normalised gradient, with momentum "
           "(Zhang et al. 2018)", _BPGRAD_KEYS, _bpgrad),
    Method("lifted-bcd", "block coordinate descent on the lifted-ReLU Tikhonov objective, one sweep per epoch "
           "(Zhang & Brand 2017; fully connected ReLU networks)", _BCD_KEYS, _lifted_bcd),
)
REGISTRY: dict[str, Method] = {m.name: m for m in TABLE}
METHODS: dict[str, str] = {m.name: m.help for m in TABLE}  # name -> one-line description


def method(name: str) -> Method:
    """The record of `name`; GdsolverError naming the known ones otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise GdsolverError(f"method: {name!r}, expected one of {list(REGISTRY)}") from None


def method_names() -> list[str]:
    return list(REGISTRY)


def baseline_names() -> list[str]:
    """The methods that are not GDSolver (what the benchmarks compare it with by default)."""
    return [m.name for m in TABLE if not m.sweeps]


def check_baselines(names: list[str] | tuple[str, ...] | None) -> list[str]:
    """The baselines `names` (every method that is not GDSolver when None), each checked to be one:
    what a benchmark compares GDSolver with."""
    known = baseline_names()
    if names is None:
        return known
    for m in names:
        if m not in known:
            raise GdsolverError(f"method: {m!r} is not a baseline; expected one of {known}")
    return list(names)


def gd_baseline_names() -> list[str]:
    """The GD baselines (an optimizer with or without a schedule): the ones a rate is tuned for."""
    return [m.name for m in TABLE if m.optimizer is not None]


def method_options(name: str) -> tuple[str, ...]:
    """The options `name` takes (make_trainer ignores the others)."""
    return method(name).options


def gd_phase_options(name: str, lr: float | None = None) -> dict[str, Any]:
    """GDSolver's options for a GD phase that is the GD baseline `name` ("sgd", "sgd-lrs", "adam",
    "adam-lrs") at rate `lr`: its optimizer, and its schedule as make_trainer gives it."""
    if name not in gd_baseline_names():
        raise GdsolverError(f"method: {name!r} is not a GD baseline ({', '.join(gd_baseline_names())})")
    m = REGISTRY[name]
    return dict(optimizer=m.optimizer, lr=lr, lr_schedule=m.lr_schedule)


def check_method_options(name: str, opts: dict[str, Any], where: str = "method_opts") -> None:
    """Options given for one method in particular must be ones it takes (a shared option set,
    like the CLI's, may hold options for other methods; those are ignored, not refused)."""
    unknown = sorted(k for k, v in opts.items() if v is not None and k not in method_options(name))
    if unknown:
        raise GdsolverError(f"{where}[{name!r}]: {', '.join(map(repr, unknown))} "
                            f"{'is not an option' if len(unknown) == 1 else 'are not options'} of {name}; "
                            f"it takes {', '.join(method_options(name))}")


def make_trainer(name: str, model: nn.Module, task: str, **opts: Any):
    """A trainer for method `name` (see TABLE); unset options (None) take the trainer's defaults
    and options the method does not take (method_options) are ignored. Baselines run all their
    epochs unless `patience` is given; GDSolver uses patience 2."""
    m = method(name)
    return m.factory(model, task, **{k: v for k, v in opts.items() if k in m.options and v is not None})
