"""`gdsolver repair`: fix a model's known mistakes with the smallest change of one layer, and
certify the written model by running it on every point (gdsolver.repairs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from gdsolver.formulate.repair import DEFAULT_MARGIN, NORMS, PATTERNS
from gdsolver.compile.registry import DEFAULT_BACKEND

from . import checks
from .apps import app
from .common import console, fail, user_errors

EXIT_NOT_CERTIFIED = 1  # a repair was found but a point fails on a route, or none was found in time
EXIT_INFEASIBLE = 3  # proved: no change of the layer within the box does it (a conflict is printed)


def _points(path: Path, what: str, labels: bool) -> tuple:
    """(X, y) from an .npz with arrays X and y (y optional for keep), or (X, (lo, hi)) when it
    holds lo and/or hi instead of y (regression: every output inside [lo, hi]; one missing: open)."""
    from gdsolver.data.npz import load_real_arrays

    arrs = load_real_arrays(path, ("X",), ("y", "lo", "hi"))
    X, y = arrs["X"], arrs.get("y")
    if y is None and ("lo" in arrs or "hi" in arrs):
        if X.ndim < 2:
            fail(f"{path}: array 'X' has shape {X.shape}, expected (samples, features...)")
        return X, (arrs.get("lo"), arrs.get("hi"))
    if y is None and labels:
        fail(f"{path}: no array 'y' (labels) or 'lo'/'hi' (output intervals), expected one of them ({what})")
    if y is not None and (y.ndim != 1 or len(y) != len(X)):
        fail(f"{path}: array 'y' has shape {y.shape}, expected ({len(X)},) (one label per sample of X)")
    if X.ndim < 2:
        fail(f"{path}: array 'X' has shape {X.shape}, expected (samples, features...)")
    return X, y


@app.command("repair")
@user_errors
def repair_cmd(
    model: Annotated[Path, typer.Argument(help="The ONNX model to repair (never modified).")],
    fix: Annotated[Path, typer.Option("--fix", help="NPZ with X (inputs) and y (the labels they must get).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Repaired model to write (.onnx); its certificate "
                                                                 "goes beside it as NAME.certificate.json.")],
    keep: Annotated[Optional[Path], typer.Option(
        "--keep", help="NPZ with X (and optionally y): points that keep their prediction (or label y); may be a "
                       "large pool (its points enter the LP only when the repaired layer breaks them).")] = None,
    layer: Annotated[str, typer.Option(help="Dense layer to change: chain index (0 first, -1 last) or node name.")]
    = "-1",
    norm: Annotated[str, typer.Option(help=f"Change to minimise: {' | '.join(NORMS)} over the layer's weights and "
                                          "bias.")] = "l1",
    margin: Annotated[float, typer.Option(help="Logit margin by which each fix point must win.")] = DEFAULT_MARGIN,
    keep_margin: Annotated[Optional[float], typer.Option(
        help="Logit gap each keep point keeps (or its current gap when smaller); default: --margin.")] = None,
    radius: Annotated[Optional[float], typer.Option(
        help="Box |dW| <= R of the search (default: wide at the last layer; with ReLUs after the layer, narrow "
             "and widened while infeasible).")] = None,
    patterns: Annotated[str, typer.Option(
        help="ReLUs after the layer: all (every point keeps its activation phases: an LP) | keep (the keep "
             "points do; fix points' ReLUs exact) | free (all exact: a MILP, minimal over every change).")] = "all",
    time_limit: Annotated[Optional[float], typer.Option(help="Seconds for the search.")] = None,
    backend: Annotated[str, typer.Option(help="Solver backend.")] = DEFAULT_BACKEND,
    threads: Annotated[Optional[int], typer.Option(help="Solver threads.")] = None,
    force: Annotated[bool, typer.Option(help="Write the repaired model even when it fails the certificate.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Repair MODEL so that every --fix point gets its label by the margin and every --keep point
    keeps its prediction, with the smallest l1 / linf change of one dense layer (the layers after
    it encoded exactly). The written model is run with onnxruntime and in float64 on every point;
    it is written, with its certificate, only when every point passes. Exit 0: certified; 1: not
    certified (nothing written unless --force) or no repair in the time limit; 3: infeasible (the
    smallest conflicting set of fix points and a suggestion are printed); 2: bad input."""
    from gdsolver.compile.registry import check_backend_name
    from gdsolver.paths import check_output
    from gdsolver.repairs import repair_onnx
    from gdsolver.repairs.certificate import certificate_path

    if norm not in NORMS:
        fail(f"--norm: {norm!r}, expected one of {list(NORMS)}")
    if patterns not in PATTERNS:
        fail(f"--patterns: {patterns!r}, expected one of {list(PATTERNS)}")
    checks.number("--margin", margin, lo=0.0, lo_open=True)
    checks.number("--keep-margin", keep_margin, lo=0.0, lo_open=True)
    checks.number("--radius", radius, lo=0.0, lo_open=True)
    checks.number("--time-limit", time_limit, lo=0.0, lo_open=True)
    check_backend_name(backend)
    inputs = (model, fix, keep)
    check_output(output, inputs=inputs, what="model", suffixes=(".onnx",))
    check_output(certificate_path(output), inputs=inputs, what="certificate")
    X_fix, y_fix = _points(fix, "--fix", labels=True)
    keep_pts = None
    if keep is not None:
        X_keep, y_keep = _points(keep, "--keep", labels=False)
        keep_pts = (X_keep, y_keep)
    with console.status(f"repairing {model.name}...", spinner="dots"):
        report = repair_onnx(model, (X_fix, y_fix), keep_pts, out=output, layer=layer, norm=norm, margin=margin,
                             radius=radius, patterns=patterns, time_limit=time_limit, backend=backend,
                             threads=threads, force=force, data_files={"fix": fix, "keep": keep},
                             keep_margin=keep_margin)
    if as_json:
        console.print_json(json.dumps(report.to_json(), default=str))
    else:
        for line in report.lines():
            console.print(line, markup=False, soft_wrap=True)
    if report.status == "infeasible":
        raise typer.Exit(EXIT_INFEASIBLE)
    if not report.certified:
        if report.status == "not certified" and not force:
            console.print(f"not certified: {output} not written (use --force)", markup=False)
        raise typer.Exit(EXIT_NOT_CERTIFIED)
