"""decide_sweep runs the watched forward pass (the whole validation / training data) only for an
answer that improves the loss on its points: a refused answer costs no full pass on a sweep's clock
(a CNN's pass over 60,000 MNIST images took 13-17 s)."""

from __future__ import annotations

import numpy as np

from gdsolver.pipeline import SweepOutcome
from gdsolver.train.config import AcceptConfig
from gdsolver.train.sweep import decide_sweep


def _decide(points_after: float, watched):
    W, b = np.ones((2, 3)), np.zeros(2)
    log: list[str] = []
    out = SweepOutcome("OPTIMAL", None, points_after, "", 0.0, True, true_loss=points_after, weights=(W, b))
    d = decide_sweep(None, out, write=lambda W_, b_: log.append("write") or "saved",
                     restore=lambda saved: log.append(f"restore {saved}"), points_loss=lambda: points_after,
                     watched=watched, watched_before=1.0, accept=AcceptConfig(), loss_before=2.0)
    return d, log


def test_no_watched_pass_without_improvement():
    def watched():
        raise AssertionError("the watched pass ran for an answer that does not improve")

    d, log = _decide(2.0, watched)
    assert not d.accepted and d.reason.startswith("no improvement") and log == ["write", "restore saved"]


def test_watched_pass_decides_an_improving_answer():
    calls = []

    def better():
        calls.append(1)
        return 0.9, {"train_loss": None}

    d, log = _decide(1.5, better)
    assert d.accepted and calls == [1] and log == ["write"]

    def worse():
        return 1.1, {"train_loss": None}

    d, log = _decide(1.5, worse)
    assert not d.accepted and "would worsen 1 -> 1.1" in d.reason and log == ["write", "restore saved"]
