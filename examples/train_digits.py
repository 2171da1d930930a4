"""GDSolver beside plain Adam on sklearn's digits, from the same initial weights.

The Python snippet of README.md. Runs in seconds on 2 cores (no downloads) and writes
nothing (with dump_dir= it would write the run's sweeps, run.json and model there).
Run: .venv/bin/python examples/train_digits.py
"""
import gdsolver
from gdsolver.data import load_split
from gdsolver.train.models import build_model

split = load_split("digits", seed=0)                  # train / val / test, each an (X, y) pair
model = build_model("mlp", (64,), 10, seed=0)         # Linear(64,32)-ReLU-Linear(32,10)
baseline = gdsolver.clone_model(model)                # the same initial weights

gd = dict(optimizer="adam", lr=0.03, lr_schedule="plateau", epochs=4, seed=0)
adam = gdsolver.GDTrainer(baseline, task="classification", **gd)
adam.fit(split.train, split.val)
hybrid = gdsolver.GDSolver(model, task="classification", **gd, max_sweeps=1)
history = hybrid.fit(split.train, split.val)          # GD (4 epochs here), then a sweep of the last layer

for row in history.sweeps:                            # each sweep: kept or not, and why
    print("sweep:", "accepted" if row["accepted"] else "rejected", "-", row["reason"])
print("adam     test:", adam.evaluate(split.test))
print("gdsolver test:", hybrid.evaluate(split.test))
