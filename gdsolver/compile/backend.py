"""The old import path of the backend interface, kept so that existing code keeps
working: the contract is in `gdsolver.compile.base`, the list of backends, `auto`
and `solve` in `gdsolver.compile.registry`."""

from __future__ import annotations

from gdsolver.compile.base import Backend, Feature, SolveOptions
from gdsolver.compile.registry import (AUTO, DEFAULT_BACKEND, backend_choices, backend_info, backend_names,
                                       get_backend, solve)

#: the solvers' names (without "auto"), and what --backend accepts
BACKENDS = backend_names()
BACKEND_CHOICES = backend_choices()
FEATURES = tuple(f.value for f in Feature)


def check_common_options(time_limit: float | None, threads: int | None, mip_gap: float | None) -> None:
    """OptionError (a ValueError) unless the common options are valid."""
    SolveOptions(time_limit=time_limit, threads=threads, mip_gap=mip_gap)


__all__ = ["Backend", "Feature", "SolveOptions", "BACKENDS", "BACKEND_CHOICES", "FEATURES", "AUTO",
           "DEFAULT_BACKEND", "get_backend", "backend_info", "solve", "check_common_options"]
