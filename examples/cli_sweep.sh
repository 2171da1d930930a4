#!/usr/bin/env bash
# A PyTorch model -> ONNX -> a sweep instance -> solve -> an improved ONNX model, on the command line.
# Writes only to a temporary directory. Run: PATH=.venv/bin:$PATH bash examples/cli_sweep.sh
set -euo pipefail
cd "$(mktemp -d)"

python - <<'PY'   # 3 epochs of SGD on sklearn's digits, exported to model.onnx; the data to data.npz
import numpy as np, torch
from sklearn.datasets import load_digits
torch.manual_seed(0)
d = load_digits(); X = (d.data / 16).astype(np.float32); y = d.target
model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(3):
    for i in range(0, len(X), 32):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.from_numpy(X[i:i + 32])), torch.from_numpy(y[i:i + 32])).backward()
        opt.step()
torch.onnx.export(model.eval(), (torch.from_numpy(X[:1]),), "model.onnx", dynamo=False,
                  input_names=["x"], dynamic_axes={"x": {0: "batch"}})
np.savez("data.npz", X=X, y=y)
PY

gdsolver compile model.onnx --data data.npz --task classification -o sweep.gdsm   # the last layer, ce head
gdsolver solve sweep.gdsm                                   # -> sweep.result.json (+ its x .npy)
gdsolver apply model.onnx sweep.result.json -o improved.onnx  # refused (exit 1) if worse on data.npz
gdsolver evaluate model.onnx improved.onnx --data data.npz --task classification
