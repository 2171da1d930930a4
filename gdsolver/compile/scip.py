"""SCIP backend (pyscipopt): open source, no licence, native indicator constraints.

Building. pyscipopt has no bulk call that takes a sparse matrix: its matrix API
(addMatrixVar, addMatrixCons) loops over addVar/addCons in Python, and a scipy CSR
matrix times a MatrixVariable is refused. Measured on the MNIST-head-sized instance
(18 792 variables, 792k row nonzeros, 2 cores under load): one addCoefLinear call per
nonzero after creating the row with its first term costs ~160-240 ns per nonzero,
building a {Term: coefficient} dict per row from numpy-sliced lists ~240-410 ns, and
writing an MPS file with HiGHS for SCIP to read ~800-1200 ns. So rows use
addCoefLinear (one Python call per nonzero, the least pyscipopt allows), variables
one addVar each, indicators one dict-built expression each.

Indicators. SCIP's are one-sided (`z = val => a.x <= rhs`): a range or an equality
becomes two indicators on the same binary; `ind_val = 0` uses the negated binary.

Ctrl-C: SCIP's own SIGINT catching is turned off (misc/catchctrlc) and the solve runs
with the GIL released (optimizeNogil) so that the main thread can call
interruptSolve(). SCIP reads that flag between nodes and presolving rounds, not inside a
long LP or presolver: measured on a 600-point classification sweep, it had not returned 20 s
after the call. So an event handler keeps the incumbent as SCIP finds it, and a solve that has
not returned GRACE_S seconds after Ctrl-C is left to finish by itself (its model kept alive)
while the call answers with that incumbent, as the HiGHS backend does. The wall-clock watchdog
(compile.base.SolveRun) stops a solve at its time limit by the same interruptSolve(), the build
included (limits/time gets what the Python-speed build left)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

import gdsolver.compile.progress as progress
from gdsolver.compile.base import Backend, Feature, SolveOptions, SolveRun, assemble_result
from gdsolver.compile.result import SolveResult
from gdsolver.compile.status import Termination
from gdsolver.errors import OptionError
from gdsolver.ir.csr import Csr
from gdsolver.ir.instance import CONTINUOUS, MilpInstance
from gdsolver.ir.verify import verify

#: every status string pyscipopt's Model.getStatus() returns (SCIP 10), and "terminate"
#: of newer SCIP versions -> Termination
STATUS_TABLE: dict[str, Termination] = {
    "optimal": Termination.OPTIMAL,
    "gaplimit": Termination.OPTIMAL,  # stopped at limits/gap, as the other solvers report it
    "infeasible": Termination.INFEASIBLE,
    "unbounded": Termination.UNBOUNDED,
    "inforunbd": Termination.INFEASIBLE_OR_UNBOUNDED,
    "timelimit": Termination.TIME_LIMIT,
    "nodelimit": Termination.NODE_LIMIT,
    "totalnodelimit": Termination.NODE_LIMIT,
    "stallnodelimit": Termination.OTHER_LIMIT,
    "memlimit": Termination.MEMORY_LIMIT,
    "sollimit": Termination.SOLUTION_LIMIT,
    "bestsollimit": Termination.SOLUTION_LIMIT,
    "restartlimit": Termination.OTHER_LIMIT,
    "primallimit": Termination.OBJECTIVE_LIMIT,
    "duallimit": Termination.OBJECTIVE_LIMIT,
    "userinterrupt": Termination.INTERRUPTED,
    "terminate": Termination.INTERRUPTED,
    "unknown": Termination.UNKNOWN,
}


def termination_of(status: str) -> Termination:
    return STATUS_TABLE.get(status, Termination.UNKNOWN)


def _pyscipopt():
    return ScipBackend.module()


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """SCIP prints parameter errors to the C stderr before pyscipopt raises: keep them
    out of the terminal and hand them to the error message instead."""
    out: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


def set_param(m, key: str, value: Any) -> None:
    """One SCIP parameter; OptionError naming it when SCIP refuses."""
    try:
        m.getParam(key)
    except KeyError:
        raise OptionError(f"SCIP parameter {key!r}: unknown parameter (see `scip -c 'set diffsave'` or the "
                          "SCIP documentation for the names, e.g. limits/nodes)") from None
    with _captured_stderr() as err:
        try:
            m.setParam(key, value)
            return
        except Exception as exc:  # noqa: BLE001 - pyscipopt raises bare Exception/ValueError/TypeError
            problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    detail = next((ln.split("ERROR:", 1)[1].strip() for ln in err[0].splitlines() if "Invalid value" in ln), problem)
    raise OptionError(f"SCIP parameter {key!r}: invalid value {value!r} ({detail})")


def _side(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def _canonical(mat: Csr) -> Csr:
    """The same matrix with duplicate (row, column) entries summed: an expression dict
    keeps one coefficient per variable. Vectorised; a no-op copy-free return when the
    rows have no duplicates (the formulations produce none)."""
    if mat.nnz == 0:
        return mat
    rows = mat.row_ids()
    key = rows * mat.ncols + mat.indices.astype(np.int64)
    order = np.lexsort((mat.indices, rows))
    k = key[order]
    if not np.any(k[1:] == k[:-1]):
        return mat
    first = np.concatenate(([True], k[1:] != k[:-1]))
    starts = np.flatnonzero(first)
    data = np.add.reduceat(mat.data[order], starts)
    return Csr.from_coo(rows[order][starts], mat.indices[order][starts], data, mat.nrows, mat.ncols)


def build_scip(inst: MilpInstance, params: dict[str, Any] | None = None):
    """A silent pyscipopt Model holding `inst` (indicators native) and its variables
    in the IR's order. See the module docstring for what is bulk and what is not."""
    ps = _pyscipopt()
    from pyscipopt.scip import Expr, ExprCons, Term

    inst.validate()
    m = ps.Model()
    m.hideOutput()
    m.setParam("misc/catchctrlc", False)  # SIGINT is ours (see SolveRun)
    for key, value in (params or {}).items():
        set_param(m, key, value)
    n = inst.num_vars
    # an integer variable boxed in [0, 1] is binary (SCIP's indicators need a binary)
    vtype = np.where(inst.vtype == CONTINUOUS, "C", "I").astype(object)
    vtype[(inst.vtype != CONTINUOUS) & (inst.lb >= 0) & (inst.ub <= 1)] = "B"
    lb = [v if f else None for v, f in zip(inst.lb.tolist(), np.isfinite(inst.lb).tolist())]
    ub = [v if f else None for v, f in zip(inst.ub.tolist(), np.isfinite(inst.ub).tolist())]
    add_var = m.addVar
    xs = [add_var(name="", vtype=t, lb=l, ub=u, obj=c) for t, l, u, c in zip(vtype.tolist(), lb, ub, inst.c.tolist())]
    if inst.c0:
        m.addObjoffset(float(inst.c0))
    if inst.sense == "max":
        m.setMaximize()
    # linear rows: the row with its first term, then one addCoefLinear per further nonzero
    A = inst.A
    var_of = np.empty(n, dtype=object)
    var_of[:] = xs
    cols = var_of[A.indices].tolist()
    vals = A.data.tolist()
    ptr = A.indptr.tolist()
    lo, hi = inst.row_lo.tolist(), inst.row_hi.tolist()
    add_cons, add_coef = m.addCons, m.addCoefLinear
    for r in range(A.nrows):
        lhs, rhs = _side(lo[r]), _side(hi[r])
        if lhs is None and rhs is None:
            continue  # a free row constrains nothing
        s, e = ptr[r], ptr[r + 1]
        expr = Expr({Term(cols[s]): vals[s]}) if e > s else Expr()
        cons = add_cons(ExprCons(expr, lhs=lhs, rhs=rhs))
        for k in range(s + 1, e):
            add_coef(cons, cols[k], vals[k])
    # indicators, one-sided: split ranges and equalities into <= and >=
    if inst.num_indicators:
        B = _canonical(inst.ind_A)
        terms = np.empty(n, dtype=object)
        terms[:] = [Term(v) for v in xs]
        tcols = terms[B.indices].tolist()
        bvals = B.data.tolist()
        bptr = B.indptr.tolist()
        ilo, ihi = inst.ind_lo.tolist(), inst.ind_hi.tolist()
        zvar, zval = inst.ind_var.tolist(), inst.ind_val.tolist()
        add_ind = m.addConsIndicator
        for k in range(inst.num_indicators):
            s, e = bptr[k], bptr[k + 1]
            for lhs, rhs in ((_side(ilo[k]), None), (None, _side(ihi[k]))):
                if lhs is None and rhs is None:
                    continue
                expr = Expr(dict(zip(tcols[s:e], bvals[s:e])))
                add_ind(ExprCons(expr, lhs=lhs, rhs=rhs), binvar=xs[zvar[k]], activeone=bool(zval[k]))
    return m, xs


class ScipBackend(Backend):
    name = "scip"
    package = "pyscipopt"
    install = "pip install pyscipopt (or gdsolver[scip])"
    # no Feature.THREADS: SCIP's branch and bound is single-threaded; its concurrent mode races
    # whole solvers, is marked experimental by pyscipopt, holds the GIL (no Ctrl-C) and was
    # 1.3-3x slower with 2 threads on 4 digits/regression sweeps (2 cores, under load).
    # `threads` is a cap, so 1 honours it.
    features = frozenset({Feature.LP, Feature.MIP, Feature.INDICATORS, Feature.MIP_START, Feature.TIME_LIMIT,
                          Feature.MIP_GAP, Feature.INTERRUPT})
    native_options = "SCIP parameters, e.g. limits/nodes=1000, presolving/maxrounds=0"

    @classmethod
    @functools.cache
    def version(cls) -> str:
        m = cls.module().Model()
        return f"{m.getMajorVersion()}.{m.getMinorVersion()}.{m.getTechVersion()}"

    def check_options(self, native) -> None:
        m = _pyscipopt().Model()
        m.hideOutput()
        try:
            for key, value in dict(native).items():
                set_param(m, key, value)
        finally:
            m.freeProb()

    def _solve(self, inst: MilpInstance, opts: SolveOptions, run: SolveRun) -> SolveResult:
        params = opts.native_params(time_limit="limits/time", mip_gap="limits/gap")  # no threads: see features
        m, xs = build_scip(inst, params)
        left = run.left()
        if left is not None:  # SCIP's clock starts at its solve: give it what the (Python-speed) build left
            set_param(m, "limits/time", max(left, 1e-3))
        watch = _watch_incumbent(m, xs) if run.can_stop and inst.is_mip else None
        try:
            if opts.use_start and inst.start is not None and inst.is_mip:
                sol = m.createSol()
                for v, val in zip(xs, inst.start.tolist()):
                    m.setSolVal(sol, v, val)
                m.addSol(sol)  # checked by SCIP when the solve starts; dropped if infeasible
            t0 = time.perf_counter()
            run(m.optimizeNogil, functools.partial(_interrupt, m), GRACE_S)
            runtime = time.perf_counter() - t0
            if run.abandoned is not None:  # SCIP is still running: answer with what its event handler saw
                _abandoned.append((run.abandoned, m, xs, watch))  # the model must outlive its solve
                _keep_past_exit(m)
                x = watch.x if watch is not None else None
                x = _start_if_feasible(inst, opts) if x is None else x  # the start we hold in any case
                why = "Ctrl-C" if run.interrupted else "the watchdog's stop"
                return assemble_result(self, inst, opts, termination=Termination.INTERRUPTED,
                                       native_status="(no answer yet)", x=x, runtime_s=runtime,
                                       interrupted=run.interrupted, run=run,
                                       note=f"SCIP did not return in time after {why}; kept the last "
                                            "incumbent it reported")
            native = m.getStatus()
            termination = termination_of(native)
            x = None
            if m.getNSols() > 0:
                best = m.getBestSol()
                x = np.fromiter((m.getSolVal(best, v) for v in xs), dtype=np.float64, count=len(xs))
            if x is None and (run.stopped or termination == Termination.TIME_LIMIT):
                # stopped before SCIP took any point (it may refuse or not yet have read the start): ours stands
                x = _start_if_feasible(inst, opts)
            bound = float(m.getDualbound()) if inst.is_mip else None
            nodes = int(m.getNTotalNodes()) if inst.is_mip else None
            return assemble_result(self, inst, opts, termination=termination, native_status=native, x=x,
                                   bound=bound if bound is not None and abs(bound) < 1e20 else None, nodes=nodes,
                                   runtime_s=runtime, interrupted=run.interrupted, run=run)
        finally:
            if run.abandoned is None:
                m.freeProb()


def _start_if_feasible(inst: MilpInstance, opts: SolveOptions) -> np.ndarray | None:
    """The MIP start when it was to be used and satisfies the instance (ir.verify): a feasible
    point we hold in any case, the answer of a solve interrupted before SCIP had one."""
    if opts.use_start and inst.start is not None and verify(inst, inst.start).ok:
        return inst.start.copy()
    return None


GRACE_S = 0.5  # how long a Ctrl-C'd SCIP may take to return before it is left behind
_abandoned: list[tuple[Any, ...]] = []  # (thread, model, variables, handler) of solves left running


def _keep_past_exit(m) -> None:
    """One reference to `m` that is never released. When the interpreter exits with a SCIP solve
    still running (gdsolver solve after Ctrl-C), clearing `_abandoned` freed the model under the
    running solve, and SCIP's call of our event handler's eventexit crashed the process (SIGSEGV,
    exit -11, in 2 of 5 runs). A model left behind is not freed at all; the process ends it."""
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(m))


class _Incumbent:
    """Catches SCIP's BESTSOLFOUND events and keeps the incumbent's values (in the IR's order),
    so that a solve that does not stop promptly after Ctrl-C can still answer with its best point."""

    def __init__(self) -> None:
        self.x: np.ndarray | None = None


def _watch_incumbent(m, xs) -> _Incumbent:
    ps = _pyscipopt()
    watch = _Incumbent()

    class Handler(ps.Eventhdlr):
        def eventinit(self):
            self.model.catchEvent(ps.SCIP_EVENTTYPE.BESTSOLFOUND, self)

        def eventexit(self):
            self.model.dropEvent(ps.SCIP_EVENTTYPE.BESTSOLFOUND, self)

        def eventexec(self, event):
            sol = self.model.getBestSol()
            watch.x = np.fromiter((self.model.getSolVal(sol, v) for v in xs), dtype=np.float64, count=len(xs))
            # a progress display's figures (compile.progress), at each new incumbent
            progress.report(incumbent=float(self.model.getSolObjVal(sol)), bound=float(self.model.getDualbound()),
                            gap=float(self.model.getGap()), nodes=int(self.model.getNNodes()))

    handler = Handler()
    m.includeEventhdlr(handler, "gdsolver_incumbent", "keeps the incumbent for Ctrl-C")
    watch.handler = handler  # type: ignore[attr-defined]  # kept alive with the watch
    return watch


def _interrupt(m) -> None:
    with contextlib.suppress(Exception):  # e.g. the solve already ended
        m.interruptSolve()
