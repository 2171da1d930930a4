"""SolveResult and its on-disk form: a small JSON file (the manifest) plus the solution x in an .npy.

A result is written as one unit. x goes first, to a new file named after the JSON file and
x's hash (`R.json` -> `R.x-<sha256[:16]>.npy`), never over an existing x of other content;
then the JSON, which names that file and its sha256, atomically replaces the old JSON (the
commit point); only then is the x file the old JSON named removed. Killed at any step, the
JSON on disk names an x file that is present and whole: the old result or the new one loads,
never a mix. Format version 1 (`R.x.npy` beside `R.json`, x renamed first) still loads."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gdsolver._version import __version__
from gdsolver.atomic import atomic_write_bytes, atomic_write_text
from gdsolver.compile.status import Status, Termination
from gdsolver.errors import FormatError
from gdsolver.ir import schema
from gdsolver.ir.schema import check_doc
from gdsolver.ir.npy import read_npy
from gdsolver.paths import open_input, read_input

STATUSES = tuple(s.value for s in Status)
RESULT_FORMAT = "gdsolver-result"
RESULT_VERSION = 2
READABLE_VERSIONS = (1, 2)
_JSON_MAX = 64 << 20  # the manifest holds no arrays


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
    run_id: str = ""  # the training run that dumped this result (train/dump.py), "" otherwise
    closest: dict[str, Any] = field(default_factory=dict)  # the closest-point step's figures, when it ran
    search: dict[str, Any] = field(default_factory=dict)  # what a search did (compile.search.run_search)
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
    """(json, legacy npy) paths for a result: INST.gdsm -> INST.result.json + INST.x.npy;
    OUT.json -> OUT.json + OUT.x.npy. The npy path is where format version 1 kept x;
    version 2 names x by its hash (`x_path_for`)."""
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


def x_path_for(json_path: str | os.PathLike, sha256: str) -> Path:
    """Where save_result puts x for this JSON file: `R.json` -> `R.x-<sha256[:16]>.npy`
    (unique to the JSON file's name, so two results never share or remove each other's x)."""
    json_path = Path(json_path)
    stem = json_path.name[:-len(".json")] if json_path.name.endswith(".json") else json_path.name
    return json_path.with_name(f"{stem}.x-{sha256[:16]}.npy")


def save_result(result: SolveResult, json_path: str | os.PathLike) -> tuple[Path, Path | None]:
    """Write the result (module docstring: x first under a new name, then the JSON, then the
    old x removed). Returns (json path, x path or None)."""
    json_path, _ = result_paths(json_path)
    old_x = _named_x(json_path)
    x_path = None
    if result.x is not None:
        x = np.ascontiguousarray(result.x, dtype=np.float64)
        x_path = x_path_for(json_path, _sha(x))
        buf = io.BytesIO()
        np.lib.format.write_array(buf, x, allow_pickle=False)
        atomic_write_bytes(x_path, buf.getvalue())
    atomic_write_text(json_path, json.dumps(result.to_json_dict(x_path.name if x_path else None), indent=2,
                                            allow_nan=True) + "\n")
    if old_x is not None and old_x != x_path and old_x.name != result_paths(json_path)[1].name:
        # the x the replaced JSON named; kept if a concurrent writer's JSON names it now.
        # (A version-1 x, R.x.npy, may be shared by R.json and R.result.json: left in place.)
        if _named_x(json_path) != old_x:
            with contextlib.suppress(OSError):
                old_x.unlink()
    return json_path, x_path


def _named_x(json_path: Path) -> Path | None:
    """The x file an existing result JSON names (None if there is none or it is unreadable)."""
    try:
        doc = json.loads(read_input(json_path, "result file", max_bytes=_JSON_MAX))
        name = doc.get("x_file") if isinstance(doc, dict) else None
        return json_path.with_name(name) if _plain_name(name) else None
    except Exception:  # noqa: BLE001 - a missing or damaged old result names nothing to clean up
        return None


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "objective": (int, float), "bound": (int, float), "gap": (int, float), "nodes": (int,),
    "backend": (str,), "backend_version": (str,), "message": (str,), "instance_fingerprint": (str,),
    "instance_file": (str,), "runtime_s": (int, float), "run_id": (str,), "termination": (str,),
}


def _plain_name(name: Any) -> bool:
    """A file name without any directory part (x_file must sit beside its JSON) and without
    control characters (a newline in it would break the one-line error naming it)."""
    return isinstance(name, str) and bool(re.fullmatch(r"[^/\\\x00-\x1f\x7f]+", name)) and name not in (".", "..")


def load_result(json_path: str | os.PathLike) -> SolveResult:
    """Read a result (format version 1 or 2); any defect raises FormatError naming the file and field."""
    json_path = Path(json_path)
    raw = read_input(json_path, "result file", max_bytes=_JSON_MAX)
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise FormatError(f"{json_path}: not a result file (invalid JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != RESULT_FORMAT:
        raise FormatError(f"{json_path}: field 'format' is not {RESULT_FORMAT!r}")
    version = doc.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise FormatError(f"{json_path}: field 'format_version' is {version!r}, expected one of {list(READABLE_VERSIONS)}")
    if doc.get("status") not in STATUSES:
        raise FormatError(f"{json_path}: field 'status' is {doc.get('status')!r}, expected one of {list(STATUSES)}")
    fields: dict[str, Any] = {}
    for key, types in _FIELD_TYPES.items():
        v = doc.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, types):
            names = " or ".join("number" if t in (int, float) else t.__name__ for t in types)
            raise FormatError(f"{json_path}: field '{key}' is {v!r:.60}, expected {names}")
        if key in ("nodes", "runtime_s") and v < 0:
            raise FormatError(f"{json_path}: field '{key}' is {v!r}, expected >= 0")
        fields[key] = float(v) if float in types else v
    if "instance_file" in fields and re.search(r"[\x00-\x1f\x7f]", fields["instance_file"]):
        raise FormatError(f"{json_path}: field 'instance_file' contains a control character, expected a path")
    check_doc(doc, _RESULT_SCHEMA, str(json_path), "result")
    objects = {}
    for key in ("options", "closest", "search"):  # free-form objects
        v = doc.get(key)
        v = {} if v is None else v
        if not isinstance(v, dict):
            raise FormatError(f"{json_path}: field '{key}' is {v!r:.60}, expected an object")
        objects[key] = dict(v)
    x = _load_x(json_path, doc)
    _check_status(json_path, doc["status"], x, fields.get("objective"))
    try:
        return SolveResult(status=doc["status"], x=x, **objects, **fields)
    except ValueError as exc:  # e.g. an unknown termination
        raise FormatError(f"{json_path}: {exc}") from None


_finite = schema.optional(schema.number())
# values the readers use (replay re-solves with the recorded options); the rest is free-form
_OPTIONS = schema.obj({
    "time_limit": schema.optional(schema.number(0.0, lo_open=True)),
    "threads": schema.optional(schema.integer(1)),
    "mip_gap": schema.optional(schema.number(0.0)),
    "use_start": schema.optional(schema.boolean),
    "pipeline": schema.optional(schema.obj()),
})
_RESULT_SCHEMA = schema.obj({"objective": _finite, "gap": schema.optional(schema.number(0.0)),
                             "runtime_s": schema.optional(schema.number(0.0)), "options": schema.optional(_OPTIONS)})


def _check_status(json_path: Path, status: str, x: np.ndarray | None, objective: float | None) -> None:
    """What a status says about x: a point has its objective recorded; OPTIMAL and FEASIBLE have
    a point; INFEASIBLE and UNBOUNDED have none."""
    if x is not None and objective is None:
        raise FormatError(f"{json_path}: field 'objective' is None, expected the objective of the recorded x")
    if status in ("OPTIMAL", "FEASIBLE") and x is None:
        raise FormatError(f"{json_path}: field 'x_file' is None, expected a solution (status {status} has one)")
    if status in ("INFEASIBLE", "UNBOUNDED") and x is not None:
        raise FormatError(f"{json_path}: field 'x_file' names a solution, but status {status} has none")


def _load_x(json_path: Path, doc: dict[str, Any]) -> np.ndarray | None:
    name = doc.get("x_file")
    if name is None:
        if doc.get("x_sha256") is not None:
            raise FormatError(f"{json_path}: field 'x_sha256' is set but 'x_file' is not")
        return None
    if not _plain_name(name):
        raise FormatError(f"{json_path}: field 'x_file' is {name!r:.80}, expected a file name beside the JSON file")
    sha = doc.get("x_sha256")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise FormatError(f"{json_path}: field 'x_sha256' is {sha!r:.80}, expected a sha256 hex digest")
    x_path = json_path.with_name(name)
    with open_input(x_path, "solution file (.npy)", within=json_path.resolve().parent) as fh:
        x = read_npy(fh, str(x_path), dtype=np.float64, ndim=1)
    if _sha(x) != sha:
        raise FormatError(f"{x_path}: fails its sha256 check against {json_path.name}")
    return x
