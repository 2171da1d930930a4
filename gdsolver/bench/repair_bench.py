"""`gdsolver bench repair`: certified repair on MNIST beside Adam fine-tuning.

An MLP 784-256-128-10 and a conv net (two strided 5x5 convolutions, then dense 256-64-10) are
trained by Adam (seeded). Fix sets: the first 10 / 50 / 100 of the test points a model gets
wrong (in a seeded order); keep pool: 10,000 training points it gets right (never test points;
their rows enter the LP only when the repaired layer breaks them). For each fix set and layer
(the final layer; a dense hidden layer, MLP 256->128 / conv 256->64, with the ReLU phases of every
point pinned, an LP), gdsolver.repairs.repair is run, and Adam fine-tuning on the fix set
(lr 1e-3, until every fix point is right or the step limit) beside it. Reported per row:
efficacy (fix points the changed model classifies as their label, float32), keep points kept,
drawdown (test accuracy on the test points outside the fix set, before minus after: positive is
a loss), generalisation (accuracy on the misclassified test points outside the fix set: before
it is 0 by construction), the validation accuracy's change (the 5,000 held-out training points:
what a setting may be chosen by), wall time, and peak memory (tracemalloc: numpy and Python allocations;
the solver's own C++ memory is not in it) and the process's max RSS.

The training and the point sets are the bench's set-up; its cells are (fix-set size, method,
layer, norm), one row each."""

from __future__ import annotations

import copy
import os
import resource
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from gdsolver.bench.machine import machine_line
from gdsolver.bench.plots import md_table, run_header
from gdsolver.bench.runner import Bench, run_bench

SIZES = (10, 50, 100)
KEEP = 10000
KEEP_HIDDEN = 1000  # the hidden layer's keep set: the pool's first points (its LPs carry each point's ReLU rows)
LAYERS = {"final": -1, "hidden": 1}  # chain indices of the MLP's dense layers
MODELS = ("mlp", "conv")
CHAIN = {"mlp": LAYERS, "conv": {"final": -1, "hidden": 0}}  # conv: its dense layers 256->64->10
ARCH = {"mlp": "MLP 784-256-128-10 (ReLU)",
        "conv": "conv 1x28x28 -> 8@5x5/2 -> 16@5x5/2 -> dense 256-64-10 (ReLU)"}


def adam_epochs(model: Any, X: Any, y: Any, *, epochs: int, seed: int, lr: float = 1e-3, batch: int = 128) -> Any:
    """`epochs` of seeded minibatch Adam on (X, y) (inputs flattened): the plain loop the MNIST
    benches and scripts train their MLPs with, the same weights for the same seed."""
    import torch
    from torch import nn

    Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32).reshape(len(X), -1)
    yt = torch.as_tensor(np.asarray(y)).long()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(Xt), generator=g)
        for i in range(0, len(Xt), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            nn.functional.cross_entropy(model(Xt[idx]), yt[idx]).backward()
            opt.step()
    return model


def _train(X: np.ndarray, y: np.ndarray, seed: int, epochs: int, arch: str = "mlp") -> Any:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    if arch == "conv":  # takes the flat 784 inputs like the MLP (Unflatten first)
        model = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 8, 5, stride=2), nn.ReLU(),
                              nn.Conv2d(8, 16, 5, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(256, 64), nn.ReLU(),
                              nn.Linear(64, 10))
    else:
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    return adam_epochs(model, X, y, epochs=epochs, seed=seed).eval()


def _predict(model: Any, X: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.as_tensor(X, dtype=torch.float32)).argmax(1).numpy()


def _finetune(model: Any, X: np.ndarray, y: np.ndarray, steps: int = 500) -> tuple[Any, int]:
    """Adam (lr 1e-3) on the fix set alone, full batch, until all are right or `steps`."""
    import torch
    from torch import nn

    m = copy.deepcopy(model).train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    Xt, yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)
    for step in range(steps):
        with torch.no_grad():
            if bool((m(Xt).argmax(1) == yt).all()):
                return m.eval(), step
        opt.zero_grad()
        nn.functional.cross_entropy(m(Xt), yt).backward()
        opt.step()
    return m.eval(), steps


def _measure(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        out = fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return out, time.perf_counter() - t0, peak / 2**20


def _prepare(data_dir: str | os.PathLike, seed: int, epochs: int, keep: int, say: Callable,
             models: tuple[str, ...] = ("mlp",)) -> dict[str, Any]:
    """The set-up every cell shares, per model: the model trained on MNIST, its test and
    validation predictions, the wrong test points in a seeded order, and the keep pool (correct
    training points) with its predictions."""
    from gdsolver.data import load_split

    split = load_split("mnist", data_dir=data_dir, seed=seed)
    (Xtr, ytr), (Xva, yva), (Xte, yte) = split.train, split.val, split.test
    flat = [X.reshape(len(X), -1).astype(np.float32) for X in (Xtr, Xva, Xte)]
    Xtr, Xva, Xte = flat
    out: dict[str, Any] = {}
    for arch in models:
        t0 = time.perf_counter()
        model = _train(Xtr, ytr, seed, epochs, arch)
        train_s = time.perf_counter() - t0
        pred_te = _predict(model, Xte)
        acc0 = float((pred_te == yte).mean())
        say(f"{arch}: trained in {train_s:.0f} s, test accuracy {acc0:.4f}")
        rng = np.random.default_rng(seed)
        wrong = rng.permutation(np.flatnonzero(pred_te != yte))
        right_tr = np.flatnonzero(_predict(model, Xtr) == ytr)
        X_keep = Xtr[rng.choice(right_tr, size=min(keep, len(right_tr)), replace=False)]
        out[arch] = {"model": model, "Xte": Xte, "yte": yte, "pred_te": pred_te, "wrong": wrong, "X_keep": X_keep,
                     "keep_pred": _predict(model, X_keep), "train_s": train_s, "test_accuracy": acc0,
                     "Xva": Xva, "yva": yva, "val_accuracy": float((_predict(model, Xva) == yva).mean())}
    return out


def _run_cell(st: dict[str, Any], cell: dict[str, Any], time_limit: float,
              keep_margin: float | None = None, keep_hidden: int = KEEP_HIDDEN) -> dict[str, Any]:
    """One method on the first `fix` wrong test points, scored on the fix, keep and test points."""
    from gdsolver.repairs import repair

    arch = cell.get("model", "mlp")
    st = st[arch]
    n, model, Xte, yte, pred_te, X_keep = cell["fix"], st["model"], st["Xte"], st["yte"], st["pred_te"], st["X_keep"]
    fix, other_wrong = st["wrong"][:n], st["wrong"][n:]
    rest = np.setdiff1d(np.arange(len(yte)), fix)
    if cell["method"] == "repair":
        m = copy.deepcopy(model)
        given = X_keep[:keep_hidden] if cell["layer"] == "hidden" else X_keep
        rep, secs, mem = _measure(lambda: repair(m, (Xte[fix], yte[fix]), given, layer=CHAIN[arch][cell["layer"]],
                                                 norm=cell["norm"], time_limit=time_limit, patterns="all",
                                                 keep_margin=keep_margin))
        s = rep.solution
        extra = {"norm": cell["norm"], "status": rep.status, "certified": rep.certified, "proof": rep.proof,
                 "change_l1": rep.change.get("l1"), "change_linf": rep.change.get("linf"),
                 "keep_in_milp": s.keep_in_milp, "keep_rows": s.keep_rows, "keep_pool": s.keep_pool,
                 "keep_rounds": s.keep_rounds, "solver_time_s": s.solver_time_s, "keep_given": int(len(given)),
                 "radius": s.radius, "conflict": None if rep.conflict is None else rep.conflict.to_json()}
    else:
        (m, steps), secs, mem = _measure(lambda: _finetune(model, Xte[fix], yte[fix]))
        extra = {"steps": steps, "certified": False}
    p = _predict(m, Xte)
    return {"model": arch, "method": cell["method"], "layer": cell.get("layer", "all"), "fix": int(n),
            "efficacy": float((p[fix] == yte[fix]).mean()),
            "keep_kept": int((_predict(m, X_keep) == st["keep_pred"]).sum()), "keep": int(len(X_keep)),
            "drawdown": float((pred_te[rest] == yte[rest]).mean()) - float((p[rest] == yte[rest]).mean()),
            "val_drop": st["val_accuracy"] - float((_predict(m, st["Xva"]) == st["yva"]).mean()),
            "generalisation": float((p[other_wrong] == yte[other_wrong]).mean()) if len(other_wrong) else None,
            "time_s": secs, "peak_mib": mem, **extra}


def _describe(r: dict[str, Any]) -> str:
    what = (f"repair {r['fix']} fix points, {r['layer']} layer, {r['norm']}: {r['status']}" if r["method"] == "repair"
            else f"Adam fine-tune on {r['fix']} fix points: {r['steps']} steps")
    return f"{r.get('model', 'mlp')}: {what}, efficacy {_pct(r['efficacy'])}, drawdown {100 * r['drawdown']:.2f} pts " \
           f"in {r['time_s']:.1f} s"


def repair_bench(data_dir: str | os.PathLike, *, sizes: tuple[int, ...] = SIZES,
                 layers: tuple[str, ...] = ("final", "hidden"), seed: int = 0, epochs: int = 3, keep: int = KEEP,
                 time_limit: float = 600.0, norms: tuple[str, ...] = ("l1",), say: Callable = print,
                 models: tuple[str, ...] = ("mlp",), keep_margin: float | None = None,
                 keep_hidden: int = KEEP_HIDDEN) -> Bench:
    """The set-up (the trained models and point sets, made here), the cells (per model and
    fix-set size: a repair per layer and norm, then Adam fine-tuning) and how one is measured
    (`_run_cell`). The hidden layer is given the pool's first `keep_hidden` points."""
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    st = _prepare(data_dir, seed, epochs, keep, say, models)
    cells = [c for a in models for n in sizes
             for c in [{"model": a, "fix": n, "method": "repair", "layer": la, "norm": no}
                       for la in layers for no in norms] + [{"model": a, "fix": n, "method": "adam-finetune"}]]
    first = st[models[0]]
    meta = {"seed": seed, "epochs": epochs, "norms": list(norms), "keep_margin": keep_margin, "keep_hidden": keep_hidden,
            "model": f"{ARCH[models[0]]}, Adam lr 1e-3, batch 128", "train_s": first["train_s"],
            "test_accuracy": first["test_accuracy"], "test_wrong": int(len(first["wrong"])),
            "models": {a: {"arch": ARCH[a], "train_s": st[a]["train_s"], "test_accuracy": st[a]["test_accuracy"],
                           "val_accuracy": st[a]["val_accuracy"], "test_wrong": int(len(st[a]["wrong"]))}
                       for a in models}}
    return Bench("repair", cells, lambda cell: _run_cell(st, cell, time_limit, keep_margin, keep_hidden), report,
                 meta=meta,
                 summarize=lambda doc: {"max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024},
                 describe=_describe, header=False)


def run_repair_bench(data_dir: str | os.PathLike, out_dir: str | os.PathLike = "benchmarks/results", *,
                     sizes: tuple[int, ...] = SIZES, layers: tuple[str, ...] = ("final", "hidden"), seed: int = 0,
                     epochs: int = 3, keep: int = KEEP, time_limit: float = 600.0, norms: tuple[str, ...] = ("l1",),
                     progress: Callable | None = None, models: tuple[str, ...] = ("mlp",),
                     keep_margin: float | None = None, keep_hidden: int = KEEP_HIDDEN) -> dict[str, Any]:
    """Run the bench (module docstring); write repair.json and repair.md under out_dir."""
    say = progress or (lambda msg: None)
    bench = repair_bench(data_dir, sizes=sizes, layers=layers, seed=seed, epochs=epochs, keep=keep,
                         time_limit=time_limit, norms=norms, say=say, models=models, keep_margin=keep_margin,
                         keep_hidden=keep_hidden)
    return run_bench(bench, out_dir, "repair", echo=say)


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def report(doc: dict[str, Any]) -> list[str]:
    """The report of a run's result document (its rows: the cells that ran), as lines. A document
    with a keep pool (rows with `keep_rows`) gets the model, validation and LP columns too."""
    pool = any("keep_rows" in r for r in doc["rows"])
    if pool:
        models = "; ".join(f"{a}: {m['arch']}, test accuracy {100 * m['test_accuracy']:.2f}% ({m['test_wrong']} "
                           f"wrong), trained in {m['train_s']:.0f} s" for a, m in doc["models"].items())
        km = doc.get("keep_margin")
        intro = (f"Adam lr 1e-3, batch 128, {doc['epochs']} epoch(s), seed {doc['seed']}. {models}. Fix sets: the first "
                 f"N of a model's wrong test points (seeded order); keep pool: {doc['rows'][0]['keep']} training points "
                 "it gets right (`keep kept` counts the whole pool for every row); the final layer's repair is given "
                 f"the pool, the hidden layer's its first {doc.get('keep_hidden', KEEP_HIDDEN)} points (`keep set`); "
                 "their rows enter the LP only when the repaired layer breaks them (`rounds`; `keep rows` in the last "
                 f"LP / `pts` with a row); keep margin {'= margin' if km is None else km}. Repair: "
                 f"{'/'.join(doc['norms'])} change, ReLU phases pinned at the hidden layer (an LP); the model is run in "
                 "float32 and float64 on every fix and keep point (`certified`). Drawdown: test accuracy outside the "
                 "fix set, before minus after (percentage points); val drop: the same on the 5,000 validation points "
                 "(held-out training data); generalisation: accuracy on the other wrong test points (0% before).")
    else:
        intro = (f"{doc['model']}, {doc['epochs']} epochs (seed {doc['seed']}, {doc['train_s']:.0f} s): test accuracy "
                 f"{100 * doc['test_accuracy']:.2f}% ({doc['test_wrong']} test points wrong). Fix sets: the first N of "
                 f"those (seeded order); keep: {doc['rows'][0]['keep']} training points the model gets right. Repair: "
                 f"{'/'.join(doc['norms'])} change, ReLU phases pinned at the hidden layer (an LP); the model is run in "
                 "float32 and float64 on every fix and keep point (`certified`). Drawdown: test accuracy outside the "
                 "fix set, before minus after (percentage points); generalisation: accuracy on the other wrong test "
                 "points (0% before).")
    lines = ["# Certified repair on MNIST", "", intro,
             # results from before the runner give the command and load here; the runner's footer does now
             "", *(run_header(doc) if "run" not in doc else [machine_line(doc["machine"], "python", "numpy",
                                                                          "highspy") + ".", ""])]
    cols = ["method", "layer", "norm", "fix", "status", "efficacy", "keep kept", "drawdown (pts)", "generalisation",
            "change l1", "change linf", "time (s)", "peak MiB"]
    if pool:
        cols[:0] = ["model"]
        cols[cols.index("drawdown (pts)") + 1:cols.index("drawdown (pts)") + 1] = ["val drop (pts)"]
        cols[cols.index("time (s)"):cols.index("time (s)")] = ["keep set", "rounds", "keep rows / pts"]
    body = []
    for r in doc["rows"]:
        row = [r["method"], r["layer"], r.get("norm", "-"), r["fix"], r.get("status", f"{r.get('steps')} steps"),
               _pct(r["efficacy"]), f"{r['keep_kept']}/{r['keep']}", f"{100 * r['drawdown']:.2f}",
               _pct(r["generalisation"]),
               "-" if r.get("change_l1") is None else f"{r['change_l1']:.3g}",
               "-" if r.get("change_linf") is None else f"{r['change_linf']:.3g}", f"{r['time_s']:.1f}",
               f"{r['peak_mib']:.0f}"]
        if pool:
            lp = r.get("keep_rows") is not None
            row = [r.get("model", "mlp"), *row[:8], f"{100 * r['val_drop']:.2f}", *row[8:11],
                   str(r.get("keep_given", "-")) if lp else "-", str(r["keep_rounds"]) if lp else "-",
                   f"{r['keep_rows']} / {r['keep_in_milp']}" if lp else "-",
                   *row[11:]]
        body.append(row)
    lines += md_table(cols, body)
    lines += ["", "peak MiB: tracemalloc's peak of numpy and Python allocations during the method; torch's "
              "allocator and the solver's C++ memory are not in it (so Adam fine-tuning shows about 0). "
              f"Process max RSS {doc['max_rss_mib']:.0f} MiB (training included)."]
    return lines
