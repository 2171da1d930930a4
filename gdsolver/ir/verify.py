"""Solver-free check of a solution against an instance: bounds, integrality, rows,
indicators. The trainer verifies every solver answer with this before using it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gdsolver.errors import InstanceError
from gdsolver.ir.instance import CONTINUOUS, MilpInstance


@dataclass(frozen=True)
class Violation:
    kind: str
    value: float  # worst absolute violation, 0.0 if none
    where: str  # label of the worst offender ('' if none)


@dataclass(frozen=True)
class VerifyReport:
    tol: float
    violations: dict[str, Violation] = field(default_factory=dict)
    objective: float = float("nan")

    @property
    def ok(self) -> bool:
        return all(v.value <= self.tol for v in self.violations.values())

    @property
    def max_violation(self) -> float:
        return max((v.value for v in self.violations.values()), default=0.0)

    def __str__(self) -> str:
        parts = [f"{k}={v.value:.3g}" + (f" at {v.where}" if v.value > self.tol else "") for k, v in self.violations.items()]
        return ("ok" if self.ok else "VIOLATED") + f" (tol {self.tol:g}): " + ", ".join(parts)


def _worst(kind: str, viol: np.ndarray, label) -> Violation:
    if len(viol) == 0:
        return Violation(kind, 0.0, "")
    i = int(np.argmax(viol))
    v = float(viol[i])
    return Violation(kind, max(v, 0.0), label(i) if v > 0 else "")


def _range_violation(val: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.maximum(np.maximum(lo - val, val - hi), 0.0)


def verify(inst: MilpInstance, x: np.ndarray, tol: float = 1e-6) -> VerifyReport:
    """Worst violation per kind. Indicators are checked where the binary rounds to
    the indicator's value (integrality is reported separately)."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (inst.num_vars,):
        raise InstanceError(f"solution has shape {x.shape}, expected ({inst.num_vars},)")
    if not np.all(np.isfinite(x)):
        i = int(np.argmax(~np.isfinite(x)))
        nan = Violation("finite", float("inf"), inst.var_label(i))
        return VerifyReport(tol, {"finite": nan})
    viol = {}
    viol["bounds"] = _worst("bounds", _range_violation(x, inst.lb, inst.ub), inst.var_label)
    integer = inst.vtype != CONTINUOUS
    frac = np.where(integer, np.abs(x - np.round(x)), 0.0)
    viol["integrality"] = _worst("integrality", frac, inst.var_label)
    viol["rows"] = _worst("rows", _range_violation(inst.A.matvec(x), inst.row_lo, inst.row_hi), inst.row_label)
    if inst.num_indicators:
        active = np.round(x[inst.ind_var]) == inst.ind_val
        v = np.where(active, _range_violation(inst.ind_A.matvec(x), inst.ind_lo, inst.ind_hi), 0.0)
    else:
        v = np.zeros(0)
    viol["indicators"] = _worst("indicators", v, inst.ind_label)
    return VerifyReport(tol, viol, inst.objective_value(x))
