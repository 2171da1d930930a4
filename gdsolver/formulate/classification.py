"""Final-layer classification sweeps from arrays (the paper's Figure 3, made explicit).

`classification(W, b, H, labels, ...)` is the sweep of a one-layer chain: see
gdsolver.formulate.heads for the modes and gdsolver.formulate.sweep for any layer of a
deeper chain.
"""

from __future__ import annotations

from gdsolver.modeldef import Dense
from gdsolver.formulate.sweep import sweep_instance
from gdsolver.ir.instance import MilpInstance


def classification(W, b, H, labels, *, radius: float, activation: str = "identity", mode: str = "paper",
                   margin: float | None = None, keep_correct=None, fix_bias: bool = False) -> MilpInstance:
    """Final-layer classification MILP. W (M, N), b (M,), H (T, N), labels (T,) in [0, M):
    maximise the points whose label output beats every other by `margin`, at least as many as
    now; `keep_correct` lists points that must stay correct."""
    return sweep_instance([Dense(W, b, activation)], 0, H, labels, task="classification", radius=radius,
                          mode=mode, margin=margin, keep_correct=keep_correct, fix_bias=fix_bias)
