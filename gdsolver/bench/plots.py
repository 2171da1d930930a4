"""Output helpers shared by the paper benchmarks (regression, data efficiency): run
metadata, atomic CSV / JSON / markdown / PNG writers, and matplotlib set-up (Agg)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gdsolver.atomic import atomic_write_bytes, atomic_write_text


def versions() -> dict[str, str]:
    from gdsolver._version import package_version

    return {p: package_version(p) for p in ("gdsolver", "torch", "numpy", "highspy", "scikit-learn", "matplotlib")}


def run_metadata(command: Sequence[str] | None = None) -> dict[str, Any]:
    """Machine, package versions and the command line of a benchmark run."""
    from gdsolver.bench.machine import machine_info

    return {"machine": machine_info(), "versions": versions(),
            "command": list(command) if command is not None else list(sys.argv)}


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none): times taken on a
    shared machine are read beside them."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def executor_text(info: dict[str, Any] | None) -> str:
    """How the cells ran, for a report's command line: nothing for this process, else the Ray cluster."""
    if not info or info.get("executor") != "ray":
        return ""
    nodes = info.get("nodes")
    return (f"; cells run as Ray tasks on {nodes} node{'s' if nodes != 1 else ''} with {info.get('cpus', 0):g} CPUs "
            f"(Ray {info.get('ray')}, address {info.get('address')})")


def run_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """A result document with its run's versions, command, wall time, load average and executor at
    the top level, where documents written before bench/runner.py keep them (it keeps them in "run")."""
    run = doc.get("run") or {}
    return {**doc, **{k: run[k] for k in ("versions", "command", "wall_s", "load_average", "executor") if k in run}}


def run_header(doc: dict[str, Any]) -> list[str]:
    """The lines every grid report starts with after its description: machine and versions, the
    command and its wall time (and Ray), the load average at the start and end, the run's note."""
    doc = run_fields(doc)
    m = doc["machine"]
    lines = [f"Machine: {m['cpu']} ({m['cores']} cores), {m['platform']}; Python {m['python']}, "
             + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()) + f"; {m['date']}.", "",
             f"Command: `{' '.join(doc['command'])}`; wall time of the whole run {doc['wall_s']:.0f} s"
             f"{executor_text(doc.get('executor'))}.", ""]
    la = doc.get("load_average")
    if la and la.get("start"):
        lines += [f"Load average (1, 5, 15 min) at the start {', '.join(f'{x:.2f}' for x in la['start'])}, at the end "
                  f"{', '.join(f'{x:.2f}' for x in la['end'])}: the machine was shared, so times are measured under "
                  "load.", ""]
    if doc.get("note"):
        lines += [doc["note"], ""]
    return lines


def clean(v: Any, digits: int | None = None) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, recursively; floats rounded to
    `digits` significant digits when given."""
    if isinstance(v, dict):
        return {str(k): clean(x, digits) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x, digits) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        if not math.isfinite(v):
            return None
        if digits is not None:
            return float(f"{v:.{digits}g}")
    return v


def mean_std(vals: Sequence[float | None]) -> tuple[float, float, int]:
    """Mean, sample standard deviation and count of the finite values (NaN, 0 when none)."""
    v = np.array([x for x in vals if x is not None and math.isfinite(x)], dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)


def write_json(path: str | os.PathLike, doc: dict[str, Any]) -> None:
    """Compact JSON (one line per top-level key, floats to 7 significant digits) to keep
    committed results small."""
    doc = clean(doc, 7)
    body = ",\n".join(f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'), default=str)}" for k, v in doc.items())
    atomic_write_text(path, "{\n" + body + "\n}\n")


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.7g}"
    return v


def write_csv(path: str | os.PathLike, rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(r.get(k)) for k in columns})
    atomic_write_text(path, buf.getvalue())


def md_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> list[str]:
    """A markdown table as lines; `align` is one of 'l'/'r' per column (default: first left, rest right)."""
    align = align or ("l" + "r" * (len(columns) - 1))
    out = ["| " + " | ".join(columns) + " |",
           "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return out


def fmt_num(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{float(v):.{digits}g}"


def fmt_pm(mean: float | None, std: float | None, digits: int = 4) -> str:
    if mean is None or not math.isfinite(mean):
        return "-"
    if std is None or not math.isfinite(std) or std == 0:
        return fmt_num(mean, digits)
    return f"{fmt_num(mean, digits)} ± {fmt_num(std, 2)}"


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 72) -> int:
    """Write `fig` as PNG atomically; returns the file size in bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    pyplot().close(fig)
    return len(data)


def out_paths(out_dir: str | os.PathLike, tag: str) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {ext: out / f"{tag}.{ext}" for ext in ("csv", "json", "md", "png")}


def write_outputs(doc: dict[str, Any], rows: list[dict[str, Any]], columns: Sequence[str], paths: dict[str, Path],
                  *, plot: Callable[[dict[str, Any], Path], int] | None,
                  markdown: Callable[[dict[str, Any], str | None], str]) -> None:
    """The CSV of `rows`, the plot (when `plot` is given; its size goes into doc["png_bytes"]),
    the JSON of `doc` and the markdown report, each written atomically; doc["paths"] lists them."""
    write_csv(paths["csv"], rows, columns)
    png = None
    if plot is not None:
        doc["png_bytes"] = plot(doc, paths["png"])
        png = paths["png"].name
    write_json(paths["json"], doc)
    atomic_write_text(paths["md"], markdown(doc, png))
    doc["paths"] = {k: str(v) for k, v in paths.items() if k != "png" or plot is not None}
