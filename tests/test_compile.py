"""Backends (HiGHS, Gurobi), solve results on disk, and MPS/LP export."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os

import numpy as np
import pytest

from gdsolver.compile import get_backend, load_result, result_paths, save_result, solve
from gdsolver.compile.result import SolveResult
from gdsolver.errors import FormatError, GdsolverError, LicenseLimitError
from gdsolver.formulate import classification, regression
from gdsolver.ir import BINARY, INTEGER, InstanceBuilder, fingerprint, verify

# ---------------------------------------------------------------------------------
# instances
# ---------------------------------------------------------------------------------


def _layer(seed, T, N, M):
    rng = np.random.default_rng(seed)
    return rng, rng.normal(size=(M, N)), rng.normal(size=M), rng.normal(size=(T, N))


def _two_var(vtype, *, unbounded=False, infeasible=False):
    """max x0 + x1 s.t. x0 - x1 <= 1, x >= 0 (unbounded);  or x in [0, 1], x0 + x1 >= 3
    (infeasible)."""
    bld = InstanceBuilder()
    if unbounded:
        x = bld.add_block("x", (2,), lb=0.0, vtype=vtype, cost=1.0)
        bld.add_rows("r", np.array([0, 0]), x, np.array([1.0, -1.0]), 1, lo=-np.inf, hi=1.0)
        return bld.build("max")
    assert infeasible
    x = bld.add_block("x", (2,), lb=0.0, ub=1.0, vtype=vtype, cost=1.0)
    bld.add_rows("r", np.array([0, 0]), x, np.array([1.0, 1.0]), 1, lo=3.0, hi=np.inf)
    return bld.build("min")


def _small_instances():
    """One small instance of every formulation (all well inside Gurobi's free licence)."""
    rng, W, b, H = _layer(0, 10, 2, 3)
    Y = rng.normal(size=(10, 3))
    labels = rng.integers(0, 3, 10)
    Wt = W + rng.uniform(-0.05, 0.05, W.shape)
    out = {}
    for act in ("identity", "relu"):
        out[f"reg-l1-{act}"] = regression(W, b, H, Y, radius=0.4, activation=act)
        Yx = np.maximum(H @ Wt.T + b, 0) if act == "relu" else H @ Wt.T + b
        out[f"reg-paper-{act}"] = regression(W, b, H, Yx, radius=0.2, activation=act, mode="paper", margin=0.005)
        out[f"reg-paper-infeasible-{act}"] = regression(W, b, H, Y, radius=0.1, activation=act, mode="paper",
                                                        margin=1e3)
        for mode in ("paper", "compact"):
            out[f"class-{mode}-{act}"] = classification(W, b, H, labels, radius=0.5, activation=act, mode=mode)
    return out


def _hard_instance():
    rng, W, b, H = _layer(1, 200, 20, 10)
    return classification(W, b, H, rng.integers(0, 10, 200), radius=1.0, activation="relu", mode="compact")


def _gurobi_solve(inst, **kw):
    try:
        return solve(inst, backend="gurobi", **kw)
    except LicenseLimitError as exc:
        pytest.skip(f"needs more than the available Gurobi licence: {exc}")


# ---------------------------------------------------------------------------------
# HiGHS
# ---------------------------------------------------------------------------------


def test_get_backend():
    assert get_backend("highs").name == "highs"
    assert get_backend("highs").supports("mip_start")
    assert not get_backend("highs").supports("indicators")
    assert get_backend("gurobi").supports("indicators")  # no gurobipy needed to ask
    assert get_backend("auto").name == "auto" and not get_backend("auto").supports("indicators")
    with pytest.raises(GdsolverError, match="unknown backend"):
        get_backend("cplex")


@pytest.mark.parametrize("kw", [
    dict(options={"no_such_option": 1}),
    dict(options={"time_limit": "soon"}),
    dict(options={"presolve": 17}),
    dict(time_limit=0),
    dict(time_limit=-1.0),
    dict(threads=0),
    dict(threads=1.5),
    dict(mip_gap=-0.1),
], ids=["unknown-option", "bad-type", "bad-value", "time0", "time-neg", "threads0", "threads-frac", "gap-neg"])
def test_highs_bad_options(kw):
    inst = _small_instances()["class-compact-identity"]
    with pytest.raises(GdsolverError):
        solve(inst, **kw)


@pytest.mark.parametrize("vtype", [0, INTEGER], ids=["lp", "mip"])
def test_highs_unbounded(vtype):
    res = solve(_two_var(vtype, unbounded=True))
    assert res.status == "UNBOUNDED"
    assert res.x is None and res.objective is None


@pytest.mark.parametrize("vtype", [0, INTEGER, BINARY], ids=["lp", "int", "bin"])
def test_highs_infeasible(vtype):
    res = solve(_two_var(vtype, infeasible=True))
    assert res.status == "INFEASIBLE"
    assert res.x is None and res.objective is None


def test_highs_time_limit():
    """An incumbent at the time limit is FEASIBLE with bound and gap; none is TIME_LIMIT."""
    inst = _hard_instance()
    res = solve(inst, time_limit=0.05)
    assert res.x is not None  # with the MIP start there is always a point; it must be a good one
    assert res.status == "FEASIBLE" and "time limit" in res.message.lower()
    assert verify(inst, res.x).ok
    assert res.objective >= inst.meta["current_correct"]
    if res.bound is not None:  # HiGHS may stop before its root bound is finite
        assert res.bound >= res.objective and res.gap is not None and res.gap > 0
    cold = solve(inst, time_limit=0.001, use_start=False)
    assert (cold.status, cold.x is None) in (("TIME_LIMIT", True), ("FEASIBLE", False))


def test_highs_uses_mip_start():
    """With no branch-and-bound nodes allowed HiGHS finds nothing by itself: the point
    it returns must be the MIP start (current weights)."""
    inst = _small_instances()["class-compact-relu"]
    opts = {"mip_max_nodes": 0, "presolve": "off", "mip_heuristic_effort": 0.0}
    res = solve(inst, options=opts)
    assert res.x is not None
    assert verify(inst, res.x).ok
    assert res.objective >= inst.meta["current_correct"]
    assert res.options["use_start"] is True
    without = solve(inst, options=opts, use_start=False)
    assert without.x is None  # so the start really made the difference


def test_highs_result_fields():
    insts = _small_instances()
    lp = insts["reg-l1-identity"]
    res = solve(lp, threads=1, mip_gap=1e-6)
    assert res.status == "OPTIMAL"
    assert res.backend == "highs" and res.backend_version.count(".") == 2
    assert res.instance_fingerprint == fingerprint(lp)
    assert res.runtime_s >= 0
    assert res.bound == pytest.approx(res.objective) and res.gap == 0.0
    assert res.options["threads"] == 1 and res.options["mip_gap"] == 1e-6
    assert res.objective == pytest.approx(lp.objective_value(res.x))
    assert res.x.dtype == np.float64 and res.x.shape == (lp.num_vars,)

    mip = insts["class-paper-relu"]
    res = solve(mip)
    assert res.status == "OPTIMAL" and res.nodes is not None
    assert res.bound is not None and res.bound >= res.objective - 1e-6  # max problem
    assert res.gap is not None and res.gap <= 1e-4 + 1e-12
    assert verify(mip, res.x).ok


@pytest.mark.parametrize("name", sorted(_small_instances()))
def test_highs_solutions_verify(name):
    inst = _small_instances()[name]
    res = solve(inst)
    if "infeasible" in name:
        assert res.status == "INFEASIBLE"
        return
    assert res.status == "OPTIMAL", res.message
    assert verify(inst, res.x).ok
    # never worse than the current weights
    cur = inst.meta["current_objective"]
    assert (res.objective >= cur - 1e-9) if inst.sense == "max" else (res.objective <= cur + 1e-9)


def test_solve_does_not_modify_instance():
    inst = _small_instances()["class-paper-relu"]
    fp, start = fingerprint(inst), inst.start.copy()
    solve(inst)
    assert fingerprint(inst) == fp and inst.num_indicators > 0
    np.testing.assert_array_equal(inst.start, start)


# ---------------------------------------------------------------------------------
# Gurobi
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(_small_instances()))
def test_gurobi_agrees_with_highs(gurobi, name):
    inst = _small_instances()[name]
    assert inst.num_vars <= 2000 and inst.num_rows <= 2000
    h = solve(inst, mip_gap=0.0)
    g = _gurobi_solve(inst, mip_gap=0.0)
    assert g.backend == "gurobi" and g.instance_fingerprint == fingerprint(inst)
    assert g.status == h.status
    if h.status == "INFEASIBLE":
        assert g.x is None
        return
    assert g.status == "OPTIMAL"
    assert verify(inst, g.x).ok, verify(inst, g.x)
    assert g.objective == pytest.approx(h.objective, abs=1e-6 * max(1.0, abs(h.objective)))


@pytest.mark.parametrize("vtype", [0, INTEGER], ids=["lp", "mip"])
def test_gurobi_unbounded(gurobi, vtype):
    res = _gurobi_solve(_two_var(vtype, unbounded=True))
    assert res.status == "UNBOUNDED", f"gurobi reported {res.status} ({res.message}) for an unbounded model"


@pytest.mark.parametrize("vtype", [0, INTEGER], ids=["lp", "mip"])
def test_gurobi_infeasible(gurobi, vtype):
    res = _gurobi_solve(_two_var(vtype, infeasible=True))
    assert res.status == "INFEASIBLE" and res.x is None


def test_gurobi_bad_parameter(gurobi):
    with pytest.raises(GdsolverError):
        solve(_small_instances()["class-compact-identity"], backend="gurobi", options={"NoSuchParam": 1})


def _big_instance():
    rng, W, b, H = _layer(2, 1200, 3, 2)
    return regression(W, b, H, rng.normal(size=(1200, 2)), radius=0.3)  # 2408 variables, 4800 rows


def test_gurobi_licence_limit(gurobi):
    inst = _big_instance()
    assert inst.num_vars > 2000
    try:
        res = solve(inst, backend="gurobi")
    except LicenseLimitError as exc:
        msg = str(exc)
        assert "2000" in msg and str(inst.num_vars) in msg
        assert "\n" not in msg
        return
    pytest.skip(f"this Gurobi licence is not size-limited (solved: {res.status})")


def test_gurobi_fallback_to_highs(gurobi):
    inst = _big_instance()
    res = get_backend("gurobi").solve(inst, fallback="highs")
    assert res.status == "OPTIMAL"
    assert verify(inst, res.x).ok
    if res.backend == "highs":
        assert "licence" in res.message


# ---------------------------------------------------------------------------------
# results on disk
# ---------------------------------------------------------------------------------


def _assert_same_result(a: SolveResult, b: SolveResult):
    for f in dataclasses.fields(SolveResult):
        u, v = getattr(a, f.name), getattr(b, f.name)
        if f.name == "x":
            if u is None:
                assert v is None
            else:
                assert v.dtype == u.dtype == np.float64 and v.tobytes() == u.tobytes()
        else:
            assert u == v, f.name


@pytest.fixture(scope="module")
def solved():
    inst = _small_instances()["class-paper-relu"]
    return inst, solve(inst)


def test_result_round_trip(tmp_path, solved):
    _, res = solved
    j, xp = save_result(res, tmp_path / "inst.gdsm")
    sha = hashlib.sha256(res.x.tobytes()).hexdigest()
    assert (j, xp) == (tmp_path / "inst.result.json", tmp_path / f"inst.result.x-{sha[:16]}.npy")
    _assert_same_result(res, load_result(j))
    doc = json.loads(j.read_text())
    assert doc["format"] == "gdsolver-result" and doc["format_version"] == 2
    assert doc["x_file"] == xp.name and doc["x_sha256"] == sha
    np.testing.assert_array_equal(np.load(xp), res.x)  # x stays a plain .npy


def test_result_format_1_still_loads(tmp_path, solved):
    """Results written before format version 2: x in R.x.npy beside R.json."""
    _, res = solved
    j, xp = save_result(res, tmp_path / "old.json")
    doc = json.loads(j.read_text())
    legacy = tmp_path / "old.x.npy"
    xp.rename(legacy)
    doc.update(format_version=1, x_file=legacy.name)
    j.write_text(json.dumps(doc))
    _assert_same_result(res, load_result(j))
    # rewriting it in the current format leaves the version-1 x in place (another JSON may name it)
    j2, xp2 = save_result(res, j)
    assert legacy.exists() and json.loads(j2.read_text())["x_file"] == xp2.name
    _assert_same_result(res, load_result(j2))


def test_result_rewrite_removes_the_old_x_only(tmp_path, solved):
    _, res = solved
    j, x1 = save_result(res, tmp_path / "r.json")
    other, x_other = save_result(res, tmp_path / "r.result.json")  # another result beside it
    res2 = dataclasses.replace(res, x=res.x + np.where(np.arange(len(res.x)) == 0, 1.0, 0.0))
    j, x2 = save_result(res2, j)
    assert x2 != x1 and not x1.exists() and x2.exists() and x_other.exists()
    np.testing.assert_array_equal(load_result(j).x, res2.x)
    _assert_same_result(res, load_result(other))


def test_result_round_trip_without_x(tmp_path):
    res = solve(_two_var(0, infeasible=True))
    j, xp = save_result(res, tmp_path / "out.json")
    assert j == tmp_path / "out.json" and xp is None
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    _assert_same_result(res, load_result(j))


def test_result_paths():
    assert result_paths("d/a.gdsm") == (result_paths("d/a.result.json")[0], result_paths("d/a.gdsm")[1])
    j, x = result_paths("d/a.gdsm")
    assert (str(j), str(x)) == (os.path.join("d", "a.result.json"), os.path.join("d", "a.x.npy"))
    j, x = result_paths("out.json")
    assert (str(j), str(x)) == ("out.json", "out.x.npy")


def _npy(arr, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


class _Trap:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _x_defects(x: np.ndarray, tmp_path) -> dict[str, bytes | None]:
    good = _npy(x)
    flipped = bytearray(good)
    flipped[-3] ^= 0x40
    zbuf = io.BytesIO()
    np.savez(zbuf, x=x)
    trap = np.empty(3, dtype=object)
    trap[:] = [_Trap(str(tmp_path / "UNPICKLED"))] * 3
    return {
        "garbage": b"definitely not an npy file" * 4,
        "empty": b"",
        "truncated": good[: len(good) - 5],
        "header only": good[:60],
        "value flipped": bytes(flipped),
        "npz archive": zbuf.getvalue(),
        "object array": _npy(trap, allow_pickle=True),
        "float32": _npy(x.astype(np.float32)),
        "2-D": _npy(x[None, :]),
        "unclosed header": good[:10] + good[10:].replace(b"}", b" ", 1),
        "other values": _npy(x + 1.0),
        "missing": None,
    }


@pytest.mark.parametrize("defect", ["garbage", "empty", "truncated", "header only", "value flipped", "npz archive",
                                    "object array", "float32", "2-D", "other values", "unclosed header",
                                    "missing"])
def test_result_corrupt_x(tmp_path, solved, defect):
    _, res = solved
    j, xp = save_result(res, tmp_path / "r.json")
    content = _x_defects(res.x, tmp_path)[defect]
    if content is None:
        xp.unlink()
    else:
        xp.write_bytes(content)
    with pytest.raises(FormatError):
        load_result(j)
    assert not (tmp_path / "UNPICKLED").exists()


def test_result_x_bit_flips(tmp_path, solved):
    _, res = solved
    j, xp = save_result(res, tmp_path / "r.json")
    good = xp.read_bytes()
    bad = []
    for pos in range(len(good)):
        d = bytearray(good)
        d[pos] ^= 1 << (pos % 8)
        xp.write_bytes(bytes(d))
        try:
            back = load_result(j)
        except FormatError:
            continue
        except Exception as exc:  # noqa: BLE001
            bad.append(f"byte {pos}: {type(exc).__name__}: {exc}")
            continue
        _assert_same_result(res, back)
    assert not bad, bad[:3]


@pytest.mark.parametrize("edit", ["invalid json", "format", "version", "status", "list", "sha"])
def test_result_corrupt_json(tmp_path, solved, edit):
    _, res = solved
    j, _ = save_result(res, tmp_path / "r.json")
    doc = json.loads(j.read_text())
    if edit == "invalid json":
        j.write_text("{oops")
    elif edit == "list":
        j.write_text("[]")
    else:
        doc.update({"format": {"format": "x"}, "version": {"format_version": 7}, "status": {"status": "GREAT"},
                    "sha": {"x_sha256": "0" * 64}}[edit])
        j.write_text(json.dumps(doc))
    with pytest.raises(FormatError):
        load_result(j)


def test_result_missing_json(tmp_path):
    with pytest.raises(FormatError, match="not found"):
        load_result(tmp_path / "nothing.result.json")


# ---------------------------------------------------------------------------------
# MPS / LP export
# ---------------------------------------------------------------------------------


def _export_model():
    try:
        from gdsolver.compile.export import export_model
    except ImportError as exc:
        pytest.skip(f"gdsolver.compile.export.export_model is not available: {exc}")
    return export_model


def _custom_max_instance():
    """max with c0, integer variables, a range row."""
    bld = InstanceBuilder()
    x = bld.add_block("x", (3,), lb=[0.0, -2.0, 0.0], ub=[3.0, 4.0, np.inf], vtype=INTEGER, cost=[1.0, 2.0, -0.5])
    bld.add_rows("r", np.array([0, 0, 1, 1]), np.array([x[0], x[1], x[1], x[2]]), np.array([1.0, 1.0, 1.0, -1.0]),
                 2, lo=[-np.inf, -1.5], hi=[4.5, 2.0])
    return bld.build("max", c0=7.5)


def _export_cases():
    insts = _small_instances()
    return {k: insts[k] for k in ("reg-l1-identity", "reg-l1-relu", "class-compact-relu", "class-paper-identity")}


@pytest.mark.parametrize("suffix", [".mps", ".lp"])
@pytest.mark.parametrize("name", sorted(_export_cases()) + ["custom-max"])
def test_export_resolved_by_highspy(tmp_path, name, suffix):
    export_model = _export_model()
    import highspy

    inst = _custom_max_instance() if name == "custom-max" else _export_cases()[name]
    path = tmp_path / f"model{suffix}"
    assert export_model(inst, path) == path
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 0.0)
    h.readModel(str(path))
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    ref = solve(inst, mip_gap=0.0)
    assert ref.status == "OPTIMAL"
    got = h.getInfo().objective_function_value
    assert got == pytest.approx(ref.objective, abs=1e-6 * max(1.0, abs(ref.objective)))
    if suffix == ".mps":
        names = list(h.getLp().col_names_)
        assert len(names) == inst.num_vars
        if "w" in inst.blocks:
            assert names[0] == "w_0_0"


def test_export_bad_targets(tmp_path):
    export_model = _export_model()
    inst = _small_instances()["class-compact-identity"]
    with pytest.raises(GdsolverError):
        export_model(inst, tmp_path / "model.txt")
    with pytest.raises(GdsolverError):
        export_model(inst, tmp_path / "model.mps", keep_indicators=True)
    assert list(tmp_path.iterdir()) == []


def test_export_lp_keeps_indicators(tmp_path, gurobi):
    export_model = _export_model()
    inst = _small_instances()["class-compact-relu"]
    path = export_model(inst, tmp_path / "model.lp", keep_indicators=True)
    text = path.read_text()
    assert "->" in text  # LP-format indicator constraints
    env = gurobi.Env(empty=True)
    env.setParam("OutputFlag", 0)
    env.start()
    try:
        m = gurobi.read(str(path), env)
        m.setParam("MIPGap", 0.0)
        m.optimize()
        assert m.Status == gurobi.GRB.OPTIMAL
        got = m.ObjVal
        m.dispose()
    finally:
        env.dispose()
    assert got == pytest.approx(solve(inst, mip_gap=0.0).objective, abs=1e-6)


def test_highs_never_returns_the_start_as_a_better_optimum() -> None:
    """Regression: HiGHS 1.16 can hand back the MIP start from getSolution() while its
    incumbent is better (found by random search, seed 7, trial 193). OPTIMAL must mean the
    returned point attains the bound, and the answer must match a solve without the start."""
    from gdsolver.formulate import classification

    rng = np.random.default_rng(7)
    for trial in range(194):
        T, N, M = rng.integers(3, 30), rng.integers(1, 6), rng.integers(2, 5)
        H, W, b = rng.normal(size=(T, N)), rng.normal(size=(M, N)), rng.normal(size=M)
        act = rng.choice(["identity", "relu"])
        r = float(rng.choice([0.05, 0.5]))
        lab, mode = rng.integers(0, M, T), rng.choice(["paper", "compact"])
        if trial != 193:
            continue
        inst = classification(W, b, H, lab, radius=r, activation=str(act), mode=str(mode))
        with_start = solve(inst, "highs")
        without = solve(inst, "highs", use_start=False)
        assert with_start.status == "OPTIMAL"
        assert with_start.objective == pytest.approx(with_start.bound)
        assert with_start.objective == pytest.approx(without.objective)
        assert verify(inst, with_start.x).ok


# ---------------------------------------------------------------------------------
# Gurobi: statuses, options, licence; backend "auto"
# ---------------------------------------------------------------------------------


def _hard_licensed_instance():
    """Hard (Gurobi needs far more than 20 s) yet within the pip licence: 210 variables,
    901 constraints."""
    rng = np.random.default_rng(5)
    T, N, M = 100, 10, 10
    W, b, H = rng.normal(size=(M, N)), rng.normal(size=M), rng.normal(size=(T, N))
    return classification(W, b, H, rng.integers(0, M, T), radius=1.0, mode="compact")


def test_gurobi_time_limit(gurobi):
    inst = _hard_licensed_instance()
    res = _gurobi_solve(inst, time_limit=0.5, threads=1)  # past the root (bound known), far from the end
    assert res.status == "FEASIBLE", res.message
    assert "TIME_LIMIT" in res.message
    assert verify(inst, res.x).ok
    assert res.objective >= inst.meta["current_correct"]
    assert res.bound is not None and res.bound >= res.objective  # max problem
    assert res.gap is not None and res.gap > 0
    assert res.options["time_limit"] == 0.5 and res.options["threads"] == 1
    cold = _gurobi_solve(inst, time_limit=0.001, use_start=False)
    assert (cold.status, cold.x is None) in (("TIME_LIMIT", True), ("FEASIBLE", False))


def test_gurobi_uses_mip_start(gurobi):
    """Stopping at the first solution returns the MIP start (the current weights)."""
    inst = _hard_licensed_instance()
    res = _gurobi_solve(inst, options={"SolutionLimit": 1})
    assert res.status == "FEASIBLE" and "SOLUTION_LIMIT" in res.message
    np.testing.assert_allclose(res.x, inst.start, atol=1e-9)


def test_gurobi_params():
    from gdsolver.compile.gurobi import gurobi_params

    assert gurobi_params(None, None, None, None) == {}
    assert gurobi_params(1.5, 2, 0.01, {"MIPFocus": 1, "Threads": 8}) == {
        "MIPFocus": 1, "TimeLimit": 1.5, "Threads": 2, "MIPGap": 0.01}


def test_gurobi_status_mapping(gurobi):
    from gdsolver.compile.gurobi import map_status, status_name
    from gdsolver.compile.result import STATUSES

    names = [n for n in dir(gurobi.GRB.Status) if n.isupper()]
    for name in names:
        assert status_name(getattr(gurobi.GRB.Status, name)) == name
        for has_x in (True, False):
            assert map_status(name, has_x) in STATUSES
    assert map_status("TIME_LIMIT", True) == "FEASIBLE" and map_status("TIME_LIMIT", False) == "TIME_LIMIT"
    assert map_status("NODE_LIMIT", True) == "FEASIBLE" and map_status("NODE_LIMIT", False) == "ERROR"
    assert map_status("INF_OR_UNBD", False) == "INFEASIBLE" and map_status("NUMERIC", False) == "ERROR"
    assert status_name(9999) == "STATUS_9999" and map_status("STATUS_9999", False) == "ERROR"


def _rows_and_indicators(n_rows: int, n_ind: int, ranged: bool = False):
    """10 variables, n_rows linear rows (range rows if `ranged`), n_ind indicators."""
    bld = InstanceBuilder()
    x = bld.add_block("x", (10,), lb=0.0, ub=1.0, cost=1.0)
    z = bld.add_block("z", (1,), lb=0.0, ub=1.0, vtype=BINARY)
    r = np.arange(n_rows)
    bld.add_rows("r", r, x[r % 10], np.ones(n_rows), n_rows, lo=-1.0 if ranged else -np.inf, hi=2.0)
    k = np.arange(n_ind)
    bld.add_indicators("i", np.full(n_ind, z[0]), 1, k, x[k % 10], np.ones(n_ind), lo=-np.inf, hi=0.5)
    return bld.build("max")


def test_gurobi_licence_counts_indicators(gurobi):
    """Measured: the pip licence limits linear + indicator constraints together to 2000
    (and a range row is two Gurobi constraints); gurobi_size predicts it."""
    from gdsolver.compile.gurobi import gurobi_size, licence_info

    if licence_info().state != "restricted":
        pytest.skip(f"Gurobi licence is {licence_info().state!r}, not the restricted pip licence")
    fits, over, ranged = _rows_and_indicators(1000, 1000), _rows_and_indicators(1000, 1001), \
        _rows_and_indicators(1000, 1, ranged=True)
    assert [gurobi_size(i)[1] for i in (fits, over, ranged)] == [2000, 2001, 2001]
    assert licence_info().fits(fits) and not licence_info().fits(over) and not licence_info().fits(ranged)
    assert solve(fits, backend="gurobi").status == "OPTIMAL"
    for inst in (over, ranged):
        with pytest.raises(LicenseLimitError, match="2001 constraints"):
            solve(inst, backend="gurobi")


def test_gurobi_bad_fallback():
    with pytest.raises(GdsolverError, match="fallback"):
        get_backend("gurobi").solve(_two_var(0, infeasible=True), fallback="cplex")


def test_auto_picks_gurobi_when_licensed(gurobi):
    inst = _small_instances()["class-paper-relu"]
    res = solve(inst, backend="auto", mip_gap=0.0)
    assert res.backend == "gurobi" and res.message.startswith("auto chose gurobi")
    assert res.status == "OPTIMAL" and verify(inst, res.x).ok
    assert res.objective == pytest.approx(solve(inst, mip_gap=0.0).objective)


def test_auto_uses_highs_over_the_licence(gurobi):
    from gdsolver.compile.gurobi import licence_info

    inst = _big_instance()
    res = solve(inst, backend="auto")
    assert res.status == "OPTIMAL" and verify(inst, res.x).ok
    if licence_info().state == "restricted":
        assert res.backend == "highs"
        assert res.message.startswith("auto chose highs") and "2408 variables" in res.message
    else:
        assert res.backend == "gurobi"


def test_auto_rejects_backend_options():
    with pytest.raises(GdsolverError, match="backend-specific"):
        solve(_two_var(0, infeasible=True), backend="auto", options={"presolve": "off"})


def test_backend_info():
    from gdsolver.compile.backend import FEATURES, backend_info

    h = backend_info("highs")
    assert h["available"] and h["version"].count(".") == 2 and h["licence"]["state"] == "not needed"
    assert set(h["features"]) == set(FEATURES) and h["indicators"].startswith("big-M")
    g = backend_info("gurobi")
    assert g["licence"]["state"] in ("none", "restricted", "full")
    assert g["available"] == (g["licence"]["state"] != "none") and g["indicators"] == "native"
    assert g["available"] or g["reason"]
    with pytest.raises(GdsolverError, match="unknown backend"):
        backend_info("auto")


_NO_GUROBIPY = r"""
import json, sys
sys.modules["gurobipy"] = None  # import gurobipy now raises ImportError
import numpy as np
import gdsolver
from gdsolver.compile.backend import backend_info
from gdsolver.errors import GdsolverError
from gdsolver.formulate import classification
rng = np.random.default_rng(0)
inst = classification(rng.normal(size=(3, 2)), rng.normal(size=3), rng.normal(size=(8, 2)), rng.integers(0, 3, 8),
                      radius=0.3, activation="relu")
h, a = gdsolver.solve(inst, backend="highs"), gdsolver.solve(inst, backend="auto")
try:
    gdsolver.solve(inst, backend="gurobi")
    err = None
except GdsolverError as exc:
    err = str(exc)
print(json.dumps({"highs": [h.status, h.objective, bool(gdsolver.verify(inst, h.x).ok)],
                  "auto": [a.backend, a.status, a.objective, a.message], "gurobi_error": err,
                  "info": backend_info("gurobi")}))
"""


def test_works_without_gurobipy():
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", _NO_GUROBIPY], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["highs"][0] == "OPTIMAL" and out["highs"][2]
    backend, status, objective, message = out["auto"]
    assert (backend, status, objective) == ("highs", "OPTIMAL", out["highs"][1])
    assert message.startswith("auto chose highs: gurobi unavailable") and "not installed" in message
    assert "pip install gurobipy" in out["gurobi_error"]
    assert out["info"]["available"] is False and out["info"]["licence"]["state"] == "none"


# ---------------------------------------------------------------------------------
# CLI: `gdsolver backends`, `solve --backend auto`, `bench backends`
# ---------------------------------------------------------------------------------


def test_cli_backends(tmp_path):
    from clirun import run

    p = run("backends", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    by_name = {b["name"]: b for b in doc["backends"]}
    assert set(by_name) == {"highs", "gurobi"} and by_name["highs"]["available"]
    assert by_name["gurobi"]["features"]["indicators"] and not by_name["highs"]["features"]["indicators"]
    assert doc["auto"]
    p = run("backends", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "highs" in p.stdout and "gurobi" in p.stdout and "--backend auto" in p.stdout


def test_cli_solve_auto(tmp_path):
    from clirun import assert_user_error, run
    from gdsolver.ir import save

    save(_small_instances()["class-compact-relu"], tmp_path / "c.gdsm")
    p = run("solve", "c.gdsm", "--backend", "auto", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    res = load_result(tmp_path / "c.result.json")
    assert res.backend in ("highs", "gurobi") and res.message.startswith(f"auto chose {res.backend}")
    assert res.status == "OPTIMAL"
    assert_user_error(run("solve", "c.gdsm", "--backend", "auto", "--option", "presolve=off", cwd=tmp_path),
                      "backend-specific")
    assert_user_error(run("solve", "c.gdsm", "--backend", "cplex", cwd=tmp_path), "unknown backend", "auto")


def test_cli_gurobi_licence_error(tmp_path, gurobi):
    from clirun import assert_user_error, run
    from gdsolver.compile.gurobi import licence_info
    from gdsolver.ir import save

    if licence_info().state != "restricted":
        pytest.skip(f"Gurobi licence is {licence_info().state!r}, not the restricted pip licence")
    save(_big_instance(), tmp_path / "big.gdsm")
    assert_user_error(run("solve", "big.gdsm", "--backend", "gurobi", cwd=tmp_path),
                      "restricted licence", "2408 variables")
    p = run("solve", "big.gdsm", "--backend", "auto", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert load_result(tmp_path / "big.result.json").backend == "highs"


def test_cli_bench_backends_quick(tmp_path, gurobi):
    from clirun import run

    p = run("bench", "backends", "--quick", "--out", str(tmp_path), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "backends-quick.json").read_text())
    solved = [r for r in doc["rows"] if "skipped" not in r]
    assert solved and doc["all_agree"]
    for r in solved:
        assert r["highs"]["verifies"] and r["gurobi"]["verifies"]
        assert r["ratio_gurobi_over_highs"] == pytest.approx(r["gurobi"]["solve_s"] / r["highs"]["solve_s"])
    assert "| gurobi/highs |" in (tmp_path / "backends-quick.md").read_text()
