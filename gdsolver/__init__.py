"""gdsolver: hybrid gradient-descent + MILP training of neural networks (GDSolver).

The short forms: `gdsolver.save(inst, path)`, `gdsolver.load(path)`,
`gdsolver.solve(inst, backend="highs", ...)`, `gdsolver.verify(inst, x)`; training:
`gdsolver.GDSolver(model, task=...).fit(train, val)` and the `gdsolver.GDTrainer` baselines;
one verified sweep of a layer of a torch model: `gdsolver.sweep(model, (X, y), layer=...)`;
a certified repair of a torch model's known mistakes: `gdsolver.repair(model, fix=(X, y), keep=X)`.
"""

from gdsolver._version import __version__
from gdsolver.compile import SolveResult, get_backend, load_result, save_result, solve
from gdsolver.errors import (ArgTypeError, BackendUnavailableError, FormatError, GdsolverError, InstanceError,
                             LicenseLimitError, MissingFileError, OptionError, SolveInterrupted, UnsupportedModelError)
from gdsolver.ir import MilpInstance, load, lower, save, verify

_TRAIN = ("GDSolver", "GDTrainer", "History", "clone_model")  # re-exported lazily (torch is heavy)
_ONE_SWEEP = ("sweep", "SweepReport")  # gdsolver.train.one_sweep (gdsolver.train.sweep is a module)
_REPAIR = ("repair", "RepairReport")  # gdsolver.repairs

__all__ = [*_TRAIN, *_ONE_SWEEP, *_REPAIR, "__version__", "MilpInstance", "save", "load", "lower", "verify", "solve", "get_backend",
           "SolveResult", "save_result", "load_result", "GdsolverError", "FormatError", "LicenseLimitError",
           "ArgTypeError", "MissingFileError",
           "InstanceError", "OptionError", "BackendUnavailableError", "UnsupportedModelError", "SolveInterrupted"]


def __getattr__(name: str):
    if name in _TRAIN:
        import gdsolver.train

        return getattr(gdsolver.train, name)
    if name in _ONE_SWEEP:
        import gdsolver.train.one_sweep

        return getattr(gdsolver.train.one_sweep, name)
    if name in _REPAIR:
        import gdsolver.repairs

        return getattr(gdsolver.repairs, name)
    raise AttributeError(f"module 'gdsolver' has no attribute {name!r}")
