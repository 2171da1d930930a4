"""GDSolver under a time budget (`budget_s`): the first GD phase, then the move that has paid
most per second so far (gdsolver.train.budget.Scheduler): another GD phase, a restart, or a sweep
of a layer; each decision and its reason in `history.decisions`. A mixin of GDSolver (it calls
the trainer's GD phases and GDSolver's `_sweep`)."""

from __future__ import annotations

import copy
import time

from gdsolver.compile.convex import is_convex_sweep
from gdsolver.train.sweep import default_mode

# budget_s: the first GD phase ends at its plateau or after this share of the budget; a move
# never tried (a sweep's cost is unknown before it runs) starts only with this share still left
FIRST_PHASE_SHARE = 0.5
EXPLORE_SHARE = 0.1
# ... and a sweep's first try (a probe) gets at most this share of the budget: on the equal-time
# bench (regression and digits, 10 seeds) no sweep paid for its time, and probes at 0.1 of the
# budget cost GDSolver 5-32% against its ablation on the regression equations
PROBE_SHARE = 0.05
# ... and a convex sweep of the last layer runs last, in this share of the budget kept for it (cross-entropy;
# least squares, exact in milliseconds, gets POLISH_EVALS evaluations' time): a sweep
# followed by more GD steps was undone by them (digits, 5 epoch-equivalents: test cross-entropy 0.184
# against 0.114 for the run without sweeps on seed 0), the exact fit of the layer at the end is not
POLISH_SHARE = 0.1
# at least this many evaluations' time (judging it needs 1.5; an MNIST evaluation of 60,000 points is 0.5 s),
# and at most POLISH_MAX_SHARE of the budget: else the last layer is not swept (its judging alone would
# cost more than it buys: MNIST at two epoch-equivalents, 3 seeds, a polish in 21% of the budget was +9.8% test
# cross-entropy against GD continued, as a move +6.9%, and a probe that could not solve took the time)
POLISH_EVALS = 3.0
POLISH_MAX_SHARE = 0.15
# a move's drop of the monitored loss below this (relative) counts as none: a hidden-layer sweep that
# bought 1e-5 was chosen again and took the time of the restarts that found the better basin (formula,
# seed 7, 3 s: 1.289 against 0.0999 without sweeps)
MIN_GAIN_RTOL = 1e-3
# the polish fits the layer on a seeded sample of this many training points ("auto" points; a sweep's own
# default is 4096): on MNIST a 4096-point polish raised the validation loss 0.136 -> 0.214 (a fit to its
# sample) and was refused; after one Adam epoch 16384 points gave test CE 0.143 against 0.147
POLISH_POINTS = 16384
POLISH_AGAIN = 1.5  # a polish that left time over comes again at the end, with this times its cost kept for it
# no polish when the budget holds fewer than this many epochs (of the first phase's GD): its time goes to GD.
# Digits at one epoch-equivalent (0.055 s, 30 seeds x 2): with it, +6.5% test cross-entropy against GD
# continued (its build, first L-BFGS-B iteration and judging took a third of an epoch early in training,
# when GD gains most); at two, -11.6%. Between one and two: an epoch-equivalent (a 1-epoch fit's wall time)
# and the epoch measured in the run differ by a few percent, and 2.0 dropped the polish at random at two
POLISH_MIN_EPOCHS = 1.5


class TimeAware:
    """`_fit_budget` and the restart move of GDSolver (train/hybrid.py)."""

    _polishing = False  # the last layer's sweep at the end of the budget: it gets the time left

    def _fit_budget(self) -> None:
        """budget_s: the first GD phase (to its plateau), then, while time is left, the move that
        has paid most per second (gdsolver.train.budget): another GD phase, a sweep of a layer,
        or a restart (a fresh initialisation trained to its plateau, kept if better on the
        monitored loss; a move when the first phase reached its plateau or its epochs, not cut by
        the time, and two more starts as long as it fit in the time left).
        A convex sweep of the last layer is kept for the end, in the time _polish_reserve keeps for
        it; if it leaves time over, the moves go on and it comes again at the end, given what it took.
        max_sweeps does not apply (the budget decides); `epochs` bounds each GD phase."""
        from gdsolver.train.budget import Scheduler

        # the monitored loss only: the training set's evaluation is not needed here (on MNIST, 60,000 points:
        # half a second of a 6.6 s budget)
        watched = self.val_data if self.val_data is not None else self.train_data
        t = time.perf_counter()
        before = self._evaluate(watched)[0]
        # until the first epoch measures it: an evaluation of train and val, by the points (the polish's
        # reserve needs it before the first phase, which may run to the budget's end)
        n = len(self.train_data) + (len(self.val_data) if self.val_data is not None else 0)
        self._metrics_cost = (time.perf_counter() - t) * n / len(watched)
        last = polish = None if self.skip_sweeps else self._convex_last_layer()  # swept only as the polish
        # at most its largest share for now: the estimate counts the evaluation's fixed cost once per
        # point (1.3-5.6x too high on digits); the first phase's measured costs decide below
        reserve = 0.0 if polish is None else min(self._polish_reserve(self.budget_s),
                                                 POLISH_MAX_SHARE * self.budget_s)
        # untried sweeps are tried from the output side: the last layer's is the cheapest (often convex)
        names = ["gd"] if self.skip_sweeps else ["gd", *(f"sweep {n}" for n in reversed(self._layers) if n != last)]
        plan = Scheduler(names, default="gd")
        self.history.decisions = plan.log
        self._restarts_tried = 0
        first, polished_at = True, None
        while True:
            self.budget_s -= reserve  # the moves end this much early: the polish's time
            try:
                if first:
                    self._first_phase(plan, before)
                    if polish is not None:  # now with an epoch's and an evaluation's measured cost
                        whole = self.budget_s + reserve
                        again = self._polish_reserve(whole)
                        if whole < POLISH_MIN_EPOCHS * self._epoch_cost or again > POLISH_MAX_SHARE * whole:
                            polish, again = None, 0.0  # too short a budget for it to pay: GD gets the time
                        self.budget_s += reserve - again
                        reserve = again
                self._spend(plan)
            finally:
                self.budget_s += reserve
            first = False
            # the weights the last polish left, unchanged by the moves since (a rejected sweep, a restart
            # not kept): polishing them again would find the same
            unchanged = polished_at is not None and self._watched_loss() == polished_at
            if polish is None or self.time_left() <= 0 or self._reached_goal() or unchanged:
                return
            t = time.perf_counter()
            plan.log.append({"elapsed_s": t - self._t0, "move": f"sweep {polish}",
                             "reason": "the last layer's convex sweep, kept for the end of the budget (what the "
                                       "GD steps leave it is not undone by more of them)", "rates": {}})
            self._polishing = True
            try:
                self._sweep(polish)
            finally:
                self._polishing = False
            # time over (an exact least-squares sweep takes milliseconds): the moves go on, and the polish
            # comes again at the end, given what this one took
            reserve = POLISH_AGAIN * (time.perf_counter() - t)
            polished_at = self._watched_loss()
            if self.time_left() < self._gd_step() + reserve:
                return

    def _first_phase(self, plan, before: float) -> None:
        """The first GD phase (to its plateau or FIRST_PHASE_SHARE of the budget) from the
        monitored loss `before`, measured; then restarts are offered when it was not cut by the
        time (it reached its plateau or its epochs) and two more starts as long as it fit."""
        t = time.perf_counter()
        self._phase_end = t + FIRST_PHASE_SHARE * self.time_left()  # the other moves get their chance
        try:
            self._run_gd(self.epochs)
        finally:
            self._phase_end = None
        plan.record("gd", time.perf_counter() - t, before - self._watched_loss(), step=self._gd_step())
        first_cost = time.perf_counter() - t
        # offered when the first fit reached its plateau (or its epochs) and two more starts as long fit:
        # exploring one must leave time to use what it found. A fresh start against a fit the time cut
        # short is behind from its first step (digits, 2 epoch-equivalents, 30 seeds x 2: the restarts
        # tried made the no-sweeps run 11% worse than GD continued)
        if (not self._phase_cut and 2 * first_cost <= self.time_left()) or self.restarts == "fill":
            # tried before the sweeps: its cost is about the first phase's, known and often small
            plan.add("restart", pooled=True, first=True)
            plan.draw("restart", self._watched_loss())  # the first start is the first draw

    def _spend(self, plan) -> None:
        """The moves, chosen by what they paid per second, until the budget is spent."""
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
                self._restarts_tried += 1
                kept, drawn = self._restart_move(self._restarts_tried)
                plan.draw("restart", drawn)
                if kept:  # a new model: the sweeps that paid on the old one are tried on it afresh; one that
                    # paid nothing is not explored again (re-exploring each after every kept restart cost
                    # the regression runs more than the sweeps ever paid)
                    plan.forget([n for n, m in plan.moves.items() if n.startswith("sweep ") and m.gain > 0])
            else:
                # a first try is a probe: at most PROBE_SHARE of the budget
                self._explore_cap = PROBE_SHARE * self.budget_s if plan.moves[move].tries == 0 else None
                self._sweep(move.split(" ", 1)[1])
            gain = before - self._watched_loss()
            if gain < MIN_GAIN_RTOL * abs(before):  # too small to choose the move again for
                gain = 0.0
            plan.record(move, time.perf_counter() - t, gain, step=self._gd_step() if move == "gd" else None)

    def _polish_reserve(self, budget: float) -> float:
        """The time kept for the polish out of `budget`: bounded least squares (the squared head) is
        exact in about a few evaluations' time; L-BFGS-B (cross-entropy) is anytime and gets
        POLISH_SHARE of the budget. At least POLISH_EVALS evaluations either way (judging it needs 1.5)."""
        evals = POLISH_EVALS * self._metrics_cost
        if (self.sweep_config.mode or default_mode(self.task)) == "squared":
            return evals
        return max(POLISH_SHARE * budget, evals)

    def _convex_last_layer(self) -> str | None:
        """The last dense layer's name when it is swept and its sweep is convex (identity output,
        the squared / ce head, solved directly): the sweep kept for the end of a budget."""
        from gdsolver.pipeline import direct_allowed

        cfg = self.sweep_config
        if not self._layers or cfg.convex != "direct" or not direct_allowed(cfg.solve_settings(threads=self.threads)):
            return None
        last = self._network().layers[-1]
        convex = is_convex_sweep(cfg.mode or default_mode(self.task), last=True, activation=last.activation)
        return last.name if convex and last.name in self._layers else None

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

