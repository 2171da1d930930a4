"""The solver-independent MILP intermediate representation (numpy only)."""

from gdsolver.ir.bounds import indicator_bounds, row_bounds
from gdsolver.ir.csr import Csr
from gdsolver.ir.gdsm import fingerprint, load, read_header, save
from gdsolver.ir.instance import BINARY, CONTINUOUS, INTEGER, InstanceBuilder, MilpInstance
from gdsolver.ir.lower import LoweringMap, lower
from gdsolver.ir.verify import VerifyReport, verify

__all__ = ["MilpInstance", "InstanceBuilder", "Csr", "CONTINUOUS", "BINARY", "INTEGER", "row_bounds",
           "indicator_bounds", "lower", "LoweringMap", "verify", "VerifyReport", "save", "load",
           "read_header", "fingerprint"]
