"""Block sweeps of a hidden layer (only some of its units free) and bounds tightened before the MIP.

The block instance is checked against the full sweep's instance with every other unit's weights
pinned (same optimum, solved by HiGHS on both), answers by a float64 forward pass (claims) and
by torch after the write-back; binaries against interval counts computed here in numpy."""

from __future__ import annotations

import numpy as np
import pytest

from gdsolver.compile import solve
from gdsolver.errors import GdsolverError
from gdsolver.formulate import Dense, check_claims, sweep_instance
from gdsolver.formulate.claims import swept_weights
from gdsolver.ir import verify
from gdsolver.modeldef import forward_chain


def small_net(seed: int, sizes=(4, 6, 5, 3)) -> list[Dense]:
    rng = np.random.default_rng(seed)
    acts = ["relu"] * (len(sizes) - 2) + ["identity"]
    return [Dense(rng.normal(size=(sizes[j + 1], sizes[j])) / np.sqrt(sizes[j]), rng.normal(size=sizes[j + 1]) * 0.1,
                  acts[j]) for j in range(len(sizes) - 1)]


def pinned_full(layers, k, H, y, units, **kw):
    """The full sweep of layer k with every unit outside `units` pinned to its current weights."""
    inst = sweep_instance(layers, k, H, y, **kw)
    fixed = np.setdiff1d(np.arange(layers[k].M), units)
    for name in ("w", "b"):
        off, shape = inst.blocks[name]
        idx = (np.arange(int(np.prod(shape))).reshape(shape)[fixed]).ravel() + off
        inst.lb[idx] = inst.ub[idx] = inst.start[idx]
    return inst


CASES = [("classification", "paper", 0), ("classification", "ce", 1),
         pytest.param("regression", "l1", 2, marks=pytest.mark.slow),  # 4-8 s: its MIP under load
         pytest.param("regression", "squared", 3, marks=pytest.mark.slow)]  # 15 s: the pinned full instance


@pytest.mark.parametrize("task,mode,seed", CASES)
def test_block_has_the_optimum_of_the_full_sweep_with_the_rest_pinned(task, mode, seed):
    layers = small_net(seed)
    rng = np.random.default_rng(100 + seed)
    H = rng.normal(size=(10, 4))
    y = rng.integers(0, 3, 10) if task == "classification" else rng.normal(size=(10, 3))
    units = [1, 4]
    kw = dict(task=task, radius=0.3, mode=mode)
    if mode == "squared":  # the same tangents for both (by default a grid over each residual's interval, which
        # the pinned full instance computes over the whole box)
        kw["anchors"] = (forward_chain(layers, H) - y)[:, :, None] + np.array([-1.0, 0.0, 1.0])
    blk = sweep_instance(layers, 0, H, y, units=units, **kw)
    full = pinned_full(layers, 0, H, y, units, **kw)
    assert blk.blocks["w"][1] == (2, 4) and blk.meta["units"] == units
    assert blk.num_vars < full.num_vars and blk.meta["relu_binaries"] <= full.meta["relu_binaries"]
    assert verify(blk, blk.start).ok  # the current weights are a point of the block's instance
    rb, rf = solve(blk, time_limit=60), solve(full, time_limit=60)
    assert rb.status == rf.status == "OPTIMAL"
    assert rb.objective == pytest.approx(rf.objective, rel=1e-6, abs=1e-6)
    assert verify(blk, rb.x).ok and check_claims(blk, rb.x).ok
    # the block's answer as whole-layer weights: the fixed units exactly as they were, and its
    # objective recomputed by a forward pass of the whole network (l1: the objective is the error)
    W, b = swept_weights(blk, rb.x)
    fixed = np.setdiff1d(np.arange(6), units)
    assert np.array_equal(W[fixed], layers[0].W[fixed]) and np.array_equal(b[fixed], layers[0].b[fixed])
    assert np.all(np.abs(W[units] - layers[0].W[units]) <= 0.3 + 1e-9)
    if mode == "l1":
        o = forward_chain(layers, H, 0, {0: (W, b)})
        assert np.abs(o - y).sum() == pytest.approx(rb.objective, rel=1e-6)


def test_binaries_only_for_the_blocks_undecided_units():
    layers = small_net(5, sizes=(5, 8, 7, 3))
    rng = np.random.default_rng(7)
    H = rng.normal(size=(12, 5))
    y = rng.integers(0, 3, 12)
    units, r = np.array([0, 3, 6]), 0.2
    inst = sweep_instance(layers, 0, H, y, task="classification", radius=r, mode="ce", units=units)
    # layer 0: the block's pre-activations are H w + b boxed, exact interval a0 +- r (|H|_1 + 1)
    W0, b0 = layers[0].W, layers[0].b
    a0 = H @ W0[units].T + b0[units]
    spread = r * (np.abs(H).sum(axis=1) + 1.0)[:, None]
    lo0, hi0 = a0 - spread, a0 + spread
    want0 = int(np.count_nonzero((lo0 < 0) & (hi0 > 0)))
    # layer 1: the fixed units' outputs are constants; the block's outputs range over [relu(lo), relu(hi)]
    fixed = np.setdiff1d(np.arange(8), units)
    W1, b1 = layers[1].W, layers[1].b
    const = np.maximum(H @ W0[fixed].T + b0[fixed], 0) @ W1[:, fixed].T + b1
    olo, ohi = np.maximum(lo0, 0), np.maximum(hi0, 0)
    Wb = W1[:, units]
    lo1 = const + np.minimum(olo[:, None, :] * Wb, ohi[:, None, :] * Wb).sum(axis=2)
    hi1 = const + np.maximum(olo[:, None, :] * Wb, ohi[:, None, :] * Wb).sum(axis=2)
    want1 = int(np.count_nonzero((lo1 < 0) & (hi1 > 0)))
    got = {r_["layer"]: r_ for r_ in inst.meta["relu"]}
    assert got[0]["units"] == 12 * 3 and got[0]["binaries"] == want0
    assert got[1]["binaries"] == want1
    assert inst.num_integer == want0 + want1 == inst.meta["relu_binaries"]


def test_block_rounds_through_the_pipeline_verify():
    """A smooth head refined in rounds rebuilds the block's instance (refine passes the units on)."""
    from gdsolver.pipeline import SolveSettings, solve_sweep

    layers = small_net(11)
    rng = np.random.default_rng(11)
    H = rng.normal(size=(8, 4))
    y = rng.integers(0, 3, 8)
    inst = sweep_instance(layers, 0, H, y, task="classification", radius=0.2, mode="ce", units=[2, 3, 5])
    out = solve_sweep(inst, SolveSettings(time_limit=20, rounds=2))
    assert out.usable and out.x is not None
    final = out.instance or inst
    assert final.meta["units"] == [2, 3, 5] and final.blocks["w"][1] == (3, 4)
    W, b = swept_weights(final, out.x)
    o = forward_chain(layers, H, 0, {0: (W, b)})
    from gdsolver.formulate.heads import cross_entropy
    assert cross_entropy(o, y).sum() <= cross_entropy(forward_chain(layers, H), y).sum() + 1e-9
    assert np.array_equal(W[[0, 1, 4]], layers[0].W[[0, 1, 4]])


@pytest.mark.parametrize("units,match", [([0, 0], "distinct"), ([6], "0..5"), ([], "non-empty"),
                                         ([0.5], "unit indices")])
def test_bad_units_are_named(units, match):
    layers = small_net(0)
    H = np.ones((3, 4))
    with pytest.raises(GdsolverError, match=match):
        sweep_instance(layers, 0, H, [0, 1, 2], task="classification", radius=0.1, units=units)


def test_units_of_the_last_layer_are_refused_and_every_unit_is_the_full_sweep():
    layers = small_net(0)
    H = np.ones((3, 4))
    with pytest.raises(GdsolverError, match="hidden layer"):
        sweep_instance(layers, 2, forward_chain(layers[:2], H), [0, 1, 2], task="classification", radius=0.1,
                       units=[0])
    a = sweep_instance(layers, 0, H, [0, 1, 2], task="classification", radius=0.1, units=list(range(6)))
    b = sweep_instance(layers, 0, H, [0, 1, 2], task="classification", radius=0.1)
    assert "units" not in a.meta and a.num_vars == b.num_vars and np.array_equal(a.lb, b.lb)


torch = pytest.importorskip("torch")


def test_write_back_changes_only_the_block():
    """The model side (LayerSweep, decide_sweep): the answer of a block sweep written into the torch
    model changes only the block's rows; the model's outputs are a float64 forward pass with the
    whole-layer weights the answer implies."""
    from torch import nn

    from gdsolver.extract import network_from_torch
    from gdsolver.pipeline import SolveSettings, solve_sweep
    from gdsolver.train.config import AcceptConfig
    from gdsolver.train.one_sweep import LayerSweep
    from gdsolver.train.sweep import decide_sweep

    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    X = torch.from_numpy(rng.normal(size=(40, 5))).double()
    y = rng.integers(0, 3, 40)
    model = nn.Sequential(nn.Linear(5, 9), nn.ReLU(), nn.Linear(9, 3)).double()
    net = network_from_torch(model, X.numpy())

    def outputs(Xs):
        with torch.no_grad():
            return model(Xs).double().numpy()

    ls = LayerSweep(model, net, X, y, task="classification", outputs=outputs)
    units = np.array([1, 4, 7])
    job = ls.prepare(0, radius=0.3, mode="ce", points=10, seed=0, units=units)
    assert job.instance.blocks["w"][1] == (3, 5)
    before = model[0].weight.detach().clone(), model[0].bias.detach().clone()
    out = solve_sweep(job.instance, SolveSettings(time_limit=30, rounds=1))
    assert out.usable
    loss0 = ls.points_loss(job)
    d = decide_sweep(job, out, write=lambda W, b: ls.write(job, W, b), restore=lambda s: ls.restore(job, s),
                     points_loss=lambda: ls.points_loss(job), watched=lambda: (0.0, {}), watched_before=1.0,
                     accept=AcceptConfig(), loss_before=loss0)
    W, b = model[0].weight.detach(), model[0].bias.detach()
    rest = np.setdiff1d(np.arange(9), units)
    assert torch.equal(W[rest], before[0][rest]) and torch.equal(b[rest], before[1][rest])
    if d.accepted:
        Wn, bn = swept_weights(out.instance or job.instance, out.x)
        assert np.array_equal(W.numpy(), Wn) and np.array_equal(b.numpy(), bn)
        o = forward_chain(net.layers, X.numpy(), 0, {0: (Wn, bn)})
        assert np.allclose(outputs(X), o, atol=1e-9)
    else:  # restored bit for bit
        assert torch.equal(W, before[0]) and torch.equal(b, before[1])
    assert d.accepted, d.reason  # this case improves (the ce loss on its 10 points)


@pytest.mark.slow  # 14 s: two GD phases and two sweeps
def test_gdsolver_moves_the_block_over_the_layer():
    """GDSolver with block=3: its two sweeps of layer '0' free units 0-2, then 3-5 (the instances'
    meta say so); the next would start at unit 6."""
    from torch import nn

    from gdsolver.train.hybrid import GDSolver

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)).astype(np.float32)
    y = ((X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)).astype(np.int64)
    model = nn.Sequential(nn.Linear(5, 10), nn.ReLU(), nn.Linear(10, 3))
    seen = []
    t = GDSolver(model, "classification", layers=["0"], block=3, epochs=2, phase_epochs=1, max_sweeps=2,
                 time_limit=10, seed=0, solver_points=8, radius=0.1)
    real = t._solve

    def spy(n, cands):
        seen.extend(c.job.instance.meta.get("units") for c in cands)
        return real(n, cands)

    t._solve = spy
    h = t.fit((X, y))
    assert seen == [[0, 1, 2], [3, 4, 5]]
    assert t._block_at["0"] == 6
    assert [r.get("units") for r in h.sweeps if r["status"] != "SKIPPED"] == [[0, 1, 2], [3, 4, 5]]  # the history


# ------------------------------------------------------------------ LP bounds before the MIP
def deep_net(seed: int) -> list[Dense]:
    return small_net(seed, sizes=(6, 10, 10, 10, 3))


def relu_pre(layers, H, k, W, b):
    """Pre-activations of every layer from k on with layer k's weights (W, b): {j: (T, M_j)}."""
    out, h = {}, H
    for j in range(k, len(layers)):
        Wj, bj = (W, b) if j == k else (layers[j].W, layers[j].b)
        a = h @ Wj.T + bj
        out[j] = a
        h = np.maximum(a, 0) if layers[j].activation == "relu" else a
    return out


def test_lp_bounds_hold_at_random_points_of_the_box_and_never_cut_the_start():
    from gdsolver.formulate.tighten import bounds_of

    layers = deep_net(0)
    rng = np.random.default_rng(0)
    H, y, r = rng.normal(size=(12, 6)), rng.integers(0, 3, 12), 0.1
    plain = sweep_instance(layers, 0, H, y, task="classification", radius=r, mode="ce")
    tight = sweep_instance(layers, 0, H, y, task="classification", radius=r, mode="ce", tighten=60)
    rep = tight.meta["tighten"]
    assert rep["complete"] and rep["decided"] > 0
    assert tight.num_integer == plain.num_integer - rep["decided"]  # each decided unit lost its binary
    assert verify(tight, tight.start).ok  # the current weights are not cut off
    bounds = bounds_of(tight.data)
    assert set(bounds) == {2}  # layers 0 and 1 are exact by intervals; layer 2 is the first tightened
    lo, hi = bounds[2]
    # the bounds hold wherever the weights are in the box: corners and inner points
    for s in range(200):
        d = rng.uniform(-r, r, size=(10, 7)) if s % 2 else rng.choice([-r, r], size=(10, 7))
        W, b = layers[0].W + d[:, :6], layers[0].b + d[:, 6]
        a = relu_pre(layers, H, 0, W, b)[2]
        assert np.all(a >= lo - 1e-9) and np.all(a <= hi + 1e-9)
        if s < 5:  # and as a start: the tightened instance holds that point
            at = sweep_instance(layers, 0, H, y, task="classification", radius=r, mode="ce", start_at=(W, b),
                                bounds={2: (lo, hi)})
            assert verify(at, at.start).ok
    # strictly tighter than the intervals somewhere, and never looser
    assert np.all(lo >= plain_interval(plain, 2)[0] - 1e-12) and np.any(hi < plain_interval(plain, 2)[1] - 1e-9)


def plain_interval(inst, j):
    """Layer j's pre-activation interval in the untightened instance, by interval arithmetic in numpy
    from the bounds of layer j - 1's outputs (variables o{j-1})."""
    off, shape = inst.blocks[f"o{j - 1}"]
    n = int(np.prod(shape))
    olo, ohi = inst.lb[off:off + n].reshape(shape), inst.ub[off:off + n].reshape(shape)
    W = inst.data[f"W{j}"]
    bj = inst.data[f"b{j}"]
    lo = bj + np.minimum(olo[:, None, :] * W, ohi[:, None, :] * W).sum(axis=2)
    hi = bj + np.maximum(olo[:, None, :] * W, ohi[:, None, :] * W).sum(axis=2)
    return lo, hi


def test_lp_bounds_keep_the_optimum():
    """Binaries the LP decides change nothing but the count: the same optimum (HiGHS on both), and
    the tightened instance's rounds rebuild with the same bounds (refine reads them back)."""
    layers = small_net(4, sizes=(5, 6, 6, 6, 2))
    rng = np.random.default_rng(4)
    H, y = rng.normal(size=(5, 5)), rng.normal(size=(5, 2))
    kw = dict(task="regression", radius=0.1, mode="l1", units=[0, 2, 4])  # a block, tightened too
    plain = sweep_instance(layers, 0, H, y, **kw)
    tight = sweep_instance(layers, 0, H, y, tighten=60, **kw)
    assert tight.num_integer < plain.num_integer
    rp, rt = solve(plain, time_limit=60), solve(tight, time_limit=60)
    assert rp.status == rt.status == "OPTIMAL"
    assert rt.objective == pytest.approx(rp.objective, rel=1e-6, abs=1e-6)
    assert verify(tight, rt.x).ok and check_claims(tight, rt.x).ok
    from gdsolver.formulate.tighten import bounds_of
    blocks = tight.unpack(rt.x)
    again = sweep_instance(layers, 0, H, y, start_at=(blocks["w"], blocks["b"]), bounds=bounds_of(tight.data), **kw)
    assert again.blocks == tight.blocks and verify(tight, again.start).ok


def test_a_block_instance_reads_back_and_checks(tmp_path):
    """Saved and loaded (.gdsm: the meta's units checked against the blocks' shapes), the block's
    instance and an answer to it check alike; a units list that does not fit is refused by name."""
    from gdsolver.errors import FormatError
    from gdsolver.ir import load, save

    layers = small_net(2)
    rng = np.random.default_rng(2)
    H, y = rng.normal(size=(6, 4)), rng.integers(0, 3, 6)
    inst = sweep_instance(layers, 0, H, y, task="classification", radius=0.2, mode="paper", units=[0, 5])
    back = load(save(inst, tmp_path / "blk.gdsm"))
    assert back.meta["units"] == [0, 5] and back.blocks == inst.blocks
    res = solve(back, time_limit=30)
    assert verify(back, res.x).ok and check_claims(back, res.x).ok
    inst.meta["units"] = [0, 0]
    with pytest.raises(FormatError, match="units"):
        load(save(inst, tmp_path / "bad.gdsm"))


@pytest.mark.slow  # an ONNX export, compile, solve and apply through the CLI
def test_compile_units_on_the_command_line(tmp_path):
    """gdsolver compile model.onnx --layer 0 --units 2:5: the block's instance (its units in the meta,
    its blocks 3 rows), which solves and checks; a bad --units is one error line, exit code 2."""
    from torch import nn

    from clirun import assert_user_error, run
    from gdsolver.ir import load

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)
    model = nn.Sequential(nn.Linear(4, 7), nn.ReLU(), nn.Linear(7, 3)).eval()
    torch.onnx.export(model, (torch.from_numpy(X[:2]),), str(tmp_path / "m.onnx"), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    np.savez(tmp_path / "d.npz", X=X, y=y)
    base = ["compile", "m.onnx", "--data", "d.npz", "--task", "classification", "--layer", "0", "--points", "6"]
    p = run(*base, "--units", "2:5", "-o", "b.gdsm", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    inst = load(tmp_path / "b.gdsm")
    assert inst.meta["units"] == [2, 3, 4] and inst.blocks["w"][1] == (3, 4)
    res = solve(inst, time_limit=30)
    assert verify(inst, res.x).ok and check_claims(inst, res.x).ok
    # solved and applied by the CLI: the written model (read back by onnxruntime) has the block's
    # rows from the answer and every other row as it was
    from gdsolver.compile import load_result
    from gdsolver.extract import network_from_onnx

    assert run("solve", "b.gdsm", "--time-limit", "30", cwd=tmp_path).returncode == 0
    got = load_result(tmp_path / "b.result.json")
    p = run("apply", "m.onnx", "b.result.json", "-o", "new.onnx", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    W_new = network_from_onnx(tmp_path / "new.onnx", X).layers[0].W
    W_old = model[0].weight.detach().double().numpy()
    blk = inst.unpack(got.x)["w"]
    assert np.allclose(W_new[2:5], blk, atol=1e-6)
    assert np.array_equal(W_new[[0, 1, 5, 6]], W_old[[0, 1, 5, 6]])
    assert_user_error(run(*base, "--units", "5:2", "-o", "c.gdsm", cwd=tmp_path), "--units", "A:B")
    assert_user_error(run(*base, "--units", "0,9", "-o", "c.gdsm", cwd=tmp_path), "units", "0..6")


def test_lp_bounds_cut_by_their_cap_fall_back_to_intervals(tmp_path):
    """A cap too short for every LP: the points left keep their interval bounds (finite), the
    instance says it is incomplete, saves, reads back and holds its start."""
    from gdsolver.ir import load, save

    layers = deep_net(0)
    rng = np.random.default_rng(0)
    H, y = rng.normal(size=(12, 6)), rng.integers(0, 3, 12)
    plain = sweep_instance(layers, 0, H, y, task="classification", radius=0.1, mode="ce")
    cut = sweep_instance(layers, 0, H, y, task="classification", radius=0.1, mode="ce", tighten=1e-9)
    assert not cut.meta["tighten"]["complete"] and cut.meta["tighten"]["lp_solves"] == 0
    assert np.array_equal(cut.data["lp_lo2"], plain_interval(plain, 2)[0])  # the intervals themselves
    assert cut.num_integer == plain.num_integer
    back = load(save(cut, tmp_path / "cut.gdsm"))
    assert verify(back, back.start).ok


@pytest.mark.parametrize("case", ["shape", "unpaired", "crossed"])
def test_hostile_lp_bounds_are_named(tmp_path, case):
    """A .gdsm whose LP-bound arrays do not fit its network is refused on load, naming the array
    (was a broadcast ValueError / KeyError traceback in `gdsolver solve`)."""
    import io
    import json
    import zipfile

    from gdsolver.ir import load, save
    from gdsolver.ir.gdsm import FormatError

    layers = deep_net(0)
    rng = np.random.default_rng(0)
    H, y = rng.normal(size=(12, 6)), rng.integers(0, 3, 12)
    inst = sweep_instance(layers, 0, H, y, task="classification", radius=0.1, mode="ce", tighten=1e-9)
    path = save(inst, tmp_path / "t.gdsm")
    src = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    names = [n for n in src.namelist() if "lp_lo2" in n or "lp_hi2" in n]
    lo_name = next(n for n in names if "lp_lo2" in n)
    hi_name = next(n for n in names if "lp_hi2" in n)
    lo, hi = (np.load(io.BytesIO(src.read(n))) for n in (lo_name, hi_name))
    arrays = {"shape": {lo_name: np.zeros((2, 2))}, "unpaired": {hi_name: None},
              "crossed": {lo_name: hi + 1.0}}[case]

    def npy(a):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, a, allow_pickle=False)
        return buf.getvalue()

    from gdsolver.ir.gdsm import array_sha256  # the format's own checksum: the file is consistent but wrong

    doc = json.loads(src.read("meta.json"))
    bad = tmp_path / "bad.gdsm"
    with zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            key = name[:-4]
            if name in arrays:
                if arrays[name] is None:
                    doc["arrays"].pop(key)
                    continue
                a = arrays[name]
                doc["arrays"][key].update(sha256=array_sha256(a), dtype=str(a.dtype), shape=list(a.shape))
                dst.writestr(name, npy(a))
            elif name != "meta.json":
                dst.writestr(name, src.read(name))
        dst.writestr("meta.json", json.dumps(doc))
    with pytest.raises((FormatError, GdsolverError), match="lp_"):
        load(bad)


def test_gdsolver_tightens_when_asked(tmp_path):
    """SweepConfig.tighten reaches the sweep's instance (GDSolver(tighten=...)): its dump carries
    the LP-bounds report and the bounds, and the instance still holds its start."""
    import torch
    from torch import nn

    from gdsolver.ir import load
    from gdsolver.train import GDSolver

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(),
                          nn.Linear(5, 3))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    y = rng.integers(0, 3, 60)
    GDSolver(model, "classification", epochs=1, max_sweeps=1, layers=[0], radius=0.05, points=8, tighten=5.0,
             time_limit=20, dump_dir=tmp_path).fit((X, y))
    dumps = sorted(p for p in tmp_path.rglob("*.gdsm") if "closest" not in p.name and "-r" not in p.name)
    assert dumps, list(tmp_path.rglob("*"))
    inst = load(dumps[0])
    assert "tighten" in inst.meta and inst.meta["tighten"]["candidates"] >= 0
    assert any(k.startswith("lp_lo") for k in inst.data)
    assert verify(inst, inst.start).ok
