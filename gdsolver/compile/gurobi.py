"""Gurobi backend: matrix API (addMVar, addMConstr), indicators compiled natively
with the vectorised addGenConstrIndicator. The pip package's restricted licence
allows at most 2000 variables and 2000 constraints, where linear constraints and
general (indicator) constraints count together (measured with gurobipy 13: 1000
linear + 1000 indicator constraints solve, 1000 + 1001 fail; nonzeros are not
limited). Beyond that Gurobi fails at optimize() with error 10010, which becomes a
LicenseLimitError naming the sizes (or, with fallback="highs", a HiGHS solve).
`licence_info()` finds out, once per process, which licence is present."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from gdsolver.compile.backend import Backend, check_common_options
from gdsolver.compile.result import SolveResult
from gdsolver.errors import GdsolverError, LicenseLimitError
from gdsolver.ir.gdsm import fingerprint
from gdsolver.ir.instance import BINARY, CONTINUOUS, MilpInstance

RESTRICTED_LIMIT = 2000  # variables; and linear + general constraints
_SIZE_LIMIT_ERROR = 10010


def _gurobipy():
    try:
        import gurobipy
    except ImportError:
        raise GdsolverError("backend 'gurobi' needs the gurobipy package: pip install gurobipy") from None
    return gurobipy


def quiet_env():
    """A started gurobipy Env with output off; the caller disposes of it."""
    gp = _gurobipy()
    try:
        env = gp.Env(empty=True)
        env.setParam("OutputFlag", 0)
        env.start()
    except gp.GurobiError as exc:
        raise LicenseLimitError(f"Gurobi: no usable licence ({exc})") from None
    return env


@dataclass(frozen=True)
class GurobiLicence:
    """What this process can do with Gurobi. state: "none" (not usable, see reason),
    "restricted" (size-limited pip licence) or "full"."""

    state: str
    reason: str = ""
    version: str | None = None
    max_variables: int | None = None
    max_constraints: int | None = None  # linear + general (indicator) constraints

    @property
    def available(self) -> bool:
        return self.state != "none"

    def fits(self, inst: MilpInstance) -> bool:
        if not self.available:
            return False
        if self.state == "full":
            return True
        nv, nc = gurobi_size(inst)
        return nv <= self.max_variables and nc <= self.max_constraints


@functools.lru_cache(maxsize=1)
def licence_info() -> GurobiLicence:
    """Import gurobipy, start a quiet environment and solve an empty model of
    RESTRICTED_LIMIT + 1 variables: error 10010 means a size-limited licence. Never
    raises; cached for the process."""
    try:
        import gurobipy as gp
    except ImportError:
        return GurobiLicence("none", "gurobipy is not installed (pip install gurobipy)")
    version = ".".join(str(v) for v in gp.gurobi.version())
    try:
        env = gp.Env(empty=True)
        env.setParam("OutputFlag", 0)
        env.start()
    except gp.GurobiError as exc:
        return GurobiLicence("none", f"no usable Gurobi licence ({exc})", version)
    try:
        m = gp.Model(env=env)
        m.addMVar(RESTRICTED_LIMIT + 1)
        m.optimize()
        m.dispose()
    except gp.GurobiError as exc:
        if getattr(exc, "errno", None) == _SIZE_LIMIT_ERROR:
            return GurobiLicence("restricted", "size-limited licence", version, RESTRICTED_LIMIT, RESTRICTED_LIMIT)
        return GurobiLicence("none", f"Gurobi failed on a trivial model ({exc})", version)
    finally:
        env.dispose()
    return GurobiLicence("full", "", version)


def _split(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks of the rows Gurobi gets as =, >= and <= constraints (a range row is two;
    a row free on both sides is dropped)."""
    eq = lo == hi
    return eq, np.isfinite(lo) & ~eq, np.isfinite(hi) & ~eq


def gurobi_size(inst: MilpInstance) -> tuple[int, int]:
    """(variables, constraints) as Gurobi's licence counts them for build_gurobi's model:
    constraints are linear plus indicator constraints, range rows counting twice."""
    lin = sum(int(np.count_nonzero(m)) for m in _split(inst.row_lo, inst.row_hi))
    ind = sum(int(np.count_nonzero(m)) for m in _split(inst.ind_lo, inst.ind_hi)) if inst.num_indicators else 0
    return inst.num_vars, lin + ind


def _scipy_csr(mat, n: int):
    import scipy.sparse as sp

    return sp.csr_matrix((mat.data, mat.indices, mat.indptr), shape=(mat.nrows, n))


def build_gurobi(inst: MilpInstance, env, params: dict[str, Any] | None = None):
    """A gurobipy Model holding `inst` (indicators native). Bulk calls only."""
    gp = _gurobipy()
    GRB = gp.GRB
    inst.validate()
    m = gp.Model(env=env)
    for key, value in (params or {}).items():
        try:
            m.setParam(key, value)
        except (gp.GurobiError, TypeError, ValueError) as exc:
            raise GdsolverError(f"Gurobi parameter {key!r}: invalid value {value!r} ({exc})") from None
    vt = np.where(inst.vtype == CONTINUOUS, GRB.CONTINUOUS, np.where(inst.vtype == BINARY, GRB.BINARY, GRB.INTEGER))
    x = m.addMVar(inst.num_vars, lb=inst.lb, ub=inst.ub, vtype=vt, obj=inst.c)
    m.ObjCon = inst.c0
    m.ModelSense = GRB.MINIMIZE if inst.sense == "min" else GRB.MAXIMIZE
    A = _scipy_csr(inst.A, inst.num_vars)
    lo, hi = inst.row_lo, inst.row_hi
    eq, ge, le = _split(lo, hi)
    for mask, sense, rhs in ((eq, GRB.EQUAL, lo), (ge, GRB.GREATER_EQUAL, lo), (le, GRB.LESS_EQUAL, hi)):
        if mask.any():
            m.addMConstr(A[mask], x, sense, rhs[mask])
    if inst.num_indicators:
        B = _scipy_csr(inst.ind_A, inst.num_vars)
        z = x[inst.ind_var.astype(np.int64)]
        lo, hi = inst.ind_lo, inst.ind_hi
        eq, ge, le = _split(lo, hi)
        for mask, sense, rhs in ((eq, GRB.EQUAL, lo), (ge, GRB.GREATER_EQUAL, lo), (le, GRB.LESS_EQUAL, hi)):
            if mask.any():
                idx = np.flatnonzero(mask)
                m.addGenConstrIndicator(z[idx], inst.ind_val[idx].astype(bool), B[idx] @ x, sense, rhs[idx])
    m.update()
    return m, x


def gurobi_params(time_limit: float | None, threads: int | None, mip_gap: float | None,
                  options: dict[str, Any] | None) -> dict[str, Any]:
    """The common options as Gurobi parameters (TimeLimit, Threads, MIPGap); explicit
    ones win over the same names in `options`."""
    params: dict[str, Any] = dict(options or {})
    if time_limit is not None:
        params["TimeLimit"] = float(time_limit)
    if threads is not None:
        params["Threads"] = int(threads)
    if mip_gap is not None:
        params["MIPGap"] = float(mip_gap)
    return params


# Gurobi status name -> (SolveResult status with a point, without a point). Limits and
# interruptions keep the incumbent as FEASIBLE; a time limit without one is TIME_LIMIT.
_STATUS_MAP: dict[str, tuple[str, str]] = {
    "OPTIMAL": ("OPTIMAL", "ERROR"),
    "INFEASIBLE": ("INFEASIBLE", "INFEASIBLE"),
    "INF_OR_UNBD": ("INFEASIBLE", "INFEASIBLE"),  # only after the DualReductions=0 re-solve could not tell
    "UNBOUNDED": ("UNBOUNDED", "UNBOUNDED"),
    "TIME_LIMIT": ("FEASIBLE", "TIME_LIMIT"),
    "WORK_LIMIT": ("FEASIBLE", "TIME_LIMIT"),  # deterministic time limit
    "ITERATION_LIMIT": ("FEASIBLE", "ERROR"),
    "NODE_LIMIT": ("FEASIBLE", "ERROR"),
    "SOLUTION_LIMIT": ("FEASIBLE", "ERROR"),
    "USER_OBJ_LIMIT": ("FEASIBLE", "ERROR"),
    "INTERRUPTED": ("FEASIBLE", "ERROR"),
    "MEM_LIMIT": ("FEASIBLE", "ERROR"),
    "SUBOPTIMAL": ("FEASIBLE", "ERROR"),
    "NUMERIC": ("FEASIBLE", "ERROR"),
    "CUTOFF": ("FEASIBLE", "ERROR"),
    "LOCALLY_OPTIMAL": ("FEASIBLE", "ERROR"),
    "LOCALLY_INFEASIBLE": ("FEASIBLE", "ERROR"),
    "LOADED": ("ERROR", "ERROR"),
    "INPROGRESS": ("ERROR", "ERROR"),
}


def status_name(code: int) -> str:
    """Gurobi's name for a status code (e.g. 9 -> "TIME_LIMIT")."""
    gp = _gurobipy()
    for name in dir(gp.GRB.Status):
        if name.isupper() and getattr(gp.GRB.Status, name) == code:
            return name
    return f"STATUS_{code}"


def map_status(name: str, has_x: bool) -> str:
    """A Gurobi status name onto SolveResult's statuses."""
    with_x, without_x = _STATUS_MAP.get(name, ("FEASIBLE", "ERROR"))
    return with_x if has_x else without_x


class GurobiBackend(Backend):
    name = "gurobi"
    features = frozenset({"lp", "mip", "mip_start", "indicators", "time_limit", "threads", "mip_gap"})

    def version(self) -> str:
        return ".".join(str(v) for v in _gurobipy().gurobi.version())

    def licence_error(self, inst: MilpInstance) -> LicenseLimitError:
        nv, nc = gurobi_size(inst)
        return LicenseLimitError(
            f"Gurobi's restricted licence allows at most {RESTRICTED_LIMIT} variables and {RESTRICTED_LIMIT} "
            f"constraints (linear + indicator); this instance has {nv} variables and {nc} constraints "
            f"({inst.num_rows} rows, {inst.num_indicators} indicators; a range row counts twice) "
            f"(use --backend highs or auto, or a full licence)")

    def solve(self, inst: MilpInstance, *, time_limit: float | None = None, threads: int | None = None,
              mip_gap: float | None = None, use_start: bool = True, options: dict[str, Any] | None = None,
              fallback: str | None = None) -> SolveResult:
        check_common_options(time_limit, threads, mip_gap)
        if fallback is not None and fallback != "highs":
            raise GdsolverError(f"fallback: must be 'highs' (or none), got {fallback!r}")
        gp = _gurobipy()
        GRB = gp.GRB
        params = gurobi_params(time_limit, threads, mip_gap, options)
        env = quiet_env()
        try:
            m, x = build_gurobi(inst, env, params)
            if use_start and inst.start is not None and inst.is_mip:
                x.Start = inst.start
            t0 = time.perf_counter()
            try:
                m.optimize()
            except gp.GurobiError as exc:
                if getattr(exc, "errno", None) == _SIZE_LIMIT_ERROR:
                    if fallback:
                        from gdsolver.compile.backend import get_backend

                        res = get_backend(fallback).solve(inst, time_limit=time_limit, threads=threads,
                                                          mip_gap=mip_gap, use_start=use_start)
                        res.message = f"gurobi licence too small, solved with {fallback}; {res.message}"
                        return res
                    raise self.licence_error(inst) from None
                raise GdsolverError(f"Gurobi error {getattr(exc, 'errno', '')}: {exc}") from None
            runtime = time.perf_counter() - t0
            if m.Status == GRB.INF_OR_UNBD:
                # presolve's dual reductions may not tell which; without them Gurobi does
                m.setParam("DualReductions", 0)
                m.reset()
                m.optimize()
                runtime = time.perf_counter() - t0
            return self._result(inst, m, x, runtime, time_limit, threads, mip_gap, use_start, options)
        finally:
            env.dispose()

    def _result(self, inst, m, x, runtime, time_limit, threads, mip_gap, use_start, options) -> SolveResult:
        name = status_name(m.Status)
        has_x = m.SolCount > 0
        status = map_status(name, has_x)
        xv = np.asarray(x.X, dtype=np.float64) if has_x and status in ("OPTIMAL", "FEASIBLE") else None
        objective = inst.objective_value(xv) if xv is not None else None
        if inst.is_mip:
            bound = float(m.ObjBound) if np.isfinite(m.ObjBound) else None
            gap = float(m.MIPGap) if xv is not None and np.isfinite(m.MIPGap) else None
            nodes = int(m.NodeCount)
        else:
            bound, gap, nodes = (objective, 0.0, None) if status == "OPTIMAL" else (None, None, None)
        message = f"gurobi status {name}"
        if name == "INF_OR_UNBD":
            message += " (infeasible or unbounded; Gurobi could not tell which)"
        elif status == "FEASIBLE":
            message += " (stopped early; best point found" + (f", gap {gap:.3g})" if gap is not None else ")")
        elif status == "TIME_LIMIT":
            message += " (no feasible point found in time)"
        return SolveResult(status=status, x=xv, objective=objective, bound=bound, gap=gap, runtime_s=runtime,
                           nodes=nodes, backend=self.name, backend_version=self.version(),
                           message=message, instance_fingerprint=fingerprint(inst),
                           options={"time_limit": time_limit, "threads": threads, "mip_gap": mip_gap,
                                    "use_start": use_start, **(options or {})})
