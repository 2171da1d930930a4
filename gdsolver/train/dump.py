"""A training run on disk (DESIGN.md "File format"):

    DIR/run.json               method, config, seeds, versions, history, final metrics
    DIR/sweeps/NNNN.gdsm       each sweep's instance
    DIR/sweeps/NNNN.result.json (+ NNNN.x.npy)  its solve result
    DIR/sweeps/NNNN-closest.gdsm (+ result)    the closest-point LP after it (GDSolver closest=True)
    DIR/sweeps/NNNN-rK.gdsm (+ result)         round K of a smooth head's refinement
    DIR/sweeps/NNNN-cJ*.gdsm (+ results)       candidate J of a portfolio sweep (GDSolver portfolio=K)
    DIR/model.onnx             the final model (when it exports)
    DIR/model.state_dict.pt    the final weights; loads with torch.load(weights_only=True)

`gdsolver replay DIR` re-solves the sweeps without any training code."""

from __future__ import annotations

import io
import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

import torch

from gdsolver._version import __version__, package_version
from gdsolver.atomic import atomic_path, atomic_write_bytes, atomic_write_text

RUN_FORMAT = "gdsolver-run"
RUN_VERSION = 1


def sweep_paths(dump_dir: str | os.PathLike, k: int, suffix: str = "") -> tuple[Path, Path]:
    d = Path(dump_dir) / "sweeps"
    return d / f"{k:04d}{suffix}.gdsm", d / f"{k:04d}{suffix}.result.json"


# NNNN, NNNN-r2 (a smooth head's round), NNNN-closest, NNNN-c1 / NNNN-c1-r2 (portfolio candidates)
_SWEEP_FILE = re.compile(r"^\d{4,}(-[a-z0-9]+)*\.(gdsm|result\.json|x\.npy)$")


def clear_sweeps(dump_dir: str | os.PathLike) -> None:
    """Remove the sweep files of an earlier run in the same directory (only files named as
    this module writes them), so that the directory never mixes two runs' sweeps."""
    d = Path(dump_dir) / "sweeps"
    if d.is_dir():
        for f in d.iterdir():
            if f.is_file() and _SWEEP_FILE.match(f.name):
                f.unlink()


def write_sweep(dump_dir: str | os.PathLike, k: int, inst, res, suffix: str = "") -> None:
    """Save sweep k's instance and (when the solve ran) its result; suffix "-closest" for
    the closest-point LP that follows the MIP."""
    from gdsolver.compile.result import save_result
    from gdsolver.ir.gdsm import save

    inst_path, res_path = sweep_paths(dump_dir, k, suffix)
    inst_path.parent.mkdir(parents=True, exist_ok=True)
    save(inst, inst_path)
    if res is not None:
        res.instance_file = inst_path.name
        save_result(res, res_path)


def _versions() -> dict[str, str]:
    out = {"gdsolver": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    return out | {p: package_version(p) for p in ("torch", "numpy", "highspy", "gurobipy", "onnx")}


def save_state_dict(model: torch.nn.Module, path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    atomic_write_bytes(path, buf.getvalue())


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: str | os.PathLike) -> str | None:
    """Export with the TorchScript exporter (one self-contained file); returns an error text
    instead of raising, because a model that trains need not export."""
    import warnings

    from gdsolver.extract.torch_frontend import eval_mode

    try:
        with eval_mode(model), warnings.catch_warnings(), atomic_path(path) as tmp:
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(tmp), dynamo=False, input_names=["input"],
                              output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return None


def write_run(trainer) -> Path:
    """run.json plus the final model, for a finished fit()."""
    d = Path(trainer.dump_dir)
    d.mkdir(parents=True, exist_ok=True)
    save_state_dict(trainer.model, d / "model.state_dict.pt")
    onnx_error = export_onnx(trainer.model, trainer.train_data.X[:1], d / "model.onnx")
    if onnx_error is not None:  # no earlier run's model.onnx beside this run's run.json
        (d / "model.onnx").unlink(missing_ok=True)
    doc: dict[str, Any] = {
        "format": RUN_FORMAT,
        "format_version": RUN_VERSION,
        "method": trainer.method,
        "task": trainer.task,
        "config": trainer.config(),
        "seed": trainer.seed,
        "versions": _versions(),
        "data": {"train_points": len(trainer.train_data),
                 "val_points": len(trainer.val_data) if trainer.val_data is not None else 0},
        "model_files": {"state_dict": "model.state_dict.pt", "onnx": None if onnx_error else "model.onnx"},
        "onnx_export_error": onnx_error,
        "summary": trainer.history.summary(),
        "history": trainer.history.to_json_dict(),
    }
    path = d / "run.json"
    atomic_write_text(path, json.dumps(doc, indent=1, allow_nan=False, default=str) + "\n")
    return path
