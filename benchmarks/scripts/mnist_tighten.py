"""LP bound tightening (gdsolver.formulate.tighten) on real MNIST sweeps of layer 0.

For each MLP (784-256-128-10, the issue's, and a deeper 784-256-128-64-10), Adam (lr 1e-3, batch
128) for --epochs epochs, then the "ce" sweep instance of layer 0 with a block of --block units on
--points seeded points at --radius, built without and with tightening (--cap seconds): ReLU
binaries per layer, LPs solved, units decided, time.

    .venv/bin/python benchmarks/scripts/mnist_tighten.py --out benchmarks/results/mnist_tighten.json
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
from gdsolver.formulate import sweep_instance
from mnist_models import add_common_args, trained  # the scripts' shared models

ARCHS = {"784-256-128-10": (256, 128), "784-256-128-64-10": (256, 128, 64)}


def main() -> None:
    ap = argparse.ArgumentParser()
    add_common_args(ap)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--block", type=int, default=8)
    ap.add_argument("--points", type=int, default=32)
    ap.add_argument("--radii", default="0.005,0.001")
    ap.add_argument("--cap", type=float, default=60.0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    split = load_split("mnist", data_dir=a.data, seed=a.seed)
    X = split.train[0].reshape(len(split.train[0]), -1).astype(np.float64)
    y = split.train[1]
    rng = np.random.default_rng(a.seed)
    pick = np.sort(rng.choice(len(X), a.points, replace=False))
    rows = []
    for arch, hidden in ARCHS.items():
        model = trained(split, f"mlp-784-{'-'.join(map(str, hidden))}-10", a.epochs, a.seed, Path(a.cache)).double()
        net = network_from_torch(model, X[:64])
        H = X[pick]
        for r in (float(v) for v in a.radii.split(",")):
            units = np.arange(a.block)
            t = time.perf_counter()
            plain = sweep_instance(net.layers, 0, H, y[pick], task="classification", radius=r, mode="ce", units=units)
            t_plain = time.perf_counter() - t
            t = time.perf_counter()
            tight = sweep_instance(net.layers, 0, H, y[pick], task="classification", radius=r, mode="ce", units=units,
                                   tighten=a.cap)
            t_tight = time.perf_counter() - t
            row = {"arch": arch, "radius": r, "block": a.block, "points": a.points,
                   "binaries_plain": {x["layer"]: x["binaries"] for x in plain.meta["relu"]},
                   "binaries_tight": {x["layer"]: x["binaries"] for x in tight.meta["relu"]},
                   "tighten": tight.meta.get("tighten"), "build_plain_s": t_plain, "build_tight_s": t_tight}
            rows.append(row)
            print(json.dumps(row), flush=True)
    Path(a.out).write_text(json.dumps({"machine": machine_info(), "load_at_end": os.getloadavg(), "epochs": a.epochs,
                                       "seed": a.seed, "cap_s": a.cap, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
