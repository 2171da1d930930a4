"""Maximum feasible subsystem search on HiGHS: warm-started LPs over key subsets, a greedy
incumbent, and combinatorial Benders (a master over the keys alone, cut by infeasible
subsets read off Farkas rays and shrunk by deletion filtering).

The input is an `ir.subsystem.Subsystem` (keys switching on row groups over continuous
variables); the LP over key subsets, warm-started and elastic, is compile.mfs_lp.SubsystemLP.

Where the work goes (measured on the MNIST-head sweeps, 18,760 columns, 30-150 rows): the
LPs, at 0.1-0.3 ms per simplex iteration plus 2-4 ms per HiGHS run whatever it does (the
run's set-up and solution checks scale with the columns); the master is cheap until it
holds hundreds of cuts. Hence: conflicts from rays rather than elastic duals (2-6 groups
instead of 6-15), deletion filtering on a small LP of the conflict's rows only,
iteration-limited filter and trial LPs, greedy trials and conflict checks of a master choice
started from the last feasible basis (from a Farkas ray, proving a set feasible took about
twice the iterations), every failed trial's ray kept as a free cut, sets found feasible kept
to answer filter tests inside them without an LP, only the columns some row uses in the LP,
and a master stopped at its first solution above the cutoff. Taking a ray's keys as the cut
without filtering saved LPs at 32 points but left the 128-point row unproven in 120 s (cuts
of 6-13 points instead of 3-4 let the master propose many more sets).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from gdsolver.compile.base import SolveRun
from gdsolver.compile.highs import build_highs
# SubsystemLP and release_threads are also imported from here by the searches' callers
from gdsolver.compile.mfs_lp import FEAS_TOL, _NO_LIMIT, Interrupted, SubsystemLP, _run, release_threads  # noqa: F401
from gdsolver.errors import GdsolverError
from gdsolver.ir.csr import Csr
from gdsolver.ir.instance import BINARY, MilpInstance
from gdsolver.ir.subsystem import Subsystem, pair_conflicts, restrict

EXTEND = "trials"  # extend a cut-down master choice: "trials" key by key, "elastic" one elastic LP, "none"
MASTER_FIRST = True  # stop each master MIP at its first solution (else solve it to optimality)
FILTER_ITERATIONS = 100  # simplex iterations for one deletion-filter test (see minimal_infeasible)
TRIAL_ITERATIONS = 1000  # a greedy trial not settled in this many simplex iterations is skipped


@dataclass
class SearchTrace:
    """What a search did, for reports and benchmarks (times from the search's start)."""

    events: list[tuple[float, str, float]] = field(default_factory=list)  # (t, "incumbent"|"bound", value)
    lp_solves: int = 0
    lp_time: float = 0.0
    lp_iterations: int = 0  # simplex iterations over all LPs (a measure of LP work that load does not skew)
    master_solves: int = 0
    master_time: float = 0.0
    pair_cuts: int = 0
    cuts: int = 0  # found by LP (beyond the pairs)
    free_cuts: int = 0  # infeasible sets proved by the greedy's LPs on the way, also given to the master
    cut_sizes: list[int] = field(default_factory=list)
    iterations: int = 0
    interrupted: bool = False  # Ctrl-C ended the search; the outcome is the best point so far

    def to_json_dict(self) -> dict:
        return {"events": [[round(t, 4), k, v] for t, k, v in self.events], "lp_solves": self.lp_solves,
                "lp_time_s": self.lp_time,
                "lp_iterations": self.lp_iterations, "master_solves": self.master_solves, "master_time_s": self.master_time,
                "pair_cuts": self.pair_cuts, "cuts": self.cuts, "free_cuts": self.free_cuts, "cut_sizes": self.cut_sizes,
                "iterations": self.iterations, "interrupted": self.interrupted}


def known_pairs(sub: Subsystem, pairs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(pairs, exact) for `Conflicts`: the given pairs or `pair_conflicts`', and the keys whose
    every conflicting pair is listed (the one-row keys), or none when the screen was not run
    (too many rows: then no pair is known, and no pair may be assumed compatible)."""
    pairs = pair_conflicts(sub) if pairs is None else pairs
    if pairs is None:
        return np.zeros((0, 2), np.int64), np.zeros(sub.num_keys, bool)
    return pairs, single_row_keys(sub)


def single_row_keys(sub: Subsystem) -> np.ndarray:
    """Keys switching on exactly one one-sided row (pair_conflicts is exact for pairs of them)."""
    one_sided = np.isfinite(sub.rows_lo) != np.isfinite(sub.rows_hi)
    rows = np.bincount(sub.group, minlength=sub.num_keys)
    ranged = np.bincount(sub.group, weights=~one_sided, minlength=sub.num_keys)
    return (rows == 1) & (ranged == 0)


class Conflicts:
    """Known infeasible key sets: the pairs indexed for quick look-ups, and every set (pairs
    and larger) as rows of a boolean matrix, so that the keys completing a known set with a
    chosen set are found with one matrix product. Also the key sets some LP found feasible:
    every subset of one is feasible, which answers a deletion-filter test without an LP."""

    def __init__(self, K: int, pairs: np.ndarray, exact: np.ndarray | None = None) -> None:
        """`exact[k]`: every conflicting pair involving k is in `pairs` (true for keys with a
        single row, where `pair_conflicts` is exact)."""
        self.exact = np.zeros(K, bool) if exact is None else np.asarray(exact, bool)
        self.partner = [set() for _ in range(K)]
        self.K = K
        self._sets = np.zeros((0, K), bool)
        self._pending: list[np.ndarray] = []
        self._feasible = np.zeros((0, K), bool)
        self._feasible_pending: list[np.ndarray] = []
        for a, b in pairs:
            self.add_pair(int(a), int(b))

    def add_pair(self, a: int, b: int) -> None:
        self.partner[a].add(b)
        self.partner[b].add(a)
        self.add_set(np.array([a, b]))

    def add_set(self, members: np.ndarray) -> None:
        """Record the infeasible set of key indices `members`."""
        self._pending.append(np.asarray(members, np.int64))

    def _matrix(self) -> np.ndarray:
        if self._pending:
            rows = np.zeros((len(self._pending), self.K), bool)
            lengths = [len(m) for m in self._pending]
            rows[np.repeat(np.arange(len(lengths)), lengths), np.concatenate(self._pending)] = True
            self._sets = np.vstack([self._sets, rows])
            self._pending = []
        return self._sets

    def add_feasible(self, chosen: np.ndarray) -> None:
        """Record that the key set (bool (K,)) is feasible."""
        self._feasible_pending.append(np.asarray(chosen, bool).copy())

    def known_feasible(self, keys: np.ndarray) -> bool:
        """Whether the key indices `keys` lie inside a set recorded feasible, or are a pair
        of one-row keys that `pair_conflicts` (exact for those) did not list."""
        keys = np.asarray(keys, np.int64)
        if len(keys) == 2 and self.exact[keys].all() and int(keys[1]) not in self.partner[int(keys[0])]:
            return True
        if self._feasible_pending:
            self._feasible = np.vstack([self._feasible, np.stack(self._feasible_pending)])
            self._feasible_pending = []
        return bool(self._feasible[:, keys].all(axis=1).any())

    def blocked(self, chosen: np.ndarray) -> np.ndarray:
        """Keys outside `chosen` that would complete a known infeasible set with it."""
        sets = self._matrix()
        out = np.zeros(self.K, bool)
        if len(sets) == 0:
            return out
        missing = sets & ~np.asarray(chosen, bool)
        one = missing.sum(axis=1) == 1  # every other member already chosen
        out[np.nonzero(missing[one])[1]] = True
        return out


def greedy(lp: SubsystemLP, base: np.ndarray, allowed: np.ndarray, conflicts: Conflicts | None = None,
           deadline: float = np.inf, first_only: bool = False,
           cuts: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A maximal feasible key set containing `base` (which must be feasible): `elastic_round`,
    then (unless `first_only`) `one_by_one`. Returns (chosen, continuous values), or
    (base, None) if base itself is infeasible."""
    chosen, y, order = elastic_round(lp, base, allowed, cuts)
    if first_only or y is None:
        return chosen, y
    return one_by_one(lp, chosen, y, order, conflicts, deadline, cuts)


def elastic_round(lp: SubsystemLP, base: np.ndarray, allowed: np.ndarray,
                  cuts: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """One elastic LP with `base` hard and every other allowed key soft: (the keys whose
    elastic column is exactly 0, which hold at its point, with base; that point; the other
    soft keys, least violated first). If the LP proves a conflict its keys go to `cuts`."""
    soft = allowed & ~base
    lp.set(base | soft, hard=base)
    v, y, e = lp.solve()
    if y is None:
        return base.copy(), None, np.zeros(0, np.int64)
    chosen = base | (soft & (e == 0))  # nonbasic at 0: the key's rows hold at y (within the LP's tolerance)
    if cuts is not None and v > FEAS_TOL:
        _add_cut(cuts, lp, base | soft)
    rest = np.flatnonzero(soft & ~chosen)
    return chosen, y, rest[np.argsort(e[rest], kind="stable")]


def one_by_one(lp: SubsystemLP, chosen: np.ndarray, y: np.ndarray, order: np.ndarray,
               conflicts: Conflicts | None = None, deadline: float = np.inf,
               cuts: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Try adding the keys of `order` to the feasible set `chosen` (with its point y) one at a
    time with the pure feasibility LP, skipping keys in a known conflict with the set (and
    keys whose LP is not settled in TRIAL_ITERATIONS iterations). A trial that fails proves
    it fast (dual simplex, few iterations) and its Farkas ray names an infeasible key set,
    appended to `cuts` when given (a free cut for the master)."""
    blocked = conflicts.blocked(chosen) if conflicts else np.zeros(len(chosen), bool)
    if conflicts:
        conflicts.add_feasible(chosen)
    # every trial starts from the basis of the last feasible set: after a failed trial the
    # LP sits at a Farkas ray, and walking back from there cost ~300 iterations per trial
    basis = lp.h.getBasis()
    for k in order:
        if blocked[k] or time.perf_counter() > deadline:
            continue
        trial = chosen.copy()
        trial[k] = True
        lp.set(trial, hard=trial)
        v, y_trial, _ = lp.solve(TRIAL_ITERATIONS)
        if y_trial is not None and v <= FEAS_TOL:
            chosen, y = trial, y_trial
            basis = lp.h.getBasis()
            if conflicts:
                blocked |= conflicts.blocked(chosen)
                conflicts.add_feasible(chosen)
            continue
        if cuts is not None and v > FEAS_TOL:
            found = _add_cut(cuts, lp, trial)
            if conflicts and found is not None:
                conflicts.add_set(found)
        lp.h.setBasis(basis)
        lp.last = None  # HiGHS dropped its solution with the basis: a question about this state is asked anew
    lp.feasible_basis = basis
    return chosen, y


def _add_cut(cuts: list[np.ndarray], lp: SubsystemLP, subset: np.ndarray) -> np.ndarray | None:
    """Append the keys of the last solve's infeasibility proof (an infeasible set) to `cuts`
    and return them (None when there is no usable proof)."""
    mass = lp.conflict_mass()
    if mass is None:
        return None
    support = subset & (mass > 1e-9 * max(float(mass.max(initial=0.0)), 1e-300))
    if support.sum() < 2:  # one key alone is feasible after presolve: a proof naming one is a numerical artefact
        return None
    cuts.append(np.flatnonzero(support))
    return cuts[-1]


def minimal_infeasible(lp: SubsystemLP, subset: np.ndarray, deadline: float = np.inf,
                       conflicts: Conflicts | None = None, filter_lp: SubsystemLP | None = None,
                       iteration_limit: int | None = FILTER_ITERATIONS,
                       trace: SearchTrace | None = None) -> np.ndarray:
    """An infeasible subset of `subset` (which must be infeasible), minimal when time allows.
    Every test is the pure feasibility LP (all switched-on rows hard): HiGHS's dual simplex
    proves infeasibility in a few iterations and its Farkas ray names few groups, while
    proving feasibility takes many, so a test gets `iteration_limit` simplex iterations and
    an unsettled one counts as feasible (the key is kept: the answer stays infeasible, at
    worst not minimal). Start from the ray's groups on `lp`; the tests then run on
    `filter_lp` if given, else on a fresh LP holding only those groups' rows and the columns
    they use (each simplex iteration and each run's set-up scale with the LP's size, and the
    ray names a handful of the hundreds of groups). Deletion filtering in chunks: drop the
    half of the undecided keys holding the least ray weight; if the rest is still infeasible
    they were not needed (and the new ray may shrink it further), otherwise halve the chunk;
    a single key whose removal makes the rest feasible is needed. The filter LP's work is
    added to `trace`."""
    current, mass = _conflict(lp, subset, None)
    if current is None:
        raise ValueError("minimal_infeasible: the subset is feasible")
    if current.sum() <= 2:  # two keys, each feasible alone after presolve, are minimal
        return current
    members = np.flatnonzero(current)  # global key of each local key
    if filter_lp is None:
        filter_lp = SubsystemLP(restrict(lp.sub, current), lp.run)
        local = np.ones(len(members), bool)
    else:
        members = np.arange(len(current))
        local = current
    mass = mass[members]
    pair: tuple[int, int] | None = None
    needed = np.zeros(len(members), bool)
    chunk = max(1, int(local.sum()) // 2)
    while local.sum() > 2:
        if local.sum() == 3 and conflicts is not None:
            trio = members[local]
            known = [(a, b) for a, b in ((trio[0], trio[1]), (trio[0], trio[2]), (trio[1], trio[2]))
                     if b in conflicts.partner[a]]
            if known:  # a known pair inside: the smaller cut
                pair = known[0]
                break
            if conflicts.exact[trio].all():  # pairs of one-row keys not in the table are feasible
                break
        cand = np.flatnonzero(local & ~needed)
        if len(cand) == 0 or time.perf_counter() > deadline:
            break
        chunk = min(chunk, len(cand))
        drop = cand[np.argsort(mass[cand], kind="stable")[:chunk]]
        trial = local.copy()
        trial[drop] = False
        if not trial.any():
            chunk = max(1, chunk // 2)
            continue
        if conflicts is not None and conflicts.known_feasible(members[trial]):
            support = None  # inside a key set an LP found feasible before: no LP needed
        else:
            support, new_mass = _conflict(filter_lp, trial, iteration_limit)
            if support is None and conflicts is not None and filter_lp.last[0] <= FEAS_TOL:
                found = np.zeros(conflicts.K, bool)
                found[members[trial]] = True
                conflicts.add_feasible(found)
        if support is not None:
            local = trial & (support | needed)
            mass = new_mass
            chunk = max(1, int((local & ~needed).sum()) // 2)
        elif chunk > 1:
            chunk //= 2
        else:
            needed[drop] = True
    if trace is not None and filter_lp is not lp:
        trace.lp_solves += filter_lp.solves
        trace.lp_time += filter_lp.lp_time
        trace.lp_iterations += filter_lp.iterations
    out = np.zeros_like(current)
    out[list(pair) if pair is not None else members[local]] = True
    return out


def _conflict(lp: SubsystemLP, subset: np.ndarray, iteration_limit: int | None,
              basis=None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(the keys of `subset` in an infeasibility proof, their weights) from the pure
    feasibility LP on `subset`, or (None, None) when it is feasible or not settled in
    `iteration_limit` iterations. Without a readable proof the whole subset is returned.
    With `basis` (a HighsBasis) the solve starts from it."""
    lp.set(subset, hard=subset)
    if basis is not None and lp.last is None:
        lp.h.setBasis(basis)
    v, _, _ = lp.solve(iteration_limit)
    if not v > FEAS_TOL:  # feasible, or nan: not settled
        return None, None
    mass = lp.conflict_mass()
    if mass is None:
        return subset.copy(), np.zeros(len(subset))
    support = subset & (mass > 1e-9 * max(float(mass.max(initial=0.0)), 1e-300))
    return (support if support.any() else subset.copy()), mass


class Master:
    """max gain.c over the keys subject to the master rows, the cuts "not all of C", and
    gain.c >= cutoff, on a persistent HiGHS MIP."""

    def __init__(self, sub: Subsystem, threads: int | None = None, run: SolveRun | None = None) -> None:
        import highspy

        self.run = run
        K = sub.num_keys
        self.gain = sub.gain.astype(np.float64)
        inst = MilpInstance(
            blocks={"k": (0, (K,))}, lb=sub.key_lb.astype(np.float64), ub=sub.key_ub.astype(np.float64),
            vtype=np.full(K, BINARY, np.uint8), A=sub.master, row_lo=sub.master_lo, row_hi=sub.master_hi,
            ind_var=np.zeros(0, np.int32), ind_val=np.zeros(0, np.uint8), ind_A=Csr.empty(K),
            ind_lo=np.zeros(0), ind_hi=np.zeros(0),
            c=self.gain, sense="max",
        )
        opts = {"mip_rel_gap": 0.0, "mip_abs_gap": 1e-9}
        if threads is not None:
            opts["threads"] = int(threads)
            highspy.Highs.resetGlobalScheduler(True)  # HiGHS refuses a thread count its running pool does not have
        self.h, _ = build_highs(inst, opts)
        self._ms = highspy.HighsModelStatus
        self.h.addRow(-np.inf, np.inf, K, np.arange(K, dtype=np.int32), sub.gain.astype(np.float64))
        self.cutoff_row = self.h.getNumRow() - 1
        self.K = K

    def add_cuts(self, sets: list[np.ndarray]) -> None:
        """Add "not all of S" for each key index array S."""
        if not sets:
            return
        starts = np.cumsum([0] + [len(c) for c in sets[:-1]]).astype(np.int32)
        idx = np.concatenate(sets).astype(np.int32)
        ub = np.array([len(c) - 1 for c in sets], np.float64)
        self.h.addRows(len(sets), np.full(len(sets), -np.inf), ub, len(idx), starts, idx, np.ones(len(idx)))

    def solve(self, cutoff: float, time_limit: float,
              first: bool = False) -> tuple[str, np.ndarray | None, float | None]:
        """("optimal", chosen, value) | ("infeasible", None, None) | ("limit", chosen or None, bound);
        with `first`, HiGHS stops at its first solution (every solution clears the cutoff, so
        each is a candidate to refute): ("feasible", chosen, HiGHS's dual bound then)."""
        self.h.changeRowBounds(self.cutoff_row, float(cutoff), np.inf)
        self.h.setOptionValue("time_limit", float(max(time_limit, 1e-3)))
        self.h.setOptionValue("mip_max_improving_sols", 1 if first else _NO_LIMIT)
        _run(self.h, self.run)
        ms = self.h.getModelStatus()
        info = self.h.getInfo()
        if ms == self._ms.kOptimal:
            chosen = np.round(np.asarray(self.h.getSolution().col_value)) > 0.5
            return "optimal", chosen, float(self.gain @ chosen)
        if ms == self._ms.kInfeasible:
            return "infeasible", None, None
        if first and ms == self._ms.kSolutionLimit and info.primal_solution_status == 2:
            chosen = np.round(np.asarray(self.h.getSolution().col_value)) > 0.5
            bound = float(info.mip_dual_bound) if np.isfinite(info.mip_dual_bound) else np.inf
            return "feasible", chosen, max(bound, float(self.gain @ chosen))
        if ms not in (self._ms.kTimeLimit, self._ms.kInterrupt, self._ms.kSolutionLimit, self._ms.kIterationLimit):
            raise GdsolverError(f"benders: the master MIP failed in HiGHS ({self.h.modelStatusToString(ms)})")
        bound = float(info.mip_dual_bound) if np.isfinite(info.mip_dual_bound) else None
        has_x = info.primal_solution_status == 2
        return "limit", (np.round(np.asarray(self.h.getSolution().col_value)) > 0.5) if has_x else None, bound


@dataclass
class MfsOutcome:
    chosen: np.ndarray  # best key set found (bool (K,))
    y: np.ndarray | None  # its continuous values (None only when interrupted before any LP answered)
    value: float  # gain of `chosen`
    bound: float  # upper bound on the gain (== value when proven)
    proven: bool
    trace: SearchTrace


def incumbent(sub: Subsystem | SubsystemLP, base: np.ndarray, *, deadline: float = np.inf,
              pairs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The greedy incumbent alone (see `greedy`), for a search that hands it to a MIP.
    Ctrl-C propagates as KeyboardInterrupt."""
    lp = sub if isinstance(sub, SubsystemLP) else SubsystemLP(sub)
    s = lp.sub
    pairs, exact = known_pairs(s, pairs)
    base = base | (s.key_lb > 0.5)
    return greedy(lp, base, s.key_ub > 0.5, Conflicts(s.num_keys, pairs, exact), deadline)


def benders(sub: SubsystemLP | Subsystem, base: np.ndarray, *, time_limit: float | None = None,
            threads: int | None = None, t0: float | None = None, trace: SearchTrace | None = None,
            pairs: np.ndarray | None = None, gap: float = 0.0, run: SolveRun | None = None) -> MfsOutcome:
    """Combinatorial Benders for the maximum-gain feasible key set containing `base` (a
    feasible set, e.g. the keys the current weights satisfy). The master starts with every
    pair conflict (`ir.subsystem.pair_conflicts`); each master choice that the LP rejects is
    cut down, one minimal infeasible subset at a time, to a feasible set, which is then
    extended greedily (a new incumbent when it beats the best). Ctrl-C (KeyboardInterrupt, or
    Interrupted from the master's `run`) ends the search with the best point so far
    (trace.interrupted)."""
    t0 = time.perf_counter() if t0 is None else t0
    trace = trace or SearchTrace()
    state: dict = {"chosen": None, "y": None, "best": -np.inf, "bound": np.inf, "proven": False}
    try:
        _benders_loop(sub, base, state, time_limit=time_limit, threads=threads, t0=t0, trace=trace, pairs=pairs,
                      gap=gap, run=run)
    except (Interrupted, KeyboardInterrupt):  # Ctrl-C: the best point so far is the answer
        trace.interrupted = True
    lp = state.get("lp")
    if lp is not None:
        trace.lp_solves += lp.solves
        trace.lp_time += lp.lp_time
        trace.lp_iterations += lp.iterations
    if state["chosen"] is None:  # interrupted before the first answer: the keys we started from
        state["chosen"] = np.asarray(base, bool).copy()
        state["best"] = float(lp.sub.gain @ state["chosen"]) if lp is not None else 0.0
    return MfsOutcome(state["chosen"], state["y"], state["best"], max(state["bound"], state["best"]),
                      state["proven"], trace)


def _benders_loop(sub, base, state, *, time_limit, threads, t0, trace, pairs, gap, run) -> None:
    """The search itself; keeps its best answer in `state` so that an interruption loses nothing."""
    deadline = np.inf if time_limit is None else t0 + time_limit
    lp = sub if isinstance(sub, SubsystemLP) else SubsystemLP(sub)
    state["lp"] = lp
    s = lp.sub
    gain = s.gain
    allowed = s.key_ub > 0.5
    base = base | (s.key_lb > 0.5)
    step = 1.0 if np.all(gain == np.round(gain)) else 1e-6
    bound = float(gain[allowed].sum())
    chosen, y, rank, pairs, conflicts, free_cuts = _first_incumbent(lp, base, allowed, bound, pairs, deadline)
    best = float(gain @ chosen)
    state.update(chosen=chosen, y=y, best=best, bound=bound)
    trace.events.append((time.perf_counter() - t0, "incumbent", best))
    master = Master(s, threads, run)
    master.add_cuts([np.asarray(p) for p in pairs])
    trace.pair_cuts = len(pairs)
    master.add_cuts(free_cuts)
    trace.free_cuts += len(free_cuts)
    while True:
        now = time.perf_counter()
        state.update(bound=bound)
        if best >= bound - max(1e-9, gap * abs(best)):
            state["proven"] = best >= bound - 1e-9
            break
        if now >= deadline:
            break
        t1 = time.perf_counter()
        status, cand, value = master.solve(best + step - 1e-9, deadline - now, first=MASTER_FIRST)
        if value is not None and step == 1.0:  # integral gains: a dual bound of 55.9999 means 55
            value = float(np.floor(value + 1e-6))
        trace.master_solves += 1
        trace.master_time += time.perf_counter() - t1
        trace.iterations += 1
        if status == "infeasible":
            bound = best
            trace.events.append((time.perf_counter() - t0, "bound", bound))
            continue
        if status == "limit":
            if value is not None:
                state["bound"] = min(bound, value)
            break
        bound = min(bound, value)
        trace.events.append((time.perf_counter() - t0, "bound", bound))
        work = cand.copy()
        new_cuts, settled = _cut_down(lp, work, base, conflicts, deadline, trace)
        if settled:
            ext, y_ext, more = _extend(lp, work, allowed, conflicts, rank, best, deadline, trace)
            new_cuts += more
            if y_ext is not None and gain @ ext > best + 1e-9:
                chosen, y, best = ext, y_ext, float(gain @ ext)
                state.update(chosen=chosen, y=y, best=best)
                trace.events.append((time.perf_counter() - t0, "incumbent", best))
        master.add_cuts(new_cuts)


def _first_incumbent(lp: SubsystemLP, base: np.ndarray, allowed: np.ndarray, bound: float,
                     pairs: np.ndarray | None, deadline: float):
    """The search's start: an elastic round, then keys one by one when it did not take every
    allowed key. (chosen, y, the order extensions try keys in, the pair conflicts, the known
    Conflicts, the infeasible sets the LPs proved on the way)."""
    s = lp.sub
    K, gain = s.num_keys, s.gain
    free_cuts: list[np.ndarray] = []  # infeasible sets the LPs proved on the way (the greedy's failed trials)
    # the elastic LP alone often settles it (every allowed key fits): no pairs needed then
    chosen, y, order = elastic_round(lp, base, allowed, free_cuts)
    if y is None:
        raise GdsolverError("benders: the starting key set is infeasible")
    # the order in which extensions try keys: those the first LP satisfied, then least violated first
    rank = np.full(K, K, np.int64)
    rank[np.flatnonzero(chosen)] = -1
    rank[order] = np.arange(len(order))
    if float(gain @ chosen) < bound - 1e-9:
        pairs, exact = known_pairs(s, pairs)
        conflicts = Conflicts(K, pairs, exact=exact)
        for cut in free_cuts:
            conflicts.add_set(cut)
        chosen, y = one_by_one(lp, chosen, y, order, conflicts, deadline, free_cuts)
    else:
        pairs = np.zeros((0, 2), np.int64)
        conflicts = Conflicts(K, pairs, exact=single_row_keys(s))
    return chosen, y, rank, pairs, conflicts, free_cuts


def _cut_down(lp: SubsystemLP, work: np.ndarray, base: np.ndarray, conflicts: Conflicts, deadline: float,
              trace: SearchTrace) -> tuple[list[np.ndarray], bool]:
    """Cut the master's choice `work` (in place) down to a feasible set, one minimal conflict
    at a time: (the cuts found, whether work is feasible now; not when the deadline came)."""
    gain = lp.sub.gain
    new_cuts = []
    while _conflict(lp, work, None, lp.feasible_basis)[0] is not None:
        if time.perf_counter() > deadline:
            return new_cuts, False
        violated = lp.conflict_mass()
        violated = np.zeros(lp.sub.num_keys) if violated is None else violated
        conflict = minimal_infeasible(lp, work, deadline, conflicts, trace=trace)
        members = np.flatnonzero(conflict)
        new_cuts.append(members)
        trace.cuts += 1
        trace.cut_sizes.append(len(members))
        if len(members) == 2:
            conflicts.add_pair(int(members[0]), int(members[1]))
        else:
            conflicts.add_set(members)
        free = np.flatnonzero(conflict & ~base)
        if len(free) == 0:
            raise GdsolverError("benders: the starting key set is infeasible")
        # drop the cheapest member, the most violated one among equals: it is likely in more conflicts
        order = np.lexsort((-violated[free], gain[free]))
        work[free[order[0]]] = False
    return new_cuts, True


def _extend(lp: SubsystemLP, work: np.ndarray, allowed: np.ndarray, conflicts: Conflicts, rank: np.ndarray,
            best: float, deadline: float, trace: SearchTrace) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray]]:
    """The feasible set `work` extended by keys (EXTEND says how): (keys, their point or None
    when no extension could beat `best`, the infeasible sets proved on the way)."""
    gain = lp.sub.gain
    conflicts.add_feasible(work)
    # extend only when the keys not already ruled out by a known pair could beat the best
    open_ = allowed & ~work & ~conflicts.blocked(work)
    if gain @ work + gain[open_].sum() <= best + 1e-9:
        return work, None, []
    free_cuts: list[np.ndarray] = []
    y_work = lp.last[1]  # the pure feasibility LP's point for work
    if EXTEND == "none":
        ext, y_ext = work, y_work
    elif EXTEND == "trials":  # key by key from work's basis, in the first LP's order (no new elastic LP)
        rest = np.flatnonzero(open_)
        ext, y_ext = one_by_one(lp, work, y_work, rest[np.argsort(rank[rest], kind="stable")], conflicts,
                                deadline, free_cuts)
    else:
        ext, y_ext = greedy(lp, work, allowed, conflicts, deadline=deadline, first_only=True, cuts=free_cuts)
    trace.free_cuts += len(free_cuts)
    return ext, y_ext, free_cuts
