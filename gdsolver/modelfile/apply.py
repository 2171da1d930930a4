"""Write a solved sweep back into the model it was compiled from, refusing results
that belong to another instance or whose instance came from another model."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gdsolver.atomic import atomic_path
from gdsolver.compile.result import load_result
from gdsolver.errors import GdsolverError
from gdsolver.ir.gdsm import fingerprint, load
from gdsolver.ir.verify import verify
from gdsolver.train.config import ACCEPT_ON

USABLE = ("OPTIMAL", "FEASIBLE", "TIME_LIMIT")


def locate_instance(result_path: Path, recorded: str) -> Path:
    if recorded:
        return result_path.parent / recorded  # checked when loaded (a regular file, not a device)
    stem = result_path.name.removesuffix(".json").removesuffix(".result")
    return result_path.with_name(stem + ".gdsm")


def instance_path(result_path: str | os.PathLike, instance: str | os.PathLike | None = None) -> Path:
    """The instance a result belongs to: `instance` when given, else the one the result records."""
    result_path = Path(result_path)
    return Path(instance) if instance else locate_instance(result_path, load_result(result_path).instance_file)


def compiled_data(inst_path: Path, meta: dict[str, Any]) -> tuple[Path | None, str | None]:
    """(data file, built-in data set name) the instance was compiled from, so that `apply` can
    check the new model on it: a data set by name, or the file (found where `compile` recorded
    it, relative to the instance, or by name beside the instance or here) whose sha256 matches.
    GdsolverError naming the file when it cannot be found."""
    from gdsolver.extract.hashing import sha256_file

    rec = meta.get("data")
    if not isinstance(rec, dict):
        raise GdsolverError(f"{inst_path}: records no data it was compiled from (a layer file's instance?)")
    if rec.get("kind") == "dataset" and isinstance(rec.get("name"), str):
        return None, rec["name"]
    name, sha = rec.get("file"), rec.get("sha256")
    if rec.get("kind") != "file" or not isinstance(name, str) or not isinstance(sha, str):
        raise GdsolverError(f"{inst_path}: field 'data' does not say which data it was compiled from")
    places = [inst_path.parent / rec["path"]] if isinstance(rec.get("path"), str) else []
    places += [inst_path.parent / name, Path(name)]
    for place in places:
        if place.is_file() and sha256_file(place) == sha:
            return place, None
    raise GdsolverError(f"{inst_path}: compiled from {name} (sha256 {sha[:12]}...), which is not where it was "
                        "nor beside the instance; pass --data FILE to check the new model on it, or --force to "
                        "write it unchecked")


def solved_weights(result_path: str | os.PathLike, instance: str | os.PathLike | None = None,
                   force: bool = False) -> tuple[np.ndarray, np.ndarray, Any, Any]:
    """(W, b, instance, result) of a solved sweep, after checking that the result belongs to the
    instance and that its solution verifies."""
    result_path = Path(result_path)
    res = load_result(result_path)
    inst_path = Path(instance) if instance else locate_instance(result_path, res.instance_file)
    inst = load(inst_path)
    if not res.instance_fingerprint and not force:
        raise GdsolverError(f"{result_path}: records no instance fingerprint, so it cannot be matched to "
                            f"{inst_path.name}; use --force to apply anyway")
    if res.instance_fingerprint and res.instance_fingerprint != fingerprint(inst):
        raise GdsolverError(f"{result_path}: this result was not computed for instance {inst_path} "
                            "(fingerprint mismatch)")
    if res.x is None:
        raise GdsolverError(f"{result_path}: status {res.status} has no solution to apply")
    if res.status not in USABLE and not force:
        raise GdsolverError(f"{result_path}: status {res.status} is not applied without --force")
    rep = verify(inst, res.x)
    if not rep.ok:
        raise GdsolverError(f"{result_path}: the solution does not satisfy instance {inst_path.name}: {rep}")
    actual = inst.objective_value(res.x)  # a result is checked, never trusted: its figure must be its x's
    if res.objective is not None and not math.isclose(actual, res.objective, rel_tol=1e-9, abs_tol=1e-9):
        raise GdsolverError(f"{result_path}: field 'objective' is {res.objective!r} but its x gives {actual!r} on "
                            f"{inst_path.name}; refusing a result that misstates its answer")
    blocks = inst.unpack(res.x)
    if "w" not in blocks or "b" not in blocks:
        raise GdsolverError(f"{inst_path}: not a final-layer instance (no 'w' and 'b' blocks)")
    from gdsolver.formulate.claims import swept_weights

    return (*swept_weights(inst, res.x), inst, res)  # a block sweep's units put into the whole layer


def apply_result_to_onnx(model: str | os.PathLike, result_path: str | os.PathLike, out: str | os.PathLike,
                         instance: str | os.PathLike | None = None, force: bool = False) -> dict[str, Any]:
    from gdsolver.extract import apply_to_onnx, model_sha256

    model = Path(model)
    W, b, inst, res = solved_weights(result_path, instance, force)
    meta = inst.meta
    recorded = (meta.get("model") or {}).get("sha256")
    if not recorded:
        raise GdsolverError(f"{result_path}: its instance records no source model (compiled from a layer file?)")
    actual = model_sha256(model)
    if actual != recorded:
        raise GdsolverError(f"{model}: sha256 {actual[:12]}... differs from the model the instance was compiled "
                            f"from ({meta['model'].get('file')}, {recorded[:12]}...); refusing to apply")
    if Path(out).resolve() == model.resolve():
        raise GdsolverError(f"{out}: refusing to overwrite the input model; choose another output path")
    layer = meta.get("layer") or {}
    location = layer.get("location") if isinstance(layer.get("location"), dict) else None
    output = (meta.get("tail") or {}).get("output") if isinstance(meta.get("tail"), dict) else None
    apply_to_onnx(model, W, b, out, layer=location, output=output)
    return {"status": res.status, "objective before": meta.get("current_objective"),
            "objective after": res.objective, "sense": inst.sense, "head": meta.get("mode"),
            "points": len(meta.get("points", [])) + len(meta.get("keep_points", [])),
            "layer": (location or {}).get("affine_node") or "final", "wrote": str(out)}


@dataclass
class CheckedApply:
    """What `apply --data` found: the metrics before and after on the data, what the check
    watched, and whether the new model was written."""

    summary: dict[str, Any]
    before: dict[str, Any]
    after: dict[str, Any]
    watched: str  # the metric key compared
    worse: str  # "" when not worse, else one line saying what got worse
    written: bool


def _pair(a: float, b: float, digits: int = 3) -> str:
    """'a -> b' with enough digits to tell them apart."""
    for d in range(digits, 10):
        sa, sb = f"{a:.{d}f}", f"{b:.{d}f}"
        if sa != sb:
            return f"{sa} -> {sb}"
    return f"{a:.10g} -> {b:.10g}"


def apply_checked(model: str | os.PathLike, result_path: str | os.PathLike, out: str | os.PathLike, *,
                  data: str | os.PathLike | None = None, dataset: str | None = None,
                  instance: str | os.PathLike | None = None, force: bool = False,
                  accept_on: str | None = None) -> CheckedApply:
    """Apply a result, but only write `out` when the new model is not worse than `model` on
    the data (accuracy for classification, MSE for regression by default; accept_on="loss"
    watches the cross-entropy / MSE). Both models are scored by onnxruntime on the same data;
    the new one is written to a temporary file beside `out` first, so a refused model never
    appears under `out`. `force` writes it anyway."""
    from gdsolver.modelfile.data import load_data
    from gdsolver.modelfile.evaluate import check_instance_data, evaluate_onnx

    model, out = Path(model), Path(out)
    X, y, prov = load_data(data, dataset)
    meta = solved_weights(result_path, instance, force)[2].meta
    task = meta.get("task") or ("classification" if meta.get("formulation") == "classification" else "regression")
    accept_on = accept_on or ("accuracy" if task == "classification" else "loss")
    if accept_on not in ACCEPT_ON:
        raise GdsolverError(f"accept_on: {accept_on!r}, expected one of {list(ACCEPT_ON)}")
    if accept_on == "accuracy" and task != "classification":
        raise GdsolverError("accept_on: 'accuracy' applies to classification; this is a regression instance")
    try:  # the instance's own points are scored too when this is the data it was compiled from
        check_instance_data(meta, prov)
        point_meta = meta if meta.get("points") is not None else None
    except GdsolverError:
        point_meta = None
    before = evaluate_onnx(model, X, y, task, point_meta)
    if out.resolve() == model.resolve():
        raise GdsolverError(f"{out}: refusing to overwrite the input model; choose another output path")
    key = "accuracy" if accept_on == "accuracy" else ("cross-entropy" if task == "classification" else "mse")
    where = Path(data).name if data is not None else dataset
    outcome = None
    try:
        with atomic_path(out, suffix=".onnx") as tmp:  # renamed to `out` only if the block completes
            summary = apply_result_to_onnx(model, result_path, tmp, instance=instance, force=force)
            after = evaluate_onnx(tmp, X, y, task, point_meta)
            b, a = before[key], after[key]
            got_worse = a < b if key == "accuracy" else a > b + 1e-12 * max(1.0, abs(b))
            worse = f"{key} {_pair(b, a)} on {where}" if got_worse else ""
            summary["wrote"] = str(out)
            outcome = CheckedApply(summary, before, after, key, worse and worse + "; written anyway (--force)", True)
            if worse and not force:
                outcome = CheckedApply({**summary, "wrote": None}, before, after, key,
                                       worse + "; not written (use --force)", False)
                raise _Refused
    except _Refused:
        pass
    return outcome


class _Refused(Exception):
    """Leaves atomic_path without the rename (its temporary file is removed)."""
