"""GDSolver (Algorithm 1 of Ashok et al.): GD until the validation loss plateaus, then a
solver sweep over the final layer's weights in a box around their current values;
repeat.

A sweep's answer is checked before it is used: the solution must pass `ir.verify`, and
after writing it into the model, the solver's own loss on its points, recomputed by a
forward pass of the model, must strictly improve, and the validation loss must not
worsen by more than `val_tolerance` (relative) -- or, with accept_on="accuracy"
(classification), the validation accuracy must not drop by more than `val_tolerance`.
Otherwise the old weights are put back bit for bit and the history says why. (The
authors' code accepted every answer.)

The solver's loss on its points: classification, the number of them not classified
correctly with half the margin (the solver places points exactly at the margin, which
float32 rounding can leave a hair short of); regression, the L1 error on them (mode
"l1"; "paper" mode is a feasibility problem over the same L1 per point).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from gdsolver.compile.registry import DEFAULT_BACKEND
from gdsolver.errors import GdsolverError
from gdsolver.extract.torch_frontend import apply_to_torch, eval_mode, from_torch
from gdsolver.formulate import correct_mask
from gdsolver.ir.instance import BINARY
from gdsolver.train.history import History
from gdsolver.train.sweep import build_sweep
from gdsolver.train.trainer import Trainer, _positive_float, _positive_int

ACCEPT_ON = ("loss", "accuracy")
RADIUS_MAX_FACTOR = 64.0  # adaptive radius stays within [r0 / 64, r0 * 64]
IMPROVE_RTOL = 1e-9


class GDSolver(Trainer):
    """Hybrid GD + MILP training.

    epochs: total GD epoch budget. phase_epochs: at most this many GD epochs before each
    sweep (None: until plateau or budget). max_sweeps: number of sweeps (0 = plain GD with
    early stopping). The run ends after `max_sweeps` sweeps, after an accepted sweep once the
    epoch budget is spent, or when the monitored loss (validation, else training) reaches
    `desired_loss`. A rejected sweep halves the radius for the next one, a sweep that
    improves nothing doubles it (adapt_radius=True; within [r/64, 64 r]).
    """

    method = "gdsolver"

    def __init__(self, model: nn.Module, task: str = "classification", *, optimizer: str = "sgd",
                 lr: float = 0.05, lr_schedule: str | None = None, epochs: int = 20, batch_size: int = 32,
                 patience: int | None = 2, max_sweeps: int = 2, phase_epochs: int | None = None,
                 phase_lrs: Sequence[float] | None = None, radius: float = 0.05, adapt_radius: bool = True,
                 solver_points: int | str | None = "auto", keep_correct: int = 0, mode: str | None = None,
                 margin: float | None = None, backend: str = DEFAULT_BACKEND, time_limit: float | None = 30.0,
                 mip_gap: float | None = None, closest: bool = True, skip_sweeps: bool = False,
                 accept_on: str = "loss",
                 val_tolerance: float = 0.01, desired_loss: float | None = None,
                 momentum: float = 0.0, weight_decay: float = 0.0, seed: int = 0, threads: int | None = 2,
                 dump_dir: str | os.PathLike | None = None,
                 callback: Callable[[dict[str, Any]], None] | None = None) -> None:
        super().__init__(model, task, epochs=epochs, batch_size=batch_size, seed=seed, threads=threads,
                         dump_dir=dump_dir, callback=callback)
        self._set_gd_options(optimizer, lr, lr_schedule, patience, momentum, weight_decay)
        from gdsolver.compile import SolveOptions
        from gdsolver.compile.registry import check_backend_name

        check_backend_name(backend)
        SolveOptions(time_limit=time_limit, mip_gap=mip_gap)  # validated now, not at the first sweep
        self.max_sweeps = _positive_int("max_sweeps", max_sweeps, allow_zero=True)
        self.phase_epochs = None if phase_epochs is None else _positive_int("phase_epochs", phase_epochs)
        self.phase_lrs = None if phase_lrs is None else [_positive_float("phase_lrs", v) for v in phase_lrs]
        self.radius = _positive_float("radius", radius)
        self.adapt_radius = bool(adapt_radius)
        # "auto": 32 misclassified points (paper) for classification; every training point for
        # regression, whose sweep is an LP (identity output) that is cheap even for all points
        self.solver_points = solver_points if solver_points in (None, "auto") else \
            _positive_int("solver_points", solver_points)
        self.keep_correct = _positive_int("keep_correct", keep_correct, allow_zero=True)
        if self.keep_correct and task == "regression":  # else every sweep would be SKIPPED for it
            raise GdsolverError("keep_correct: applies to classification only")
        self.mode = mode
        self.margin = margin
        self.backend = backend
        self.time_limit = time_limit
        self.mip_gap = mip_gap
        self.closest = bool(closest)
        # a control for benchmarks: the same GD phases and schedule, no solver
        self.skip_sweeps = bool(skip_sweeps)
        if not (val_tolerance >= 0):
            raise GdsolverError(f"val_tolerance: must be >= 0, got {val_tolerance}")
        self.val_tolerance = float(val_tolerance)
        if accept_on not in ACCEPT_ON or (accept_on == "accuracy" and task != "classification"):
            raise GdsolverError(f"accept_on: {accept_on!r}, expected 'loss'" +
                                (" or 'accuracy'" if task == "classification" else " (regression)"))
        self.accept_on = accept_on
        if desired_loss is not None:
            try:
                desired_loss = float(desired_loss)
            except (TypeError, ValueError):
                raise GdsolverError(f"desired_loss: must be a number, got {desired_loss!r}") from None
            if not (desired_loss >= 0):  # also refuses NaN, which no loss would ever reach
                raise GdsolverError(f"desired_loss: must be >= 0, got {desired_loss}")
        self.desired_loss = desired_loss
        self.history = History(self.method)

    @property
    def radii_used(self) -> list[float]:
        """The box half-width of every sweep so far (the history's radius column)."""
        return [r["radius"] for r in self.history.sweeps]

    @classmethod
    def two_loop(cls, model: nn.Module, task: str = "classification", *, epochs: int = 20,
                 lrs: Sequence[float] = (0.1, 0.05), **kwargs: Any) -> "GDSolver":
        """The paper's "2-loop GDSolver": at most epochs/2 GD epochs (SGD, patience 2), then a
        sweep on 32 misclassified points; twice. The authors' code used lr 0.1, then 0.05."""
        kwargs.setdefault("patience", 2)
        kwargs.setdefault("solver_points", 32)
        return cls(model, task, epochs=epochs, phase_epochs=max(1, epochs // 2), max_sweeps=2,
                   phase_lrs=list(lrs), lr=lrs[0], **kwargs)

    # ------------------------------------------------------------------ Algorithm 1
    def _fit(self) -> None:
        self._radius = self.radius
        self._sweep_no = 0
        if self.max_sweeps > 0:  # a model the sweeps cannot handle: say so now, not after GD
            try:
                from_torch(self.model, self.train_data.X[:2])
            except GdsolverError as exc:
                raise GdsolverError(f"GDSolver cannot sweep this model: {exc}") from None
        if self.max_sweeps == 0:
            self._run_gd(self.epochs)
            return
        while self._sweep_no < self.max_sweeps:
            budget = self.epochs - self._epoch
            self._run_gd(budget if self.phase_epochs is None else min(self.phase_epochs, budget))
            self._sweep()
            # With the epoch budget spent, another sweep still makes sense after a rejected or
            # unproductive one: the radius has changed and the sweep draws new points.
            if self._reached_goal() or (self._epoch >= self.epochs and self.history.last.get("accepted")):
                break
            self._phase += 1

    def _run_gd(self, epochs: int) -> None:
        lrs = self.phase_lrs
        lr = lrs[min(self._phase, len(lrs)) - 1] if lrs else self.lr
        self._gd_phase(epochs, lr)

    def _reached_goal(self) -> bool:
        if self.desired_loss is None or not self.history.rows:
            return False
        return self._monitored_loss(self.history.last) <= self.desired_loss

    # ------------------------------------------------------------------ one sweep
    def _sweep_loss(self, X: torch.Tensor, y: torch.Tensor, margin: float) -> float:
        """The solver's loss on its points, computed by the model (see module docstring)."""
        with eval_mode(self.model), torch.no_grad():
            o = self.model(X).double().numpy()
        if self.task == "classification":
            return float(np.count_nonzero(~correct_mask(o, y.numpy(), margin / 2)))
        Y = y.double().numpy().reshape(o.shape)
        return float(np.abs(o - Y).sum())

    def _points(self) -> int | None:
        if self.solver_points == "auto":
            return 32 if self.task == "classification" else None
        return self.solver_points

    def _sweep(self) -> None:
        from gdsolver.compile.registry import solve
        from gdsolver.ir.verify import verify

        self._sweep_no += 1
        if self.skip_sweeps:
            return
        k, radius = self._sweep_no, self._radius
        base = dict(phase=self._phase, epoch=self._epoch, sweep=k, radius=radius)
        t = time.perf_counter()
        X, y = self.train_data.X, self.train_data.y
        try:
            layer = from_torch(self.model, X)
            inst = build_sweep(layer, X.numpy(), y.numpy(), task=self.task, radius=radius, mode=self.mode,
                               margin=self.margin, points=self._points(), keep_correct=self.keep_correct,
                               seed=self.seed * 1000 + k)
        except GdsolverError as exc:  # e.g. no misclassified point left: nothing to do
            self._finish_sweep(base, status="SKIPPED", accepted=False, reason=str(exc),
                               build_time_s=time.perf_counter() - t)
            return
        build_time = time.perf_counter() - t
        # sizes straight from the arrays (inst.summary() would also compute big-M ranges)
        base.update(points=int(inst.meta["T"]) if "T" in inst.meta else None, n_vars=inst.num_vars,
                    n_cons=inst.num_rows + inst.num_indicators, n_binary=int(np.count_nonzero(inst.vtype == BINARY)),
                    build_time_s=build_time)
        margin = float(inst.meta.get("margin", 0.0))
        idx = torch.as_tensor(np.asarray(inst.meta["points"] + inst.meta["keep_points"], dtype=np.int64))
        Xp, yp = X[idx], y[idx]
        before = self._sweep_loss(Xp, yp, margin)
        t = time.perf_counter()
        try:
            res = solve(inst, backend=self.backend, time_limit=self.time_limit, threads=self.threads,
                        mip_gap=self.mip_gap)
        except GdsolverError as exc:  # licence limit, backend missing, ...: record, GD goes on
            self._dump(k, inst, None)
            self._finish_sweep(base, status="ERROR", accepted=False, reason=str(exc),
                               solver_time_s=time.perf_counter() - t, sweep_loss_before=before)
            return
        solver_time = time.perf_counter() - t
        self._dump(k, inst, res)
        base.update(status=res.status, objective=res.objective, solver_time_s=solver_time, sweep_loss_before=before)
        if not res.has_solution:
            why = f"no solution ({res.status})" + (f": {res.message}" if res.message else "")
            self._finish_sweep(base, accepted=False, reason=why)
            return
        report = verify(inst, res.x)
        if not report.ok:
            self._finish_sweep(base, accepted=False, reason=f"solution fails ir.verify: {report}")
            return
        x, note = self._closest(k, inst, res.x) if self.closest else (res.x, "")
        if res.status != "OPTIMAL" and res.message:  # e.g. "Time limit reached; best point found"
            note = f" [solver: {res.message}]" + note
        base["solver_time_s"] = time.perf_counter() - t
        self._try_weights(layer, inst.unpack(x), Xp, yp, margin, before, base, note)

    def _closest(self, k: int, inst, x: np.ndarray) -> tuple[np.ndarray, str]:
        """Among the weights that keep the MIP's decisions and objective, the nearest to the
        current ones (an LP; see gdsolver.ir.closest). Falls back to x if it fails."""
        from gdsolver.compile.registry import solve
        from gdsolver.ir.closest import closest_instance
        from gdsolver.ir.verify import verify

        w = np.concatenate([np.arange(o, o + int(np.prod(sh))) for b, (o, sh) in inst.blocks.items()
                            if b in ("w", "b")])
        moved = float(np.abs(x[w] - inst.start[w]).sum())
        try:
            ci = closest_instance(inst, x)
            res = solve(ci, backend=self.backend, time_limit=self.time_limit, threads=self.threads)
        except GdsolverError as exc:
            return x, f" (closest-point LP failed: {exc})"
        self._dump(k, ci, res, suffix="-closest")
        if not res.has_solution or not verify(inst, res.x[:inst.num_vars]).ok:
            return x, f" (closest-point LP gave no usable point: {res.status})"
        x2 = res.x[:inst.num_vars]
        return x2, f"; closest point moved the weights {float(np.abs(x2[w] - inst.start[w]).sum()):.4g} (L1) " \
                   f"instead of {moved:.4g}"

    def _try_weights(self, layer, blocks: dict[str, np.ndarray], Xp: torch.Tensor, yp: torch.Tensor,
                     margin: float, before: float, base: dict[str, Any], note: str = "") -> None:
        linear = self.model.get_submodule(layer.location["module"])
        old_w = linear.weight.detach().clone()
        old_b = None if linear.bias is None else linear.bias.detach().clone()
        val_before = self._watched(self._current_metrics())
        apply_to_torch(self.model, blocks["w"], blocks["b"], layer)
        after = self._sweep_loss(Xp, yp, margin)
        metrics = self._metrics()
        val_after = self._watched(metrics)
        improved = after < before - IMPROVE_RTOL * max(1.0, abs(before))
        if self.accept_on == "loss":
            val_ok = val_after <= val_before + self.val_tolerance * abs(val_before)
            tol = f"tolerance {self.val_tolerance:g} relative"
        else:
            val_ok = val_after >= val_before - self.val_tolerance
            tol = f"tolerance {self.val_tolerance:g} absolute"
        what = ("validation " if self.val_data is not None else "training ") + self.accept_on
        if improved and val_ok:
            reason = (f"solver loss on its points {before:g} -> {after:g}; {what} {val_before:.6g} -> "
                      f"{val_after:.6g}{note}")
            self._finish_sweep(base, accepted=True, reason=reason, sweep_loss_after=after, metrics=metrics)
            return
        with torch.no_grad():  # put the old weights back exactly
            linear.weight.copy_(old_w)
            if old_b is not None:
                linear.bias.copy_(old_b)
        if not improved:
            reason = f"no improvement: solver loss on its points {before:g} -> {after:g}{note}"
            self._adapt(grow=True)
        else:
            reason = f"{what} would worsen {val_before:.6g} -> {val_after:.6g} ({tol}){note}"
            self._adapt(grow=False)
        self._finish_sweep(base, accepted=False, reason=reason, sweep_loss_after=after)

    def _current_metrics(self) -> dict[str, Any]:
        """Train/val loss and accuracy of the current weights. Every history row is recorded
        after the weights it describes are in place (a rejected sweep restores them exactly),
        so the last row's figures are current; a forward pass only when there is none."""
        if not self.history.rows:
            return self._metrics()
        return {k: self.history.last[k] for k in ("train_loss", "train_acc", "val_loss", "val_acc")}

    def _watched(self, row: dict[str, Any]) -> float:
        """What the accept rule watches: the monitored loss, or accuracy (val, else train)."""
        if self.accept_on == "loss":
            return self._monitored_loss(row)
        return row["val_acc"] if row["val_acc"] is not None else row["train_acc"]

    def _adapt(self, *, grow: bool) -> None:
        """Grow the box after a sweep that found nothing better, shrink it after a rejected one."""
        if not self.adapt_radius:
            return
        r = self._radius * (2.0 if grow else 0.5)
        self._radius = min(max(r, self.radius / RADIUS_MAX_FACTOR), self.radius * RADIUS_MAX_FACTOR)

    def _finish_sweep(self, base: dict[str, Any], *, accepted: bool, reason: str,
                      metrics: dict[str, Any] | None = None, **fields: Any) -> None:
        row = dict(base)
        row.update(fields)
        row.update(metrics if metrics is not None else self._current_metrics())
        row.update(accepted=accepted, reason=reason, elapsed_s=time.perf_counter() - self._t0)
        self._emit(self.history.add("sweep", **row))

    def _dump(self, k: int, inst, res, suffix: str = "") -> None:
        if self.dump_dir is None:
            return
        from gdsolver.train.dump import write_sweep

        write_sweep(self.dump_dir, k, inst, res, suffix=suffix)

