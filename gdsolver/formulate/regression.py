"""Final-layer regression sweeps from arrays (the paper's Figure 2, made explicit).

mode "l1" (default): minimise sum_tj |o_tj - y_tj| over the weight box (an LP with an
identity output; the current weights are feasible, so a sweep never returns a worse L1).
mode "paper": feasibility of |o_tj - y_tj| <= max(|o0_tj - y_tj| - margin, 0).
"""

from __future__ import annotations

from gdsolver.modeldef import Dense
from gdsolver.formulate.sweep import sweep_instance
from gdsolver.ir.instance import MilpInstance


def regression(W, b, H, Y, *, radius: float, activation: str = "identity", mode: str = "l1",
               margin: float | None = None, fix_bias: bool = False) -> MilpInstance:
    """Final-layer regression MILP. W (M, N), b (M,), H (T, N), Y (T, M) or (T,) when M = 1."""
    return sweep_instance([Dense(W, b, activation)], 0, H, Y, task="regression", radius=radius, mode=mode,
                          margin=margin, fix_bias=fix_bias)
