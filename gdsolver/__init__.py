"""gdsolver: hybrid gradient-descent + MILP training of neural networks (GDSolver).

The short forms: `gdsolver.save(inst, path)`, `gdsolver.load(path)`,
`gdsolver.solve(inst, backend="highs", ...)`, `gdsolver.verify(inst, x)`.
"""

from gdsolver._version import __version__
from gdsolver.compile import SolveResult, get_backend, load_result, save_result, solve
from gdsolver.errors import FormatError, GdsolverError, LicenseLimitError
from gdsolver.ir import MilpInstance, load, lower, save, verify

__all__ = ["__version__", "MilpInstance", "save", "load", "lower", "verify", "solve", "get_backend",
           "SolveResult", "save_result", "load_result", "GdsolverError", "FormatError", "LicenseLimitError"]
