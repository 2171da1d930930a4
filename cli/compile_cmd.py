"""`gdsolver compile`: a sweep instance from a layer file or from a model plus data
(gdsolver.modelfile.compile), saved as .gdsm."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gdsolver.formulate.sweep import CLASSIFICATION_MODES, DEFAULT_MODE, REGRESSION_MODES
from gdsolver.modelfile.compile import DEFAULT_KEEP_CORRECT
from gdsolver.train.config import HIDDEN_RADIUS_FAN_IN, RECIPE
from gdsolver.train.sweep import DEFAULT_CE_POINTS, DEFAULT_DIRECT_POINTS, DEFAULT_MIP_POINTS

from .apps import app
from .common import console, fail, user_errors
from .options import Activation, Task


@app.command("compile")
@user_errors
def compile_cmd(
    source: Annotated[Path, typer.Argument(help="LAYER.npz with arrays W (M,N), b (M,), H (T,N), y; "
                                                "or a model.onnx with --data/--dataset.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Instance file to write (.gdsm).")],
    task: Annotated[Task, typer.Option(help="Formulation to build.")],
    radius: Annotated[Optional[float], typer.Option(
        help=f"Box half-width around the current weights and biases (default as the trainer: regression "
             f"{RECIPE['regression']['radius']:g}, classification {RECIPE['classification']['radius']:g}, a "
             f"classification hidden layer {HIDDEN_RADIUS_FAN_IN:g} / its number of inputs).")] = None,
    mode: Annotated[Optional[str], typer.Option(
        help=f"The head: the loss being trained by default, as the trainer (regression "
             f"{DEFAULT_MODE['regression']}, classification {DEFAULT_MODE['classification']}); also "
             f"regression {', '.join(m for m in REGRESSION_MODES if m != DEFAULT_MODE['regression'])}; "
             f"classification {', '.join(m for m in CLASSIFICATION_MODES if m != DEFAULT_MODE['classification'])} "
             "(the paper's counting heads).")] = None,
    activation: Annotated[Optional[Activation], typer.Option(
        help="Output activation (layer files; detected from models). Default identity.")] = None,
    margin: Annotated[Optional[float], typer.Option(
        help="Margin for strict inequalities (default 1e-3 classification, 0 regression).")] = None,
    data: Annotated[Optional[Path], typer.Option(help="data.npz with X and y (for a model source).")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Built-in data set name (for a model source).")] = None,
    points: Annotated[Optional[int], typer.Option(
        help="Points in the instance (default as the trainer: a counting head picks 32 misclassified; "
             f"ce on the last layer a seeded sample of {DEFAULT_DIRECT_POINTS} (solved directly), elsewhere "
             f"{DEFAULT_CE_POINTS}; regression every point, or {DEFAULT_MIP_POINTS} when "
             "ReLUs follow the layer).")] = None,
    keep_correct: Annotated[Optional[int], typer.Option(
        help=f"Counting heads: a seeded sample of K currently-correct points must stay correct (default "
             f"{DEFAULT_KEEP_CORRECT}, so that the sweep cannot trade the points it does not see for the ones it "
             "picks; 0 for none).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for point selection.")] = 0,
    layer: Annotated[Optional[str], typer.Option(
        help="Model source: the dense layer to sweep, an index into the model's chain of dense layers "
             "(0 = first, -1 = last, the default) or a node name; the layers after it are encoded exactly.")] = None,
    output_name: Annotated[Optional[str], typer.Option("--output-name", help="Model source with several graph outputs: "
                                                       "the one holding the scores (default: the only score output).")] = None,
    units: Annotated[Optional[str], typer.Option(
        help="Model source, a hidden layer: free only these of its units (A:B for units A to B-1, or indices "
             "separated by commas); the others keep their weights, their ReLUs add no binaries.")] = None,
) -> None:
    """Build a sweep MILP instance from a layer file, or from a model plus data (any dense layer), and save it."""
    from gdsolver.ir import save
    from gdsolver.paths import check_output

    if output.suffix != ".gdsm":
        fail(f"{output}: output must be a .gdsm file")
    check_output(output, inputs=(source, data), what="instance")
    from gdsolver.modelfile.compile import compile_source

    inst = compile_source(source, output, task=task.value, data=data, dataset=dataset, layer=layer,
                          output_name=output_name, activation=activation.value if activation else None,
                          radius=radius, mode=mode, margin=margin, points=points, keep_correct=keep_correct, seed=seed,
                          **({} if units is None else {"units": units}))
    save(inst, output)
    s = inst.summary()
    where = _layer_text(inst.meta)
    console.print(f"wrote {output}: {where}{s['variables']} variables ({s['binary']} binary), {s['rows']} rows, "
                  f"{s['indicators']} indicators, {s['nnz'] + s['indicator_nnz']} nonzeros")


def _layer_text(meta: dict) -> str:
    """'layer 0 of 2 (name), 150 ReLU binaries; ' for instances that record their layer."""
    la = meta.get("layer") or {}
    if not isinstance(la.get("index"), int):
        return ""
    name = f" ({la['name']})" if la.get("name") else ""
    return f"layer {la['index']} of {la.get('count', '?')}{name}, {meta.get('relu_binaries', 0)} ReLU binaries; "


