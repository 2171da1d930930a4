"""Side-by-side runs: several methods from the same initial model on the same data split
(what `gdsolver train`, `make demo` and the benchmarks do)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gdsolver.errors import GdsolverError


@dataclass
class RunResult:
    method: str
    history: Any
    test: dict[str, Any]
    wall_s: float
    trainer: Any = field(repr=False, default=None)

    def row(self) -> dict[str, Any]:
        s = self.history.summary()
        return {"method": self.method, "epochs": s["epochs"], "sweeps": s["sweeps"],
                "sweeps_accepted": s["sweeps_accepted"], "train_loss": s["train_loss"], "train_acc": s["train_acc"],
                "val_loss": s["val_loss"], "val_acc": s["val_acc"], "test_loss": self.test.get("loss"),
                "test_acc": self.test.get("acc"), "gd_time_s": s["gd_time_s"], "solver_time_s": s["solver_time_s"],
                "wall_s": self.wall_s}


def run_methods(methods: Sequence[str], model, split, *, dump_dir: str | os.PathLike | None = None,
                on_start: Callable[[str, Any], None] | None = None,
                callback: Callable[[str, dict[str, Any]], None] | None = None,
                method_opts: dict[str, dict[str, Any]] | None = None, **opts: Any) -> list[RunResult]:
    """Train each method on a deep copy of `model` (same initial weights) and test it.
    `opts` go to every method; `method_opts[method]` override them for one."""
    from gdsolver.train.methods import check_method_options
    from gdsolver.train.trainer import warm_up

    if not methods:
        raise GdsolverError("method: give at least one method")
    for method, extra in (method_opts or {}).items():
        check_method_options(method, extra)
    twice = sorted({m for m in methods if list(methods).count(m) > 1})
    if twice:  # same seed, same result; and with a dump both would write DIR/<method>
        raise GdsolverError(f"method: {', '.join(twice)} given more than once")
    warm_up()  # not inside the first method's wall time
    from gdsolver.train.dump import DumpRoot

    # a dump is always one folder per method under DIR, and DIR/run.json names them (DumpRoot)
    with contextlib.nullcontext() if dump_dir is None else DumpRoot(dump_dir, list(methods)) as root:
        return _run_each(methods, model, split, root, on_start, callback, method_opts, opts)


def _run_each(methods, model, split, root, on_start, callback, method_opts, opts) -> list[RunResult]:
    from gdsolver.train.methods import make_trainer
    from gdsolver.train.trainer import clone_model

    results = []
    for method in methods:
        m = clone_model(model)
        d = None if root is None else root.method_dir(method)
        cb = None if callback is None else (lambda row, _m=method: callback(_m, row))
        trainer = make_trainer(method, m, split.task, dump_dir=d, callback=cb,
                               **{**opts, **(method_opts or {}).get(method, {})})
        if on_start is not None:
            on_start(method, trainer)
        t = time.perf_counter()
        history = trainer.fit(split.train, split.val)
        wall = time.perf_counter() - t
        results.append(RunResult(method, history, trainer.evaluate(split.test), wall, trainer))
    return results
