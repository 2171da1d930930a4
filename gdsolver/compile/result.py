"""SolveResult and its on-disk form: a small JSON file plus the solution x in an .npy."""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gdsolver._version import __version__
from gdsolver.atomic import atomic_write_bytes, atomic_write_text
from gdsolver.compile.status import Status, Termination
from gdsolver.errors import FormatError

STATUSES = tuple(s.value for s in Status)
RESULT_FORMAT = "gdsolver-result"
RESULT_VERSION = 1


@dataclass
class SolveResult:
    """What a backend returns (assembled by `gdsolver.compile.base.assemble_result`). `x`
    is None when no feasible point is known. A solve stopped by a limit with a point in
    hand is FEASIBLE (x, bound, gap); TIME_LIMIT has no x. `termination` says why the
    solver stopped, solver-neutrally (a `Termination` value)."""

    status: Status
    x: np.ndarray | None = None
    objective: float | None = None
    bound: float | None = None
    gap: float | None = None
    runtime_s: float = 0.0
    nodes: int | None = None
    backend: str = ""
    backend_version: str = ""
    message: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    instance_fingerprint: str = ""
    instance_file: str = ""  # the instance's path relative to the result file, when known
    closest: dict[str, Any] = field(default_factory=dict)  # the closest-point step's figures, when it ran
    termination: str = ""

    def __post_init__(self) -> None:
        self.status = Status(self.status)  # a ValueError for an unknown status
        if self.termination:
            self.termination = Termination(self.termination).value

    @property
    def has_solution(self) -> bool:
        return self.x is not None

    @property
    def interrupted(self) -> bool:
        return self.termination == Termination.INTERRUPTED

    def to_json_dict(self, x_file: str | None = None) -> dict[str, Any]:
        d = asdict(self)
        d.pop("x")
        d.update(format=RESULT_FORMAT, format_version=RESULT_VERSION, gdsolver_version=__version__,
                 x_file=x_file, x_sha256=_sha(self.x) if self.x is not None else None)
        return d


def _sha(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x, dtype=np.float64).data).hexdigest()


def result_paths(base: str | os.PathLike) -> tuple[Path, Path]:
    """(json, npy) paths for a result: INST.gdsm -> INST.result.json + INST.x.npy;
    OUT.json -> OUT.json + OUT.x.npy."""
    base = Path(base)
    name = base.name
    for suffix in (".gdsm", ".result.json", ".json"):
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            break
    else:
        stem = name
    json_path = base if name.endswith(".json") else base.with_name(stem + ".result.json")
    return json_path, base.with_name(stem + ".x.npy")


def save_result(result: SolveResult, json_path: str | os.PathLike) -> tuple[Path, Path | None]:
    """Write the result JSON and, when there is a solution, x beside it (atomic writes)."""
    json_path, x_path = result_paths(json_path)
    x_name = None
    if result.x is not None:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(result.x, dtype=np.float64), allow_pickle=False)
        atomic_write_bytes(x_path, buf.getvalue())
        x_name = x_path.name
    atomic_write_text(json_path, json.dumps(result.to_json_dict(x_name), indent=2, allow_nan=True) + "\n")
    return json_path, (x_path if x_name else None)


def load_result(json_path: str | os.PathLike) -> SolveResult:
    json_path = Path(json_path)
    if not json_path.exists():
        raise FormatError(f"{json_path}: file not found")
    try:
        doc = json.loads(json_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"{json_path}: not a result file (invalid JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != RESULT_FORMAT:
        raise FormatError(f"{json_path}: field 'format' is not {RESULT_FORMAT!r}")
    if doc.get("format_version") != RESULT_VERSION:
        raise FormatError(f"{json_path}: field 'format_version' is {doc.get('format_version')!r}, expected {RESULT_VERSION}")
    if doc.get("status") not in STATUSES:
        raise FormatError(f"{json_path}: field 'status' is {doc.get('status')!r}, expected one of {list(STATUSES)}")
    x = None
    if doc.get("x_file"):
        x_path = json_path.with_name(doc["x_file"])
        try:
            x = np.load(x_path, allow_pickle=False)
        except FileNotFoundError:
            raise FormatError(f"{json_path}: solution file {x_path} not found") from None
        except Exception as exc:  # untrusted bytes: npy header parsing can fail in many ways
            raise FormatError(f"{x_path}: corrupt solution file ({type(exc).__name__}: {exc})") from None
        if not isinstance(x, np.ndarray):
            raise FormatError(f"{x_path}: expected a single .npy array, got an archive")
        if x.dtype != np.float64 or x.ndim != 1:
            raise FormatError(f"{x_path}: expected a 1-D float64 array, got {x.dtype} {x.shape}")
        if _sha(x) != doc.get("x_sha256"):
            raise FormatError(f"{x_path}: fails its sha256 check against {json_path.name}")
    fields = {k: doc.get(k) for k in ("status", "objective", "bound", "gap", "nodes", "backend",
                                       "backend_version", "message", "instance_fingerprint",
                                       "instance_file", "termination")}
    try:
        return SolveResult(x=x, runtime_s=float(doc.get("runtime_s") or 0.0), options=dict(doc.get("options") or {}),
                           closest=dict(doc.get("closest") or {}),
                           **{k: v for k, v in fields.items() if v is not None})
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{json_path}: a field has the wrong type ({exc})") from None
