"""GDSolver under a time budget (`budget_s`): the first GD phase, then the move that has paid
most per second so far (gdsolver.train.budget.Scheduler): another GD phase, a restart, or a sweep
of a layer; each decision and its reason in `history.decisions`. A mixin of GDSolver (it calls
the trainer's GD phases and GDSolver's `_sweep`)."""

from __future__ import annotations

import copy
import time

# budget_s: the first GD phase ends at its plateau or after this share of the budget; a move
# never tried (a sweep's cost is unknown before it runs) starts only with this share still left
FIRST_PHASE_SHARE = 0.5
EXPLORE_SHARE = 0.1
# ... and a sweep's first try (a probe) gets at most this share of the budget: on the equal-time
# bench (regression and digits, 10 seeds) no sweep paid for its time, and probes at 0.1 of the
# budget cost GDSolver 5-32% against its ablation on the regression equations
PROBE_SHARE = 0.05


class TimeAware:
    """`_fit_budget` and the restart move of GDSolver (train/hybrid.py)."""

    def _fit_budget(self) -> None:
        """budget_s: the first GD phase (to its plateau), then, while time is left, the move that
        has paid most per second (gdsolver.train.budget): another GD phase, a sweep of a layer,
        or a restart (a fresh initialisation trained to its plateau, kept if better on the
        monitored loss; a move when two more starts as long as the first fit in the time left).
        max_sweeps does not apply (the budget decides); `epochs` bounds each GD phase."""
        from gdsolver.train.budget import Scheduler

        # untried sweeps are tried from the output side: the last layer's is the cheapest (often convex)
        names = ["gd"] if self.skip_sweeps else ["gd", *(f"sweep {n}" for n in reversed(self._layers))]
        plan = Scheduler(names, default="gd")
        self.history.decisions = plan.log
        t = time.perf_counter()
        before = self._monitored_loss(self._metrics())
        self._phase_end = t + FIRST_PHASE_SHARE * self.time_left()  # the other moves get their chance
        try:
            self._run_gd(self.epochs)
        finally:
            self._phase_end = None
        plan.record("gd", time.perf_counter() - t, before - self._watched_loss(), step=self._epoch_cost)
        first_cost = time.perf_counter() - t
        restarts = 0
        # offered when two more starts fit: exploring one must leave time to use what it found (a restart
        # that took the rest of a digits budget left a model worse than GD going on)
        if 2 * first_cost <= self.time_left() or self.restarts == "fill":
            # tried before the sweeps: its cost is about the first phase's, known and often small
            plan.add("restart", pooled=True, first=True)
            plan.draw("restart", self._watched_loss())  # the first start is the first draw
        while not self._reached_goal():
            # an untried move needs a tenth of the budget left, and at least what a sweep costs before its
            # deadline can stop it (extraction, build: about an evaluation) and after (the decision's): a probe
            # started with 0.03 s left took 0.3 s on a 0.29 s digits budget
            explore = max(EXPLORE_SHARE * self.budget_s, 2 * self._metrics_cost)
            move = plan.choose(self.time_left(), time.perf_counter() - self._t0, explore)
            if move is None:
                break
            t, before = time.perf_counter(), self._watched_loss()
            if move == "gd":  # to its plateau or a quarter of the time left, then the moves are weighed again
                self._phase += 1
                self._phase_end = t + FIRST_PHASE_SHARE / 2 * self.time_left()
                try:
                    self._run_gd(self.epochs if self.phase_epochs is None else self.phase_epochs)
                finally:
                    self._phase_end = None
            elif move == "restart":
                restarts += 1
                kept, drawn = self._restart_move(restarts)
                plan.draw("restart", drawn)
                if kept:  # a new model: the sweeps that paid on the old one are tried on it afresh; one that
                    # paid nothing is not explored again (re-exploring each after every kept restart cost
                    # the regression runs more than the sweeps ever paid)
                    plan.forget([n for n, m in plan.moves.items() if n.startswith("sweep ") and m.gain > 0])
            else:
                # a first try is a probe: at most PROBE_SHARE of the budget
                self._explore_cap = PROBE_SHARE * self.budget_s if plan.moves[move].tries == 0 else None
                self._sweep(move.split(" ", 1)[1])
            plan.record(move, time.perf_counter() - t, before - self._watched_loss(),
                        step=self._epoch_cost if move == "gd" else None)

    def _restart_move(self, i: int) -> tuple[bool, float]:
        """A fresh initialisation trained to its plateau; the better of it and the current model
        (on the monitored loss) is kept. (whether the fresh one was, its monitored loss)."""
        saved, before = copy.deepcopy(self.model.state_dict()), self._watched_loss()
        carried = self._carried
        start = len(self.history.rows)
        self.reinitialise(i)
        self._phase += 1
        self._gd_phase(self.epochs, self.lr)
        for row in self.history.rows[start:]:
            row["restart"] = i
        after = self._monitored_loss(self._metrics())
        if after < before:
            return True, after
        # the earlier model again, with a row that says so and its figures
        self.model.load_state_dict(saved)
        self._carried = carried  # and its optimizer goes on where it was
        self._emit(self.history.add("epoch", phase=self._phase, epoch=self._epoch, elapsed_s=time.perf_counter()
                                    - self._t0, reason=f"restart {i} ({after:.6g}) not better than "
                                    f"{before:.6g}: the earlier weights are kept", **self._metrics()))
        return False, after

