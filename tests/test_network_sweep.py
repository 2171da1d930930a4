"""Sweeps of any dense layer (issue 14): the network representation found in torch and ONNX
models, the encoders checked against forward passes with the weights pinned, and the MILP
optimum of a hidden-layer sweep checked against an independent enumeration with scipy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linprog

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from gdsolver.compile import solve  # noqa: E402
from gdsolver.errors import GdsolverError  # noqa: E402
from gdsolver.extract import network_from_torch  # noqa: E402
from gdsolver.extract.onnx_frontend import network_from_onnx, onnx_forward  # noqa: E402
from gdsolver.formulate import Dense, check_claims, correct_mask, sweep_instance  # noqa: E402
from gdsolver.ir import verify  # noqa: E402

RTOL = 1e-6


def random_mlp(seed: int, depth: int, widths: list[int], n_in: int, final_relu: bool) -> nn.Sequential:
    """depth Linear layers with ReLU between them (and after the last one when final_relu)."""
    torch.manual_seed(seed)
    mods: list[nn.Module] = []
    sizes = [n_in, *widths]
    for j in range(depth):
        mods.append(nn.Linear(sizes[j], sizes[j + 1]))
        if j < depth - 1 or final_relu:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods).double()


def activations(model: nn.Sequential, X: np.ndarray) -> list[np.ndarray]:
    """Output of every Linear (after its ReLU when one follows), by torch."""
    outs, h = [], torch.from_numpy(X)
    with torch.no_grad():
        mods = list(model)
        for i, m in enumerate(mods):
            h = m(h)
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            if isinstance(m, nn.Linear) and not isinstance(nxt, nn.ReLU) or isinstance(m, nn.ReLU):
                outs.append(h.numpy().copy())
    return outs


def pinned_solution(net_layers, k: int, H: np.ndarray, y_out: np.ndarray):
    """Solve the l1 sweep of layer k with every swept weight pinned to its current value."""
    inst = sweep_instance(net_layers, k, H, y_out, task="regression", radius=0.05, mode="l1")
    for blk in ("w", "b"):
        off, shape = inst.blocks[blk]
        sl = slice(off, off + int(np.prod(shape)))
        inst.lb[sl] = inst.ub[sl] = inst.start[sl]
    res = solve(inst, time_limit=60)
    assert res.status == "OPTIMAL", res.message
    assert verify(inst, res.x).ok
    return inst, inst.unpack(res.x)


CASES = [(s, d) for s in range(3) for d in (1, 2, 3, 4)]


@pytest.mark.parametrize("seed,depth", CASES)
@pytest.mark.parametrize("final_relu", [False, True])
def test_pinned_weights_reproduce_torch_forward(seed, depth, final_relu):
    rng = np.random.default_rng(seed * 10 + depth)
    widths = [int(w) for w in rng.integers(1, 17, size=depth)]
    n_in = int(rng.integers(1, 9))
    model = random_mlp(seed, depth, widths, n_in, final_relu)
    X = rng.normal(size=(12, n_in))
    net = network_from_torch(model, X)
    assert len(net) == depth
    acts = activations(model, X)
    y_out = acts[-1] + 1.0  # above every output: e = y - o at the optimum
    for k in range(depth):
        H = net.features(X, k)
        np.testing.assert_allclose(H, X if k == 0 else acts[k - 1], rtol=RTOL, atol=1e-9)
        inst, blocks = pinned_solution(net.layers, k, H, y_out)
        for j in range(k, depth):  # ReLU output variables of every encoded layer
            if f"o{j}" in blocks:
                np.testing.assert_allclose(blocks[f"o{j}"], acts[j], rtol=RTOL, atol=1e-7)
        np.testing.assert_allclose(y_out - blocks["e"], acts[-1], rtol=RTOL, atol=1e-7)
        assert check_claims(inst, inst.start).ok


@pytest.mark.parametrize("seed,depth", [(0, 1), (1, 2), (2, 3), (3, 4)])
def test_pinned_weights_reproduce_onnxruntime(tmp_path, seed, depth):
    rng = np.random.default_rng(100 + seed)
    widths = [int(w) for w in rng.integers(1, 17, size=depth)]
    model = random_mlp(seed, depth, widths, 5, final_relu=bool(seed % 2)).float().eval()
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.zeros(1, 5),), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b"}, "y": {0: "b"}})
    X = rng.normal(size=(10, 5)).astype(np.float32)
    net = network_from_onnx(path, X)
    assert len(net) == depth
    y_ort = onnx_forward(path, X)
    y_out = y_ort + 1.0
    for k in range(depth):
        inst, blocks = pinned_solution(net.layers, k, net.features(X, k), y_out)
        # float32 model: the MILP computes in float64 from the same inputs
        np.testing.assert_allclose(y_out - blocks["e"], y_ort, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------ an independent optimum
def _tiny(seed: int):
    rng = np.random.default_rng(seed)
    N, Hd, M, T = 2, 2, 2, 3
    layers = [Dense(rng.normal(size=(Hd, N)), rng.normal(size=Hd) * 0.3, "relu"),
              Dense(rng.normal(size=(M, Hd)), rng.normal(size=M) * 0.3, "identity")]
    H = rng.normal(size=(T, N))
    return rng, layers, H


def _pattern_lp(layers, H, pattern, r, extra):
    """LP over (w (2x2), b (2), rest) with ReLU pattern fixed; `extra` adds the head. Variables:
    w00 w01 w10 w11 b0 b1, then the head's own. Returns (A_ub, b_ub, A_eq, b_eq, bounds, n)."""
    W0, b0 = layers[0].W, layers[0].b
    T, N = H.shape
    Hd = W0.shape[0]
    n_w = Hd * N + Hd

    def a_row(t, j):  # coefficients of a_tj = H[t] . w[j] + b[j]
        row = np.zeros(n_w)
        row[j * N:(j + 1) * N] = H[t]
        row[Hd * N + j] = 1.0
        return row

    A_ub, b_ub = [], []
    for t in range(T):
        for j in range(Hd):
            if pattern[t, j]:
                A_ub.append(-a_row(t, j)), b_ub.append(0.0)  # a >= 0
            else:
                A_ub.append(a_row(t, j)), b_ub.append(0.0)  # a <= 0
    # outputs o_t = W1 h_t + b1 with h_tj = a_tj (active) or 0: linear in (w, b)
    W1, b1 = layers[1].W, layers[1].b
    out_rows = np.zeros((T, W1.shape[0], n_w))
    out_const = np.tile(b1, (T, 1)).astype(float)
    for t in range(T):
        for m in range(W1.shape[0]):
            for j in range(Hd):
                if pattern[t, j]:
                    out_rows[t, m] += W1[m, j] * a_row(t, j)
    bounds = [(v - r, v + r) for v in np.concatenate([W0.ravel(), b0])]
    return A_ub, b_ub, out_rows, out_const, bounds, n_w


def enumerate_l1(layers, H, Y, r):
    best = np.inf
    T, Hd = H.shape[0], layers[0].M
    for bits in itertools.product([0, 1], repeat=T * Hd):
        pattern = np.array(bits, bool).reshape(T, Hd)
        A_ub, b_ub, out_rows, out_const, bounds, n_w = _pattern_lp(layers, H, pattern, r, None)
        M = out_rows.shape[1]
        n_e = T * M
        # e >= +-(o - y)
        A, bb = [np.concatenate([row, np.zeros(n_e)]) for row in A_ub], list(b_ub)
        for t in range(T):
            for m in range(M):
                e = np.zeros(n_e)
                e[t * M + m] = -1.0
                A.append(np.concatenate([out_rows[t, m], e]))
                bb.append(Y[t, m] - out_const[t, m])
                A.append(np.concatenate([-out_rows[t, m], e]))
                bb.append(-(Y[t, m] - out_const[t, m]))
        c = np.concatenate([np.zeros(n_w), np.ones(n_e)])
        res = linprog(c, A_ub=np.array(A), b_ub=np.array(bb), bounds=bounds + [(0, None)] * n_e, method="highs")
        if res.status == 0:
            best = min(best, res.fun)
    return best


def enumerate_count(layers, H, labels, r, margin, count0):
    best = -1
    T, Hd = H.shape[0], layers[0].M
    for bits in itertools.product([0, 1], repeat=T * Hd):
        pattern = np.array(bits, bool).reshape(T, Hd)
        A_ub, b_ub, out_rows, out_const, bounds, n_w = _pattern_lp(layers, H, pattern, r, None)
        M = out_rows.shape[1]
        for subset in itertools.product([0, 1], repeat=T):
            if sum(subset) <= best or sum(subset) < count0:
                continue
            A, bb = list(A_ub), list(b_ub)
            for t in range(T):
                if subset[t]:
                    lab = labels[t]
                    for j in range(M):
                        if j != lab:  # o_lab - o_j >= margin
                            A.append(-(out_rows[t, lab] - out_rows[t, j]))
                            bb.append(-(margin - (out_const[t, lab] - out_const[t, j])))
            res = linprog(np.zeros(n_w), A_ub=np.array(A), b_ub=np.array(bb), bounds=bounds, method="highs")
            if res.status == 0:
                best = sum(subset)
    return best


@pytest.mark.parametrize("seed", range(4))
def test_hidden_sweep_l1_optimum_equals_enumeration(seed):
    rng, layers, H = _tiny(seed)
    Y = rng.normal(size=(3, 2))
    inst = sweep_instance(layers, 0, H, Y, task="regression", radius=0.5, mode="l1")
    res = solve(inst, time_limit=60)
    assert res.status == "OPTIMAL"
    assert verify(inst, res.x).ok and check_claims(inst, res.x).ok
    ref = enumerate_l1(layers, H, Y, 0.5)
    assert res.objective == pytest.approx(ref, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("mode", ["paper", "compact"])
def test_hidden_sweep_count_optimum_equals_enumeration(seed, mode):
    rng, layers, H = _tiny(seed)
    labels = rng.integers(0, 2, size=3)
    margin, r = 1e-3, 0.5
    o0 = layers[1].forward(layers[0].forward(H))
    count0 = int(correct_mask(o0, labels, margin).sum())
    inst = sweep_instance(layers, 0, H, labels, task="classification", radius=r, mode=mode, margin=margin)
    res = solve(inst, time_limit=60)
    assert res.status == "OPTIMAL"
    assert verify(inst, res.x).ok and check_claims(inst, res.x).ok
    assert round(res.objective) == enumerate_count(layers, H, labels, r, margin, count0)


# ------------------------------------------------------------ structure and errors
def test_no_binary_where_the_interval_decides_the_sign():
    rng = np.random.default_rng(7)
    W = rng.normal(size=(6, 3))
    layers = [Dense(W, np.zeros(6), "relu"), Dense(rng.normal(size=(1, 6)), np.zeros(1))]
    H = rng.normal(size=(20, 3))
    inst = sweep_instance(layers, 0, H, rng.normal(size=20), task="regression", radius=1e-3, mode="l1")
    a = H @ W.T
    spread = 1e-3 * (np.abs(H).sum(1, keepdims=True) + 1)
    undecided = int(np.count_nonzero((a - spread < 0) & (a + spread > 0)))
    assert inst.meta["relu_binaries"] == undecided == inst.num_integer
    assert inst.meta["relu"][0]["dead"] == int(np.count_nonzero(a + spread <= 0))


def test_layer_index_and_infinite_bounds_are_clear_errors():
    rng = np.random.default_rng(1)
    layers = [Dense(rng.normal(size=(2, 2)), np.zeros(2), "relu"), Dense(rng.normal(size=(2, 2)), np.zeros(2))]
    H = rng.normal(size=(3, 2))
    with pytest.raises(GdsolverError, match="out of range for a chain of 2"):
        sweep_instance(layers, 2, H, np.zeros((3, 2)), task="regression", radius=0.1)
    with pytest.raises(GdsolverError, match=r"layer 0: unit \d has an infinite interval bound"):
        sweep_instance(layers, 0, H * 1e306, np.zeros((3, 2)), task="regression", radius=1e306)


def test_torch_layer_behind_unsupported_op_is_named():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Sigmoid(), nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 2))
    X = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    net = network_from_torch(model, X)
    assert net.names == ["2", "4"] and [la.activation for la in net.layers] == ["relu", "identity"]
    with pytest.raises(GdsolverError, match=r"'0' cannot be swept.*Sigmoid '1'"):
        net.layer_index("0")
    with pytest.raises(GdsolverError, match="out of range"):
        net.layer_index(5)


class TupleNet(nn.Module):
    """A resnet-like head: features -> (logits, embedding); the head registered before the body."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(6, 3)
        self.body = nn.Sequential(nn.Linear(4, 6), nn.ReLU())

    def forward(self, x):
        e = self.body(x)
        return self.head(e), e


def test_tuple_output_found_and_chain_crosses_modules():
    torch.manual_seed(0)
    X = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    net = network_from_torch(TupleNet(), X)
    assert net.names == ["body.0", "head"] and net.tail["output"] == 0
    assert [la.activation for la in net.layers] == ["relu", "identity"]


@pytest.mark.parametrize("tail", ["Softmax", "LogSoftmax"])
def test_softmax_tails_are_looked_through(tail):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3), getattr(nn, tail)(dim=1))
    X = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    net = network_from_torch(model, X)
    assert net.tail["softmax"] == tail and len(net) == 2
    with torch.no_grad():
        want = model(torch.from_numpy(X)).double().numpy()
    np.testing.assert_allclose(net.forward(net.features(X, 0), include_tail=True), want, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------ training with hidden-layer sweeps
def _reg_data(n=160, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 3)).astype(np.float32)
    Y = np.stack([3 * X[:, 0] ** 2 + 1, X[:, 1] * X[:, 0]], 1).astype(np.float32)
    return X, Y


def test_gdsolver_sweeps_every_layer_and_checks_each_answer(tmp_path):
    import gdsolver
    from gdsolver.pipeline import replay

    X, Y = _reg_data()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    snapshots = []
    tr = gdsolver.GDSolver(model, "regression", lr=0.01, epochs=2, max_sweeps=1, layers="all", radius=0.2, mode="l1",
                           solver_points=40, time_limit=30, dump_dir=tmp_path,
                           callback=lambda r: snapshots.append((dict(r), {k: v.clone() for k, v in
                                                                          model.state_dict().items()})))
    hist = tr.fit((X[:120], Y[:120]), (X[120:], Y[120:]))
    sweeps = hist.sweeps
    assert [r["layer"] for r in sweeps] == [0, 1] and [r["layer_name"] for r in sweeps] == ["0", "2"]
    assert sweeps[0]["n_binary"] > 0 and sweeps[1]["n_binary"] == 0  # hidden: ReLU binaries; final: an LP
    for n, r in enumerate(sweeps, start=1):
        inst = gdsolver.load(tmp_path / "sweeps" / f"{n:04d}.gdsm")
        assert inst.meta["layer"]["index"] == r["layer"] and inst.meta["layer"]["location"]["module"] == r["layer_name"]
        i = next(j for j, (row, _) in enumerate(snapshots) if row is not None and row.get("sweep") == n
                 and row["kind"] == "sweep")
        state = snapshots[i][1]
        if r["accepted"]:
            res = gdsolver.load_result(tmp_path / "sweeps" / f"{n:04d}-closest.result.json")
            x = res.x[:inst.num_vars]
            new = inst.unpack(x)
            # the model holds the solver's point (float32) and its forward pass gives the claimed L1
            np.testing.assert_allclose(state[f"{r['layer_name']}.weight"].double().numpy(), new["w"], atol=1e-6)
            m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
            m.load_state_dict(state)
            idx = np.array(inst.meta["points"])
            with torch.no_grad():
                l1 = np.abs(m(torch.from_numpy(X[idx])).double().numpy() - Y[idx]).sum()
            assert l1 == pytest.approx(r["sweep_loss_after"], rel=1e-6)
            assert r["sweep_loss_after"] < r["sweep_loss_before"]
            assert check_claims(inst, x).ok and verify(inst, x).ok
    assert all(rep.ok for rep in replay(tmp_path))


def test_gdsolver_layers_option_errors():
    import gdsolver

    X, Y = _reg_data(40)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(GdsolverError, match="out of range"):
        gdsolver.GDSolver(model, "regression", epochs=1, layers=[5]).fit((X, Y))
    with pytest.raises(GdsolverError, match="layers"):
        gdsolver.GDSolver(model, "regression", epochs=1, layers=3.5)


def test_cli_train_layers_all(tmp_path):
    from clirun import run

    p = run("train", "--dataset", "affine", "-m", "gdsolver", "--epochs", "2", "--layers", "all", "--points", "30",
            "--max-sweeps", "1", "--time-limit", "20", "--n-train", "120", "--json", "out.json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    import json

    rows = json.loads((tmp_path / "out.json").read_text())["results"][0]["history"]["rows"]
    assert [r["layer"] for r in rows if r["kind"] == "sweep"] == [0, 1]


class SoftmaxTupleNet(nn.Module):
    """Returns (probabilities, embedding): a Softmax end and a tuple output at once."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        e = self.body(x)
        return torch.softmax(self.head(e), dim=1), e


def test_gdsolver_trains_and_sweeps_a_softmax_tuple_model():
    import gdsolver

    rng = np.random.default_rng(0)
    centres = rng.normal(scale=2.0, size=(3, 4))
    y = rng.integers(0, 3, 150)
    X = (centres[y] + rng.normal(size=(150, 4))).astype(np.float32)
    torch.manual_seed(0)
    model = SoftmaxTupleNet()
    rows = []
    tr = gdsolver.GDSolver(model, "classification", output=0, epochs=2, max_sweeps=1, lr=0.05, time_limit=20,
                           callback=lambda r: rows.append((dict(r), {k: v.clone() for k, v in model.state_dict().items()})))
    hist = tr.fit((X[:120], y[:120]), (X[120:], y[120:]))
    assert tr._tail == "Softmax"
    sweep = hist.sweeps[0]
    assert sweep["status"] in ("OPTIMAL", "FEASIBLE") and sweep["layer_name"] == "head"
    # GD trained on the cross-entropy of the probabilities: the loss the history reports is it
    with torch.no_grad():
        p = model(torch.from_numpy(X[120:]))[0].double().numpy()
    ce = -np.log(p[np.arange(30), y[120:]]).mean()
    assert hist.last["val_loss"] == pytest.approx(ce, rel=1e-5)


# ------------------------------------------------------------ hidden-layer sweeps judged after a final-layer refit
def test_least_squares_layer_unbounded_matches_normal_equations():
    from gdsolver.train.sweep import least_squares_layer

    rng = np.random.default_rng(0)
    F, Y = rng.normal(size=(50, 3)), rng.normal(size=(50, 2))
    W, b = least_squares_layer(F, Y, W0=np.zeros((2, 3)), b0=np.zeros(2), radius=1e6)
    A = np.hstack([F, np.ones((50, 1))])
    sol = np.linalg.solve(A.T @ A, A.T @ Y)  # the normal equations, another route
    np.testing.assert_allclose(W, sol[:3].T, atol=1e-8)
    np.testing.assert_allclose(b, sol[3], atol=1e-8)


@pytest.mark.parametrize("bias", [True, False])
def test_least_squares_layer_in_a_box_matches_bounded_minimize(bias):
    from scipy.optimize import minimize

    from gdsolver.train.sweep import least_squares_layer

    rng = np.random.default_rng(1)
    F = rng.normal(size=(60, 3))
    F[:58, 2] = 0.0  # a unit active on two points only: unbounded, its weight would fit them
    Y = rng.normal(size=(60, 2)) + 5.0
    W0, b0, r = rng.normal(size=(2, 3)), rng.normal(size=2), 0.3
    W, b = least_squares_layer(F, Y, W0=W0, b0=b0, radius=r, bias=bias)
    assert np.all(np.abs(W - W0) <= r + 1e-12) and np.all(np.abs(b - b0) <= r + 1e-12)
    if not bias:
        assert np.array_equal(b, b0)
    for m in range(2):  # another route: L-BFGS-B on the same bounded quadratic
        n = 4 if bias else 3
        x0 = np.append(W0[m], b0[m])[:n]

        def f(x):
            r_ = F @ x[:3] + (x[3] if bias else b0[m]) - Y[:, m]
            return r_ @ r_

        ref = minimize(f, x0, method="L-BFGS-B", bounds=[(v - r, v + r) for v in x0], options={"ftol": 1e-15,
                                                                                                "gtol": 1e-12})
        got = np.append(W[m], b[m])[:n]
        assert f(got) <= ref.fun + 1e-8
        np.testing.assert_allclose(got, ref.x, atol=1e-5)


def _hidden_sweep(refit, val=None, **kw):
    """One sweep of the hidden layer of a fresh network (no GD); val: the validation split."""
    import gdsolver

    X, Y = _reg_data()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    snaps = []
    tr = gdsolver.GDSolver(model, "regression", epochs=0, max_sweeps=1, layers=[0], radius=0.2, solver_points=40,
                           time_limit=30, refit=refit, adapt_radius=False,
                           callback=lambda r: snaps.append((dict(r), {k: v.clone() for k, v in
                                                                     model.state_dict().items()})), **kw)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    if val is None:
        val = (X[120:], Y[120:])
    elif val == "current":  # targets = the network's own outputs: any change worsens the validation loss
        with torch.no_grad():
            val = (X[120:], model(torch.from_numpy(X[120:])).numpy())
    hist = tr.fit((X[:120], Y[:120]), val)
    (row,) = hist.sweeps
    return model, X[:120], Y[:120], row, start, {k: v.clone() for k, v in model.state_dict().items()}


def test_hidden_sweep_with_refit_leaves_a_least_squares_final_layer():
    model, X, Y, row, before, after = _hidden_sweep(True, val_tolerance=1.0)
    assert row["accepted"] and "training loss after refitting layer '2'" in row["reason"]
    assert not torch.equal(before["0.weight"], after["0.weight"])
    # the final layer is optimal for the training MSE in its box (KKT, by autograd: another
    # route): a weight strictly inside has no gradient, one on a face is pushed outwards
    model.zero_grad()
    loss = ((model(torch.from_numpy(X)).double() - torch.from_numpy(Y).double()) ** 2).sum()
    loss.backward()
    scale = 1e-3 * loss.item()
    for name in ("weight", "bias"):
        g = getattr(model[2], name).grad.double().numpy()
        d = (after[f"2.{name}"] - before[f"2.{name}"]).double().numpy()
        inside = np.abs(d) < 0.2 - 1e-5
        assert np.all(np.abs(g[inside]) < scale)
        assert np.all(g[~inside] * np.sign(d[~inside]) <= scale)  # descent would leave the box
    assert not torch.equal(before["2.weight"], after["2.weight"])
    # the history's figures are that training loss, by forward passes
    assert row["sweep_loss_after"] == pytest.approx(loss.item(), rel=1e-5)
    m0 = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    m0.load_state_dict(before)
    with torch.no_grad():
        loss0 = float(((m0(torch.from_numpy(X)).double() - torch.from_numpy(Y).double()) ** 2).sum())
    assert row["sweep_loss_before"] == pytest.approx(loss0, rel=1e-6)
    assert row["sweep_loss_after"] < row["sweep_loss_before"]


def test_hidden_sweep_without_refit_keeps_the_final_layer():
    _, _, _, row, before, after = _hidden_sweep(False, val_tolerance=1.0)
    assert "solver loss on its points" in row["reason"]
    assert torch.equal(before["2.weight"], after["2.weight"]) and torch.equal(before["2.bias"], after["2.bias"])


def test_rejected_refit_sweep_restores_both_layers_bit_for_bit():
    _, _, _, row, before, after = _hidden_sweep(True, val="current", val_tolerance=0.0)
    assert not row["accepted"] and "would worsen" in row["reason"]
    for k in before:
        assert torch.equal(before[k], after[k])
