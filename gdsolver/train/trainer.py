"""Common machinery of every trainer, and the gradient-descent baselines.

`Trainer.fit(train, val)` seeds torch/numpy, limits torch to `threads` CPU threads,
checks the data against the model's outputs, runs the method (`_fit`), and returns a
`History`. It keeps every module's own train/eval flag: GD steps run with the flags the
modules had when `fit` started (a BatchNorm put in eval() stays frozen), and the flags are
restored when `fit` returns. `GDTrainer` is the paper's baselines: SGD or Adam, with or without an LR
schedule, for a number of epochs with optional early stopping on validation loss.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from gdsolver.compile.base import max_threads
from gdsolver.errors import GdsolverError
from gdsolver.extract.torch_frontend import eval_mode, resolve_output
from gdsolver.train.config import GD_DEFAULTS as GD
from gdsolver.train.config import positive_float, positive_int
from gdsolver.train.history import History
from gdsolver.train.loaders import check_loader, loader_batch
from gdsolver.train.optim import LR_SCHEDULES, OPTIMIZERS, make_optimizer, make_scheduler
from gdsolver.train.tensors import TensorData, as_tensor_data, check_targets, check_task

DEFAULT_LR = {"sgd": 0.05, "adam": 0.01, "lbfgs": 1.0}
RESTARTS_FILL = "fill"  # restarts=: as many initialisations as budget_s allows
# under budget_s the last epoch may be partial (it stops at the budget's end) if at least this share
# of its batches can run: a whole MNIST epoch (5-8 s) did not fit and 18 s of a 42 s budget went unused
PARTIAL_MIN = 0.1
EVAL_BATCH = 4096


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with `threads` intra-op threads, restoring the previous setting afterwards."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


_WARM = False


def warm_up() -> None:
    """Pay one-off lazy imports (torch's compiler stack, seconds, on the first optimizer built
    in a process; scipy.optimize for the sweeps) outside any timed region, so that the first method of a comparison
    is not charged for them. Touches no random state."""
    global _WARM
    if _WARM:
        return
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.0)
    (p * 1.0).sum().backward()
    opt.step()
    import scipy.optimize  # noqa: F401 - the convex sweeps' solvers: 1-2 s to import, once per process
    _WARM = True


@contextlib.contextmanager
def kept_modes(model: nn.Module) -> Iterator[list[tuple[nn.Module, bool]]]:
    """Yield the (module, flag) pairs GD should train with, and restore every module's own
    training flag on exit.

    The flags are those at entry: a submodule the user put in eval() (a frozen BatchNorm,
    a Dropout switched off) stays so during GD. A model that is in eval() as a whole
    (model.eval(), as after evaluating or loading it) trains as model.train() would, since
    GD with every Dropout and BatchNorm in eval mode is rarely what is meant; it still
    comes back in eval()."""
    before = [(m, m.training) for m in model.modules()]
    gd_flags = before if any(f for _, f in before) else [(m, True) for m, _ in before]
    try:
        yield gd_flags
    finally:
        for m, flag in before:
            m.training = flag


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


# one definition of the settings checks (gdsolver.train.config); the old names stay for callers
_positive_int = positive_int
_positive_float = positive_float


class Trainer:
    """Base class: data handling, evaluation, epoch records, dumps. Subclasses implement `_fit`."""

    method = "trainer"

    def __init__(self, model: nn.Module, task: str = "classification", *, epochs: int = GD.epochs,
                 batch_size: int = GD.batch_size, seed: int = GD.seed, threads: int | None = GD.threads,
                 dump_dir: str | os.PathLike | None = None, callback: Callable[[dict[str, Any]], None] | None = None,
                 output: Any = None, verbose: bool | int = False, restarts: int | str = GD.restarts,
                 budget_s: float | None = GD.budget_s) -> None:
        if not isinstance(model, nn.Module):
            raise GdsolverError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.task = check_task(task)
        self.epochs = _positive_int("epochs", epochs, allow_zero=True)
        self.batch_size = _positive_int("batch_size", batch_size)
        self.seed = _positive_int("seed", seed, allow_zero=True)
        self.threads = None if threads is None else _positive_int("threads", threads)
        if self.threads is not None and self.threads > max_threads():  # torch's thread pool would not start
            raise GdsolverError(f"threads: must be an integer from 1 to {max_threads()} (4 x the CPU cores available "
                                f"here), got {threads}")
        self.dump_dir = None if dump_dir is None else os.fspath(dump_dir)
        self.callback = callback
        self.verbose = verbose  # checked by the property setter
        # K initialisations (the model's own, then K-1 fresh ones), the best on validation kept
        # with budget_s: a wall-clock budget for fit(); no step starts that would overrun it
        self.budget_s = None if budget_s is None else _positive_float("budget_s", budget_s)
        if restarts == RESTARTS_FILL:
            if self.budget_s is None:
                raise GdsolverError(f"restarts: {RESTARTS_FILL!r} (as many as the time allows) needs budget_s")
            self.restarts: int | str = RESTARTS_FILL
        else:
            self.restarts = _positive_int("restarts", restarts)
        self.history = History(self.method)
        # which element of a tuple / dict model output holds the scores (see extract.select_output)
        self.output = output
        self._selected: Any = output  # output as resolved by the one output rule when fit starts
        self._loader: Any = None  # a DataLoader given as the training data
        # on_progress(event): ticks within a step ({"event": "batch"|"solve", ...}), e.g. for a UI
        self.on_progress: Callable[[dict[str, Any]], None] | None = None
        self._tail: str | None = None  # "Softmax" / "LogSoftmax" when the model ends in one
        self.train_data: TensorData | None = None
        self.val_data: TensorData | None = None
        self._t0 = 0.0
        self._epoch = 0
        self._phase = 1
        self._gen: torch.Generator | None = None
        self._gd_flags: list[tuple[nn.Module, bool]] = []
        self._progress = None
        self._epoch_cost = 0.0  # wall time of the last epoch, its evaluation included (the budget's estimate)
        # under budget_s: the optimizer and schedule of the GD phases, carried from one phase to the
        # next (GD continued, as the user's alternative would be); a restart starts them afresh
        self._carried = None
        self._phase_end: float | None = None  # perf_counter time a GD phase under budget_s must end by
        self._phase_cut = False  # the last GD phase was ended by the time, not by its epochs or its plateau
        self._metrics_cost = 0.0  # seconds of the last evaluation of the metrics
        self._partial: float | None = None  # the share of its batches the last epoch ran, when it was cut

    @property
    def verbose(self) -> int:
        """0: silent; 1: a line per epoch and per sweep; 2: a progress bar on a terminal or in a
        notebook (lines elsewhere), with a line per sweep. Printed to sys.stdout."""
        return self._verbose

    @verbose.setter
    def verbose(self, value: bool | int) -> None:
        from gdsolver.train.progress import check_verbose

        self._verbose = check_verbose(value)

    # ------------------------------------------------------------------ public API
    def config(self) -> dict[str, Any]:
        """The constructor settings, JSON-able (for run.json)."""
        skip = {"model", "callback", "history", "train_data", "val_data", "test_data", "output"}
        cfg = {k: v for k, v in vars(self).items()
               if not k.startswith("_") and k not in skip and isinstance(v, (int, float, str, bool, list, type(None)))}
        if self._loader is not None:  # GD used the loader's batches, not batch_size
            cfg.update(batch_size=self._loader.batch_size, data="DataLoader")
        return cfg

    def fit(self, train: Any, val: Any = None) -> History:
        """Train on `train` ((X, y) or a DataLoader), watching `val` for plateaus; return the history."""
        from gdsolver.train.dump import dump_run, write_run

        # a DataLoader is used as given: GD epochs iterate it (its batch size, its sampler, its
        # transforms); the sweeps and the evaluations read it through once (they need every point)
        self._loader = check_loader(train, "train")
        self.train_data = as_tensor_data(train, self.task, name="train", dtype=self._dtype())
        self.val_data = None if val is None else as_tensor_data(val, self.task, name="val", dtype=self._dtype())
        from gdsolver.train.progress import progress_for

        # the dump directory is locked for the whole run: a second run into it is refused
        with torch_threads(self.threads), kept_modes(self.model) as self._gd_flags, progress_for(self), \
                dump_run(self.dump_dir) as run:
            seed_everything(self.seed)
            self._gen = torch.Generator().manual_seed(self.seed)
            warm_up()  # lazy imports, once a process: not charged to a budget
            # budget_s counts from here: the model's checks and the sweeps' first extraction are the run's time
            # (5 ms of a 0.05 s digits budget, which every method had overrun by that much)
            self._t0 = time.perf_counter()
            # the one output rule (extract.torch_frontend.resolve_output): the sweeps' frontend picks alike
            self._selected = resolve_output(self.model, self.train_data.X[:64], self.output, name="train X")
            self._tail = self._find_tail()
            self._check_model_outputs()
            self.history = History(self.method)
            self._epoch, self._phase = 0, 1
            self._carried = None
            try:
                if self.restarts != 1 and self._restart_whole_fit:
                    self._with_restarts(self._fit)
                else:
                    self._fit()
            except RuntimeError as exc:  # torch: a learning rate beyond float range overflows in step()
                if "overflow" not in str(exc):
                    raise
                raise GdsolverError(f"training diverged: {str(exc).splitlines()[0]} at epoch {self._epoch + 1}; "
                                    "lower the learning rate") from None
            if run is not None:
                write_run(self, run)
        return self.history

    def evaluate(self, data: Any) -> dict[str, float | None]:
        """Loss (cross-entropy or MSE) and accuracy (classification) of the model on data."""
        d = data if isinstance(data, TensorData) else as_tensor_data(data, self.task, name="data", dtype=self._dtype())
        self._check_data(d)
        loss, acc = self._evaluate(d)
        return {"loss": loss, "acc": acc}

    # ------------------------------------------------------------------ restarts
    _restart_whole_fit = True  # GDSolver restarts only its first GD phase

    def _with_restarts(self, run: Callable[[], None]) -> None:
        """Run `run` from `restarts` initialisations: the model's own weights, then fresh ones
        (each module's reset_parameters under a seed of its own); keep the one with the best
        monitored loss (validation, else training). Every run's rows stay in the history with
        their `restart` number; `history.chosen_restart` says which was kept."""
        initial = copy.deepcopy(self.model.state_dict())
        best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        first = len(self.history.rows)
        fill = self.restarts == RESTARTS_FILL  # as many as the budget allows
        i = -1
        while True:
            i += 1
            if (not fill and i >= self.restarts) or (i > 0 and fill and self.time_left() <= self._epoch_cost):
                break
            if i == 0:
                self.model.load_state_dict(initial)
            else:
                self.reinitialise(i)
            self._carried = None
            self._epoch = 0
            self._restart = i
            start = len(self.history.rows)
            run()
            for row in self.history.rows[start:]:
                row["restart"] = i
            last = self.history.rows[-1] if len(self.history.rows) > start else self._metrics()
            score = self._monitored_loss(last)
            if best is None or score < best[0]:
                best = (score, i, copy.deepcopy(self.model.state_dict()))
        self.model.load_state_dict(best[2])
        self.history.chosen_restart = best[1]
        self._restart = best[1]
        # the epoch count continues from the chosen run's (its rows are the ones that describe the model)
        self._epoch = max((r["epoch"] or 0) for r in self.history.rows[first:] if r.get("restart") == best[1]) \
            if len(self.history.rows) > first else 0

    def reinitialise(self, i: int) -> None:
        """Fresh weights for restart i (each module's reset_parameters under a seed of its own),
        and a fresh optimizer for them."""
        self._carried = None
        torch.manual_seed(self.seed * 7919 + i)
        for m in self.model.modules():
            if hasattr(m, "reset_parameters") and callable(m.reset_parameters):
                m.reset_parameters()

    # ------------------------------------------------------------------ the time budget
    def time_left(self) -> float:
        """Seconds of budget_s left (inf without a budget)."""
        if self.budget_s is None:
            return math.inf
        return self.budget_s - (time.perf_counter() - self._t0)

    def _partial_deadline(self, opt) -> float | None:
        """Under budget_s, when a whole epoch no longer fits in the budget: the time a last, partial
        epoch must stop by (its evaluation kept in hand), or None when less than PARTIAL_MIN of an
        epoch's batches would run (or the optimizer takes one full-batch step an epoch: L-BFGS)."""
        if self.budget_s is None or isinstance(opt, torch.optim.LBFGS) or self._epoch_cost <= self.time_left():
            return None  # only the budget's end cuts an epoch short; a phase's share ends at an epoch
        gd = max(self._epoch_cost - self._metrics_cost, 0.0)
        room = self.time_left() - self._metrics_cost
        if room < PARTIAL_MIN * gd or room <= 0:
            return None
        return time.perf_counter() + room

    def _gd_step(self) -> float:
        """The least time a GD move can usefully run under budget_s: a whole epoch, or the part
        that a last, partial epoch needs (PARTIAL_MIN of its batches and its evaluation)."""
        if self.optimizer == "lbfgs":  # one full-batch step an epoch: nothing partial
            return self._epoch_cost
        gd = max(self._epoch_cost - self._metrics_cost, 0.0)
        return min(self._epoch_cost, self._metrics_cost + PARTIAL_MIN * gd)

    def _affords(self, cost: float) -> bool:
        """Whether a step expected to take `cost` seconds fits in what is left of the budget (and
        of the current phase's share of it, `_phase_end`, when one is set)."""
        left = self.time_left()
        if self._phase_end is not None:
            left = min(left, self._phase_end - time.perf_counter())
        return cost <= left

    # ------------------------------------------------------------------ for subclasses
    def _set_gd_options(self, optimizer: str, lr: float | None, lr_schedule: str | None, patience: int | None,
                        momentum: float, weight_decay: float) -> None:
        """Check and store the settings of the GD phases (GD baselines and GDSolver); lr None is
        the optimizer's usual default (sgd 0.05, adam 0.01, lbfgs 1)."""
        if optimizer not in OPTIMIZERS:
            raise GdsolverError(f"optimizer: {optimizer!r}, expected one of {list(OPTIMIZERS)}")
        if lr_schedule not in LR_SCHEDULES:
            raise GdsolverError(f"lr_schedule: {lr_schedule!r}, expected one of {list(LR_SCHEDULES)}")
        if optimizer == "lbfgs" and weight_decay:
            raise GdsolverError("weight_decay: not supported with optimizer 'lbfgs'")
        self.optimizer = optimizer
        self.lr = _positive_float("lr", DEFAULT_LR[optimizer] if lr is None else lr)
        self.lr_schedule = lr_schedule
        self.patience = None if patience is None else _positive_int("patience", patience)
        if self.restarts == RESTARTS_FILL and self.patience is None:
            raise GdsolverError(f"restarts: {RESTARTS_FILL!r} needs patience (each initialisation trains to its "
                                "plateau, then the next starts)")
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)

    def _fit(self) -> None:
        raise NotImplementedError

    def _dtype(self) -> torch.dtype:
        for p in self.model.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32

    def _find_tail(self) -> str | None:
        """A Softmax / LogSoftmax the classification model ends in (found by execution, as the
        sweeps do), so that the loss is computed on what it means; None for logits or when the
        model's end is not a dense layer."""
        if self.task != "classification":
            return None
        from gdsolver.extract.torch_frontend import network_from_torch

        try:
            return network_from_torch(self.model, self.train_data.X[:64], output=self._selected).tail.get("softmax")
        except GdsolverError:
            return None

    def _scores(self, out: Any) -> torch.Tensor:
        """The model's raw output as class scores / predictions: the selected output, and
        log-probabilities for a Softmax end (cross-entropy of those is the right loss)."""
        from gdsolver.extract.torch_frontend import select_output

        t = select_output(out, self._selected)
        if self._tail == "Softmax":
            t = torch.log(t.clamp_min(torch.finfo(t.dtype).tiny))
        return t

    def _n_outputs(self, x: torch.Tensor | None = None) -> int:
        x = self.train_data.X[:2] if x is None else x[:2]
        with eval_mode(self.model), torch.no_grad():
            out = self._scores(self.model(x))
        if out.dim() == 1:
            return 1
        if out.dim() != 2:
            raise GdsolverError(f"model output has shape {tuple(out.shape)}, expected (batch, outputs)")
        return int(out.shape[1])

    def _check_model_outputs(self) -> None:
        for d in (self.train_data, self.val_data):
            if d is not None:
                self._check_data(d)

    def _check_data(self, d: TensorData) -> None:
        """The model runs on d.X (else a clear error, not a torch traceback) and d.y fits its
        outputs; (T,) regression targets of a 1-output model become (T, 1) in place."""
        try:
            M = self._n_outputs(d.X)
        except GdsolverError:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise GdsolverError(f"model forward failed on {d.name} X of shape {tuple(d.X.shape)}: {first}") from None
        if self.task == "regression" and d.y.dim() == 1 and M == 1:
            d.y = d.y[:, None]  # (T,) targets for a (T, 1) output: avoid broadcasting (T, T)
        check_targets(d, self.task, M)

    def loss_fn(self, out: Any, y: torch.Tensor) -> torch.Tensor:
        """The training loss of a raw model output: cross-entropy or MSE."""
        return self._loss(self._scores(out), y)

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == "classification":
            return nn.functional.cross_entropy(out, y)
        return nn.functional.mse_loss(out, y)

    def _evaluate(self, d: TensorData) -> tuple[float, float | None]:
        total, correct = 0.0, 0
        with eval_mode(self.model), torch.no_grad():
            for s in range(0, len(d), EVAL_BATCH):
                out = self._scores(self.model(d.X[s:s + EVAL_BATCH]))
                y = d.y[s:s + EVAL_BATCH]
                total += float(self._loss(out, y)) * len(y)
                if self.task == "classification":
                    correct += int((out.argmax(1) == y).sum())
        acc = correct / len(d) if self.task == "classification" else None
        return total / len(d), acc

    def _metrics(self) -> dict[str, Any]:
        t = time.perf_counter()
        tl, ta = self._evaluate(self.train_data)
        vl, va = self._evaluate(self.val_data) if self.val_data is not None else (None, None)
        self._metrics_cost = time.perf_counter() - t  # what judging a step costs (a sweep keeps it in hand)
        return {"train_loss": tl, "train_acc": ta, "val_loss": vl, "val_acc": va}

    def _monitored_loss(self, row: dict[str, Any]) -> float:
        """Validation loss when there is validation data, else training loss."""
        return row["val_loss"] if row["val_loss"] is not None else row["train_loss"]

    def _tick(self, event: dict[str, Any]) -> None:
        """Progress within a step (a batch done, a solve still running) for the progress display
        and `on_progress`; unlike rows, ticks are not recorded. May be called from a thread."""
        if self._progress is not None:
            self._progress.tick(event)
        if self.on_progress is not None:
            self.on_progress(event)

    def _emit(self, row: dict[str, Any]) -> None:
        if self._progress is not None:
            self._progress.row(row)
        if self.callback is not None:
            self.callback(row)

    def _train_mode(self) -> None:
        """Training mode for GD steps: each module's flag as `fit` found it (see kept_modes)."""
        for m, flag in self._gd_flags:
            m.training = flag

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        d = self.train_data
        if self._loader is not None:  # the user's batches, as their DataLoader makes them
            for xb, yb in self._loader:
                yield loader_batch(xb, yb, d)
            return
        perm = torch.randperm(len(d), generator=self._gen)
        for s in range(0, len(d), self.batch_size):
            idx = perm[s:s + self.batch_size]
            yield d.X[idx], d.y[idx]

    def _n_batches(self) -> int | None:
        """Batches in one epoch (None when a DataLoader cannot say)."""
        if self._loader is not None:
            try:
                return len(self._loader)
            except TypeError:
                return None
        return -(-len(self.train_data) // self.batch_size)

    def _check_finite(self, loss: torch.Tensor, batch: int) -> None:
        if not torch.isfinite(loss):
            raise GdsolverError(f"training diverged: loss is {float(loss.detach())} at epoch {self._epoch + 1}, "
                                f"batch {batch}; lower the learning rate")

    def _gd_epoch(self, opt, deadline: float | None = None) -> float:
        """One pass of minibatch GD over the training data (L-BFGS: one full-batch step); returns
        its wall time. deadline (perf_counter): the pass stops after the batch that reaches it (a
        partial epoch at the end of budget_s)."""
        t = time.perf_counter()
        self._train_mode()
        if isinstance(opt, torch.optim.LBFGS):
            d = self.train_data

            def closure() -> torch.Tensor:
                opt.zero_grad(set_to_none=True)
                loss = self.loss_fn(self.model(d.X), d.y)
                self._check_finite(loss, 1)
                loss.backward()
                return loss

            opt.step(closure)
            return time.perf_counter() - t
        n_batches = self._n_batches()
        for i, (xb, yb) in enumerate(self._batches()):
            opt.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.model(xb), yb)
            self._check_finite(loss, i + 1)
            loss.backward()
            opt.step()
            if self._progress is not None or self.on_progress is not None:  # the bar moves inside an epoch
                self._tick({"event": "batch", "epoch": self._epoch + 1, "batch": i + 1, "batches": n_batches})
            if deadline is not None and time.perf_counter() >= deadline:
                self._partial = (i + 1) / n_batches
                break
        return time.perf_counter() - t

    def _record_epoch(self, gd_time: float, lr: float | None, **extra: Any) -> dict[str, Any]:
        self._epoch += 1
        row = self.history.add("epoch", phase=self._phase, epoch=self._epoch, lr=lr, gd_time_s=gd_time,
                               elapsed_s=time.perf_counter() - self._t0, **self._metrics(), **extra)
        for key in ("train_loss", "val_loss"):
            if row[key] is not None and not math.isfinite(row[key]):
                raise GdsolverError(f"training diverged: {key} is {row[key]} after epoch {self._epoch}; "
                                    "lower the learning rate")
        self._emit(row)
        return row

    def _gd_phase(self, epochs: int, lr: float) -> None:
        """Up to `epochs` GD epochs with a fresh optimizer (the settings of _set_gd_options, at
        learning rate `lr`); stop early after `patience` epochs without a new best monitored
        loss (validation loss when given)."""
        self._phase_cut = False  # whether the time (budget or the phase's share) ended it, not its epochs or plateau
        if epochs <= 0:
            return
        lr_schedule, patience = self.lr_schedule, self.patience
        if self._carried is not None:  # a time-aware run's next phase: the same optimizer goes on
            opt, sched = self._carried
        else:
            opt = make_optimizer(self.optimizer, self.model.parameters(), lr, self.momentum, self.weight_decay)
            sched = make_scheduler(lr_schedule, opt, epochs, stop_patience=patience)
            if self.budget_s is not None:
                self._carried = (opt, sched)
        best, since = math.inf, 0
        for i in range(epochs):
            # a phase's share of the budget may cut it after any epoch, but not before its first: a
            # phase of no epoch would be chosen again and again (the time-aware loop spun on it)
            deadline = None
            if not (self._affords(self._epoch_cost) if i else self._epoch_cost <= self.time_left()):
                self._phase_cut = True
                deadline = self._partial_deadline(opt)
                if deadline is None:
                    break
            t = time.perf_counter()
            lr_now = float(opt.param_groups[0]["lr"])
            self._partial = None
            gd_time = self._gd_epoch(opt, deadline)
            row = self._record_epoch(gd_time, lr_now, **({} if self._partial is None else {"partial": self._partial}))
            if self._partial is None:  # the estimate of an epoch's cost is of whole epochs
                self._epoch_cost = time.perf_counter() - t
            watched = self._monitored_loss(row)
            if sched is not None:
                sched.step(watched) if lr_schedule == "plateau" else sched.step()
            if watched < best - 1e-12:
                best, since = watched, 0
            else:
                since += 1
                if patience is not None and since >= patience:
                    break


class GDTrainer(Trainer):
    """The paper's baselines: SGD / Adam, with an optional LR schedule ("step", "plateau",
    "cosine"), for `epochs` epochs (early stopping when `patience` is set)."""

    method = "gd"

    def __init__(self, model: nn.Module, task: str = "classification", *, optimizer: str = GD.optimizer,
                 lr: float | None = GD.lr, lr_schedule: str | None = GD.lr_schedule, epochs: int = GD.epochs,
                 batch_size: int = GD.batch_size, patience: int | None = GD.patience, momentum: float = GD.momentum,
                 weight_decay: float = GD.weight_decay, seed: int = GD.seed, threads: int | None = GD.threads,
                 dump_dir: str | os.PathLike | None = None, callback: Callable[[dict[str, Any]], None] | None = None,
                 output: Any = None, verbose: bool | int = False, restarts: int | str = GD.restarts,
                 budget_s: float | None = GD.budget_s) -> None:
        super().__init__(model, task, epochs=epochs, batch_size=batch_size, seed=seed, threads=threads,
                         dump_dir=dump_dir, callback=callback, output=output, verbose=verbose, restarts=restarts,
                         budget_s=budget_s)
        self._set_gd_options(optimizer, lr, lr_schedule, patience, momentum, weight_decay)
        self.method = optimizer + ("-lrs" if lr_schedule else "")
        self.history = History(self.method)

    def _fit(self) -> None:
        self._gd_phase(self.epochs, self.lr)


def clone_model(model: nn.Module) -> nn.Module:
    """An independent copy (same initial weights) for a fair side-by-side comparison."""
    return copy.deepcopy(model)
