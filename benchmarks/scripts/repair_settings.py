"""Repair settings on MNIST chosen on training/validation data only: the keep pool's size, the
norm and the keep margin, for 100 fix points at the MLP's final layer (the bench repair set-up:
one epoch of seeded Adam, the first 100 wrong test points in the seeded order).

For each setting: status, time, rounds and keep rows in the last LP, the validation accuracy's
drop (5,000 held-out training points: what a setting may be chosen by) and, for the record only,
the test drawdown. Writes benchmarks/results/repair_settings.{json,md}.

    nice -n 10 .venv/bin/python benchmarks/scripts/repair_settings.py --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

from gdsolver.atomic import atomic_write
from gdsolver.bench.machine import machine_line
from gdsolver.bench.plots import load_average, md_table, run_metadata
from gdsolver.bench.repair_bench import _predict, _prepare
from gdsolver.repairs import repair

SETTINGS = [  # (pool, norm, keep margin)
    (1000, "l1", None), (5000, "l1", None), (10000, "l1", None), (20000, "l1", None),
    (10000, "linf", None), (10000, "l1", 0.1), (10000, "l1", 0.5),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--fix", type=int, default=100)
    ap.add_argument("--time-limit", type=float, default=300.0)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    la0, t_start = load_average(), time.perf_counter()
    st = _prepare(args.data_dir, 0, 1, max(p for p, _, _ in SETTINGS), print)["mlp"]
    model, Xte, yte, pred_te = st["model"], st["Xte"], st["yte"], st["pred_te"]
    fix = st["wrong"][:args.fix]
    rest = np.setdiff1d(np.arange(len(yte)), fix)
    rows = []
    for pool, norm, km in SETTINGS:
        m = copy.deepcopy(model)
        t0 = time.perf_counter()
        rep = repair(m, (Xte[fix], yte[fix]), st["X_keep"][:pool], norm=norm, keep_margin=km,
                     time_limit=args.time_limit)
        secs = time.perf_counter() - t0
        p = _predict(m, Xte)
        s = rep.solution
        rows.append({"pool": pool, "norm": norm, "keep_margin": km, "status": rep.status, "time_s": secs,
                     "rounds": s.keep_rounds, "keep_rows": s.keep_rows, "keep_points": s.keep_in_milp,
                     "val_drop": st["val_accuracy"] - float((_predict(m, st["Xva"]) == st["yva"]).mean()),
                     "drawdown": float((pred_te[rest] == yte[rest]).mean() - (p[rest] == yte[rest]).mean()),
                     "load_1min": load_average()[0]})
        print(rows[-1], flush=True)
    doc = {**run_metadata(sys.argv), "fix": args.fix, "rows": rows, "test_accuracy": st["test_accuracy"],
           "load_average": {"start": la0, "end": load_average()}, "wall_s": time.perf_counter() - t_start}
    out = Path(args.out)
    with atomic_write(out / "repair_settings.json", "w") as fh:
        json.dump(doc, fh, indent=1, default=str)
    body = [[r["pool"], r["norm"], "= margin" if r["keep_margin"] is None else r["keep_margin"], r["status"],
             f"{r['time_s']:.1f}", r["rounds"], f"{r['keep_rows']} / {r['keep_points']}", f"{100 * r['val_drop']:.2f}",
             f"{100 * r['drawdown']:.2f}", f"{r['load_1min']:.1f}"] for r in rows]
    lines = ["# Repair settings on MNIST (final layer, 100 fix points)", "",
             f"MLP 784-256-128-10, one epoch of Adam (seed 0), test accuracy {100 * doc['test_accuracy']:.2f}%. "
             f"Fix: the first {args.fix} wrong test points; keep: the first N of a 20,000-point sample of the "
             "correct training points. Choose by `val drop` (5,000 held-out training points); the test drawdown is "
             "for the record.", "", machine_line(doc["machine"], "python", "numpy", "highspy") + ".", "",
             *md_table(["pool", "norm", "keep margin", "status", "time (s)", "rounds", "keep rows / pts",
                        "val drop (pts)", "test drawdown (pts)", "load (1 min)"], body), "",
             f"Command: `{' '.join(doc['command'])}`; load average {la0} at the start, {doc['load_average']['end']} "
             f"at the end; wall {doc['wall_s']:.0f} s."]
    with atomic_write(out / "repair_settings.md", "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
