"""A time budget spent on what pays: GDSolver's choice of its next move under `budget_s`.

The moves are GD phases, sweeps of each layer, and restarts. Each time a move runs, its wall
time and the drop of the monitored loss (validation, else training) it bought are measured;
the next move is the one that paid most per second so far, among those whose last cost fits
in the time left. A move never tried is tried once first (its cost is unknown), in the order
given; when nothing has paid, a restart (a fresh draw) when there is one, else GD goes on. A
restart that is kept replaces the model, so the measurements of the sweeps that paid are
forgotten (they are tried again on the new model; one that paid nothing is not re-explored).
Every choice is written down with its reason.

A restart's payoff is not what the last one bought but what the next draw is expected to buy:
with the monitored losses d(1) <= d(2) <= ... of the k starts so far (the first run's included),
the leave-one-out estimate of E[max(0, best - next draw)] is (d(2) - d(1)) / k (a new draw
sets a record with chance about 1/k, by about the gap between the two best). Counting only the
kept restarts' drops undervalued them: on the regression equations the time-aware run spent
its time in GD phases at their plateau while best-of-K restarts found the better basins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


RESTART = "restart"  # the move whose payoff is a random draw: pooled over its tries, and the fallback


@dataclass
class Move:
    """`cost` and `gain` are those of the last run, or with `pooled` the means over every run (a
    restart's payoff is a draw, GD's and a sweep's change as training goes on)."""

    name: str
    pooled: bool = False
    cost: float = 0.0  # wall seconds
    gain: float = 0.0  # drop of the monitored loss bought (never negative)
    step: float | None = None  # what must be left to start it (default its cost; GD: one epoch)
    tries: int = 0
    total_cost: float = 0.0
    total_gain: float = 0.0
    draws: list[float] = field(default_factory=list)  # a restart: the monitored loss of every start

    @property
    def rate(self) -> float:
        if self.pooled:
            if self.total_cost <= 0:
                return 0.0
            d = sorted(x for x in self.draws if math.isfinite(x))
            if len(d) >= 2:  # the expected drop of one more draw (module docstring) per mean cost
                return (d[1] - d[0]) / len(d) / (self.total_cost / self.tries)
            return self.total_gain / self.total_cost
        return self.gain / self.cost if self.cost > 0 else 0.0

    @property
    def needs(self) -> float:
        return self.cost if self.step is None else self.step


@dataclass
class Scheduler:
    """Measured payoff per second of each move (module docstring). `default` is what runs when
    nothing has paid."""

    names: list[str]
    default: str
    moves: dict[str, Move] = field(init=False)
    log: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.default not in self.names:
            raise ValueError(f"default move {self.default!r} is not one of {self.names}")
        self.moves = {n: Move(n) for n in self.names}

    def add(self, name: str, *, pooled: bool = False, first: bool = False) -> None:
        """A move that becomes possible during the run (e.g. restarts, once GD's cost is known);
        `first`: tried before the other untried moves."""
        if name not in self.moves:
            self.moves = {name: Move(name, pooled), **self.moves} if first else {**self.moves, name: Move(name, pooled)}

    def draw(self, name: str, loss: float) -> None:
        """The monitored loss a start reached (the first run's, each restart's, kept or not)."""
        self.moves[name].draws.append(float(loss))

    def forget(self, names: list[str]) -> None:
        """Measurements that no longer apply (a restart replaced the model): those moves count as
        never tried again."""
        for n in names:
            if n in self.moves:
                self.moves[n] = Move(n, self.moves[n].pooled, draws=self.moves[n].draws)

    def record(self, name: str, cost: float, gain: float, step: float | None = None) -> None:
        """Move `name` ran for `cost` seconds and bought `gain`; `step`: the least time it can
        usefully run for (a GD phase can stop after any epoch)."""
        m = self.moves[name]
        m.step = step
        m.cost, m.gain, m.tries = max(cost, 0.0), max(gain, 0.0) if math.isfinite(gain) else 0.0, m.tries + 1
        m.total_cost += m.cost
        m.total_gain += m.gain

    def choose(self, time_left: float, elapsed: float, explore: float = 0.0) -> str | None:
        """The next move, or None when no move fits in the time left; the choice and its reason
        are appended to `log`. A move never tried (its cost unknown) needs `explore` seconds left."""
        fits = [m for m in self.moves.values() if m.needs <= time_left and (m.tries or time_left >= explore)]
        if not fits or time_left <= 0:
            return self._note(None, elapsed, "the budget is spent")
        untried = [m for m in fits if m.tries == 0]
        if untried:
            return self._note(untried[0].name, elapsed, "not tried yet")
        best = max(fits, key=lambda m: (m.rate, m.name == self.default))
        if best.rate > 0:
            return self._note(best.name, elapsed, f"paid {best.rate:.3g} loss/s, the most so far")
        gd = self.moves[self.default]
        fresh = self.moves.get(RESTART)
        if fresh is not None and fresh in fits:  # GD at its plateau gains nothing; a fresh start is a new draw
            return self._note(RESTART, elapsed, "nothing has paid; a fresh start is a new draw")
        if gd in fits:
            return self._note(self.default, elapsed, "nothing has paid; GD goes on")
        return self._note(None, elapsed, "nothing has paid and GD does not fit")

    def _note(self, name: str | None, elapsed: float, why: str) -> str | None:
        self.log.append({"elapsed_s": elapsed, "move": name, "reason": why,
                         "rates": {m.name: m.rate for m in self.moves.values() if m.tries}})
        return name
