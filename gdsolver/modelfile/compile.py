"""`gdsolver compile`: the sweep instance of a model file's dense layer (ONNX model plus data),
built the way a trainer prepares its sweeps (train.sweep.prepare_sweep with the trainer's
defaults), or of a layer file (W, b, H, y); the instance records where it came from."""

from __future__ import annotations

import os
from pathlib import Path

from gdsolver.errors import GdsolverError
from gdsolver.extract.layer_spec import layer_indices
from gdsolver.formulate.head_table import HEADS, head_for
from gdsolver.ir.instance import MilpInstance
from gdsolver.modelfile.data import labels_as_indices, load_data
from gdsolver.train.sweep import default_mode, prepare_sweep

# counting heads outside a trainer (`gdsolver compile`, which has no validation check to reject a
# sweep): this many currently correct points (a seeded sample) must stay correct (the heads' table)
DEFAULT_KEEP_CORRECT = HEADS["classification", "paper"].points.keep_correct


def resolve_keep_correct(task: str, mode: str | None, keep_correct: int | None) -> int:
    """keep_correct None ("auto"): the head's row of the table; DEFAULT_KEEP_CORRECT for a
    counting head (paper, compact, count+ce), whose MILP otherwise lets every point it does not
    pick become wrong; 0 for the losses over points."""
    if keep_correct is not None:
        return keep_correct
    return head_for(task, mode).points.keep_correct


def compile_model(source: str | os.PathLike, *, task: str, data=None, dataset: str | None = None,
                  radius: float | None = None, mode: str | None = None, margin: float | None = None,
                  points: int | None = None, keep_correct: int | None = None, seed: int = 0,
                  layer: int | str = -1, output: str | None = None, units: str | None = None) -> MilpInstance:
    """`gdsolver compile model.onnx --data ...`: the sweep instance of a dense layer of an ONNX
    model. Unset options take the trainer's defaults (train.config.SweepConfig): the head is the
    loss being trained, the points "auto"; keep_correct see resolve_keep_correct. units: a block
    sweep of a hidden layer, "A:B" (units A..B-1) or "i,j,..." (parse_units)."""
    from gdsolver.extract import model_sha256
    from gdsolver.extract.onnx_frontend import network_from_onnx
    from gdsolver.train.config import SWEEP_DEFAULTS, auto_radius

    X, y, prov = load_data(data, dataset)
    net = network_from_onnx(source, X, output=output)
    if task == "classification":
        y = labels_as_indices(y, net.tail.get("classes"))
    if layer != -1:  # a name, or an index, which warns once which node it is (extract.layer_spec)
        layer = layer_indices(net, [layer], what="--layer")[0]
    if radius is None:  # as the trainer's "auto": a classification hidden layer's box scales with its fan-in
        k = net.layer_index(layer)
        radius = auto_radius(task, net.layers[k].N, k < len(net.layers) - 1)
    job = prepare_sweep(net, X, y, task=task, layer=layer, radius=radius,
                        mode=mode, margin=margin, points=SWEEP_DEFAULTS.points if points is None else points,
                        keep_correct=resolve_keep_correct(task, mode, keep_correct), seed=seed,
                        units=None if units is None else parse_units(units))
    inst = job.instance
    inst.meta["model"] = {"kind": "onnx", "file": Path(source).name, "sha256": model_sha256(source)}
    inst.meta["data"] = prov
    return inst


def parse_units(text: str) -> list[int]:
    """--units: "A:B" (units A to B - 1) or a comma-separated list of unit indices."""
    try:
        if ":" in text:
            a, b = (int(v) for v in text.split(":"))
            if b <= a:
                raise ValueError
            return list(range(a, b))
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise GdsolverError(f"--units: {text!r}, expected A:B (units A to B-1, A < B) or indices separated by "
                            "commas, e.g. 0:8 or 3,7,11") from None


def check_layer_file_size(source: str | os.PathLike, task: str, mode: str | None) -> None:
    """Before a layer file's arrays are read or an instance is built: the instance its shapes
    imply (every one of the T x M outputs is an expression over the N weights and the bias; a
    counting head compares each label with the M - 1 others, the L1 head bounds each error from
    both sides) must fit the size a .gdsm may hold (gdsolver.ir.npy.max_array_bytes), else the
    build would take many times that in memory and write a file no command could load."""
    from gdsolver.data.npz import npz_headers
    from gdsolver.ir.npy import _fmt_bytes, max_array_bytes

    heads = npz_headers(source, ("W", "H"))
    if set(heads) != {"W", "H"} or len(heads["W"][0]) != 2 or len(heads["H"][0]) != 2:
        return  # the loader names what is missing or misshapen
    (M, N), (T, _) = heads["W"][0], heads["H"][0]
    mode = mode or default_mode(task)
    if task == "classification" and mode in ("paper", "compact", "count+ce"):
        nnz = T * max(M - 1, 1) * 2 * (N + 1)  # o_label - o_j >= margin for every other class j
    elif mode == "l1":
        nnz = T * M * 2 * (N + 2)  # e >= o - y and e >= y - o
    else:
        nnz = T * M * (N + 1)  # each output once, at least
    need = 12 * nnz  # a float64 coefficient and an int32 column index each
    limit = max_array_bytes()
    if need > limit:
        raise GdsolverError(f"{source}: T={T} points x M={M} outputs x N={N} inputs make an instance of at least "
                            f"{_fmt_bytes(need)} ({nnz} nonzeros, mode {mode}), more than the {_fmt_bytes(limit)} a "
                            ".gdsm may hold (set GDSOLVER_MAX_ARRAY_BYTES to raise the limit, or use fewer points)")


def compile_layer_file(source: str | os.PathLike, *, task: str, radius: float | None = None,
                       mode: str | None = None, activation: str | None = None, margin: float | None = None,
                       keep_correct: int | None = None) -> MilpInstance:
    """`gdsolver compile LAYER.npz`: the sweep instance of one dense layer given as arrays W (M, N),
    b (M,), the layer's inputs H (T, N) and targets y; every point of H is in the instance."""
    from gdsolver.data.npz import load_arrays
    from gdsolver.ir.gdsm import array_sha256
    from gdsolver.modeldef import Dense
    from gdsolver.formulate import sweep_instance
    from gdsolver.train.config import RECIPE

    source = Path(source)
    if keep_correct:  # every point of H is in the instance: a counting head counts them all
        raise GdsolverError("--keep-correct needs a model source; for a layer file put the points in H and use the "
                            "Python API")
    check_layer_file_size(source, task, mode)  # before anything is read or built
    arrs = load_arrays(source, ("W", "b", "H", "y"))
    try:
        inst = sweep_instance([Dense(arrs["W"], arrs["b"], activation or "identity")], 0, arrs["H"], arrs["y"],
                              task=task, radius=RECIPE[task]["radius"] if radius is None else radius, mode=mode,
                              margin=margin)
    except GdsolverError as exc:  # name the file in the message
        raise type(exc)(f"{source}: {exc}") from None
    inst.meta["source"] = {"kind": "layer", "file": source.name,
                           "sha256": {k: array_sha256(v) for k, v in arrs.items()}}
    return inst


def compile_source(source: str | os.PathLike, output: str | os.PathLike, *, task: str,
                   data: str | os.PathLike | None = None, dataset: str | None = None, layer: int | str | None = None,
                   output_name: str | None = None, activation: str | None = None, **opts) -> MilpInstance:
    """The instance `gdsolver compile SOURCE -o OUTPUT` writes: a model source (.onnx) with its
    data, recorded relative to OUTPUT so that `apply` finds it, or a layer file; refused when
    every solver would refuse its numbers (ir.numerics). `opts`: radius, mode, margin and, for a
    model, points, keep_correct and seed."""
    from gdsolver.ir.numerics import check_numerics

    source, output = Path(source), Path(output)
    if source.suffix.lower() == ".onnx":
        inst = compile_model(source, task=task, data=data, dataset=dataset, layer=-1 if layer is None else layer,
                             output=output_name, **opts)
        if data is not None:  # where `apply` finds the data to check the new model on
            inst.meta["data"]["path"] = os.path.relpath(Path(data).resolve(), output.resolve().parent)
    else:
        if layer is not None or output_name is not None or opts.get("units") is not None:
            raise GdsolverError(f"{source}: --layer/--output-name/--units apply to a model source (.onnx); a layer "
                                "file is one layer")
        if data is not None or dataset is not None:
            raise GdsolverError(f"{source}: --data/--dataset apply to a model source (.onnx), not to a layer file")
        # every point of H is in a layer file's instance: points and seed have nothing to choose
        inst = compile_layer_file(source, task=task, activation=activation,
                                  **{k: opts.get(k) for k in ("radius", "mode", "margin", "keep_correct")})
    check_numerics(inst)  # an instance every solver would refuse (e.g. --radius 1e300) is not written
    return inst
