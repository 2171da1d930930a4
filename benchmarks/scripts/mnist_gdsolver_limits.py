"""GDSolver on real MNIST: each sweep's wall time (GDSolver._sweep, everything included) against its 30 s limit.

    nice -n 10 .venv/bin/python benchmarks/scripts/mnist_gdsolver_limits.py mlp-784-256-128-10   (or cnn)
"""
import sys, time, json, os
sys.path.insert(0, "benchmarks/scripts")
import numpy as np, torch
torch.set_num_threads(1)
from gdsolver.data import load_split
from gdsolver.train.hybrid import GDSolver
from mnist_models import trained, MLP, CNN
arch = sys.argv[1]
split = load_split("mnist", data_dir="/work/shared/data/mnist", seed=0)
model = trained(split, arch, 1, 0, "/tmp/gdsolver_mnist_cache")
X = split.train[0].reshape(len(split.train[0]), -1); y = np.asarray(split.train[1])
keep = np.sort(np.random.default_rng(0).choice(len(X), 10000, replace=False))
Xv = split.val[0].reshape(len(split.val[0]), -1)
t = GDSolver(model, "classification", layers="all", block=8, epochs=1, max_sweeps=1, time_limit=30, solver_points=32,
             seed=0, threads=1, lr=1e-3)
walls = []
real = t._sweep
def timed(name):
    t0 = time.perf_counter()
    try:
        return real(name)
    finally:
        walls.append((name, time.perf_counter() - t0, os.getloadavg()[0]))
t._sweep = timed
h = t.fit((X[keep], y[keep]), (Xv, split.val[1]))
for (name, w, load), r in zip(walls, [r for r in h.sweeps]):
    print(json.dumps(dict(arch=arch, layer=name, wall_s=round(w, 2), ratio=round(w / 30, 3), status=r["status"],
                          accepted=r["accepted"], radius=r["radius"], units=r.get("units"), load=load,
                          reason=str(r.get("reason"))[:200])))
