"""Trainers keep every module's own train/eval flag (issue 12): GD trains with the flags the
modules had when `fit` started (a frozen BatchNorm keeps its running statistics bit for bit,
a Dropout switched off stays off), and `fit` gives the model back with its flags as they were.

The flags during GD are observed by forward hooks on the modules themselves (not by asking
the trainer), and the running statistics are compared with torch.equal."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gdsolver.train import GDSolver, GDTrainer
from gdsolver.train.bpgrad import BPGradTrainer
from gdsolver.train.lifted_bcd import LiftedBCDTrainer


def blobs(n=160, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(k, d))
    y = rng.integers(0, k, n)
    return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y


def bn_model(seed=0):
    """Linear-BatchNorm-ReLU-Dropout-Linear: the issue's frozen-BatchNorm case plus a Dropout."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    bn = model[1]
    with torch.no_grad():  # statistics and scale as a trained BatchNorm has them (a fresh one is
        bn.running_mean.uniform_(-0.5, 0.5)  # nearly the identity, which the sweeps' probing
        bn.running_var.uniform_(0.5, 2.0)  # may take for no layer at all)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    return model


class ModeSpy:
    """Records each watched module's `training` flag whenever it runs with autograd on (GD
    steps; evaluations run under no_grad)."""

    def __init__(self, modules):
        self.seen = {id(m): set() for m in modules}
        for m in modules:
            m.register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        if torch.is_grad_enabled():
            self.seen[id(module)].add(module.training)

    def during_gd(self, module):
        return self.seen[id(module)]


def flags(model):
    return [m.training for m in model.modules()]


TRAINERS = {
    "sgd": lambda m: GDTrainer(m, epochs=3, lr=0.05),
    "adam-lrs": lambda m: GDTrainer(m, optimizer="adam", lr_schedule="plateau", epochs=3, lr=0.01),
    "gdsolver": lambda m: GDSolver(m, epochs=3, phase_epochs=2, max_sweeps=1, time_limit=20),
    "bpgrad": lambda m: BPGradTrainer(m, epochs=3),
}


@pytest.mark.parametrize("name", list(TRAINERS))
def test_frozen_batchnorm_stays_frozen_and_modes_come_back(name):
    X, y = blobs()
    model = bn_model()
    model.train()
    bn, drop = model[1], model[3]
    bn.eval()  # frozen by the user: its running statistics must not move
    before = {k: v.clone() for k, v in bn.state_dict().items()}  # running_mean, running_var, counter, affine
    first_w = model[0].weight.detach().clone()
    spy = ModeSpy([bn, drop, model[0]])
    modes_before = flags(model)
    trainer = TRAINERS[name](model)
    hist = trainer.fit((X[:120], y[:120]), (X[120:], y[120:]))
    assert len(hist.epochs) >= 1
    # GD did train (so the hooks saw GD steps) ...
    assert not torch.equal(model[0].weight, first_w)
    assert spy.during_gd(model[0]) == {True}
    assert spy.during_gd(drop) == {True}
    # ... with the BatchNorm in eval mode throughout: its statistics are bit-identical
    assert spy.during_gd(bn) == {False}
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(bn.state_dict()[key], before[key]), key
    # and every module's flag is what it was
    assert flags(model) == modes_before


@pytest.mark.parametrize("name", list(TRAINERS))
def test_dropout_switched_off_stays_off_during_gd(name):
    X, y = blobs()
    model = bn_model()
    model.train()
    model[3].eval()
    spy = ModeSpy([model[1], model[3]])
    TRAINERS[name](model).fit((X, y))
    assert spy.during_gd(model[3]) == {False}
    assert spy.during_gd(model[1]) == {True}  # the rest trains as usual
    assert model.training and model[1].training and not model[3].training


@pytest.mark.parametrize("name", list(TRAINERS))
def test_model_in_eval_trains_normally_and_comes_back_in_eval(name):
    """A model in eval() as a whole (as after evaluating it) trains as model.train() would, so
    its BatchNorm statistics do follow the data; fit gives it back in eval()."""
    X, y = blobs()
    model = bn_model()
    model.eval()
    bn = model[1]
    mean_before = bn.running_mean.clone()
    spy = ModeSpy([bn, model[3]])
    TRAINERS[name](model).fit((X, y))
    assert spy.during_gd(bn) == {True} and spy.during_gd(model[3]) == {True}
    assert not torch.equal(bn.running_mean, mean_before)
    assert not any(flags(model))


def test_lifted_bcd_restores_the_modes():
    X, y = blobs()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    model.eval()
    model[1].train()  # a mixed state, given back exactly
    before = flags(model)
    LiftedBCDTrainer(model, epochs=2).fit((X, y))
    assert flags(model) == before


def test_modes_are_restored_when_fit_fails():
    X, y = blobs()
    model = bn_model()
    model.train()
    model[1].eval()
    before = flags(model)
    with pytest.raises(Exception):
        GDTrainer(model, epochs=2, lr=1e30).fit((X, y))  # diverges: a GdsolverError mid-epoch
    assert flags(model) == before
