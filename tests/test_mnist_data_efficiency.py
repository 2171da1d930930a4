"""bench data-efficiency on the real MNIST files (the paper's MNIST experiment). Needs the idx
files at ../shared/data/mnist (or $GDSOLVER_MNIST_DIR): a user's clone has none, so the test
skips with the reason."""

from __future__ import annotations

import math

import pytest

from gdsolver.bench.data_efficiency_bench import DataEfficiencyConfig, run_data_efficiency_bench

from mnist_data import MNIST_DIR, needs_mnist


@pytest.mark.slow
@needs_mnist
def test_mnist_data_efficiency_cell(tmp_path):
    """One cell (MLP, n = 300, 2 epochs): every method's row, and the 2-loop GDSolver's accuracy
    equal to the same run by hand, evaluated on the files' own test set."""
    from gdsolver.bench.data_efficiency_bench import NO_SWEEP, TWO_LOOP
    from gdsolver.modelfile.data import load_split_for
    from gdsolver.train.methods import make_trainer
    from gdsolver.train.models import build_model

    cfg = DataEfficiencyConfig(dataset="mnist", models=("mlp",), n_values=(300,), epochs=(2,), seeds=(0,),
                               methods=("sgd",), threads=1, time_limit=10.0, data_dir=str(MNIST_DIR))
    doc = run_data_efficiency_bench(cfg, tmp_path, tag="de", command=["test"], plots=False)
    rows = {r["method"]: r for r in doc["rows"]}
    assert set(rows) == {"sgd", NO_SWEEP, TWO_LOOP}
    for r in rows.values():
        assert not r.get("error") and 0.0 <= r["test_acc"] <= 1.0 and math.isfinite(r["test_loss"])
    split = load_split_for("mnist", None, data_dir=str(MNIST_DIR), seed=0, n_train=300)
    assert len(split.test[0]) == 10000  # the files' own test set
    tr = make_trainer(TWO_LOOP, build_model("mlp", tuple(split.train[0].shape[1:]), 10, seed=0), "classification",
                      epochs=2, batch_size=32, seed=0, threads=1, time_limit=10.0)
    tr.fit(split.train, split.val)
    assert rows[TWO_LOOP]["test_acc"] == pytest.approx(tr.evaluate(split.test)["acc"], abs=1e-12)


def test_mlp2_is_the_mnist_mlp_784_256_128_10():
    """"mlp2" (the MLP of the equal-time and MNIST-scale benchmarks) on MNIST-shaped images: its
    layers, its output on a batch by an independent numpy forward pass, the same seed the same
    weights; bench data-efficiency accepts it and refuses an unknown model."""
    import numpy as np
    import torch

    from gdsolver.errors import GdsolverError
    from gdsolver.train.models import build_model

    net = build_model("mlp2", (1, 28, 28), 10, seed=3)
    lins = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lins] == [(784, 256), (256, 128), (128, 10)]
    x = torch.randn(5, 1, 28, 28)
    h = x.reshape(5, -1).double().numpy()
    for i, m in enumerate(lins):
        h = h @ m.weight.detach().double().numpy().T + m.bias.detach().double().numpy()
        h = np.maximum(h, 0) if i < 2 else h
    with torch.no_grad():
        np.testing.assert_allclose(net(x).double().numpy(), h, rtol=1e-5, atol=1e-5)
    again = build_model("mlp2", (1, 28, 28), 10, seed=3).state_dict()
    assert all(torch.equal(v, again[k]) for k, v in net.state_dict().items())
    other = build_model("mlp2", (1, 28, 28), 10, seed=4).state_dict()
    assert not all(torch.equal(v, other[k]) for k, v in net.state_dict().items())
    DataEfficiencyConfig(dataset="mnist", models=("mlp2",)).check()
    with pytest.raises(GdsolverError, match="mlp3"):
        DataEfficiencyConfig(dataset="mnist", models=("mlp3",)).check()
