"""Consecutive block sweeps of MNIST's 784-256 layer, the block moving over the layer as GDSolver
moves it (train.one_sweep.block_units), each kept only when the CE on its points falls and the mean
CE on all training points does not rise (decide_sweep with AcceptConfig(train_tolerance=0)).

    .venv/bin/python benchmarks/scripts/mnist_block_rounds.py --sweeps 6 --block 8 --points 32 --radius 0.005 \
        --out benchmarks/results/mnist_block_rounds.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mnist_models import MLP, add_common_args, trained  # noqa: E402

from gdsolver.bench.machine import machine_info  # noqa: E402
from gdsolver.data import load_split  # noqa: E402
from gdsolver.extract import network_from_torch  # noqa: E402
from gdsolver.formulate.heads import cross_entropy  # noqa: E402
from gdsolver.pipeline import SolveSettings, solve_sweep  # noqa: E402
from gdsolver.train.config import AcceptConfig  # noqa: E402
from gdsolver.train.one_sweep import LayerSweep, block_units  # noqa: E402
from gdsolver.train.sweep import decide_sweep  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    add_common_args(ap)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sweeps", type=int, default=6)
    ap.add_argument("--block", type=int, default=8)
    ap.add_argument("--points", type=int, default=32)
    ap.add_argument("--radius", type=float, default=0.005)
    ap.add_argument("--time-limit", type=float, default=30.0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    split = load_split("mnist", data_dir=a.data, seed=a.seed)
    model = trained(split, MLP, a.epochs, a.seed, Path(a.cache)).double()
    X = torch.as_tensor(split.train[0]).double().reshape(len(split.train[0]), -1)
    y = np.asarray(split.train[1], np.int64)
    Xt = torch.as_tensor(split.test[0]).double().reshape(len(split.test[0]), -1)
    yt = np.asarray(split.test[1], np.int64)

    def outputs(Xs: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return model(Xs).numpy()

    def metrics() -> dict:
        o, ot = outputs(X), outputs(Xt)
        return {"train_loss": float(cross_entropy(o, y).mean()), "test_ce": float(cross_entropy(ot, yt).mean()),
                "test_acc": float((ot.argmax(1) == yt).mean())}

    start = metrics()
    rows, at = [], 0
    t_all = time.perf_counter()
    for s in range(a.sweeps):
        net = network_from_torch(model, X[:64])
        units = block_units(at, a.block, net, 0)
        at = int(units[-1] + 1) % net.layers[0].M
        ls = LayerSweep(model, net, X, y, task="classification", outputs=outputs)
        t = time.perf_counter()
        job = ls.prepare(0, radius=a.radius, mode="ce", points=a.points, seed=a.seed + s, units=units)
        build = time.perf_counter() - t
        before = ls.points_loss(job)
        m0 = metrics()
        out = solve_sweep(job.instance, SolveSettings(time_limit=a.time_limit, threads=1))
        row = {"sweep": s, "units": [int(units[0]), int(units[-1])], "binaries": int(job.instance.num_integer),
               "build_s": build, "pipeline_s": time.perf_counter() - t - build, "status": out.status,
               "usable": out.usable, "points_ce_before": before}
        if out.usable:
            d = decide_sweep(job, out, write=lambda W, b: ls.write(job, W, b), restore=lambda sv: ls.restore(job, sv),
                             points_loss=lambda: ls.points_loss(job), watched=lambda: (metrics()["train_loss"],
                                                                                        metrics()),
                             watched_before=m0["train_loss"], accept=AcceptConfig(train_tolerance=0.0),
                             loss_before=before, train_before=m0["train_loss"])
            row.update(accepted=d.accepted, reason=d.reason, points_ce_after=d.loss_after)
        else:
            row.update(accepted=False, reason=out.reason)
        row.update(metrics())
        rows.append(row)
        print(json.dumps(row), flush=True)
    doc = {"machine": machine_info(), "load_at_end": os.getloadavg(), "args": vars(a), "start": start,
           "end": metrics(), "wall_s": time.perf_counter() - t_all, "rows": rows}
    Path(a.out).write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
