"""The bench runner (gdsolver.bench.runner): a toy bench of three cells, one raising and one
skipped, run into tmp_path; and the ported benches render their saved results unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gdsolver.bench.plots import md_table
from gdsolver.bench.runner import Bench, Skip, render, run_bench

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def _square(cell: dict) -> list[dict]:
    if cell["x"] == 2:
        raise ValueError("no square for two")
    if cell["x"] == 4:
        raise Skip("nothing to measure")
    return [{**cell, "square": cell["x"] ** 2}, {**cell, "square": -cell["x"] ** 2}]


def _report(doc: dict) -> list[str]:
    return md_table(["x", "square"], [[r["x"], r["square"]] for r in doc["rows"]]) + ["", f"sum {doc['sum']}"]


def _toy(**kw) -> Bench:
    return Bench("toy", [{"x": 1}, {"x": 2}, {"x": 3}, {"x": 4}], _square, _report,
                 meta={"setting": "s"}, summarize=lambda doc: {"sum": sum(r["square"] for r in doc["rows"])}, **kw)


def test_toy_bench_rows_errors_and_files(tmp_path):
    said, ticks = [], []
    doc = run_bench(_toy(csv_columns=["x", "square", "error"]), tmp_path, "toy", echo=said.append,
                    tick=ticks.append, command=["gdsolver", "bench", "toy"])
    # two rows per good cell, one error row for the raising cell, none for the skipped one
    assert [(r["x"], r.get("square"), "error" in r) for r in doc["rows"]] == [
        (1, 1, False), (1, -1, False), (2, None, True), (3, 9, False), (3, -9, False)]
    assert doc["rows"][2]["error"] == "ValueError: no square for two"
    assert all(r["cell_wall_s"] >= 0 for r in doc["rows"])
    assert doc["sum"] == 0  # summarize saw the good rows only (1 - 1 + 9 - 9)
    assert doc["run"]["failed"] == 1 and doc["run"]["cells"] == 4
    assert doc["run"]["skipped"] == [{"x": 4, "reason": "nothing to measure"}]
    assert ticks == ["x=1", "x=2", "x=3", "x=4"]
    assert any("failed: ValueError" in s for s in said) and any("skipped" in s for s in said)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.csv", "toy.json", "toy.md"]
    saved = json.loads((tmp_path / "toy.json").read_text())
    assert saved["rows"][2]["error"] == doc["rows"][2]["error"] and saved["setting"] == "s"
    assert list(saved)[:3] == ["benchmark", "setting", "machine"]
    md = (tmp_path / "toy.md").read_text()
    assert md == render(_toy(), saved)  # the report is a function of the saved document
    lines = md.splitlines()
    assert lines[0] == "# gdsolver bench toy"
    assert lines[2].startswith("Machine: ") and saved["machine"]["cpu"] in lines[2]
    assert "| 3 | 9 |" in lines and "| 2 |" not in md  # the failed cell is not in the table ...
    assert "- x=2: ValueError: no square for two" in lines and "- x=4: nothing to measure" in lines  # ... but here
    run_line = next(s for s in lines if s.startswith("Run: "))
    assert "`gdsolver bench toy`" in run_line and "4 cells, 1 failed" in run_line
    csv = (tmp_path / "toy.csv").read_text().splitlines()
    assert csv[0] == "x,square,error" and csv[3] == "2,,ValueError: no square for two"


def test_toy_bench_plot_is_written(tmp_path):
    def plot(doc: dict, path: Path) -> int:
        path.write_bytes(b"png")
        return 3

    doc = run_bench(_toy(plot=plot), tmp_path, "toy", echo=lambda *_: None)
    assert (tmp_path / "toy.png").read_bytes() == b"png" and doc["png_bytes"] == 3
    assert set(doc["paths"]) == {"json", "md", "png"}


@pytest.mark.parametrize("module,tag", [("numerics_bench", "numerics"), ("formulation_bench", "formulations"),
                                        ("closest_bench", "closest"), ("backends_bench", "backends"),
                                        ("compile_bench", "compile"), ("sweeps_bench", "sweeps")])
def test_ported_benches_render_their_saved_results_unchanged(module, tag):
    import importlib

    mod = importlib.import_module(f"gdsolver.bench.{module}")
    doc = json.loads((RESULTS / f"{tag}.json").read_text())
    assert render(Bench(tag, [], None, mod.report, header=False), doc) == (RESULTS / f"{tag}.md").read_text()


def _strip_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("cell_wall_s", "load_1min")} for r in rows]


def test_executor_runs_the_cells_as_tasks(tmp_path):
    """Through a LocalExecutor the rows are those of the plain loop; through an executor that
    finishes the tasks last first and loses one (a worker that died), the rows still come back in
    cell order, the lost cell is an error row, progress lines come in finishing order, each task
    asks for the bench's CPUs, and the footer says how the cells ran."""
    from gdsolver.train.executor import Executor, LocalExecutor, Outcome

    plain = run_bench(_toy(), tmp_path / "plain", "toy", echo=lambda *_: None)
    local = run_bench(_toy(), tmp_path / "local", "toy", echo=lambda *_: None, executor=LocalExecutor())
    assert _strip_times(local["rows"]) == _strip_times(plain["rows"]) and local["sum"] == plain["sum"] == 0
    assert local["run"]["executor"] == {"executor": "local"} and "executor" not in plain["run"]
    assert local["run"]["skipped"] == plain["run"]["skipped"] == [{"x": 4, "reason": "nothing to measure"}]

    class LastFirst(Executor):
        kind = "ray"  # describes itself as a cluster, for the footer
        cpus: list[float] = []

        def run(self, tasks, on_done=None):
            tasks = list(tasks)
            out = [None] * len(tasks)
            for i in reversed(range(len(tasks))):
                t = tasks[i]
                self.cpus.append(t.cpus)
                out[i] = (Outcome(i, t.label, error="WorkerCrashedError: node lost") if t.args[1]["x"] == 3
                          else Outcome(i, t.label, value=t.fn(*t.args, **t.kwargs)))
                on_done(out[i])
            return out

        def describe(self):
            return {"executor": "ray", "nodes": 2, "cpus": 4.0, "ray": "2.60.0", "address": "127.0.0.2:6379"}

    said, ticks = [], []
    ex = LastFirst()
    doc = run_bench(_toy(cpus=2.0), tmp_path / "ray", "toy", echo=said.append, tick=ticks.append, executor=ex)
    assert [(r["x"], r.get("square"), r.get("error")) for r in doc["rows"]] == [
        (1, 1, None), (1, -1, None), (2, None, "ValueError: no square for two"),
        (3, None, "task failed: WorkerCrashedError: node lost")]
    assert ex.cpus == [2.0] * 4 and ticks == ["x=4", "x=3", "x=2", "x=1"]
    assert said[0] == "[1/4] x=4: skipped (nothing to measure)" and said[1].startswith("[2/4] x=3: failed: task")
    assert doc["run"]["failed"] == 2 and doc["sum"] == 0
    md = (tmp_path / "ray" / "toy.md").read_text()
    assert "cells run as Ray tasks on 2 nodes with 4 CPUs (Ray 2.60.0, address 127.0.0.2:6379)" in md
    assert "- x=3: task failed: WorkerCrashedError: node lost" in md.splitlines()


def _runner_layout(tag: str, doc: dict) -> dict:
    """A committed pre-runner result moved into the layout run_bench writes (what a new run's
    document holds): the command, load and versions under "run", compile's extra tables as rows
    of their kind."""
    moved = ("command", "load_average", "load_average_1min", "executor", "wall_s", "hidden_layer_rows",
             "scip_row_routes") + (("versions",) if tag == "repair" else ())  # (backends' versions are its solvers')
    doc = {k: v for k, v in doc.items() if k not in moved}
    old = json.loads((RESULTS / f"{tag}.json").read_text())
    if tag == "compile":
        doc["rows"] = ([{"kind": "size", **r} for r in old["rows"]]
                       + [{"kind": "scip-routes", **old["scip_row_routes"]}]
                       + [{"kind": "hidden", **r} for r in old["hidden_layer_rows"]])
    load = {"start": [9.0, 8.0, 7.0], "end": [9.5, 8.0, 7.0], "cells_min_median_max": [9.0, 9.1, 9.5]}
    if tag == "sweeps":
        load = {**load, **old["load_average"]}
    doc["run"] = {"command": ["gdsolver", "bench", tag], "wall_s": 12.0, "load_average": load,
                  "cells": len(doc["rows"]), "failed": 0, "skipped": []}
    return doc


@pytest.mark.parametrize("module,tag", [("backends_bench", "backends"), ("compile_bench", "compile"),
                                        ("sweeps_bench", "sweeps"), ("repair_bench", "repair")])
def test_ported_benches_render_the_runner_layout(module, tag):
    """The same results in the runner's layout give the same tables (compile and sweeps: the same
    report), then the runner's footer; the header no longer repeats the command and load."""
    import importlib

    mod = importlib.import_module(f"gdsolver.bench.{module}")
    old_md = (RESULTS / f"{tag}.md").read_text()
    md = render(Bench(tag, [], None, mod.report, header=False), _runner_layout(tag, json.loads(
        (RESULTS / f"{tag}.json").read_text())))
    body, footer = md.split("\n\nRun: `", 1)
    assert footer.startswith(f"gdsolver bench {tag}`; ") and "at the start" in footer
    if tag in ("compile", "sweeps"):
        assert body + "\n" == old_md
    else:
        assert [s for s in body.splitlines() if s.startswith("|")] == [s for s in old_md.splitlines()
                                                                      if s.startswith("|")]
        assert "Load average" not in body and "1-minute load average" not in body and "Machine: " in body
