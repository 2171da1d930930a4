"""Re-check a sweep answer by a float64 forward pass, independent of the MILP's rows.

`ir.verify` checks a solution against the instance's rows within a tolerance; a row that
holds within tolerance can still hide a point that is not really classified correctly (a
margin of 1e-7 with a tolerance of 1e-6). Here the swept layer's new weights are taken from
the solution, the network is run forward from the stored inputs, and the head's claim is
recomputed: classification, every point the answer counts as correct must beat every other
class by at least half the margin (the trainer's own acceptance test); regression "l1", the
objective must equal the forward L1; "paper", every output must stay within its bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gdsolver.modeldef import Dense, forward_chain
from gdsolver.formulate.heads import correct_mask, cross_entropy
from gdsolver.ir.instance import MilpInstance

REL_TOL = 1e-6


@dataclass(frozen=True)
class ClaimReport:
    ok: bool
    claimed: float  # the solver's objective
    forward: float  # the same figure from the forward pass
    message: str

    def __str__(self) -> str:
        return ("ok" if self.ok else "MISMATCH") + f": {self.message}"


def can_check(inst: MilpInstance) -> bool:
    """The instance carries its network data (written by gdsolver >= 0.2)."""
    layer = inst.meta.get("layer") or {}
    return "H" in inst.data and ("y" in inst.data or "lo" in inst.data) and isinstance(layer.get("index"), int) \
        and isinstance(inst.meta.get("network"), list) and {"w", "b"} <= set(inst.blocks)


def network_of(inst: MilpInstance) -> tuple[list[Dense], int]:
    """The chain stored in the instance, indexed from the swept layer (its current weights)."""
    k = int(inst.meta["layer"]["index"])
    net = inst.meta["network"]
    layers = [Dense(inst.data[f"W{j}"], inst.data[f"b{j}"], net[j]["activation"], net[j].get("name") or "")
              for j in range(len(net))]
    return layers, k


def swept_weights(inst: MilpInstance, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The swept layer's whole (W, b) at the point x: its blocks "w", "b", which a block sweep
    (meta "units") has for its units only, put into the current weights of the others."""
    blocks = inst.unpack(x)
    units = (getattr(inst, "meta", None) or {}).get("units")
    if units is None:
        return blocks["w"], blocks["b"]
    W, b = np.array(inst.data["W0"], np.float64), np.array(inst.data["b0"], np.float64)
    u = np.asarray(units, np.int64)
    W[u], b[u] = blocks["w"], blocks["b"]
    return W, b


def outputs(inst: MilpInstance, x: np.ndarray | None = None) -> np.ndarray:
    """Network outputs (T, M) on the instance's points with the swept layer's weights from x
    (the current weights when x is None)."""
    layers, _ = network_of(inst)
    weights = None if x is None else {0: swept_weights(inst, x)}
    return forward_chain(layers, inst.data["H"], 0, weights)


def _check_surrogate(inst: MilpInstance, x: np.ndarray, o: np.ndarray, y: np.ndarray, claimed: float,
                     mode: str) -> ClaimReport:
    """A tangent-cut surrogate never exceeds the loss it approximates; count+ce's fixed points
    must really be correct."""
    if mode == "squared":
        true = float(((o - y.reshape(o.shape)) ** 2).sum())
        what = "squared error"
    else:
        true = float(cross_entropy(o, y.astype(np.int64)).sum())
        what = "cross-entropy"
    if mode == "count+ce":
        margin = float(inst.meta.get("margin", 0.0))
        c = np.round(inst.unpack(x)["c"]).astype(bool)
        false = np.flatnonzero(c & ~correct_mask(o, y.astype(np.int64), margin / 2))
        if len(false):
            return ClaimReport(False, claimed, true, f"{len(false)} point(s) kept correct are not correct by half "
                                                     f"the margin in a float64 forward pass (first: {int(false[0])})")
    ok = claimed <= true + REL_TOL * max(1.0, abs(true))
    return ClaimReport(ok, claimed, true, f"{what} {true:.10g} by the forward pass, surrogate {claimed:.10g}"
                       + ("" if ok else " exceeds it"))


def check_claims(inst: MilpInstance, x: np.ndarray) -> ClaimReport:
    """Forward-pass check of the answer x (see module docstring)."""
    if not can_check(inst):
        return ClaimReport(True, float("nan"), float("nan"), "instance carries no network data (written before "
                                                             "gdsolver 0.2); forward check skipped")
    if inst.meta.get("formulation") == "repair":  # its own claims: every point labelled, the change's norm
        return check_repair(inst, x)
    o = outputs(inst, x)
    y = inst.data["y"]
    claimed = inst.objective_value(x)
    mode = inst.meta.get("mode")
    if mode in ("squared", "ce") or mode == "count+ce" and inst.meta.get("stage") == "ce":
        return _check_surrogate(inst, x, o, y, claimed, mode)
    if inst.meta.get("formulation") == "classification":
        margin = float(inst.meta.get("margin", 0.0))
        ok_pts = correct_mask(o, y.astype(np.int64), margin / 2)
        c = np.round(inst.unpack(x)["c"]).astype(bool)
        false = np.flatnonzero(c & ~ok_pts)
        fwd = float(ok_pts.sum())
        if len(false):
            return ClaimReport(False, claimed, fwd, f"{len(false)} point(s) counted correct are not correct by "
                                                    f"half the margin {margin / 2:g} in a float64 forward pass "
                                                    f"(first: point {int(false[0])})")
        return ClaimReport(True, claimed, fwd, f"{int(c.sum())} points claimed correct, {int(fwd)} correct by "
                                               f"the forward pass")
    err = np.abs(o - y.reshape(o.shape))
    scale = float(np.abs(o).sum() + np.abs(y).sum()) + 1.0
    if inst.meta.get("mode") == "paper":
        o0 = outputs(inst)
        max_loss = np.maximum(np.abs(o0 - y.reshape(o.shape)) - float(inst.meta.get("margin", 0.0)), 0.0)
        excess = float(np.max(err - max_loss))
        ok = excess <= REL_TOL * max(1.0, float(np.abs(y).max()))
        return ClaimReport(ok, claimed, 0.0 if ok else excess,
                           "every output within its bound" if ok else f"an output exceeds its bound by {excess:.3g}")
    fwd = float(err.sum())
    # e >= |o - y| lets an unproven answer claim more error than it has, never less
    ok = fwd <= claimed + REL_TOL * scale
    return ClaimReport(ok, claimed, fwd, f"L1 {fwd:.10g} by the forward pass, {claimed:.10g} claimed")


# ------------------------------------------------------------------ repair (gdsolver.formulate.repair)
def label_gaps(o: np.ndarray, labels: np.ndarray, pairs: np.ndarray | None = None) -> np.ndarray:
    """o_t,label - max_{j != label} o_t,j per point (> 0: classified as the label); with `pairs`
    (T, M) bool, over the classes j it marks only (inf for a point with none)."""
    T = o.shape[0]
    others = o.copy()
    others[np.arange(T), labels] = -np.inf
    if pairs is not None:
        others[~pairs] = -np.inf
    return o[np.arange(T), labels] - others.max(axis=1, initial=-np.inf)


def change_norms(dW: np.ndarray, db: np.ndarray) -> dict[str, float]:
    """Norms of a change of a layer (its weights and bias together)."""
    d = np.concatenate([np.ravel(dW), np.ravel(db)])
    return {"l1": float(np.abs(d).sum()), "linf": float(np.abs(d).max(initial=0.0)),
            "l2": float(np.sqrt((d ** 2).sum())), "changed": int(np.count_nonzero(d)), "entries": int(d.size)}


def check_repair(inst: MilpInstance, x: np.ndarray) -> ClaimReport:
    """Forward-pass check of a repair answer: with the swept layer's weights from x, every point
    has its label by at least half its margin in float64, and the objective is not below the
    change's norm (a variable above |dW| can overstate the norm, never understate it)."""
    layers, _ = network_of(inst)
    blocks = inst.unpack(x)
    o = forward_chain(layers, inst.data["H"], 0, {0: (blocks["w"], blocks["b"])})
    if "lo" in inst.data:  # regression: every output inside its interval, by half the margin
        gaps = np.minimum(o - inst.data["lo"], inst.data["hi"] - o).min(axis=1)  # depth inside, per point
        bad = np.flatnonzero(gaps < float(inst.meta["margin"]) / 2)
    else:
        bad = None
    pairs = inst.data.get("pairs")
    if pairs is not None and pairs.shape != o.shape:
        return ClaimReport(False, inst.objective_value(x), float("nan"),
                           f"data array 'pairs' has shape {list(pairs.shape)}, expected {list(o.shape)}")
    if bad is None:
        gaps = label_gaps(o, inst.data["y"], None if pairs is None else pairs != 0)
        bad = np.flatnonzero(gaps < inst.data["margins"] / 2)
    F = int(inst.meta["fix_points"])
    norms = change_norms(blocks["w"] - layers[0].W, blocks["b"] - layers[0].b)
    fwd = norms[inst.meta["norm"]]
    claimed = inst.objective_value(x)
    if len(bad):
        first = int(bad[0])
        where = f"fix point {first}" if first < F else f"keep point {first - F}"
        return ClaimReport(False, claimed, fwd,
                           f"{len(bad)} point(s) do not have their label (or interval) by half the margin in a "
                           f"float64 forward pass (first: {where}, gap {gaps[first]:.3g})")
    ok = fwd <= claimed + REL_TOL * max(1.0, abs(claimed))
    return ClaimReport(ok, claimed, fwd, f"every point has its label; {inst.meta['norm']} change {fwd:.6g} by the "
                                         f"forward pass, {claimed:.6g} claimed")
