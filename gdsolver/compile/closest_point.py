"""A solve followed by the closest-point LP (gdsolver.ir.closest): keep the MIP's integer
decisions and objective, move the weights as little as possible from the current ones.
What `gdsolver solve` does by default, as the trainer does after every sweep.

The result keeps the MIP's status, bound and gap; its x is the closest point (verified
against the original instance) and its objective the original objective there; its
`closest` field records the MIP's objective, how far each point moved the weights (L1)
and the LP's status and time. When the step cannot run or gives no usable point, the MIP's
answer is kept and `closest` says why."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from gdsolver.compile.result import SolveResult
from gdsolver.errors import GdsolverError
from gdsolver.ir.closest import closest_instance
from gdsolver.ir.instance import MilpInstance
from gdsolver.ir.verify import verify

BLOCKS = ("w", "b")


def _moved(inst: MilpInstance, x: np.ndarray) -> float:
    idx = np.concatenate([np.arange(o, o + int(np.prod(sh))) for b, (o, sh) in inst.blocks.items() if b in BLOCKS])
    return float(np.abs(x[idx] - inst.start[idx]).sum())


def move_to_closest(inst: MilpInstance, res: SolveResult, solve: Callable[[MilpInstance], SolveResult],
                    check: Callable[[np.ndarray], str] | None = None) -> SolveResult:
    """`res` (a solve of `inst`) with x moved to the closest point, solving the LP with
    `solve`; `res` itself when it has no solution. `check(x)` may veto the point with a
    reason (e.g. formulate.check_claims' forward pass; "" accepts it)."""
    if res.x is None:
        return res
    info: dict = {"applied": False, "mip_objective": res.objective}
    missing = [b for b in BLOCKS if b not in inst.blocks]
    if missing or inst.start is None:
        why = f"no block(s) {missing}" if missing else "no start (current weights) to stay close to"
        return dataclasses.replace(res, closest={**info, "reason": f"not a weight sweep: {why}"})
    info["mip_moved_l1"] = _moved(inst, res.x)
    try:
        ci = closest_instance(inst, res.x)
        lp = solve(ci)
    except GdsolverError as exc:
        return dataclasses.replace(res, closest={**info, "reason": f"closest-point LP failed: {exc}"})
    info.update(lp_status=lp.status, lp_runtime_s=lp.runtime_s, lp_backend=lp.backend)
    if lp.x is None:
        return dataclasses.replace(res, closest={**info, "reason": f"closest-point LP gave no point ({lp.status})"})
    x = lp.x[:inst.num_vars]
    rep = verify(inst, x)
    if not rep.ok:
        return dataclasses.replace(res, closest={**info, "reason": f"closest point fails ir.verify: {rep}"})
    veto = check(x) if check is not None else ""
    if veto:
        return dataclasses.replace(res, closest={**info, "reason": f"closest point fails its check: {veto}"})
    info.update(applied=True, objective=inst.objective_value(x), moved_l1=_moved(inst, x))
    return dataclasses.replace(res, x=x, objective=info["objective"], closest=info)
