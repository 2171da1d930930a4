"""Settings of a GDSolver run as small frozen values, validated when made.

They are plain data (picklable, JSON-able through `asdict`), so a sweep's settings can go
to another process with the sweep; GDSolver's keyword arguments, `make_trainer`'s option
routing and run.json's config are derived from the fields here.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

from gdsolver.errors import ArgTypeError, GdsolverError
from gdsolver.pipeline import SOLVE_DEFAULTS, SolveSettings

LAYER_CHOICES = ("final", "all")
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
      "squared", classification the measured default (train.sweep.DEFAULT_CLASSIFICATION_MODE).
    rounds / round_tol: tangent-cut rounds of a smooth head ("squared", "ce", "count+ce"): at
      most `rounds` refinements, until the surrogate is within round_tol (relative) of the loss.
    refit: regression with the squared head: a hidden-layer sweep's answer is judged after the
      last dense layer (identity output) is refitted by least squares on every training point,
      in the box a sweep of it would have (the measured recipe "hidden sweep + final-layer refit"):
      a hidden sweep that changes which ReLUs are active is only useful together with new output weights, which the final layer,
      fixed in the hidden layer's MIP, cannot have yet. The answer is then kept when the training
      loss after the refit is lower (instead of the solver's loss on its points, which assumes the
      old output weights) and the validation loss rule holds; a rejection restores both layers.
    search: how a count head's MIP is searched (gdsolver.compile.search): "auto" (default:
      interval presolve + combinatorial Benders where the instance has the
      maximum-feasible-subsystem shape and the backend is HiGHS, else the plain MIP), "mip",
      "presolve" or "benders".
    """

    layers: str | tuple[int | str, ...] = "final"
    radius: float = 0.05
    adapt_radius: bool = True
    points: int | str | None = "auto"
    keep_correct: int = 0
    mode: str | None = None
    margin: float | None = None
    backend: str = SOLVE_DEFAULTS.backend
    time_limit: float | None = 30.0  # a trainer's sweeps are bounded (`gdsolver solve`'s are not by default)
    mip_gap: float | None = SOLVE_DEFAULTS.mip_gap
    closest: bool = SOLVE_DEFAULTS.closest
    rounds: int = SOLVE_DEFAULTS.rounds
    round_tol: float = SOLVE_DEFAULTS.round_tol
    search: str = SOLVE_DEFAULTS.search
    refit: bool = True

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen)
        set_("layers", _layers(self.layers))
        set_("radius", positive_float("radius", self.radius))
        set_("adapt_radius", bool(self.adapt_radius))
        if self.points not in (None, "auto"):
            set_("points", positive_int("solver_points", self.points))
        set_("keep_correct", positive_int("keep_correct", self.keep_correct, allow_zero=True))
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
        if self.mode is not None:
            from gdsolver.formulate.sweep import CLASSIFICATION_MODES, REGRESSION_MODES

            if self.mode not in (*CLASSIFICATION_MODES, *REGRESSION_MODES):
                raise GdsolverError(f"mode: {self.mode!r}, expected one of classification "
                                    f"{list(CLASSIFICATION_MODES)} or regression {list(REGRESSION_MODES)}")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = self.layers if isinstance(self.layers, str) else list(self.layers)
        return d

    def solve_settings(self, threads: int | None = None) -> SolveSettings:
        """How the pipeline (gdsolver.pipeline.solve_sweep) solves this config's sweeps."""
        return SolveSettings(backend=self.backend, search=self.search, time_limit=self.time_limit, threads=threads,
                             mip_gap=self.mip_gap, closest=self.closest, rounds=self.rounds,
                             round_tol=self.round_tol)


@dataclass(frozen=True)
class AcceptConfig:
    """When a sweep's answer is kept: it must strictly improve the solver's loss on its points
    (by a forward pass of the model) and the watched validation figure ("loss", or "accuracy"
    for classification) must not worsen by more than val_tolerance (relative for a loss,
    absolute for accuracy)."""

    accept_on: str = "loss"
    val_tolerance: float = 0.01

    def __post_init__(self) -> None:
        if self.accept_on not in ACCEPT_ON:
            raise GdsolverError(f"accept_on: {self.accept_on!r}, expected one of {list(ACCEPT_ON)}")
        if not (self.val_tolerance >= 0):
            raise GdsolverError(f"val_tolerance: must be >= 0, got {self.val_tolerance}")
        object.__setattr__(self, "val_tolerance", float(self.val_tolerance))


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

    portfolio: int = 1
    executor: str | None = None
    ray_address: str | None = None

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


# GDSolver keyword -> config field, where they are spelled differently
KEYWORD_ALIASES = {"solver_points": "points"}


def field_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def keywords(cls) -> tuple[str, ...]:
    """The keyword arguments a trainer takes for this config's fields."""
    inverse = {v: k for k, v in KEYWORD_ALIASES.items()}
    return tuple(inverse.get(n, n) for n in field_names(cls))


__all__ = ["SweepConfig", "AcceptConfig", "PortfolioConfig", "keywords", "positive_int", "positive_float"]
