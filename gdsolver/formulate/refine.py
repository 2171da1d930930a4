"""Rounds of a smooth head: rebuild a sweep instance from the data it carries, with the tangents
at the last answer added (squared: at its residuals; ce: at its logits), started from that
answer. For "count+ce" the first rebuild turns the count answer into the ce stage: the points
it made correct stay correct (their c fixed) and the cross-entropy surrogate is minimised.

Kelley's cutting-plane method: the surrogate is an outer approximation, so each round's
objective is a lower bound of the true loss at its answer and the bound rises round by round;
with an identity output it converges to the convex problem's optimum (for "squared": the
box-constrained least-squares fit).
"""

from __future__ import annotations

import numpy as np

from gdsolver.formulate.claims import network_of, outputs
from gdsolver.formulate.heads import cross_entropy
from gdsolver.formulate.head_table import SMOOTH_MODES
from gdsolver.formulate.sweep import sweep_instance
from gdsolver.formulate.tighten import bounds_of
from gdsolver.ir.instance import MilpInstance

# meta entries that describe where the instance came from, carried over to every round
_PROVENANCE = ("layer", "tail", "points", "keep_points", "task", "seed", "data_points", "model", "data", "source")


def is_smooth(inst: MilpInstance) -> bool:
    return inst.meta.get("mode") in SMOOTH_MODES


def needs_stage_two(inst: MilpInstance) -> bool:
    """A count+ce instance still at its count stage."""
    return inst.meta.get("mode") == "count+ce" and inst.meta.get("stage") == "count"


def true_loss(inst: MilpInstance, x: np.ndarray) -> float:
    """The loss the smooth head approximates, at x, by a float64 forward pass: the sum of squared
    errors ("squared") or of cross-entropies ("ce", "count+ce")."""
    o = outputs(inst, x)
    y = inst.data["y"]
    if inst.meta.get("mode") == "squared":
        return float(((o - y.reshape(o.shape)) ** 2).sum())
    return float(cross_entropy(o, y.astype(np.int64)).sum())


def gap(inst: MilpInstance, x: np.ndarray, objective: float) -> float:
    """Relative distance of the surrogate objective below the true loss at x."""
    true = true_loss(inst, x)
    return (true - objective) / max(1.0, abs(true))


def start_point(inst: MilpInstance) -> np.ndarray:
    """The instance's MIP start (the current weights and what they imply): a feasible point."""
    return np.asarray(inst.start, np.float64)


def refine(inst: MilpInstance, x: np.ndarray, *, centre: np.ndarray | None = None,
           trust: float | None = None) -> MilpInstance:
    """The next round's instance (see the module docstring), with the tangents at x added.

    centre (a solution vector, default x) is where the round starts; trust > 0 keeps the swept
    weights within that distance of the centre's (a trust region inside the box: Kelley's cuts
    alone jump between the box's corners; near the best point so far they converge)."""
    layers, k = network_of(inst)
    meta, data = inst.meta, inst.data
    blocks = inst.unpack(x)
    at = inst.unpack(x if centre is None else centre)
    o = outputs(inst, x)
    mode = meta["mode"]
    correct = data.get("correct")
    anchors = data.get("anchors")
    if mode == "squared":
        new = (o - data["y"].reshape(o.shape))[:, :, None]
        anchors = new if anchors is None else np.concatenate([anchors, new], axis=2)
    elif needs_stage_two(inst):
        correct = np.round(blocks["c"])
        anchors = o[:, None, :]
    else:
        new = o[:, None, :]
        anchors = new if anchors is None else np.concatenate([anchors, new], axis=1)
    keep = data.get("keep")
    nxt = sweep_instance(layers, 0, data["H"], data["y"], task=meta["formulation"], radius=meta["radius"],
                         mode=mode, margin=meta["margin"], keep_correct=keep, fix_bias=not meta.get("box_bias", True),
                         anchors=anchors, correct=correct, start_at=(at["w"], at["b"]), units=meta.get("units"),
                         bounds=bounds_of(data))
    nxt.meta.update({key: meta[key] for key in _PROVENANCE if key in meta})
    nxt.meta["network"] = meta["network"]
    nxt.meta["round"] = int(meta.get("round", 0)) + 1
    if nxt.start is not None and "e" in nxt.blocks:
        # the centre with e at the true loss satisfies every tangent: a feasible start
        nxt.start = _start_with_exact_e(nxt, outputs(inst, x if centre is None else centre), mode)
    if trust is not None:
        for name in ("w", "b"):
            off, shape = nxt.blocks[name]
            sl = slice(off, off + int(np.prod(shape)))
            c = at[name].ravel()
            nxt.lb[sl] = np.maximum(nxt.lb[sl], np.minimum(c - trust, nxt.ub[sl]))
            nxt.ub[sl] = np.minimum(nxt.ub[sl], np.maximum(c + trust, nxt.lb[sl]))
        nxt.meta["trust_region"] = float(trust)
    return nxt


def point_at(inst: MilpInstance, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The point of `inst` that the swept layer's weights (w, b) imply: the instance rebuilt from
    the data it carries with its start at (w, b) (a forward pass decides every other variable)."""
    layers, _ = network_of(inst)
    meta, data = inst.meta, inst.data
    again = sweep_instance(layers, 0, data["H"], data["y"], task=meta["formulation"], radius=meta["radius"],
                           mode=meta["mode"], margin=meta["margin"], keep_correct=data.get("keep"),
                           fix_bias=not meta.get("box_bias", True), anchors=data.get("anchors"),
                           correct=data.get("correct"), start_at=(w, b), units=meta.get("units"),
                           bounds=bounds_of(data))
    if again.start is not None and "e" in again.blocks and not needs_stage_two(inst):  # e at the true loss
        again.start = _start_with_exact_e(again, outputs(again, again.start), meta["mode"])
    return again.start


def _start_with_exact_e(inst: MilpInstance, o: np.ndarray, mode: str) -> np.ndarray:
    start = inst.start.copy()
    off, shape = inst.blocks["e"]
    y = inst.data["y"]
    if mode == "squared":
        e = (o - y.reshape(o.shape)) ** 2
    else:
        e = cross_entropy(o, y.astype(np.int64))
    start[off:off + e.size] = e.ravel()
    return start
