"""Peak memory of HiGHS solving sweep instances, measured in child processes, and the fit that
gdsolver/compile/memory.py holds.

Each instance (.gdsm) is solved by a fresh child process (`--child`): it loads the instance, reads
its resident size (VmRSS, the baseline), solves it with HiGHS (one thread, --time-limit), and reads
its peak resident size (VmHWM, the kernel's high-water mark, which counts what the C library
allocates; tracemalloc would not). The solve's peak is VmHWM - baseline. The fit: that peak
against the instance's sizes (columns, rows + indicators, nonzeros, binaries), non-negative least
squares (scipy nnls), with leave-one-out errors.

    .venv/bin/python benchmarks/scripts/memory_fit.py /tmp/gdsm_inst/*.gdsm --time-limit 20 \
        --out benchmarks/results/memory_fit.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def child(path: str, time_limit: float) -> None:
    from gdsolver.compile import solve
    from gdsolver.compile.memory import instance_sizes
    from gdsolver.ir import load

    inst = load(path)
    base = _status_kb("VmRSS")
    t = time.perf_counter()
    res = solve(inst, backend="highs", time_limit=time_limit, threads=1)
    wall = time.perf_counter() - t
    peak = _status_kb("VmHWM")
    print(json.dumps({"path": path, **instance_sizes(inst), "baseline_mb": base / 1024, "peak_mb": peak / 1024,
                      "solve_mb": (peak - base) / 1024, "status": str(res.status), "solve_s": wall}))


def fit(rows: list[dict]) -> dict:
    from scipy.optimize import nnls

    from gdsolver.compile.memory import FEATURES

    X = np.array([[1.0] + [r[f] for f in FEATURES] for r in rows])
    y = np.array([r["solve_mb"] for r in rows])
    scale = X.max(axis=0)
    coef, _ = nnls(X / scale, y)
    coef = coef / scale
    loo = []
    for i in range(len(rows)):
        keep = np.arange(len(rows)) != i
        c, _ = nnls(X[keep] / scale, y[keep])
        loo.append(float((X[i] / scale) @ c))
    pred = X @ coef
    return {"intercept_mb": float(coef[0]), "mb_per": {f: float(c) for f, c in zip(FEATURES, coef[1:])},
            "fitted_mb": pred.tolist(), "loo_mb": loo,
            "rel_err": (np.abs(pred - y) / y).tolist(), "loo_rel_err": (np.abs(np.array(loo) - y) / y).tolist()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="*")
    ap.add_argument("--child", default=None)
    ap.add_argument("--time-limit", type=float, default=20.0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.time_limit)
        return
    from gdsolver.bench.machine import machine_info

    rows = []
    for p in a.paths:
        got = subprocess.run([sys.executable, __file__, "--child", p, "--time-limit", str(a.time_limit)],
                             capture_output=True, text=True)
        if got.returncode != 0:
            print(f"{p}: child failed: {got.stderr[-400:]}", file=sys.stderr)
            continue
        row = json.loads(got.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    doc = {"machine": machine_info(), "load_at_end": os.getloadavg(), "time_limit": a.time_limit, "rows": rows,
           "fit": fit(rows) if len(rows) >= 3 else None}
    if a.out:
        Path(a.out).write_text(json.dumps(doc, indent=1))
    if doc["fit"]:
        print(json.dumps({k: v for k, v in doc["fit"].items() if k in ("intercept_mb", "mb_per")}))
        print("loo relative errors:", [round(e, 3) for e in doc["fit"]["loo_rel_err"]])


if __name__ == "__main__":
    main()
