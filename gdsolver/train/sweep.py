"""A solver sweep in three pure stages, so the middle one can run anywhere:

1. `prepare_sweep` (model side: needs the network and the data): the inputs of layer k for
   every training point, the points to formulate (paper: 32 misclassified ones), the
   instance, and where everything came from -> a `SweepJob` (plain, picklable);
2. the one sweep pipeline, `gdsolver.pipeline.solve_sweep` (numpy and a solver only: no torch,
   no trainer): solve, refinement rounds, `ir.verify`, the forward-pass check of the claims,
   the closest point -> a `SweepOutcome`;
3. `decide_sweep` (model side): write the new weights into the model, recompute the
   solver's loss on its points by a forward pass, accept or restore bit for bit.
The trainer keeps the history, the dumps and the timing around them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gdsolver.errors import GdsolverError
from gdsolver.formulate import check_labels, correct_mask, sweep_instance
from gdsolver.formulate.head_table import DEFAULT_MARGIN, HEADS, head_for
from gdsolver.compile.convex import ConvexSweep, is_convex_sweep
from gdsolver.ir.instance import BINARY, MilpInstance
from gdsolver.pipeline import SweepOutcome

# the "auto" points by name (the help texts quote them); the heads' table holds them and says why
DEFAULT_POINTS = HEADS["classification", "paper"].points.lp  # misclassified points of a counting head (the paper's)
DEFAULT_CE_POINTS = HEADS["classification", "ce"].points.lp  # a seeded sample for the "ce" head's LP
DEFAULT_MIP_POINTS = HEADS["regression", "squared"].points.mip  # regression points with ReLU binaries
DEFAULT_DIRECT_POINTS = HEADS["classification", "ce"].points.direct  # "ce" solved directly: all, up to this


def select_points(task: str, o0: np.ndarray, y: np.ndarray, *, points: int | None, keep_correct: int,
                  margin: float, seed: int, mode: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into the data) of the points to formulate, and of those that must stay
    correct. Counting heads: up to `points` misclassified (seeded choice) plus up to
    `keep_correct` correct ones. Regression and the "ce" head (a loss over every point):
    all points, or a seeded sample of `points`."""
    if seed < 0:
        raise GdsolverError(f"seed: must be >= 0, got {seed}")
    rng = np.random.default_rng(seed)
    T = len(y)
    if points is not None and points < 1:
        raise GdsolverError(f"points: must be >= 1, got {points}")
    if keep_correct < 0:
        raise GdsolverError(f"keep_correct: must be >= 0, got {keep_correct}")
    head = head_for(task, mode)
    if not head.points.misclassified:
        if keep_correct:
            raise GdsolverError("keep_correct applies to the counting heads only")
        if points is None or points >= T:
            return np.arange(T), np.zeros(0, np.int64)
        return np.sort(rng.choice(T, size=points, replace=False)), np.zeros(0, np.int64)
    ok = correct_mask(o0, y, margin)
    wrong, right = np.flatnonzero(~ok), np.flatnonzero(ok)
    if len(wrong) == 0:
        raise GdsolverError(f"no misclassified points among the {T} given (margin {margin}): nothing for a sweep "
                            "to improve")
    k = min(points or head.points.lp, len(wrong))
    pick = np.sort(rng.choice(wrong, size=k, replace=False))
    keep = np.sort(rng.choice(right, size=min(keep_correct, len(right)), replace=False)) if keep_correct else \
        np.zeros(0, np.int64)
    return pick, keep


def default_points(task: str, network, k: int, mode: str | None = None, convex: str = "direct") -> int | None:
    """"auto" points, from the head's row of the table (gdsolver.formulate.head_table): 32
    misclassified for the counting heads (the paper's choice); for a loss over every point, a
    seeded sample: regression every point when the sweep is an LP (nothing from layer k on is a
    ReLU), else 50 (one ReLU binary per point and unit); "ce" 256 (its tangent rounds are LPs
    with a row per point per round), 32 with ReLU binaries, and up to 4096 when the pipeline
    solves it directly (the last layer, identity output)."""
    points = head_for(task, mode).points
    lp = all(la.activation == "identity" for la in network.layers[k:])
    if points.direct is not None and lp and convex == "direct" and k == len(network.layers) - 1:
        return points.direct
    return points.lp if lp else points.mip


@dataclass
class SweepJob:
    """A prepared sweep: everything the run stage needs, and what the decide stage checks.

    A convex sweep of the last layer (`convex`: its arrays, compile.convex.ConvexSweep) may be
    prepared lazily: its instance is built only when asked for (`instance`: a dump, a solver
    named, an answer that did not check out); `built` is None until then."""

    layer: int  # index in the network's chain
    layer_name: str
    built: MilpInstance | None
    points: np.ndarray  # data indices formulated (then keep_points)
    keep_points: np.ndarray
    radius: float
    seed: int
    build_time_s: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)  # mode, margin (and units of a block sweep)
    convex: ConvexSweep | None = None
    builder: Callable[[], MilpInstance] | None = field(default=None, repr=False)
    from_arrays: bool = False  # solved from `convex` (train.one_sweep.solve), whether built since or not

    @property
    def instance(self) -> MilpInstance:
        if self.built is None:
            assert self.builder is not None
            self.built, self.builder = self.builder(), None
        return self.built

    @property
    def all_points(self) -> np.ndarray:
        return np.concatenate([self.points, self.keep_points]).astype(np.int64)

    @property
    def mode(self) -> str:
        return str(self.meta["mode"])

    @property
    def margin(self) -> float:
        return float(self.meta.get("margin", 0.0))

    def sizes(self) -> dict[str, int]:
        """points, n_vars, n_cons, n_binary of what is solved: a convex sweep not built is its
        [W | b] in a box (no rows, no binaries)."""
        if self.convex is not None and (self.from_arrays or self.built is None):
            M, N = self.convex.shape
            return {"points": len(self.convex.H), "n_vars": M * (N + 1), "n_cons": 0, "n_binary": 0}
        inst = self.instance
        return {"points": int(inst.meta.get("T", len(self.all_points))), "n_vars": inst.num_vars,
                "n_cons": inst.num_rows + inst.num_indicators,
                "n_binary": int(np.count_nonzero(inst.vtype == BINARY))}


def prepare_sweep(network, X: Any, y: np.ndarray, *, task: str, layer: int | str = -1, radius: float,
                  mode: str | None = None, margin: float | None = None, points: int | str | None = "auto",
                  keep_correct: int = 0, seed: int = 0, H: np.ndarray | None = None,
                  convex: str = "direct", units=None, tighten: float | None = None, lazy: bool = False) -> SweepJob:
    """The job of sweeping dense layer `layer` of `network` (gdsolver.extract.Network) on (X, y).
    lazy: a convex sweep (SweepJob.convex) builds its instance only when asked for it.

    H (inputs of that layer for every point of X) may be passed when already computed.
    units: a block sweep of a hidden layer, only these units free (formulate.sweep_instance)."""
    t0 = time.perf_counter()
    if task not in ("regression", "classification"):
        raise GdsolverError(f"task: {task!r}, expected 'regression' or 'classification'")
    mode = mode or default_mode(task)
    k = network.layer_index(layer)
    y = np.asarray(y)
    n_inputs = len(X) if H is None else len(H)
    if n_inputs != len(y):
        raise GdsolverError(f"y: {len(y)} targets for {n_inputs} inputs in X")
    if task == "classification":
        y = check_labels(y, network.layers[-1].M, name="y")
    margin = DEFAULT_MARGIN[task] if margin is None else float(margin)
    if points == "auto":
        points = default_points(task, network, k, mode, convex)
    if H is None and not head_for(task, mode).points.misclassified:
        # a loss over a seeded sample: the layer's inputs of the sampled points only (the features of
        # all 55,000 MNIST points through 784-256-128 were most of a head sweep's build)
        pick, keep = select_points(task, None, y, points=points, keep_correct=keep_correct, margin=margin,
                                   seed=seed, mode=mode)
        idx = np.concatenate([pick, keep])
        Hi = network.features(X[idx] if len(idx) < len(y) else X, k)
    else:
        H = network.features(X, k) if H is None else np.asarray(H, np.float64)
        # only a pick among the misclassified points needs every point's outputs
        o0 = network.forward(H, start=k) if head_for(task, mode).points.misclassified else None
        pick, keep = select_points(task, o0, y, points=points, keep_correct=keep_correct, margin=margin, seed=seed,
                                   mode=mode)
        idx = np.concatenate([pick, keep])
        Hi = H[idx]
    fix_bias = not network.layers[k].has_bias  # a bias-free layer cannot take a new b
    la = network.layers[k]

    def build() -> MilpInstance:
        inst = sweep_instance(network.layers, k, Hi, y[idx], task=task, radius=radius, mode=mode, margin=margin,
                              keep_correct=np.arange(len(pick), len(idx)) if len(keep) else None,
                              fix_bias=fix_bias, units=units, tighten=tighten)
        inst.meta.update(task=task, points=[int(i) for i in pick], keep_points=[int(i) for i in keep],
                         data_points=int(len(y)), seed=seed)
        # JSON-able by contract: where the swept layer lives, to write the answer back
        inst.meta["layer"].update(source=network.source, location=dict(la.location))
        inst.meta["tail"] = {k2: v for k2, v in network.tail.items()
                             if isinstance(v, (str, int, float, list, type(None)))}
        return inst

    problem = _convex_problem(network, k, Hi, y[idx], mode, radius, fix_bias) \
        if lazy and convex == "direct" and units is None and tighten is None else None
    if problem is None:
        inst = build()
        meta = {key: inst.meta[key] for key in ("mode", "margin", "units") if key in inst.meta}
        return SweepJob(k, la.name, inst, pick, keep, float(radius), seed, time.perf_counter() - t0, meta)
    meta = {"mode": head_for(task, mode).mode, "margin": margin}
    return SweepJob(k, la.name, None, pick, keep, float(radius), seed, time.perf_counter() - t0, meta, problem,
                    build)


def _convex_problem(network, k: int, H: np.ndarray, y: np.ndarray, mode: str, radius: float,
                    fix_bias: bool) -> ConvexSweep | None:
    """The arrays of a sweep of layer k when it is a convex one (the last layer, identity output,
    the "squared" or "ce" head; finite inputs and radius), else None (the instance is built)."""
    la = network.layers[k]
    if not is_convex_sweep(mode, last=k == len(network.layers) - 1, activation=la.activation) \
            or not (np.isfinite(radius) and radius > 0) or not np.isfinite(H).all() or len(H) == 0:
        return None
    W0 = np.hstack([la.W, la.b.reshape(-1, 1)]).astype(np.float64)
    r = np.full_like(W0, float(radius))
    r[:, -1] = 0.0 if fix_bias else float(radius)
    if mode == "squared":
        y = np.asarray(y, np.float64)
        if not np.isfinite(y).all():
            return None
    return ConvexSweep(mode, H, y, W0 - r, W0 + r, W0)


@dataclass
class Decision:
    accepted: bool
    reason: str
    loss_before: float
    loss_after: float
    improved: bool  # the solver's loss on its points strictly improved
    metrics: dict[str, Any] | None  # the model's metrics with the new weights (when accepted)


IMPROVE_RTOL = 1e-9
# a float32 forward pass against the float64 loss of an answer from arrays, relative to the loss summed over
# the sweep's points (thousands): their rounding errors add up like sqrt(points), the loss like points
FORWARD_RTOL = 1e-4


def sweep_loss(task: str, o: np.ndarray, y: np.ndarray, margin: float, mode: str | None = None) -> float:
    """The loss a sweep's head optimises, on its points, from the model's outputs (logits):
    "paper"/"compact" (count), the points not correct by half the margin (the solver places
    points exactly at the margin, which float32 rounding can leave a hair short of); "ce", the
    summed cross-entropy; "count+ce", that count plus CE / (1 + CE), which orders answers by the
    count first and the cross-entropy second (the fraction is below 1); regression "l1" / "paper",
    the L1 error; "squared", the squared error."""
    from gdsolver.formulate.heads import cross_entropy

    if task == "classification":
        wrong = float(np.count_nonzero(~correct_mask(o, y, margin / 2)))
        if mode in ("ce", "count+ce"):
            ce = float(cross_entropy(o, y).sum())
            return ce if mode == "ce" else wrong + ce / (1.0 + ce)
        return wrong
    r = o - y.reshape(o.shape)
    return float((r ** 2).sum()) if mode == "squared" else float(np.abs(r).sum())


def least_squares_layer(F: np.ndarray, Y: np.ndarray, *, W0: np.ndarray, b0: np.ndarray, radius: float,
                        bias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(W (M, N), b (M,)) minimising sum ||W f + b - y||^2 over the rows f of F (T, N) and y of
    Y (T, M), within `radius` of (W0, b0) entry by entry (the box a sweep of that layer would
    have; b stays b0 without a bias): the refit of an identity output layer on its features.
    Bounded least squares (compile.convex.bounded_least_squares: BVLS, one output at a time).
    Unbounded, a feature column that is nearly dependent (a ReLU active on a handful of points)
    would get an enormous weight that fits those points and ruins every other."""
    from gdsolver.compile.convex import bounded_least_squares

    F = np.asarray(F, np.float64)
    Y = np.asarray(Y, np.float64).reshape(len(F), -1)
    W0 = np.asarray(W0, np.float64).reshape(Y.shape[1], F.shape[1])
    V0 = np.hstack([W0, np.asarray(b0, np.float64).reshape(Y.shape[1], 1)])
    r = np.full_like(V0, float(radius))
    r[:, -1] = float(radius) if bias else 0.0  # no bias: b stays b0 (a pinned entry of the box)
    V, _, _ = bounded_least_squares(F, Y, V0 - r, V0 + r, V0)
    return V[:, :-1], V[:, -1]


def default_mode(task: str) -> str:
    """The head a sweep uses unless told otherwise: the loss being trained (formulate.DEFAULT_MODE)."""
    from gdsolver.formulate.sweep import DEFAULT_MODE

    return DEFAULT_MODE[task]


def decide_sweep(job: SweepJob, outcome: SweepOutcome, *, write: Callable[[np.ndarray, np.ndarray], Any],
                 restore: Callable[[Any], None], points_loss: Callable[[], float],
                 watched: Callable[[], tuple[float, dict[str, Any]]], watched_before: float, accept,
                 loss_before: float, label: str = "validation",
                 loss_label: str = "solver loss on its points", train_before: float | None = None) -> Decision:
    """Write the answer (write(W, b) returns what restore needs), recompute the solver's loss on
    its points (points_loss) and the watched figure (watched -> (value, metrics); `label` says
    whose, e.g. "validation"), then keep it or put the old weights back. accept: an AcceptConfig.
    loss_label names what points_loss measures (a refit sweep: the training loss after the refit).
    train_before: the loss on every training point before; with accept.train_tolerance set, the
    answer (fitted on a sample of them) is kept only if that loss does not rise beyond it."""
    from gdsolver.formulate.claims import swept_weights

    if outcome.weights is not None:  # solved from its arrays: the layer's (W, b)
        saved = write(*outcome.weights)
    else:
        saved = write(*swept_weights(outcome.instance or job.instance, outcome.x))  # a block's units in the layer
    after = points_loss()
    if outcome.weights is not None and outcome.true_loss is not None \
            and abs(after - outcome.true_loss) > FORWARD_RTOL * max(1.0, abs(outcome.true_loss)):
        # nothing else checked this answer: the model's forward pass must give the solver's loss
        restore(saved)
        return Decision(False, f"the forward pass gives {loss_label} {after:.9g}, the solver claimed "
                               f"{outcome.true_loss:.9g}{outcome.reason}", loss_before, after, False, None)
    improved = after < loss_before - IMPROVE_RTOL * max(1.0, abs(loss_before))
    if not improved:  # no forward pass over the watched data for an answer that is refused anyway (a CNN's took
        restore(saved)  # 13-17 s on 60,000 MNIST images, on a sweep's clock)
        return Decision(False, f"no improvement: {loss_label} {loss_before:g} -> {after:g}{outcome.reason}",
                        loss_before, after, False, None)
    value, metrics = watched()
    if accept.accept_on == "loss":
        ok = value <= watched_before + accept.val_tolerance * abs(watched_before)
        tol = f"tolerance {accept.val_tolerance:g} relative"
    else:
        ok = value >= watched_before - accept.val_tolerance
        tol = f"tolerance {accept.val_tolerance:g} absolute"
    what = f"{label} {accept.accept_on}"
    train_after = metrics.get("train_loss") if metrics else None
    train_ok = (accept.train_tolerance is None or train_before is None or train_after is None
                or train_after <= train_before + accept.train_tolerance * abs(train_before))
    if ok and not train_ok:
        restore(saved)
        return Decision(False, f"training loss on every point would rise {train_before:.6g} -> {train_after:.6g} "
                               f"(tolerance {accept.train_tolerance:g} relative){outcome.reason}", loss_before, after,
                        improved, None)
    if ok:
        return Decision(True, f"{loss_label} {loss_before:g} -> {after:g}; {what} {watched_before:.6g} "
                              f"-> {value:.6g}{outcome.reason}", loss_before, after, True, metrics)
    restore(saved)
    reason = f"{what} would worsen {watched_before:.6g} -> {value:.6g} ({tol}){outcome.reason}"
    return Decision(False, reason, loss_before, after, improved, None)
