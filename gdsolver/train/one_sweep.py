"""One solver sweep of one dense layer of a torch model: `gdsolver.sweep(model, data, ...)`, and
the stages GDSolver's sweeps are made of (the trainer calls the same code).

A sweep is: the model's chain of dense layers (extract.network_from_torch, with the one output
rule), the instance of the layer's weights boxed around their current values (train.sweep
prepare_sweep), the one pipeline (gdsolver.pipeline.solve_sweep: solve, rounds, ir.verify, the
forward-pass check, the closest point), then the answer written into the model and judged by
forward passes: kept only when the solver's loss on its points strictly improves and the watched
loss does not worsen (train.sweep.decide_sweep); else the old weights are put back bit for bit.

`LayerSweep` holds the model side of those stages (prepare, the points' loss, write / restore,
decide) for the trainer and for `sweep`; `solve` runs the pipeline with progress ticks."""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gdsolver.errors import GdsolverError
from gdsolver.extract.layer_spec import layer_indices  # noqa: F401 - the trainer's import of it
from gdsolver.extract.torch_frontend import (OutputSelector, apply_to_torch, eval_mode, linear_params,
                                             network_from_torch, resolve_output, restore_params)
from gdsolver.pipeline import SolveSettings, SweepOutcome, solve_sweep
from gdsolver.train.sweep import Decision, SweepJob, decide_sweep, default_mode, prepare_sweep, sweep_loss

TICK_S = 0.5  # how often progress hears from a running solve
MIN_SOLVE_S = 0.05  # a MILP solve is started with this much at least (gdsolver.sweep: even past its limit)


def solve_floor(job: SweepJob) -> float:
    """The least time a solve of the job is started with under a deadline: a convex sweep from
    its arrays is anytime (L-BFGS-B and BVLS return their best point at the deadline), so any
    time at all; a solver's MILP or LP needs MIN_SOLVE_S (its start-up alone)."""
    return 0.0 if job.built is None and job.convex is not None else MIN_SOLVE_S


def block_units(at: int, block: int | None, net, k: int) -> np.ndarray | None:
    """The units of chain layer k a block sweep frees: `block` of them from unit `at` on, wrapping
    over the layer; None (the whole layer) without a block, for the last layer (no ReLU binaries
    of its own), or when the block covers the layer."""
    M = net.layers[k].M
    if block is None or block >= M or k == len(net.layers) - 1:
        return None
    return (at + np.arange(block)) % M


# ------------------------------------------------------------------ the model side of a sweep
class LayerSweep:
    """The model side of sweeping one network (`net`, found on `model`) on the data (X, y).

    outputs(X) -> float64 (T, M): what the sweeps' heads see, the model's scores (logits; for a
    Softmax end, log-probabilities: the same margins)."""

    def __init__(self, model: nn.Module, net, X: torch.Tensor, y: np.ndarray, *, task: str,
                 outputs: Callable[[torch.Tensor], np.ndarray]) -> None:
        self.model, self.net, self.X, self.y, self.task, self.outputs = model, net, X, np.asarray(y), task, outputs

    def prepare(self, k: int, *, radius: float, mode: str | None = None, margin: float | None = None,
                points: int | str | None = "auto", keep_correct: int = 0, seed: int = 0, H: np.ndarray | None = None,
                convex: str = "direct", units=None, tighten: float | None = None, lazy: bool = False) -> SweepJob:
        """The instance of sweeping chain layer k (train.sweep.prepare_sweep); units: only this
        block of its units free (a hidden layer); tighten: seconds of LP bounds before the MIP;
        lazy: a convex sweep's instance is built only when asked for (nothing to dump)."""
        return prepare_sweep(self.net, self.X.numpy(), self.y, task=self.task, layer=k, radius=radius,
                             mode=mode or default_mode(self.task), margin=margin, points=points,
                             keep_correct=keep_correct, seed=seed, H=H, convex=convex, units=units,
                             tighten=tighten, lazy=lazy)

    def points_loss(self, job: SweepJob) -> float:
        """The solver's loss on the job's points, by a forward pass of the model as it is now."""
        idx = job.all_points
        return sweep_loss(self.task, self.outputs(self.X[torch.as_tensor(idx)]), self.y[idx], job.margin, job.mode)

    def write(self, job: SweepJob, W: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Write (W, b) into the swept nn.Linear; returns the old parameters for restore."""
        layer = self.net.layers[job.layer]
        saved = linear_params(self.model, layer)
        apply_to_torch(self.model, W, b, layer)
        return saved

    def restore(self, job: SweepJob, saved: tuple[torch.Tensor, torch.Tensor | None]) -> None:
        restore_params(self.model, self.net.layers[job.layer], saved)


def solve(job: SweepJob, settings: SolveSettings, *, on_progress: Callable[[dict[str, Any]], None] | None = None,
          sweep: int | None = None) -> SweepOutcome:
    """The pipeline on the job's instance (gdsolver.pipeline.solve_sweep); a convex sweep prepared
    lazily is solved from its arrays (pipeline.solve_convex), its instance built only if that
    answer does not check out. With on_progress, it
    hears when the solve starts and every TICK_S seconds while it runs ({"event": "solve", "sweep", "layer",
    "elapsed_s", "time_limit"}, plus "incumbent", "bound", "gap", "nodes" once the backend's
    callbacks report them: HiGHS's MIP), from a thread: a bar keeps moving during a long solve."""
    from gdsolver.compile import progress
    from gdsolver.pipeline import direct_allowed, solve_convex

    def run() -> SweepOutcome:
        if job.built is None and job.convex is not None and direct_allowed(settings):
            t = time.perf_counter()
            outcome = solve_convex(job.convex, settings)
            if outcome is not None:
                job.from_arrays = True
                return outcome
            inst = job.instance  # built now: its solve gets what the direct solve and the build left
            if settings.time_limit is not None:
                left = settings.time_limit - (time.perf_counter() - t)
                return solve_sweep(inst, dataclasses.replace(settings, time_limit=max(left, MIN_SOLVE_S)))
        return solve_sweep(job.instance, settings)

    if on_progress is None:
        return run()
    stop = threading.Event()
    t0 = time.perf_counter()
    progress.reset()

    def tick() -> None:
        # once at the start (a direct solve of a small layer can end within a millisecond, before any
        # interval), then every TICK_S until the solve ends
        while True:
            try:
                figures = {k: v for k, v in progress.latest().items() if k != "at"}
                on_progress({"event": "solve", "sweep": sweep, "layer": job.layer_name,
                             "elapsed_s": time.perf_counter() - t0, "time_limit": settings.time_limit,
                             **figures})
            except Exception:  # a display must never break a solve
                return
            if stop.wait(TICK_S):
                return

    ticker = threading.Thread(target=tick, name="gdsolver-solve-progress", daemon=True)
    ticker.start()
    try:
        return run()
    finally:
        stop.set()
        ticker.join()


# ------------------------------------------------------------------ gdsolver.sweep
@dataclass
class SweepReport:
    """What `gdsolver.sweep` did. loss_* / acc_*: the model's loss (cross-entropy or MSE) and
    accuracy on the data given (and on val), by forward passes before and after; sweep_loss_*:
    the solver's own loss on its points. accepted: the answer is in the model (else the old
    weights are, bit for bit); reason says why. model: the swept model (the one given when
    inplace, else a copy)."""

    status: str
    accepted: bool
    reason: str
    layer: str
    layer_index: int
    head: str
    radius: float
    objective: float | None
    loss_before: float
    loss_after: float
    acc_before: float | None
    acc_after: float | None
    val_loss_before: float | None
    val_loss_after: float | None
    sweep_loss_before: float | None
    sweep_loss_after: float | None
    points: int
    n_vars: int
    n_cons: int
    n_binary: int
    build_time_s: float
    solver_time_s: float
    time_s: float
    instance_path: str | None = None
    model: nn.Module | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("model")
        return d

    def __str__(self) -> str:
        verdict = "accepted" if self.accepted else "rejected"
        acc = f", acc {self.acc_before:.4f} -> {self.acc_after:.4f}" if self.acc_before is not None else ""
        return (f"sweep of {self.layer!r} (radius {self.radius:g}, head {self.head}): {self.status}, {verdict}; "
                f"loss {self.loss_before:.6g} -> {self.loss_after:.6g}{acc} ({self.time_s:.1f} s): {self.reason}")


def _evaluator(model: nn.Module, task: str, output: OutputSelector, data: Any, val: Any):
    """A Trainer that only evaluates: the data checked against the model, the loss and accuracy
    as every trainer computes them, the selected output and a Softmax end handled alike."""
    from gdsolver.train.tensors import as_tensor_data
    from gdsolver.train.trainer import Trainer

    ev = Trainer(model, task, output=output)
    dtype = ev._dtype()
    ev.train_data = as_tensor_data(data, task, name="data", dtype=dtype)
    ev.val_data = None if val is None else as_tensor_data(val, task, name="val", dtype=dtype)
    ev._selected = resolve_output(model, ev.train_data.X[:64], output)
    ev._tail = ev._find_tail()
    ev._check_model_outputs()
    return ev


def sweep(model: nn.Module, data: Any, *, layer: int | str = "final", task: str = "classification",
          head: str | None = None, radius: float | None = None, time_limit: float | None = 30.0,
          inplace: bool = True, val: Any = None, output: OutputSelector = None, backend: str | None = None,
          points: int | str | None = "auto", margin: float | None = None, keep_correct: int = 0, seed: int = 0,
          tolerance: float = 0.0, threads: int | None = None, instance_path: str | Path | None = None,
          on_progress: Callable[[dict[str, Any]], None] | None = None, block: int | None = None,
          offset: int = 0) -> SweepReport:
    """Sweep one dense layer of a torch model once, verified, and report.

    data: (X, y) arrays / tensors or a DataLoader (read through once); val: the same, optional.
    layer: "final" (the last dense layer), a module name, or an index of the chain of dense layers
    (warns what it refers to). head: the sweep's loss (formulate heads; default the loss being
    trained: "ce" for classification, "squared" for regression). radius: box half-width around
    the current weights (default the task's recipe: classification 0.05, regression 1; a
    classification hidden layer HIDDEN_RADIUS_FAN_IN / its fan-in, train.config.auto_radius).
    block: a hidden layer's sweep frees only `block` of its units, from unit `offset` on (wrapping
    over the layer), their incoming weights; the rest stay as they are.
    time_limit: seconds for the whole sweep (extraction, build, solve, checks, the decision: the
    solve gets what the rest leaves). output: which element of a tuple / dict output holds
    the scores (default: the one output rule, extract.torch_frontend.resolve_output).
    The answer is kept when the solver's loss on its points strictly improves and the loss on val
    (else on data) does not rise by more than `tolerance` (relative), nor, with val, the loss on
    data; else the old weights are put back bit for bit. inplace=False sweeps a copy (report.model).
    instance_path: also write the solved instance there (.gdsm, for `gdsolver solve` / replay)."""
    from gdsolver.train.config import AcceptConfig, SweepConfig, auto_radius, positive_int
    from gdsolver.train.trainer import torch_threads

    from gdsolver.train.tensors import check_task

    t_start = time.perf_counter()
    task = check_task(task)
    if not isinstance(model, nn.Module):
        raise GdsolverError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    block = None if block is None else positive_int("block", block)
    offset = positive_int("offset", offset, allow_zero=True)
    if not inplace:
        model = copy.deepcopy(model)
    cfg = SweepConfig(radius="auto" if radius is None else radius, mode=head, time_limit=time_limit,
                      points=points, margin=margin, keep_correct=keep_correct,
                      **({} if backend is None else {"backend": backend})).for_task(task)
    accept = AcceptConfig(accept_on="loss", val_tolerance=tolerance, train_tolerance=tolerance if val is not None
                          else None)
    with torch_threads(threads):
        ev = _evaluator(model, task, output, data, val)
        X, y = ev.train_data.X, ev.train_data.y.numpy()
        t = time.perf_counter()
        before = ev._metrics()
        judging = time.perf_counter() - t  # the decision evaluates once more: kept in hand
        t = time.perf_counter()
        net = network_from_torch(model, X, output=ev._selected)
        k = layer_indices(net, layer, what="layer")
        if len(k) != 1:
            raise GdsolverError(f"layer: {layer!r} names {len(k)} layers; gdsolver.sweep sweeps one")
        k = k[0]

        def outputs(Xs: torch.Tensor) -> np.ndarray:
            with eval_mode(model), torch.no_grad():
                o = ev._scores(model(Xs))
            return o.double().reshape(len(Xs), -1).numpy()

        r = auto_radius(task, net.layers[k].N, k < len(net.layers) - 1) if radius is None else cfg.radius
        units = block_units(offset, block, net, k)
        ls = LayerSweep(model, net, X, y, task=task, outputs=outputs)
        job = ls.prepare(k, radius=r, units=units, mode=cfg.mode, margin=cfg.margin, points=cfg.points,
                         keep_correct=cfg.keep_correct, seed=seed, convex=cfg.convex, lazy=instance_path is None)
        build = time.perf_counter() - t
        loss_pts = ls.points_loss(job)
        settings = cfg.solve_settings(threads=threads)
        if time_limit is not None:  # everything before and after the solve counts against the limit
            # the decision's passes kept in hand at 1.5x their cost (MNIST under load: 1.0 s measured, 1.6 s taken)
            left = time_limit - (time.perf_counter() - t_start) - 1.5 * judging
            settings = dataclasses.replace(settings, time_limit=max(left, MIN_SOLVE_S))
        outcome = solve(job, settings, on_progress=on_progress)
        if instance_path is not None:
            from gdsolver.ir import save

            instance_path = str(save(outcome.instance or job.instance, instance_path))
        decision = _decide(ev, ls, job, outcome, accept, before, loss_pts, val is not None)
    return _report(job, k, outcome, decision, before, loss_pts, build, t_start, instance_path, model)


def _report(job: SweepJob, k: int, outcome: SweepOutcome, decision: Decision, before: dict[str, Any], loss_pts: float,
            build: float, t_start: float, instance_path: str | None, model: nn.Module) -> SweepReport:
    """gdsolver.sweep's report from its stages' figures."""
    after = decision.metrics if decision.accepted else before
    sizes = job.sizes()
    return SweepReport(status=outcome.status, accepted=decision.accepted, reason=decision.reason,
                       layer=job.layer_name, layer_index=k, head=job.mode, radius=job.radius,
                       objective=outcome.objective, loss_before=before["train_loss"], loss_after=after["train_loss"],
                       acc_before=before["train_acc"], acc_after=after["train_acc"],
                       val_loss_before=before["val_loss"], val_loss_after=after["val_loss"],
                       sweep_loss_before=loss_pts, sweep_loss_after=decision.loss_after, points=sizes["points"],
                       n_vars=sizes["n_vars"], n_cons=sizes["n_cons"], n_binary=sizes["n_binary"],
                       build_time_s=build, solver_time_s=outcome.solver_time_s,
                       time_s=time.perf_counter() - t_start, instance_path=instance_path, model=model)


def _decide(ev, ls: LayerSweep, job: SweepJob, outcome: SweepOutcome, accept, before: dict[str, Any],
            loss_pts: float, has_val: bool) -> Decision:
    """gdsolver.sweep's decision: a usable answer is written and kept or restored by decide_sweep,
    watching the loss on val (else on the data) as the evaluator `ev` computes it."""
    if not outcome.usable:
        return Decision(False, outcome.reason.lstrip("; ") or f"no usable answer ({outcome.status})", loss_pts,
                        loss_pts, False, None)

    def watched() -> tuple[float, dict[str, Any]]:
        m = ev._metrics()
        return ev._monitored_loss(m), m

    return decide_sweep(job, outcome, write=lambda W, b: ls.write(job, W, b),
                        restore=lambda saved: ls.restore(job, saved), points_loss=lambda: ls.points_loss(job),
                        watched=watched, watched_before=ev._monitored_loss(before), accept=accept,
                        loss_before=loss_pts, label="validation" if has_val else "data",
                        train_before=before["train_loss"])
