"""The one grid -> cells -> runner -> report mechanism of the benchmarks.

A bench is its cells (small JSON-able dicts), `run_cell(cell) -> row or rows` and
`report(doc) -> markdown lines`. `run_bench` does the rest once: a progress line (and tick) per
cell, each cell's wall time and the 1-minute load as it started, a failed cell kept as a row
with its error while the run goes on, the machine, versions, git state, command and load at the
start and end, and atomic writes of {tag}.json / .md (+ .csv, .png when the bench gives columns
or a plot).

Resume and stages: `run_bench(..., resume=True)` reuses the rows of every cell that an earlier
run of the same settings (`meta`) finished, from {tag}.partial.json (kept after each cell by a
bench with `checkpoint`, gone once the report is written) or {tag}.json, and runs only the other
cells; a cell's rows carry its keys, which is how they are found. A bench's `next_stage(doc)`
gives the cells that depend on what the earlier ones measured (a learning rate chosen over a
grid, the model a baseline trained): one more Bench, run after it into the same document."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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
    # True where the bench counts and lists its failed runs itself: summarize and report see those rows too
    report_failed: bool = False
    # (the doc so far: meta and rows) -> the next stage, a Bench whose cells and run_cell are used (None: no more)
    next_stage: Callable[[dict[str, Any]], Bench | None] | None = None
    checkpoint: bool = False  # keep {tag}.partial.json (the rows so far) after each cell of a run in this process
    resumed: Callable[[dict[str, Any]], None] | None = None  # the earlier doc a resumed run reuses rows of
    # (doc, this run's paths) -> further files written, by name; may add to doc what the report links
    files: Callable[[dict[str, Any], dict[str, Path]], dict[str, Path]] | None = None


def ok_rows(doc: dict[str, Any]) -> list[Row]:
    """The rows of cells that ran (a failed cell's row has an "error"; None is no error)."""
    return [r for r in doc["rows"] if r.get("error") is None]


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
        said = False  # one line for a cell's good rows (a baseline's cell gives a row per epoch)
        for r in new:
            r.update(cell_wall_s=got["wall"], load_1min=got["load"])
            if r.get("error") is not None:
                echo(f"[{count}/{n}] {label}: failed: {r['error']}")
            elif bench.describe or not said:
                echo(f"[{count}/{n}] " + (bench.describe(r) if bench.describe else f"{label} in {got['wall']:.2f} s"))
                said = True
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


def cell_key(cell: dict[str, Any], keys: Sequence[str] | None = None) -> str:
    """A cell (or a row's values at `keys`, a cell's keys) as JSON, as the saved document holds
    it: how a resumed run finds a cell's rows."""
    src = cell if keys is None else {k: cell.get(k) for k in keys}
    return json.dumps(clean(src, 7), sort_keys=True, default=str)


def _by_cell(cells: list[dict[str, Any]], rows: list[Row]) -> tuple[dict[str, list[Row]], list[Row]]:
    """The rows of each cell (by cell_key) and the rows that carry no cell's keys."""
    keysets = {tuple(sorted(c)) for c in cells}
    wanted = {cell_key(c) for c in cells}
    out: dict[str, list[Row]] = {}
    stray = []
    for r in rows:
        k = next((k for ks in keysets if (k := cell_key(r, ks)) in wanted), None)
        (out.setdefault(k, []) if k is not None else stray).append(r)
    return out, stray


def _earlier(bench: Bench, out_dir: str | Path, tag: str, echo: Callable) -> tuple[Path, dict[str, Any]] | None:
    """The document a resumed run continues: {tag}.partial.json (a run cut short) or {tag}.json;
    refused (GdsolverError) when it is another bench's or its settings (bench.meta) differ."""
    from gdsolver.errors import GdsolverError

    path = next((p for p in (Path(out_dir) / f"{tag}.partial.json", Path(out_dir) / f"{tag}.json") if p.is_file()),
                None)
    if path is None:
        echo(f"resume: no earlier run in {out_dir} ({tag}.partial.json, {tag}.json): every cell runs")
        return None
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GdsolverError(f"resume: cannot read {path}: {exc}") from None
    want = json.loads(json.dumps(clean(bench.meta, 7), default=str))  # as this run's JSON would hold them
    bad = [k for k, v in want.items() if old.get(k) != v]
    if old.get("benchmark") != bench.name or bad:
        raise GdsolverError(f"resume: {path} is a run with other {', '.join(bad) or 'benchmark'} (give another --out, "
                            "or run without resuming)")
    if bench.resumed is not None:
        bench.resumed(old)
    return path, old


def _run_stages(bench: Bench, echo: Callable, tick: Callable[[str], None] | None, executor: Executor | None,
                earlier: list[Row], keep: Callable[[list[Row]], None] | None) -> tuple[list[Row], list[dict], int, int]:
    """Every stage's rows in cell order (a cell whose rows `earlier` holds, none failed, is not run
    again), the skipped cells, the number of cells and of cells reused."""
    rows: list[Row] = []
    skipped: list[dict[str, Any]] = []
    n = n_reused = 0
    stage: Bench | None = bench
    while stage is not None:
        old, _ = _by_cell(stage.cells, earlier)
        reused = {k: rs for k, rs in old.items() if all(r.get("error") is None for r in rs)}
        todo = [c for c in stage.cells if cell_key(c) not in reused]
        run_cell = stage.run_cell
        if keep is not None:  # the rows so far kept after each cell
            so_far = rows + [r for rs in reused.values() for r in rs]
            run_cell = _keeping(stage.run_cell, so_far, keep)
        new, skip = _run_cells(replace(stage, cells=todo, run_cell=run_cell), echo, tick, executor) if todo else ([], [])
        got, stray = _by_cell(todo, new)
        for c in stage.cells:
            rows += reused.get(cell_key(c)) or got.get(cell_key(c), [])
        rows += stray  # rows that do not carry their cell's keys: kept, at the end
        skipped += skip
        n, n_reused = n + len(stage.cells), n_reused + len(stage.cells) - len(todo)
        nxt = stage.next_stage
        stage = nxt({"benchmark": bench.name, **bench.meta, "rows": ok_rows({"rows": rows})}) if nxt else None
    return rows, skipped, n, n_reused


def _keeping(run_cell: Callable[[dict[str, Any]], Row | list[Row]], so_far: list[Row],
             keep: Callable[[list[Row]], None]) -> Callable[[dict[str, Any]], Row | list[Row]]:
    def run(cell: dict[str, Any]) -> list[Row]:
        out = run_cell(cell)
        got = [out] if isinstance(out, dict) else list(out)
        so_far.extend(got)
        keep(so_far)
        return got

    return run


def _seen(bench: Bench, doc: dict[str, Any]) -> dict[str, Any]:
    """The document as summarize and report see it: the rows that ran (every row for a bench that
    lists its failed runs itself)."""
    return doc if bench.report_failed else {**doc, "rows": ok_rows(doc)}


def run_bench(bench: Bench, out_dir: str | Path, tag: str, *, echo: Callable = print,
              tick: Callable[[str], None] | None = None, command: Sequence[str] | None = None,
              executor: Executor | None = None, resume: bool = False) -> dict[str, Any]:
    """Run every cell of `bench` and write {tag}.json and {tag}.md (and .csv / .png) under
    `out_dir`; returns the result document (its "paths" the files written). `executor`
    (gdsolver.train.executor) runs the cells as its tasks (then `bench.run_cell` must pickle: a
    module-level function or a functools.partial of one); default: one after another here.
    `resume`: reuse the rows of an earlier run of the same settings (module docstring)."""
    start = {"load": load_average(), "t": time.perf_counter()}
    if command is None:  # the installed entry point's full path says nothing to a reader
        command = ["gdsolver", *sys.argv[1:]] if Path(sys.argv[0]).name == "gdsolver" else sys.argv
    earlier = _earlier(bench, out_dir, tag, echo) if resume else None
    partial = out_paths(out_dir, tag)["json"].with_suffix(".partial.json")
    keep = None
    if bench.checkpoint and executor is None:
        keep = _partial_keeper(bench, partial, {"command": list(command), "git": git_state()}, echo)
    rows, skipped, n_cells, n_reused = _run_stages(bench, echo, tick, executor, earlier[1]["rows"] if earlier else [],
                                                   keep)
    loads = sorted(r["load_1min"] for r in rows if r.get("load_1min") is not None)
    doc: dict[str, Any] = {"benchmark": bench.name, **bench.meta, "machine": machine_info(), "rows": rows}
    if bench.summarize is not None:
        doc.update(bench.summarize(_seen(bench, doc)))
    doc["run"] = {"command": list(command),
                  "wall_s": time.perf_counter() - start["t"], "versions": versions(), "git": git_state(),
                  "load_average": {"start": start["load"], "end": load_average(),
                                   "cells_min_median_max": [loads[0], loads[len(loads) // 2], loads[-1]]
                                   if loads else None},
                  "cells": n_cells, "failed": sum(r.get("error") is not None for r in rows), "skipped": skipped}
    if executor is not None:
        doc["run"]["executor"] = executor.describe()
    if earlier is not None:
        was = earlier[1].get("run") or {}
        doc["run"]["resumed"] = {"from": str(earlier[0]), "cells": n_reused,
                                 "run": {k: was.get(k) for k in ("command", "git")}}
    paths = out_paths(out_dir, tag)
    written = {}
    if bench.csv_columns is not None:
        write_csv(paths["csv"], rows, bench.csv_columns)
        written["csv"] = paths["csv"]
    if bench.plot is not None:
        doc["png_bytes"] = bench.plot(doc, paths["png"])
        doc["png"] = paths["png"].name  # what the report links
        written["png"] = paths["png"]
    if bench.files is not None:
        written |= bench.files(doc, paths)
    write_json(paths["json"], doc)
    atomic_write_text(paths["md"], render(bench, clean(doc, 7)))  # from what the JSON holds: re-rendering it agrees
    written |= {"json": paths["json"], "md": paths["md"]}
    partial.unlink(missing_ok=True)
    doc["paths"] = {k: str(v) for k, v in written.items()}
    echo(f"wrote {', '.join(doc['paths'].values())}")
    return doc


def render(bench: Bench, doc: dict[str, Any]) -> str:
    """The markdown report of a result document: the title and machine line (when the bench
    does not write its own), the bench's report over the rows that ran, then the run's footer."""
    lines = ([f"# gdsolver bench {bench.name}", "", machine_line(doc["machine"], "python", "numpy", "highspy") + ".",
              ""] if bench.header else [])
    lines += bench.report(_seen(bench, doc))
    return "\n".join(lines + run_footer(doc, bench.label, failed=not bench.report_failed)) + "\n"


def _partial_keeper(bench: Bench, path: Path, run: dict[str, Any], echo: Callable) -> Callable[[list[Row]], None]:
    """What keeps {tag}.partial.json: the settings, the rows so far and the bench's figures over
    them (what its `resumed` takes back), the command and code."""
    machine = machine_info()

    def keep(rows: list[Row]) -> None:
        doc: dict[str, Any] = {"benchmark": bench.name, **bench.meta, "machine": machine, "rows": rows}
        try:
            if bench.summarize is not None:
                doc.update(bench.summarize(_seen(bench, doc)))
            write_json(path, {**doc, "run": run})
        except Exception as exc:  # noqa: BLE001 - a copy for a crash; the run goes on without it
            echo(f"could not keep {path}: {type(exc).__name__}: {exc}")

    return keep


def run_footer(doc: dict[str, Any], label: Callable[[dict[str, Any]], str] = cell_label, *,
               failed: bool = True) -> list[str]:
    """How the run went: command, wall time, load, code, the cells reused from an earlier run, and
    each failed (unless `failed` is False: the report lists them) or skipped cell. Nothing for a
    document written before the runner (no "run")."""
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
    if run.get("resumed"):
        was = (run["resumed"].get("run") or {}).get("command")
        text += (f"; the rows of {run['resumed']['cells']} cells reused from {Path(run['resumed']['from']).name}"
                 + (f" (`{' '.join(was)}`)" if was else ""))
    lines = ["", text + "."]
    cell_keys = lambda r: {k: v for k, v in r.items() if k not in ("error", "cell_wall_s", "load_1min", "reason")}  # noqa: E731
    bad = [r for r in doc["rows"] if r.get("error") is not None] if failed else []
    if bad:
        lines += ["", "Failed cells:"] + [f"- {label(cell_keys(r))}: {r['error']}" for r in bad]
    if run.get("skipped"):
        lines += ["", "Skipped cells:"] + [f"- {label(cell_keys(r))}: {r['reason']}" for r in run["skipped"]]
    return lines
