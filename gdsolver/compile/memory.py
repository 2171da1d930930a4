"""An estimate of a backend's peak memory for an instance, from the instance's sizes.

peak_mb = intercept + sum of MB_PER[feature] * size, the sizes being the instance's columns,
rows (with its indicator rows), nonzeros (rows and indicators) and binaries. The coefficients
were fitted (non-negative least squares) on the peak resident size of child processes solving
sweep instances with HiGHS (one thread, a 20 s limit), measured above the loaded instance:
benchmarks/scripts/memory_fit.py, figures and errors in benchmarks/results/memory_fit.md. The
estimate is of the solve alone; the process also holds the instance (instance_mb) and whatever
it held before. A longer search can grow HiGHS's tree beyond the fitted figure.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gdsolver.compile.registry import DEFAULT_BACKEND
from gdsolver.ir.instance import BINARY, MilpInstance

FEATURES = ("cols", "rows", "nnz", "binaries")

# HiGHS, fitted by benchmarks/scripts/memory_fit.py (see the module docstring)
# (24 MNIST sweep instances, 4k-223k columns, 0.1-6M nonzeros, 0-22k binaries): about 43 MB, plus
# 0.43 kB a column, 0.18 kB a row, 0.10 kB a nonzero and 0.56 kB a binary
HIGHS_FIT: dict[str, Any] = {"intercept_mb": 42.64, "mb_per": {"cols": 4.322e-4, "rows": 1.758e-4, "nnz": 9.837e-5,
                                                                "binaries": 5.580e-4},
                             "loo_rel_err_median": 0.077, "loo_rel_err_max": 0.461, "instances": 24}

FITS = {DEFAULT_BACKEND: HIGHS_FIT}  # the default backend is HiGHS


def instance_sizes(inst: MilpInstance) -> dict[str, int]:
    """The sizes the estimate reads: columns, rows (indicators included), nonzeros, binaries."""
    return {"cols": int(inst.num_vars), "rows": int(inst.num_rows + inst.num_indicators),
            "nnz": int(inst.A.nnz + inst.ind_A.nnz), "binaries": int(np.count_nonzero(inst.vtype == BINARY))}


def instance_mb(inst: MilpInstance) -> float:
    """What the instance's own arrays hold, in MB (the bounds, objective, rows, indicators)."""
    arrays = [inst.lb, inst.ub, inst.vtype, inst.c, inst.row_lo, inst.row_hi, inst.ind_var, inst.ind_val,
              inst.ind_lo, inst.ind_hi, inst.A.indptr, inst.A.indices, inst.A.data, inst.ind_A.indptr,
              inst.ind_A.indices, inst.ind_A.data]
    if inst.start is not None:
        arrays.append(inst.start)
    return float(sum(a.nbytes for a in arrays)) / 2 ** 20


def estimate_peak_mb(inst: MilpInstance, backend: str = DEFAULT_BACKEND) -> dict[str, Any] | None:
    """{"solve_mb": the backend's estimated peak above the loaded instance, "instance_mb", "backend",
    "rel_err": the fit's median and worst leave-one-out relative error}, or None for a backend
    without a fit (only HiGHS is measured)."""
    fit = FITS.get(backend)
    if fit is None or not fit["instances"]:
        return None
    sizes = instance_sizes(inst)
    mb = fit["intercept_mb"] + sum(fit["mb_per"][f] * sizes[f] for f in FEATURES)
    return {"backend": backend, "solve_mb": float(mb), "instance_mb": instance_mb(inst),
            "rel_err": (fit["loo_rel_err_median"], fit["loo_rel_err_max"]), "instances": fit["instances"]}
