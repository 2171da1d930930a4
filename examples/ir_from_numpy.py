"""The IR on its own: a final-layer sweep built from numpy arrays, saved, loaded, solved, verified.

The IR snippet of README.md. No torch and no training code; runs in a second or two and writes
only to a temporary directory. Run: .venv/bin/python examples/ir_from_numpy.py
"""
import os
import tempfile

os.chdir(tempfile.mkdtemp(prefix="gdsolver-example-"))

import numpy as np
import gdsolver
from gdsolver.formulate import classification
from gdsolver.pipeline import SolveSettings, solve_sweep

rng = np.random.default_rng(0)
H = rng.random((300, 16))                                   # the features entering the layer (T, N)
W, b = rng.normal(size=(4, 16)), np.zeros(4)                # its weights (M, N) and biases (M,)
labels = np.argmax(H @ rng.normal(size=(16, 4)), axis=1)    # the classes the points should get
wrong = np.flatnonzero(np.argmax(H @ W.T + b, axis=1) != labels)[:32]

# make as many of 32 misclassified points correct as the box |W - W0|, |b - b0| <= 0.05 allows
inst = classification(W, b, H[wrong], labels[wrong], radius=0.05, mode="compact")
gdsolver.save(inst, "sweep.gdsm")                           # a versioned, hashed zip of arrays
inst = gdsolver.load("sweep.gdsm")                          # never unpickles
print(inst.num_vars, "variables,", inst.num_indicators, "indicators")

res = gdsolver.solve(inst, backend="highs", time_limit=30)  # one backend, the instance as it is
print(res.status, "points correct:", res.objective, "of", len(wrong))
print("verify:", gdsolver.verify(inst, res.x))              # checked without any solver
new = inst.unpack(res.x)                                    # {"w": (4, 16), "b": (4,), "c": (32,)}
print("largest weight change:", np.abs(new["w"] - W).max())

out = solve_sweep(inst, SolveSettings(time_limit=30))       # the pipeline gdsolver solve runs
c = out.result.closest                                      # the nearest weights, same decisions
print("search:", out.result.search["search"], out.status, out.objective)
print(f"closest point: moved {c['moved_l1']:.3g} (L1) instead of {c['mip_moved_l1']:.3g}")
