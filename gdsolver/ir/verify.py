"""Solver-free check of a solution against an instance: bounds, integrality, rows,
indicators. The trainer verifies every solver answer with this before using it.

Tolerances are relative to the scale of the numbers compared (`gdsolver.ir.numerics`):
a variable's violation is measured against max(|bound|, its magnitude), a constraint's
against max(|bound|, its activity at x, 1e-3 of its box magnitude) (a single-term
constraint like a bound). So the same answer verifies whether the features are 1e-9 or
1e12, and a threshold such as a classification margin is held to its own size wherever
the terms at x are of that size. Integrality is absolute (binaries live on [0, 1])."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gdsolver.errors import InstanceError
from gdsolver.ir.instance import CONTINUOUS, MilpInstance, require_instance
from gdsolver.ir.numerics import bound_scale, constraint_scale, variable_magnitude


@dataclass(frozen=True)
class Violation:
    kind: str
    value: float  # absolute violation of the worst offender (worst relative to its scale), 0.0 if none
    where: str  # label of the worst offender ('' if none)
    scale: float = 1.0  # the magnitude `value` is measured against: ok iff value <= tol * scale

    @property
    def relative(self) -> float:
        return self.value / self.scale if self.scale > 0 else (0.0 if self.value == 0 else float("inf"))


@dataclass(frozen=True)
class VerifyReport:
    tol: float
    violations: dict[str, Violation] = field(default_factory=dict)
    objective: float = float("nan")

    @property
    def ok(self) -> bool:
        return all(v.relative <= self.tol for v in self.violations.values())

    @property
    def max_violation(self) -> float:
        """Largest absolute violation among the worst offenders of each kind."""
        return max((v.value for v in self.violations.values()), default=0.0)

    @property
    def max_relative(self) -> float:
        return max((v.relative for v in self.violations.values()), default=0.0)

    def __str__(self) -> str:
        def part(k: str, v: Violation) -> str:
            if v.relative <= self.tol:
                return f"{k}={v.relative:.3g}"
            return f"{k}={v.relative:.3g} ({v.value:.3g} at scale {v.scale:.3g}) at {v.where}"

        return ("ok" if self.ok else "VIOLATED") + f" (relative tol {self.tol:g}): " + ", ".join(
            part(k, v) for k, v in self.violations.items())


def _worst(kind: str, viol: np.ndarray, scale: np.ndarray, label) -> Violation:
    if len(viol) == 0:
        return Violation(kind, 0.0, "")
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(viol > 0, viol / scale, 0.0)
    i = int(np.argmax(rel))
    if not rel[i] > 0:
        return Violation(kind, 0.0, "")
    return Violation(kind, float(viol[i]), label(i), float(scale[i]))


def _range_violation(val: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.maximum(np.maximum(lo - val, val - hi), 0.0)


def verify(inst: MilpInstance, x: np.ndarray, tol: float = 1e-6) -> VerifyReport:
    """Worst violation per kind, each relative to its own scale (module docstring).
    Indicators are checked where the binary rounds to the indicator's value
    (integrality is reported separately)."""
    require_instance(inst)
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (inst.num_vars,):
        raise InstanceError(f"solution has shape {x.shape}, expected ({inst.num_vars},)")
    if not np.all(np.isfinite(x)):
        i = int(np.argmax(~np.isfinite(x)))
        nan = Violation("finite", float("inf"), inst.var_label(i))
        return VerifyReport(tol, {"finite": nan})
    m = variable_magnitude(inst, x)
    viol = {}
    v = _range_violation(x, inst.lb, inst.ub)
    viol["bounds"] = _worst("bounds", v, bound_scale(x, inst.lb, inst.ub, m), inst.var_label)
    integer = inst.vtype != CONTINUOUS
    frac = np.where(integer, np.abs(x - np.round(x)), 0.0)
    viol["integrality"] = _worst("integrality", frac, np.ones_like(frac), inst.var_label)
    ax = inst.A.matvec(x)
    viol["rows"] = _worst("rows", _range_violation(ax, inst.row_lo, inst.row_hi),
                          constraint_scale(inst.A, ax, inst.row_lo, inst.row_hi, x, m), inst.row_label)
    if inst.num_indicators:
        active = np.round(x[inst.ind_var]) == inst.ind_val
        ix = inst.ind_A.matvec(x)
        v = np.where(active, _range_violation(ix, inst.ind_lo, inst.ind_hi), 0.0)
        scale = constraint_scale(inst.ind_A, ix, inst.ind_lo, inst.ind_hi, x, m)
    else:
        v, scale = np.zeros(0), np.zeros(0)
    viol["indicators"] = _worst("indicators", v, scale, inst.ind_label)
    return VerifyReport(tol, viol, inst.objective_value(x))
