"""Hostile metadata and results that lie (issue 28, items 1 and 2).

A .gdsm's user meta is not covered by its fingerprint: anyone can edit `points`, `network`,
`margin`, `tail`, `data`, `model` ... Every field gdsolver reads is checked when the file is
loaded (gdsolver/ir/schema.py), so inspect, solve, apply, evaluate and replay either work or
refuse in one line (exit 2), never with a traceback. A result whose recorded objective is not
the objective of its own x is refused by replay, and replay's --tol is a sane number.
Property-based cases use hypothesis: a few examples by default, many under -m slow."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from clirun import run  # noqa: E402
from gdsolver.errors import FormatError  # noqa: E402
from gdsolver.ir import load  # noqa: E402

FAST = settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    """Run the CLI in this process (clirun.run, the installed script's entry point): (exit code,
    stdout, stderr). An exception escaping it is a traceback a user would have seen: it fails the
    test. A 60 s alarm turns a hang into a failure."""
    p = run(*args, cwd=cwd, timeout=60)
    assert "Traceback" not in p.stderr, (args, p.stderr)
    return p.returncode, p.stdout, p.stderr


def one_error_line(code: int, err: str, *needles: str) -> str:
    assert code == 2, (code, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _model(path: Path, rng) -> None:
    """x (T, 6) -> Gemm(8) -> Relu -> Gemm(3) -> y: the shape torch.onnx.export gives an MLP."""
    from onnx import TensorProto, helper, numpy_helper

    W1, b1 = rng.normal(size=(8, 6)).astype(np.float32), rng.normal(size=8).astype(np.float32) * 0.1
    W2, b2 = rng.normal(size=(3, 8)).astype(np.float32), np.zeros(3, np.float32)
    g = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="fc1", transB=1),
         helper.make_node("Relu", ["h"], ["r"], name="relu"),
         helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], name="fc2", transB=1)],
        "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(a, n) for a, n in ((W1, "W1"), (b1, "b1"), (W2, "W2"), (b2, "b2"))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> Path:
    """A model, its data, a counting-head sweep instance compiled from them (8 misclassified
    points, 4 kept correct) and its solved result."""
    d = tmp_path_factory.mktemp("meta")
    rng = np.random.default_rng(7)
    _model(d / "m.onnx", rng)
    X = rng.normal(size=(120, 6)).astype(np.float32)
    np.savez(d / "data.npz", X=X, y=rng.integers(0, 3, 120))
    code, _, err = cli("compile", "m.onnx", "--data", "data.npz", "--task", "classification", "--mode", "compact",
                       "--points", "8", "--keep-correct", "4", "--radius", "0.2", "-o", "s.gdsm", cwd=d)
    assert code == 0, err
    code, _, err = cli("solve", "s.gdsm", cwd=d)
    assert code == 0, err
    return d


def _edit_meta(src: Path, dst: Path, edit) -> Path:
    """Copy the .gdsm with its meta edited in place by edit(meta) (the fingerprint does not cover meta)."""
    zin = zipfile.ZipFile(src)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            raw = zin.read(name)
            if name == "meta.json":
                doc = json.loads(raw)
                edit(doc["meta"])
                raw = json.dumps(doc, allow_nan=True).encode()
            zout.writestr(name, raw)
    return dst


def _copy_case(case: Path, to: Path) -> Path:
    to.mkdir(parents=True, exist_ok=True)
    for f in case.iterdir():
        if f.is_file():
            shutil.copy(f, to / f.name)
    return to


def _set(path: str, value):
    """edit(meta): meta[a][b]... = value for a dotted path; 'del' removes the key."""
    keys = path.split(".")

    def edit(meta):
        node = meta
        for k in keys[:-1]:
            node = node.setdefault(k, {}) if isinstance(node, dict) else node
        if isinstance(node, dict):
            if value == "del":
                node.pop(keys[-1], None)
            else:
                node[keys[-1]] = value
    return edit


# ---------------------------------------------------------------------------------
# the issue's cases: refused at load, naming the file and the field
# ---------------------------------------------------------------------------------

ISSUE_CASES = [
    ("network", [1, 2], "network[0]"), ("margin", "abc", "margin"), ("layer", "abc", "layer"),
    ("points", "abc", "points"), ("tail", 5, "tail"), ("data", "x", "data"), ("model", "x", "model"),
    ("points", [-1] * 8, "points[0]"), ("points", [3, 3, 5, 6, 7, 8, 9, 10], "points[1]"),
    ("points", [10**6] + [1] * 7, "points[0]"), ("keep_points", [-2, 1, 2, 4], "keep_points[0]"),
    ("radius", -1, "radius"), ("radius", float("inf"), "radius"), ("margin", float("nan"), "margin"),
    ("task", "regression", "task"), ("mode", "l1", "mode"), ("mode", "banana", "mode"),
    ("layer.index", 5, "layer.index"), ("layer.location", [1], "layer.location"),
    ("layer.location.transB", "yes", "layer.location.transB"), ("tail.output", ["y"], "tail.output"),
    ("model.sha256", 7, "model.sha256"), ("data.X_sha256", "zz", "data.X_sha256"),
    ("network", [{"name": "fc2", "shape": [3, 9], "activation": "identity"}], "network[0].shape"),
    ("network", [{"name": "fc2", "shape": [3, 8], "activation": "tanh"}], "network[0].activation"),
    ("data_points", 5, "points["), ("T", 3, "points"), ("keep_correct", [500], "keep_correct[0]"),
    ("stage", "ce", "stage"), ("formulation", "regression", "task"),
]


@pytest.mark.parametrize("field,value,named", ISSUE_CASES, ids=[f"{c[0]}={c[1]!r}"[:40] for c in ISSUE_CASES])
def test_meta_fields_are_checked_at_load(case, tmp_path, field, value, named):
    bad = _edit_meta(case / "s.gdsm", tmp_path / "s.gdsm", _set(field, value))
    with pytest.raises(FormatError) as info:
        load(bad)
    msg = str(info.value)
    assert "\n" not in msg and str(bad) in msg and f"meta field '{named}" in msg, msg


@pytest.mark.parametrize("field,value,named", ISSUE_CASES[:8])
def test_meta_field_refusals_are_one_line_in_every_command(case, tmp_path, field, value, named):
    """The issue's tracebacks (inspect, solve, apply, evaluate) are one `error:` line, exit 2."""
    d = _copy_case(case, tmp_path / "c")
    _edit_meta(case / "s.gdsm", d / "s.gdsm", _set(field, value))
    for args in (["inspect", "s.gdsm"], ["solve", "s.gdsm", "-o", "r.json"],
                 ["apply", "m.onnx", "s.result.json", "-o", "o.onnx", "--data", "data.npz"],
                 ["evaluate", "m.onnx", "--task", "classification", "--data", "data.npz", "--instance", "s.gdsm"],
                 ["replay", "s.gdsm"]):
        code, _, err = cli(*args, cwd=d)
        one_error_line(code, err, "s.gdsm", named)
    assert not (d / "o.onnx").exists() and not (d / "r.json").exists()


def test_unknown_meta_keys_stay_free_form(case, tmp_path):
    """A user's own keys (any JSON, inf and NaN too) load and show in inspect."""
    p = _edit_meta(case / "s.gdsm", tmp_path / "u.gdsm", lambda m: m.update(mine={"a": [1, None]}, x=float("inf")))
    assert load(p).meta["mine"] == {"a": [1, None]}
    code, out, err = cli("inspect", "u.gdsm", cwd=tmp_path)
    assert code == 0, err and "mine" in out


def test_the_writers_meta_passes_the_schema(case):
    """What compile_model and prepare_sweep write loads: the schema describes the real files."""
    meta = load(case / "s.gdsm").meta
    for key in ("task", "points", "keep_points", "data_points", "layer", "network", "tail", "model", "data", "margin",
                "radius", "mode", "T", "N", "M"):
        assert key in meta, key
    assert len(meta["points"]) + len(meta["keep_points"]) == meta["T"]


def test_schema_modes_match_the_formulations():
    from gdsolver.formulate.head_table import CLASSIFICATION_MODES, REGRESSION_MODES, SMOOTH_MODES
    from gdsolver.ir import schema

    assert schema.CLASSIFICATION_MODES == CLASSIFICATION_MODES and schema.REGRESSION_MODES == REGRESSION_MODES
    assert set(schema.SMOOTH_MODES) == set(SMOOTH_MODES)  # a membership test: the order is not used


# ---------------------------------------------------------------------------------
# property: any value in any field, through every command: exit 0/1/2, never a traceback
# ---------------------------------------------------------------------------------

META_FIELDS = ["network", "margin", "layer", "points", "keep_points", "tail", "data", "model", "task", "radius",
               "mode", "formulation", "T", "N", "M", "data_points", "keep_correct", "box_bias", "activation",
               "seed", "relu", "relu_binaries", "current_objective", "stage", "source", "run", "layer.index",
               "layer.count", "layer.location", "layer.location.affine_node", "layer.location.W_initializer",
               "layer.location.alpha", "layer.location.graph_output", "tail.output", "tail.softmax",
               "tail.softmax_axis", "tail.classes", "model.sha256", "data.X_sha256", "network.0"]

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6) | st.sampled_from(["y", "fc2", "W2", "classification", "regression", "paper", "ce", "l1",
                                             "0" * 64, "Softmax", "x", "../../etc/passwd"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)
NEAR_VALUES = st.one_of(st.lists(st.integers(-3, 130), max_size=14),  # point lists: negative, repeated, too big
                        st.sampled_from([0, 1, 2, 3, 8, 12, 119, 120, 121, 1e-9, 0.5, 1e300, -0.0]))


def _mutate(meta: dict, path: str, value) -> None:
    keys = path.split(".")
    node = meta
    for k in keys[:-1]:
        if isinstance(node, list) and k.isdigit() and int(k) < len(node):
            node = node[int(k)]
        elif isinstance(node, dict):
            node = node.setdefault(k, {})
        else:
            return
    last = keys[-1]
    if isinstance(node, list) and last.isdigit():
        if int(last) < len(node):
            node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value


def _commands_survive(case: Path, d: Path, field: str, value) -> None:
    d = _copy_case(case, d)
    _edit_meta(case / "s.gdsm", d / "s.gdsm", lambda m: _mutate(m, field, value))
    for args in (["inspect", "s.gdsm"], ["solve", "s.gdsm", "-o", "r.json", "--time-limit", "20"],
                 ["apply", "m.onnx", "s.result.json", "-o", "o.onnx", "--data", "data.npz"],
                 ["evaluate", "m.onnx", "--task", "classification", "--data", "data.npz", "--instance", "s.gdsm"],
                 ["replay", "s.gdsm"]):
        code, out, err = cli(*args, cwd=d)  # an exception escaping here is the traceback a user saw
        assert code in (0, 1, 2), (args, code, err)
        assert "Traceback" not in err and "Traceback" not in out, (args, err)
        if code == 2:
            one_error_line(code, err)


@FAST
@given(field=st.sampled_from(META_FIELDS), value=st.one_of(JSON_VALUES, NEAR_VALUES))
def test_any_meta_edit_is_answered_or_refused_in_one_line(case, tmp_path_factory, field, value):
    _commands_survive(case, tmp_path_factory.mktemp("p"), field, value)


@pytest.mark.slow
@SLOW
@given(field=st.sampled_from(META_FIELDS), value=st.one_of(JSON_VALUES, NEAR_VALUES))
def test_any_meta_edit_is_answered_or_refused_in_one_line_many(case, tmp_path_factory, field, value):
    _commands_survive(case, tmp_path_factory.mktemp("p"), field, value)


# ---------------------------------------------------------------------------------
# results that lie; replay --tol
# ---------------------------------------------------------------------------------


def _lying_result(case: Path, d: Path, delta: float) -> Path:
    d = _copy_case(case, d)
    doc = json.loads((d / "s.result.json").read_text())
    doc["objective"] = doc["objective"] + delta
    (d / "s.result.json").write_text(json.dumps(doc))
    return d


def test_replay_refuses_a_recorded_objective_that_is_not_its_x(case, tmp_path):
    """The issue: x was the MIP start (objective 20), the record said 28, replay said "match"."""
    from gdsolver.compile.result import load_result

    rec = load_result(case / "s.result.json")
    inst = load(case / "s.gdsm")
    assert rec.objective == pytest.approx(inst.objective_value(rec.x))  # the honest record replays
    code, out, err = cli("replay", "s.gdsm", cwd=case)
    assert code == 0 and "all 1 replays match" in out, (out, err)
    d = _lying_result(case, tmp_path / "lie", 8.0)
    code, out, err = cli("replay", "s.gdsm", cwd=d)
    assert code == 1, (code, out, err)
    row = next(ln for ln in out.splitlines() if ln.startswith("s.gdsm"))
    assert "NO" in row and "1 of 1 replays differ" in out


@pytest.mark.parametrize("tol", ["inf", "nan", "-1", "1e300", "0.5", "-0"])
def test_replay_tol_must_be_sane(case, tmp_path, tol):
    """--tol inf (or 1e300) made a lying result "match"; -1 was a traceback; nan was accepted."""
    d = _lying_result(case, tmp_path / "lie", 8.0)
    code, out, err = cli("replay", "s.gdsm", "--tol", tol, cwd=d)
    if tol == "-0":  # zero is a tolerance: the lie is still refused
        assert code == 1 and "NO" in out
        return
    one_error_line(code, err, "--tol")


@pytest.mark.parametrize("value", ["nan", "-1", "0"])
def test_replay_time_limit_must_be_positive(case, value):
    code, _, err = cli("replay", "s.gdsm", "--time-limit", value, cwd=case)
    one_error_line(code, err, "--time-limit")


@pytest.mark.parametrize("field,value,named", [
    ("objective", float("nan"), "objective"), ("objective", float("inf"), "objective"),
    ("gap", -1, "gap"), ("runtime_s", float("inf"), "runtime_s"), ("objective", None, "objective"),
    ("options", {"time_limit": -5}, "options.time_limit"), ("options", {"threads": 0}, "options.threads"),
    ("options", {"use_start": "yes"}, "options.use_start"), ("options", {"pipeline": 3}, "options.pipeline"),
    ("status", "INFEASIBLE", "x_file"),
])
def test_result_fields_checked_at_load(case, tmp_path, field, value, named):
    from gdsolver.compile.result import load_result

    d = _copy_case(case, tmp_path / "r")
    doc = json.loads((d / "s.result.json").read_text())
    doc[field] = value
    (d / "s.result.json").write_text(json.dumps(doc, allow_nan=True))
    with pytest.raises(FormatError) as info:
        load_result(d / "s.result.json")
    msg = str(info.value)
    assert "\n" not in msg and "s.result.json" in msg and named in msg, msg
    code, _, err = cli("replay", "s.gdsm", cwd=d)
    one_error_line(code, err, named)


@pytest.mark.parametrize("field,value", [("run_id", 5), ("state", "done"), ("sweep_files", {"0001.gdsm": 3}),
                                         ("format_version", 9), ("error", 1)])
def test_run_json_fields_checked_at_load(tmp_path, field, value):
    from gdsolver.compile.replay import read_run

    doc = {"format": "gdsolver-run", "format_version": 2, "run_id": "ab" * 16, "state": "complete",
           "sweep_files": {}}
    doc[field] = value
    (tmp_path / "run.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=f"run.json field '{field}") as info:
        read_run(tmp_path)
    assert "\n" not in str(info.value)


def test_a_small_lie_is_refused_whatever_the_tolerance(case, tmp_path):
    """--tol compares two solves; the recorded objective of the recorded x is arithmetic, checked
    at float rounding: a record 0.5% off is refused even with the largest --tol."""
    from gdsolver.compile.result import load_result

    obj = load_result(case / "s.result.json").objective
    d = _lying_result(case, tmp_path / "lie", 0.005 * max(1.0, abs(obj)))
    code, out, err = cli("replay", "s.gdsm", "--tol", "0.01", cwd=d)
    assert code == 1 and "1 of 1 replays differ" in out, (code, out, err)
