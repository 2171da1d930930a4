"""The default box of a classification hidden layer scales with its fan-in
(train.config.auto_radius: HIDDEN_RADIUS_FAN_IN / inputs) on every entry point: gdsolver.sweep,
GDSolver, `gdsolver compile`; a radius set by the user is kept. Checked on the instances the
sweeps build (their box around the model's weights), not on a figure the code reports about itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import gdsolver
from gdsolver.ir import load
from gdsolver.train.config import HIDDEN_RADIUS_FAN_IN, RECIPE, auto_radius


def _data(seed: int = 0, n: int = 60, d: int = 12):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = ((X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)).astype(np.int64)
    return X, y


def _model(d: int = 12, h: int = 9) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, 3))


def _box_half_width(inst) -> float:
    """The instance's box on the swept weights, measured from its bounds around its start."""
    off, shape = inst.blocks["w"]
    idx = np.arange(int(np.prod(shape))) + off
    hi, lo = inst.ub[idx] - inst.start[idx], inst.start[idx] - inst.lb[idx]
    assert np.allclose(hi, hi[0]) and np.allclose(lo, hi[0])
    return float(hi[0])


def test_auto_radius():
    assert auto_radius("classification", 784, True) == pytest.approx(HIDDEN_RADIUS_FAN_IN / 784)
    assert auto_radius("classification", 256, True) == pytest.approx(HIDDEN_RADIUS_FAN_IN / 256)
    assert auto_radius("classification", 784, False) == RECIPE["classification"]["radius"]
    assert auto_radius("regression", 784, True) == RECIPE["regression"]["radius"]


@pytest.fixture
def given(monkeypatch):
    """The instances gdsolver.sweep hands to the pipeline (the written one is the last round's, whose
    box the trust region has narrowed)."""
    from gdsolver.train import one_sweep

    seen, real = [], one_sweep.solve

    def spy(job, settings, **kw):
        seen.append(job.instance)
        return real(job, settings, **kw)

    monkeypatch.setattr(one_sweep, "solve", spy)
    return seen


def test_sweep_hidden_layer_box_and_block(given):
    """gdsolver.sweep of layer 0 (12 inputs) with block=3 from unit 7: the instance frees units 7, 8 and 0
    (wrapping over the 9), in a box of HIDDEN_RADIUS_FAN_IN / 12; a radius given is kept."""
    X, y = _data()
    model = _model()
    rep = gdsolver.sweep(model, (X, y), layer="0", time_limit=3, inplace=False, points=8, block=3, offset=7)
    inst = given[-1]
    assert inst.meta["units"] == [0, 7, 8] and inst.blocks["w"][1] == (3, 12)
    assert rep.radius == pytest.approx(HIDDEN_RADIUS_FAN_IN / 12)
    assert _box_half_width(inst) == pytest.approx(HIDDEN_RADIUS_FAN_IN / 12)
    gdsolver.sweep(model, (X, y), layer="0", time_limit=3, inplace=False, points=8, block=3, radius=0.2)
    assert _box_half_width(given[-1]) == pytest.approx(0.2)


def test_sweep_final_layer_keeps_the_recipe(given):
    X, y = _data()
    rep = gdsolver.sweep(_model(), (X, y), time_limit=20, inplace=False, points=16)
    assert rep.radius == RECIPE["classification"]["radius"]
    assert _box_half_width(given[-1]) == pytest.approx(RECIPE["classification"]["radius"])


@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_sweep_bad_block_is_named(bad):
    X, y = _data()
    with pytest.raises(gdsolver.GdsolverError, match="block"):
        gdsolver.sweep(_model(), (X, y), layer="0", block=bad)


@pytest.mark.slow  # 13 s under load: two fits with a sweep of each layer
def test_gdsolver_radius_per_layer(tmp_path):
    """GDSolver sweeping both layers: "auto" gives layer '0' (12 inputs) HIDDEN_RADIUS_FAN_IN / 12 and
    the last layer the recipe, in the history and in the dumped instances; radius=0.1 gives 0.1 to both."""
    from gdsolver.train.hybrid import GDSolver

    X, y = _data()
    for radius, want in ((None, {"0": HIDDEN_RADIUS_FAN_IN / 12, "2": RECIPE["classification"]["radius"]}),
                         (0.1, {"0": 0.1, "2": 0.1})):
        kw = {} if radius is None else {"radius": radius}
        dump = tmp_path / f"d{radius}"
        t = GDSolver(_model(), "classification", layers="all", epochs=1, max_sweeps=1, time_limit=2, seed=0,
                     solver_points=8, dump_dir=dump, **kw)
        h = t.fit((X, y))
        rows = [r for r in h.sweeps if r["status"] != "SKIPPED"]
        assert {r["layer_name"] for r in rows} == set(want)
        for r in rows:
            assert r["radius"] == pytest.approx(want[r["layer_name"]])
        boxes = sorted(round(_box_half_width(load(p)), 12) for p in dump.rglob("*.gdsm") if "-r" not in p.name
                       and "closest" not in p.name)
        assert boxes and set(boxes) <= {round(v, 12) for v in want.values()}


def test_compile_hidden_layer_default_radius(tmp_path):
    """gdsolver compile model.onnx --layer 0 without --radius: the box is HIDDEN_RADIUS_FAN_IN / inputs."""
    from clirun import run

    X, y = _data(d=6)
    model = _model(d=6, h=5).eval()
    torch.onnx.export(model, (torch.from_numpy(X[:2]),), str(tmp_path / "m.onnx"), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    np.savez(tmp_path / "d.npz", X=X, y=y)
    p = run("compile", "m.onnx", "--data", "d.npz", "--task", "classification", "--layer", "0", "--points", "6",
            "-o", "h.gdsm", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert _box_half_width(load(tmp_path / "h.gdsm")) == pytest.approx(HIDDEN_RADIUS_FAN_IN / 6)
