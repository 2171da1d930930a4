"""Block sweeps of the 784-256 layer of an MLP 784-256-128-10 on real MNIST.

The MLP is trained by Adam (lr 1e-3, batch 128) for --epochs epochs (cached in --cache, outside
the repository); then, from those same weights each time, a "ce" sweep of layer 0 frees a block of
B units (units 0..B-1 of a block moved by --offset) on P seeded sample points, solved by the one
pipeline (HiGHS, rounds, checks) under --time-limit. Per run: the build time, the instance's sizes
(columns, rows, nonzeros, binaries), the pipeline's wall time against its limit, its status, the
solver loss (summed cross-entropy) on its points and the mean cross-entropy on the whole training
split, before and after the answer is written (then the weights are put back). --save-dir keeps
the instances (.gdsm) for the memory fit (benchmarks/scripts/memory_fit.py).

    .venv/bin/python benchmarks/scripts/mnist_blocks.py --epochs 1 --blocks 4,8,16 --points 32,64,128,256 \
        --time-limit 30 --out benchmarks/results/mnist_blocks.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from gdsolver.bench.machine import machine_info
from gdsolver.data import load_split
from gdsolver.extract import network_from_torch
from gdsolver.formulate.claims import swept_weights
from gdsolver.formulate.heads import cross_entropy
from gdsolver.pipeline import SolveSettings, solve_sweep
from gdsolver.train.one_sweep import LayerSweep
from mnist_models import MLP, add_common_args, trained  # the scripts' shared models


def nnz(inst) -> int:
    return int(inst.A.nnz + inst.ind_A.nnz)


def main() -> None:
    ap = argparse.ArgumentParser()
    add_common_args(ap)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--blocks", default="4,8,16")
    ap.add_argument("--points", default="32,64,128,256")
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--radius", type=float, default=0.05)
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save-dir", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    split = load_split("mnist", data_dir=a.data, seed=a.seed)
    model = trained(split, MLP, a.epochs, a.seed, Path(a.cache)).double()
    X = torch.as_tensor(split.train[0]).double().reshape(len(split.train[0]), -1)
    y = np.asarray(split.train[1], np.int64)
    net = network_from_torch(model, X[:64])

    def outputs(Xs: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return model(Xs).numpy()

    def train_ce() -> float:
        return float(cross_entropy(outputs(X), y).mean())

    ls = LayerSweep(model, net, X, y, task="classification", outputs=outputs)
    H = net.features(X.numpy(), 0)
    ce0 = train_ce()
    rows = []
    for P in [int(p) for p in a.points.split(",")]:
        for B in [int(b) for b in a.blocks.split(",")]:
            units = None if B >= 256 else (a.offset + np.arange(B)) % 256
            t = time.perf_counter()
            job = ls.prepare(0, radius=a.radius, mode="ce", points=P, seed=a.seed, H=H, units=units)
            build = time.perf_counter() - t
            inst = job.instance
            if a.save_dir:
                from gdsolver.ir import save
                Path(a.save_dir).mkdir(parents=True, exist_ok=True)
                save(inst, Path(a.save_dir) / f"mnist_l0_b{B}_p{P}.gdsm")
            before_pts = ls.points_loss(job)
            t = time.perf_counter()
            out = solve_sweep(inst, SolveSettings(time_limit=a.time_limit, threads=a.threads))
            wall = time.perf_counter() - t
            row = dict(block=B, points=P, build_s=round(build, 2), n_vars=inst.num_vars,
                       n_rows=inst.num_rows + inst.num_indicators, nnz=nnz(inst),
                       binaries=int(inst.num_integer), relu=inst.meta["relu"], time_limit=a.time_limit,
                       pipeline_s=round(wall, 2), over_limit=round(wall / a.time_limit, 3), status=out.status,
                       rounds=out.rounds, usable=out.usable, reason=out.reason.strip("; "),
                       points_ce_before=before_pts, train_ce_before=ce0)
            if out.usable and out.x is not None:
                saved = ls.write(job, *swept_weights(out.instance or inst, out.x))
                row.update(points_ce_after=ls.points_loss(job), train_ce_after=train_ce())
                ls.restore(job, saved)
                assert train_ce() == ce0  # restored bit for bit
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "relu"}), flush=True)
    load = os.getloadavg()
    doc = {"machine": machine_info(), "load_at_end": load, "epochs": a.epochs, "seed": a.seed, "radius": a.radius,
           "offset": a.offset, "threads": a.threads, "rows": rows}
    Path(a.out).write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
