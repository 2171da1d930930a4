"""The README's "adding a backend" skeleton, made real with scipy's milp: one module
with one Backend subclass (test_registry_takes_a_new_backend adds the registry line)."""

from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array

from gdsolver.compile.base import Backend, Feature, assemble_result
from gdsolver.compile.status import Termination
from gdsolver.ir import lower

STATUS = {0: Termination.OPTIMAL, 1: Termination.TIME_LIMIT, 2: Termination.INFEASIBLE, 3: Termination.UNBOUNDED}


class ScipyMilpBackend(Backend):
    name, package, install = "scipy-milp", "scipy", "pip install scipy"
    features = frozenset({Feature.LP, Feature.MIP, Feature.TIME_LIMIT})

    def _solve(self, inst, opts, run):
        low, _ = lower(inst)  # no native indicators: big-M rows
        A = csr_array((low.A.data, low.A.indices, low.A.indptr), shape=(low.num_rows, low.num_vars))
        sign = 1.0 if low.sense == "min" else -1.0
        r = run(lambda: milp(sign * low.c, integrality=low.vtype != 0, bounds=Bounds(low.lb, low.ub),
                             constraints=[LinearConstraint(A, low.row_lo, low.row_hi)],
                             options={"time_limit": opts.time_limit, **opts.native}), stop=lambda: None)
        return assemble_result(self, inst, opts, termination=STATUS.get(r.status, Termination.ERROR),
                               native_status=r.message, x=r.x, bound=None, interrupted=run.interrupted)
