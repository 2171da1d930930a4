"""Backend-specific behaviour (HiGHS's MIP-start workaround, Gurobi's licence, auto and
fallback), solve results on disk, and MPS/LP export. The contract every backend meets
is in test_backends.py, parity with scipy in test_parity.py."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os

import numpy as np
import pytest

from gdsolver.compile import available_backends, load_result, result_paths, save_result, solve
from gdsolver.compile.result import SolveResult
from gdsolver.errors import FormatError, GdsolverError, LicenseLimitError
from gdsolver.ir import INTEGER, BINARY, InstanceBuilder, verify
from instances import big_instance as _big_instance
from instances import hard_instance as _hard_licensed_instance
from instances import small_instances as _small_instances
from instances import two_var as _two_var


def _gurobi_solve(inst, **kw):
    try:
        return solve(inst, backend="gurobi", **kw)
    except LicenseLimitError as exc:
        pytest.skip(f"needs more than the available Gurobi licence: {exc}")


# ---------------------------------------------------------------------------------
# Gurobi: licence, fallback
# ---------------------------------------------------------------------------------


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
    """Over the restricted licence, --fallback hands the instance to another backend."""
    from gdsolver.compile.gurobi import licence_info

    inst = _big_instance()
    res = solve(inst, "gurobi", fallback="highs")
    assert res.status == "OPTIMAL"
    assert verify(inst, res.x).ok
    if licence_info().state == "restricted":
        assert res.backend == "highs" and "licence" in res.message and res.message.startswith("gurobi could not")
    with pytest.raises(GdsolverError, match="unknown backend"):
        solve(inst, "gurobi", fallback="cplex")


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


def test_gurobi_uses_mip_start(gurobi):
    """Stopping at the first solution returns the MIP start (the current weights)."""
    inst = _hard_licensed_instance()
    res = _gurobi_solve(inst, options={"SolutionLimit": 1})
    assert res.status == "FEASIBLE" and "SOLUTION_LIMIT" in res.message
    np.testing.assert_allclose(res.x, inst.start, atol=1e-9)


def test_gurobi_params():
    from gdsolver.compile import SolveOptions
    from gdsolver.compile.gurobi import gurobi_params

    assert gurobi_params(SolveOptions()) == {}
    assert gurobi_params(SolveOptions(1.5, 2, 0.01, native={"MIPFocus": 1, "Threads": 8})) == {
        "MIPFocus": 1, "TimeLimit": 1.5, "Threads": 2, "MIPGap": 0.01}


def test_native_status_tables_complete():
    """Every native status of every installed solver maps onto a Termination."""
    from gdsolver.compile import Termination, available_backends

    if "gurobi" in available_backends():
        import gurobipy

        from gdsolver.compile.gurobi import STATUS_TABLE, status_name

        for name in (n for n in dir(gurobipy.GRB.Status) if n.isupper()):
            assert name in STATUS_TABLE and status_name(getattr(gurobipy.GRB.Status, name)) == name
        assert status_name(9999) == "STATUS_9999"
    if "scip" in available_backends():
        import pyscipopt

        from gdsolver.compile.scip import STATUS_TABLE as SCIP_TABLE

        names = {n.lower() for n in dir(pyscipopt.SCIP_STATUS) if n.isupper()}
        assert names <= set(SCIP_TABLE), names - set(SCIP_TABLE)
        assert SCIP_TABLE["userinterrupt"] == Termination.INTERRUPTED and SCIP_TABLE["gaplimit"] == "optimal"
    import highspy

    from gdsolver.compile.highs import termination_of

    for name in (n for n in dir(highspy.HighsModelStatus) if n.startswith("k")):
        status = getattr(highspy.HighsModelStatus, name)
        assert termination_of(status) != Termination.UNKNOWN or name == "kUnknown", name
    assert termination_of(highspy.HighsModelStatus.kInterrupt) == Termination.INTERRUPTED


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




def test_backend_info():
    from gdsolver.compile import Feature, backend_info

    h = backend_info("highs")
    assert h["available"] and h["version"].count(".") == 2 and h["licence"]["state"] == "not needed"
    assert set(h["features"]) == {f.value for f in Feature} and h["indicators"].startswith("big-M")
    g = backend_info("gurobi")
    assert g["licence"]["state"] in ("none", "restricted", "full")
    assert g["available"] == (g["licence"]["state"] != "none") and g["indicators"] == "native"
    assert g["available"] or g["reason"]
    s = backend_info("scip")
    assert s["indicators"] == "native" and s["licence"]["state"] in ("none", "not needed")
    with pytest.raises(GdsolverError, match="unknown backend"):
        backend_info("auto")


_WITHOUT = r"""
import json, sys
sys.modules[sys.argv[1]] = None  # importing the solver package now raises ImportError
import numpy as np
import gdsolver
from gdsolver.compile import available_backends, backend_info
from gdsolver.errors import GdsolverError
from gdsolver.formulate import classification
rng = np.random.default_rng(0)
inst = classification(rng.normal(size=(3, 2)), rng.normal(size=3), rng.normal(size=(8, 2)), rng.integers(0, 3, 8),
                      radius=0.3, activation="relu")
h, a = gdsolver.solve(inst, backend="highs"), gdsolver.solve(inst, backend="auto")
try:
    gdsolver.solve(inst, backend=sys.argv[2])
    err = None
except ImportError as exc:
    err = [type(exc).__name__, isinstance(exc, GdsolverError), str(exc)]
fb = gdsolver.solve(inst, backend=sys.argv[2], fallback="highs")
print(json.dumps({"highs": [h.status, h.objective, bool(gdsolver.verify(inst, h.x).ok)],
                  "auto": [a.backend, a.status, a.objective, a.message], "error": err,
                  "fallback": [fb.backend, fb.status, fb.objective],
                  "info": backend_info(sys.argv[2]), "available": available_backends()}))
from gdsolver.cli.main import app
app(["backends", "--json"])
"""


@pytest.mark.parametrize("package,backend", [("gurobipy", "gurobi"), ("pyscipopt", "scip")])
def test_works_without_solver_package(package, backend):
    """With the package hidden: HiGHS and auto answer, the backend raises a
    BackendUnavailableError (an ImportError) saying how to install it, --fallback
    answers, `gdsolver backends` lists it as unavailable."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", _WITHOUT, package, backend], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    first, rest = p.stdout.split("\n", 1)
    out = json.loads(first)
    assert out["highs"][0] == "OPTIMAL" and out["highs"][2]
    auto_backend, status, objective, message = out["auto"]
    assert auto_backend != backend and (status, objective) == ("OPTIMAL", out["highs"][1])
    assert backend not in out["available"] and "highs" in out["available"]
    if auto_backend == "highs" and backend == "gurobi":
        assert message.startswith("auto chose highs: gurobi unavailable") and "not installed" in message
    kind, is_gdsolver_error, text = out["error"]
    assert (kind, is_gdsolver_error) == ("BackendUnavailableError", True) and f"pip install {package}" in text
    assert out["fallback"] == ["highs", "OPTIMAL", out["highs"][1]]
    assert out["info"]["available"] is False and out["info"]["licence"]["state"] == "none"
    assert "not installed" in out["info"]["reason"]
    listed = {b["name"]: b["available"] for b in json.loads(rest)["backends"]}
    assert listed[backend] is False and listed["highs"] is True


# ---------------------------------------------------------------------------------
# CLI: `solve --backend auto`, `bench backends`
# ---------------------------------------------------------------------------------


def test_cli_solve_auto(tmp_path):
    from clirun import assert_user_error, run
    from gdsolver.ir import save

    save(_small_instances()["class-compact-relu"], tmp_path / "c.gdsm")
    p = run("solve", "c.gdsm", "--backend", "auto", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    res = load_result(tmp_path / "c.result.json")
    assert res.backend in available_backends() and res.message.startswith(f"auto chose {res.backend}")
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


def _cli_bench_backends_quick(tmp_path, sets: list[str]) -> None:
    from clirun import run

    p = run("bench", "backends", "--quick", "--out", str(tmp_path), *(a for s in sets for a in ("--set", s)),
            cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "backends-quick.json").read_text())
    assert doc["backends"][0] == "highs" and set(doc["backends"]) == set(available_backends())
    assert doc["rows"] and doc["all_agree"] and doc["sets"] == (sets or ["digits", "regression", "mnist-head",
                                                                         "digits-hidden"])
    for r in doc["rows"]:
        assert set(r["results"]) | set(r["skipped"]) == set(doc["backends"])
        for name, res in r["results"].items():
            assert res["status"] == "OPTIMAL" and res["verifies"], (name, res)
            if name != "highs":
                assert r["ratios"][name] == pytest.approx(res["solve_s"] / r["results"]["highs"]["solve_s"])
    md = (tmp_path / "backends-quick.md").read_text()
    assert all(f"| {n}/highs |" in md for n in doc["backends"][1:])


@pytest.mark.slow  # ~12 s; by default the two fast sets run through the CLI, the other two through the API
def test_cli_bench_backends_quick(tmp_path):
    _cli_bench_backends_quick(tmp_path, [])


def test_cli_bench_backends_quick_fast_sets(tmp_path):
    """`--set` through the CLI, on the demo-layer sets (test_bench_backends_sweep_sets_quick runs the
    MNIST-head and digits hidden-layer sets, which train a head or an MLP first)."""
    _cli_bench_backends_quick(tmp_path, ["digits", "regression"])


def test_bench_backends_instance_set_hook(tmp_path):
    """An extra instance set registered with @instance_set appears in the results."""
    from gdsolver.bench import backends_bench as bb
    from instances import two_var

    @bb.instance_set("extra-test-set", build=lambda desc: two_var(0, infeasible=True))
    def _extra(quick):
        return [{"set": "extra-test-set", "case": "extra", "seed": 3}]

    try:
        doc = bb.run_backends_bench(tmp_path, quick=True, echo=lambda *a: None, backends=["highs"],
                                    sets=["extra-test-set"])
    finally:
        bb.INSTANCE_SETS.pop("extra-test-set")
    assert [r["case"] for r in doc["rows"]] == ["extra"] and doc["rows"][0]["results"]["highs"]["status"] == "INFEASIBLE"
    assert "| extra | - | - | - | - | 3 |" in (tmp_path / "backends-quick.md").read_text()
    with pytest.raises(GdsolverError, match="unknown instance set"):
        bb.run_backends_bench(tmp_path, quick=True, sets=["nope"])


def test_bench_backends_sweep_sets_quick(tmp_path):
    """The MNIST-head and digits hidden-layer sets: JSON descriptions whose quick cases rebuild the
    same instance from scratch (as a --ray worker does: a fresh head, a fresh training run), and a
    quick run with a row each where every backend that takes the instance proves the same optimum;
    Gurobi's pip licence is listed as skipped on the MNIST head, with the reason."""
    from gdsolver.bench import backends_bench as bb
    from gdsolver.compile import get_backend
    from gdsolver.ir import fingerprint

    sets = ["mnist-head", "digits-hidden"]
    descs = [d for s in sets for d in bb.INSTANCE_SETS[s].cases(True)]
    assert [d["set"] for d in descs] == ["mnist-head"] + ["digits-hidden"] * 3
    assert all(json.loads(json.dumps(d)) == d for d in descs)

    def prints():
        insts = [bb.build_case(d) for d in descs]
        return [(fingerprint(i), hashlib.sha256(i.start.tobytes()).hexdigest()) for i in insts]

    bb._head.cache_clear(), bb._mlp.cache_clear()
    first = prints()
    bb._head.cache_clear(), bb._mlp.cache_clear()
    assert prints() == first and len(set(first)) == len(first)

    doc = bb.run_backends_bench(tmp_path, quick=True, echo=lambda *a: None, sets=sets)
    assert [r["case"] for r in doc["rows"]] == [d["case"] for d in descs] and doc["run"]["failed"] == 0
    for r in doc["rows"]:
        assert set(r["results"]) | set(r["skipped"]) == set(doc["backends"]), r["case"]
        assert all(v["status"] == "OPTIMAL" and v["verifies"] for v in r["results"].values()), r
        # a second opinion wherever a second backend takes the instance (the head is over Gurobi's
        # pip licence, so with SCIP hidden HiGHS is alone there)
        assert len(r["results"]) >= min(2, len(doc["backends"]) - len(r["skipped"])) and r["results"], r
        assert r["agree"] is True or len(r["results"]) == 1, r
    head = doc["rows"][0]
    if "gurobi" in doc["backends"] and get_backend("gurobi").licence().state == "restricted":
        assert "exceed Gurobi's restricted licence" in head["skipped"]["gurobi"]
        assert "Skipped: gurobi on 1 instances" in (tmp_path / "backends-quick.md").read_text()
    md = (tmp_path / "backends-quick.md").read_text()
    assert "| mnist-head-14px | paper | identity | 16 | 0.01 | 0 |" in md and "| digits-mlp16 | ce | relu |" in md


def test_bench_backends_time_limited_rows():
    """A backend stopped by the time limit: its ratio is a bound and out of the means, and its
    point and bound are checked against the other backend's optimum."""
    from gdsolver.bench.backends_bench import _agree, _ratios

    def r(status, t, obj, bound):
        return {"status": status, "solve_s": t, "objective": obj, "bound": bound}

    res = {"highs": r("OPTIMAL", 2.0, 18.0, 18.0), "scip": r("FEASIBLE", 60.0, 14.0, 20.7),
           "gurobi": r("OPTIMAL", 1.0, 18.0, 18.0)}
    assert _ratios(res, "highs") == ({"gurobi": 0.5}, {"scip": [">=", 30.0]})
    assert _agree(list(res.values()), "max") is True
    assert _agree([res["highs"], r("FEASIBLE", 60.0, 19.0, 25.0)], "max") is False  # beats the optimum
    assert _agree([res["highs"], r("FEASIBLE", 60.0, 14.0, 17.0)], "max") is False  # bound cuts it off
    assert _agree([res["highs"], res["scip"]], "max") is None  # one proof, nothing contradicts it
    both = {"highs": r("FEASIBLE", 60.0, 57.0, 70.0), "scip": r("FEASIBLE", 60.0, 5.0, 83.0)}
    assert _ratios(both, "highs") == ({}, {}) and _agree(list(both.values()), "max") is None
    assert _ratios({"highs": r("FEASIBLE", 60.0, 1.0, 3.0), "scip": r("OPTIMAL", 6.0, 2.0, 2.0)},
                   "highs")[1] == {"scip": ["<=", 0.1]}


def test_replay_clamps_recorded_threads(tmp_path):
    """A result recorded on a bigger machine (more threads than allowed here) still replays."""
    from gdsolver.compile.base import max_threads
    from gdsolver.pipeline import replay
    from gdsolver.ir import save

    inst = _small_instances()["class-compact-relu"]
    save(inst, tmp_path / "c.gdsm")
    res = solve(inst, threads=1)
    res.options["threads"] = 64 * max_threads()
    save_result(res, tmp_path / "c.gdsm")
    rows = list(replay(tmp_path / "c.gdsm"))
    assert len(rows) == 1 and rows[0].ok and rows[0].replayed.options["threads"] == max_threads()
