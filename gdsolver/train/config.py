"""Settings of a GDSolver run as small frozen values, validated when made.

They are plain data (picklable, JSON-able through `asdict`), so a sweep's settings can go
to another process with the sweep; GDSolver's keyword arguments, `make_trainer`'s option
routing and run.json's config are derived from the fields here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import Field, asdict, dataclass, field, fields, replace
from typing import Any

from gdsolver.errors import ArgTypeError, GdsolverError
from gdsolver.compile.registry import backend_help
from gdsolver.pipeline import SOLVE_DEFAULTS, SolveSettings

LAYER_CHOICES = ("final", "all")
AUTO = "auto"
# the settings a task gets for "auto", from the benchmarks (docs/benchmarks.md): on the regression
# equations sweeps of every layer in a box of radius 1 (hidden layer on 50 points, then the output
# layer refitted) lowered Adam's test MSE 61-96% where the final layer at 0.05 gave -1.5%; on
# digits the final layer's cross-entropy sweep at 0.05 is what the validation check accepts
RECIPE = {"regression": {"radius": 1.0, "layers": "all"},
          "classification": {"radius": 0.05, "layers": "final"}}
# A classification sweep of a hidden layer (ReLUs after it): the recipe's 0.05 leaves every unit of
# a 784-input MNIST layer undecided at every point, and nothing was ever improved in 30 s; the box
# scales as 1 / fan-in instead, so that a unit's pre-activation moves about as much whatever its
# number of inputs. The constant was chosen on MNIST's validation split (benchmarks/results/mnist_limits.md:
# an MLP's two hidden layers and a CNN's, 1 and 2 epochs of Adam, block 8 on 32 points, 30 s): 1 / fan-in
# lowered the validation loss most in total (kept 4 of 6), 0.5 / fan-in was kept 5 of 6 with smaller steps,
# 2 and 4 / fan-in 3 of 6 (their solves ran into the limit), 16 / fan-in none.
HIDDEN_RADIUS_FAN_IN = 1.0


def auto_radius(task: str, fan_in: int, hidden: bool) -> float:
    """The box half-width "auto" gives a sweep of a layer with `fan_in` inputs: the task's recipe,
    except a classification hidden layer (`hidden`: not the network's last): HIDDEN_RADIUS_FAN_IN / fan_in."""
    if task == "classification" and hidden:
        return HIDDEN_RADIUS_FAN_IN / max(int(fan_in), 1)
    return float(RECIPE[task]["radius"])


def setting(default: Any, help: str | Callable[[], str], cli_type: type | None = None) -> Any:
    """A field of a settings record: its default (written here once) and its help text (a string,
    or a function giving one). `cli_type` (int, float, str, bool) makes it an option of
    `gdsolver train` (cli/train_cmd.py generates them); None keeps it to the Python API."""
    return field(default=default, metadata={"help": help, "cli_type": cli_type})


def help_text(f: Field) -> str:
    h = f.metadata.get("help", "")
    return h() if callable(h) else h
ACCEPT_ON = ("loss", "accuracy")


def positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    """An int (numpy integers too) >= 1 (>= 0 with allow_zero); GdsolverError naming `name` otherwise."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ArgTypeError(f"{name}: must be an integer >= {0 if allow_zero else 1}, got {type(value).__name__} "
                           f"{value!r}")
    v = int(value.__index__())
    if v < (0 if allow_zero else 1):
        raise GdsolverError(f"{name}: must be an integer >= {0 if allow_zero else 1}, got {value!r}")
    return v


def positive_float(name: str, value: Any) -> float:
    """A finite float > 0; GdsolverError naming `name` otherwise (ArgTypeError, a TypeError, for a
    value that is not a number: "0.1" is refused, not converted)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgTypeError(f"{name}: must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not (v > 0 and math.isfinite(v)):
        raise GdsolverError(f"{name}: must be a finite number > 0, got {value!r}")
    return v


def _layers(value: Any) -> str | tuple[int | str, ...]:
    if isinstance(value, str):
        if value in LAYER_CHOICES:
            return value
        return tuple(v.strip() for v in value.split(",") if v.strip()) or _bad_layers(value)
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return (int(value),)
    try:
        items = tuple(value)
    except TypeError:
        return _bad_layers(value)
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            return _bad_layers(value)
    return items or _bad_layers(value)


def _bad_layers(value: Any):
    raise GdsolverError(f"layers: {value!r}, expected 'final', 'all', or a list of dense-layer indices or "
                        "module / node names")


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep solves and how.

    layers: "final" (the paper), "all", or indices / names of the dense layers to sweep;
      with several, each sweep round visits them from the input side to the output.
    radius: box half-width around the current weights (per layer, adapted when adapt_radius).
    points: points per sweep; "auto" = 32 misclassified for classification, and for regression
      every training point when the sweep is an LP (final layer, identity output), else 50.
    mode: the head (gdsolver.formulate.heads); None = the loss being trained: regression
      "squared", classification "ce" (formulate.sweep.DEFAULT_MODE, measured).
    rounds / round_tol: tangent-cut rounds of a smooth head ("squared", "ce", "count+ce"): at
      most `rounds` refinements, until the surrogate is within round_tol (relative) of the loss.
    refit: regression with the squared head: a hidden-layer sweep's answer is judged after the
      last dense layer (identity output) is refitted by least squares on every training point,
      in the box a sweep of it would have (the measured recipe "hidden sweep + final-layer refit"):
      a hidden sweep that changes which ReLUs are active is only useful together with new output weights, which the final layer,
      fixed in the hidden layer's MIP, cannot have yet. The answer is then kept when the training
      loss after the refit is lower (instead of the solver's loss on its points, which assumes the
      old output weights) and the validation loss rule holds; a rejection restores both layers.
    block: a hidden-layer sweep frees only this many units of the swept layer (their incoming
      weights and bias, boxed); every other unit keeps its weights, so its outputs are data and
      its ReLUs add no binaries. The block moves over the layer from one sweep of it to the next
      (units 0..B-1, then B..2B-1, ..., wrapping). None: every unit. The last layer is always
      swept whole (it has no ReLU binaries of its own).
    tighten: seconds of LP bounds (gdsolver.formulate.tighten) on the pre-activations of the ReLU
      layers from the second after the swept one on, before the MIP: units they decide lose their
      binary. Interval bounds are exact for the first two, so a 784-256-128-10 MLP gains nothing;
      a 784-256-128-64-10 one had 138 of 182 layer-2 binaries decided in 15 s (radius 0.005).
    search: how a count head's MIP is searched (gdsolver.compile.search): "auto" (default:
      interval presolve + combinatorial Benders where the instance has the
      maximum-feasible-subsystem shape and the backend is HiGHS, else the plain MIP), "mip",
      "presolve" or "benders".
    """

    layers: str | tuple[int | str, ...] = setting(
        AUTO, "Dense layers to sweep: final, all, or indices / module names separated by commas; each round "
        "visits them from the input side; auto: the task's recipe (regression all, classification final).", str)
    radius: float | str = setting(AUTO, "Box half-width around the current weights; auto: the task's recipe "
                                  f"(regression 1, classification 0.05, a classification hidden layer "
                                  f"{HIDDEN_RADIUS_FAN_IN:g} / its number of inputs).", float)
    adapt_radius: bool = setting(True, "Halve a layer's box after a rejected sweep, double it after one that found "
                                 "nothing better.", bool)
    points: int | str | None = setting("auto", "Points per sweep (auto: 32 misclassified for a counting head; ce "
                                       "a seeded sample of 4096 on the last layer, else 256; regression every "
                                       "point when the sweep is an LP, else 50).", int)
    keep_correct: int = setting(0, "Counting heads: this many currently correct points must stay correct.", int)
    mode: str | None = setting(None, "Sweep head; default the loss being trained (squared error or "
                               "cross-entropy); paper, compact, count+ce, l1.", str)
    margin: float | None = setting(None, "Margin of a correct classification (default 1e-3; regression 0).", float)
    backend: str = setting(SOLVE_DEFAULTS.backend, backend_help, str)
    time_limit: float | None = setting(30.0, "Seconds per sweep, everything included.", float)
    mip_gap: float | None = setting(SOLVE_DEFAULTS.mip_gap, "Relative MIP gap to stop a sweep's solve at.", float)
    closest: bool = setting(SOLVE_DEFAULTS.closest, "Move a counting head's answer to the nearest weights with "
                            "its decisions and objective (an LP).", bool)
    rounds: int = setting(SOLVE_DEFAULTS.rounds, "Smooth heads solved by tangent cuts: at most this many rounds.",
                          int)
    round_tol: float = setting(SOLVE_DEFAULTS.round_tol, "... until the surrogate promises less than this "
                               "(relative).", float)
    search: str = setting(SOLVE_DEFAULTS.search, "How a count head's MIP is searched: auto (presolve + Benders "
                          "for paper/compact heads on HiGHS), mip, presolve, benders.", str)
    convex: str = setting(SOLVE_DEFAULTS.convex, "Convex sweeps (last layer, identity output, squared/ce): "
                          "direct (scipy, exact) or cuts (tangent rounds on the backend).", str)
    refit: bool = setting(True, "Regression: judge a hidden layer's sweep after refitting the output layer by "
                          "least squares.", bool)
    block: int | None = setting(None, "Hidden-layer sweeps: free only this many units of the layer (their "
                                "incoming weights), the rest fixed; the block moves over the layer from sweep "
                                "to sweep (default: every unit).", int)
    tighten: float | None = setting(None, "Hidden-layer sweeps: seconds of LP bounds on the later layers' "
                                    "pre-activations before the MIP (fewer binaries from the second ReLU layer "
                                    "after the swept one on; counted in the sweep's time). Default: none.", float)

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen)
        if self.layers != AUTO:
            set_("layers", _layers(self.layers))
        if self.radius != AUTO:
            set_("radius", positive_float("radius", self.radius))
        set_("adapt_radius", bool(self.adapt_radius))
        if self.points not in (None, "auto"):
            set_("points", positive_int("solver_points", self.points))
        set_("keep_correct", positive_int("keep_correct", self.keep_correct, allow_zero=True))
        if self.block is not None:
            set_("block", positive_int("block", self.block))
        if self.tighten is not None:
            set_("tighten", positive_float("tighten", self.tighten))
        if self.margin is not None:
            m = float(self.margin)
            if not (m >= 0 and math.isfinite(m)):
                raise GdsolverError(f"margin: must be a finite number >= 0, got {self.margin!r}")
        from gdsolver.compile import SolveOptions
        from gdsolver.compile.registry import check_backend_name

        check_backend_name(self.backend)
        SolveOptions(time_limit=self.time_limit, mip_gap=self.mip_gap)  # validated now, not at the first sweep
        set_("closest", bool(self.closest))
        set_("refit", bool(self.refit))
        set_("rounds", positive_int("rounds", self.rounds, allow_zero=True))
        from gdsolver.compile.search import SEARCHES
        if self.search not in SEARCHES:
            raise GdsolverError(f"search: {self.search!r} is not a search, expected one of {list(SEARCHES)}")
        set_("round_tol", positive_float("round_tol", self.round_tol))
        from gdsolver.pipeline import CONVEX_METHODS
        if self.convex not in CONVEX_METHODS:
            raise GdsolverError(f"convex: {self.convex!r}, expected one of {list(CONVEX_METHODS)}")
        if self.mode is not None:
            from gdsolver.formulate.head_table import CLASSIFICATION_MODES, REGRESSION_MODES

            if self.mode not in (*CLASSIFICATION_MODES, *REGRESSION_MODES):
                raise GdsolverError(f"mode: {self.mode!r}, expected one of classification "
                                    f"{list(CLASSIFICATION_MODES)} or regression {list(REGRESSION_MODES)}")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = self.layers if isinstance(self.layers, str) else list(self.layers)
        return d

    def for_task(self, task: str) -> "SweepConfig":
        """This config with its "auto" settings resolved by the task's measured recipe (RECIPE)."""
        auto = {k: v for k, v in RECIPE[task].items() if getattr(self, k) == AUTO}
        return replace(self, **auto) if auto else self

    def solve_settings(self, threads: int | None = None) -> SolveSettings:
        """How the pipeline (gdsolver.pipeline.solve_sweep) solves this config's sweeps."""
        return SolveSettings(backend=self.backend, search=self.search, time_limit=self.time_limit, threads=threads,
                             mip_gap=self.mip_gap, closest=self.closest, rounds=self.rounds,
                             round_tol=self.round_tol, convex=self.convex)


SWEEP_DEFAULTS = SweepConfig()


@dataclass(frozen=True)
class AcceptConfig:
    """When a sweep's answer is kept: it must strictly improve the solver's loss on its points
    (by a forward pass of the model), the watched validation figure ("loss", or "accuracy"
    for classification) must not worsen by more than val_tolerance (relative for a loss,
    absolute for accuracy), and the loss on every training point must not rise by more than
    train_tolerance (None: not checked): a sweep fitted on 256 sampled MNIST points lowered
    their loss 12.18 -> 1.50 and raised the whole training set's 0.0792 -> 0.0812."""

    accept_on: str = setting("loss", "Accept a sweep if the validation 'loss' or 'accuracy' (classification) does "
                             "not worsen beyond --val-tolerance.", str)
    val_tolerance: float = setting(0.01, "Allowed worsening: relative for loss, absolute for accuracy.", float)
    train_tolerance: float | None = setting(0.0, "The loss on every training point (a sweep sees a sample) must "
                                            "not rise by more than this, relative.", float)

    def __post_init__(self) -> None:
        if self.accept_on not in ACCEPT_ON:
            raise GdsolverError(f"accept_on: {self.accept_on!r}, expected one of {list(ACCEPT_ON)}")
        if not (self.val_tolerance >= 0):
            raise GdsolverError(f"val_tolerance: must be >= 0, got {self.val_tolerance}")
        object.__setattr__(self, "val_tolerance", float(self.val_tolerance))
        if self.train_tolerance is not None:
            if not (isinstance(self.train_tolerance, (int, float)) and self.train_tolerance >= 0):
                raise GdsolverError(f"train_tolerance: must be a number >= 0, got {self.train_tolerance!r}")
            object.__setattr__(self, "train_tolerance", float(self.train_tolerance))


EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class PortfolioConfig:
    """Portfolio sweeps: each sweep solves `portfolio` candidates (K) and tries them best first
    (gdsolver.train.portfolio says which candidates and in what order); 1 is the single sweep.

    executor: where the candidates are solved: "local" (one after another in this process) or
      "ray" (as Ray tasks, in parallel; the same results); None = "ray" when ray_address is
      given, else "local".
    ray_address: the Ray cluster to use ("HOST:PORT" or "auto"); None with "ray" starts a local
      Ray on this machine (bound to 127.0.0.1), or uses the Ray this process already started.
    """

    portfolio: int = setting(1, "Solve K candidate sweeps per sweep (radii r, 2r, r/2, ...; fresh point "
                             "samples) and try them best first.", int)
    executor: str | None = setting(None, "Where the candidates are solved: local or ray.")  # CLI: --ray
    ray_address: str | None = setting(None, "The Ray cluster to solve them on.")  # CLI: --ray-address

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen)
        set_("portfolio", positive_int("portfolio", self.portfolio))
        if self.ray_address is not None and (not isinstance(self.ray_address, str) or not self.ray_address.strip()):
            raise GdsolverError(f"ray_address: expected 'HOST:PORT' or 'auto', got {self.ray_address!r}")
        kind = self.executor if self.executor is not None else ("ray" if self.ray_address else "local")
        if kind not in EXECUTORS:
            raise GdsolverError(f"executor: {self.executor!r}, expected one of {list(EXECUTORS)}")
        if kind == "local" and self.ray_address is not None:
            raise GdsolverError(f"ray_address: {self.ray_address!r} given with executor='local'; use executor='ray'")
        if kind == "ray":
            import importlib.util

            from gdsolver.train.executor import RAY_EXTRA

            if importlib.util.find_spec("ray") is None:  # say so now, not at the first sweep
                raise GdsolverError(f"executor: 'ray' needs Ray, the optional extra gdsolver[ray]: {RAY_EXTRA}")
        set_("executor", kind)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GDConfig:
    """The GD phases of every GD trainer (the baselines, GDSolver's phases): each default written
    here once; Trainer / GDTrainer / GDSolver take them as keywords and `gdsolver train` as options.
    The trainers check the values (train.trainer)."""

    optimizer: str = setting("sgd", "GD optimizer: sgd, adam or lbfgs (full batch; an epoch is one step of at "
                             "most 20 iterations). The baselines name theirs (sgd, adam-lrs, lbfgs, ...).", str)
    lr: float | None = setting(None, "Learning rate (default: sgd 0.05, adam 0.01, lbfgs 1).", float)
    lr_schedule: str | None = setting(None, "LR schedule: step, plateau, cosine (the -lrs methods: plateau).", str)
    epochs: int = setting(20, "GD epochs (with a time budget: at most this many per GD phase).", int)
    batch_size: int = setting(32, "Minibatch size.", int)
    patience: int | None = setting(None, "Early-stopping patience in epochs (GDSolver: 2 unless set, its plateau "
                                   "test; the baselines run every epoch unless set).", int)
    momentum: float = setting(0.0, "SGD momentum.", float)
    weight_decay: float = setting(0.0, "L2 weight decay.", float)
    restarts: int | str = setting(1, "Initialisations, the best on validation kept (GDSolver: for its first GD "
                                  "phase); 'fill' with a time budget: as many as the time allows.", str)
    budget_s: float | None = setting(None, "Seconds of wall time: training stops inside it (GDSolver spends it on "
                                     "the moves that paid most per second: GD, sweeps, restarts; bpgrad and "
                                     "lifted-bcd take none).", float)
    seed: int = setting(0, "Seed of the split, the model and the training.", int)
    threads: int | None = setting(1, "CPU threads for torch and the solver (the small models here gain nothing "
                                  "from more; on a busy machine 2 made L-BFGS 120x slower).", int)


GD_DEFAULTS = GDConfig()


@dataclass(frozen=True)
class LoopConfig:
    """Algorithm 1's loop around the GD phases and the sweeps (GDSolver's docstring)."""

    max_sweeps: int = setting(2, "Sweep rounds (0: GD with early stopping only).", int)
    phase_epochs: int | None = setting(None, "At most this many GD epochs before each sweep round (default: "
                                       "until the validation loss plateaus or the epoch budget is spent).", int)
    phase_lrs: tuple[float, ...] | None = setting(None, "The learning rate of each GD phase, in order.")
    desired_loss: float | None = setting(None, "Stop when the monitored loss reaches this.", float)
    skip_sweeps: bool = setting(False, "The same GD phases and schedule without the solver (an ablation).")

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen)
        set_("max_sweeps", positive_int("max_sweeps", self.max_sweeps, allow_zero=True))
        if self.phase_epochs is not None:
            set_("phase_epochs", positive_int("phase_epochs", self.phase_epochs))
        if self.phase_lrs is not None:
            set_("phase_lrs", tuple(positive_float("phase_lrs", v) for v in self.phase_lrs))
        if self.desired_loss is not None:
            if isinstance(self.desired_loss, bool) or not isinstance(self.desired_loss, numbers.Real):
                raise ArgTypeError(f"desired_loss: must be a number, got {self.desired_loss!r}")
            if not (self.desired_loss >= 0):  # also refuses NaN, which no loss would ever reach
                raise GdsolverError(f"desired_loss: must be >= 0, got {self.desired_loss}")
            set_("desired_loss", float(self.desired_loss))
        set_("skip_sweeps", bool(self.skip_sweeps))

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["phase_lrs"] = None if self.phase_lrs is None else list(self.phase_lrs)
        return d


#: GDSolver's settings records, in the order its keywords and `gdsolver train`'s options list them
SETTINGS = (LoopConfig, SweepConfig, AcceptConfig, PortfolioConfig)

# GDSolver keyword -> config field, where they are spelled differently
KEYWORD_ALIASES = {"solver_points": "points"}


def field_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def keyword(name: str) -> str:
    """The trainer keyword of a record field (solver_points for SweepConfig.points)."""
    return {v: k for k, v in KEYWORD_ALIASES.items()}.get(name, name)


def keywords(cls) -> tuple[str, ...]:
    """The keyword arguments a trainer takes for this config's fields."""
    return tuple(keyword(n) for n in field_names(cls))


def split_settings(options: dict[str, Any], owner: str = "GDSolver") -> dict[type, dict[str, Any]]:
    """Trainer keywords -> {record: its fields' values}; a TypeError naming the keyword and the
    settings there are for one that belongs to no record."""
    out: dict[type, dict[str, Any]] = {cls: {} for cls in SETTINGS}
    for key, value in options.items():
        name = KEYWORD_ALIASES.get(key, key)
        cls = next((c for c in SETTINGS if name in field_names(c)), None)
        if cls is None:
            known = ", ".join(k for c in SETTINGS for k in keywords(c))
            raise TypeError(f"{owner}() got an unexpected keyword argument {key!r}; its settings are {known}")
        out[cls][name] = value
    return out


__all__ = ["GDConfig", "GD_DEFAULTS", "SweepConfig", "AcceptConfig", "PortfolioConfig", "LoopConfig", "SETTINGS",
           "setting", "keywords",
           "keyword", "split_settings", "positive_int", "positive_float"]
