"""gdsolver.sweep of the final layer with counting heads (the Benders search on HiGHS) on real MNIST:
wall time against small limits. MLP 784-256-128-10, 2 Adam epochs, seed 0, 10,000 training points given.

    nice -n 10 .venv/bin/python benchmarks/scripts/mnist_count_limits.py
"""
import sys, time
sys.path.insert(0, "benchmarks/scripts")
import numpy as np, torch
torch.set_num_threads(1)
import gdsolver
from gdsolver.data import load_split
from mnist_models import trained, MLP
split = load_split("mnist", data_dir="/work/shared/data/mnist", seed=0)
model = trained(split, MLP, 2, 0, "/tmp/gdsolver_mnist_cache")
X = split.train[0].reshape(len(split.train[0]), -1); y = np.asarray(split.train[1])
keep = np.sort(np.random.default_rng(0).choice(len(X), 10000, replace=False))
Xv = split.val[0].reshape(len(split.val[0]), -1)
for head, pts, limit in (("compact", 32, 8), ("compact", 128, 8), ("paper", 64, 8), ("compact", 128, 30)):
    t = time.perf_counter()
    rep = gdsolver.sweep(model, (X[keep], y[keep]), val=(Xv, split.val[1]), head=head, points=pts, time_limit=limit, inplace=False, threads=1)
    w = time.perf_counter() - t
    print(head, pts, limit, f"wall {w:.2f} ratio {w/limit:.3f}", rep.status, rep.accepted, f"solver {rep.solver_time_s:.2f} build {rep.build_time_s:.2f}", rep.reason[:150])
