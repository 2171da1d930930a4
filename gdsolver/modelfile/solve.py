"""`gdsolver solve`: what happens to an instance file's answer after the one sweep pipeline
(gdsolver.pipeline.solve_sweep) ran on it: an answer that fails its checks is recorded as an
error, never handed on, and the result is written beside the instance it names."""

from __future__ import annotations

import os
from pathlib import Path

from gdsolver.compile.result import SolveResult
from gdsolver.pipeline import SweepOutcome


def mark_unverified(outcome: SweepOutcome) -> str | None:
    """An answer with an x that fails ir.verify or the float64 forward-pass check of its claims
    becomes status ERROR with "VERIFY FAILED: ..." in its message; returns the status to show
    ("VERIFY FAILED (highs said OPTIMAL)"), or None when the answer stands."""
    res = outcome.result
    if outcome.usable or res.x is None:
        return None
    shown = f"VERIFY FAILED ({res.backend} said {res.status})"
    res.message = f"VERIFY FAILED: the {res.status} answer {outcome.reason.replace('solution ', '', 1)}; {res.message}"
    res.status = "ERROR"
    return shown


def write_result(res: SolveResult, instance: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write `res` (JSON at `out`, x beside it, atomically), recording the instance's path
    relative to it; the path of the JSON written."""
    from gdsolver.compile import save_result

    res.instance_file = os.path.relpath(Path(instance).resolve(), Path(out).resolve().parent)
    return save_result(res, out)[0]
