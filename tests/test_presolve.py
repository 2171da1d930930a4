"""Interval presolve, the maximum-feasible-subsystem view, and the searches built on them,
checked against independent routes: a textbook big-M model solved by scipy's milp, the
plain MIP on HiGHS, scipy's linprog for LP feasibility, and intervals recomputed here by
brute force. Everything is tiny and seeded."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from gdsolver.compile import run_search, solve
from gdsolver.compile.mfs import Conflicts, SubsystemLP, benders, greedy, incumbent, minimal_infeasible, single_row_keys
from gdsolver.compile.search import count_fixings
from gdsolver.errors import GdsolverError
from gdsolver.formulate import classification, correct_mask, forward, regression
from gdsolver.ir import BINARY, InstanceBuilder, verify
from gdsolver.ir.presolve import AGGREGATED, DUAL_UP, NEVER_SATISFIED, ROW_BOUND, _Presolver, presolve
from gdsolver.ir.subsystem import pair_conflicts, restrict, subsystem_view

MARGIN = 1e-3


def sweep_data(seed: int, T: int = 10, N: int = 5, M: int = 3):
    """A layer whose features are nonnegative (as after a ReLU); a quarter of the points are
    labelled with the current winner, the rest with the runner-up, so margins are small and
    presolve leaves points of every kind (out, in, undecided) at radii 0.02-0.08."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(M, N)) * 0.3
    b = rng.normal(size=M) * 0.1
    H = np.maximum(rng.normal(size=(T, N)), 0.0) + 0.05 * rng.random((T, N))
    o = H @ W.T + b
    runner_up = np.argsort(o, axis=1)[:, -2]
    y = np.where(rng.random(T) < 0.25, o.argmax(1), runner_up)
    return W, b, H, y


def textbook_optimum(W, b, H, y, r, margin=MARGIN) -> float:
    """max #points with (w_y - w_j).h + b_y - b_j >= margin for all j, |w - W| <= r, |b - b0| <= r,
    at least as many as now: big-M rows with M from a brute-force bound, dense, scipy milp."""
    M, N = W.shape
    T = len(y)
    nw, nb = M * N, M
    n = nw + nb + T
    rows, lo = [], []
    for t in range(T):
        for j in range(M):
            if j == y[t]:
                continue
            row = np.zeros(n)
            row[y[t] * N:(y[t] + 1) * N] += H[t]
            row[j * N:(j + 1) * N] -= H[t]
            row[nw + y[t]] += 1
            row[nw + j] -= 1
            lowest = sum(min(row[k] * (W.ravel()[k] - r), row[k] * (W.ravel()[k] + r)) for k in range(nw)) + \
                (b[y[t]] - r) - (b[j] + r)
            big = margin - lowest
            row[nw + nb + t] = -max(big, 0.0)  # c_t = 1 => row >= margin
            rows.append(row)
            lo.append(margin - max(big, 0.0))
    count0 = int(correct_mask(forward(W, b, H, "identity"), y, margin).sum())
    cnt = np.zeros(n)
    cnt[nw + nb:] = 1
    cons = [LinearConstraint(np.array(rows), np.array(lo), np.inf), LinearConstraint(cnt[None], count0, np.inf)]
    lb = np.concatenate([W.ravel() - r, b - r, np.zeros(T)])
    ub = np.concatenate([W.ravel() + r, b + r, np.ones(T)])
    integ = np.concatenate([np.zeros(nw + nb), np.ones(T)])
    res = milp(-cnt, constraints=cons, integrality=integ, bounds=Bounds(lb, ub))
    assert res.status == 0, res.message
    return -res.fun


def brute_intervals(W, b, H, y, r):
    """Lowest and highest value of o_y - o_j over the box, per (t, j) (j = y gets +inf: no test)."""
    T, M = len(y), W.shape[0]
    lo = np.full((T, M), np.inf)
    hi = np.full((T, M), np.inf)
    for t, j in itertools.product(range(T), range(M)):
        if j == y[t]:
            continue
        d = W[y[t]] - W[j]
        base = H[t] @ d + b[y[t]] - b[j]
        spread = 2 * r * (np.abs(H[t]).sum() + 1)  # each weight of both rows moves by r
        lo[t, j], hi[t, j] = base - spread, base + spread
    return lo, hi


CASES = [(seed, mode, r) for seed in range(6) for mode in ("compact", "paper") for r in (0.02, 0.08)]


@pytest.mark.parametrize("seed,mode,r", CASES)
def test_presolve_keeps_the_optimum_classification(seed, mode, r):
    W, b, H, y = sweep_data(seed)
    inst = classification(W, b, H, y, radius=r, mode=mode, margin=MARGIN)
    ref = textbook_optimum(W, b, H, y, r)
    plain = solve(inst, time_limit=60)
    assert plain.status == "OPTIMAL" and plain.objective == pytest.approx(ref)
    pre = presolve(inst)
    assert pre.status == "reduced"
    red = pre.instance
    res = solve(red, time_limit=60) if red.is_mip else solve(red)
    assert res.status == "OPTIMAL"
    x = pre.map.to_original(res.x)
    rep = verify(inst, x)
    assert rep.ok, rep
    assert inst.objective_value(x) == pytest.approx(ref)
    # the reduced instance's objective equals the original's at the mapped point
    assert red.objective_value(res.x) == pytest.approx(inst.objective_value(x))


@pytest.mark.parametrize("seed,mode", [(s, m) for s in range(6) for m in ("compact", "paper")])
def test_every_fixed_point_is_justified_by_its_interval(seed, mode):
    r = 0.05
    W, b, H, y = sweep_data(seed, T=14)
    inst = classification(W, b, H, y, radius=r, mode=mode, margin=MARGIN)
    pre = presolve(inst)
    lo, hi = brute_intervals(W, b, H, y, r)
    off, _ = inst.blocks["c"]
    T = len(y)
    fixed = pre.lb[off:off + T] == pre.ub[off:off + T]
    value = pre.lb[off:off + T]
    never = np.any(hi < MARGIN, axis=1)  # some class cannot be beaten by the margin anywhere in the box
    always = np.all(lo >= MARGIN, axis=1)  # every class is beaten everywhere in the box
    # the interval of a final layer's margin is exact, so presolve must find exactly these
    np.testing.assert_array_equal(fixed & (value == 0), never)
    assert never.any() and (~never).any(), "the seeds should give points of both kinds"
    # in: correct everywhere in the box, or needed by "at least as many as now" once the out
    # points are gone (then every remaining point must be in)
    fixed_in = fixed & (value == 1)
    if (~never).sum() == inst.meta["current_correct"]:
        np.testing.assert_array_equal(fixed_in, ~never)
    else:
        np.testing.assert_array_equal(fixed_in, always)
    cnt = count_fixings(inst, pre)
    assert (cnt["out"], cnt["in"]) == (int(never.sum()), int(fixed_in.sum()))
    # the recorded evidence of an "out" point is an indicator on that point's binary whose
    # expression cannot reach its bound under the final (implied) bounds
    for t in np.flatnonzero(never):
        v = off + t
        if pre.reason[v] == NEVER_SATISFIED:
            k = pre.evidence[v]
            assert inst.ind_var[k] == v
            row = slice(inst.ind_A.indptr[k], inst.ind_A.indptr[k + 1])
            a, cols = inst.ind_A.data[row], inst.ind_A.indices[row]
            expr_hi = np.sum(np.maximum(a * pre.lb[cols], a * pre.ub[cols]))
            assert expr_hi < inst.ind_lo[k]


def test_points_always_correct_are_fixed_in():
    # a big box around weights that already classify every point with room to spare
    rng = np.random.default_rng(3)
    H = np.maximum(rng.normal(size=(8, 4)), 0) + 0.1
    W = np.zeros((3, 4))
    b = np.array([5.0, 0.0, 0.0])
    y = np.zeros(8, np.int64)
    y[:2] = 1  # two points labelled 1 cannot be fixed with r = 0.01
    inst = classification(W, b, H, y, radius=0.01, mode="compact")
    pre = presolve(inst)
    cnt = count_fixings(inst, pre)
    assert cnt == {"points": 8, "out": 2, "in": 6, "free": 0}
    out = run_search(inst, search="presolve")
    assert out.status == "OPTIMAL" and out.objective == 6
    assert verify(inst, out.x).ok
    # fixed in by the count row (6 correct now, 6 can be) or by dual fixing
    assert np.all(np.isin(pre.reason[inst.blocks["c"][0] + 2:inst.blocks["c"][0] + 8], (DUAL_UP, ROW_BOUND)))


def test_paper_mode_reduces_to_the_compact_shape():
    W, b, H, y = sweep_data(1, T=12)
    paper = presolve(classification(W, b, H, y, radius=0.05, mode="paper"))
    compact = presolve(classification(W, b, H, y, radius=0.05, mode="compact"))
    assert paper.instance.num_integer == compact.instance.num_integer
    assert paper.instance.num_indicators == compact.instance.num_indicators
    assert np.any(paper.reason == AGGREGATED)
    assert subsystem_view(paper.instance)[0] is not None


@pytest.mark.parametrize("seed", range(4))
def test_presolve_keeps_the_optimum_relu_and_regression(seed):
    W, b, H, y = sweep_data(seed, T=8, N=4)
    rng = np.random.default_rng(seed)
    instances = [
        classification(W, b, H, y, radius=0.05, activation="relu", mode="compact"),
        classification(W, b, H, y, radius=0.05, activation="relu", mode="paper"),
        regression(W, b, H, rng.normal(size=(8, 3)), radius=0.1, activation="relu", mode="l1"),
        regression(W, b, H, rng.normal(size=(8, 3)), radius=0.1, activation="relu", mode="paper", margin=1e-3),
        regression(W, b, H, rng.normal(size=(8, 3)), radius=0.1, mode="l1"),
    ]
    for inst in instances:
        plain = solve(inst, time_limit=60)
        pre = presolve(inst)
        if plain.status == "INFEASIBLE":
            assert pre.status == "infeasible" or solve(pre.instance).status == "INFEASIBLE"
            continue
        assert plain.status == "OPTIMAL", plain.message
        assert pre.status == "reduced", pre.message
        res = solve(pre.instance, time_limit=60)
        assert res.status == "OPTIMAL"
        x = pre.map.to_original(res.x)
        assert verify(inst, x).ok
        assert inst.objective_value(x) == pytest.approx(plain.objective, rel=1e-6, abs=1e-6)


def test_relu_out_points_are_justified():
    """With a ReLU output the margin passes through o in [0, relu(a_hi)] (and o >= a_lo once
    the sign is decided): every point presolve puts out must fail that bound."""
    for seed in range(4):
        W, b, H, y = sweep_data(seed, T=12)
        r = 0.03
        inst = classification(W, b, H, y, radius=r, activation="relu", mode="compact")
        pre = presolve(inst)
        a = H @ W.T + b
        spread = r * (np.abs(H).sum(1) + 1)[:, None]
        o_hi, o_lo = np.maximum(a + spread, 0), np.maximum(a - spread, 0)
        off = inst.blocks["c"][0]
        for t in range(len(y)):
            if pre.lb[off + t] == pre.ub[off + t] == 0:
                best = o_hi[t, y[t]] - np.delete(o_lo[t], y[t])
                assert np.any(best < MARGIN), (seed, t)


@pytest.mark.parametrize("seed", range(4))
def test_presolve_incremental_row_stats_and_locks_match_a_fresh_pass(seed):
    # presolve recomputes the indicators' intervals only on rows whose variables' bounds moved,
    # and subtracts dead indicators from the locks: the same numbers as a pass over everything
    W, b, H, y = sweep_data(seed, T=14)
    inst = classification(W, b, H, y, radius=0.05, mode="paper", margin=MARGIN)
    rng = np.random.default_rng(seed)
    p = _Presolver(inst, 50)
    for _ in range(3):
        p._ind_stats()
        p._locks()
        # move bounds: fix some binaries, shrink some continuous boxes, kill some indicators
        free_bin = np.flatnonzero(p.integer & (p.lb < p.ub))
        fix = rng.choice(free_bin, size=min(3, len(free_bin)), replace=False)
        p.lb[fix] = p.ub[fix] = rng.integers(0, 2, len(fix))
        cont = np.flatnonzero(~p.integer)
        shrink = rng.choice(cont, size=5, replace=False)
        p.lb[shrink] += 0.3 * (p.ub[shrink] - p.lb[shrink])
        p.ind_alive[rng.choice(inst.num_indicators, size=4, replace=False)] = False
        cached, (up, down) = p._ind_stats(), p._locks()
        fresh = p._row_stats(p.ind_A)
        assert np.array_equal(cached, fresh)  # bit for bit
        p._ind_locks = None
        up2, down2 = p._locks()
        assert np.array_equal(up, up2) and np.array_equal(down, down2)


def test_generic_reductions_and_infeasibility():
    # z1 => x >= 2 with x in [0, 1]: z1 must be 0. z2 => x >= 0: always true, z2 goes up by
    # dual fixing (max z1 + z2). Row x + y >= 3 with y <= 1.5 cannot hold: infeasible.
    bld = InstanceBuilder()
    x = bld.add_block("x", (2,), lb=0.0, ub=[1.0, 1.5])
    z = bld.add_block("z", (2,), lb=0.0, ub=1.0, vtype=BINARY, cost=1.0)
    bld.add_indicators("g", z, 1, np.array([0, 1]), np.array([x[0], x[0]]), np.ones(2), lo=[2.0, 0.0], hi=np.inf)
    inst = bld.build("max")
    pre = presolve(inst)
    assert pre.status == "reduced"
    assert pre.lb[z[0]] == pre.ub[z[0]] == 0 and pre.lb[z[1]] == pre.ub[z[1]] == 1
    assert pre.instance.num_integer == 0 and pre.instance.num_indicators == 0
    bld.add_rows("r", np.array([0, 0]), np.array([x[0], x[1]]), np.ones(2), 1, lo=3.0, hi=np.inf)
    bad = presolve(bld.build("max"))
    assert bad.status == "infeasible" and "row" in bad.message
    out = run_search(bld.build("max"), search="presolve")
    assert out.status == "INFEASIBLE"


def _lp_feasible(sub, keys) -> bool:
    """Independent check with scipy linprog: the rows of `keys` over the continuous box."""
    rows = np.flatnonzero(np.isin(sub.group, keys))
    dense = np.zeros((len(rows), len(sub.cols)))
    for i, rr in enumerate(rows):
        sl = slice(sub.rows.indptr[rr], sub.rows.indptr[rr + 1])
        dense[i, sub.rows.indices[sl]] = sub.rows.data[sl]
    lo, hi = sub.rows_lo[rows], sub.rows_hi[rows]
    A = np.vstack([-dense[np.isfinite(lo)], dense[np.isfinite(hi)]])
    rhs = np.concatenate([-lo[np.isfinite(lo)], hi[np.isfinite(hi)]])
    res = linprog(np.zeros(len(sub.cols)), A_ub=A, b_ub=rhs + 1e-9, bounds=list(zip(sub.col_lb, sub.col_ub)),
                  method="highs")
    return res.status == 0


def _subsystem(seed: int, radius: float, **data):
    """The presolved compact sweep of sweep_data(seed, **data) in its maximum-feasible-subsystem
    view (with the presolved instance, whose start gives the current points)."""
    W, b, H, y = sweep_data(seed, **data)
    pre = presolve(classification(W, b, H, y, radius=radius, mode="compact"))
    sub, why = subsystem_view(pre.instance)
    assert sub is not None, why
    return pre.instance, sub


@pytest.mark.parametrize("seed", range(4))
def test_pair_conflicts_and_minimal_conflicts_against_linprog(seed):
    _, sub = _subsystem(seed, 0.06, T=14, N=4)
    pairs = {tuple(p) for p in pair_conflicts(sub)}
    # the screen in blocks of a few columns (a many-class head's path) finds the same pairs
    assert {tuple(p) for p in pair_conflicts(sub, chunk_entries=5)} == pairs
    single_row = np.bincount(sub.group, minlength=sub.num_keys) == 1
    for a, c in itertools.combinations(range(sub.num_keys), 2):
        feasible = _lp_feasible(sub, [a, c])
        if (a, c) in pairs:
            assert not feasible, (a, c)
        elif single_row[a] and single_row[c]:
            assert feasible, (a, c)  # for one row each the closed form is exact
    # a minimal infeasible subset: infeasible, and feasible without any one member
    lp = SubsystemLP(sub)
    allk = np.ones(sub.num_keys, bool)
    if not lp.feasible(allk):
        conflict = np.flatnonzero(minimal_infeasible(lp, allk))
        assert not _lp_feasible(sub, conflict)
        for k in conflict:
            assert _lp_feasible(sub, np.setdiff1d(conflict, [k]))


@pytest.mark.parametrize("seed", range(4))
def test_free_cuts_and_ray_conflicts_are_infeasible(seed):
    """The greedy's failed trials hand their Farkas rays' keys to the master as cuts, and the
    deletion filter may stop at an unsettled test: every such set must be infeasible
    (linprog), and the filter with time to settle every test still finds a minimal one."""
    red, sub = _subsystem(seed + 40, 0.04, T=30, N=6, M=4)
    base = red.start[sub.keys] > 0.5
    cuts: list[np.ndarray] = []
    conflicts = Conflicts(sub.num_keys, pair_conflicts(sub), single_row_keys(sub))
    chosen, yv = greedy(SubsystemLP(sub), base, sub.key_ub > 0.5, conflicts, cuts=cuts)
    assert _lp_feasible(sub, np.flatnonzero(chosen))
    for cut in cuts:
        assert len(cut) >= 2 and not _lp_feasible(sub, cut), cut
    allk = np.ones(sub.num_keys, bool)
    lp = SubsystemLP(sub)
    if lp.feasible(allk):
        return
    rough = np.flatnonzero(minimal_infeasible(lp, allk, iteration_limit=1))  # every filter test unsettled
    assert not _lp_feasible(sub, rough)
    exact = np.flatnonzero(minimal_infeasible(SubsystemLP(sub), allk, iteration_limit=None))
    assert not _lp_feasible(sub, exact)
    for k in exact:
        assert _lp_feasible(sub, np.setdiff1d(exact, [k]))


@pytest.mark.parametrize("seed", range(4))
def test_known_feasible_sets_answer_filter_tests_correctly(seed):
    """Sets the LPs found feasible are recorded, and a deletion-filter test inside one (or a
    pair of one-row keys not listed by pair_conflicts) is answered without an LP: every
    recorded set and every such answer is feasible (linprog), and the filter sharing that
    record still returns a minimal infeasible set."""
    red, sub = _subsystem(seed + 40, 0.04, T=30, N=6, M=4)
    base = red.start[sub.keys] > 0.5
    conflicts = Conflicts(sub.num_keys, pair_conflicts(sub), single_row_keys(sub))
    greedy(SubsystemLP(sub), base, sub.key_ub > 0.5, conflicts)
    allk = np.ones(sub.num_keys, bool)
    lp = SubsystemLP(sub)
    if not lp.feasible(allk):
        exact = np.flatnonzero(minimal_infeasible(lp, allk, conflicts=conflicts, iteration_limit=None))
        assert not _lp_feasible(sub, exact)
        for k in exact:
            assert _lp_feasible(sub, np.setdiff1d(exact, [k]))
    recorded = conflicts._feasible if not conflicts._feasible_pending else np.vstack(
        [conflicts._feasible, np.stack(conflicts._feasible_pending)])
    assert len(recorded) > 0
    rng = np.random.default_rng(seed)
    for row in recorded:
        assert _lp_feasible(sub, np.flatnonzero(row))
        inside = rng.choice(np.flatnonzero(row), size=max(1, int(row.sum()) // 2), replace=False)
        assert conflicts.known_feasible(np.sort(inside))
    for size in (2, 2, 3, 4, 6):
        keys = np.sort(rng.choice(sub.num_keys, size=size, replace=False))
        if conflicts.known_feasible(keys):
            assert _lp_feasible(sub, keys), keys


def test_subsystem_lp_leaves_unused_columns_out():
    """Weights that no row touches (a feature zero on every point) are not in the LP: they
    come back at their box's middle (the current weights), the rows hold at the LP's point,
    and feasibility answers agree with linprog on the whole subsystem."""
    W, b, H, y = sweep_data(7, T=20, N=5, M=3)
    H[:, [0, 3]] = 0.0
    inst = classification(W, b, H, y, radius=0.05, mode="compact")
    sub, why = subsystem_view(presolve(inst).instance)
    assert sub is not None, why
    lp = SubsystemLP(sub)
    used = np.zeros(len(sub.cols), bool)
    used[sub.rows.indices] = True
    assert lp.nc == used.sum() < len(sub.cols)
    rng = np.random.default_rng(0)
    for _ in range(12):
        keys = np.sort(rng.choice(sub.num_keys, size=rng.integers(1, 6), replace=False))
        on = np.zeros(sub.num_keys, bool)
        on[keys] = True
        feasible = lp.feasible(on)
        assert feasible == _lp_feasible(sub, keys), keys
        if feasible:
            yv = lp.last[1]
            assert np.allclose(yv[~used], 0.5 * (sub.col_lb + sub.col_ub)[~used])
            assert np.all(yv >= sub.col_lb - 1e-9) and np.all(yv <= sub.col_ub + 1e-9)
            rows = np.flatnonzero(on[sub.group])
            act = sub.rows.matvec(yv)[rows]
            assert np.all(act >= sub.rows_lo[rows] - 1e-7) and np.all(act <= sub.rows_hi[rows] + 1e-7)


def test_restricted_subsystem_answers_the_same_feasibility_questions():
    """restrict(sub, keep) keeps the kept keys' rows and the columns they use: every subset of
    the kept keys is feasible there exactly when it is in the whole (linprog on the whole)."""
    W, b, H, y = sweep_data(3, T=30, N=6, M=4)
    inst = classification(W, b, H, y, radius=0.03, mode="compact")
    sub, why = subsystem_view(presolve(inst).instance)
    assert sub is not None, why
    rng = np.random.default_rng(0)
    answers = []
    for _ in range(6):
        keep = rng.random(sub.num_keys) < 0.7
        small = restrict(sub, keep)
        assert small.num_keys == keep.sum() and len(small.cols) <= len(sub.cols)
        members = np.flatnonzero(keep)
        lp = SubsystemLP(small)
        for _ in range(4):
            pick = rng.random(len(members)) < 0.8
            lp.set(pick, hard=pick)
            v, _, _ = lp.solve()
            feasible = _lp_feasible(sub, members[pick])
            assert (v <= 1e-7) == feasible
            answers.append(feasible)
    assert 0 < sum(answers) < len(answers)  # both answers were checked


# sizes where Benders needs cuts found by LPs, not only the pair conflicts
SEARCH_CASES = [(seed, 40, 8, 4, 0.03) for seed in range(4)] + [(1, 30, 6, 4, 0.04), (0, 14, 5, 3, 0.05)]
HARD_SEARCH_CASE = (1, 30, 6, 4, 0.04)  # half the time of all six (HiGHS takes seconds on it): -m slow


@pytest.mark.parametrize("cases", [
    pytest.param([c for c in SEARCH_CASES if c != HARD_SEARCH_CASE], id="five"),
    pytest.param([HARD_SEARCH_CASE], id="hard", marks=pytest.mark.slow)])
@pytest.mark.parametrize("mode", ["compact", "paper"])
def test_searches_agree_with_the_plain_mip_and_scipy(mode, cases):
    lp_cuts = 0
    for seed, T, N, M, r in cases:
        W, b, H, y = sweep_data(seed, T=T, N=N, M=M)
        inst = classification(W, b, H, y, radius=r, mode=mode)
        ref = textbook_optimum(W, b, H, y, r)
        left = presolve(inst).instance.is_mip  # else presolve decides every point and nothing is searched
        for search in ("mip", "presolve", "benders", "auto"):
            out = run_search(inst, search=search, time_limit=60)
            res = out
            assert res.status == "OPTIMAL", (search, res.message)
            assert verify(inst, res.x).ok
            assert res.objective == pytest.approx(ref), (seed, search)
            assert res.bound == pytest.approx(ref), (seed, search)
            expected = search if search in ("mip", "presolve") else ("benders" if left else "presolve")
            assert res.options["search"] == out.search["search"] == expected
            if out.search["search"] == "benders":
                lp_cuts += out.search["trace"]["cuts"]
    assert lp_cuts > 0, "the cases should make Benders cut beyond the pair conflicts"


def test_benders_without_the_pair_screen_still_proves_the_optimum(monkeypatch):
    """Above PAIR_SCREEN_MAX_ROWS rows (a head with many classes) the quadratic pair screen is
    skipped: no pair is known, and none may be taken as compatible (the one-row keys lose their
    "exact" flag). Benders must then find every conflict by LP and prove the same optimum."""
    import gdsolver.compile.mfs as mfs

    _, sub = _subsystem(0, 0.06, T=14, N=4)
    assert pair_conflicts(sub, max_rows=1) is None
    assert pair_conflicts(sub, max_work=0) is None and pair_conflicts(sub, max_candidates=0) is None
    pairs, exact = mfs.known_pairs(sub, None)
    assert len(pairs) and exact.any()  # normally: pairs, and one-row keys marked exact
    monkeypatch.setattr(mfs, "pair_conflicts", lambda s, tol=1e-7: None)
    pairs, exact = mfs.known_pairs(sub, None)
    assert len(pairs) == 0 and not exact.any()
    for seed, T, N, M, r in SEARCH_CASES[:3]:
        W, b, H, y = sweep_data(seed, T=T, N=N, M=M)
        inst = classification(W, b, H, y, radius=r, mode="compact")
        out = run_search(inst, search="benders", time_limit=60)
        assert out.status == "OPTIMAL" and verify(inst, out.x).ok
        assert out.objective == pytest.approx(textbook_optimum(W, b, H, y, r)), seed
        assert out.search["trace"]["pair_cuts"] == 0


@pytest.mark.parametrize("seed", range(5))
def test_incumbent_is_feasible_and_no_worse_than_the_start(seed):
    W, b, H, y = sweep_data(seed + 20, T=16)
    inst = classification(W, b, H, y, radius=0.03, mode="compact")
    start_value = inst.objective_value(inst.start)
    assert start_value == inst.meta["current_correct"]
    pre = presolve(inst)
    sub, _ = subsystem_view(pre.instance)
    base = pre.instance.start[sub.keys] > 0.5
    chosen, yv = incumbent(sub, base)
    assert np.all(chosen[base])  # every point the current weights get right stays
    x = pre.map.to_original(sub.solution(pre.instance, chosen, yv))
    assert verify(inst, x).ok
    assert inst.objective_value(x) >= start_value
    # Benders stopped right after its first incumbent still answers with a verified point
    out = benders(sub, base, time_limit=1e-9)
    x = pre.map.to_original(sub.solution(pre.instance, out.chosen, out.y))
    assert verify(inst, x).ok and inst.objective_value(x) >= start_value


def test_time_limited_search_reports_feasible_with_a_bound():
    from gdsolver.bench.sweep_instances import mnist_head_sweep

    inst = mnist_head_sweep(0, 0.002, points=32)
    out = run_search(inst, search="benders", time_limit=0.5)
    res = out
    assert res.status in ("FEASIBLE", "OPTIMAL")
    assert verify(inst, res.x).ok and res.objective >= inst.meta["current_correct"]
    assert res.bound is not None and res.bound >= res.objective


def test_benders_refuses_another_shape_and_bad_search():
    W, b, H, y = sweep_data(0, T=6)
    relu = classification(W, b, H, y, radius=0.05, activation="relu", mode="compact")
    with pytest.raises(GdsolverError, match="maximum-feasible-subsystem"):
        run_search(relu, search="benders")
    out = run_search(relu, search="auto")
    assert out.search["search"] == "mip" and out.status == "OPTIMAL"
    with pytest.raises(GdsolverError, match="search"):
        run_search(relu, search="fast")


def test_cli_solve_search_and_inspect_presolve(tmp_path):
    import json

    from clirun import assert_user_error, run

    from gdsolver.ir import save

    W, b, H, y = sweep_data(1, T=30, N=6, M=4)
    inst = classification(W, b, H, y, radius=0.04, mode="paper")
    save(inst, tmp_path / "s.gdsm")
    ref = textbook_optimum(W, b, H, y, 0.04)
    p = run("solve", "s.gdsm", "--search", "benders", "-o", "b.json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    rec = json.loads((tmp_path / "b.json").read_text())
    assert rec["status"] == "OPTIMAL" and rec["objective"] == pytest.approx(ref)
    assert rec["options"]["search"] == "benders"
    assert "points out" in p.stdout
    p = run("solve", "s.gdsm", "--search", "mip", "-o", "m.json", cwd=tmp_path)
    assert json.loads((tmp_path / "m.json").read_text())["objective"] == pytest.approx(ref)
    p = run("inspect", "s.gdsm", "--json", cwd=tmp_path)
    doc = json.loads(p.stdout)
    pre = presolve(inst)
    assert doc["presolve"]["counts"] == count_fixings(inst, pre)
    assert doc["presolve"]["reduced"]["binary"] == pre.instance.num_integer
    p = run("inspect", "s.gdsm", cwd=tmp_path)
    assert "presolve" in p.stdout and "points" in p.stdout
    assert_user_error(run("solve", "s.gdsm", "--search", "quick", cwd=tmp_path), "search", "quick")


@pytest.mark.parametrize("mode", ["compact", "paper"])
def test_kept_points_stay_correct_in_every_search(mode):
    """keep_correct points are fixed in the instance: presolve turns their indicators into rows
    that always hold, which the LP search keeps as its base rows."""
    for seed, T, N, M, r in SEARCH_CASES[:3]:
        W, b, H, y = sweep_data(seed, T=T, N=N, M=M)
        correct = np.flatnonzero(correct_mask(forward(W, b, H, "identity"), y, MARGIN))
        keep = correct[: max(1, len(correct) // 2)]
        inst = classification(W, b, H, y, radius=r, mode=mode, keep_correct=keep)
        plain = solve(inst, time_limit=60)
        assert plain.status == "OPTIMAL"
        for search in ("presolve", "benders"):
            out = run_search(inst, search=search, time_limit=60)
            assert out.status == "OPTIMAL" and verify(inst, out.x).ok
            assert out.objective == pytest.approx(plain.objective)
            c = inst.unpack(out.x)["c"]
            assert np.all(c[keep] == 1)
            o = forward(inst.unpack(out.x)["w"], inst.unpack(out.x)["b"], H, "identity")
            assert np.all(correct_mask(o, y, MARGIN / 2)[keep])  # a forward pass agrees
