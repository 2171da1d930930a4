"""The one sweep pipeline: instance -> search/solve -> refinement rounds (smooth heads) ->
`ir.verify` + float64 forward-pass check -> closest point -> the answer and the files to keep.

`gdsolver solve`, GDSolver's sweeps, `replay` and the benches all call `solve_sweep`, so the
same instance gives the same answer everywhere. It needs numpy and a solver only (no torch,
no trainer), so it can run in another process (a Ray task).

It sits above gdsolver.compile (the backends and searches) and gdsolver.formulate (whose
`refine` rebuilds a smooth head's instance from the data the instance carries, and whose
`check_claims` is the forward pass), and below train/ and the CLI.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdsolver.blas import blas_threads
from gdsolver.compile.registry import AUTO, DEFAULT_BACKEND, check_backend_name
from gdsolver.compile.result import SolveResult
from gdsolver.errors import GdsolverError, OptionError, SolveInterrupted
from gdsolver.ir.gdsm import fingerprint
from gdsolver.ir.instance import MilpInstance

if TYPE_CHECKING:
    from gdsolver.compile.convex import ConvexSweep
    from gdsolver.compile.replay import ReplayRow


CONVEX_METHODS = ("direct", "cuts")
# the closest-point LP's time limit: the search's own time, or this at least (a ResNet-18 head's LP
# ran 76 s after a 19 s Benders proof)
CLOSEST_FLOOR_S = 0.5
# a solve inside the pipeline gets this share of the time left: its backend may return up to 5% after
# its limit (the watchdog's grace, compile.base), and the checks after it (ir.verify, the forward pass,
# the true loss: 0.5 s on a 784-256 MNIST block sweep) must still end within the pipeline's limit
SOLVE_SHARE = 0.9


@dataclass(frozen=True)
class SolveSettings:
    """How a sweep instance is solved. Each default is written here once; the trainer's
    SweepConfig, `gdsolver solve` and `replay` take theirs from it.

    backend / search: which solver and which search for a count head's MIP
      (gdsolver.compile.search: "auto", "mip", "presolve", "benders").
    time_limit: seconds for the whole pipeline (every round and the closest point), None for none.
    threads / mip_gap / use_start / options / fallback: passed to the backend.
    closest: after a count head's MIP, move to the nearest weights that keep its decisions and
      objective (an LP; gdsolver.compile.closest_point).
    rounds / round_tol: a smooth head ("squared", "ce", "count+ce") is refined by at most
      `rounds` rounds of tangent cuts, until the surrogate promises less than round_tol
      (relative) over the best true loss so far.
    convex: a convex sweep (the last layer, identity output, "squared" or "ce" head) is solved
      "direct"ly to optimality by scipy (gdsolver.compile.convex) and checked like any answer,
      or by the tangent-cut rounds on `backend` ("cuts"; also whenever a backend other than the
      default or "auto" is named: the user asked for that solver). Measured (docs/backends-and-
      searches.md): direct is exact and 10-100x faster; the rounds stop within round_tol.
    """

    backend: str = DEFAULT_BACKEND
    search: str = "auto"
    time_limit: float | None = None
    threads: int | None = None
    mip_gap: float | None = None
    use_start: bool = True
    closest: bool = True
    rounds: int = 20
    round_tol: float = 1e-3
    options: dict[str, Any] = field(default_factory=dict)
    fallback: str | None = None
    convex: str = "direct"

    def __post_init__(self) -> None:
        from gdsolver.compile.base import SolveOptions
        from gdsolver.compile.search import SEARCHES

        check_backend_name(self.backend)
        if self.fallback is not None:
            check_backend_name(self.fallback)
        opts = SolveOptions(time_limit=self.time_limit, threads=self.threads, mip_gap=self.mip_gap,
                            use_start=self.use_start, native=self.options)
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen)
        set_("time_limit", opts.time_limit)
        set_("threads", opts.threads)
        set_("mip_gap", opts.mip_gap)
        set_("options", dict(opts.native))
        if self.search not in SEARCHES:
            raise OptionError(f"search: {self.search!r} is not a search, expected one of {list(SEARCHES)}")
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, (int, np.integer)) or self.rounds < 0:
            raise OptionError(f"rounds: must be an integer >= 0, got {self.rounds!r}")
        set_("rounds", int(self.rounds))
        if isinstance(self.round_tol, bool) or not isinstance(self.round_tol, (int, float)) \
                or not (self.round_tol > 0 and math.isfinite(self.round_tol)):
            raise OptionError(f"round_tol: must be a finite number > 0, got {self.round_tol!r}")
        set_("round_tol", float(self.round_tol))
        set_("closest", bool(self.closest))
        if self.convex not in CONVEX_METHODS:
            raise OptionError(f"convex: {self.convex!r}, expected one of {list(CONVEX_METHODS)}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any], **override: Any) -> "SolveSettings":
        """Settings recorded by to_json (unknown keys ignored), with `override` on top."""
        known = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in doc.items() if k in known}, **override})


SOLVE_DEFAULTS = SolveSettings()


@dataclass
class SweepOutcome:
    """What the pipeline found.

    result: the answer as a SolveResult on the instance given (x is the closest point when it
      ran and verified; for a smooth head the last round's answer, which satisfies the given
      instance too, with `options["pipeline"]` saying how it was made); None when the solver
      raised (`error` says why). What `gdsolver solve` writes and `replay` reproduces.
    x / objective / status: the answer to write back (None when there is none), on `instance`,
      the last round's instance (the one given for a count head).
    usable: x passed ir.verify and the forward-pass check; else `reason` says why not.
    files: (suffix, instance, result) of every solve that ran, to dump: the rounds ("-rN")
      and the closest-point LP ("-closest").
    weights: a convex sweep solved from its arrays (solve_convex): the layer's (W, b); then x,
      instance and files are empty (nothing was built) and true_loss is the loss to reproduce.
    """

    status: str
    x: np.ndarray | None
    objective: float | None
    reason: str
    solver_time_s: float
    usable: bool
    message: str = ""
    claims: str = ""
    files: list[tuple[str, MilpInstance, Any]] = field(default_factory=list)
    instance: MilpInstance | None = None
    rounds: int = 0
    true_loss: float | None = None
    result: SolveResult | None = None
    error: GdsolverError | None = None
    weights: tuple[np.ndarray, np.ndarray] | None = None  # solve_convex: the layer's (W, b), no instance


def solve_sweep(inst: MilpInstance, settings: SolveSettings = SOLVE_DEFAULTS) -> SweepOutcome:
    """Solve a sweep instance the one way (module docstring): search, rounds, checks, closest point.

    A GdsolverError of the first solve (licence limit, missing backend) is returned as an ERROR
    outcome with `error` set; Ctrl-C raises SolveInterrupted with the best answer so far as a
    result on `inst`."""
    from gdsolver.formulate.refine import is_smooth

    t0 = time.perf_counter()
    if direct_allowed(settings):
        done = _direct(inst, settings, t0)
        if done is not None:
            return done
    rounds = _Rounds(inst, settings, t0)
    try:
        rounds.run()
    except SolveInterrupted as exc:
        raise SolveInterrupted(rounds.interrupted_result(exc.result)) from None
    if rounds.failed is not None:
        return rounds.failed
    final, res, loss, claims_text = rounds.best
    x, note = res.x, rounds.note
    if settings.closest and not is_smooth(final):
        left = _left(settings.time_limit, t0)
        if left is not None and left <= 0.01:
            note += "; closest point skipped: the time limit is spent"
            res = replace(res, closest={"applied": False, "reason": "time limit spent"})
        else:
            # the closest point is a refinement: it gets no more time than the search it follows
            lp_limit = max(res.runtime_s, CLOSEST_FLOOR_S) if left is None else min(left * SOLVE_SHARE, max(
                res.runtime_s, CLOSEST_FLOOR_S))
            try:
                res = _closest(final, res, rounds.files, replace(settings, time_limit=lp_limit))
            except SolveInterrupted:
                raise SolveInterrupted(rounds.on_given(res)) from None
            info = res.closest or {}
            if info.get("applied"):
                x = res.x
                note += (f"; closest point moved the weights {info['moved_l1']:.4g} (L1) instead of "
                         f"{info['mip_moved_l1']:.4g}")
            else:
                res = replace(res, x=x)
                note += f" ({info.get('reason', 'closest point not applied')}; the solver's answer is used)"
    if res.status != "OPTIMAL" and res.message:  # e.g. "Time limit reached; best point found"
        note = f" [solver: {res.message}]" + note
    status = rounds.status(res)
    result = rounds.on_given(replace(res, status=status), x=x)
    if rounds.files and rounds.files[0][1] is inst:  # the given instance is dumped with the pipeline's answer
        rounds.files[0] = ("", inst, result)
    return SweepOutcome(status, x, res.objective, note, time.perf_counter() - t0, True, res.message, claims_text,
                        rounds.files, final, rounds.n, None if np.isnan(loss) else loss, result)


def direct_allowed(settings: SolveSettings) -> bool:
    """A convex sweep is solved directly unless a solver is named (or its native options, a
    fallback): then that solver solves, as asked."""
    return settings.convex == "direct" and settings.backend in (DEFAULT_BACKEND, AUTO) and not settings.options \
        and settings.fallback is None


def convex_of(inst: MilpInstance) -> "ConvexSweep | None":
    """The arrays of a convex sweep instance (not the last layer with an identity output and a
    squared / ce head, or no start: None)."""
    from gdsolver.compile.convex import CONVEX_MODES, ConvexSweep, is_convex_sweep
    from gdsolver.formulate.claims import can_check, network_of

    mode = inst.meta.get("mode")
    if mode not in CONVEX_MODES or inst.is_mip or inst.start is None or not can_check(inst) \
            or inst.meta.get("round"):
        return None
    layers, _ = network_of(inst)  # the layers from the swept one on
    if not is_convex_sweep(mode, last=len(layers) == 1, activation=layers[0].activation):
        return None
    M, N = layers[0].M, layers[0].N

    def wb(v: np.ndarray) -> np.ndarray:
        blocks = inst.unpack(v)
        return np.hstack([blocks["w"].reshape(M, N), blocks["b"].reshape(M, 1)])

    return ConvexSweep(mode, inst.data["H"], inst.data["y"], wb(inst.lb), wb(inst.ub), wb(inst.start))


def _convex_answer(problem: "ConvexSweep", settings: SolveSettings, t0: float) -> tuple[np.ndarray, bool, str]:
    import scipy.optimize  # noqa: F401 - loads scipy's own BLAS before the limit is set, so that it applies to it

    deadline = None if settings.time_limit is None else t0 + settings.time_limit
    with blas_threads(1):  # small products: BLAS threads only contend (16 ms instead of 2 per L-BFGS-B step)
        return problem.solve(deadline=deadline)


def _termination(converged: bool, message: str) -> str:
    """Why a direct solve stopped (compile.status.Termination) from its message: L-BFGS-B's
    iteration cap, the deadline, or another stop (an abnormal line search: the point is still
    the best found, never worse than the start)."""
    if converged:
        return "optimal"
    if "time limit" in message:
        return "time_limit"
    return "iteration_limit" if "ITERATIONS REACHED LIMIT" in message.upper() else "other_limit"


def solve_convex(problem: "ConvexSweep", settings: SolveSettings = SOLVE_DEFAULTS) -> SweepOutcome | None:
    """A convex sweep solved from its arrays alone (no instance is built: the answer is the
    layer's [W | b], `weights`). Checked here: finite, inside the box, its loss not above the
    start's; the caller's forward pass of the model must reproduce `true_loss`
    (train.sweep.decide_sweep). None when the answer does not check out (then build the instance
    and solve it the one way)."""
    import scipy

    t0 = time.perf_counter()
    V, ok, msg = _convex_answer(problem, settings, t0)
    loss, start = problem.loss(V), problem.loss(np.clip(problem.x0, problem.lo, problem.hi))
    # the start's loss within rounding is no reason to build the instance (a least-squares sweep started at its
    # optimum came out an ulp above it in 2 of 20 cases); the decision still asks for a strict improvement
    if not (np.isfinite(V).all() and np.all(V >= problem.lo) and np.all(V <= problem.hi) and np.isfinite(loss)
            and loss <= start + 1e-9 * max(1.0, abs(start))):
        return None
    status = "OPTIMAL" if ok else "FEASIBLE"
    res = SolveResult(status, x=None, objective=loss, runtime_s=time.perf_counter() - t0, backend="scipy",
                      backend_version=scipy.__version__, message=msg,
                      termination=_termination(ok, msg))
    return SweepOutcome(status, None, loss, f"; solved directly from its arrays ({msg}), loss {loss:.6g} on its "
                        "points", res.runtime_s, True, msg, "", [], None, 0, loss, res,
                        weights=(V[:, :-1], V[:, -1]))


def _checked_point(inst: MilpInstance, W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Any] | None:
    """The point of `inst` that the layer's weights (W, b) imply (refine.point_at) and its claims
    check, when it satisfies the instance (ir.verify) and the float64 forward pass; else None."""
    from gdsolver.formulate import check_claims
    from gdsolver.formulate.refine import point_at
    from gdsolver.ir.verify import verify

    x = point_at(inst, W, b)
    if x is None or not verify(inst, x).ok:
        return None
    claims = check_claims(inst, x)
    return (x, claims) if claims.ok else None


def instance_files(inst: MilpInstance, outcome: SweepOutcome,
                   settings: SolveSettings = SOLVE_DEFAULTS) -> list[tuple[str, MilpInstance, Any]]:
    """What to dump for an answer solve_convex found from the arrays of `inst`: the instance
    with that answer as its point (refine.point_at), verified like any solver's (a point that
    does not verify is dumped as the result without x, with the reason)."""
    checked = _checked_point(inst, *outcome.weights)
    res = replace(outcome.result, instance_fingerprint=fingerprint(inst))
    if checked is not None:
        res = replace(res, x=checked[0], objective=inst.objective_value(checked[0]))
    else:
        res = replace(res, status="ERROR", termination="error",
                      message="the answer from the arrays does not verify on the instance")
    res.options = {"pipeline": {**settings.to_json(), "refinements": 0, "true_loss": outcome.true_loss,
                                "from_arrays": True}}
    return [("", inst, res)]


def _direct(inst: MilpInstance, settings: SolveSettings, t0: float) -> SweepOutcome | None:
    """A convex sweep instance solved by scipy (gdsolver.compile.convex), or None when the
    instance is not one (convex_of) or the answer does not check out (then the rounds solve it)."""
    import scipy

    from gdsolver.formulate.refine import true_loss

    problem = convex_of(inst)
    if problem is None:
        return None
    V, ok, msg = _convex_answer(problem, settings, t0)
    checked = _checked_point(inst, V[:, :-1], V[:, -1])
    if checked is None:
        return None
    x, claims = checked
    loss = true_loss(inst, x)
    res = SolveResult("OPTIMAL" if ok else "FEASIBLE", x=x, objective=inst.objective_value(x), runtime_s=0.0,
                      backend="scipy", backend_version=scipy.__version__, message=msg,
                      instance_fingerprint=fingerprint(inst),
                      termination=_termination(ok, msg))
    res.runtime_s = time.perf_counter() - t0
    res.options = {"pipeline": {**settings.to_json(), "refinements": 0, "true_loss": loss}}
    return SweepOutcome(str(res.status), x, res.objective, f"; solved directly ({msg}), true loss {loss:.6g} on its "
                        "points", res.runtime_s, True, msg, str(claims), [("", inst, res)], inst, 0, loss, res)


def _left(limit: float | None, t0: float) -> float | None:
    return None if limit is None else limit - (time.perf_counter() - t0)


def _suffix(n: int) -> str:
    return "" if n == 0 else f"-r{n}"


class _Rounds:
    """The solve of `inst` and, for a smooth head, its refinement rounds: Kelley's cutting planes
    in a trust region around the best answer so far. A round whose answer does not improve the
    true loss shrinks the region, one that improves it as much as the surrogate promised grows
    it; done when the surrogate promises (almost) nothing, after `rounds` refinements, or when
    the time limit is spent."""

    def __init__(self, inst: MilpInstance, settings: SolveSettings, t0: float) -> None:
        self.given, self.settings, self.t0 = inst, settings, t0
        self.files: list[tuple[str, MilpInstance, Any]] = []
        self.best: tuple[MilpInstance, SolveResult, float, str] | None = None  # (instance, result, loss, claims)
        self.failed: SweepOutcome | None = None
        self.n = 0
        self.note = ""
        self.cut_short = False  # the rounds stopped before the surrogate converged
        self.current = inst

    def run(self) -> None:
        from gdsolver.compile.search import run_search
        from gdsolver.formulate import check_claims
        from gdsolver.formulate.refine import is_smooth, needs_stage_two, refine, true_loss
        from gdsolver.ir.verify import verify

        s, inst = self.settings, self.given
        trust = float(inst.meta.get("radius", 1.0))  # smooth heads: trust region, the whole box at first
        refine_s = 0.0  # the last refinement's build time
        while True:
            self.current = inst
            t_round = time.perf_counter()
            left = _left(s.time_limit, self.t0)
            if left is not None and left <= 0.01 and self.best is not None:
                self.note = f"; stopped refining after {self.n} round(s): time limit"
                self.cut_short = True
                return
            try:
                res = run_search(inst, search=s.search, backend=s.backend,
                                 time_limit=None if left is None else max(left * SOLVE_SHARE, 0.01),
                                 threads=s.threads,
                                 mip_gap=s.mip_gap, use_start=s.use_start, options=s.options or None,
                                 fallback=s.fallback)
            except GdsolverError as exc:  # licence limit, backend missing, ...: recorded, the caller goes on
                self.files.append((_suffix(self.n), inst, None))
                if self.best is None:
                    self.failed = SweepOutcome("ERROR", None, None, str(exc), self._elapsed(), False,
                                               files=self.files, error=exc)
                    return
                self.note = f"; round {self.n} failed ({exc}), the previous round's answer is used"
                self.cut_short = True
                return
            self.files.append((_suffix(self.n), inst, res))
            why = None
            if not res.has_solution:
                why = f"no solution ({res.status})" + (f": {res.message}" if res.message else "")
            elif not (report := verify(inst, res.x)).ok:
                why = f"solution fails ir.verify: {report}"
            elif not (claims := check_claims(inst, res.x)).ok:
                why = f"solution fails the forward-pass check: {claims}"
            if why is not None:
                if self.best is None:
                    self.failed = SweepOutcome(res.status, None, res.objective, why, self._elapsed(), False,
                                               res.message, files=self.files, instance=inst, result=res)
                    return
                self.note = f"; round {self.n}: {why}; the previous round's answer is used"
                self.cut_short = True
                return
            if not is_smooth(inst):
                self.best = (inst, res, float("nan"), str(claims))
                return
            if needs_stage_two(inst):  # count+ce: the count answer fixes which points stay correct
                inst, self.n = refine(inst, res.x), self.n + 1
                continue
            loss = true_loss(inst, res.x)
            ref = true_loss(inst, inst.start) if self.best is None else self.best[2]
            promised = ref - res.objective
            if self.best is None or loss < self.best[2]:
                trust = trust * 2 if ref - loss >= 0.5 * promised else trust
                self.best = (inst, res, loss, str(claims))
            else:
                trust *= 0.25
            converged = promised <= s.round_tol * max(1.0, abs(self.best[2]))
            if converged or self.n >= s.rounds:
                self.cut_short = not converged
                self.note = (f"; {self.n + 1} round(s), surrogate {res.objective:.6g}, true loss {self.best[2]:.6g} "
                             f"on its points" + ("" if converged else " (round limit before convergence)"))
                return
            trust = min(trust, float(inst.meta.get("radius", trust)))
            # a round is worth starting when the time left holds its build and checks (as the last ones
            # took: 0.7 + 0.5 s on a 784-256 MNIST block sweep) and as much again to solve: else it
            # would end past the limit
            left, spent = _left(s.time_limit, self.t0), time.perf_counter() - t_round - res.runtime_s
            if left is not None and left <= max(0.01, 3.0 * (max(spent, 0.0) + refine_s)):
                self.note = f"; stopped refining after {self.n + 1} round(s): time limit"
                self.cut_short = True
                return
            t_refine = time.perf_counter()
            inst, self.n = refine(inst, res.x, centre=self.best[1].x, trust=trust), self.n + 1
            refine_s = time.perf_counter() - t_refine

    def _elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def status(self, res: SolveResult) -> str:
        """OPTIMAL only when every stage finished: rounds cut short by the time limit (or a failed
        round) leave a FEASIBLE answer."""
        if res.status == "OPTIMAL" and self.cut_short:
            return "FEASIBLE"
        return str(res.status)

    def on_given(self, res: SolveResult, x: np.ndarray | None = None) -> SolveResult:
        """`res` (a solve of some round's instance) as a result on the instance given: the same x
        (a later round only adds cuts and narrows the box, so it satisfies the given instance),
        its objective there, no bound once a round was added (a round's bound is its surrogate's),
        and the pipeline's settings so that replay runs the same pipeline."""
        x = res.x if x is None else x
        inst = self.given
        refined = self.n > 0
        if refined and x is not None:
            x = self._point_of_given(x)
        out = replace(res, x=x, instance_fingerprint=fingerprint(inst),
                      objective=inst.objective_value(x) if x is not None else res.objective,
                      runtime_s=self._elapsed())
        if refined:
            out = replace(out, bound=None, gap=None)
        pipe = {**self.settings.to_json(), "refinements": self.n}
        if self.best is not None and not np.isnan(self.best[2]):
            pipe["true_loss"] = self.best[2]
        out.options = {**(res.options or {}), "pipeline": pipe}
        if self.cut_short and out.termination == "optimal":
            out.termination = "time_limit" if "time limit" in self.note else "other_limit"
        return out

    def _point_of_given(self, x: np.ndarray) -> np.ndarray | None:
        """x as a point of the given instance. A later round only adds cuts and narrows the box,
        so x is one, unless the round changed the variables (count+ce's second stage drops the
        count binaries): then the point the swept weights imply (formulate.refine.point_at)."""
        from gdsolver.formulate.refine import point_at
        from gdsolver.ir.verify import verify

        given, final = self.given, self.best[0] if self.best is not None else self.current
        if len(x) == given.num_vars and given.blocks == final.blocks and verify(given, x).ok:
            return x
        blocks = final.unpack(x)
        got = point_at(given, blocks["w"], blocks["b"])
        return got if got is not None and verify(given, got).ok else None

    def interrupted_result(self, got: SolveResult | None) -> SolveResult | None:
        """Ctrl-C during a round: the best verified answer so far, else what the solver had."""
        if self.best is not None:
            res = replace(self.best[1], status="FEASIBLE", termination="interrupted")
            return self.on_given(res)
        return None if got is None or self.current is not self.given else self.on_given(got)


def _closest(inst: MilpInstance, res: SolveResult, files: list, settings: SolveSettings) -> SolveResult:
    """Among the weights that keep the MIP's decisions and objective, the nearest to the current
    ones (an LP; gdsolver.compile.closest_point), checked by ir.verify and the forward pass. The
    solver's x is kept when it fails (`closest` says why); the LP is dumped as "-closest"."""
    from gdsolver.compile.closest_point import move_to_closest
    from gdsolver.compile.registry import solve
    from gdsolver.formulate import check_claims

    def solve_lp(ci: MilpInstance) -> SolveResult:
        lp = solve(ci, settings.backend, time_limit=settings.time_limit, threads=settings.threads,
                   fallback=settings.fallback)
        files.append(("-closest", ci, lp))
        return lp

    def veto(x: np.ndarray) -> str:
        report = check_claims(inst, x)
        return "" if report.ok else str(report)

    return move_to_closest(inst, res, solve_lp, check=veto)


# ---------------------------------------------------------------- replay
def replay_loaded(name: Path, inst: MilpInstance, rec: SolveResult, *, backend: str | None = None,
                  tol: float = 1e-6, time_limit: float | None = None) -> ReplayRow:
    """Re-solve one loaded instance as its result was made and compare: a result of the pipeline
    (`options["pipeline"]`: `gdsolver solve`, a trainer's sweep) through the pipeline with the
    recorded settings; a single backend solve (a refinement round, a closest-point LP) with the
    recorded backend. `backend` / `time_limit` override the recorded ones. The recorded x must
    satisfy the instance (ir.verify) and have the recorded objective. Pure (arguments in, row
    out), so it can run in another process."""
    from gdsolver.compile.base import max_threads
    from gdsolver.compile.registry import solve
    from gdsolver.compile.replay import ReplayRow, bounds_agree, objectives_match
    from gdsolver.ir.verify import verify

    fp_ok = not rec.instance_fingerprint or rec.instance_fingerprint == fingerprint(inst)
    x_ok = _recorded_x_ok(inst, rec, tol, verify)
    options = rec.options or {}
    pipe = options.get("pipeline")
    record = pipe if isinstance(pipe, dict) else options
    threads = record.get("threads")
    threads = threads if isinstance(threads, int) and not isinstance(threads, bool) else None
    if threads is not None and threads > max_threads():
        threads = max_threads()  # recorded on a bigger machine; threads do not change the optimum
    tl = time_limit if time_limit is not None else record.get("time_limit")
    if isinstance(pipe, dict):
        over = {"time_limit": tl, "threads": threads}
        if backend is not None:
            over["backend"] = backend
        try:
            settings = SolveSettings.from_json(pipe, **over)
        except (TypeError, ValueError) as exc:
            raise GdsolverError(f"{name}: field 'options.pipeline' is not a valid pipeline record ({exc})") from None
        out = solve_sweep(inst, settings)
        if out.result is None:
            raise out.error or GdsolverError(f"{name}: the replay's solve failed: {out.reason}")
        new = out.result
    else:
        opts = {k: v for k, v in options.items() if k in ("mip_gap", "use_start")}
        new = solve(inst, backend=backend or rec.backend or DEFAULT_BACKEND, time_limit=tl, threads=threads, **opts)
    limited = "FEASIBLE" in (rec.status, new.status) and rec.x is not None and new.x is not None
    if limited:
        obj_ok = bounds_agree(inst.sense, rec, new, tol) and verify(inst, new.x).ok
    else:
        obj_ok = new.status == rec.status and objectives_match(rec.objective, new.objective, tol)
    return ReplayRow(name, rec, new, x_ok, fp_ok, obj_ok, limited)


def _recorded_x_ok(inst: MilpInstance, rec: SolveResult, tol: float, verify) -> bool | None:
    """None when nothing was recorded; else the recorded x satisfies the instance and its
    objective there is the recorded one (a result is checked, never trusted). The objective is
    arithmetic on x, so it is compared at float64 rounding of c.x + c0, not at the replay's `tol`
    (a tolerance for two solves' answers: --tol 1e-2 would let a record lie by 1%)."""
    if rec.x is None:
        return None
    if len(rec.x) != inst.num_vars or not verify(inst, rec.x).ok:
        return False
    if rec.objective is None:
        return False  # a point without its objective recorded is no record of a solve
    scale = abs(inst.c0) + float(np.abs(inst.c * rec.x).sum())
    return abs(rec.objective - inst.objective_value(rec.x)) <= 1e-9 * max(1.0, scale)


def replay(path: str | os.PathLike, *, backend: str | None = None, tol: float = 1e-6,
           time_limit: float | None = None) -> Iterator[ReplayRow]:
    """Re-solve each recorded instance under `path` (gdsolver.compile.replay.find_pairs) as it was
    made, with the recorded backend (or `backend`), and compare."""
    from gdsolver.compile.replay import find_pairs, load_pair

    for inst_path, res_path in find_pairs(path):
        yield replay_loaded(inst_path, *load_pair(inst_path, res_path), backend=backend, tol=tol,
                            time_limit=time_limit)
