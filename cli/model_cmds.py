"""`gdsolver apply` and `gdsolver evaluate`: a solved sweep written back into its model, checked
on the data; models scored side by side (gdsolver.modelfile.apply / .evaluate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .apps import app
from .common import console, err_console, fail, table, user_errors
from .options import Task

@app.command()
@user_errors
def apply(
    model: Annotated[Path, typer.Argument(help="The model the instance was compiled from (.onnx).")],
    result: Annotated[Path, typer.Argument(help="Result JSON written by `gdsolver solve`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Improved model to write (.onnx).")],
    instance: Annotated[Optional[Path], typer.Option(
        help="The instance (default: the one recorded in the result).")] = None,
    force: Annotated[bool, typer.Option(help="Apply a result that is not OPTIMAL/FEASIBLE/TIME_LIMIT-with-x; write "
                                             "a model that is worse on the data; write without a check when the "
                                             "data cannot be found.")] = False,
    data: Annotated[Optional[Path], typer.Option(help="data.npz with X and y to check on (default: the data the "
                                                      "instance was compiled from, found by its sha256).")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Built-in data set to check on, as --data.")] = None,
    accept_on: Annotated[Optional[str], typer.Option(
        help="What must not get worse on the data: 'accuracy' (classification default) or 'loss' "
             "(cross-entropy; MSE for regression, its default).")] = None,
) -> None:
    """Write a solved sweep's weights into the model it came from, only if the new model is not
    worse on the data (by default the data the instance was compiled from); exit 1 and write
    nothing when it is worse, unless --force."""
    from gdsolver.errors import GdsolverError
    from gdsolver.paths import check_output
    from gdsolver.modelfile.apply import (apply_checked, apply_result_to_onnx, compiled_data, instance_path,
                                      solved_weights)

    check_output(output, inputs=(model, result, instance, data), what="model", suffixes=(".onnx",))
    if data is None and dataset is None:
        meta = solved_weights(result, instance, force)[2].meta  # a result not to apply is refused first
        try:
            if isinstance(meta.get("model"), dict):  # else apply says it has no model to write into
                data, dataset = compiled_data(instance_path(result, instance), meta)
        except GdsolverError as exc:
            if not force:
                raise
            err_console.print(f"warning: {exc}; writing without a check (--force)", markup=False, soft_wrap=True)
    if data is None and dataset is None:
        if accept_on is not None:
            fail("--accept-on applies with --data or --dataset")
        summary = apply_result_to_onnx(model, result, output, instance=instance, force=force)
        console.print(table(None, ["", str(output)], [[k, v] for k, v in summary.items()]))
        return
    out = apply_checked(model, result, output, data=data, dataset=dataset, instance=instance, force=force,
                        accept_on=accept_on)
    console.print(table(None, ["", str(output)], [[k, v] for k, v in out.summary.items()]))
    keys = [k for k in out.before if k != "points"]
    console.print(table(f"on {data.name if data is not None else dataset} ({out.before['points']} points)",
                        ["metric", "before", "after", ""],
                        [[k, out.before[k], out.after[k], "watched" if k == out.watched else ""] for k in keys]))
    if out.worse:
        err_console.print(out.worse, markup=False, soft_wrap=True)
    if not out.written:
        raise typer.Exit(1)

@app.command()
@user_errors
def evaluate(
    models: Annotated[list[Path], typer.Argument(help="One or more models (.onnx) to compare.")],
    task: Annotated[Task, typer.Option(help="How to score the outputs.")],
    data: Annotated[Optional[Path], typer.Option(help="data.npz with X and y.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Built-in data set name.")] = None,
    instance: Annotated[Optional[Path], typer.Option(
        help="Also score the points of this sweep instance (comparable with its objective).")] = None,
    output_name: Annotated[Optional[str], typer.Option("--output-name", help="Models with several graph outputs: the "
                                                       "one holding the scores (default: the only score output).")] = None,
) -> None:
    """Accuracy (classification) or MSE/MAE (regression) of models on data, side by side."""
    from gdsolver.ir import load
    from gdsolver.modelfile.data import load_data
    from gdsolver.modelfile.evaluate import check_instance_data, evaluate_onnx

    X, y, prov = load_data(data, dataset)
    meta = load(instance).meta if instance else None
    if meta is not None:
        check_instance_data(meta, prov)
    if output_name is None and meta is not None:
        output_name = (meta.get("tail") or {}).get("output")
    results = [evaluate_onnx(m, X, y, task.value, meta, output=output_name) for m in models]
    keys = list(results[0])
    console.print(table(None, ["metric", *[m.name for m in models]], [[k, *[r[k] for r in results]] for k in keys]))
