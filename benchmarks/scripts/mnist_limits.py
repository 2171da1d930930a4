"""Hidden-layer block sweeps on real MNIST under a time limit: does each return within 1.1x its
limit, is its answer improving and verified, and what is its peak memory.

For each model (mnist_models: the MLP 784-256-128-10 and the CNN), seed and number of Adam epochs,
each hidden dense layer (not the last) gets one `gdsolver.sweep` (everything counted against
--time-limit: extraction, build, solve, checks, the decision) on a copy of the model: a "ce" head
on --points seeded training points, a block of --block units from unit --offset (seed-dependent)
free, radius --radius ("auto": gdsolver's default for the layer; "C/fan-in": C divided by the
layer's inputs; or a number). The sweep is given --train-sample seeded training points (its
decision's forward passes run over them and the validation split every time: one pass of the CNN
over all 60,000 took 13-17 s on one thread under load 5, which no 30 s sweep could hold twice); the
decision watches the validation split (5,000 points held out of the 60,000 training images) and the
given training points; the test split is not read.

"improved" means: the pipeline's answer passed ir.verify and the forward-pass check, lowered the
CE on its points (by a forward pass of the model), and the decision kept it (validation and
training loss not higher). Peak memory: the process's peak RSS (VmHWM) during the sweep, after
resetting it (/proc/self/clear_refs 5), so it includes the data and torch already resident.
Each (model, seed, epochs) runs in its own child process.

    nice -n 10 .venv/bin/python benchmarks/scripts/mnist_limits.py --out benchmarks/results/mnist_limits.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def radius_for(spec: str, fan_in: int) -> float | None:
    if spec == "auto":
        return None
    if spec.endswith("/fan-in"):
        return float(spec.split("/")[0]) / fan_in
    return float(spec)


def child(arch: str, seed: int, epochs: int, a: argparse.Namespace) -> None:
    import numpy as np
    import torch

    import gdsolver
    from gdsolver.data import load_split
    from gdsolver.extract import network_from_torch
    from mnist_models import trained

    torch.set_num_threads(1)
    split = load_split("mnist", data_dir=a.data, seed=seed)
    t = time.perf_counter()
    model = trained(split, arch, epochs, seed, Path(a.cache))
    train_s = time.perf_counter() - t
    X = split.train[0].reshape(len(split.train[0]), -1)
    y = np.asarray(split.train[1])
    if a.train_sample and a.train_sample < len(X):  # what the sweep is given, and judged on
        keep = np.sort(np.random.default_rng(seed).choice(len(X), a.train_sample, replace=False))
        X, y = X[keep], y[keep]
    Xv = split.val[0].reshape(len(split.val[0]), -1)
    net = network_from_torch(model, torch.as_tensor(X[:64]))
    hidden = range(len(net.layers) - 1) if a.layers is None else [int(v) for v in a.layers.split(",")]
    for k in hidden:
        layer = net.layers[k]
        for spec in a.radius.split(","):
            r = radius_for(spec, layer.N)
            offset = (seed * 37 + epochs * 11) % layer.M  # a different block per run
            peak_reset = _reset_peak()
            t = time.perf_counter()
            rep = gdsolver.sweep(model, (X, y), val=(Xv, split.val[1]), layer=k, radius=r,
                                 time_limit=a.time_limit, inplace=False, points=a.points, seed=seed, threads=1,
                                 block=a.block or None, offset=offset, backend=a.backend)
            wall = time.perf_counter() - t
            row = dict(arch=arch, seed=seed, epochs=epochs, layer=k, fan_in=layer.N, units=layer.M,
                       block=a.block or None, offset=offset, points=rep.points, radius_spec=spec, radius=rep.radius,
                       time_limit=a.time_limit, wall_s=round(wall, 3), ratio=round(wall / a.time_limit, 4),
                       report_time_s=round(rep.time_s, 3), build_s=round(rep.build_time_s, 3),
                       solver_s=round(rep.solver_time_s, 3), status=rep.status, accepted=bool(rep.accepted),
                       reason=rep.reason, n_vars=rep.n_vars, n_cons=rep.n_cons, n_binary=rep.n_binary,
                       sweep_loss_before=rep.sweep_loss_before, sweep_loss_after=rep.sweep_loss_after,
                       train_loss_before=rep.loss_before, train_loss_after=rep.loss_after,
                       val_loss_before=rep.val_loss_before, val_loss_after=rep.val_loss_after,
                       peak_rss_mb=None if not peak_reset else round((_status_kb("VmHWM") or 0) / 1024, 1),
                       load_1min=os.getloadavg()[0], train_s=round(train_s, 1))
            print("ROW " + json.dumps(row), flush=True)
            del rep
            assert np.isfinite(row["wall_s"])


def render(docs: list[dict], title: str) -> str:
    """A markdown table per run document (one row per sweep) and its summary against the target."""
    out = []
    for doc in docs:
        m, st = doc["machine"], doc["settings"]
        rows = [r for r in doc["rows"] if "error" not in r]
        errs = [r for r in doc["rows"] if "error" in r]
        out += [f"### {doc.get('label', title)}", "",
                f"`{' '.join(['mnist_limits.py', *doc['argv']])}`; radius {st['radius']}, block {st['block']}, "
                f"{st['points']} points, time limit {st['time_limit']:g} s, {st['train_sample'] or 55000} training "
                f"points given; load average (1/5/15 min) {', '.join(f'{v:.1f}' for v in doc['load_start'])} at the "
                f"start, {', '.join(f'{v:.1f}' for v in doc['load_end'])} at the end; {doc['wall_s'] / 60:.1f} min. "
                f"{m.get('cpu', '')}, {m.get('cores', '')} cores.", "",
                "| model | seed | epochs | layer (fan-in) | radius | wall s | wall / limit | status | kept | "
                "CE on its points | val CE | train CE (given points) | binaries | peak RSS MB | load |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            pts = (f"{r['sweep_loss_before']:.4f} -> {r['sweep_loss_after']:.4f}"
                   if r["sweep_loss_after"] is not None else f"{r['sweep_loss_before']:.4f} -> -")
            out.append(f"| {'MLP' if r['arch'].startswith('mlp') else 'CNN'} | {r['seed']} | {r['epochs']} | "
                       f"{r['layer']} ({r['fan_in']}) | {r['radius']:.4g} | {r['wall_s']:.1f} | {r['ratio']:.3f} | "
                       f"{r['status']} | {'yes' if r['accepted'] else 'no'} | {pts} | "
                       f"{r['val_loss_before']:.5f} -> {r['val_loss_after']:.5f} | "
                       f"{r['train_loss_before']:.5f} -> {r['train_loss_after']:.5f} | {r['n_binary']} | "
                       f"{r['peak_rss_mb']} | {r['load_1min']:.1f} |")
        n = len(rows)
        within = sum(r["ratio"] <= 1.1 for r in rows)
        kept = sum(r["accepted"] for r in rows)
        peak = max((r["peak_rss_mb"] or 0) for r in rows) if rows else 0
        worst = max((r["ratio"] for r in rows), default=0)
        out += ["", f"{n} sweeps: {within} within 1.1x their limit (worst {worst:.3f}x), {kept} kept (improving, "
                f"verified and accepted), peak RSS at most {peak:.0f} MB."
                + (f" {len(errs)} run(s) failed: {errs}" if errs else ""), ""]
    return "\n".join(out)


def main() -> None:
    from mnist_models import add_common_args

    ap = argparse.ArgumentParser()
    add_common_args(ap)
    ap.add_argument("--archs", default="mlp-784-256-128-10,cnn")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", default="1,2")
    ap.add_argument("--block", type=int, default=8, help="units freed per sweep (0: the whole layer)")
    ap.add_argument("--points", type=int, default=32)
    ap.add_argument("--radius", default="auto", help="comma-separated: auto, C/fan-in, or numbers")
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--train-sample", type=int, default=10000,
                    help="training points given to the sweep (seeded sample; 0: all 55,000)")
    ap.add_argument("--backend", default="highs")
    ap.add_argument("--layers", default=None, help="chain indices to sweep, comma-separated (default: every hidden one)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        arch, seed, epochs = a.child.split(":")
        child(arch, int(seed), int(epochs), a)
        return
    from gdsolver.bench.machine import machine_info

    rows: list[dict] = []
    out = Path(a.out)
    t_all = time.perf_counter()
    load_start = os.getloadavg()
    passthrough = [f"--{k.replace('_', '-')}={v}" for k, v in vars(a).items()
                   if k not in ("child", "archs", "seeds", "epochs") and v is not None]
    for arch in a.archs.split(","):
        for seed in (int(s) for s in a.seeds.split(",")):
            for epochs in (int(e) for e in a.epochs.split(",")):
                cmd = [sys.executable, str(Path(__file__).resolve()), *passthrough, f"--child={arch}:{seed}:{epochs}"]
                p = subprocess.run(cmd, capture_output=True, text=True)
                got = [json.loads(ln[4:]) for ln in p.stdout.splitlines() if ln.startswith("ROW ")]
                for r in got:
                    print(json.dumps({k: r[k] for k in ("arch", "seed", "epochs", "layer", "radius", "ratio", "status",
                                                        "accepted", "peak_rss_mb", "load_1min")}), flush=True)
                if p.returncode != 0:
                    rows.append(dict(arch=arch, seed=seed, epochs=epochs, error=p.stderr.strip().splitlines()[-3:]))
                    print("child failed:", p.stderr[-2000:], file=sys.stderr, flush=True)
                rows.extend(got)
                doc = {"machine": machine_info(), "load_start": load_start, "load_end": os.getloadavg(),
                       "wall_s": time.perf_counter() - t_all, "argv": sys.argv[1:],
                       "settings": {k: v for k, v in vars(a).items() if k not in ("child", "out")}, "rows": rows}
                tmp = out.with_suffix(".tmp")
                tmp.write_text(json.dumps(doc, indent=1))
                tmp.replace(out)


if __name__ == "__main__":
    main()
