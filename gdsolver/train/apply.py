"""Write a solved sweep back into the model it was compiled from, refusing results
that belong to another instance or whose instance came from another model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from gdsolver.compile.result import load_result
from gdsolver.errors import GdsolverError
from gdsolver.ir.gdsm import fingerprint, load
from gdsolver.ir.verify import verify

USABLE = ("OPTIMAL", "FEASIBLE", "TIME_LIMIT")


def locate_instance(result_path: Path, recorded: str) -> Path:
    if recorded:
        return result_path.parent / recorded  # checked when loaded (a regular file, not a device)
    stem = result_path.name.removesuffix(".json").removesuffix(".result")
    return result_path.with_name(stem + ".gdsm")


def solved_weights(result_path: str | os.PathLike, instance: str | os.PathLike | None = None,
                   force: bool = False) -> tuple[np.ndarray, np.ndarray, dict[str, Any], Any]:
    """(W, b, instance meta, result) of a solved sweep, after checking that the result
    belongs to the instance and that its solution verifies."""
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
    blocks = inst.unpack(res.x)
    if "w" not in blocks or "b" not in blocks:
        raise GdsolverError(f"{inst_path}: not a final-layer instance (no 'w' and 'b' blocks)")
    return blocks["w"], blocks["b"], inst.meta, res


def apply_result_to_onnx(model: str | os.PathLike, result_path: str | os.PathLike, out: str | os.PathLike,
                         instance: str | os.PathLike | None = None, force: bool = False) -> dict[str, Any]:
    from gdsolver.extract import apply_to_onnx, model_sha256

    model = Path(model)
    W, b, meta, res = solved_weights(result_path, instance, force)
    recorded = (meta.get("model") or {}).get("sha256")
    if not recorded:
        raise GdsolverError(f"{result_path}: its instance records no source model (compiled from a layer file?)")
    actual = model_sha256(model)
    if actual != recorded:
        raise GdsolverError(f"{model}: sha256 {actual[:12]}... differs from the model the instance was compiled "
                            f"from ({meta['model'].get('file')}, {recorded[:12]}...); refusing to apply")
    if Path(out).resolve() == model.resolve():
        raise GdsolverError(f"{out}: refusing to overwrite the input model; choose another output path")
    apply_to_onnx(model, W, b, out)
    return {"status": res.status, "objective before": meta.get("current_objective"),
            "objective after": res.objective, "sense": "max" if meta.get("formulation") == "classification" else "min",
            "points": len(meta.get("points", [])), "wrote": str(out)}

