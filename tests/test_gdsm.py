"""The .gdsm file: bit-exact round trips, and every kind of corruption -> FormatError."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gdsolver.errors import FormatError
from gdsolver.formulate import classification, regression
from gdsolver.ir import BINARY, INTEGER, Csr, InstanceBuilder, MilpInstance, fingerprint, load, read_header, save

# ---------------------------------------------------------------------------------
# instances
# ---------------------------------------------------------------------------------


def _custom(with_start: bool) -> MilpInstance:
    """Hand-built: infinities, integers, max sense, c0, nested unicode meta, both
    indicator values, no start unless asked."""
    bld = InstanceBuilder()
    start = (lambda v: v) if with_start else (lambda v: None)
    x = bld.add_block("x", (2, 2), lb=[[-np.inf, 0.0], [-1.0, 2.0]], ub=[[1.0, np.inf], [np.inf, 2.0]],
                      cost=[[1.0, -2.0], [0.5, 0.0]], start=start(np.zeros((2, 2)) + [[0, 1], [0, 2]]))
    k = bld.add_block("k", (3,), lb=0.0, ub=9.0, vtype=INTEGER, cost=1e-300, start=start(np.ones(3)))
    z = bld.add_block("z", (2,), lb=0.0, ub=1.0, vtype=BINARY, start=start(np.array([1.0, 0.0])))
    bld.add_rows("r", np.array([0, 0, 1, 1, 1]), np.array([x[0, 1], k[0], x[1, 0], k[1], k[2]]),
                 np.array([1.0, -3.5, 2.0, 1e-12, 7.0]), 3, lo=[-np.inf, 1.0, -5.0], hi=[4.0, np.inf, -5.0])
    bld.add_indicators("ind", z, [1, 0], np.array([0, 1]), np.array([k[0], x[1, 1]]), np.array([1.0, -1.0]),
                       lo=[2.0, -np.inf], hi=[np.inf, 0.5])
    return bld.build("max", c0=-3.25, meta={"name": "custom ✓", "nested": {"a": [1, 2.5, None, True]},
                                            "inf_free": 1e308})


def _instances() -> dict[str, MilpInstance]:
    rng = np.random.default_rng(0)
    M, N, T = 3, 2, 6
    W, b, H = rng.normal(size=(M, N)), rng.normal(size=M), rng.normal(size=(T, N))
    labels = rng.integers(0, M, T)
    out = {
        "reg-l1-identity": regression(W, b, H, rng.normal(size=(T, M)), radius=0.1),
        "class-paper-relu": classification(W, b, H, labels, radius=0.2, activation="relu", mode="paper"),
        "custom-start": _custom(True),
        "custom-nostart": _custom(False),
    }
    bld = InstanceBuilder()  # no rows, no indicators, no start
    bld.add_block("v", (3,), lb=0.0, ub=1.0, cost=1.0)
    out["empty-rows"] = bld.build()
    return out


def assert_identical(a: MilpInstance, b: MilpInstance) -> None:
    for f in dataclasses.fields(MilpInstance):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            assert isinstance(x, np.ndarray) and isinstance(y, np.ndarray), f.name
            assert x.dtype == y.dtype and x.shape == y.shape, f.name
            assert x.tobytes() == y.tobytes(), f.name
        elif isinstance(x, Csr):
            for g in ("indptr", "indices", "data"):
                u, v = getattr(x, g), getattr(y, g)
                assert u.dtype == v.dtype and u.tobytes() == v.tobytes(), f"{f.name}.{g}"
            assert x.ncols == y.ncols
        elif f.name == "data":
            assert list(x) == list(y), f.name
            for k in x:
                assert x[k].dtype == y[k].dtype and x[k].shape == y[k].shape and x[k].tobytes() == y[k].tobytes(), k
        elif f.name in ("blocks", "row_groups", "ind_groups"):
            assert list(x.items()) == list(y.items()), f.name  # order matters
        else:
            assert x == y, f.name
            assert type(x) is type(y), f.name
    assert fingerprint(a) == fingerprint(b)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("gdsm")
    inst = _instances()["class-paper-relu"]
    path = save(inst, d / "inst.gdsm")
    return inst, Path(path), path.read_bytes()


# ---------------------------------------------------------------------------------
# round trip
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(_instances()))
def test_round_trip_bit_exact(name, tmp_path):
    inst = _instances()[name]
    p = save(inst, tmp_path / f"{name}.gdsm")
    assert p == tmp_path / f"{name}.gdsm"
    back = load(p)
    assert_identical(inst, back)
    # and a second generation is identical too
    assert_identical(inst, load(save(back, tmp_path / "again.gdsm")))
    assert [q.name for q in tmp_path.iterdir() if q.name.startswith(".")] == []  # no temp files left


def test_round_trip_no_start_stays_none(tmp_path):
    back = load(save(_custom(False), tmp_path / "a.gdsm"))
    assert back.start is None
    assert back.num_indicators == 2 and list(back.ind_val) == [1, 0]


def test_read_header(saved):
    inst, path, _ = saved
    doc = read_header(path)
    assert doc["format"] == "gdsolver-milp" and doc["format_version"] == 2
    assert doc["fingerprint"] == fingerprint(inst)
    assert doc["meta"] == inst.meta
    assert doc["num_vars"] == inst.num_vars


def test_fingerprint_ignores_start_and_meta_but_not_data():
    inst = _instances()["custom-start"]
    fp = fingerprint(inst)
    assert fingerprint(dataclasses.replace(inst, start=None)) == fp
    assert fingerprint(dataclasses.replace(inst, meta={"other": 1})) == fp
    c = inst.c.copy()
    c[0] += 1e-12
    assert fingerprint(dataclasses.replace(inst, c=c)) != fp
    assert fingerprint(dataclasses.replace(inst, sense="min")) != fp
    assert fingerprint(dataclasses.replace(inst, c0=0.0)) != fp
    ub = inst.ub.copy()
    ub[-1] = 0.0
    assert fingerprint(dataclasses.replace(inst, ub=ub)) != fp


def test_save_rejects_non_json_meta(tmp_path):
    inst = dataclasses.replace(_instances()["empty-rows"], meta={"bad": object()})
    with pytest.raises(FormatError):
        save(inst, tmp_path / "x.gdsm")
    assert list(tmp_path.iterdir()) == []


def test_save_overwrites_atomically(tmp_path, saved):
    _, _, data = saved
    p = tmp_path / "x.gdsm"
    p.write_bytes(b"old")
    inst = _instances()["reg-l1-identity"]
    save(inst, p)
    assert_identical(inst, load(p))


# ---------------------------------------------------------------------------------
# corruption
# ---------------------------------------------------------------------------------


def _load_or_format_error(path: Path, original: MilpInstance, what: str) -> str:
    try:
        back = load(path)
    except FormatError as exc:
        msg = str(exc)
        assert "\n" not in msg, what
        return "error"
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"{what}: {type(exc).__name__}: {exc} (expected FormatError)")
    assert_identical(original, back)
    return "loaded"


@pytest.mark.parametrize("cut", [0, 1, 4, 30, 100, 0.25, 0.5, 0.75, -100, -22, -21, -1])
def test_truncated(saved, tmp_path, cut):
    _, _, data = saved
    n = int(len(data) * cut) if isinstance(cut, float) else (cut if cut >= 0 else len(data) + cut)
    p = tmp_path / "t.gdsm"
    p.write_bytes(data[:n])
    with pytest.raises(FormatError):
        load(p)


def _zip_structure_positions(data: bytes) -> list[int]:
    """Every byte of every central-directory header and local file header."""
    pos = []
    zf = zipfile.ZipFile(io.BytesIO(data))
    eocd = data.rfind(b"PK\x05\x06")
    cd_size, cd_off = struct.unpack("<II", data[eocd + 12: eocd + 20])
    pos += range(cd_off, len(data))  # central directory + end record
    for info in zf.infolist():
        off = info.header_offset
        name_len, extra_len = struct.unpack("<HH", data[off + 26: off + 30])
        pos += range(off, off + 30 + name_len + extra_len)
    return sorted(set(pos))


def _flip_sweep(inst, data, tmp_path, flips):
    p = tmp_path / "flip.gdsm"
    outcomes = {"error": 0, "loaded": 0}
    failures = []
    for pos, mask in flips:
        d = bytearray(data)
        d[pos] ^= mask
        p.write_bytes(bytes(d))
        try:
            outcomes[_load_or_format_error(p, inst, f"flip {mask:#04x} at byte {pos}")] += 1
        except pytest.fail.Exception as exc:
            failures.append(str(exc).splitlines()[0])
    assert not failures, f"{len(failures)} of {len(flips)} flips raised something else, e.g. {failures[:4]}"
    assert outcomes["error"] > 0
    return outcomes


def test_bit_flips_give_format_error_or_identical_instance(saved, tmp_path):
    """Flip one bit at many positions (a seeded sample of 300 zip-header bytes plus every
    32nd byte; every bit of every byte with -m slow): each flip gives FormatError or a
    bit-identical instance."""
    inst, _, data = saved
    rng = np.random.default_rng(1234)
    structure = np.array(_zip_structure_positions(data))
    picked = rng.choice(structure, size=min(300, len(structure)), replace=False)
    positions = sorted(set(picked.tolist()) | set(range(3, len(data), 32)))
    flips = [(pos, int(1 << rng.integers(0, 8))) for pos in positions]
    _flip_sweep(inst, data, tmp_path, flips)


@pytest.mark.slow
def test_bit_flips_exhaustive(saved, tmp_path):
    """Every bit of every byte (about 50k loads): run with -m slow."""
    inst, _, data = saved
    _flip_sweep(inst, data, tmp_path, [(pos, 1 << bit) for pos in range(len(data)) for bit in range(8)])


def _rewrite(data: bytes, path: Path, *, meta=None, replace: dict[str, bytes] | None = None,
             drop: tuple[str, ...] = ()) -> Path:
    """Copy the zip with meta.json transformed by `meta(doc)` and entries replaced/dropped."""
    src = zipfile.ZipFile(io.BytesIO(data))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            if name in drop:
                continue
            raw = src.read(name)
            if name == "meta.json" and meta is not None:
                doc = json.loads(raw)
                out = meta(doc)  # edits doc in place, or returns the raw replacement
                raw = out if isinstance(out, (bytes, str)) else json.dumps(doc)
            if replace and name in replace:
                raw = replace[name]
            dst.writestr(name, raw)
        for name, raw in (replace or {}).items():
            if name not in src.namelist():
                dst.writestr(name, raw)
    return path


def test_rewrite_unchanged_loads(saved, tmp_path):
    inst, _, data = saved
    assert_identical(inst, load(_rewrite(data, tmp_path / "same.gdsm", meta=lambda d: None)))


def _set(key, value):
    def f(doc):
        doc[key] = value
    return f


def _del(key):
    def f(doc):
        del doc[key]
    return f


META_DEFECTS = {
    "format_version 3": _set("format_version", 3),
    "format_version string": _set("format_version", "1"),
    "format_version missing": _del("format_version"),
    "format name": _set("format", "something-else"),
    "format missing": _del("format"),
    "num_vars missing": _del("num_vars"),
    "arrays missing": _del("arrays"),
    "blocks missing": _del("blocks"),
    "sense bad": _set("sense", "sideways"),
    "c0 string": _set("c0", "zero"),
    "blocks not a list": _set("blocks", 5),
    "row_groups malformed": _set("row_groups", [["x"]]),
    "num_vars wrong": lambda d: d.update(num_vars=d["num_vars"] + 1),
    "unknown array": lambda d: d["arrays"].update(extra={"sha256": "0", "dtype": "float64", "shape": [1]}),
    "array sha wrong": lambda d: d["arrays"]["lb"].update(sha256="0" * 64),
    "array shape wrong": lambda d: d["arrays"]["lb"].update(shape=[1]),
    "required array unlisted": lambda d: d["arrays"].pop("ub"),
    "not json": lambda d: b"{not json",
    "json list": lambda d: b"[1, 2, 3]",
    "json null": lambda d: b"null",
    "not utf-8": lambda d: b"\xff\xfe\x00garbage",
    # malformed values of the right keys (a hand-edited or damaged header)
    "num_vars string": _set("num_vars", "abc"),
    "num_vars null": _set("num_vars", None),
    "arrays is a list": _set("arrays", []),
    "array info is a string": lambda d: d["arrays"].update(lb="x"),
}


@pytest.mark.parametrize("case", sorted(META_DEFECTS))
def test_bad_meta_json(saved, tmp_path, case):
    _, _, data = saved
    p = _rewrite(data, tmp_path / "m.gdsm", meta=META_DEFECTS[case])
    with pytest.raises(FormatError):
        load(p)


def test_wrong_format_version_message(saved, tmp_path):
    _, _, data = saved
    p = _rewrite(data, tmp_path / "v.gdsm", meta=_set("format_version", 99))
    with pytest.raises(FormatError, match="format_version"):
        load(p)
    with pytest.raises(FormatError, match="format_version"):
        read_header(p)


def test_tampered_structure_detected(saved, tmp_path):
    """meta.json stores the fingerprint; block offsets edited so that the total size
    still matches must not load as a different (silently mis-unpacked) instance."""
    _, _, data = saved

    def shift(doc):
        blocks = doc["blocks"]
        blocks[1][1] -= 1  # 'b' now overlaps 'w'
    p = _rewrite(data, tmp_path / "s.gdsm", meta=shift)
    with pytest.raises(FormatError):
        load(p)


def test_missing_entries(saved, tmp_path):
    _, _, data = saved
    with pytest.raises(FormatError, match="meta.json"):
        load(_rewrite(data, tmp_path / "a.gdsm", drop=("meta.json",)))
    with pytest.raises(FormatError, match="lb"):
        load(_rewrite(data, tmp_path / "b.gdsm", drop=("lb.npy",)))


def _npy(arr, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


class _Trap:
    """Unpickling this creates a directory: proof that something was unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_object_array_is_never_unpickled(saved, tmp_path):
    inst, _, data = saved
    marker = tmp_path / "UNPICKLED"
    trap = np.empty(inst.num_vars, dtype=object)
    trap[:] = [_Trap(str(marker))] * inst.num_vars
    payload = _npy(trap, allow_pickle=True)
    for entry in ("lb.npy", "start.npy"):
        p = _rewrite(data, tmp_path / f"obj-{entry}.gdsm", replace={entry: payload})
        with pytest.raises(FormatError):
            load(p)
        # also with meta.json claiming dtype object
        p = _rewrite(data, tmp_path / f"obj2-{entry}.gdsm", replace={entry: payload},
                     meta=lambda d, e=entry[:-4]: d["arrays"][e].update(dtype="object"))
        with pytest.raises(FormatError):
            load(p)
    assert not marker.exists()


def test_wrong_dtype_with_matching_hash(saved, tmp_path):
    """A well-formed array of the wrong dtype, with meta.json updated to match its hash
    and shape, is still rejected."""
    inst, _, data = saved
    lb32 = inst.lb.astype(np.float32)
    import hashlib

    def upd(doc):
        doc["arrays"]["lb"].update(sha256=hashlib.sha256(lb32.tobytes()).hexdigest(), dtype="float32")
    p = _rewrite(data, tmp_path / "d.gdsm", replace={"lb.npy": _npy(lb32)}, meta=upd)
    with pytest.raises(FormatError, match="lb"):
        load(p)


def test_modified_array_fails_hash(saved, tmp_path):
    inst, _, data = saved
    lb = inst.lb.copy()
    lb[0] -= 1.0
    p = _rewrite(data, tmp_path / "h.gdsm", replace={"lb.npy": _npy(lb)})
    with pytest.raises(FormatError, match="sha256"):
        load(p)


def _unclosed_header_npy() -> bytes:
    """A .npy whose header dict is never closed (numpy's header parser then raises
    tokenize.TokenError, not ValueError)."""
    h = b"{'descr': '<f8', 'fortran_order': False, 'shape': (3,), "
    h = h + b" " * (118 - len(h) - 1) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + b"\0" * 24


GARBAGE_NPY = {
    "empty": b"",
    "magic only": b"\x93NUMPY",
    "huge header length": b"\x93NUMPY\x01\x00\xff\xff" + b"x" * 40,
    "zip inside": b"PK\x03\x04junk",
    "unclosed header": _unclosed_header_npy(),
    "bad descr": _npy(np.zeros(3)).replace(b"<f8", b"<q9"),
}


@pytest.mark.parametrize("kind", sorted(GARBAGE_NPY))
def test_garbage_npy_entry(saved, tmp_path, kind):
    _, _, data = saved
    p = _rewrite(data, tmp_path / "g.gdsm", replace={"ub.npy": GARBAGE_NPY[kind]})
    with pytest.raises(FormatError):
        load(p)


def test_not_a_zip_and_missing(tmp_path):
    cases = {
        "text.gdsm": b"this is not a zip file\n" * 10,
        "empty.gdsm": b"",
        "npy.gdsm": _npy(np.zeros(3)),
        "npz.gdsm": None,  # a valid zip without meta.json
    }
    for name, content in cases.items():
        p = tmp_path / name
        if content is None:
            np.savez(p.with_suffix(""), a=np.zeros(2))
            p.with_suffix(".npz").rename(p)
        else:
            p.write_bytes(content)
        with pytest.raises(FormatError):
            load(p)
    with pytest.raises(FormatError, match="not found"):
        load(tmp_path / "missing.gdsm")
    with pytest.raises(FormatError):
        load(tmp_path)  # a directory
    with pytest.raises(FormatError):
        read_header(tmp_path / "missing.gdsm")


# targeted zip-header defects (what the bit-flip sweep finds, pinned down one by one)

def _patch_central(data: bytes, entry: str, offset: int, value: bytes) -> bytes:
    """Overwrite bytes at `offset` inside the central-directory header of `entry`."""
    d = bytearray(data)
    i = data.rfind(b"PK\x05\x06")
    cd_off = struct.unpack("<I", data[i + 16: i + 20])[0]
    while data[cd_off: cd_off + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack("<HHH", data[cd_off + 28: cd_off + 34])
        name = data[cd_off + 46: cd_off + 46 + name_len].decode()
        if name == entry:
            d[cd_off + offset: cd_off + offset + len(value)] = value
            return bytes(d)
        cd_off += 46 + name_len + extra_len + comment_len
    raise AssertionError(f"no central directory entry {entry}")


@pytest.mark.parametrize("entry", ["meta.json", "lb.npy"])
@pytest.mark.parametrize("offset,value", [
    pytest.param(8, b"\x01\x00", id="encrypted-flag"),
    pytest.param(10, b"\x63\x00", id="unknown-compression-method"),
    pytest.param(6, b"\xff\x00", id="unsupported-zip-version"),
])
def test_zip_header_defects(saved, tmp_path, entry, offset, value):
    _, _, data = saved
    p = tmp_path / "z.gdsm"
    p.write_bytes(_patch_central(data, entry, offset, value))
    with pytest.raises(FormatError):
        load(p)


def test_version_1_file_without_network_data_still_loads(tmp_path):
    """Files written before format 2 (no data/ arrays) load, with empty inst.data."""
    rng = np.random.default_rng(3)
    inst = classification(rng.normal(size=(3, 4)), rng.normal(size=3), rng.normal(size=(5, 4)),
                          rng.integers(0, 3, 5), radius=0.1, mode="compact")
    assert inst.data and "H" in inst.data
    path = save(inst, tmp_path / "v2.gdsm")
    import zipfile

    with zipfile.ZipFile(path) as zf:
        doc = json.loads(zf.read("meta.json"))
        entries = {n: zf.read(n) for n in zf.namelist() if not n.startswith("data/") and n != "meta.json"}
    doc["format_version"] = 1
    doc["arrays"] = {k: v for k, v in doc["arrays"].items() if not k.startswith("data/")}
    old = tmp_path / "v1.gdsm"
    with zipfile.ZipFile(old, "w") as zf:
        zf.writestr("meta.json", json.dumps(doc))
        for n, raw in entries.items():
            zf.writestr(n, raw)
    back = load(old)
    assert back.data == {}
    assert fingerprint(back) == fingerprint(inst)
    # a data/ entry in a version-1 file is not a thing version 1 had
    doc["arrays"]["data/H"] = {"sha256": "0", "dtype": "float64", "shape": [5, 4]}
    bad = tmp_path / "bad.gdsm"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("meta.json", json.dumps(doc))
        for n, raw in entries.items():
            zf.writestr(n, raw)
    with pytest.raises(FormatError, match="unknown array"):
        load(bad)
