"""The report of `gdsolver bench equal-time` (gdsolver.bench.equal_time_bench runs it): the
summary over seeds (statistics, wins, paired differences, overruns), the markdown and the plot,
computed from the rows a run keeps, so a saved run's report can be written again."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from gdsolver.bench.plots import fmt_num, fmt_pm, md_table, pyplot, run_header, save_figure

GDSOLVER, ABLATION = "gdsolver", "gdsolver-no-sweeps"
BASELINES = ("gd", "restarts")  # the equal-time baselines GDSolver is judged against
WITHIN = 0.05  # issue 29's target: GDSolver's mean test loss at most 5% above the best baseline
TIE_ABS = 1e-6  # differences of mean test loss below this count as ties (both at ~0)
PAY = {"regression": 0.20, "classification": 0.10}  # sweeps "pay": this relative drop against the ablation
OVERRAN = 1.25  # a run whose wall time exceeded this multiple of its budget is listed as an overrun
WIN_TIE_REL = 1e-9  # per-seed wins: losses within this relative difference share the win


def _stats(v: Sequence[float]) -> dict[str, float]:
    a = np.array([x for x in v if x is not None and math.isfinite(x)], float)
    if not len(a):
        return {"n": 0, "mean": math.nan, "median": math.nan, "std": math.nan, "q25": math.nan, "q75": math.nan}
    return {"n": int(len(a)), "mean": float(a.mean()), "median": float(np.median(a)),
            "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "q25": float(np.percentile(a, 25)),
            "q75": float(np.percentile(a, 75))}


def _paired(by: dict[str, dict[int, dict[str, Any]]], a: str, b: str, seeds: Sequence[int]) -> dict[str, Any]:
    """a against b on the seeds both finished: mean difference (a - b), its std, the relative
    difference of the means, and on how many seeds a is lower."""
    pairs = [(by[a][s]["test_loss"], by[b][s]["test_loss"]) for s in seeds
             if _ok(by.get(a, {}).get(s)) and _ok(by.get(b, {}).get(s))]
    if not pairs:
        return {"ref": b, "n": 0, "mean_diff": math.nan, "std_diff": math.nan, "rel": math.nan, "better": 0,
                "worse": 0}
    x, y = np.array(pairs, float).T
    d = x - y
    rel = (x.mean() - y.mean()) / y.mean() if y.mean() else (0.0 if x.mean() == y.mean() else math.inf)
    return {"ref": b, "n": len(d), "mean_diff": float(d.mean()),
            "std_diff": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
            "rel": float(rel), "ref_mean": float(y.mean()), "mean": float(x.mean()),
            "better": int((d < 0).sum()), "worse": int((d > 0).sum())}


def _ok(r: dict[str, Any] | None) -> bool:
    return r is not None and r.get("error") is None and r.get("test_loss") is not None \
        and math.isfinite(r["test_loss"])


def _moves_mean(rows: list[dict[str, Any]]) -> dict[str, float] | None:
    """GDSolver under a budget: the mean number of times each move was chosen per run
    (history.decisions; "stop" is the final choice), None for a trainer that makes none."""
    ms = [r.get("moves") or {} for r in rows]
    names = sorted({k for m in ms for k in m})
    return {k: float(np.mean([m.get(k, 0) for m in ms])) for k in names} if names and ms else None


def summarize(rows: list[dict[str, Any]], workloads: Sequence[Any], cfg: Any) -> list[dict[str, Any]]:
    """Per workload and budget: every method's figures over the seeds, the best baseline, and
    GDSolver against it and against its ablation (paired, seed by seed). workloads: the run's
    Workload records (name, task, units, budgets, budget_seconds()); cfg: its EqualTimeConfig
    (methods, seeds)."""
    out = []
    for wl in workloads:
        for b, bs in zip(wl.budgets, wl.budget_seconds()):
            rs = [r for r in rows if r["workload"] == wl.name and r["budget"] == b]
            by = {m: {r["seed"]: r for r in rs if r["method"] == m} for m in cfg.methods}
            wins = {m: 0 for m in cfg.methods}
            for s in cfg.seeds:
                got = {m: by[m][s]["test_loss"] for m in cfg.methods if _ok(by[m].get(s))}
                if not got:
                    continue
                lo = min(got.values())
                for m, v in got.items():
                    if v <= lo + WIN_TIE_REL * abs(lo):
                        wins[m] += 1
            ms = {}
            for m in cfg.methods:
                good = [r for r in by[m].values() if _ok(r)]
                ran = [r for r in by[m].values() if r.get("wall_s") is not None]
                st = _stats([r["test_loss"] for r in good])
                acc = _stats([r["test_acc"] for r in good if r.get("test_acc") is not None])
                ms[m] = {**st, "acc_mean": acc["mean"], "acc_std": acc["std"], "wins": wins[m],
                         "wall_mean": _stats([r["wall_s"] for r in ran])["mean"],
                         "wall_max": max((r["wall_s"] for r in ran), default=math.nan),
                         "over_max": max((r["over_s"] for r in ran), default=math.nan),
                         # the largest overrun measured in steps of its own run (<= 1: within one step)
                         "over_steps_max": max((max(r["over_s"], 0.0) / r["max_step_s"] if r["max_step_s"] else
                                                (0.0 if r["over_s"] <= 0 else math.inf) for r in ran),
                                               default=math.nan),
                         # wall time as a multiple of the budget: what a reader compares at "equal time"
                         "wall_ratio_mean": _stats([r["wall_s"] / r["budget_s"] for r in ran])["mean"],
                         "wall_ratio_max": max((r["wall_s"] / r["budget_s"] for r in ran), default=math.nan),
                         "overran": sum(1 for r in ran if r["wall_s"] > OVERRAN * r["budget_s"]),
                         "epochs_mean": _stats([r["epochs"] for r in ran])["mean"],
                         "restarts_mean": _stats([r["restarts"] for r in ran])["mean"],
                         "sweeps_mean": _stats([r["sweeps"] for r in ran])["mean"],
                         "sweeps_accepted_mean": _stats([r["sweeps_accepted"] for r in ran])["mean"],
                         "moves_mean": _moves_mean(ran),
                         "errors": sum(1 for r in by[m].values() if r.get("error"))}
            base = [(ms[m]["mean"], m) for m in BASELINES if m in ms and math.isfinite(ms[m]["mean"])]
            best = min(base)[1] if base else None
            entry: dict[str, Any] = {"workload": wl.name, "task": wl.task, "budget": b, "budget_s": bs,
                                     "units": wl.units, "methods": ms, "best_baseline": best}
            if GDSOLVER in ms and best:
                vb = _paired(by, GDSOLVER, best, cfg.seeds)
                entry["vs_best"] = vb
                entry["within_5pct"] = bool(vb["n"] and (vb["rel"] <= WITHIN or
                                                         abs(vb["mean"] - vb["ref_mean"]) <= TIE_ABS))
            if GDSOLVER in ms and ABLATION in ms:
                va = _paired(by, GDSOLVER, ABLATION, cfg.seeds)
                entry["vs_ablation"] = va
                entry["sweeps_pay"] = bool(va["n"] and va["rel"] <= -PAY[wl.task])
            out.append(entry)
    return out


NAMES = {"gd": "GD continued", "restarts": "restarts (best of K)", "gdsolver": "GDSolver (time-aware)",
         "gdsolver-no-sweeps": "GDSolver, no sweeps"}


def _pct(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{100 * v:+.1f}%"


def _ratio(s: dict[str, Any] | None) -> str:
    if not s or not math.isfinite(s.get("wall_ratio_mean", math.nan)):
        return "-"
    return f"{s['wall_ratio_mean']:.2f}, {s['wall_ratio_max']:.2f}"


def _budget_text(e: dict[str, Any]) -> str:
    return f"{e['budget']:g} s" if e["units"] == "s" else f"{e['budget']:g} ep ({e['budget_s']:.3g} s)"


def markdown(doc: dict[str, Any], png_name: str | None) -> str:
    """The report of a run's document (summary and rows), the plot linked as png_name."""
    cfg = doc["config"]
    lines = [f"# gdsolver bench equal-time ({doc['preset']} preset)", "",
             "Every method gets the same wall-clock budget and starts from the same weights (issue 29, item 1). "
             "Per workload, seed and budget: **GD continued** (the tuned GD for the whole budget, no early "
             "stopping), **restarts** (best of K on validation, K filling the budget), **GDSolver** (time-aware: "
             "`GDSolver(budget_s=B)`, its defaults, the GD phase the same tuned GD) and its ablation **GDSolver, "
             "no sweeps** (`skip_sweeps=True`). A run's time is its `fit()` wall time from the start (GD, "
             "evaluations, restarts, sweeps: extraction, build, solve, refinement rounds, refit, checks). "
             "Classification budgets are epoch-equivalents: the wall time of one epoch's fit of the tuned GD, "
             f"measured in this run (median of {cfg['epoch_reps']}). Seeds {list(cfg['seeds'])}. Test loss: MSE "
             "(regression), cross-entropy (classification). Wins: seeds on which a method's test loss is the "
             "lowest of the four (ties shared). \"best baseline\": GD continued or restarts, whichever has the lower "
             "mean test loss at that budget; paired differences are GDSolver minus the reference, seed by seed.", ""]
    lines += run_header(doc) + _conditions(doc)
    for name, why in (doc.get("skipped") or {}).items():
        lines += [f"**Skipped: {name}**: {why}.", ""]
    summ = doc["summary"]
    if summ:
        lines += _verdicts(summ)
    for w in doc["workloads"]:
        lines += _workload_section(w, [e for e in summ if e["workload"] == w["name"]], cfg)
    lines += _overruns(summ)
    errs = [r for r in doc["rows"] if r.get("error")]
    if errs:
        lines += ["## Runs that failed", ""] + sorted({f"- {r['workload']}, {r['method']}: {r['error']}"
                                                       for r in errs}) + [""]
    if png_name:
        lines += ["Plot: mean test loss per method against the mean wall time its runs of each budget took (the "
                  "ticks are the budgets: a point right of its tick overran), the seeds' 25th-75th percentile "
                  "shaded.", "", f"![test loss against the budget]({png_name})", ""]
    return "\n".join(lines)


def _conditions(doc: dict[str, Any]) -> list[str]:
    """The load during the run, the code it ran, and the earlier part of a resumed run."""
    lines: list[str] = []
    ls = doc.get("load_samples") or []
    if ls:
        one = [x["load"][0] for x in ls if x.get("load")]
        lines += [f"1-minute load sampled {len(one)} times during the run (at each workload and seed): "
                  f"{min(one):.2f} to {max(one):.2f}, median {statistics.median(one):.2f}, on "
                  f"{doc['machine']['cores']} cores; `uptime` at the start: `{doc.get('uptime', {}).get('start') or '-'}`, at the end: "
                  f"`{doc.get('uptime', {}).get('end') or '-'}`.", ""]
    g = doc.get("git")
    if g:
        lines += [f"Code: commit {g['head'][:10]}" + (f", with uncommitted changes in {', '.join(g['modified'])}"
                                                     if g["modified"] else "") + ".", ""]
    rs = doc.get("resumed")
    if rs:
        one = [x["load"][0] for x in rs.get("load_samples") or [] if x.get("load")]
        eg = rs.get("git") or {}
        lines += ["This run continued an earlier one of the same configuration (`" + " ".join(rs.get("command") or ["?"])
                  + f"`, {rs.get('started') or 'earlier'}"
                  + (f", code at commit {eg['head'][:10]}" if eg.get("head") else "") + "): its finished seeds ("
                  + "; ".join(f"{w} {s}" for w, s in rs["done"].items()) + ") were measured then, with their "
                  "workloads' tuned rate and epoch-equivalent; the rest now."
                  + (f" 1-minute load during the earlier part: {min(one):.2f} to {max(one):.2f}." if one else ""), ""]
    return lines


def _verdicts(summ: list[dict[str, Any]]) -> list[str]:
    """GDSolver against the best baseline and against its ablation, one row per workload and budget."""
    lines = ["## GDSolver against the best equal-time baseline and against its ablation", "",
             f"Target (issue 29): GDSolver's mean test loss at most {100 * WITHIN:g}% above the best baseline; "
             f"the sweeps pay where GDSolver is at least {100 * PAY['regression']:g}% (regression) / "
             f"{100 * PAY['classification']:g}% (classification) below its ablation.", ""]
    body = []
    for e in summ:
        vb, va = e.get("vs_best") or {}, e.get("vs_ablation") or {}
        body.append([e["workload"], _budget_text(e), e["best_baseline"] or "-",
                     fmt_num(vb.get("ref_mean")), fmt_num(vb.get("mean")), _pct(vb.get("rel")),
                     f"{vb.get('better', 0)}/{vb.get('n', 0)}", fmt_num(vb.get("mean_diff")),
                     "yes" if e.get("within_5pct") else "no",
                     _ratio(e["methods"].get(GDSOLVER)),
                     fmt_num(va.get("ref_mean")), _pct(va.get("rel")), f"{va.get('better', 0)}/{va.get('n', 0)}",
                     "yes" if e.get("sweeps_pay") else "no"])
    return lines + md_table(["workload", "budget", "best baseline", "its mean", "GDSolver mean", "vs best",
                             "seeds better", "paired diff", "within 5%", "GDSolver wall / budget (mean, max)",
                             "ablation mean", "vs ablation",
                             "seeds better", "sweeps pay"], body) + [""]


def _workload_section(w: dict[str, Any], es: list[dict[str, Any]], cfg: dict[str, Any]) -> list[str]:
    """One workload: its model, data and tuned GD, every method at every budget, GDSolver's moves."""
    lines = [f"## {w['name']}: {w['model']}", "",
             f"Data: {w['data']}. Tuned GD: {w['gd_label']} ({w['gd_source']}). Restarts: each initialisation "
             f"trains with that GD to its plateau (patience {cfg['restart_patience']}"
             + (f", at most {w['restart_epochs']} epochs" if w["restart_epochs"] else "")
             + (" of one L-BFGS step of at most 20 iterations" if w["task"] == "regression" else "") + "), K as "
             "many as the budget allows, the best on validation kept."
             + (f" One epoch-equivalent: {w['epoch_s']:.3g} s (runs: "
                f"{', '.join(f'{x:.3g}' for x in w['epoch_reps_s'])} s)." if w.get("epoch_s") else "")
             + (f" Rate tuning: mean validation loss {w['tuning']['mean_val_loss']} after "
                f"{w['tuning']['epochs']} epochs, chosen {w['tuning']['chosen']:g} "
                f"({w['tuning']['wall_s']:.0f} s)." if w.get("tuning") else ""), ""]
    body = []
    for e in es:
        for m, s in e["methods"].items():
            body.append([_budget_text(e), NAMES.get(m, m), fmt_pm(s["mean"], s["std"]), fmt_num(s["median"]),
                         fmt_pm(s["acc_mean"], s["acc_std"], 3) if w["task"] == "classification" else "-",
                         f"{s['wins']}/{len(cfg['seeds'])}",
                         f"{fmt_num(s['wall_mean'], 3)} ({fmt_num(s['wall_max'], 3)})",
                         f"{s['over_max']:+.3f} s" if math.isfinite(s["over_max"]) else "-",
                         fmt_num(s["epochs_mean"], 3), fmt_num(s["restarts_mean"], 3),
                         f"{fmt_num(s['sweeps_accepted_mean'], 2)}/{fmt_num(s['sweeps_mean'], 2)}"
                         + (f" ({s['errors']} failed)" if s["errors"] else "")])
    lines += md_table(["budget", "method", "test loss mean ± std", "median", "test acc", "wins",
                       "wall s mean (max)", "max over budget", "epochs", "restarts", "sweeps kept/run"], body)
    lines += [""]
    mv = [(e, m, s["moves_mean"]) for e in es for m, s in e["methods"].items() if s.get("moves_mean")]
    if mv:
        lines += ["GDSolver's choices under the budget (history.decisions): mean times each move was chosen "
                  "per run (\"stop\": the budget was spent or nothing fitted).", ""]
        body = [[_budget_text(e), NAMES.get(m, m), ", ".join(f"{k} ×{v:.3g}" for k, v in x.items())]
                for e, m, x in mv]
        lines += md_table(["budget", "method", "moves chosen (mean per run)"], body) + [""]
    return lines


def _overruns(summ: list[dict[str, Any]]) -> list[str]:
    """Runs that overran their budget by more than one of their own steps, or by OVERRAN x."""
    over = [(e["workload"], _budget_text(e), m, s["over_steps_max"]) for e in summ for m, s in e["methods"].items()
            if math.isfinite(s["over_steps_max"]) and s["over_steps_max"] > 1.0]
    lines = ["## Overruns", ""]
    lines += (["Every run ended within its budget plus one step of its own (the longest epoch or sweep of that "
               "run).", ""] if not over else
              ["Runs that overran their budget by more than their own longest step:", ""]
              + [f"- {w}, {b}, {NAMES.get(m, m)}: {x:.2f} steps" for w, b, m, x in over] + [""])
    big = [(e["workload"], _budget_text(e), m, s) for e in summ for m, s in e["methods"].items() if s.get("overran")]
    if big:
        lines += [f"Runs whose wall time exceeded {OVERRAN:g} x their budget (a step longer than the time left, "
                  "e.g. a sweep, was started): their figures are not at equal time.", ""]
        body = [[w, b, NAMES.get(m, m), f"{s['overran']}/{s['n'] + s['errors']}", f"{s['wall_ratio_mean']:.2f}",
                 f"{s['wall_ratio_max']:.2f}"] for w, b, m, s in big]
        lines += md_table(["workload", "budget", "method", "runs", "wall / budget, mean", "max"], body) + [""]
    return lines


# colour, marker, line style: GD and the ablation often coincide, so they are drawn differently
STYLE = {"gd": ("C0", "o", "-"), "restarts": ("C2", "s", "-"), "gdsolver": ("C3", "D", "-"),
         "gdsolver-no-sweeps": ("C7", "v", "--")}


def plot(doc: dict[str, Any], path) -> int:
    """Per workload: mean test loss against time (log-log), one line per method, the seeds'
    25th-75th percentile shaded; each point sits at the mean wall time the method's runs of that
    budget took (the ticks are the budgets), so a method that overran its budget is seen to."""
    plt = pyplot()
    wls = [w for w in doc["workloads"]]
    fig, axes = plt.subplots(1, max(1, len(wls)), figsize=(3.8 * max(1, len(wls)), 3.4), squeeze=False)
    for j, w in enumerate(wls):
        ax = axes[0, j]
        es = [e for e in doc["summary"] if e["workload"] == w["name"]]
        xs = [e["budget_s"] for e in es]
        for m in doc["config"]["methods"]:
            mean = [e["methods"][m]["mean"] for e in es]
            lo = [e["methods"][m]["q25"] for e in es]
            hi = [e["methods"][m]["q75"] for e in es]
            c, mk, ls = STYLE.get(m, ("k", ".", "-"))
            at = [e["methods"][m]["wall_mean"] if math.isfinite(e["methods"][m].get("wall_mean", math.nan))
                  else e["budget_s"] for e in es]
            ax.plot(at, mean, marker=mk, ms=4, color=c, ls=ls, lw=1.8 if m == GDSOLVER else 1.2,
                    label=NAMES.get(m, m))
            ax.fill_between(at, lo, hi, color=c, alpha=0.15, lw=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{e['budget']:g}" + ("" if e["units"] == "s" else f" ep\n{e['budget_s']:.2g} s")
                            for e in es], fontsize=7)
        ax.minorticks_off()
        ax.set_title(f"{w['name']} ({w['gd_label'].split(',')[0]})", fontsize=9)
        ax.set_xlabel("wall time used (s); ticks: budgets" if w["units"] == "s" else
                      "wall time used; ticks: budgets (epoch-equivalents)", fontsize=8)
        if j == 0:
            ax.set_ylabel("test loss (mean; 25-75% of seeds shaded)", fontsize=8)
        ax.set_xlim(min(xs) / 1.5, max(max(xs) * 1.5, max((e["methods"][m].get("wall_mean") or 0)
                                                           for e in es for m in e["methods"]) * 1.2))
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
