"""What `verbose=` prints during `fit`, fed by the same rows as `callback=`.

verbose=1: one line per epoch and per sweep (works everywhere: terminal, notebook, log file).
verbose=2: a one-line progress bar redrawn in place on a terminal or in a Jupyter notebook
(both honour a carriage return), with a permanent line per sweep; lines elsewhere.
No dependency: plain text on sys.stdout, looked up when `fit` starts."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

import numpy as np

from gdsolver.errors import GdsolverError

VERBOSE_LEVELS = (0, 1, 2)
BAR_WIDTH = 24
MIN_REDRAW_S = 0.1  # ticks (batches) redraw the bar at most this often


def check_verbose(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if not (isinstance(value, (int, np.integer)) and int(value) in VERBOSE_LEVELS):
        raise GdsolverError(f"verbose: expected False/True or 0, 1, 2, got {value!r}")
    return int(value)


def interactive(stream: TextIO) -> bool:
    """A terminal, or a Jupyter kernel's output stream."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):
        return False
    return type(stream).__module__.startswith("ipykernel")


def _num(v: Any, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _metrics(row: dict[str, Any]) -> str:
    parts = [f"train loss {_num(row['train_loss'], '.4g')}"]
    if row.get("train_acc") is not None:
        parts[-1] += f" acc {row['train_acc']:.3f}"
    if row.get("val_loss") is not None:
        parts.append(f"val loss {row['val_loss']:.4g}" +
                     (f" acc {row['val_acc']:.3f}" if row.get("val_acc") is not None else ""))
    return ", ".join(parts)


def describe(method: str, row: dict[str, Any], epochs: int | None = None) -> str:
    """One line for a history row."""
    t = f" ({row['elapsed_s']:.1f} s)" if row.get("elapsed_s") is not None else ""
    if row["kind"] == "sweep":
        from gdsolver.train.portfolio import verdict as verdict_of

        verdict = verdict_of(row)
        radius = f", radius {row['radius']:g}" if row.get("radius") is not None else ""
        if row.get("layer_name") is not None:  # which module: an index in layers= need not say it
            radius += f", layer {row['layer_name']!r}"
        reason = f": {row['reason']}" if row.get("reason") else ""
        cand = f" candidate {row['candidate']}" if row.get("candidate") is not None else ""
        return (f"{method} sweep {row['sweep']}{cand} after epoch {row['epoch']}{radius}: {row.get('status') or '-'}, "
                f"{verdict}{reason}; {_metrics(row)}{t}")
    of = f"/{epochs}" if epochs else ""
    return f"{method} epoch {row['epoch']}{of}: {_metrics(row)}{t}"


class Progress:
    def __init__(self, trainer: Any, stream: TextIO, bar: bool) -> None:
        self.method = trainer.method
        self.epochs = int(getattr(trainer, "epochs", 0) or 0)
        # a row per sweep (per candidate of a portfolio sweep)
        self.total = self.epochs + int(getattr(trainer, "max_sweeps", 0) or 0) * int(getattr(trainer, "portfolio", 1))
        self.stream = stream
        self.bar = bar
        self.done = 0
        self.status = ""
        self.t0 = time.perf_counter()
        self._drawn = 0  # width of the bar line on screen
        self._last_draw = 0.0

    def row(self, row: dict[str, Any]) -> None:
        self.done += 1
        if not self.bar:
            self._write(describe(self.method, row, self.epochs) + "\n")
            return
        if row["kind"] == "sweep":  # a sweep's verdict stays on screen
            self._clear()
            self._write(describe(self.method, row, self.epochs) + "\n")
            self._drawn = 0
        loss = row["val_loss"] if row.get("val_loss") is not None else row.get("train_loss")
        acc = row["val_acc"] if row.get("val_acc") is not None else row.get("train_acc")
        what = f"epoch {row['epoch']}" if row["kind"] == "epoch" else f"sweep {row['sweep']}"
        self.status = f"{what}: loss {_num(loss, '.4g')}" + (f" acc {acc:.3f}" if acc is not None else "")
        self._draw()

    def tick(self, event: dict[str, Any]) -> None:
        """A batch done or a solve still running: the bar's status and clock move (lines mode:
        nothing; a line per epoch and per sweep is the record). Called from the solve's thread
        too, so it only redraws."""
        if not self.bar:
            return
        if event.get("event") == "batch":
            of = f"/{event['batches']}" if event.get("batches") else ""
            self.status = f"epoch {event['epoch']}: batch {event['batch']}{of}"
        elif event.get("event") == "solve":
            limit = f" of {event['time_limit']:g}" if event.get("time_limit") else ""
            extra = "".join(f", {k} {event[k]:.4g}" for k in ("incumbent", "bound", "gap") if event.get(k) is not None)
            self.status = f"sweep {event.get('sweep')} ({event.get('layer')}): solving {event['elapsed_s']:.0f}{limit} s" \
                          f"{extra}"
        now = time.perf_counter()
        if now - self._last_draw >= MIN_REDRAW_S:
            self._draw()

    def close(self) -> None:
        if self.bar and self._drawn:
            self.total = self.done  # early stopping ends short of the budget
            self._draw()
            self._write("\n")

    def _draw(self) -> None:
        total = max(self.total, self.done, 1)
        filled = int(BAR_WIDTH * self.done / total)
        line = (f"{self.method} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.done}/{total} {self.status} "
                f"| {time.perf_counter() - self.t0:.1f} s")
        self._write("\r" + line + " " * max(0, self._drawn - len(line)))
        self._drawn = len(line)
        self._last_draw = time.perf_counter()

    def _clear(self) -> None:
        if self._drawn:
            self._write("\r" + " " * self._drawn + "\r")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


@contextlib.contextmanager
def progress_for(trainer: Any) -> Iterator[None]:
    """Set trainer._progress for the duration of a fit (None when silent)."""
    level = trainer.verbose
    if not level:
        yield
        return
    stream = sys.stdout
    trainer._progress = Progress(trainer, stream, bar=level == 2 and interactive(stream))
    try:
        yield
    finally:
        trainer._progress.close()
        trainer._progress = None
