"""Gurobi backend: matrix API (addMVar, addMConstr), indicators compiled natively
with the vectorised addGenConstrIndicator. The pip package's restricted licence
allows at most 2000 variables and 2000 constraints, where linear constraints and
general (indicator) constraints count together (measured with gurobipy 13: 1000
linear + 1000 indicator constraints solve, 1000 + 1001 fail; nonzeros are not
limited). Beyond that Gurobi fails at optimize() with error 10010, which becomes a
LicenseLimitError naming the sizes (`solve(..., fallback=...)` or `auto` then use
another backend). `licence_info()` finds out, once per process, which licence is
present. Ctrl-C: model.terminate() from the main thread; the wall-clock watchdog
(compile.base.SolveRun) calls the same terminate() at the time limit."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

import gdsolver.compile.progress as progress
from gdsolver.compile.base import Backend, Feature, LicenceStatus, SolveOptions, SolveRun, assemble_result
from gdsolver.compile.result import SolveResult
from gdsolver.compile.status import Termination
from gdsolver.errors import GdsolverError, LicenseLimitError, OptionError
from gdsolver.ir.instance import BINARY, CONTINUOUS, MilpInstance
from gdsolver.ir.verify import verify

RESTRICTED_LIMIT = 2000  # variables; and linear + general constraints
_SIZE_LIMIT_ERROR = 10010


def _gurobipy():
    return GurobiBackend.module()


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
            raise OptionError(f"Gurobi parameter {key!r}: invalid value {value!r} ({exc})") from None
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


def gurobi_params(opts: SolveOptions) -> dict[str, Any]:
    """The common options as Gurobi parameters (TimeLimit, Threads, MIPGap); explicit
    ones win over the same names among the native options."""
    return opts.native_params(time_limit="TimeLimit", threads="Threads", mip_gap="MIPGap")


# Gurobi status name -> Termination (every name in GRB.Status; unknown codes -> UNKNOWN)
STATUS_TABLE: dict[str, Termination] = {
    "OPTIMAL": Termination.OPTIMAL,
    "INFEASIBLE": Termination.INFEASIBLE,
    "INF_OR_UNBD": Termination.INFEASIBLE_OR_UNBOUNDED,  # only after the DualReductions=0 re-solve could not tell
    "UNBOUNDED": Termination.UNBOUNDED,
    "TIME_LIMIT": Termination.TIME_LIMIT,
    "WORK_LIMIT": Termination.TIME_LIMIT,  # deterministic time limit
    "ITERATION_LIMIT": Termination.ITERATION_LIMIT,
    "NODE_LIMIT": Termination.NODE_LIMIT,
    "SOLUTION_LIMIT": Termination.SOLUTION_LIMIT,
    "USER_OBJ_LIMIT": Termination.OBJECTIVE_LIMIT,
    "CUTOFF": Termination.OBJECTIVE_LIMIT,
    "INTERRUPTED": Termination.INTERRUPTED,
    "MEM_LIMIT": Termination.MEMORY_LIMIT,
    "SUBOPTIMAL": Termination.NUMERICAL,
    "NUMERIC": Termination.NUMERICAL,
    "LOCALLY_OPTIMAL": Termination.UNKNOWN,  # nonlinear models only
    "LOCALLY_INFEASIBLE": Termination.UNKNOWN,
    "LOADED": Termination.ERROR,
    "INPROGRESS": Termination.ERROR,
}


def status_name(code: int) -> str:
    """Gurobi's name for a status code (e.g. 9 -> "TIME_LIMIT")."""
    gp = _gurobipy()
    for name in dir(gp.GRB.Status):
        if name.isupper() and getattr(gp.GRB.Status, name) == code:
            return name
    return f"STATUS_{code}"


def termination_of(name: str) -> Termination:
    return STATUS_TABLE.get(name, Termination.UNKNOWN)


class GurobiBackend(Backend):
    name = "gurobi"
    package = "gurobipy"
    install = "pip install gurobipy"
    features = frozenset({Feature.LP, Feature.MIP, Feature.MIP_START, Feature.INDICATORS, Feature.TIME_LIMIT,
                          Feature.THREADS, Feature.MIP_GAP, Feature.INTERRUPT})
    native_options = "Gurobi parameters, e.g. MIPFocus=1, Presolve=2"

    @classmethod
    @functools.cache
    def version(cls) -> str:
        return ".".join(str(v) for v in cls.module().gurobi.version())

    @classmethod
    def licence(cls) -> LicenceStatus:
        lic = licence_info()
        limits = {}
        if lic.state == "restricted":
            limits = {"max_variables": lic.max_variables, "max_constraints": lic.max_constraints,
                      "counts": "variables; linear + indicator constraints (range rows twice); nonzeros unlimited"}
        return LicenceStatus(lic.state, lic.reason if lic.state == "none" else "", lic.version, limits)

    def accepts(self, inst: MilpInstance) -> tuple[bool, str]:
        lic = licence_info()
        if lic.state == "full":
            return True, "full licence"
        nv, nc = gurobi_size(inst)
        if lic.fits(inst):
            return True, (f"{nv} variables and {nc} constraints fit the restricted licence "
                          f"({lic.max_variables}/{lic.max_constraints})")
        return False, (f"{nv} variables and {nc} constraints exceed Gurobi's restricted licence "
                       f"({lic.max_variables} variables, {lic.max_constraints} linear + indicator constraints)")

    def auto_scope(self) -> str:
        lic = licence_info()
        if lic.state == "restricted":
            return (f"instances of at most {lic.max_variables} variables and {lic.max_constraints} linear + "
                    "indicator constraints (its restricted licence)")
        return "any instance (full licence)"

    def licence_error(self, inst: MilpInstance) -> LicenseLimitError:
        nv, nc = gurobi_size(inst)
        return LicenseLimitError(
            f"Gurobi's restricted licence allows at most {RESTRICTED_LIMIT} variables and {RESTRICTED_LIMIT} "
            f"constraints (linear + indicator); this instance has {nv} variables and {nc} constraints "
            f"({inst.num_rows} rows, {inst.num_indicators} indicators; a range row counts twice) "
            f"(use --backend auto, --fallback BACKEND, or a full licence)")

    def check_options(self, native) -> None:
        gp = _gurobipy()
        env = quiet_env()
        try:
            m = gp.Model(env=env)
            for key, value in dict(native).items():
                try:
                    m.setParam(key, value)
                except (gp.GurobiError, TypeError, ValueError) as exc:
                    raise OptionError(f"Gurobi parameter {key!r}: invalid value {value!r} ({exc})") from None
            m.dispose()
        finally:
            env.dispose()

    def _solve(self, inst: MilpInstance, opts: SolveOptions, run: SolveRun) -> SolveResult:
        gp = _gurobipy()
        GRB = gp.GRB
        env = quiet_env()
        try:
            m, x = build_gurobi(inst, env, gurobi_params(opts))
            left = run.left()
            if left is not None:  # Gurobi's clock starts at optimize(): give it what the build left
                m.setParam("TimeLimit", max(left, 1e-3))
            if opts.use_start and inst.start is not None and inst.is_mip:
                x.Start = inst.start
            t0 = time.perf_counter()
            # a MIP reports incumbent, bound, gap and nodes to a progress display (compile.progress)
            optimize = functools.partial(m.optimize, _report_progress) if inst.is_mip else m.optimize
            try:
                run(optimize, m.terminate)
                if m.Status == GRB.INF_OR_UNBD and not run.stopped:
                    # presolve's dual reductions may not tell which; without them Gurobi does
                    m.setParam("DualReductions", 0)
                    m.reset()
                    run(optimize, m.terminate)
            except gp.GurobiError as exc:
                if getattr(exc, "errno", None) == _SIZE_LIMIT_ERROR:
                    raise self.licence_error(inst) from None
                raise GdsolverError(f"Gurobi error {getattr(exc, 'errno', '')}: {exc}") from None
            runtime = time.perf_counter() - t0
            name = status_name(m.Status)
            xv = np.asarray(x.X, dtype=np.float64) if m.SolCount > 0 else None
            if xv is None and run.stopped and opts.use_start and inst.start is not None and verify(inst, inst.start).ok:
                xv = inst.start.copy()  # stopped before Gurobi had a point (or mid-LP): a feasible point we hold
            bound = float(m.ObjBound) if inst.is_mip else None
            nodes = int(m.NodeCount) if inst.is_mip else None
            return assemble_result(self, inst, opts, termination=termination_of(name), native_status=name, x=xv,
                                   bound=bound, nodes=nodes, runtime_s=runtime, interrupted=run.interrupted,
                                   run=run)
        finally:
            env.dispose()


def _report_progress(model, where: int) -> None:
    """Gurobi's MIP callback: its figures for a progress display (compile.progress)."""
    GRB = _gurobipy().GRB
    cb = GRB.Callback
    if where == cb.MIP:  # periodic
        best, bound, nodes = model.cbGet(cb.MIP_OBJBST), model.cbGet(cb.MIP_OBJBND), model.cbGet(cb.MIP_NODCNT)
    elif where == cb.MIPSOL:  # a new incumbent (the last one may come after the last periodic call)
        best, bound, nodes = model.cbGet(cb.MIPSOL_OBJ), model.cbGet(cb.MIPSOL_OBJBND), model.cbGet(cb.MIPSOL_NODCNT)
    else:
        return
    has, bounded = abs(best) < GRB.INFINITY, abs(bound) < GRB.INFINITY
    gap = abs(best - bound) / max(abs(best), 1e-10) if has and bounded else None
    progress.report(incumbent=best if has else None, bound=bound if bounded else None, gap=gap, nodes=int(nodes))
