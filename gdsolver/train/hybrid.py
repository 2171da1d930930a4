"""GDSolver (Algorithm 1 of Ashok et al.): GD until the validation loss plateaus, then solver
sweeps over dense layers' weights in boxes around their current values; repeat.

A sweep (gdsolver.train.sweep: prepare, run, decide) is checked before it is used: the
solution must pass `ir.verify` and a float64 forward pass of its claims, and after writing
it into the model, the solver's own loss on its points, recomputed by a forward pass of the
model, must strictly improve, and the validation loss must not worsen by more than
`val_tolerance` (relative) -- or, with accept_on="accuracy" (classification), the
validation accuracy must not drop by more than `val_tolerance`. Otherwise the old weights
are put back bit for bit and the history says why. (The authors' code accepted every answer.)

Layers: `layers="final"` sweeps the last dense layer (the paper). With several layers
("all" or a list), each sweep round visits them from the input side to the output: a hidden
layer's sweep can change which ReLUs are active, which GD cannot do, and the layers after it
are then swept against the new features (the measured recipe of issue 14: a hidden-layer
sweep followed by a final-layer refit). A round counts as one of `max_sweeps`.

Portfolio (`portfolio=K`): each sweep prepares K candidates (other radii and point samples;
gdsolver.train.portfolio), solves them with the executor ("local": one after another here;
"ray": as Ray tasks, in parallel; the same answers either way), and tries them in the order of
their solver loss until one passes the accept rule; a rejected one is restored bit for bit
before the next is written. Every candidate gets a history row (`candidate` = its number) and
its dumps (`sweeps/NNNN-cJ*.gdsm`); portfolio=1 is the single sweep above.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Sequence
import dataclasses
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from gdsolver.compile.registry import DEFAULT_BACKEND
from gdsolver.errors import GdsolverError
from gdsolver.extract.torch_frontend import (OutputSelector, apply_to_torch, eval_mode, linear_params,
                                             network_from_torch, refresh_network, restore_params)
from gdsolver.train import config
from gdsolver.train.config import GD_DEFAULTS as GD
from gdsolver.train.config import (AUTO, AcceptConfig, LoopConfig, PortfolioConfig, SweepConfig, auto_radius, keyword,
                                   split_settings)
from gdsolver.train.history import History
from gdsolver.train.portfolio import NOT_TRIED, Candidate, gain, order, plan, same_problem
from gdsolver.pipeline import SweepOutcome, instance_files, solve_sweep
from gdsolver.train.one_sweep import MIN_SOLVE_S, LayerSweep, block_units, layer_indices, solve_floor
from gdsolver.train.one_sweep import solve as solve_one
from gdsolver.train.sweep import SweepJob, decide_sweep, default_mode, sweep_loss
from gdsolver.train.time_aware import POLISH_POINTS, TimeAware
from gdsolver.train.trainer import Trainer

RADIUS_MAX_FACTOR = 64.0  # adaptive radius stays within [r0 / 64, r0 * 64]
PLATEAU_PATIENCE = 2  # GDSolver's GD phases end at a plateau: epochs without a new best (the authors' value)
# budget_s (see train.time_aware): a sweep's time limit is at most this share of the time left
SWEEP_SHARE = 0.25  # ... and a sweep's time limit is at most this share of the time left
# a sweep's decision is kept in hand as this times an evaluation's cost (it also writes the weights and
# computes the points' loss: digits runs with a polish at the end took 1.12x their budget with 1x)
JUDGE_SLACK = 1.5


class GDSolver(TimeAware, Trainer):
    """Hybrid GD + MILP training.

    optimizer: the GD phase's optimizer, "sgd", "adam" or "lbfgs" (full-batch L-BFGS; one epoch
    is one step of at most 20 iterations); restarts=K runs the first GD phase from K
    initialisations and sweeps the best on validation ("L-BFGS best of 5, then sweeps").
    epochs: total GD epoch budget. phase_epochs: at most this many GD epochs before each
    sweep round (None: until plateau or budget). max_sweeps: number of sweep rounds (0 =
    plain GD with early stopping). layers: "final", "all", or dense-layer indices / names
    (see the module docstring). The run ends after `max_sweeps` rounds, after a round with
    an accepted sweep once the epoch budget is spent, or when the monitored loss (validation,
    else training) reaches `desired_loss`. A rejected sweep halves its layer's radius for the
    next one, a sweep that improves nothing doubles it (adapt_radius=True; within
    [r/64, 64 r]). output: which element of a tuple / dict model output holds the scores.
    portfolio / executor / ray_address: K candidate sweeps per sweep, solved locally or on Ray,
    tried best first (see the module docstring and PortfolioConfig). A sweep whose candidates
    are all rejected adapts the radius as one sweep would: halved when one of them improved its
    points' loss, else doubled; an accepted one leaves it. refit (regression, squared head): a
    hidden-layer sweep is judged after refitting the last layer by least squares in its box
    (SweepConfig).
    """

    method = "gdsolver"

    def __init__(self, model: nn.Module, task: str = "classification", *, optimizer: str = GD.optimizer,
                 lr: float | None = GD.lr, lr_schedule: str | None = GD.lr_schedule, epochs: int = GD.epochs,
                 batch_size: int = GD.batch_size, patience: int | None = PLATEAU_PATIENCE,
                 momentum: float = GD.momentum, weight_decay: float = GD.weight_decay, seed: int = GD.seed,
                 threads: int | None = GD.threads, output: OutputSelector = None,
                 dump_dir: str | os.PathLike | None = None, callback: Callable[[dict[str, Any]], None] | None = None,
                 verbose: bool | int = False, restarts: int | str = GD.restarts, budget_s: float | None = GD.budget_s,
                 **settings: Any) -> None:
        # **settings: the fields of the settings records (train.config.SETTINGS: the loop, the sweep,
        # the accept rule, the portfolio), each default written there once; the signature lists them
        super().__init__(model, task, epochs=epochs, batch_size=batch_size, seed=seed, threads=threads,
                         dump_dir=dump_dir, callback=callback, output=output, verbose=verbose, restarts=restarts,
                         budget_s=budget_s)
        self._set_gd_options(optimizer, lr, lr_schedule, patience, momentum, weight_decay)
        parts = split_settings(settings, type(self).__name__)
        self.loop = LoopConfig(**parts[LoopConfig])
        self.sweep_config = SweepConfig(**parts[SweepConfig]).for_task(self.task)
        # radius "auto": the recipe's, except a classification hidden layer's, which scales with its fan-in
        self._auto_radius = parts[SweepConfig].get("radius", AUTO) == AUTO
        if self.sweep_config.keep_correct and task == "regression":  # else every sweep would be SKIPPED for it
            raise GdsolverError("keep_correct: applies to classification only")
        self.accept = AcceptConfig(**parts[AcceptConfig])
        if self.accept.accept_on == "accuracy" and task != "classification":
            raise GdsolverError(f"accept_on: {self.accept.accept_on!r}, expected 'loss' (regression)")
        self.portfolio_config = PortfolioConfig(**parts[PortfolioConfig])
        self._executor = None
        self.max_sweeps = self.loop.max_sweeps
        self.phase_epochs = self.loop.phase_epochs
        self.phase_lrs = None if self.loop.phase_lrs is None else list(self.loop.phase_lrs)
        self.skip_sweeps = self.loop.skip_sweeps  # a control for benchmarks: the same GD phases, no solver
        self.desired_loss = self.loop.desired_loss
        self.history = History(self.method)

    # settings read by config() / run.json and the benchmarks
    @property
    def radius(self) -> float:
        return self.sweep_config.radius

    @property
    def portfolio(self) -> int:
        return self.portfolio_config.portfolio

    @property
    def val_tolerance(self) -> float:
        return self.accept.val_tolerance

    @property
    def accept_on(self) -> str:
        return self.accept.accept_on

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg.update(self.loop.to_json(), **self.sweep_config.to_json(), accept_on=self.accept.accept_on,
                   val_tolerance=self.accept.val_tolerance, **self.portfolio_config.to_json())
        cfg["solver_points"] = cfg.pop("points")
        if self.output is not None:
            cfg["output"] = self.output if isinstance(self.output, (int, str)) else repr(self.output)
        return cfg

    @property
    def radii_used(self) -> list[float]:
        """The box half-width of every sweep so far (the history's radius column)."""
        return [r["radius"] for r in self.history.sweeps]

    @classmethod
    def two_loop(cls, model: nn.Module, task: str = "classification", *, epochs: int = GD.epochs,
                 lrs: Sequence[float] = (0.1, 0.05), **kwargs: Any) -> "GDSolver":
        """The paper's "2-loop GDSolver": at most epochs/2 GD epochs (SGD, patience 2), then a
        sweep on 32 misclassified points (the paper's counting head); twice. The authors' code
        used lr 0.1, then 0.05."""
        kwargs.setdefault("patience", 2)
        kwargs.setdefault("solver_points", 32)
        if task == "classification":
            kwargs.setdefault("mode", "paper")  # the paper's counting head
        return cls(model, task, epochs=epochs, phase_epochs=max(1, epochs // 2), max_sweeps=2,
                   phase_lrs=list(lrs), lr=lrs[0], **kwargs)

    # ------------------------------------------------------------------ Algorithm 1
    def _fit(self) -> None:
        try:
            self._fit_rounds()
        finally:  # a Ray started for the candidates ends with the fit (one found running is left)
            if self._executor is not None:
                self._executor.close()
                self._executor = None

    def _fit_rounds(self) -> None:
        self._round = 0
        self._sweep_no = 0
        self._block_at: dict[str, int] = {}  # block sweeps: the first unit of each layer's next block
        self._sweep_deadline: float | None = None
        self._explore_cap: float | None = None  # under budget_s, a sweep's first try: its time at most this
        self._layers: list[int] = []
        self._radius: dict[str, float] = {}
        self._net = None  # the model's chain, extracted once; each sweep re-reads its weights (_network)
        if self.max_sweeps > 0:  # a model the sweeps cannot handle: say so now, not after GD
            try:
                net = self._net = network_from_torch(self.model, self.train_data.X[:SAMPLE], output=self._selected)
            except GdsolverError as exc:
                raise GdsolverError(f"GDSolver cannot sweep this model: {exc}") from None
            self._layers = self._resolve_layers(net)
            self._radius = {name: self._first_radius(net, name) for name in self._layers}
        self._radius0 = dict(self._radius)  # what the adaptive radius stays near
        if self.budget_s is not None:
            self._fit_budget()
            return
        if self.max_sweeps == 0:
            self._run_gd(self.epochs)
            return
        while self._round < self.max_sweeps:
            budget = self.epochs - self._epoch
            self._run_gd(budget if self.phase_epochs is None else min(self.phase_epochs, budget))
            self._round += 1
            accepted = False
            for name in self._layers:
                accepted |= self._sweep(name)
                if self._reached_goal():
                    break
            # With the epoch budget spent, another round still makes sense after a rejected or
            # unproductive one: the radius has changed and the sweep draws new points.
            if self._reached_goal() or (self._epoch >= self.epochs and accepted):
                break
            self._phase += 1

    def _network(self):
        """The model's chain of dense layers with its current weights: extracted once, then re-read
        without the extraction's probing passes (3 ms a sweep on the digits MLP) while the chain's
        forward pass still gives the model's outputs on a few points; extracted again when it does
        not (a module between two layers that was the identity, e.g. a scale at 1, no longer is)."""
        if self._net is not None:
            net = refresh_network(self._net, self.model)
            X = self.train_data.X[:CHAIN_CHECK]
            ours, model = net.forward(net.features(X.numpy(), 0)), self._model_outputs(X)
            # scores behind a Softmax / LogSoftmax are the logits less a per-point constant
            ours, model = ours - ours.max(axis=1, keepdims=True), model - model.max(axis=1, keepdims=True)
            if np.allclose(ours, model, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(model).max()))):
                self._net = net
                return net
        self._net = network_from_torch(self.model, self.train_data.X[:SAMPLE], output=self._selected)
        return self._net

    def _resolve_layers(self, net) -> list[str]:
        """The swept layers by name, from the input side (a name survives GD changing what the
        chain looks like, e.g. a BatchNorm that stops being the identity: _network extracts again)."""
        return [net.layers[k].name for k in layer_indices(net, self.sweep_config.layers)]

    _restart_whole_fit = False  # restarts pick the best first GD phase; the sweeps then run once

    def _run_gd(self, epochs: int) -> None:
        lrs = self.phase_lrs
        lr = lrs[min(self._phase, len(lrs)) - 1] if lrs else self.lr
        if self._phase == 1 and self.restarts != 1:
            self._with_restarts(lambda: self._gd_phase(epochs, lr))
        else:
            self._gd_phase(epochs, lr)

    def _watched_loss(self) -> float:
        return self._monitored_loss(self._current_metrics())

    def _reached_goal(self) -> bool:
        if self.desired_loss is None or not self.history.rows:
            return False
        return self._monitored_loss(self.history.last) <= self.desired_loss

    # ------------------------------------------------------------------ one sweep
    def _model_outputs(self, X: torch.Tensor) -> np.ndarray:
        """What the sweeps' heads see, by a forward pass of the model, float64: the outputs of the
        last dense layer. Behind a Softmax / LogSoftmax the model gives log-probabilities, which
        are those logits minus a per-point constant: the same margins, the same argmax."""
        with eval_mode(self.model), torch.no_grad():
            o = self._scores(self.model(X))
        return o.double().reshape(len(X), -1).numpy()

    def _sweep(self, name: str) -> bool:
        """Sweep the dense layer `name` once: prepare, run and decide each of the portfolio's
        candidates (one with portfolio=1); a history row per candidate. True when one is accepted."""
        self._sweep_no += 1
        if self.skip_sweeps:
            return False
        cfg, K = self.sweep_config, self.portfolio
        n, radius = self._sweep_no, self._radius[name]
        cands = [_Cand(c, radius * c.radius_factor) for c in plan(K, self.seed * 1000 + n)]
        base: dict[str, Any] = dict(phase=self._phase, epoch=self._epoch, sweep=n, layer_name=name)
        X, y = self.train_data.X, self.train_data.y
        t = time.perf_counter()
        self._sweep_deadline = self._deadline(t)
        try:
            net = self._network()
            k = net.layer_index(name)
            base["layer"] = k
            # the layer's inputs once for all candidates (their time is charged to the first)
            H = net.features(X.numpy(), k) if K > 1 else None
        except GdsolverError as exc:
            for c in cands:
                self._finish_sweep(self._row(base, c), status="SKIPPED", accepted=False, reason=str(exc),
                                   build_time_s=time.perf_counter() - t)
            return False
        shared = time.perf_counter() - t
        mode = cfg.mode or default_mode(self.task)
        # a refit sweep is judged on the training loss after the refit, so every candidate's row
        # starts from the training loss (one value: a rejected candidate restores the weights)
        refit = self._refit_layer(net, k, mode) is not None
        # the model side of the sweep: the same stages gdsolver.sweep runs (train.one_sweep)
        ls = self._ls = LayerSweep(self.model, net, X, y.numpy(), task=self.task, outputs=self._model_outputs)
        units = block_units(self._block_at.get(name, 0), cfg.block, net, k)  # moves over the layer per sweep
        if units is not None:
            self._block_at[name] = int(units[-1] + 1) % net.layers[k].M
        self._prepare(cands, ls, k, mode, H, units, shared, refit)
        self._solve(n, [c for c in cands if c.job is not None])
        if K > 1:
            for c in cands:
                if c.outcome is not None:
                    c.gain = gain(self.task, c.job, c.outcome)
        return self._judge(cands, base, net, k, name)

    def _deadline(self, t: float) -> float | None:
        """When a sweep started at t must be done, everything included (extraction, build, solve,
        checks, the decision): its time_limit, and under budget_s at most a share of what is left
        (an epoch's cost kept back) or, for a first try, a probe's share of the budget."""
        caps = [self.sweep_config.time_limit]
        if self.budget_s is not None and not self._polishing:
            caps.append((self.time_left() - self._epoch_cost) * SWEEP_SHARE)
            if self._explore_cap is not None:
                caps.append(self._explore_cap)
        caps = [c for c in caps if c is not None]
        self._sweep_time = max(min(caps), MIN_SOLVE_S) if caps else None  # for the history's reason
        if self.budget_s is not None:  # never past the budget: a sweep started late gets what is left (a
            left = max(self.time_left(), 0.0)  # polish with time_limit None: all of it)
            self._sweep_time = left if self._sweep_time is None else min(self._sweep_time, left)
        return None if self._sweep_time is None else t + self._sweep_time

    def _prepare(self, cands: list["_Cand"], ls: LayerSweep, k: int, mode: str, H: np.ndarray | None,
                 units: np.ndarray | None, shared: float, refit: bool) -> None:
        """Each candidate's instance and its loss before (a refit sweep: the training loss); the
        extraction's time `shared` is charged to the first."""
        cfg, X, y = self.sweep_config, self.train_data.X, self.train_data.y
        train_loss = None
        for c in cands:
            t = time.perf_counter()
            try:  # e.g. no misclassified point left: nothing to do
                # the polish's cross-entropy fit on a larger sample (least squares: "auto" is every point)
                points = POLISH_POINTS if self._polishing and cfg.points == "auto" and mode == "ce" else cfg.points
                c.job = ls.prepare(k, radius=c.radius, mode=mode, margin=cfg.margin, points=points,
                                   keep_correct=cfg.keep_correct, seed=c.spec.seed, H=H, convex=cfg.convex,
                                   units=units, tighten=cfg.tighten, lazy=True)
            except GdsolverError as exc:
                c.skipped = str(exc)
                c.build_time_s = time.perf_counter() - t + (shared if c.spec.index == 0 else 0.0)
                continue
            c.build_time_s = c.job.build_time_s + (shared if c.spec.index == 0 else 0.0)
            twin = next((d for d in cands[:c.spec.index] if d.job is not None and same_problem(d.job, c.job)), None)
            if twin is not None:  # the points could not differ (e.g. every point): nothing new to solve
                c.job, c.skipped = None, f"same points and radius as candidate {twin.spec.label}: not solved again"
                continue
            if refit:
                if train_loss is None:
                    train_loss = sweep_loss(self.task, self._model_outputs(X), y.numpy(), c.job.margin, mode)
                c.before = train_loss
            else:
                c.before = ls.points_loss(c.job)

    def _judge(self, cands: list["_Cand"], base: dict[str, Any], net, k: int, name: str) -> bool:
        """Decide the candidates in the order of their gains (the first accepted one is kept, the
        rest are not tried); a history row each; the layer's box adapted when none was kept."""
        layer = net.layers[k]
        watched_before: float | None = None  # the weights before the sweep (a rejection restores them)
        accepted: _Cand | None = None
        decided: list[Any] = []
        for i in order([c.gain for c in cands]):
            c = cands[i]
            row = self._row(base, c)
            if c.job is None:
                self._finish_sweep(row, status="SKIPPED", accepted=False, reason=c.skipped,
                                   build_time_s=c.build_time_s)
                continue
            out = c.outcome
            if "units" in c.job.meta:  # a block sweep: which units were free
                row["units"] = list(c.job.meta["units"])
            row.update(c.job.sizes(), build_time_s=c.build_time_s, status=out.status, objective=out.objective,
                       solver_time_s=out.solver_time_s, sweep_loss_before=c.before)
            if not out.usable:
                self._finish_sweep(row, accepted=False, reason=out.reason)
            elif accepted is not None:
                self._finish_sweep(row, accepted=False, reason=f"{NOT_TRIED}: candidate {accepted.spec.label} came "
                                                               f"before it and was accepted{out.reason}")
            else:
                if watched_before is None:
                    watched_before = self._watched(self._current_metrics())
                decision = self._decide(c, layer, watched_before, net)
                decided.append(decision)
                if decision.accepted:
                    accepted = c
                self._finish_sweep(row, accepted=decision.accepted, reason=decision.reason,
                                   sweep_loss_before=decision.loss_before, sweep_loss_after=decision.loss_after,
                                   metrics=decision.metrics)
        if accepted is None and decided:
            self._adapt(name, grow=not any(d.improved for d in decided))
        return accepted is not None

    def _row(self, base: dict[str, Any], c: "_Cand") -> dict[str, Any]:
        row = dict(base, radius=c.radius)
        if self.portfolio > 1:
            row.update(candidate=c.spec.index, gain=c.gain)
        return row

    def _solve(self, n: int, cands: list["_Cand"]) -> None:
        """Run stage of every prepared candidate, with the executor (portfolio=1 and "local": in
        this process, as a single sweep always ran); then their dumps."""
        settings = self.sweep_config.solve_settings(threads=self.threads)
        if self._sweep_deadline is not None:
            # under a budget a sweep gets at most a quarter of what is left: the scheduler's other moves
            # keep their chance, and a sweep's cost stays what it measured (a sweep given all the time left
            # ate the budget on 2 of 10 equal-time seeds). Its build is spent already; its decision (the
            # metrics once more) is kept in hand, so the solve gets what remains
            left = self._sweep_deadline - time.perf_counter() - JUDGE_SLACK * self._metrics_cost * len(cands)
            floor = max(solve_floor(c.job) for c in cands) if cands else MIN_SOLVE_S
            if left <= 0 or left < floor:
                for c in cands:
                    c.outcome = SweepOutcome("TIME_LIMIT", None, None, f"not solved: time limit (the sweep had "
                                             f"{self._sweep_time:.3g} s: its build took {c.build_time_s:.3g} s and "
                                             f"judging it needs {self._metrics_cost:.3g} s; no solve starts with "
                                             f"less than {floor:g} s)", 0.0, False)
                return
            settings = dataclasses.replace(settings, time_limit=left)
        pc = self.portfolio_config
        if pc.portfolio == 1 and pc.executor == "local":
            for c in cands:
                c.outcome = solve_one(c.job, settings, on_progress=self._tick, sweep=n)
        elif cands:
            from gdsolver.train.executor import Task, make_executor

            if self._executor is None:
                self._executor = make_executor(pc.executor, pc.ray_address)
            # one CPU per task: HiGHS's MIP search is nearly serial; threads= is the solver's option
            tasks = [Task(solve_sweep, (c.job.instance, settings), {}, label=f"sweep {n} {c.spec.label}", cpus=1)
                     for c in cands]
            for c, o in zip(cands, self._executor.run(tasks)):
                c.outcome = o.value if o.ok else SweepOutcome("ERROR", None, None, f"the candidate's solve failed: "
                                                              f"{o.error}", o.seconds, False)
        for c in cands:
            suffix = f"-{c.spec.label}" if self.portfolio > 1 else ""
            files = c.outcome.files
            if c.outcome.weights is not None and self.dump_dir is not None:  # solved from arrays: build to dump
                files = instance_files(c.job.instance, c.outcome, settings)
            self._dump(n, [(suffix + s, inst, res) for s, inst, res in files])

    def _decide(self, c: "_Cand", layer, watched_before: float, net):
        """Write candidate c's answer into the model and keep it or restore the old weights. A
        hidden-layer sweep with `refit` (see SweepConfig) also refits the last layer first."""
        job = c.job
        mode = job.mode
        last = self._refit_layer(net, job.layer, mode)

        def watched() -> tuple[float, dict[str, Any]]:
            metrics = self._metrics()
            return self._watched(metrics), metrics

        def write(W: np.ndarray, b: np.ndarray):
            saved = self._ls.write(job, W, b)
            if last is None:
                return saved, None
            saved_last = linear_params(self.model, last)
            apply_to_torch(self.model, *self._least_squares(last), last)
            return saved, saved_last

        def restore(saved) -> None:
            self._ls.restore(job, saved[0])
            if saved[1] is not None:
                restore_params(self.model, last, saved[1])

        if last is None:
            points_loss = lambda: self._ls.points_loss(job)  # noqa: E731
            what = "solver loss on its points"
        else:  # c.before is then the training loss (see _sweep)
            X, y = self.train_data.X, self.train_data.y.numpy()
            points_loss = lambda: sweep_loss(self.task, self._model_outputs(X), y, job.margin, mode)  # noqa: E731
            what = f"training loss after refitting layer {last.name!r}"
        return decide_sweep(job, c.outcome, write=write, restore=restore, points_loss=points_loss,
                            watched=watched, watched_before=watched_before, accept=self.accept,
                            loss_before=c.before, label="validation" if self.val_data is not None else "training",
                            loss_label=what, train_before=self._current_metrics()["train_loss"])

    def _refit_layer(self, net, k: int, mode: str):
        """The last dense layer when a sweep of layer k is judged after refitting it (SweepConfig
        refit: regression, squared head, k a hidden layer, the last layer's output the identity)."""
        last = net.layers[-1]
        if (not self.sweep_config.refit or self.task != "regression" or mode != "squared" or k == len(net) - 1
                or last.activation != "identity"):
            return None
        return last

    def _least_squares(self, last) -> tuple[np.ndarray, np.ndarray]:
        """The least-squares weights of layer `last` on its inputs (a forward pass of the model
        with the current weights) over every training point, in the box a sweep of it would
        have (its current radius)."""
        from gdsolver.train.sweep import least_squares_layer

        got: list[torch.Tensor] = []
        module = self.model.get_submodule(last.location.get("module", last.name))
        handle = module.register_forward_hook(lambda m, inp, out: got.append(inp[0].detach()))
        try:
            with eval_mode(self.model), torch.no_grad():
                self.model(self.train_data.X)
        finally:
            handle.remove()
        F = got[-1].double().reshape(len(self.train_data.X), -1).numpy()
        Y = self.train_data.y.double().reshape(len(F), -1).numpy()
        return least_squares_layer(F, Y, W0=last.W, b0=last.b, radius=self._radius.get(last.name, self.radius),
                                   bias=last.has_bias)

    def _current_metrics(self) -> dict[str, Any]:
        """Train/val loss and accuracy of the current weights. Every history row is recorded
        after the weights it describes are in place (a rejected sweep restores them exactly),
        so the last row's figures are current; a forward pass only when there is none."""
        last = self.history.last
        if not self.history.rows or not self.history.is_kept(last) or last["train_loss"] is None:
            return self._metrics()  # e.g. the last row is a discarded restart's
        return {k: last[k] for k in ("train_loss", "train_acc", "val_loss", "val_acc")}

    def _watched(self, row: dict[str, Any]) -> float:
        """What the accept rule watches: the monitored loss, or accuracy (val, else train)."""
        if self.accept.accept_on == "loss":
            return self._monitored_loss(row)
        return row["val_acc"] if row["val_acc"] is not None else row["train_acc"]

    def _first_radius(self, net, name: str) -> float:
        """A layer's box half-width at its first sweep: the one set, or for "auto" train.config.auto_radius
        (a classification hidden layer: HIDDEN_RADIUS_FAN_IN / its fan-in)."""
        if not self._auto_radius:
            return self.sweep_config.radius
        k = net.layer_index(name)
        return auto_radius(self.task, net.layers[k].N, k < len(net.layers) - 1)

    def _adapt(self, name: str, *, grow: bool) -> None:
        """Grow a layer's box after a sweep that found nothing better, shrink it after a rejected one."""
        if not self.sweep_config.adapt_radius:
            return
        r0 = self._radius0[name]
        r = self._radius[name] * (2.0 if grow else 0.5)
        self._radius[name] = min(max(r, r0 / RADIUS_MAX_FACTOR), r0 * RADIUS_MAX_FACTOR)

    def _finish_sweep(self, base: dict[str, Any], *, accepted: bool, reason: str,
                      metrics: dict[str, Any] | None = None, **fields: Any) -> None:
        row = dict(base)
        row.update(fields)
        row.update(metrics if metrics is not None else self._current_metrics())
        row.update(accepted=accepted, reason=reason, elapsed_s=time.perf_counter() - self._t0)
        self._emit(self.history.add("sweep", **row))

    def _dump(self, n: int, files: list) -> None:
        if self.dump_dir is None:
            return
        from gdsolver.train.dump import write_sweep

        for suffix, inst, res in files:
            write_sweep(self.dump_dir, n, inst, res, suffix=suffix)


@dataclass
class _Cand:
    """One candidate of a sweep, through its stages."""

    spec: Candidate
    radius: float
    job: SweepJob | None = None
    skipped: str = ""  # why it could not be prepared
    build_time_s: float = 0.0
    before: float | None = None  # the solver's loss on its points, by a forward pass of the model
    outcome: SweepOutcome | None = None
    gain: float | None = None  # portfolio: what orders the candidates


SAMPLE = 256  # training points used to find the network's chain before GD starts
CHAIN_CHECK = 64  # ... and to check, before each sweep, that the chain read again is still the model's


def _settings_signature(init: Callable) -> inspect.Signature:
    """GDSolver.__init__'s signature with **settings spelled out: every field of the settings
    records as a keyword with its default (what help(), IDEs and make_trainer see)."""
    sig = inspect.signature(init)
    generated = [inspect.Parameter(keyword(f.name), inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                   annotation=f.type) for cls in config.SETTINGS for f in fields(cls)]
    names = {p.name for p in generated}
    own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD and p.name not in names]
    return sig.replace(parameters=own + generated)


GDSolver.__init__.__signature__ = _settings_signature(GDSolver.__init__)
