"""Portfolio sweeps, local executor against a local Ray (issue 18): the same GDSolver run twice
(portfolio=K), once with executor="local" (candidates one after another) and once with
executor="ray" (candidates as Ray tasks, in parallel). Records the wall time of the solve stage
of every sweep (all K candidates, from submission to the last answer), the whole fit, and checks
that the two histories are equal apart from timing columns.

    .venv/bin/python benchmarks/portfolio_ray.py [--workload digits|hidden-regression] [--k 2]
        [--sweeps 4] [--points 64] [--time-limit 30] [--out FILE]

Not a test: timings depend on the machine and its load (the load average is recorded)."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gdsolver.bench.machine import machine_info
from gdsolver.train.hybrid import GDSolver

TIMING = {"gd_time_s", "solver_time_s", "build_time_s", "elapsed_s"}


class TimedGDSolver(GDSolver):
    """GDSolver that records the wall time of each sweep's solve stage."""

    def _solve(self, n, cands):
        t = time.perf_counter()
        super()._solve(n, cands)
        self.solve_walls.append(time.perf_counter() - t)


def workload(args):
    """(model, task, train, val, GDSolver options) of a workload, seeded.

    digits: the data-efficiency MLP on sklearn digits, final-layer sweeps of `points`
      misclassified points (paper head); the 2r candidate's MIP is the hard one.
    hidden-regression: Linear(3,8)-ReLU-Linear(8,2) on a seeded formula, hidden-layer sweeps of
      `points` points (L1 head, ReLU binaries); most candidates run into the time limit."""
    torch.manual_seed(args.seed)
    if args.workload == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = (X / 16).astype(np.float32)
        model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        return model, "classification", (X[:1000], y[:1000]), (X[1000:1400], y[1000:1400]), {}
    rng = np.random.default_rng(args.seed)
    X = rng.random((600, 3)).astype(np.float32)
    Y = np.stack([3 * X[:, 0] ** 2 + 1, np.sin(3 * X[:, 1]) * X[:, 0]], 1).astype(np.float32)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    return model, "regression", (X[:480], Y[:480]), (X[480:], Y[480:]), dict(layers=[0], radius=0.1, mode="l1")


def run(executor: str, args) -> dict:
    model, task, train, val, extra = workload(args)
    tr = TimedGDSolver(model, task, epochs=args.sweeps, phase_epochs=1, max_sweeps=args.sweeps,
                       solver_points=args.points, time_limit=args.time_limit, portfolio=args.k, executor=executor,
                       seed=args.seed, threads=1, **extra)
    tr.solve_walls = []
    t = time.perf_counter()
    hist = tr.fit(train, val)
    wall = time.perf_counter() - t
    rows = [{k: v for k, v in r.items() if k not in TIMING} for r in hist.rows]
    cand_times = [r["solver_time_s"] for r in hist.sweeps if r["solver_time_s"] is not None]
    return {"executor": executor, "fit_wall_s": wall, "solve_walls_s": tr.solve_walls,
            "solve_wall_s": sum(tr.solve_walls), "candidate_solver_times_s": cand_times,
            "sweeps": hist.summary()["sweeps"], "accepted": hist.summary()["sweeps_accepted"], "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", choices=("digits", "hidden-regression"), default="digits")
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--sweeps", type=int, default=4)
    ap.add_argument("--points", type=int, default=64)
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--order", default="local,ray")
    ap.add_argument("--out", type=Path, default=None, help="default benchmarks/results/portfolio_ray_WORKLOAD.json")
    args = ap.parse_args()
    if args.out is None:
        args.out = Path(f"benchmarks/results/portfolio_ray_{args.workload}.json")
    from gdsolver.train.executor import RayExecutor

    load = [os.getloadavg()[0]]
    ray = RayExecutor()  # started once, outside the timed fits (the trainer reuses it)
    ray_cpus = ray.describe().get("cpus")
    from gdsolver.train.executor import Task

    # every worker imports gdsolver and HiGHS before the timed runs (a new worker pays ~2.5 s once)
    warm = "import gdsolver.train.sweep, gdsolver.compile.highs, highspy, time; time.sleep(1)"
    ray.run([Task(exec, (warm,)) for _ in range(int(ray_cpus))])
    runs = {}
    try:
        for kind in args.order.split(","):
            runs[kind] = run(kind, args)
            load.append(os.getloadavg()[0])
    finally:
        ray.close()
    same = runs["local"]["rows"] == runs["ray"]["rows"]
    doc = {"command": "benchmarks/portfolio_ray.py", "args": {k: (str(v) if isinstance(v, Path) else v)
                                                              for k, v in vars(args).items()},
           "machine": machine_info(), "ray_cpus": ray_cpus, "load_average_1min": load,
           "histories_equal": same,
           "solve_ratio_local_over_ray": runs["local"]["solve_wall_s"] / runs["ray"]["solve_wall_s"],
           "fit_ratio_local_over_ray": runs["local"]["fit_wall_s"] / runs["ray"]["fit_wall_s"],
           "runs": {k: {kk: vv for kk, vv in v.items() if kk != "rows"} for k, v in runs.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    for k, v in runs.items():
        print(f"{k}: candidates' solver times per sweep {[round(t, 2) for t in v['candidate_solver_times_s']]}")
        print(f"{k}: solve stage {v['solve_wall_s']:.2f} s over {v['sweeps']} sweeps "
              f"(candidates' solver time {sum(v['candidate_solver_times_s']):.2f} s), fit {v['fit_wall_s']:.2f} s")
    print(f"solve ratio local/ray {doc['solve_ratio_local_over_ray']:.2f}x, fit ratio "
          f"{doc['fit_ratio_local_over_ray']:.2f}x, histories equal: {same}; load {load}")


if __name__ == "__main__":
    main()
