"""Replay: re-solve saved instances and compare with their recorded results.

PATH is an instance (`X.gdsm` with `X.result.json` beside it) or a directory of
them (a training run's dump directory or its `sweeps/`, or the dump root of several
methods trained side by side: every DIR/<method>/sweeps/). The recorded solution is also checked against
the instance with `ir.verify`, independently of any solver."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gdsolver.compile.base import max_threads
from gdsolver.compile.registry import DEFAULT_BACKEND, solve
from gdsolver.compile.result import SolveResult, load_result, result_paths
from gdsolver.errors import FormatError
from gdsolver.ir.gdsm import fingerprint, load
from gdsolver.ir.instance import MilpInstance
from gdsolver.ir.verify import verify


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


def find_pairs(path: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(instance, result json) pairs under `path`; FormatError when there are none."""
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: not found")
    instances = [i for d in _instance_dirs(path) for i in sorted(d.glob("*.gdsm"))] if path.is_dir() else [path]
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


def replay_loaded(name: Path, inst: MilpInstance, rec: SolveResult, *, backend: str | None = None,
                  tol: float = 1e-6, time_limit: float | None = None) -> ReplayRow:
    """Re-solve one loaded instance with the recorded backend (or `backend`) and compare with
    its recorded result. Pure (arguments in, row out), so it can run in another process."""
    fp_ok = not rec.instance_fingerprint or rec.instance_fingerprint == fingerprint(inst)
    x_ok = verify(inst, rec.x).ok if rec.x is not None and len(rec.x) == inst.num_vars else (
        None if rec.x is None else False)
    opts = {k: v for k, v in (rec.options or {}).items() if k in ("threads", "mip_gap", "use_start")}
    if isinstance(opts.get("threads"), int) and opts["threads"] > max_threads():
        opts["threads"] = max_threads()  # recorded on a bigger machine; threads do not change the optimum
    tl = time_limit if time_limit is not None else (rec.options or {}).get("time_limit")
    new = solve(inst, backend=backend or rec.backend or DEFAULT_BACKEND, time_limit=tl, **opts)
    limited = "FEASIBLE" in (rec.status, new.status) and rec.x is not None and new.x is not None
    if limited:
        obj_ok = bounds_agree(inst.sense, rec, new, tol) and verify(inst, new.x).ok
    else:
        obj_ok = new.status == rec.status and objectives_match(rec.objective, new.objective, tol)
    return ReplayRow(name, rec, new, x_ok, fp_ok, obj_ok, limited)


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


def replay(path: str | os.PathLike, *, backend: str | None = None, tol: float = 1e-6,
           time_limit: float | None = None) -> Iterator[ReplayRow]:
    """Re-solve each recorded instance with the recorded backend (or `backend`)."""
    for inst_path, res_path in find_pairs(path):
        yield replay_loaded(inst_path, *load_pair(inst_path, res_path), backend=backend, tol=tol,
                            time_limit=time_limit)
