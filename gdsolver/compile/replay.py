"""Replay's files: find saved instances and their recorded results, check a training run's dump
as a whole, and compare two results. The re-solve itself is gdsolver.pipeline.replay (the same
pipeline that made the result).

PATH is an instance (`X.gdsm` with `X.result.json` beside it) or a directory of
them (a training run's dump directory or its `sweeps/`, or the dump root of several
methods trained side by side: every DIR/<method>/sweeps/). The recorded solution is also checked against
the instance with `ir.verify`, independently of any solver.

A training run's dump directory is checked as a whole before anything is solved
(`check_run`): its run.json must say the run finished, every sweep file must be one the
run recorded (by name and sha256, and its run id), and none may be missing. A mix of two
runs, a sweep left by an earlier run or a run killed half-way is an error, not a match."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gdsolver.compile.result import SolveResult, load_result, result_paths
from gdsolver.errors import FormatError
from gdsolver.ir import schema
from gdsolver.ir.gdsm import load
from gdsolver.ir.instance import MilpInstance
from gdsolver.paths import open_input, read_input

RUN_FILE = "run.json"
RUN_FORMAT = "gdsolver-run"
#: run.json at the root of `gdsolver train --dump DIR`: the manifest naming the method folders
DUMP_FORMAT = "gdsolver-dump"
#: a sweep file as train/dump.py writes it: NNNN[-tag].gdsm, .result.json, and its x
SWEEP_FILE = re.compile(r"^\d{4,}(-[a-z0-9]+)*\.(gdsm|result\.json|x\.npy|result\.x-[0-9a-f]{16}\.npy)$")
_RUN_JSON_MAX = 256 << 20  # run.json holds the history; generous, but bounded


@dataclass
class ReplayRow:
    instance: Path
    recorded: SolveResult
    replayed: SolveResult
    recorded_x_ok: bool | None  # None when nothing was recorded
    fingerprint_ok: bool
    objective_ok: bool
    # a solve stopped by a limit (FEASIBLE) on either side: its objective depends on how far
    # the solver got, so the two are compared against each other's bounds, not for equality
    limited: bool = False

    @property
    def ok(self) -> bool:
        return self.objective_ok and self.fingerprint_ok and self.recorded_x_ok is not False


def file_sha256(path: Path) -> str:
    """sha256 of a regular file's bytes (read in chunks)."""
    h = hashlib.sha256()
    with open_input(path, "sweep file") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sweep_manifest(sweeps: Path) -> dict[str, str]:
    """{file name: sha256} of every sweep file in `sweeps` (what run.json records)."""
    if not sweeps.is_dir():
        return {}
    return {f.name: file_sha256(f) for f in sorted(sweeps.iterdir()) if SWEEP_FILE.match(f.name)}


def _read_run_json(path: Path) -> Any:
    """The JSON document in a run.json (a run's or a dump root's manifest), bounded in size."""
    try:
        return json.loads(read_input(path, "run.json", max_bytes=_RUN_JSON_MAX))
    except FormatError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise FormatError(f"{path}: not a run file (invalid JSON: {exc})") from None


def read_run(run_dir: Path) -> dict[str, Any] | None:
    """run.json of a dump directory, or None when there is none."""
    path = run_dir / RUN_FILE
    if not path.exists():
        return None
    doc = _read_run_json(path)
    if not isinstance(doc, dict) or doc.get("format") != RUN_FORMAT:
        raise FormatError(f"{path}: field 'format' is not {RUN_FORMAT!r}")
    schema.check_doc(doc, _RUN_SCHEMA, str(path), "run.json")
    return doc


_RUN_SCHEMA = schema.obj({
    "format_version": schema.integer(1, 2), "run_id": schema.string(pattern=re.compile(r"[0-9a-f]{1,64}"),
                                                                   what="a run id (hex)"),
    "state": schema.string(("running", "complete", "failed")), "error": schema.optional(schema.string()),
    "started": schema.optional(schema.string()),
    "sweep_files": schema.mapping(schema.sha256), "method": schema.optional(schema.string()),
    "task": schema.optional(schema.string(schema.TASKS)),
}, required=("format_version",))


def check_run(run_dir: Path) -> None:
    """The sweeps under run_dir are exactly the ones its run.json recorded (module docstring).
    A version-1 run.json (written before runs had ids) records nothing to check against."""
    doc = read_run(run_dir)
    sweeps = run_dir / "sweeps"
    if doc is None:
        return
    path = run_dir / RUN_FILE
    if doc.get("format_version") == 1:
        return
    run_id = doc.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        raise FormatError(f"{path}: field 'run_id' is {run_id!r}, expected the run's id")
    state = doc.get("state")
    if state != "complete":
        why = {"running": "is still running or was killed before it finished",
               "failed": f"failed ({doc.get('error', 'no reason recorded')})"}.get(state, f"is in state {state!r}")
        raise FormatError(f"{run_dir}: run {run_id[:12]} {why}; its sweeps are not a complete record")
    recorded = doc.get("sweep_files")
    if not isinstance(recorded, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in recorded.items()):
        raise FormatError(f"{path}: field 'sweep_files' is not an object of file name -> sha256")
    present = sweep_manifest(sweeps)
    for name in sorted(set(present) | set(recorded)):
        if name not in recorded:
            raise FormatError(f"{sweeps / name}: not written by run {run_id[:12]} of {path.name} "
                              "(a stale sweep or another run's)")
        if name not in present:
            raise FormatError(f"{sweeps / name}: recorded by run {run_id[:12]} in {path.name} but missing")
        if present[name] != recorded[name]:
            raise FormatError(f"{sweeps / name}: changed since run {run_id[:12]} wrote it (sha256 differs "
                              f"from {path.name})")
    for name in recorded:
        if name.endswith(".gdsm"):
            tag = (load(sweeps / name).meta.get("run") or {}).get("id")
            if tag != run_id:
                raise FormatError(f"{sweeps / name}: belongs to run {str(tag)[:12]}, not {run_id[:12]} of {path.name}")
        elif name.endswith(".result.json"):
            tag = load_result(sweeps / name).run_id
            if tag != run_id:
                raise FormatError(f"{sweeps / name}: belongs to run {tag[:12] or '(none)'}, not {run_id[:12]}")


_MANIFEST_SCHEMA = schema.obj({
    "format_version": schema.integer(1, 1), "run_id": schema.string(pattern=re.compile(r"[0-9a-f]{1,64}"),
                                                                   what="a run id (hex)"),
    "state": schema.string(("running", "complete", "failed")), "error": schema.optional(schema.string()),
    "methods": schema.array(schema.string(pattern=re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}"),
                                          what="a method folder name")),
}, required=("format_version", "run_id", "state", "methods"))


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest at the root of a dump of several methods (train/dump.py DumpRoot), checked;
    None when root/run.json is not one."""
    path = root / RUN_FILE
    doc = _read_run_json(path)
    if not isinstance(doc, dict) or doc.get("format") != DUMP_FORMAT:
        return None
    schema.check_doc(doc, _MANIFEST_SCHEMA, str(path), "run.json")
    return doc


def _manifest_dirs(root: Path, doc: dict[str, Any]) -> list[Path]:
    """The sweeps/ folders of the methods the manifest names, each checked as a run (check_run)."""
    if doc["state"] != "complete":
        why = {"running": "is still running or was killed before it finished",
               "failed": f"failed ({doc.get('error') or 'no reason recorded'})"}[doc["state"]]
        raise FormatError(f"{root}: the training of {', '.join(doc['methods'])} {why}; its dumps are not a "
                          "complete record")
    dirs = []
    for m in doc["methods"]:
        run_dir = root / m
        if not (run_dir / RUN_FILE).is_file():
            raise FormatError(f"{run_dir / RUN_FILE}: method {m!r} is named in {root / RUN_FILE} but its run "
                              "file is missing")
        check_run(run_dir)
        if (run_dir / "sweeps").is_dir():
            dirs.append(run_dir / "sweeps")
    return dirs


def find_pairs(path: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(instance, result json) pairs under `path`; FormatError when there are none. A training
    run's sweeps are checked against its run.json first (check_run); the root of a dump of
    several methods is read through its manifest (the methods it names, nothing else)."""
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: not found")
    manifest = read_manifest(path) if path.is_dir() and (path / RUN_FILE).is_file() else None
    if manifest is not None:
        dirs = _manifest_dirs(path, manifest)
        if not dirs:
            raise FormatError(f"{path}: no solver sweeps to replay (methods {', '.join(manifest['methods'])})")
    else:
        dirs = _instance_dirs(path) if path.is_dir() else []
        for d in dirs:
            if d.name == "sweeps" and (d.parent / RUN_FILE).exists():
                check_run(d.parent)
    instances = [i for d in dirs for i in sorted(d.glob("*.gdsm"))] if path.is_dir() else [path]
    pairs = []
    for inst in instances:
        res, _ = result_paths(inst)
        if not res.exists():
            if not path.is_dir():
                raise FormatError(f"{inst}: no recorded result beside it (expected {res.name})")
            continue
        pairs.append((inst, res))
    if not pairs:
        raise FormatError(f"{path}: no instance with a recorded result (*.gdsm + *.result.json) found")
    return pairs


def _instance_dirs(path: Path) -> list[Path]:
    """Where the instances under a directory are: itself, a training run's sweeps/, or, for
    a dump of several methods side by side (`gdsolver train -m A -m B --dump DIR`), each
    DIR/<method>/sweeps/."""
    if any(path.glob("*.gdsm")):
        return [path]
    if (path / "sweeps").is_dir():
        return [path / "sweeps"]
    runs = sorted(d / "sweeps" for d in path.iterdir() if d.is_dir() and (d / "sweeps").is_dir())
    return runs or [path]


def objectives_match(a: float | None, b: float | None, tol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def bounds_agree(sense: str, a: SolveResult, b: SolveResult, tol: float) -> bool:
    """Neither answer beats the other's proven bound: for a minimisation every objective is at
    least every valid lower bound (and the reverse for a maximisation)."""
    def ok(obj: float | None, bound: float | None) -> bool:
        if obj is None or bound is None:
            return True
        slack = tol * max(1.0, abs(bound))
        return obj >= bound - slack if sense == "min" else obj <= bound + slack

    return ok(a.objective, b.bound) and ok(b.objective, a.bound)


def load_pair(inst_path: Path, res_path: Path) -> tuple[MilpInstance, SolveResult]:
    return load(inst_path), load_result(res_path)
