"""What a PyTorch / notebook user does: models with tuple and dict outputs, DataLoaders, layers by
module name, gdsolver.sweep on a model trained elsewhere, a history as a notebook cell's value,
progress off a terminal, tables on an 80-column terminal. Each result is checked by an
independent route: a forward pass of the model, the counted batches, the rendered text."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import gdsolver
from gdsolver.errors import GdsolverError
from gdsolver.extract.torch_frontend import network_from_torch, resolve_output
from gdsolver.train import GDSolver, GDTrainer, History
from gdsolver.extract import layer_spec
from gdsolver.train import one_sweep


def blobs(n=200, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(k, d))
    y = rng.integers(0, k, n)
    X = (centres[y] + rng.normal(size=(n, d))).astype(np.float32)
    return X, y.astype(np.int64)


class TwoOut(nn.Module):
    """An MLP returning (logits, embedding), (embedding, logits) or a dict of both."""

    def __init__(self, form: str, d=5, h=8, k=3, seed=0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.fc1, self.fc2, self.form = nn.Linear(d, h), nn.Linear(h, k), form

    def forward(self, x):
        emb = torch.relu(self.fc1(x))
        logits = self.fc2(emb)
        if self.form == "logits-first":
            return logits, emb
        if self.form == "emb-first":
            return emb, logits
        return {"emb": emb, "logits": logits}


def ce(model, X, y, pick) -> float:
    with torch.no_grad():
        return float(nn.functional.cross_entropy(pick(model(torch.as_tensor(X))), torch.as_tensor(y)))


PICK = {"logits-first": lambda o: o[0], "emb-first": lambda o: o[1], "dict": lambda o: o["logits"]}
SELECTOR = {"logits-first": 0, "emb-first": 1, "dict": "logits"}


# ---------------------------------------------------------------------------- one output rule
@pytest.mark.parametrize("form", sorted(PICK))
def test_tuple_and_dict_outputs_are_read_alike_by_frontend_and_trainers(form):
    X, y = blobs()
    model = TwoOut(form)
    assert resolve_output(model, X) == SELECTOR[form]
    assert network_from_torch(model, X).tail["output"] == SELECTOR[form]
    hist = GDTrainer(model, epochs=1).fit((X, y))
    # the trainer's loss is the cross-entropy of the logits, by a forward pass here
    assert hist.last["train_loss"] == pytest.approx(ce(model, X, y, PICK[form]), rel=1e-5)
    hist = GDSolver(TwoOut(form), epochs=1, max_sweeps=1, time_limit=20).fit((X, y))
    assert hist.sweeps[0]["layer_name"] == "fc2"
    assert hist.sweeps[0]["status"] not in ("SKIPPED", "ERROR"), hist.sweeps[0]["reason"]


@pytest.mark.parametrize("form", ["logits-first", "emb-first"])
def test_the_onnx_frontend_of_the_cli_picks_alike(form, tmp_path):
    """The same model exported to ONNX (what the CLI reads): the same output is chosen."""
    from gdsolver.extract.onnx_frontend import network_from_onnx, onnx_forward

    X, y = blobs()
    model = TwoOut(form).eval()
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.from_numpy(X[:1]),), str(path), dynamo=False, input_names=["x"],
                      output_names=["a", "b"], dynamic_axes={"x": {0: "batch"}})
    net = network_from_onnx(path, X)
    assert net.layers[-1].location["graph_output"] == "ab"[SELECTOR[form]]
    with torch.no_grad():
        logits = PICK[form](model(torch.from_numpy(X))).double().numpy()
    np.testing.assert_allclose(onnx_forward(path, X), logits, rtol=1e-5, atol=1e-5)
    # `gdsolver compile --layer`: a node name, or an index that says which node it is
    from gdsolver.modelfile.compile import compile_model

    np.savez(tmp_path / "d.npz", X=X, y=y)
    inst = compile_model(path, task="classification", data=tmp_path / "d.npz", layer="/fc1/Gemm")
    assert inst.meta["layer"]["name"] == "/fc1/Gemm"
    layer_spec._WARNED.clear()
    with pytest.warns(UserWarning, match=r"--layer: index 0 is dense layer '/fc1/Gemm'"):
        inst = compile_model(path, task="classification", data=tmp_path / "d.npz", layer="0")
    assert inst.meta["layer"]["name"] == "/fc1/Gemm"


def test_output_override_and_a_clear_error_when_nothing_tells():
    X, y = blobs()
    with pytest.raises(GdsolverError, match="no key 'scores'"):
        GDTrainer(TwoOut("dict"), epochs=1).fit((X, y)) if False else \
            GDTrainer(TwoOut("dict"), epochs=1, output="scores").fit((X, y))

    class Twins(nn.Module):  # two heads on one embedding: neither computes the other
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Linear(5, 8), nn.Linear(8, 3), nn.Linear(8, 3)

        def forward(self, x):
            e = torch.relu(self.a(x))
            return self.b(e), self.c(e)

    with pytest.raises(GdsolverError, match="pass output="):
        GDTrainer(Twins(), epochs=1).fit((X, y))
    model = Twins()
    hist = GDTrainer(model, epochs=1, output=1).fit((X, y))
    assert hist.last["train_loss"] == pytest.approx(ce(model, X, y, lambda o: o[1]), rel=1e-5)


# ---------------------------------------------------------------------------- DataLoaders
def _counting(model):
    seen: list[int] = []
    model.register_forward_pre_hook(lambda m, inp: seen.append(int(inp[0].shape[0])) if m.training else None)
    return seen


def test_a_dataloader_is_used_as_given():
    X, y = blobs(200)
    ds = torch.utils.data.TensorDataset(torch.as_tensor(X), torch.as_tensor(y))
    model = TwoOut("logits-first")
    seen = _counting(model)
    trainer = GDTrainer(model, epochs=2)
    trainer.fit(torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True))
    assert seen == [64, 64, 64, 8] * 2  # its batch size, not the trainer's 32
    assert trainer.config()["batch_size"] == 64  # and run.json says so
    # its sampler: only the points it samples, drop_last honoured
    model = TwoOut("logits-first")
    seen = _counting(model)
    sampler = torch.utils.data.SubsetRandomSampler(range(50))
    GDSolver(model, epochs=1, max_sweeps=1, time_limit=20).fit(
        torch.utils.data.DataLoader(ds, batch_size=16, sampler=sampler, drop_last=True))
    assert seen == [16, 16, 16]


def test_a_dataloader_that_cannot_be_used_is_refused():
    X, y = blobs(40)

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(zip(torch.as_tensor(X), torch.as_tensor(y)))

    with pytest.raises(GdsolverError, match="IterableDataset without __len__"):
        GDTrainer(TwoOut("dict"), epochs=1).fit(torch.utils.data.DataLoader(Stream(), batch_size=8))
    ds = torch.utils.data.TensorDataset(torch.as_tensor(X), torch.as_tensor(y))
    with pytest.raises(GdsolverError, match="batch_size=None"):
        GDTrainer(TwoOut("dict"), epochs=1).fit(torch.utils.data.DataLoader(ds, batch_size=None))


# ---------------------------------------------------------------------------- layers
class WithNorm(nn.Module):
    """Linear -> BatchNorm -> ReLU -> Linear -> ReLU -> Linear: the sweepable chain starts at the
    second Linear (a BatchNorm is not encoded), so chain index 0 is module 'mid'."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.first, self.norm = nn.Linear(5, 8), nn.BatchNorm1d(8)
        self.mid, self.last = nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.last(torch.relu(self.mid(torch.relu(self.norm(self.first(x))))))


def test_layers_by_module_name_and_an_index_explained_once():
    X, y = blobs()
    small = dict(max_sweeps=1, time_limit=20, solver_points=8)  # a small MIP: mid's ReLUs are binaries
    hist = GDSolver(WithNorm(), epochs=1, layers=["mid"], **small).fit((X, y))
    assert [r["layer_name"] for r in hist.sweeps] == ["mid"]
    assert hist.sweeps[0]["status"] not in ("SKIPPED", "ERROR"), hist.sweeps[0]["reason"]
    layer_spec._WARNED.clear()
    with pytest.warns(UserWarning, match=r"index 0 is dense layer 'mid'.*starts at 'mid'"):
        hist = GDSolver(WithNorm(), epochs=1, layers=[0], skip_sweeps=True, **small).fit((X, y))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: the same index on the same chain says nothing again
        GDSolver(WithNorm(), epochs=1, layers=[0], skip_sweeps=True, **small).fit((X, y))
        GDSolver(WithNorm(), epochs=1, layers=["mid"], skip_sweeps=True, **small).fit((X, y))
    r = gdsolver.sweep(WithNorm(), (X, y), layer="mid", points=8, time_limit=20)
    assert r.layer == "mid" and r.layer_index == 0


# ---------------------------------------------------------------------------- gdsolver.sweep
def test_sweep_reports_what_a_forward_pass_gives(tmp_path):
    X, y = blobs()
    model = TwoOut("emb-first")
    GDTrainer(model, epochs=2).fit((X, y))  # "trained elsewhere"
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss0 = ce(model, X, y, PICK["emb-first"])
    r = gdsolver.sweep(model, (X, y), layer="fc2", time_limit=20, instance_path=tmp_path / "s.gdsm")
    assert r.loss_before == pytest.approx(loss0, rel=1e-6)
    assert r.layer == "fc2" and r.status == "OPTIMAL"
    assert r.accepted, r.reason
    # the model changed in place, to the loss the report gives, and only in the swept layer
    assert ce(model, X, y, PICK["emb-first"]) == pytest.approx(r.loss_after, rel=1e-6)
    assert r.loss_after < r.loss_before
    after = model.state_dict()
    assert torch.equal(after["fc1.weight"], before["fc1.weight"])
    assert not torch.equal(after["fc2.weight"], before["fc2.weight"])
    w = after["fc2.weight"].double() - before["fc2.weight"].double()
    assert float(w.abs().max()) <= r.radius * (1 + 1e-6) + 1e-7  # inside its box
    inst = gdsolver.load(r.instance_path)
    assert inst.meta["layer"]["location"]["module"] == "fc2"
    with torch.no_grad():
        acc = float((model(torch.as_tensor(X))[1].argmax(1) == torch.as_tensor(y)).double().mean())
    assert acc == pytest.approx(r.acc_after)


def test_sweep_on_a_copy_and_from_a_dataloader_leaves_the_model():
    X, y = blobs()
    model = TwoOut("dict")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.as_tensor(X), torch.as_tensor(y)),
                                         batch_size=50, shuffle=True)
    r = gdsolver.sweep(model, loader, inplace=False, time_limit=20)
    assert r.model is not model
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # the copy holds what the report says (the loader's points, read through: the same set)
    assert ce(r.model, X, y, PICK["dict"]) == pytest.approx(r.loss_after, rel=1e-6)


def test_the_trainer_sweeps_with_the_same_code(monkeypatch):
    calls = {"prepare": 0, "solve": 0}
    prepare, solve = one_sweep.LayerSweep.prepare, one_sweep.solve

    def counted_prepare(self, *a, **k):
        calls["prepare"] += 1
        return prepare(self, *a, **k)

    def counted_solve(*a, **k):
        calls["solve"] += 1
        return solve(*a, **k)

    monkeypatch.setattr(one_sweep.LayerSweep, "prepare", counted_prepare)
    monkeypatch.setattr("gdsolver.train.hybrid.solve_one", counted_solve)
    X, y = blobs()
    hist = GDSolver(TwoOut("dict"), epochs=1, max_sweeps=1, time_limit=20).fit((X, y))
    assert len(hist.sweeps) == 1 and hist.sweeps[0]["status"] == "OPTIMAL"
    assert calls == {"prepare": 1, "solve": 1}


# ---------------------------------------------------------------------------- notebooks
def test_history_is_a_picture_as_a_cell_value():
    import matplotlib

    backend = matplotlib.get_backend()
    X, y = blobs()
    hist = GDSolver(TwoOut("dict"), epochs=2, max_sweeps=1, time_limit=20).fit((X, y), (X[:50], y[:50]))
    png = hist._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    img = Image.open(io.BytesIO(png))
    assert img.size[0] > img.size[1] > 100  # two panels side by side
    fig = hist.plot()
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"  # history.plot() as the last line shows too
    assert matplotlib.get_backend() == backend
    assert History("empty")._repr_png_() is None  # nothing to draw: the text repr


def test_progress_moves_inside_an_epoch_and_during_a_solve(monkeypatch):
    monkeypatch.setattr(one_sweep, "TICK_S", 0.001)
    X, y = blobs(200)
    events: list[dict] = []
    t = GDSolver(TwoOut("dict"), epochs=1, max_sweeps=1, time_limit=20, batch_size=50)
    t.on_progress = events.append
    t.fit((X, y))
    batches = [e for e in events if e["event"] == "batch"]
    assert [(e["batch"], e["batches"]) for e in batches] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    solves = [e for e in events if e["event"] == "solve"]
    assert solves and all(e["sweep"] == 1 and e["layer"] == "fc2" for e in solves)
    assert [e["elapsed_s"] for e in solves] == sorted(e["elapsed_s"] for e in solves)


@pytest.mark.parametrize("backend", ["highs", "gurobi", "scip"])
def test_backends_report_their_mip_figures_while_they_run(backend):
    """What the solve ticks carry (compile.progress, fed by the backends' callbacks: HiGHS's MIP
    interrupt, Gurobi's MIP callback, SCIP's new-incumbent event): the last incumbent seen is the
    answer's objective, and the bound seen is no tighter than the final one."""
    from gdsolver.compile import available_backends, progress, solve
    from instances import small_instances

    if backend not in available_backends():
        pytest.skip(f"{backend} is not available here")
    inst = small_instances()["class-compact-relu"]
    progress.reset()
    res = solve(inst, backend, mip_gap=0.0)
    seen = progress.latest()
    assert res.status == "OPTIMAL"
    assert seen["incumbent"] == pytest.approx(res.objective)
    assert abs(seen["bound"] - res.objective) >= abs(res.bound - res.objective) - 1e-6 and seen["nodes"] >= 0


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_moves_inside_an_epoch_and_while_solving(monkeypatch):
    """verbose=2 on a terminal: the one-line bar is redrawn with each batch and while the sweep
    solves (its seconds and, from HiGHS's callbacks, its figures), not only at epoch ends."""
    from gdsolver.train import progress

    monkeypatch.setattr(one_sweep, "TICK_S", 0.001)
    monkeypatch.setattr(progress, "MIN_REDRAW_S", 0.0)
    screen = _Terminal()
    monkeypatch.setattr("sys.stdout", screen)
    X, y = blobs(200)
    t = GDSolver(WithNorm(), epochs=1, max_sweeps=1, layers=["mid"], solver_points=8, time_limit=20,
                 batch_size=50, verbose=2)
    t.fit((X, y))
    frames = screen.getvalue().split("\r")
    assert {i for i in (1, 2, 3, 4) if any(f"epoch 1: batch {i}/4" in f for f in frames)} == {1, 2, 3, 4}
    assert any("sweep 1 (mid): solving" in f for f in frames)
    assert "gdsolver sweep 1 after epoch 1" in screen.getvalue()  # the verdict stays on screen


def test_verbose_lines_off_a_terminal(monkeypatch, capsys):
    X, y = blobs()
    GDSolver(TwoOut("dict"), epochs=2, max_sweeps=1, time_limit=20, verbose=2).fit((X, y))
    out = capsys.readouterr().out
    assert "\r" not in out  # not a terminal: lines, no bar
    lines = out.splitlines()
    assert [ln.split(":")[0] for ln in lines if ln.startswith("gdsolver epoch")] == \
        ["gdsolver epoch 1/2", "gdsolver epoch 2/2"]
    assert sum(ln.startswith("gdsolver sweep 1 ") for ln in lines) == 1


@pytest.mark.slow  # a CLI run: 7 s
def test_train_piped_prints_a_line_per_epoch(tmp_path):
    from clirun import run

    p = run("train", "--dataset", "digits", "-m", "adam", "--epochs", "3", "--n-train", "100", "--hidden", "8",
            cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert [ln.split(":")[0] for ln in p.stdout.splitlines() if ln.startswith("adam epoch")] == \
        ["adam epoch 1/3", "adam epoch 2/3", "adam epoch 3/3"]


def test_tables_fit_80_columns():
    from rich.console import Console

    from cli.common import table
    from cli.train_cmd import SUMMARY_COLUMNS

    rows = [["gdsolver", 12, "3 (2)", 0.0123456, 0.0234567, 0.0345678, 0.912345, 12.345, 3.456, 17.89],
            ["adam-lrs", 12, "-", 0.0123456, 0.0234567, 0.0345678, 0.912345, 12.345, None, 17.89]]
    for width in (80, 60):
        buf = io.StringIO()
        Console(file=buf, width=width, force_terminal=False).print(table("digits, seed 0", SUMMARY_COLUMNS, rows))
        text = buf.getvalue()
        assert max(len(ln) for ln in text.splitlines()) <= width
        for head in SUMMARY_COLUMNS:  # every header whole on one line, none split mid-word
            assert head in text, head
        assert text.count("0.0345678") == 2 and text.count("17.89") == 2  # every value once per row
    buf = io.StringIO()
    Console(file=buf, width=200).print(table("t", SUMMARY_COLUMNS, rows))
    assert sum("method" in ln for ln in buf.getvalue().splitlines()) == 1  # wide: one table
