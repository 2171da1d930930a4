"""The repair certificate: what the written model does on every fix and keep point, found by
running it, not by trusting the solver.

A route is one way of running the repaired model (onnxruntime on the written file, torch in
float32 and float64, a float64 forward pass of the weights read back from the file); each
gives the predicted class of every point. The repair is certified when, on every route, every
fix point is predicted as its label and every keep point as the label it had to keep. The
certificate (JSON, written atomically) holds those counts, the change's norms computed from the
weights as written, the solver's proof status and sha256 hashes of the models, the data and
the new weights, so that it can be checked against the files later."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gdsolver._version import __version__
from gdsolver.atomic import atomic_write

FORMAT = "gdsolver-repair-certificate"
VERSION = 1
MAX_LISTED = 50  # failing points listed by index in a certificate


def array_sha256(*arrays: np.ndarray) -> str:
    """sha256 over the arrays' dtypes, shapes and bytes (C order)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def check_set(pred: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Counts of one point set on one route: points, how many have their label, which do not."""
    pred, labels = np.asarray(pred).ravel(), np.asarray(labels).ravel()
    bad = np.flatnonzero(pred != labels)
    return {"points": int(len(labels)), "ok": int(len(labels) - len(bad)), "failed": [int(i) for i in bad[:MAX_LISTED]],
            "failed_count": int(len(bad))}


def check_intervals(o: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> dict[str, Any]:
    """check_set for regression: a point passes when every output is inside [lo, hi]."""
    o = np.asarray(o, np.float64).reshape(len(lo), -1)
    bad = np.flatnonzero(((o < lo) | (o > hi)).any(axis=1))
    return {"points": int(len(lo)), "ok": int(len(lo) - len(bad)), "failed": [int(i) for i in bad[:MAX_LISTED]],
            "failed_count": int(len(bad))}


Route = Callable[[np.ndarray], np.ndarray]  # X -> outputs (T, M)


def _check(o: np.ndarray, target: Any) -> dict[str, Any]:
    if isinstance(target, tuple):  # (lo, hi): regression
        return check_intervals(o, *target)
    return check_set(np.asarray(o).argmax(axis=1), target)


def run_routes(routes: dict[str, Route], X_fix: np.ndarray, y_fix: Any, X_keep: np.ndarray | None,
               y_keep: Any) -> dict[str, dict[str, Any]]:
    """{route: {"fix": counts, "keep": counts}}: each route's outputs judged against labels
    (check_set on the argmax) or, for a target (lo, hi), intervals (check_intervals)."""
    out: dict[str, dict[str, Any]] = {}
    for name, run in routes.items():
        got = {"fix": _check(run(X_fix), y_fix)}
        if X_keep is not None and len(X_keep):
            got["keep"] = _check(run(X_keep), y_keep)
        out[name] = got
    return out


def all_pass(checks: dict[str, dict[str, Any]]) -> bool:
    return bool(checks) and all(c["failed_count"] == 0 for r in checks.values() for c in r.values())


def proof_text(minimal: bool, global_minimal: bool, norm: str, radius: float, pinned: bool,
               bound: float | None) -> str:
    """The solver's claim about minimality, in words."""
    if global_minimal:
        return f"minimal: no smaller {norm} change of this layer does it"
    if minimal and pinned:
        return f"minimal among the {norm} changes that keep the pinned points' ReLU phases"
    if minimal:
        return f"minimal among the {norm} changes within |dW| <= {radius:.4g}"
    lb = "" if bound is None or not np.isfinite(bound) else f" (no {norm} change below {bound:.6g})"
    return f"best found within the limit{lb}"


def write_certificate(path: str | os.PathLike, doc: dict[str, Any]) -> Path:
    path = Path(path)
    with atomic_write(path, "w") as fh:
        json.dump({"format": FORMAT, "version": VERSION, "gdsolver_version": __version__, **doc}, fh, indent=1,
                  default=_json_default)
        fh.write("\n")
    return path


def certificate_path(model_out: str | os.PathLike) -> Path:
    """Where the certificate of a written model goes: beside it, MODEL.certificate.json."""
    p = Path(model_out)
    return p.with_name(p.stem + ".certificate.json")


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON-able: {type(v).__name__}")
