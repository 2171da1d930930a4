"""gdsolver.data: equations, splits, presets, idx / CIFAR-10 binary readers and where they look."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from gdsolver.data import PAPER_MARGIN, PAPER_RADIUS, load_dataset, load_split, paper_radius
from gdsolver.data import locate
from gdsolver.data.cifar import RECORD_BYTES, read_cifar_batch
from gdsolver.data.datasets import DATASETS, REGRESSION_EQUATIONS, equation_targets
from gdsolver.data.idx import read_idx_images, read_idx_labels
from gdsolver.errors import GdsolverError

# ---------------------------------------------------------------- regression equations


def _reference(name: str, v: float) -> float:
    """The authors' equations, one scalar at a time, written independently of the module."""
    if name == "identity":
        return v
    if name == "affine":
        return 3 * v + 4
    if name == "polynomial":
        return 3 * v ** 4 + 6 * v ** 3 + 2 * v ** 2 + v + 9
    return 2 * math.exp(v) + 3 * math.sin(v) * v ** 5


@pytest.mark.parametrize("name", REGRESSION_EQUATIONS)
def test_equations_match_an_independent_evaluation(name: str) -> None:
    X = np.random.default_rng(5).random((50, 3))
    Y = equation_targets(name, X)
    assert Y.shape == (50, 2)
    ref = np.array([[_reference(name, float(X[t, j])) for j in range(2)] for t in range(50)])
    np.testing.assert_allclose(Y, ref, rtol=1e-13, atol=1e-13)
    X2 = X.copy()
    X2[:, 2] = 0.123  # the third input is a distractor
    np.testing.assert_array_equal(equation_targets(name, X2), Y)


def test_equation_errors() -> None:
    with pytest.raises(GdsolverError, match="unknown regression equation"):
        equation_targets("cubic", np.zeros((3, 3)))
    with pytest.raises(GdsolverError, match="shape"):
        equation_targets("affine", np.zeros(3))


@pytest.mark.parametrize("name", REGRESSION_EQUATIONS)
def test_equation_split_sizes_and_holdout(name: str) -> None:
    s = load_split(name, seed=3)
    assert s.task == "regression"
    assert [a.shape for a in s.arrays()] == [(680, 3), (680, 2), (320, 3), (320, 2), (1000, 3), (1000, 2)]
    X, y = load_dataset(name, seed=3)  # the whole training draw: train then the held-out val
    np.testing.assert_array_equal(X, np.concatenate([s.train[0], s.val[0]]))
    np.testing.assert_array_equal(y, np.concatenate([s.train[1], s.val[1]]))
    assert X.min() >= 0 and X.max() < 1 and s.test[0].min() >= 0 and s.test[0].max() < 1
    assert not np.isin(s.test[0][:, 0], X[:, 0]).any()  # test drawn independently
    np.testing.assert_array_equal(s.test[1], equation_targets(name, s.test[0]))
    assert s.info["paper_radius"] == PAPER_RADIUS[name]
    assert load_split(name, seed=3, n_val=0).val[0].shape == (0, 3)


def test_seeded_reproducibility() -> None:
    for name in ("affine", "digits", "diabetes"):
        a, b, c = load_split(name, seed=7), load_split(name, seed=7), load_split(name, seed=8)
        for u, v in zip(a.arrays(), b.arrays()):
            np.testing.assert_array_equal(u, v)
        assert not np.array_equal(a.train[0], c.train[0])
    np.testing.assert_array_equal(load_dataset("formula", n=10, seed=2)[0], load_dataset("formula", seed=2)[0][:10])
    with pytest.raises(GdsolverError, match="seed"):
        load_split("affine", seed=-1)


def test_builtin_classification_and_diabetes_splits() -> None:
    s = load_split("digits-images", seed=1)
    assert s.task == "classification" and s.num_classes == 10
    assert [len(p[1]) for p in (s.train, s.val, s.test)] == [1117, 320, 360]
    assert s.train[0].shape[1:] == (1, 8, 8) and s.train[1].dtype == np.int64
    X, y = load_dataset("digits")
    assert X.shape == (1797, 64) and 0 <= X.min() and X.max() <= 1

    d = load_split("diabetes", seed=0)
    assert [len(p[1]) for p in (d.train, d.val, d.test)] == [266, 88, 88]
    np.testing.assert_allclose(d.train[0].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(d.train[0].std(0), 1, atol=1e-12)
    from sklearn.datasets import load_diabetes

    yall = np.sort(load_diabetes().target / 100)
    np.testing.assert_allclose(np.sort(np.concatenate([d.train[1], d.val[1], d.test[1]])[:, 0]), yall)
    Xd, yd = load_dataset("diabetes")
    assert Xd.shape == (442, 10) and yd.shape == (442, 1)


def test_unknown_names_and_bad_counts() -> None:
    with pytest.raises(GdsolverError, match="unknown data set"):
        load_split("imagenet")
    with pytest.raises(GdsolverError, match="unknown data set"):
        load_dataset("imagenet")
    with pytest.raises(GdsolverError, match="n:"):
        load_dataset("digits", n=0)
    with pytest.raises(GdsolverError, match="n_val"):
        load_split("affine", n_val=1000)


def test_paper_presets() -> None:
    assert dict(PAPER_RADIUS) == {"identity": 0.05, "affine": 500.0, "polynomial": 5.0, "formula": 50.0,
                                  "mnist": 0.05, "cifar10": 0.05, "fashion-mnist": 0.05, "digits": 0.05,
                                  "digits-images": 0.05}
    assert PAPER_MARGIN == 1e-4
    assert paper_radius("affine") == 500.0
    with pytest.raises(GdsolverError, match="diabetes"):
        paper_radius("diabetes")
    with pytest.raises(TypeError):
        PAPER_RADIUS["affine"] = 1.0  # type: ignore[index]
    assert set(PAPER_RADIUS) <= set(DATASETS)


def test_load_data_of_a_built_in_data_set() -> None:
    from gdsolver.modelfile.data import load_data

    X, y, prov = load_data(None, "polynomial")
    assert X.shape == (1000, 3) and y.shape == (1000, 2) and prov["name"] == "polynomial"


# ---------------------------------------------------------------- idx files


def _write(path: Path, payload: bytes, gz: bool) -> Path:
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def _idx(magic: int, dims: tuple[int, ...], data: bytes) -> bytes:
    return magic.to_bytes(4, "big") + np.array(dims, dtype=">u4").tobytes() + data


def make_mnist(d: Path, n_train: int = 12, n_test: int = 5, gz: bool = True, seed: int = 0) -> dict:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        X = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        _write(d / f"{prefix}-images-idx3-ubyte", _idx(0x803, X.shape, X.tobytes()), gz)
        _write(d / f"{prefix}-labels-idx1-ubyte", _idx(0x801, y.shape, y.tobytes()), gz)
        out[prefix] = (X, y)
    return out


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    raw = make_mnist(tmp_path / "m", gz=gz)
    s = load_split("mnist", data_dir=tmp_path / "m")
    assert s.task == "classification" and s.num_classes == 10
    assert s.train[0].shape == (6, 1, 28, 28) and s.val[0].shape == (6, 1, 28, 28)  # half of a small file
    assert s.test[0].shape == (5, 1, 28, 28) and s.train[0].dtype == np.float32
    Xtr, ytr = raw["train"]
    np.testing.assert_allclose(np.concatenate([s.train[0], s.val[0]])[:, 0], Xtr / np.float32(255), rtol=1e-7)
    np.testing.assert_array_equal(np.concatenate([s.train[1], s.val[1]]), ytr)
    np.testing.assert_array_equal(s.test[1], raw["t10k"][1])
    assert 0.0 <= s.train[0].min() and s.train[0].max() <= 1.0
    assert len(load_split("mnist", data_dir=tmp_path / "m", n_val=2).val[1]) == 2
    X, y = load_dataset("fashion-mnist", data_dir=tmp_path / "m", n=4, seed=1)
    assert X.shape == (4, 1, 28, 28) and y.shape == (4,)


def test_idx_dotted_names(tmp_path: Path) -> None:
    make_mnist(tmp_path, gz=False)
    for p in tmp_path.iterdir():
        p.rename(p.with_name(p.name.replace("-idx", ".idx")))
    assert len(load_split("mnist", data_dir=tmp_path).test[1]) == 5


@pytest.mark.parametrize("gz", [True, False])
def test_idx_corrupt_files(tmp_path: Path, gz: bool) -> None:
    X = np.zeros((4, 28, 28), np.uint8).tobytes()
    cases = {
        "magic.idx": (read_idx_images, _idx(0x801, (4, 28, 28), X), "magic number"),
        "trunc.idx": (read_idx_images, _idx(0x803, (4, 28, 28), X[:-10]), "truncated data"),
        "header.idx": (read_idx_images, _idx(0x803, (4, 28, 28), b"")[:9], "truncated header"),
        "tiny.idx": (read_idx_images, b"\x00\x00", "truncated"),
        "long.idx": (read_idx_images, _idx(0x803, (4, 28, 28), X + b"\x00"), "file size"),
        "labels.idx": (read_idx_labels, _idx(0x801, (3,), bytes([1, 10, 2])), "label 10 at index 1 out of range"),
        "lmagic.idx": (read_idx_labels, _idx(0x803, (3,), bytes([1, 2, 3])), "magic number"),
    }
    for name, (reader, payload, msg) in cases.items():
        p = _write(tmp_path / name, payload, gz)
        with pytest.raises(GdsolverError, match=msg) as ei:
            reader(p)
        assert p.name in str(ei.value)


def test_idx_corrupt_gzip_and_missing(tmp_path: Path) -> None:
    p = tmp_path / "cut.gz"
    p.write_bytes(gzip.compress(_idx(0x801, (3,), bytes([1, 2, 3])))[:-12])
    with pytest.raises(GdsolverError, match="cut.gz"):
        read_idx_labels(p)
    with pytest.raises(GdsolverError, match="nope.gz: file not found"):
        read_idx_labels(tmp_path / "nope.gz")


def test_idx_dir_checks(tmp_path: Path) -> None:
    make_mnist(tmp_path / "count", gz=False)
    _write(tmp_path / "count" / "t10k-labels-idx1-ubyte", _idx(0x801, (4,), bytes(4)), False)
    with pytest.raises(GdsolverError, match="t10k-labels-idx1-ubyte: label count 4 does not match the image count 5"):
        load_split("mnist", data_dir=tmp_path / "count")

    make_mnist(tmp_path / "missing")
    (tmp_path / "missing" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(GdsolverError, match="t10k-images-idx3-ubyte: file not found"):
        load_split("mnist", data_dir=tmp_path / "missing")

    (tmp_path / "small").mkdir()
    _write(tmp_path / "small" / "train-images-idx3-ubyte", _idx(0x803, (1, 8, 8), bytes(64)), False)
    _write(tmp_path / "small" / "train-labels-idx1-ubyte", _idx(0x801, (1,), bytes(1)), False)
    for f in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / "small" / f).write_bytes((tmp_path / "small" / f.replace("t10k", "train")).read_bytes())
    with pytest.raises(GdsolverError, match="train-images-idx3-ubyte: images are 8x8, expected 28x28"):
        load_split("mnist", data_dir=tmp_path / "small")


# ---------------------------------------------------------------- where files are looked for


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "usr-share"
    make_mnist(system, n_train=10, gz=True)
    monkeypatch.setattr(locate, "SYSTEM_DIRS", {"fashion-mnist": (system,)})
    monkeypatch.delenv(locate.ENV_VAR, raising=False)
    assert load_split("fashion-mnist").info["source"] == str(system)  # the Debian location

    root = tmp_path / "root"
    make_mnist(root / "fashion-mnist", n_train=14)
    monkeypatch.setenv(locate.ENV_VAR, str(root))
    assert load_split("fashion-mnist").info["source"] == str(root / "fashion-mnist")  # env before Debian
    with pytest.raises(GdsolverError, match="mnist: data files not found"):
        load_split("mnist")  # no fallback to another data set's files

    explicit = tmp_path / "explicit"
    make_mnist(explicit, n_train=16, gz=False)
    s = load_split("fashion-mnist", data_dir=explicit)  # explicit before env
    assert s.info["source"] == str(explicit) and len(s.train[1]) + len(s.val[1]) == 16

    with pytest.raises(GdsolverError) as ei:  # an explicit directory is the only place tried
        load_split("fashion-mnist", data_dir=tmp_path / "empty")
    msg = str(ei.value)
    assert str(tmp_path / "empty") in msg and str(system) not in msg and "\n" not in msg

    monkeypatch.setenv(locate.ENV_VAR, str(tmp_path / "nothing"))
    monkeypatch.setattr(locate, "SYSTEM_DIRS", {"fashion-mnist": (tmp_path / "no-debian",)})
    with pytest.raises(GdsolverError) as ei:
        load_split("fashion-mnist")
    msg = str(ei.value)
    for part in (str(tmp_path / "nothing"), str(tmp_path / "no-debian"), "apt-get install dataset-fashion-mnist",
                 "--data-dir", "GDSOLVER_DATA"):
        assert part in msg


# ---------------------------------------------------------------- CIFAR-10 binary


def _cifar_batch(rng: np.random.Generator, n: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    X = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, n, dtype=np.uint8)
    return np.concatenate([y[:, None], X.reshape(n, -1)], 1).tobytes(), X, y


def make_cifar(d: Path, n: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Xs, ys = [], []
    for i in range(1, 6):
        raw, X, y = _cifar_batch(rng, n)
        (d / f"data_batch_{i}.bin").write_bytes(raw)
        Xs.append(X)
        ys.append(y)
    raw, Xt, yt = _cifar_batch(rng, n)
    (d / "test_batch.bin").write_bytes(raw)
    return np.concatenate(Xs), np.concatenate(ys), Xt, yt


def test_cifar_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Xtr, ytr, Xte, yte = make_cifar(tmp_path / "cifar-10-batches-bin")
    monkeypatch.setenv(locate.ENV_VAR, str(tmp_path))  # found in the conventional subdirectory
    s = load_split("cifar10", n_val=5)
    assert s.train[0].shape == (10, 3, 32, 32) and s.val[0].shape == (5, 3, 32, 32)
    assert s.test[0].shape == (3, 3, 32, 32) and s.train[0].dtype == np.float32
    np.testing.assert_allclose(np.concatenate([s.train[0], s.val[0]]), Xtr / np.float32(255), rtol=1e-7)
    np.testing.assert_array_equal(np.concatenate([s.train[1], s.val[1]]), ytr)
    np.testing.assert_array_equal(s.test[1], yte)
    assert s.info["class_names"][0] == "airplane"
    X, y = read_cifar_batch(tmp_path / "cifar-10-batches-bin" / "test_batch.bin")
    np.testing.assert_array_equal(X, Xte)  # plane-major layout: R, G, B planes of 32x32


def test_cifar_corrupt(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    raw, _, _ = _cifar_batch(rng, 2)
    cases = {
        "short.bin": (raw[:-1], "not a non-zero multiple of the record size"),
        "empty.bin": (b"", "not a non-zero multiple"),
        "label.bin": (bytes([11]) + raw[1:], "label 11 of record 0 out of range"),
        "pickled.bin": (b"\x80\x02}q\x00" + bytes(RECORD_BYTES - 6) + b".", "pickle"),
    }
    for name, (payload, msg) in cases.items():
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(GdsolverError, match=msg) as ei:
            read_cifar_batch(tmp_path / name)
        assert name in str(ei.value)

    make_cifar(tmp_path / "partial")
    (tmp_path / "partial" / "test_batch.bin").unlink()
    with pytest.raises(GdsolverError, match="test_batch.bin: file not found"):
        load_split("cifar10", data_dir=tmp_path / "partial")


def test_cifar_pickle_only_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for name in ("data_batch_1", "data_batch_2", "test_batch", "batches.meta"):
        (d / name).write_bytes(b"\x80\x04 not to be unpickled .")
    for where in (d, tmp_path):
        with pytest.raises(GdsolverError, match="cifar-10-batches-py: holds only the python \\(pickle\\) version"):
            load_split("cifar10", data_dir=where)


def test_idx_absurd_dims_are_truncation_not_allocation(tmp_path: Path) -> None:
    p = _write(tmp_path / "huge", _idx(0x803, (2**31, 2**31, 2**31), b"abc"), False)
    with pytest.raises(GdsolverError, match="huge: truncated data"):
        read_idx_images(p)
