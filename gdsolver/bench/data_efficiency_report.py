"""The report of `gdsolver bench data-efficiency` (gdsolver.bench.data_efficiency_bench runs
it): the means over seeds, the target accuracy and the smallest n reaching it, the half-data
comparison, the markdown and the plot, computed from the rows a run keeps. `cfg` is the run's
DataEfficiencyConfig (models, methods, n values, epochs, tuning)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from gdsolver.bench.plots import fmt_num, fmt_pm, md_table, mean_std, pyplot, run_header, save_figure

TWO_LOOP = "gdsolver-2loop"
NO_SWEEP = "2loop-no-sweep"  # control: the 2-loop's GD schedule (lr 0.1 then 0.05, patience 2) without its sweeps
TARGET_SLACK = 0.05


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, method, e, n): the means over the seeds (tuned baselines at their chosen rate)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("chosen") is False:  # a tuned baseline at a rate not chosen
            continue
        groups.setdefault((r["model"], r["method"], r["epochs"], r["n"]), []).append(r)
    out = []
    for (model, method, e, n), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], kv[0][3])):
        acc, sd, k = mean_std([r.get("test_acc") for r in rs])
        tra, _, _ = mean_std([r.get("train_acc") for r in rs])
        t, _, _ = mean_std([r.get("time_s") for r in rs])
        gd, _, _ = mean_std([r.get("gd_time_s") for r in rs])
        sv, _, _ = mean_std([r.get("solver_time_s") for r in rs])
        sw = [r.get("sweeps_accepted") for r in rs if r.get("sweeps") is not None]
        out.append({"model": model, "method": method, "epochs": e, "n": n, "test_acc": acc, "test_acc_std": sd,
                    "train_acc": tra, "seeds": k, "time_s": t, "gd_time_s": gd, "solver_time_s": sv,
                    "sweeps_accepted": float(np.mean(sw)) if sw else None,
                    "errors": sum(1 for r in rs if r.get("error"))})
    return out


def targets(agg: list[dict[str, Any]], cfg: Any) -> dict[str, float]:
    """Per model: cfg.target, or the best mean accuracy of any baseline (any n, any e) - TARGET_SLACK."""
    out = {}
    for model in cfg.models:
        if cfg.target is not None:
            out[model] = float(cfg.target)
            continue
        accs = [a["test_acc"] for a in agg if a["model"] == model and a["method"] in cfg.all_baselines()
                and math.isfinite(a["test_acc"])]
        if not accs:  # no baseline run: fall back to every method
            accs = [a["test_acc"] for a in agg if a["model"] == model and math.isfinite(a["test_acc"])]
        out[model] = (max(accs) - TARGET_SLACK) if accs else math.nan
    return out


def smallest_n(agg: list[dict[str, Any]], cfg: Any, tgt: dict[str, float]) -> list[dict[str, Any]]:
    """Per (model, method, e): the smallest n whose mean test accuracy reaches the model's target."""
    L = {(a["model"], a["method"], a["epochs"], a["n"]): a for a in agg}
    out = []
    for model in cfg.models:
        for method in cfg.all_methods():
            for e in cfg.epochs:
                hit = [n for n in cfg.n_values if (model, method, e, n) in L
                       and L[(model, method, e, n)]["test_acc"] >= tgt[model]]
                out.append({"model": model, "method": method, "epochs": e, "target": tgt[model],
                            "smallest_n": min(hit) if hit else None})
    return out


def half_data(agg: list[dict[str, Any]], cfg: Any) -> list[dict[str, Any]]:
    """Per (model, e): the best baseline at the largest n (highest mean test accuracy) and, per
    method, the smallest n whose mean accuracy reaches it (the target: at most half the points)."""
    L = {(a["model"], a["method"], a["epochs"], a["n"]): a for a in agg}
    nmax = max(cfg.n_values)
    out = []
    for model in cfg.models:
        for e in cfg.epochs:
            cands = [(L[(model, m, e, nmax)]["test_acc"], m) for m in cfg.all_baselines()
                     if (model, m, e, nmax) in L and math.isfinite(L[(model, m, e, nmax)]["test_acc"])]
            if not cands:
                continue
            acc, best = max(cands)
            per = {}
            for m in cfg.all_methods():
                hit = [n for n in cfg.n_values if (model, m, e, n) in L and L[(model, m, e, n)]["test_acc"] >= acc]
                per[m] = min(hit) if hit else None
            # at the largest n of at most half the points: each method's test and training accuracy (a
            # training accuracy of ~1 says the gap to the target is generalisation, not optimisation)
            half_n = max((n for n in cfg.n_values if n <= nmax / 2), default=None)
            at_half = {m: {"test_acc": a["test_acc"], "train_acc": a.get("train_acc", math.nan)}
                       for m in cfg.all_methods() if (a := L.get((model, m, e, half_n))) is not None}
            out.append({"model": model, "epochs": e, "best_baseline": best, "target": acc, "n_max": nmax,
                        "smallest_n": per, "half_n": half_n, "at_half": at_half})
    return out


def markdown(doc: dict[str, Any], cfg: Any, png_name: str | None) -> str:
    """The report of a run's document; cfg is its DataEfficiencyConfig."""
    L = {(a["model"], a["method"], a["epochs"], a["n"]): a for a in doc["aggregate"]}
    methods = cfg.all_methods()
    lines = [f"# gdsolver bench data-efficiency: {cfg.dataset} ({doc['preset']} preset)", "",
             "The paper's classification data-efficiency study: test accuracy against the number n of training "
             "points (the first n of the training set) and the epoch budget e. Baselines run e epochs "
             f"({'tuned rates, see below' if cfg.tuned() else f'lr {cfg.lr:g}'}, batch {cfg.batch_size}); "
             f"{TWO_LOOP} runs at most e/2 SGD epochs (lr 0.1, "
             "patience 2), a sweep on 32 misclassified points, again (lr 0.05), and a second sweep; "
             f"{NO_SWEEP} is the same GD schedule with the sweeps skipped (the solver's own effect is the "
             f"difference between the two). "
             f"Mean ± standard deviation over seeds {list(cfg.seeds)}.", ""]
    lines += run_header(doc)
    if cfg.tuned():
        lines += _tuned(doc, cfg)
    for model in cfg.models:
        lines += _model_section(doc, cfg, model, L)
    lines += ["## Smallest n reaching the target accuracy", ""]
    tg = doc["targets"]
    lines += ["Target per model: " + ", ".join(f"{k} {fmt_num(v, 3)}" for k, v in tg.items())
              + ("" if cfg.target is not None else
                 f" (the best mean accuracy any baseline reached, minus {TARGET_SLACK:g})") + ".", ""]
    S = {(s["model"], s["method"], s["epochs"]): s["smallest_n"] for s in doc["smallest_n"]}
    body = [[f"{model}, e={e}"] + [fmt_num(S.get((model, meth, e))) for meth in methods]
            for model in cfg.models for e in cfg.epochs]
    lines += md_table(["model, epochs"] + methods, body) + ["", "(\"-\": not reached at any n tried.)", ""]
    errs = sorted({(r["model"], r["method"], r["error"]) for r in doc["rows"] if r.get("error")})
    if errs:
        lines += ["## Runs that failed", ""] + [f"- {mo}, {me}: {er}" for mo, me, er in errs] + [""]
    if png_name:
        lines += [f"![test accuracy against n]({png_name})", ""]
    return "\n".join(lines)


def _tuned(doc: dict[str, Any], cfg: Any) -> list[str]:
    """How the tuned baselines and GDSolver's tuned rows ran, and the half-data tables."""
    from gdsolver.train.sweep import DEFAULT_CE_POINTS

    lines = [f"Tuned baselines: {', '.join(cfg.tuned())} ran at every rate of {list(cfg.lr_grid)}; the rate of "
             "each (model, method, n, e) is the one with the lowest mean validation cross-entropy over the seeds "
             "(never the test split); the tables show each at its chosen rate. "
             + (f"{cfg.lbfgs_best()}: full-batch L-BFGS (e steps of at most 20 iterations) from "
                f"{cfg.lbfgs_restarts} initialisations, the best on validation kept, all restarts' time counted. "
                if cfg.lbfgs_best() else "")
             + (f"{', '.join(cfg.gdsolver_rows())}: GDSolver with the trainer's defaults (GD until the "
                "validation loss plateaus, then a final-layer sweep with the default classification head "
                f"(\"ce\", {DEFAULT_CE_POINTS} points), twice) whose GD phase is the bracketed tuned baseline "
                "at its tuned rate for the (model, n, e)." if cfg.gdsolver_rows() else ""), ""]
    hd = doc.get("half_data") or []
    if not hd:
        return lines
    methods_h = cfg.all_methods()
    lines += ["## The best tuned baseline's accuracy with at most half the points", "",
              f"Target per (model, e): the best baseline's mean test accuracy at n = {max(cfg.n_values)}; "
              "each cell is the smallest n at which the method's mean accuracy reaches it (\\* = at most half "
              "the points; - = not reached).", ""]
    body = []
    for h in hd:
        body.append([f"{h['model']}, e={h['epochs']}", f"{h['best_baseline']} {fmt_num(h['target'], 3)}"]
                    + [("-" if h["smallest_n"].get(m) is None else
                        f"{h['smallest_n'][m]}{' *' if h['smallest_n'][m] <= h['n_max'] / 2 else ''}")
                       for m in methods_h])
    lines += md_table(["model, e", "best baseline (acc)"] + methods_h, body) + [""]
    if any(h.get("at_half") for h in hd):
        lines += [f"Test / training accuracy at n = {hd[0]['half_n']} (the largest n of at most half), mean "
                  "over the seeds; the target is the column \"best baseline\" above:", ""]
        body = [[f"{h['model']}, e={h['epochs']}", fmt_num(h["target"], 3)]
                + [(f"{fmt_num(h['at_half'][m]['test_acc'], 3)} / {fmt_num(h['at_half'][m]['train_acc'], 3)}"
                    if m in h["at_half"] else "-") for m in methods_h] for h in hd]
        lines += md_table(["model, e", "target"] + methods_h, body) + [""]
    return lines


def _model_section(doc: dict[str, Any], cfg: Any, model: str, L: dict[tuple, dict[str, Any]]) -> list[str]:
    """One model: test accuracy per n and method at each epoch budget, the chosen rates, the 2-loop's sweeps."""
    methods = cfg.all_methods()
    lines = [f"## {model}: {doc['models'].get(model, '')}", ""]
    for e in cfg.epochs:
        cols = ["n"] + methods
        body = [[n] + [fmt_pm(L[(model, meth, e, n)]["test_acc"], L[(model, meth, e, n)]["test_acc_std"], 3)
                       if (model, meth, e, n) in L else "-" for meth in methods] for n in cfg.n_values]
        lines += [f"### test accuracy, e = {e}", ""] + md_table(cols, body) + [""]
    if cfg.tuned():
        ch = doc.get("chosen_lrs", {})
        body = [[n, e] + [fmt_num(ch.get(f"{model}/{m}/{n}/{e}"), 3) for m in cfg.tuned()]
                for n in cfg.n_values for e in cfg.epochs]
        lines += ["Chosen rates:", ""] + md_table(["n", "e"] + cfg.tuned(), body) + [""]
    tw = [(n, e) for e in cfg.epochs for n in cfg.n_values if (model, TWO_LOOP, e, n) in L]
    if tw:
        lines += [f"{TWO_LOOP}: mean sweeps accepted (of 2) and mean GD + solver time (s) per run:", ""]
        body = [[n, e, fmt_num(L[(model, TWO_LOOP, e, n)]["sweeps_accepted"], 2),
                 fmt_num(L[(model, TWO_LOOP, e, n)]["gd_time_s"], 3),
                 fmt_num(L[(model, TWO_LOOP, e, n)]["solver_time_s"], 3)] for n, e in tw]
        lines += md_table(["n", "e", "accepted", "GD s", "solver s"], body) + [""]
    return lines


def plot(doc: dict[str, Any], cfg: Any, path: Path) -> int:
    """Test accuracy against n, one panel per model and epoch budget, the target as a line."""
    plt = pyplot()
    L = {(a["model"], a["method"], a["epochs"], a["n"]): a for a in doc["aggregate"]}
    fig, axes = plt.subplots(len(cfg.models), len(cfg.epochs), figsize=(3.6 * len(cfg.epochs), 3.0 * len(cfg.models)),
                             squeeze=False, sharey="row")
    for i, model in enumerate(cfg.models):
        for j, e in enumerate(cfg.epochs):
            ax = axes[i, j]
            for meth in cfg.all_methods():
                pts = [(n, L[(model, meth, e, n)]) for n in cfg.n_values if (model, meth, e, n) in L]
                pts = [(n, a) for n, a in pts if math.isfinite(a["test_acc"])]
                if not pts:
                    continue
                style = dict(marker="o", ms=4, lw=1.8) if meth == TWO_LOOP else dict(marker=".", lw=1.0)
                ax.errorbar([n for n, _ in pts], [a["test_acc"] for _, a in pts],
                            yerr=[a["test_acc_std"] if math.isfinite(a["test_acc_std"]) else 0 for _, a in pts],
                            label=meth, capsize=2, **style)
            tgt = doc["targets"].get(model)
            if tgt is not None and math.isfinite(tgt):
                ax.axhline(tgt, color="grey", ls=":", lw=1)
            ax.set_xscale("log")
            ax.set_title(f"{cfg.dataset} {model}, e = {e}", fontsize=9)
            ax.set_xlabel("training points n")
            if j == 0:
                ax.set_ylabel("test accuracy")
            ax.grid(alpha=0.3)
        axes[i, 0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
