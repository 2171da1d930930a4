"""Hostile and corrupt files: .gdsm instances, result files, ONNX models and the paths they
name (issue 13). Every case ends in a one-line FormatError/GdsolverError or a whole, correct
object; nothing hangs, nothing is unpickled, nothing big is allocated before its size is checked.
Property-based cases use hypothesis with a modest example count by default (slow-marked
variants run many more)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gdsolver.compile import solve
from gdsolver.compile.result import STATUSES, SolveResult, load_result, save_result
from gdsolver.errors import FormatError, GdsolverError
from gdsolver.ir import BINARY, CONTINUOUS, INTEGER, InstanceBuilder, MilpInstance, fingerprint, load, save, verify
from gdsolver.ir.npy import max_array_bytes
from test_gdsm import _instances, _rewrite, assert_identical

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
SLOW = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8) | st.sampled_from(["../../etc/passwd", "/dev/zero", "a/b.npy", "", "\x00", "..", "."]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)


def one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg and "Traceback" not in msg, msg
    return msg


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    inst = _instances()["class-paper-relu"]
    path = save(inst, d / "inst.gdsm")
    return inst, path, path.read_bytes()


# ---------------------------------------------------------------------------------
# .gdsm: the cases
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ['"c0": 1e999', '"c0": -Infinity', '"c0": NaN', '"num_vars": 1e999',
                                 '"num_vars": -Infinity', '"num_vars": 1e20', '"num_vars": -1', '"num_vars": true'])
def test_meta_non_finite_numbers(saved, tmp_path, raw):
    """JSON allows 1e999 (= inf) and -Infinity; they were an OverflowError traceback."""
    _, _, data = saved
    key = raw.split(":")[0].strip('"')

    def edit(doc):
        text = json.dumps(doc)
        return text.replace(f'"{key}": {json.dumps(doc[key])}', raw, 1).encode()
    with pytest.raises(FormatError, match=key) as info:
        load(_rewrite(data, tmp_path / "m.gdsm", meta=edit))
    one_line(info.value)


def test_user_meta_may_hold_non_finite_numbers(saved, tmp_path):
    """User meta is free-form (written with allow_nan); it loads and inspect can show it."""
    inst, _, data = saved
    back = load(_rewrite(data, tmp_path / "u.gdsm", meta=lambda d: d["meta"].update(x=float("inf"), y=float("nan"))))
    assert back.meta["x"] == math.inf and math.isnan(back.meta["y"])


@pytest.mark.parametrize("value", ["", "0" * 64, None, 5, "z" * 64])
def test_fingerprint_cannot_be_blanked(saved, tmp_path, value):
    """An empty (or bogus) fingerprint used to skip the structure check."""
    _, _, data = saved

    def edit(doc):
        doc["fingerprint"] = value
        doc["blocks"][1][1] -= 1  # and a structure edit that only the fingerprint reveals
    with pytest.raises(FormatError, match="fingerprint"):
        load(_rewrite(data, tmp_path / "f.gdsm", meta=edit))
    with pytest.raises(FormatError):
        load(_rewrite(data, tmp_path / "g.gdsm", meta=lambda d: d.pop("fingerprint")))


@pytest.mark.parametrize("shape", [[-2, -3], [-1], [3, -2, -1]])
def test_negative_block_dimensions_fail_at_load(saved, tmp_path, shape):
    """(-2, -3) has a positive product and used to tile the variables, pass load and fail in apply."""
    inst, _, data = saved
    n = math.prod(shape)

    def edit(doc):
        for b in doc["blocks"]:
            if b[0] == "b":
                b[2] = shape
    with pytest.raises(FormatError, match="dimensions|non-negative"):
        load(_rewrite(data, tmp_path / "n.gdsm", meta=edit))
    # the Python API refuses them too
    bad = dataclasses.replace(inst, blocks={**inst.blocks, "b": (inst.blocks["b"][0], tuple(shape))})
    if n == math.prod(inst.blocks["b"][1]):
        with pytest.raises(ValueError, match="non-negative"):
            bad.validate()


# ---------------------------------------------------------------------------------
# .gdsm: sizes are checked before anything is decompressed or allocated
# ---------------------------------------------------------------------------------


def _zero_npy_entry(zf: zipfile.ZipFile, name: str, shape: tuple[int, ...], dtype: str = "<f8") -> None:
    with zf.open(name, "w", force_zip64=True) as fh:
        hdr = io.BytesIO()
        np.lib.format.write_array_header_1_0(hdr, {"descr": dtype, "fortran_order": False, "shape": shape})
        fh.write(hdr.getvalue())
        left = math.prod(shape) * np.dtype(dtype).itemsize
        zero = bytes(1 << 22)
        while left:
            k = min(left, len(zero))
            fh.write(zero[:k])
            left -= k


def _bomb(data: bytes, path: Path, entry: str, shape: tuple[int, ...]) -> Path:
    src = zipfile.ZipFile(io.BytesIO(data))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for name in src.namelist():
            if name == entry:
                _zero_npy_entry(dst, name, shape)
            else:
                dst.writestr(name, src.read(name))
    return path


def _peak_mib(fn) -> float:
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


@pytest.mark.parametrize("entry", ["lb.npy", "A_data.npy", "start.npy"])
def test_zip_bomb_entry_is_refused_before_decompressing(saved, tmp_path, entry):
    """A 25 MB all-zero array in a ~25 KiB entry where meta.json declares a few values: refused
    from the zip directory's size, with next to no memory (it used to be read whole first)."""
    _, _, data = saved
    p = _bomb(data, tmp_path / "bomb.gdsm", entry, (3_200_000,))
    assert p.stat().st_size < 100_000
    peak = []

    def go():
        with pytest.raises(FormatError, match="stored as 25600128 bytes") as info:
            load(p)
        one_line(info.value)
    peak.append(_peak_mib(go))
    assert peak[0] < 5, f"peak {peak[0]:.1f} MiB"


def test_npy_header_shape_checked_before_reading(saved, tmp_path):
    """Entry size consistent with its header, header shape not the declared one: refused on the header."""
    inst, _, data = saved
    n = inst.num_vars
    p = _rewrite(data, tmp_path / "h.gdsm", meta=lambda d: None)
    raw = io.BytesIO()
    np.lib.format.write_array(raw, np.zeros(n + 1))  # one more value than declared
    p = _rewrite(data, tmp_path / "h.gdsm", replace={"lb.npy": raw.getvalue()})
    with pytest.raises(FormatError, match="lb"):
        load(p)


def test_declared_sizes_must_agree_with_the_structure(saved, tmp_path):
    """meta.json declaring a 10^9-long 'ub' for a small instance is refused without reading it."""
    _, _, data = saved
    with pytest.raises(FormatError, match=r"'ub' is declared with shape \[1000000000\]"):
        load(_rewrite(data, tmp_path / "d.gdsm", meta=lambda d: d["arrays"]["ub"].update(shape=[10**9])))


def test_valid_but_huge_instance_is_refused_by_the_limit(tmp_path, monkeypatch):
    """A consistent instance declaring more than GDSOLVER_MAX_ARRAY_BYTES: refused before reading."""
    n = 200_000
    z = np.zeros(n)
    bld = InstanceBuilder()
    bld.add_block("x", (n,), lb=0.0, ub=1.0, cost=1.0)
    p = save(bld.build(), tmp_path / "big.gdsm")
    monkeypatch.setenv("GDSOLVER_MAX_ARRAY_BYTES", str(1_000_000))
    assert max_array_bytes() == 1_000_000
    with pytest.raises(FormatError, match="declares 4.77 MiB of array data, more than the 977 KiB allowed"):
        load(p)
    monkeypatch.setenv("GDSOLVER_MAX_ARRAY_BYTES", "lots")
    with pytest.raises(FormatError, match="GDSOLVER_MAX_ARRAY_BYTES"):
        load(p)
    monkeypatch.delenv("GDSOLVER_MAX_ARRAY_BYTES")
    assert load(p).num_vars == n and np.array_equal(load(p).lb, z)


# ---------------------------------------------------------------------------------
# .gdsm: random corruptions (hypothesis)
# ---------------------------------------------------------------------------------

_STRUCTURAL = ["num_vars", "sense", "c0", "blocks", "row_groups", "ind_groups", "arrays", "fingerprint",
               "format", "format_version", "meta"]


def _load_clean(path: Path, original: MilpInstance) -> str:
    try:
        back = load(path)
    except FormatError as exc:
        one_line(exc)
        return "error"
    assert_identical(original, back)
    return "loaded"


def _meta_edit_case(saved, tmp_path, key, path_bits, value):
    """Replace meta.json field `key`, or a value nested inside it (path_bits pick the way down)."""
    inst, _, data = saved

    def edit(doc):
        if path_bits[0] % 2 == 0 or not isinstance(doc.get(key), (dict, list)) or not doc[key]:
            doc[key] = value
            return
        parent, child = doc, key
        for bit in path_bits[1:]:
            node = parent[child]
            if not isinstance(node, (dict, list)) or not node:
                break
            parent, child = node, (sorted(node)[bit % len(node)] if isinstance(node, dict) else bit % len(node))
        parent[child] = value
    p = _rewrite(data, tmp_path / "e.gdsm", meta=edit)
    try:
        back = load(p)
    except FormatError as exc:
        one_line(exc)
        return
    if key == "meta":  # user meta is free-form: anything JSON loads, and nothing else changes
        back = dataclasses.replace(back, meta=inst.meta)
    assert_identical(inst, back)


@FAST
@given(key=st.sampled_from(_STRUCTURAL), path_bits=st.lists(st.integers(0, 50), min_size=1, max_size=3),
       value=JSON_VALUES)
def test_random_meta_edits(saved, tmp_path, key, path_bits, value):
    _meta_edit_case(saved, tmp_path, key, path_bits, value)


@pytest.mark.slow
@SLOW
@given(key=st.sampled_from(_STRUCTURAL), path_bits=st.lists(st.integers(0, 50), min_size=1, max_size=3),
       value=JSON_VALUES)
def test_random_meta_edits_many(saved, tmp_path, key, path_bits, value):
    _meta_edit_case(saved, tmp_path, key, path_bits, value)


BYTE_EDITS = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1), st.binary(max_size=0)),
    st.tuples(st.just("overwrite"), st.floats(0, 1), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.binary(min_size=1, max_size=16)),
)


def _byte_edit_case(saved, tmp_path, edits):
    inst, _, data = saved
    d = bytearray(data)
    for kind, where, blob in edits:
        pos = int(where * (len(d) - 1)) if d else 0
        if kind == "truncate":
            del d[pos:]
        elif kind == "overwrite":
            d[pos:pos + len(blob)] = blob
        elif kind == "insert":
            d[pos:pos] = blob
        else:
            del d[pos:pos + len(blob)]
    p = tmp_path / "b.gdsm"
    p.write_bytes(bytes(d))
    _load_clean(p, inst)


@FAST
@given(edits=st.lists(BYTE_EDITS, min_size=1, max_size=3))
def test_random_byte_corruptions(saved, tmp_path, edits):
    _byte_edit_case(saved, tmp_path, edits)


@pytest.mark.slow
@SLOW
@given(edits=st.lists(BYTE_EDITS, min_size=1, max_size=3))
def test_random_byte_corruptions_many(saved, tmp_path, edits):
    _byte_edit_case(saved, tmp_path, edits)


# ---------------------------------------------------------------------------------
# random instances: saved and loaded bit-exact; solved to a clean error or a verified answer
# ---------------------------------------------------------------------------------


@st.composite
def instances(draw) -> MilpInstance:
    coef = st.sampled_from([-1e3, -7.5, -2.0, -1.0, -0.25, -1e-3, 1e-3, 0.5, 1.0, 3.0, 40.0, 1e3])
    bound = st.sampled_from([-np.inf, -10.0, -1.0, 0.0, 0.5, 1.0, 4.0, 10.0, np.inf])
    bld = InstanceBuilder()
    n_blocks = draw(st.integers(1, 3))
    ids = []
    for k in range(n_blocks):
        size = draw(st.integers(1, 3))
        vt = draw(st.sampled_from([CONTINUOUS, CONTINUOUS, INTEGER, BINARY]))
        if vt == BINARY:
            lb, ub = 0.0, 1.0
        else:
            a, b = draw(bound), draw(bound)
            lb, ub = min(a, b), max(a, b)
            if lb == np.inf or ub == -np.inf:  # [inf, inf] or [-inf, -inf]: validate() refuses those
                lb, ub = -np.inf, np.inf
            if vt == INTEGER and not (np.isfinite(lb) and np.isfinite(ub)):
                lb, ub = -5.0, 5.0
        cost = [draw(coef) * draw(st.sampled_from([0.0, 1.0])) for _ in range(size)]
        ids.append((bld.add_block(f"v{k}", (size,), lb=lb, ub=ub, vtype=vt, cost=cost), vt))
    allv = np.concatenate([i for i, _ in ids])
    binaries = np.concatenate([i for i, vt in ids if vt == BINARY] or [np.zeros(0, np.int64)])
    m = draw(st.integers(0, 4))
    if m:
        rows, cols, vals = [], [], []
        for r in range(m):
            for c in draw(st.lists(st.sampled_from(list(allv)), min_size=1, max_size=3, unique=True)):
                rows.append(r)
                cols.append(c)
                vals.append(draw(coef))
        a, b = np.array([draw(bound) for _ in range(m)]), np.array([draw(bound) for _ in range(m)])
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        lo[lo == np.inf], hi[hi == -np.inf] = -np.inf, np.inf
        bld.add_rows("r", np.array(rows), np.array(cols), np.array(vals), m, lo=lo, hi=hi)
    if len(binaries) and draw(st.booleans()):
        k = draw(st.integers(1, 2))
        var = np.array([draw(st.sampled_from(list(binaries))) for _ in range(k)])
        cols = np.array([draw(st.sampled_from(list(allv))) for _ in range(k)])
        lo = np.array([draw(st.sampled_from([-np.inf, -1.0, 0.0, 0.5])) for _ in range(k)])
        hi = np.array([draw(st.sampled_from([np.inf, 1.0, 2.0])) for _ in range(k)])
        bld.add_indicators("ind", var, [draw(st.integers(0, 1)) for _ in range(k)], np.arange(k), cols,
                           np.array([draw(coef) for _ in range(k)]), lo=lo, hi=hi)
    inst = bld.build(draw(st.sampled_from(["min", "max"])), c0=draw(st.sampled_from([0.0, -2.5, 1e3])))
    inst.validate()
    return inst


def _instance_case(tmp_path, inst):
    back = load(save(inst, tmp_path / "r.gdsm"))
    assert_identical(inst, back)
    assert fingerprint(back) == fingerprint(inst)
    try:
        res = solve(inst, backend="highs", time_limit=10)
    except GdsolverError as exc:
        one_line(exc)
        event("refused: " + str(exc)[:40])
        return
    event(f"status {res.status}")
    assert res.status in STATUSES
    if res.status in ("OPTIMAL", "FEASIBLE"):
        assert res.x is not None
        rep = verify(inst, res.x)
        assert rep.ok, rep
        assert res.objective == pytest.approx(inst.objective_value(res.x), rel=1e-9, abs=1e-9)
        if res.status == "OPTIMAL" and inst.num_indicators == 0:  # an independent optimum: scipy's milp
            _check_with_scipy(inst, res.objective)


def _check_with_scipy(inst: MilpInstance, objective: float) -> None:
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix

    sign = 1.0 if inst.sense == "min" else -1.0
    cons = []
    if inst.num_rows:
        A = csr_matrix((inst.A.data, inst.A.indices, inst.A.indptr), shape=(inst.num_rows, inst.num_vars))
        cons = [LinearConstraint(A, inst.row_lo, inst.row_hi)]
    # mip_rel_gap 0: scipy's default gap (1e-4) let it stop at 4999.925 where 5000 is optimal
    r = milp(sign * inst.c, constraints=cons, integrality=(inst.vtype != 0).astype(int),
             bounds=Bounds(inst.lb, inst.ub), options={"mip_rel_gap": 0.0})
    if r.status == 0:
        assert objective == pytest.approx(sign * r.fun + inst.c0, rel=1e-6, abs=1e-6)


@FAST
@given(inst=instances())
def test_random_instances(tmp_path, inst):
    _instance_case(tmp_path, inst)


@pytest.mark.slow
@SLOW
@given(inst=instances())
def test_random_instances_many(tmp_path, inst):
    _instance_case(tmp_path, inst)


# ---------------------------------------------------------------------------------
# result files
# ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def result_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("results")
    x = np.linspace(-1, 1, 7)
    res = SolveResult("OPTIMAL", x=x, objective=1.5, bound=1.5, gap=0.0, runtime_s=0.1, nodes=3, backend="highs",
                      backend_version="1", message="m", instance_fingerprint="f" * 64, instance_file="i.gdsm")
    j, xp = save_result(res, d / "r.json")
    return res, j, j.read_bytes(), xp


_RESULT_FIELDS = ["status", "objective", "bound", "gap", "runtime_s", "nodes", "backend", "backend_version",
                  "message", "options", "instance_fingerprint", "instance_file", "x_file", "x_sha256",
                  "format", "format_version", "run_id"]
_TYPES = {"objective": float, "bound": float, "gap": float, "runtime_s": float, "nodes": int, "backend": str,
          "backend_version": str, "message": str, "instance_fingerprint": str, "instance_file": str, "run_id": str}


@pytest.mark.parametrize("field,value", [
    ("x_file", 5), ("x_file", ["r.x.npy"]), ("x_file", "../r.json"), ("x_file", "/dev/zero"),
    ("x_file", "sub/r.x.npy"), ("x_file", ""), ("x_file", ".."), ("x_file", "\n"), ("x_file", "r\x1b[2J.npy"),
    ("instance_file", 5), ("instance_file", ["a"]), ("instance_file", "a\nb.gdsm"), ("instance_file", "a\x00"),
    ("objective", "1.5"), ("objective", [1]), ("nodes", 2.5), ("nodes", -1), ("runtime_s", "fast"),
    ("options", [1, 2]), ("status", None), ("x_sha256", 7), ("format_version", True), ("run_id", 3),
])
def test_result_field_of_wrong_type(result_file, tmp_path, field, value):
    """Each used to be a TypeError/ValueError traceback somewhere downstream (issue 13)."""
    _, j, raw, xp = result_file
    doc = json.loads(raw)
    doc[field] = value
    p = tmp_path / "r.json"
    p.write_text(json.dumps(doc))
    (tmp_path / xp.name).write_bytes(xp.read_bytes())
    with pytest.raises(FormatError, match=field if field != "status" else "status") as info:
        load_result(p)
    one_line(info.value)


@pytest.mark.parametrize("target", ["/dev/zero", "fifo", "dir", "outside", "loop"])
def test_result_x_file_that_is_not_a_regular_file_beside_it(result_file, tmp_path, target):
    _, j, raw, xp = result_file
    doc = json.loads(raw)
    link = tmp_path / xp.name
    outside = tmp_path.parent / f"outside-{tmp_path.name}.npy"
    outside.write_bytes(xp.read_bytes())
    if target == "fifo":
        os.mkfifo(link)
    elif target == "dir":
        link.mkdir()
    elif target == "loop":
        link.symlink_to(link)
    else:
        link.symlink_to("/dev/zero" if target == "/dev/zero" else outside)
    (tmp_path / "r.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError) as info:
        load_result(tmp_path / "r.json")
    one_line(info.value)


def _result_edit_case(result_file, tmp_path, field, value):
    res, j, raw, xp = result_file
    doc = json.loads(raw)
    doc[field] = value
    p = tmp_path / "r.json"
    p.write_text(json.dumps(doc, allow_nan=True))
    if not (tmp_path / xp.name).exists():
        (tmp_path / xp.name).write_bytes(xp.read_bytes())
    try:
        back = load_result(p)
    except FormatError as exc:
        one_line(exc)
        return
    assert back.status in STATUSES
    for k, t in _TYPES.items():
        v = getattr(back, k)
        assert v is None or (type(v) is t) or (k in ("instance_file", "run_id") and v == ""), (k, v)
    assert isinstance(back.options, dict)
    if back.x is not None:
        np.testing.assert_array_equal(back.x, res.x)


@FAST
@given(field=st.sampled_from(_RESULT_FIELDS), value=JSON_VALUES)
def test_random_result_edits(result_file, tmp_path, field, value):
    _result_edit_case(result_file, tmp_path, field, value)


@pytest.mark.slow
@SLOW
@given(field=st.sampled_from(_RESULT_FIELDS), value=JSON_VALUES)
def test_random_result_edits_many(result_file, tmp_path, field, value):
    _result_edit_case(result_file, tmp_path, field, value)


def test_result_json_size_is_bounded(tmp_path):
    p = tmp_path / "big.json"
    with open(p, "wb") as fh:
        fh.truncate((64 << 20) + 1)
    with pytest.raises(FormatError, match="more than"):
        load_result(p)


# ---------------------------------------------------------------------------------
# paths named by files or given by the user
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "dir", "loop", "missing", "symlink-to-dev-zero"])
def test_instance_path_that_is_not_a_regular_file(tmp_path, kind):
    p = tmp_path / "x.gdsm"
    if kind == "/dev/zero":
        p = Path("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "dir":
        p.mkdir()
    elif kind == "loop":
        p.symlink_to(p)
    elif kind == "symlink-to-dev-zero":
        p.symlink_to("/dev/zero")
    with pytest.raises(FormatError) as info:
        load(p)
    msg = one_line(info.value)
    assert str(p) in msg


# ---------------------------------------------------------------------------------
# ONNX models: external data and corruptions
# ---------------------------------------------------------------------------------


def _onnx_model(tmp_path: Path, location: str = "weights.bin"):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    W = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(3, 2), "W")
    b = numpy_helper.from_array(np.zeros(2, np.float32), "b")
    g = helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["Y"])],
                          "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 2])], [W, b])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path = tmp_path / "m.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=location,
                    size_threshold=0)
    return path


def _relocate(path: Path, location: str, offset: int | None = None, length: int | None = None) -> None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
            elif e.key == "offset" and offset is not None:
                e.value = str(offset)
            elif e.key == "length" and length is not None:
                e.value = str(length)
    path.write_bytes(model.SerializeToString())


@pytest.mark.parametrize("case", ["/dev/zero", "absolute", "dotdot", "symlink-out", "symlink-dev-zero", "fifo",
                                  "dir", "missing", "past-end", "negative-offset"])
def test_onnx_external_data_is_checked_before_reading(tmp_path, case):
    """apply/compile hashed the files external data named before checking them: /dev/zero read
    forever and ../../etc/passwd was read. Now: one line, nothing read."""
    from gdsolver.extract import model_sha256
    from gdsolver.extract.onnx_frontend import load_onnx

    d = tmp_path / "model"
    d.mkdir()
    path = _onnx_model(d)
    secret = tmp_path / "secret.bin"
    secret.write_bytes((d / "weights.bin").read_bytes())
    loc = {"/dev/zero": "/dev/zero", "absolute": str(secret), "dotdot": "../secret.bin", "symlink-out": "ln.bin",
           "symlink-dev-zero": "zero.bin", "fifo": "pipe.bin", "dir": "sub", "missing": "nothing.bin",
           "past-end": "weights.bin", "negative-offset": "weights.bin"}[case]
    if case == "symlink-out":
        (d / "ln.bin").symlink_to(secret)
    elif case == "symlink-dev-zero":
        (d / "zero.bin").symlink_to("/dev/zero")
    elif case == "fifo":
        os.mkfifo(d / "pipe.bin")
    elif case == "dir":
        (d / "sub").mkdir()
    _relocate(path, loc, offset={"past-end": 10_000, "negative-offset": -8}.get(case))
    for fn in (model_sha256, load_onnx):
        with pytest.raises(FormatError) as info:
            fn(path)
        one_line(info.value)


def test_onnx_external_data_inside_the_directory_hashes_and_loads(tmp_path):
    from gdsolver.extract import model_sha256
    from gdsolver.extract.onnx_frontend import load_onnx

    path = _onnx_model(tmp_path)
    h = model_sha256(path)
    model, _, _ = load_onnx(path)
    assert len(model.graph.initializer) == 2
    data = bytearray((tmp_path / "weights.bin").read_bytes())
    data[0] ^= 1
    (tmp_path / "weights.bin").write_bytes(bytes(data))
    assert model_sha256(path) != h  # a weight change in the external file changes the hash


def _onnx_bytes_case(tmp_path, edits):
    from gdsolver.extract import model_sha256
    from gdsolver.extract.onnx_frontend import load_onnx

    d = tmp_path / "o"
    d.mkdir(exist_ok=True)
    path = _onnx_model(d)
    data = bytearray(path.read_bytes())
    for kind, where, blob in edits:
        pos = int(where * (len(data) - 1)) if data else 0
        if kind == "truncate":
            del data[pos:]
        elif kind == "overwrite":
            data[pos:pos + len(blob)] = blob
        elif kind == "insert":
            data[pos:pos] = blob
        else:
            del data[pos:pos + len(blob)]
    path.write_bytes(bytes(data))
    for fn in (model_sha256, load_onnx):
        try:
            fn(path)
        except GdsolverError as exc:
            one_line(exc)


@pytest.mark.filterwarnings("ignore::UserWarning")  # onnx warns about the mangled keys it ignores
@FAST
@given(edits=st.lists(BYTE_EDITS, min_size=1, max_size=2))
def test_random_onnx_corruptions(tmp_path, edits):
    _onnx_bytes_case(tmp_path, edits)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
@SLOW
@given(edits=st.lists(BYTE_EDITS, min_size=1, max_size=2))
def test_random_onnx_corruptions_many(tmp_path, edits):
    _onnx_bytes_case(tmp_path, edits)


def test_indicator_on_its_own_binary_lowers_to_valid_rows():
    """Found by test_random_instances: z0 = 0 => 3 z0 <= 1 put z0 twice in one big-M row, which
    HiGHS rejected (passModel error); lowering now sums such entries."""
    bld = InstanceBuilder()
    z = bld.add_block("z", (2,), lb=0.0, ub=1.0, vtype=BINARY, cost=[-1.0, 0.0])
    bld.add_indicators("ind", z[:1], 0, np.array([0]), z[:1], np.array([3.0]), lo=-np.inf, hi=1.0)
    bld.add_indicators("own", z[1:], 1, np.array([0]), z[1:], np.array([2.0]), lo=-np.inf, hi=1.0)  # z1=1 => 2 z1 <= 1
    inst = bld.build("min")
    res = solve(inst)
    assert res.status == "OPTIMAL" and verify(inst, res.x).ok
    assert res.x.tolist() == [1.0, 0.0]  # z1 = 1 would violate its own indicator


def test_validate_refuses_bounds_no_value_satisfies():
    for lo, hi in ((np.inf, np.inf), (-np.inf, -np.inf), (2.0, 1.0)):
        bld = InstanceBuilder()
        x = bld.add_block("x", (1,), lb=-1.0, ub=1.0)
        bld.add_rows("r", np.array([0]), x, np.ones(1), 1, lo=lo, hi=hi)
        with pytest.raises(ValueError, match="no value satisfies"):
            bld.build().validate()


# ---------------------------------------------------------------------------------
# .gdsm version 2: the network data a sweep carries is read with the same size checks
# ---------------------------------------------------------------------------------


def test_data_arrays_round_trip_and_are_size_checked(saved, tmp_path):
    inst, _, data = saved
    assert inst.data and {"H", "y"} <= set(inst.data)
    back = load(save(inst, tmp_path / "d.gdsm"))
    for k, v in inst.data.items():
        assert back.data[k].dtype == v.dtype and np.array_equal(back.data[k], v)
    # a data entry inflated far beyond its declared shape: refused from the zip directory
    p = _bomb(data, tmp_path / "bomb.gdsm", "data/H.npy", (3_000_000,))
    with pytest.raises(FormatError, match="'data/H' is stored as"):
        load(p)
    # a data array declared with absurd dimensions: refused by the total before reading
    with pytest.raises(FormatError, match="declares"):
        load(_rewrite(data, tmp_path / "big.gdsm", meta=lambda d: d["arrays"]["data/H"].update(shape=[10**6, 10**6])))
    for bad in ({"dtype": "object"}, {"shape": [-1, 2]}, {"shape": "2x3"}):
        with pytest.raises(FormatError, match="data/H"):
            load(_rewrite(data, tmp_path / "bad.gdsm", meta=lambda d, b=bad: d["arrays"]["data/H"].update(b)))


# ---------------------------------------------------------------------------------
# issue 28: output tails that change values; Gemm attributes; sizes checked before inflating
# ---------------------------------------------------------------------------------


def _gemm_model(path: Path, *, tail: list | None = None, alpha: float = 1.0, bias=None, out_type=None):
    """x (N, 4) -> Gemm(3) [-> tail nodes] -> y."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    W = numpy_helper.from_array(rng.normal(size=(3, 4)).astype(np.float32), "W")
    b = numpy_helper.from_array(np.zeros(3, np.float32) if bias is None else np.asarray(bias, np.float32), "b")
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["s0"], name="fc", transB=1, alpha=alpha)]
    name = "s0"
    for k, (op, attrs) in enumerate(tail or []):
        nodes.append(helper.make_node(op, [name], [f"s{k + 1}"], name=f"t{k}", **attrs))
        name = f"s{k + 1}"
    nodes.append(helper.make_node("Identity", [name], ["y"], name="out"))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", out_type or TensorProto.FLOAT, ["N", 3])], [W, b])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("to,ok", [("INT64", False), ("INT32", False), ("FLOAT16", False), ("BOOL", False),
                                   ("DOUBLE", True), ("FLOAT", True)])
def test_output_cast_is_looked_through_only_when_it_keeps_values(tmp_path, to, ok):
    """logits -> Cast(to=INT64) used to be looked through: compile, apply and evaluate computed on
    the float logits while the model's real outputs were integers (issue 28)."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from gdsolver.extract import network_from_onnx

    elem = getattr(onnx.TensorProto, to)
    p = _gemm_model(tmp_path / "m.onnx", tail=[("Cast", {"to": elem})], out_type=elem)
    X = np.random.default_rng(1).normal(size=(20, 4))
    if ok:
        assert network_from_onnx(p, X).layers[-1].M == 3
        return
    with pytest.raises(GdsolverError) as info:
        network_from_onnx(p, X)
    msg = one_line(info.value)
    assert "'t0' (op Cast)" in msg and to in msg and "changes their values" in msg, msg


def test_value_keeping_tails_still_work(tmp_path):
    """Reshape, Flatten, Identity, a float Cast and a Softmax over the classes stay looked through."""
    pytest.importorskip("onnxruntime")
    from gdsolver.extract import network_from_onnx

    onnx = pytest.importorskip("onnx")
    p = _gemm_model(tmp_path / "m.onnx", tail=[("Softmax", {"axis": 1}), ("Cast", {"to": onnx.TensorProto.DOUBLE}),
                                               ("Flatten", {"axis": 1})], out_type=onnx.TensorProto.DOUBLE)
    net = network_from_onnx(p, np.random.default_rng(1).normal(size=(20, 4)))
    assert net.layers[-1].M == 3 and net.tail["softmax_node"] == "t0"


@pytest.mark.parametrize("alpha,bias,needle", [(float("inf"), None, "alpha=inf"), (0.0, None, "alpha=0"),
                                               (1.0, [0.0, float("inf"), 0.0], "bias 'b'"),
                                               (1.0, [float("nan"), 0.0, 0.0], "holds nan")])
def test_gemm_with_non_finite_alpha_or_bias_is_named(tmp_path, alpha, bias, needle):
    """An inf in a Gemm's alpha or bias was reported as "does not reproduce"; alpha=0 compiled
    into a meaningless instance."""
    pytest.importorskip("onnxruntime")
    from gdsolver.extract import network_from_onnx

    p = _gemm_model(tmp_path / "m.onnx", alpha=alpha, bias=bias)
    with pytest.raises(GdsolverError) as info:
        network_from_onnx(p, np.random.default_rng(1).normal(size=(20, 4)))
    msg = one_line(info.value)
    assert needle in msg and "does not reproduce" not in msg, msg


def _npz_bomb(path: Path, shape: tuple[int, ...], names=("X", "y")) -> Path:
    """An .npz whose members are zeros of `shape` (float64), deflated to almost nothing."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.zeros(shape))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n in names:
            z.writestr(f"{n}.npy", buf.getvalue())
    return path


def test_npz_declared_sizes_are_checked_before_inflating(tmp_path, monkeypatch):
    """A 1 MB .npz reached 22.7 GB (issue 28): the members' declared sizes are now summed and
    checked against GDSOLVER_MAX_DATA_BYTES before anything is decompressed."""
    from gdsolver.data.npz import load_real_arrays

    p = _npz_bomb(tmp_path / "bomb.npz", (1 << 21,))  # 2 x 16 MiB declared, ~30 KB on disk
    assert p.stat().st_size < 100_000
    monkeypatch.setenv("GDSOLVER_MAX_DATA_BYTES", str(8 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="declares 32 MiB of array data, more than the 8 MiB allowed") as info:
            load_real_arrays(p, ("X", "y"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_line(info.value)
    assert peak < 2 << 20, peak  # nothing near the declared size was allocated
    monkeypatch.setenv("GDSOLVER_MAX_DATA_BYTES", str(64 << 20))  # the limit can be raised
    assert load_real_arrays(p, ("X", "y"))["X"].shape == (1 << 21,)


def test_npz_member_larger_than_its_header_is_refused(tmp_path):
    """A header declaring 4 values in front of 4 MB of data: refused from the zip's directory."""
    from gdsolver.data.npz import load_arrays

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.zeros(4))
    with zipfile.ZipFile(tmp_path / "lie.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("X.npy", buf.getvalue() + bytes(4 << 20))
        z.writestr("y.npy", buf.getvalue())
    with pytest.raises(FormatError, match="array 'X' is stored as") as info:
        load_arrays(tmp_path / "lie.npz", ("X", "y"))
    one_line(info.value)
    np.savez(tmp_path / "zero_d.npz", X=np.array(3.0), y=np.arange(2))
    assert load_arrays(tmp_path / "zero_d.npz", ("X", "y"))["X"].shape == ()  # 0-d stays 0-d


def test_idx_header_declaring_2_31_images_is_refused_at_once(tmp_path):
    """An idx .gz declaring 2^31 images read 3.3 GB before its error (issue 28): the header's
    size is checked against the limit before any data is inflated or allocated."""
    import gzip
    import struct
    import time

    from gdsolver.data.idx import read_idx_images

    p = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(p, "wb") as f:
        f.write(struct.pack(">IIII", 0x803, 2**31, 28, 28))
        f.write(bytes(8 << 20))  # zeros: 8 MiB inflated from ~8 KB
    t = time.perf_counter()
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match=r"declares .* of images \(header dims \(2147483648, 28, 28\)\)") as info:
            read_idx_images(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_line(info.value)
    assert peak < 1 << 20 and time.perf_counter() - t < 5, peak


def test_save_refuses_an_instance_load_would_refuse(tmp_path, monkeypatch):
    """compile on a large layer file wrote files no command could load: save checks load's limit."""
    inst = _instances()["class-paper-relu"]
    monkeypatch.setenv("GDSOLVER_MAX_ARRAY_BYTES", "1000")
    with pytest.raises(FormatError, match="GDSOLVER_MAX_ARRAY_BYTES"):
        save(inst, tmp_path / "big.gdsm")
    assert not (tmp_path / "big.gdsm").exists()


def test_blockwise_builders_give_the_same_instance_bit_for_bit(monkeypatch):
    """The memory-bounded paths (intervals and row bounds in blocks of rows, label margins written
    block by block, groups stacked without per-group copies) change no bit of what is built."""
    import gdsolver.formulate.expr as expr
    import gdsolver.ir.bounds as bounds
    from gdsolver.formulate import Dense, sweep_instance
    from gdsolver.ir.bounds import row_bounds

    rng = np.random.default_rng(3)
    layers = [Dense(rng.normal(size=(6, 5)), rng.normal(size=6), "relu"),
              Dense(rng.normal(size=(4, 6)), rng.normal(size=4), "identity")]
    H = rng.normal(size=(60, 5))

    def build(task, mode):
        y = rng.integers(0, 4, 60) if task == "classification" else rng.normal(size=(60, 4))
        inst = sweep_instance(layers, 0, H, y, task=task, radius=0.3, mode=mode)
        return inst, row_bounds(inst.A, inst.lb, inst.ub)

    cases = [("classification", "compact"), ("classification", "paper"), ("regression", "l1")]
    state = rng.bit_generator.state
    whole = [build(*c) for c in cases]
    rng.bit_generator.state = state
    monkeypatch.setattr(expr, "_BLOCK", 64)
    monkeypatch.setattr(bounds, "_BLOCK", 100)
    blocks = [build(*c) for c in cases]
    for (a, ra), (b, rb) in zip(whole, blocks):
        assert fingerprint(a) == fingerprint(b)
        assert all(np.array_equal(x, y) for x, y in zip(ra, rb))


@pytest.mark.slow  # ~30 s: two compiles of a 40 MB layer file in subprocesses
@pytest.mark.parametrize("task,mode", [("classification", "compact"), ("regression", "l1")])
def test_compile_peak_memory_is_a_small_multiple_of_the_instance(tmp_path, task, mode):
    """Peak RSS of `gdsolver compile` on a layer file against the arrays it keeps (issue 28, item 4:
    a layer file's H inflating to 256 MiB drove compile to 16.6 GB, 65x). Measured with
    getrusage(RUSAGE_CHILDREN) of the one compile subprocess; the factor is printed."""
    import resource
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    T, N, M = 5000, 200, 10
    H = rng.random((T, N))
    y = rng.integers(0, M, T) if task == "classification" else H @ rng.normal(size=(N, M))
    np.savez(tmp_path / "layer.npz", W=rng.normal(size=(M, N)) * 0.1, b=np.zeros(M), H=H, y=y)
    p = subprocess.run([sys.executable, "-c", "import resource, subprocess, sys\n"
                        "subprocess.run([sys.executable, '-m', 'gdsolver.cli.main', *sys.argv[1:]], check=True)\n"
                        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
                        "compile", "layer.npz", "--task", task, "--mode", mode, "--radius", "0.05", "-o", "i.gdsm"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    peak = int(p.stdout.strip().splitlines()[-1]) * 1024
    inst = load(tmp_path / "i.gdsm")
    kept = sum(a.nbytes for a in (inst.lb, inst.ub, inst.c, inst.vtype, inst.A.indptr, inst.A.indices, inst.A.data,
                                   inst.row_lo, inst.row_hi, inst.ind_var, inst.ind_val, inst.ind_A.indptr,
                                   inst.ind_A.indices, inst.ind_A.data, inst.ind_lo, inst.ind_hi))
    kept += sum(a.nbytes for a in inst.data.values()) + (inst.start.nbytes if inst.start is not None else 0)
    print(f"{task} {mode}: peak {peak / 2**20:.0f} MiB for {kept / 2**20:.0f} MiB kept: {peak / kept:.2f}x")
    assert peak <= 4 * kept, (peak, kept)
