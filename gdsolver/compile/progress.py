"""The running solve's progress as a backend's callbacks report it (incumbent, bound, gap, nodes),
for a progress display that reads it from another thread (gdsolver.train.one_sweep.solve).

One record for the process: solves run one at a time here (a portfolio's parallel candidates run
in other processes). A backend without callbacks reports nothing; the display then shows the
elapsed time only."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

_lock = threading.Lock()
_state: dict[str, Any] = {}


def report(*, incumbent: float | None = None, bound: float | None = None, gap: float | None = None,
           nodes: int | None = None) -> None:
    """Called by a backend's callback: the current figures (non-finite ones are dropped)."""
    fields = {"incumbent": incumbent, "bound": bound, "gap": gap, "nodes": nodes}
    clean = {k: v for k, v in fields.items() if v is not None and math.isfinite(v)}
    with _lock:
        _state.update(clean, at=time.perf_counter())


def latest() -> dict[str, Any]:
    """The last figures reported since `reset` (empty when none)."""
    with _lock:
        return dict(_state)


def reset() -> None:
    with _lock:
        _state.clear()
