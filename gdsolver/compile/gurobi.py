"""Gurobi backend: matrix API (addMVar, addMConstr), indicators compiled natively
with the vectorised addGenConstrIndicator. The pip package's restricted licence
allows at most 2000 variables and 2000 linear constraints; beyond that Gurobi fails
at optimize() with error 10010, which becomes a LicenseLimitError naming the sizes
(or, with fallback="highs", a HiGHS solve)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from gdsolver.compile.backend import Backend, check_common_options
from gdsolver.compile.result import SolveResult
from gdsolver.errors import GdsolverError, LicenseLimitError
from gdsolver.ir.gdsm import fingerprint
from gdsolver.ir.instance import BINARY, CONTINUOUS, MilpInstance

RESTRICTED_LIMIT = 2000
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
    eq = lo == hi
    ge = np.isfinite(lo) & ~eq
    le = np.isfinite(hi) & ~eq
    for mask, sense, rhs in ((eq, GRB.EQUAL, lo), (ge, GRB.GREATER_EQUAL, lo), (le, GRB.LESS_EQUAL, hi)):
        if mask.any():
            m.addMConstr(A[mask], x, sense, rhs[mask])
    if inst.num_indicators:
        B = _scipy_csr(inst.ind_A, inst.num_vars)
        z = x[inst.ind_var.astype(np.int64)]
        lo, hi = inst.ind_lo, inst.ind_hi
        eq = lo == hi
        for mask, sense, rhs in ((eq, GRB.EQUAL, lo), (np.isfinite(lo) & ~eq, GRB.GREATER_EQUAL, lo),
                                 (np.isfinite(hi) & ~eq, GRB.LESS_EQUAL, hi)):
            if mask.any():
                idx = np.flatnonzero(mask)
                m.addGenConstrIndicator(z[idx], inst.ind_val[idx].astype(bool), B[idx] @ x, sense, rhs[idx])
    m.update()
    return m, x


class GurobiBackend(Backend):
    name = "gurobi"
    features = frozenset({"lp", "mip", "mip_start", "indicators", "time_limit", "threads"})

    def version(self) -> str:
        return ".".join(str(v) for v in _gurobipy().gurobi.version())

    def solve(self, inst: MilpInstance, *, time_limit: float | None = None, threads: int | None = None,
              mip_gap: float | None = None, use_start: bool = True, options: dict[str, Any] | None = None,
              fallback: str | None = None) -> SolveResult:
        check_common_options(time_limit, threads, mip_gap)
        gp = _gurobipy()
        GRB = gp.GRB
        params: dict[str, Any] = dict(options or {})
        if time_limit is not None:
            params["TimeLimit"] = float(time_limit)
        if threads is not None:
            params["Threads"] = int(threads)
        if mip_gap is not None:
            params["MIPGap"] = float(mip_gap)
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
                    raise LicenseLimitError(
                        f"Gurobi's restricted licence allows at most {RESTRICTED_LIMIT} variables and "
                        f"{RESTRICTED_LIMIT} constraints; this instance has {inst.num_vars} variables, "
                        f"{inst.num_rows} rows and {inst.num_indicators} indicators (use --backend highs, "
                        f"or a full licence)") from None
                raise GdsolverError(f"Gurobi error {getattr(exc, 'errno', '')}: {exc}") from None
            runtime = time.perf_counter() - t0
            if m.Status == GRB.INF_OR_UNBD:
                # presolve's dual reductions may not tell which; without them Gurobi does
                m.setParam("DualReductions", 0)
                m.reset()
                m.optimize()
                runtime = time.perf_counter() - t0
            return self._result(inst, m, x, runtime, GRB, time_limit, threads, mip_gap, use_start, options)
        finally:
            env.dispose()

    def _result(self, inst, m, x, runtime, GRB, time_limit, threads, mip_gap, use_start, options) -> SolveResult:
        st = m.Status
        has_x = m.SolCount > 0
        xv = np.asarray(x.X, dtype=np.float64) if has_x else None
        mapping = {GRB.OPTIMAL: "OPTIMAL", GRB.INFEASIBLE: "INFEASIBLE", GRB.UNBOUNDED: "UNBOUNDED",
                   GRB.INF_OR_UNBD: "INFEASIBLE", GRB.TIME_LIMIT: "TIME_LIMIT"}
        status = mapping.get(st, "FEASIBLE" if has_x else "ERROR")
        if status in ("INFEASIBLE", "UNBOUNDED", "ERROR"):
            xv = None
        objective = inst.objective_value(xv) if xv is not None else None
        if inst.is_mip:
            bound = float(m.ObjBound) if np.isfinite(m.ObjBound) else None
            gap = float(m.MIPGap) if xv is not None and np.isfinite(m.MIPGap) else None
            nodes = int(m.NodeCount)
        else:
            bound, gap, nodes = (objective, 0.0, None) if status == "OPTIMAL" else (None, None, None)
        return SolveResult(status=status, x=xv, objective=objective, bound=bound, gap=gap, runtime_s=runtime,
                           nodes=nodes, backend=self.name, backend_version=self.version(),
                           message=f"gurobi status {st}", instance_fingerprint=fingerprint(inst),
                           options={"time_limit": time_limit, "threads": threads, "mip_gap": mip_gap,
                                    "use_start": use_start, **(options or {})})
