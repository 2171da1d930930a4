"""`gdsolver inspect`: what an instance file holds (MilpInstance.summary), whether a solver
would take its numbers (ir.numerics), and what the interval presolve decides on it."""

from __future__ import annotations

import time
from typing import Any

from gdsolver.errors import GdsolverError
from gdsolver.ir.instance import MilpInstance
from gdsolver.compile.registry import DEFAULT_BACKEND


def presolve_report(inst: MilpInstance) -> dict[str, Any]:
    """ir.presolve's summary, its fixings counted per point (compile.search.count_fixings) and its time."""
    from gdsolver.compile.search import count_fixings
    from gdsolver.ir.presolve import presolve

    t0 = time.perf_counter()
    pre = presolve(inst)
    return {**pre.summary(inst), "counts": count_fixings(inst, pre), "time_s": time.perf_counter() - t0}


def numerics_report(inst: MilpInstance) -> dict[str, Any]:
    """Whether every solver would refuse the instance on its numbers, and why (ir.numerics)."""
    from gdsolver.ir.numerics import check_numerics

    try:
        num = check_numerics(inst)
    except GdsolverError as exc:
        return {"solvable": False, "reason": str(exc)}
    return {"solvable": True, "significant_coefficient_range": num.range_ratio,
            "negligible_coefficients": num.negligible, "reason": None}


def instance_report(inst: MilpInstance, presolve: bool = True) -> dict[str, Any]:
    """The instance's summary with its numerics and (when `presolve`) the presolve report: what
    `gdsolver inspect --json` prints."""
    s = inst.summary()
    if presolve:
        s["presolve"] = presolve_report(inst)
    s["numerics"] = numerics_report(inst)
    s["memory"] = memory_report(inst)
    return s


def memory_report(inst: MilpInstance) -> dict[str, Any] | None:
    """HiGHS's estimated peak memory solving the instance, from its sizes (compile.memory)."""
    from gdsolver.compile.memory import estimate_peak_mb

    return estimate_peak_mb(inst, DEFAULT_BACKEND)
