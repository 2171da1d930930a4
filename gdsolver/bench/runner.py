"""The one grid -> cells -> runner -> report mechanism of the benchmarks.

A bench is its cells (small JSON-able dicts), `run_cell(cell) -> row or rows` and
`report(doc) -> markdown lines`. `run_bench` does the rest once: a progress line (and tick) per
cell, each cell's wall time and the 1-minute load as it started, a failed cell kept as a row
with its error while the run goes on, the machine, versions, git state, command and load at the
start and end, and atomic writes of {tag}.json / .md (+ .csv, .png when the bench gives columns
or a plot)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gdsolver.atomic import atomic_write_text
from gdsolver.bench.machine import git_state, machine_info, machine_line
from gdsolver.bench.plots import clean, executor_text, load_average, out_paths, versions, write_csv, write_json

if TYPE_CHECKING:
    from gdsolver.train.executor import Executor

Row = dict[str, Any]


class Skip(Exception):
    """Raised by a `run_cell` whose cell has nothing to measure (no row; the reason is kept in
    doc["run"]["skipped"]), as opposed to a cell that failed."""


def cell_label(cell: dict[str, Any]) -> str:
    """'k=v k=v ...' of a cell, for progress lines and the failed-cell list."""
    return " ".join(f"{k}={v}" for k, v in cell.items())


@dataclass(frozen=True)
class Bench:
    name: str  # the report's title: "gdsolver bench <name>"
    cells: list[dict[str, Any]]
    run_cell: Callable[[dict[str, Any]], Row | list[Row]]
    report: Callable[[dict[str, Any]], list[str]]  # the doc, its rows those that ran -> markdown lines
    meta: dict[str, Any] = field(default_factory=dict)  # the run's settings, in the doc before "machine"
    # the doc (rows: those that ran) -> figures over the rows, in the doc after "rows"
    summarize: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    describe: Callable[[Row], str] | None = None  # a row -> its progress line (default: label and time)
    label: Callable[[dict[str, Any]], str] = cell_label
    # False where the report writes its own title and machine line (results from before the runner
    # then render unchanged)
    header: bool = True
    csv_columns: Sequence[str] | None = None
    plot: Callable[[dict[str, Any], Path], int] | None = None  # (doc, png path) -> bytes written
    cpus: float = 1.0  # CPUs one cell keeps busy (what a Ray executor schedules by)


def ok_rows(doc: dict[str, Any]) -> list[Row]:
    """The rows of cells that ran (a failed cell's row has an "error")."""
    return [r for r in doc["rows"] if "error" not in r]


def timed_cell(run_cell: Callable[[dict[str, Any]], Row | list[Row]], cell: dict[str, Any]) -> dict[str, Any]:
    """One cell run and timed in whichever process runs it (an executor's task runs this): its
    rows, or the Skip reason, or the error a raising cell gave; its wall time and the 1-minute
    load as it started."""
    la = load_average()
    t0 = time.perf_counter()
    got: dict[str, Any] = {"rows": [], "skip": None, "error": None}
    try:
        out = run_cell(cell)
        got["rows"] = [out] if isinstance(out, dict) else list(out)
    except Skip as exc:
        got["skip"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - a failed cell is a result; the run goes on
        got["error"] = f"{type(exc).__name__}: {exc}"
    return {**got, "wall": time.perf_counter() - t0, "load": la[0] if la else None}


def _run_cells(bench: Bench, echo: Callable, tick: Callable[[str], None] | None,
               executor: Executor | None = None) -> tuple[list[Row], list[dict]]:
    """Every cell's rows in cell order; with an executor the cells run as its tasks and the
    progress lines come in the order they finish."""
    n = len(bench.cells)
    done: list[list[Row]] = [[] for _ in bench.cells]
    skipped: dict[int, dict[str, Any]] = {}
    count = 0

    def finish(i: int, got: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        cell, label = bench.cells[i], bench.label(bench.cells[i])
        new = [{**cell, "error": got["error"]}] if got["error"] else got["rows"]
        if got["skip"] is not None:
            skipped[i] = {**cell, "reason": got["skip"]}
            echo(f"[{count}/{n}] {label}: skipped ({got['skip']})")
        for r in new:
            r.update(cell_wall_s=got["wall"], load_1min=got["load"])
            if "error" in r:
                echo(f"[{count}/{n}] {label}: failed: {r['error']}")
            else:
                echo(f"[{count}/{n}] " + (bench.describe(r) if bench.describe else f"{label} in {got['wall']:.2f} s"))
        done[i] = new
        if tick is not None:
            tick(label)

    if executor is None:
        for i, cell in enumerate(bench.cells):
            finish(i, timed_cell(bench.run_cell, cell))
    else:
        from gdsolver.train.executor import Task

        tasks = [Task(timed_cell, (bench.run_cell, c), label=bench.label(c), cpus=bench.cpus) for c in bench.cells]
        executor.run(tasks, lambda o: finish(o.index, o.value if o.ok else {  # the task itself failed (worker died)
            "rows": [], "skip": None, "error": f"task failed: {o.error}", "wall": o.seconds, "load": None}))
    return [r for rows in done for r in rows], [skipped[i] for i in sorted(skipped)]


def run_bench(bench: Bench, out_dir: str | Path, tag: str, *, echo: Callable = print,
              tick: Callable[[str], None] | None = None, command: Sequence[str] | None = None,
              executor: Executor | None = None) -> dict[str, Any]:
    """Run every cell of `bench` and write {tag}.json and {tag}.md (and .csv / .png) under
    `out_dir`; returns the result document (its "paths" the files written). `executor`
    (gdsolver.train.executor) runs the cells as its tasks (then `bench.run_cell` must pickle: a
    module-level function or a functools.partial of one); default: one after another here."""
    start = {"load": load_average(), "t": time.perf_counter()}
    rows, skipped = _run_cells(bench, echo, tick, executor)
    loads = sorted(r["load_1min"] for r in rows if r.get("load_1min") is not None)
    doc: dict[str, Any] = {"benchmark": bench.name, **bench.meta, "machine": machine_info(), "rows": rows}
    if bench.summarize is not None:
        doc.update(bench.summarize({**doc, "rows": ok_rows(doc)}))
    if command is None:  # the installed entry point's full path says nothing to a reader
        command = ["gdsolver", *sys.argv[1:]] if Path(sys.argv[0]).name == "gdsolver" else sys.argv
    doc["run"] = {"command": list(command),
                  "wall_s": time.perf_counter() - start["t"], "versions": versions(), "git": git_state(),
                  "load_average": {"start": start["load"], "end": load_average(),
                                   "cells_min_median_max": [loads[0], loads[len(loads) // 2], loads[-1]]
                                   if loads else None},
                  "cells": len(bench.cells), "failed": sum("error" in r for r in rows), "skipped": skipped}
    if executor is not None:
        doc["run"]["executor"] = executor.describe()
    paths = out_paths(out_dir, tag)
    written = {}
    if bench.csv_columns is not None:
        write_csv(paths["csv"], rows, bench.csv_columns)
        written["csv"] = paths["csv"]
    if bench.plot is not None:
        doc["png_bytes"] = bench.plot(doc, paths["png"])
        written["png"] = paths["png"]
    write_json(paths["json"], doc)
    atomic_write_text(paths["md"], render(bench, clean(doc, 7)))  # from what the JSON holds: re-rendering it agrees
    written |= {"json": paths["json"], "md": paths["md"]}
    doc["paths"] = {k: str(v) for k, v in written.items()}
    echo(f"wrote {', '.join(doc['paths'].values())}")
    return doc


def render(bench: Bench, doc: dict[str, Any]) -> str:
    """The markdown report of a result document: the title and machine line (when the bench
    does not write its own), the bench's report over the rows that ran, then the run's footer."""
    lines = ([f"# gdsolver bench {bench.name}", "", machine_line(doc["machine"], "python", "numpy", "highspy") + ".",
              ""] if bench.header else [])
    lines += bench.report({**doc, "rows": ok_rows(doc)})
    return "\n".join(lines + run_footer(doc, bench.label)) + "\n"


def run_footer(doc: dict[str, Any], label: Callable[[dict[str, Any]], str] = cell_label) -> list[str]:
    """How the run went: command, wall time, load, code, and each failed or skipped cell. Nothing
    for a document written before the runner (no "run")."""
    run = doc.get("run")
    if not run:
        return []
    la = run["load_average"]
    text = (f"Run: `{' '.join(run['command'])}`; {run['cells']} cells, {run['failed']} failed; wall time "
            f"{run['wall_s']:.0f} s{executor_text(run.get('executor'))}")
    if la.get("start") and la.get("end"):
        text += (f"; load average (1, 5, 15 min) {', '.join(f'{x:.2f}' for x in la['start'])} at the start, "
                 f"{', '.join(f'{x:.2f}' for x in la['end'])} at the end")
    if la.get("cells_min_median_max"):
        text += ", 1-minute load as the cells started {:g} / {:g} / {:g} (min / median / max)".format(
            *la["cells_min_median_max"])
    git = run.get("git")
    if git and git.get("head"):
        text += f"; code {git['head'][:10]}" + (f" with {len(git['modified'])} modified file(s) under gdsolver/"
                                               if git.get("modified") else "")
    lines = ["", text + "."]
    cell_keys = lambda r: {k: v for k, v in r.items() if k not in ("error", "cell_wall_s", "load_1min", "reason")}  # noqa: E731
    failed = [r for r in doc["rows"] if "error" in r]
    if failed:
        lines += ["", "Failed cells:"] + [f"- {label(cell_keys(r))}: {r['error']}" for r in failed]
    if run.get("skipped"):
        lines += ["", "Skipped cells:"] + [f"- {label(cell_keys(r))}: {r['reason']}" for r in run["skipped"]]
    return lines
