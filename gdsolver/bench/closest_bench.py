"""`gdsolver bench closest`: the closest-point LP against the MIP it follows, on a
resnet18-sized head (512 features x 10 classes, 32 misclassified points, radius 0.05).

Features are nonnegative like post-ReLU pooled activations. Two sources: random data of
that shape given to `formulate.classification` (several seeds, both modes), and a small
resnet-like torch model (residual blocks with BatchNorm, 512 channels, global average
pool, a forward returning a tuple) swept through `network_from_torch` + `prepare_sweep`
as the trainer does. For every instance, the MIP is solved, then the closest-point LP in two
forms in the same run: the current one (gdsolver.ir.closest) and the earlier one kept
here as the baseline (integers typed but fixed, indicators lowered to big-M, one
deviation variable and two rows per weight). Both must reach the same L1 distance."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gdsolver.bench.machine import machine_line
from gdsolver.bench.plots import load_average, md_table
from gdsolver.bench.runner import Bench, Skip, run_bench
from gdsolver.compile import DEFAULT_BACKEND, solve
from gdsolver.formulate import classification, forward
from gdsolver.ir.closest import closest_instance
from gdsolver.ir.csr import Csr
from gdsolver.ir.instance import CONTINUOUS, MilpInstance
from gdsolver.ir.verify import verify

N_FEATURES, N_CLASSES, N_POINTS, RADIUS = 512, 10, 32, 0.05


def baseline_closest_instance(inst: MilpInstance, x: np.ndarray) -> MilpInstance:
    """The closest-point LP as first written (before this benchmark): d_i >= |x_i - ref_i|
    as two rows per weight, integers kept as typed variables with fixed bounds (HiGHS then
    runs its MIP solver), indicators kept (lowered to big-M by the backend)."""
    ref, n = inst.start, inst.num_vars
    idx = np.concatenate([np.arange(inst.blocks[b][0], inst.blocks[b][0] + int(np.prod(inst.blocks[b][1])))
                          for b in ("w", "b")]).astype(np.int64)
    k = len(idx)
    lb, ub = inst.lb.copy(), inst.ub.copy()
    integer = inst.vtype != CONTINUOUS
    fixed = np.round(x[integer])
    lb[integer] = ub[integer] = fixed
    rows = np.repeat(np.arange(2 * k), 2)
    d_cols = n + np.arange(k)
    cols = np.stack([np.concatenate([d_cols, d_cols]), np.concatenate([idx, idx])], 1).ravel()
    vals = np.stack([np.ones(2 * k), np.concatenate([-np.ones(k), np.ones(k)])], 1).ravel()
    dev = Csr.from_coo(rows, cols, vals, 2 * k, n + k)
    obj_nz = np.flatnonzero(inst.c)
    obj_row = Csr.from_coo(np.zeros(len(obj_nz), np.int64), obj_nz, inst.c[obj_nz], 1, n + k)
    at_x = float(inst.c @ x)
    slack = 1e-9 * max(1.0, abs(at_x))
    obj_lo, obj_hi = (-np.inf, at_x + slack) if inst.sense == "min" else (at_x - slack, np.inf)
    A = Csr.vstack([Csr(inst.A.indptr, inst.A.indices, inst.A.data, n + k), dev, obj_row], n + k)
    start = np.concatenate([x, np.abs(x[idx] - ref[idx])])
    start[:n][integer] = fixed
    return dataclasses.replace(
        inst, blocks={**inst.blocks, "closest_dev": (n, (k,))},
        lb=np.concatenate([lb, np.zeros(k)]), ub=np.concatenate([ub, np.full(k, np.inf)]),
        vtype=np.concatenate([inst.vtype, np.full(k, CONTINUOUS, np.uint8)]), A=A,
        row_lo=np.concatenate([inst.row_lo, -ref[idx], ref[idx], [obj_lo]]),
        row_hi=np.concatenate([inst.row_hi, np.full(2 * k, np.inf), [obj_hi]]),
        ind_A=Csr(inst.ind_A.indptr, inst.ind_A.indices, inst.ind_A.data, n + k),
        c=np.concatenate([np.zeros(n), np.ones(k)]), c0=0.0, sense="min", start=start, row_groups={})


def random_head(seed: int, mode: str) -> MilpInstance:
    """A 512 x 10 head on 32 nonnegative feature vectors, every point misclassified."""
    rng = np.random.default_rng(seed)
    W = rng.normal(0.0, 1.0 / np.sqrt(N_FEATURES), (N_CLASSES, N_FEATURES))
    b = rng.normal(0.0, 0.01, N_CLASSES)
    H = np.maximum(rng.normal(0.0, 1.0, (N_POINTS, N_FEATURES)), 0.0)
    pred = forward(W, b, H, "identity").argmax(1)
    y = (pred + rng.integers(1, N_CLASSES, N_POINTS)) % N_CLASSES
    return classification(W, b, H, y, radius=RADIUS, mode=mode)


def resnet_like_head(seed: int, mode: str) -> MilpInstance:
    """The sweep instance of a small resnet-like model (tuple output) on random images."""
    import torch
    from torch import nn

    from gdsolver.extract.torch_frontend import network_from_torch
    from gdsolver.train.sweep import prepare_sweep

    class Block(nn.Module):
        def __init__(self, c_in: int, c_out: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.skip = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()

        def forward(self, x):
            h = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(h)) + self.skip(x))

    class ResNetLike(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
            self.layer1 = Block(32, 128)
            self.layer2 = Block(128, N_FEATURES)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(N_FEATURES, N_CLASSES)

        def forward(self, x):
            f = self.pool(self.layer2(self.layer1(self.stem(x)))).flatten(1)
            return self.fc(f), f  # logits and features, as many vision models return

    torch.manual_seed(seed)
    net = ResNetLike().eval()
    X = torch.randn(256, 3, 8, 8)
    y = np.random.default_rng(seed).integers(0, N_CLASSES, 256)
    network = network_from_torch(net, X, output=0)  # the logits, the first element of the tuple
    return prepare_sweep(network, X.numpy(), y, task="classification", radius=RADIUS, mode=mode, points=N_POINTS,
                         seed=seed).instance


def _closest(inst: MilpInstance, x: np.ndarray, build: Callable, threads: int, time_limit: float) -> dict:
    t = time.perf_counter()
    ci = build(inst, x)
    t_build = time.perf_counter() - t
    t = time.perf_counter()
    res = solve(ci, threads=threads, time_limit=time_limit)
    wall = time.perf_counter() - t + t_build
    ok = res.x is not None and verify(inst, res.x[:inst.num_vars]).ok
    return {"status": res.status, "distance": res.objective, "verifies": bool(ok), "build_s": t_build,
            "solve_s": res.runtime_s, "wall_s": wall, "vars": ci.num_vars, "rows": ci.num_rows,
            "indicators": ci.num_indicators, "integer": ci.num_integer}


def report(result: dict) -> list[str]:
    """The report of a run's result document, as lines."""
    m, rows, load_start = result["machine"], result["rows"], result["load_average_at_start"]
    lines = ["# gdsolver bench closest", "",
             f"The closest-point LP after a classification sweep's MIP; {result['instances']}; HiGHS, "
             f"{result['threads']} thread(s). Wall times include building the LP; ratios are against the MIP solved in "
             "the same run. 'baseline' is the LP as first written (big-M rows, typed fixed integers, two rows per "
             "weight); both LPs reach the same L1 distance (checked).", "",
             machine_line(m, "python", "highspy") + "; "
             f"1-minute load average at start {load_start if load_start is None else round(load_start, 1)}" +
             (" (above the core count: measured under load, compare the ratios only)."
              if load_start is not None and load_start > (m["cores"] or 1) else "."), ""]
    lines += md_table(["source", "seed", "mode", "MIP (s)", "closest LP (s)", "LP/MIP", "baseline LP (s)",
                       "baseline/MIP", "speedup", "LP rows (baseline)", "L1 moved"],
                      [[r["source"], r["seed"], r["mode"], f"{r['mip']['wall_s']:.3f}", f"{r['closest']['wall_s']:.3f}",
                        f"{r['closest_over_mip']:.2f}", f"{r['baseline']['wall_s']:.3f}",
                        f"{r['baseline_over_mip']:.2f}", f"{r['speedup']:.1f}",
                        f"{r['closest']['rows']} ({r['baseline']['rows']} + {r['baseline']['indicators']} indicators)",
                        f"{r['closest']['distance']:.4g}"] for r in rows], "lrlrrrrrrlr")
    if rows:
        lines += ["", f"Geometric means: closest LP / MIP {result['geomean_closest_over_mip']:.2f}, baseline / MIP "
                      f"{result['geomean_baseline_over_mip']:.2f}, speedup {result['geomean_speedup']:.1f}x."]
    return lines


def markdown(result: dict) -> str:
    """The report of a run's result document (without the runner's footer)."""
    return "\n".join(report(result)) + "\n"


HEADS: dict[str, Callable[[int, str], MilpInstance]] = {"random": random_head, "resnet-like": resnet_like_head}


def closest_bench(quick: bool = False, threads: int = 1, time_limit: float = 120.0, resnet: bool = True) -> Bench:
    """The cells (source, seed, mode) and how one is measured: the MIP, then both closest-point LPs
    from its answer."""
    modes = ("paper",) if quick else ("paper", "compact")
    cells = [{"source": "random", "seed": seed, "mode": mode} for mode in modes
             for seed in ((0,) if quick else (0, 1, 2))]
    cells += [{"source": "resnet-like", "seed": 0, "mode": mode} for mode in modes] if resnet else []

    def run_cell(cell: dict[str, Any]) -> dict[str, Any]:
        inst = HEADS[cell["source"]](cell["seed"], cell["mode"])
        t = time.perf_counter()
        mip = solve(inst, threads=threads, time_limit=time_limit)
        mip_wall = time.perf_counter() - t
        if mip.x is None:
            raise Skip(f"MIP {mip.status}, no point to move")
        row = {**cell, "mip": {
            "status": mip.status, "objective": mip.objective, "solve_s": mip.runtime_s, "wall_s": mip_wall,
            "vars": inst.num_vars, "rows": inst.num_rows, "indicators": inst.num_indicators,
            "integer": inst.num_integer}}
        row["closest"] = _closest(inst, mip.x, closest_instance, threads, time_limit)
        row["baseline"] = _closest(inst, mip.x, baseline_closest_instance, threads, time_limit)
        a, b = row["closest"]["distance"], row["baseline"]["distance"]
        row["same_distance"] = a is not None and b is not None and bool(np.isclose(a, b, rtol=1e-6, atol=1e-7))
        row["closest_over_mip"] = row["closest"]["wall_s"] / max(mip_wall, 1e-9)
        row["baseline_over_mip"] = row["baseline"]["wall_s"] / max(mip_wall, 1e-9)
        row["speedup"] = row["baseline"]["wall_s"] / max(row["closest"]["wall_s"], 1e-9)
        return row

    def describe(r: dict[str, Any]) -> str:
        return (f"{r['source']:<11} seed {r['seed']} {r['mode']:<7} MIP {r['mip']['status']} {r['mip']['objective']:g} "
                f"in {r['mip']['wall_s']:.2f} s; closest LP {r['closest']['wall_s']:.2f} s "
                f"({r['closest_over_mip']:.2f} x MIP), baseline {r['baseline']['wall_s']:.2f} s "
                f"({r['baseline_over_mip']:.2f} x MIP); L1 moved {r['closest']['distance']:.4g} vs "
                f"{r['baseline']['distance']:.4g}; verifies {r['closest']['verifies']}")

    def summarize(doc: dict[str, Any]) -> dict[str, Any]:
        rows = doc["rows"]
        geo = lambda key: float(np.exp(np.mean(np.log([r[key] for r in rows])))) if rows else None  # noqa: E731
        return {"geomean_closest_over_mip": geo("closest_over_mip"),
                "geomean_baseline_over_mip": geo("baseline_over_mip"), "geomean_speedup": geo("speedup")}

    la = load_average()
    meta = {"instances": f"{N_FEATURES} features x {N_CLASSES} classes, {N_POINTS} misclassified points, radius "
            f"{RADIUS:g}", "backend": DEFAULT_BACKEND, "threads": threads, "time_limit_s": time_limit,
            "load_average_at_start": la[0] if la else None}
    return Bench("closest", cells, run_cell, report, meta=meta, summarize=summarize, describe=describe, header=False)


def run_closest_bench(out_dir: str | Path = "benchmarks/results", quick: bool = False, echo: Callable = print,
                      threads: int = 1, time_limit: float = 120.0, resnet: bool = True,
                      tick: Callable | None = None) -> dict:
    result = run_bench(closest_bench(quick, threads, time_limit, resnet), out_dir,
                       "closest-quick" if quick else "closest", echo=echo, tick=tick)
    if result["geomean_speedup"] is not None:
        echo(f"geometric means: closest LP / MIP {result['geomean_closest_over_mip']:.2f}, baseline LP / MIP "
             f"{result['geomean_baseline_over_mip']:.2f}, speedup {result['geomean_speedup']:.1f}x")
    return result
