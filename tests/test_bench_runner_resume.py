"""bench/runner.py's resume, stages and checkpoint on toy benches into tmp_path: a second run of
the same settings reuses the rows (its run_cell is not called for them), other settings are
refused, a run cut short continues from {tag}.partial.json, a stage's cells come from the earlier
stage's rows, and a bench that lists its failed runs sees them."""

from __future__ import annotations

import json

import pytest

from gdsolver.bench.plots import md_table
from gdsolver.bench.runner import Bench, render, run_bench
from gdsolver.errors import GdsolverError


def _strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("cell_wall_s", "load_1min")} for r in rows]


def _report(doc: dict) -> list[str]:
    return md_table(["x", "y"], [[r["x"], r.get("y", "-")] for r in doc["rows"]])


class Counting:
    """run_cell that records the cells it ran; x == 2 fails while `fail` is set."""

    def __init__(self, fail: bool = False, stop_at: int | None = None):
        self.ran: list[int] = []
        self.fail, self.stop_at = fail, stop_at

    def __call__(self, cell: dict) -> dict:
        if cell["x"] == self.stop_at:
            raise KeyboardInterrupt  # the run is cut short (not a cell's failure)
        self.ran.append(cell["x"])
        if self.fail and cell["x"] == 2:
            raise ValueError("two fails")
        return {**cell, "y": cell["x"] * 10 + cell.get("k", 0)}


def _bench(run_cell, k: int = 0, **kw) -> Bench:
    return Bench("toy", [{"x": x, "k": k} for x in (1, 2, 3)], run_cell, _report, meta={"k": k}, **kw)


def test_resume_reuses_rows_of_the_same_settings_and_reruns_failed_cells(tmp_path):
    first = Counting(fail=True)
    doc1 = run_bench(_bench(first), tmp_path, "toy", echo=lambda *_: None)
    assert first.ran == [1, 2, 3] and doc1["run"]["failed"] == 1
    again = Counting()
    said: list[str] = []
    doc2 = run_bench(_bench(again), tmp_path, "toy", echo=said.append, resume=True)
    assert again.ran == [2]  # only the cell that failed runs again
    assert [(r["x"], r.get("y"), r.get("error")) for r in doc2["rows"]] == [(1, 10, None), (2, 20, None), (3, 30, None)]
    assert doc2["run"]["resumed"]["cells"] == 2 and doc2["run"]["cells"] == 3 and doc2["run"]["failed"] == 0
    md = (tmp_path / "toy.md").read_text()
    assert "the rows of 2 cells reused from toy.json" in md
    # a third run reuses every row: nothing is run
    third = Counting()
    doc3 = run_bench(_bench(third), tmp_path, "toy", echo=lambda *_: None, resume=True)
    assert third.ran == [] and _strip(doc3["rows"]) == _strip(doc2["rows"])
    # without resume everything runs
    fresh = Counting()
    run_bench(_bench(fresh), tmp_path, "toy", echo=lambda *_: None)
    assert fresh.ran == [1, 2, 3]


def test_resume_refuses_other_settings(tmp_path):
    run_bench(_bench(Counting()), tmp_path, "toy", echo=lambda *_: None)
    before = (tmp_path / "toy.json").read_text()
    other = Counting()
    with pytest.raises(GdsolverError, match=r"toy\.json is a run with other k"):
        run_bench(_bench(other, k=5), tmp_path, "toy", echo=lambda *_: None, resume=True)
    assert other.ran == [] and (tmp_path / "toy.json").read_text() == before
    # nothing to resume: every cell runs
    said: list[str] = []
    fresh = Counting()
    run_bench(_bench(fresh), tmp_path / "new", "toy", echo=said.append, resume=True)
    assert fresh.ran == [1, 2, 3] and any("no earlier run" in s for s in said)


def test_a_run_cut_short_continues_from_its_partial_file(tmp_path):
    taken: list[dict] = []
    cut = Counting(stop_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_bench(_bench(cut, checkpoint=True, summarize=lambda d: {"n": len(d["rows"])}), tmp_path, "toy",
                  echo=lambda *_: None, command=["first"])
    part = json.loads((tmp_path / "toy.partial.json").read_text())
    assert [r["x"] for r in part["rows"]] == [1, 2] and part["n"] == 2 and part["run"]["command"] == ["first"]
    assert not (tmp_path / "toy.json").exists()
    rest = Counting()
    doc = run_bench(_bench(rest, checkpoint=True, resumed=taken.append), tmp_path, "toy", echo=lambda *_: None,
                    resume=True)
    assert rest.ran == [3] and [r["y"] for r in doc["rows"]] == [10, 20, 30]
    assert taken[0]["n"] == 2  # the bench got the earlier document back
    assert doc["run"]["resumed"]["run"]["command"] == ["first"]
    assert not (tmp_path / "toy.partial.json").exists()  # gone once the report is written


def test_stages_take_their_cells_from_the_earlier_rows(tmp_path):
    def second(doc: dict) -> Bench:
        top = max(r["y"] for r in doc["rows"])  # the best of the first stage
        return Bench("", [{"x": 100, "k": top}], Counting(), _report)

    doc = run_bench(_bench(Counting(), next_stage=second), tmp_path, "toy", echo=lambda *_: None)
    assert [(r["x"], r["y"]) for r in doc["rows"]] == [(1, 10), (2, 20), (3, 30), (100, 1030)]
    assert doc["run"]["cells"] == 4
    # resumed: the second stage's cell is found among the earlier rows too
    again = Counting()

    def second_again(doc: dict) -> Bench:
        return Bench("", [{"x": 100, "k": max(r["y"] for r in doc["rows"])}], again, _report)

    doc2 = run_bench(_bench(again, next_stage=second_again), tmp_path, "toy", echo=lambda *_: None, resume=True)
    assert again.ran == [] and [r["y"] for r in doc2["rows"]] == [10, 20, 30, 1030]


def test_a_bench_that_lists_its_failed_runs_sees_them_and_names_its_files(tmp_path):
    def report(doc: dict) -> list[str]:
        return [f"failed here: {[r['x'] for r in doc['rows'] if r.get('error')]}", f"png {doc.get('png')}"]

    def plot(doc: dict, path) -> int:
        path.write_bytes(b"png")
        return 3

    def files(doc: dict, paths: dict) -> dict:
        extra = paths["csv"].with_name("toy_more.txt")
        extra.write_text("more")
        doc["more"] = extra.name
        return {"more": extra}

    bench = Bench("toy", [{"x": 1}, {"x": 2}], Counting(fail=True), report, report_failed=True, plot=plot,
                  files=files)
    doc = run_bench(bench, tmp_path, "toy", echo=lambda *_: None)
    md = (tmp_path / "toy.md").read_text()
    assert "failed here: [2]" in md and "png toy.png" in md and "Failed cells:" not in md
    assert doc["paths"]["more"].endswith("toy_more.txt") and json.loads((tmp_path / "toy.json").read_text())["more"]
    assert md == render(bench, json.loads((tmp_path / "toy.json").read_text()))


# ------------------------------------------------------------------ the training grids on the runner
RESULTS = __import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks" / "results"


@pytest.mark.parametrize("module,tag", [("data_efficiency_bench", "data_efficiency_quick"),
                                        ("equal_time_bench", "equal_time"), ("equal_time_bench", "equal_time_loaded")])
def test_training_grids_render_their_saved_results_unchanged(module, tag):
    """The committed results written before the runner render byte for byte as committed (the
    others under benchmarks/results were written by older report code: their text has changed)."""
    import importlib

    pytest.importorskip("torch")
    mod = importlib.import_module(f"gdsolver.bench.{module}")
    doc = json.loads((RESULTS / f"{tag}.json").read_text())
    doc["png"] = f"{tag}.png"  # a document from before the runner does not name its plot
    bench = Bench(doc["benchmark"], [], None, mod.report, header=False, report_failed=True)
    assert render(bench, doc) == (RESULTS / f"{tag}.md").read_text()


@pytest.mark.slow  # ~10 s: two tiny regression grids
def test_regression_resumed_reuses_both_stages(tmp_path):
    pytest.importorskip("torch")
    from gdsolver.bench.regression_bench import RegressionConfig, run_regression_bench

    def cfg(seeds=(0,)):
        return RegressionConfig(equations=("identity",), seeds=seeds, max_epochs=2, sweep_epochs=(1, 2),
                                methods=("sgd",), presets=("paper",))

    quiet = dict(command=["test"], plots=False, echo=lambda *_: None)
    first = run_regression_bench(cfg(), tmp_path, tag="reg", **quiet)
    again = run_regression_bench(cfg(), tmp_path, tag="reg", resume=True, **quiet)
    # both stages (the SGD cell, then the sweeps that start from its model) reused: the rows, their
    # cell times included, are the first run's as its JSON kept them
    saved = [r for r in json.loads((tmp_path / "reg.json").read_text())["rows"]]
    assert again["run"]["resumed"]["cells"] == again["run"]["cells"] == 3
    assert [r["cell_wall_s"] for r in again["rows"]] == pytest.approx([r["cell_wall_s"] for r in first["rows"]],
                                                                        rel=1e-6)
    assert [r["test_mse"] for r in saved] == pytest.approx([r["test_mse"] for r in first["rows"]], rel=1e-6)
    with pytest.raises(GdsolverError, match="other config"):
        run_regression_bench(cfg(seeds=(0, 1)), tmp_path, tag="reg", resume=True, **quiet)
