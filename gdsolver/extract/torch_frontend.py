"""PyTorch frontend: find a model's final nn.Linear, capture its input H, write weights back.

The final layer is found by *execution*, not by guessing from the module tree: every
nn.Linear gets a forward hook, the model runs on a sample of X, and the last Linear that
ran must produce the model's output (directly or through ReLU, module or F.relu).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from gdsolver.errors import GdsolverError
from gdsolver.extract.inputs import as_samples, check_weights
from gdsolver.extract.layer import FinalLayer

# Number of samples used to identify and verify the final layer.
SAMPLE_SIZE = 256
# float32 tolerance for "this tensor is the model output".
_RTOL, _ATOL = 1e-4, 1e-5


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode, then restore each one's own training flag.

    model.train(flag) would set all submodules alike; saving per module keeps e.g. a
    deliberately frozen BatchNorm in eval mode inside a training model.
    """
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _reference_tensor(model: nn.Module) -> torch.Tensor | None:
    """The first floating parameter/buffer: its dtype and device are the model's."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t
    return None


def _to_tensor(X: np.ndarray, model: nn.Module) -> torch.Tensor:
    """X as a tensor on the model's device; floating data cast to the model's dtype."""
    ref = _reference_tensor(model)
    t = torch.as_tensor(np.ascontiguousarray(X))
    if ref is not None:
        t = t.to(device=ref.device, dtype=ref.dtype if t.is_floating_point() else t.dtype)
    return t


def _run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """model(x) with user errors (wrong input shape, ...) turned into GdsolverError."""
    try:
        y = model(x)
    except GdsolverError:
        raise
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GdsolverError(f"model forward failed on X of shape {tuple(x.shape)}: {msg}") from None
    if not isinstance(y, torch.Tensor):
        raise GdsolverError(f"model output must be a single tensor, got {type(y).__name__}")
    return y


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=_RTOL, atol=_ATOL))


def _named_linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def _features_fn(model: nn.Module, linear: nn.Linear, name: str):
    """Closure X -> H (T, N) float64: the input of `linear`, captured by a forward hook."""

    def features(X: Any, batch_size: int) -> np.ndarray:
        X = as_samples(X)
        parts: list[np.ndarray] = []

        def hook(_mod: nn.Module, inputs: tuple, _out: Any) -> None:
            parts.append(inputs[0].detach().to("cpu", torch.float64).numpy())

        handle = linear.register_forward_hook(hook)
        try:
            with eval_mode(model), torch.no_grad():
                for start in range(0, X.shape[0], batch_size):
                    n_before = len(parts)
                    _run(model, _to_tensor(X[start:start + batch_size], model))
                    if len(parts) != n_before + 1:
                        raise GdsolverError(f"module '{name}' ran {len(parts) - n_before} times in one forward pass, expected once")
        finally:
            handle.remove()
        return np.concatenate(parts, axis=0)

    return features


def from_torch(model: nn.Module, X: Any) -> FinalLayer:
    """Split a PyTorch model into body | final nn.Linear (+ optional ReLU).

    The last nn.Linear executed on a sample of X must produce the model output, either
    directly (activation "identity") or through a ReLU ("relu"); anything else is an error.
    """
    if not isinstance(model, nn.Module):
        raise GdsolverError(f"from_torch expects a torch.nn.Module, got {type(model).__name__}")
    X = as_samples(X)
    linears = _named_linears(model)
    if not linears:
        raise GdsolverError(f"model {type(model).__name__} has no nn.Linear module; the final layer must be an nn.Linear")
    names = {id(m): n for n, m in linears}
    xs = _to_tensor(X[:SAMPLE_SIZE], model)

    # Pass 1: record every Linear call (in execution order) and the model output.
    calls: list[tuple[str, torch.Tensor, torch.Tensor]] = []

    def record(mod: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        # Clone: an in-place ReLU after the Linear would otherwise overwrite `out`.
        calls.append((names[id(mod)], inputs[0].detach().clone(), out.detach().clone()))

    handles = [m.register_forward_hook(record) for _, m in linears]
    try:
        with eval_mode(model), torch.no_grad():
            y = _run(model, xs)
    finally:
        for h in handles:
            h.remove()
    if not calls:
        raise GdsolverError("no nn.Linear module ran during the forward pass; the final layer must be an nn.Linear")
    name, h_in, lin = calls[-1]
    n_calls = sum(1 for c in calls if c[0] == name)
    if n_calls != 1:
        raise GdsolverError(f"final nn.Linear '{name}' ran {n_calls} times in one forward pass; shared final layers are not supported")
    linear = model.get_submodule(name)
    if h_in.dim() != 2:
        raise GdsolverError(f"input of final nn.Linear '{name}' has shape {tuple(h_in.shape)}, expected (T, N); "
                            "only 2-D (sample, feature) inputs are supported")
    y = y.detach()
    is_id, is_relu = _close(y, lin), _close(y, torch.relu(lin))
    if not (is_id or is_relu):
        raise GdsolverError(f"model output is not the output of its last nn.Linear '{name}' (nor of ReLU on it); "
                            "the model must end with nn.Linear, optionally followed by ReLU")

    # Pass 2: a sample whose linear outputs are all positive cannot tell identity from ReLU,
    # so replace the Linear's output by strictly negative values and see what comes out.
    probe_box: list[torch.Tensor] = []

    def probe(_mod: nn.Module, _inputs: tuple, out: torch.Tensor) -> torch.Tensor:
        p = -(out.detach().abs() + 1.0)
        probe_box.append(p.clone())
        return p

    handle = linear.register_forward_hook(probe)
    try:
        with eval_mode(model), torch.no_grad():
            y2 = _run(model, xs)
    finally:
        handle.remove()
    if len(probe_box) == 1 and _close(y2, probe_box[0]) and is_id:
        activation = "identity"
    elif len(probe_box) == 1 and _close(y2, torch.zeros_like(y2)) and is_relu:
        activation = "relu"
    else:
        raise GdsolverError(f"model output does not depend on final nn.Linear '{name}' as identity or ReLU; "
                            "the model must end with nn.Linear, optionally followed by ReLU")

    has_bias = linear.bias is not None
    W = linear.weight.detach().to("cpu", torch.float64).numpy().copy()
    b = (linear.bias.detach().to("cpu", torch.float64).numpy().copy() if has_bias
         else np.zeros(W.shape[0], dtype=np.float64))
    location = {
        "module": name,
        "module_type": type(linear).__name__,
        "has_bias": has_bias,
        "in_features": int(W.shape[1]),
        "out_features": int(W.shape[0]),
        # Registration order is only informational: execution decides.
        "last_registered_linear": linears[-1][0],
    }
    return FinalLayer(W=W, b=b, activation=activation, source="torch", location=location,
                      _features_fn=_features_fn(model, linear, name))


def apply_to_torch(model: nn.Module, W: Any, b: Any, layer: FinalLayer | None = None) -> None:
    """Write W (M, N) and b (M,) into the model's final nn.Linear in place (dtype/device kept).

    Without `layer`, the last registered nn.Linear is used.
    """
    if not isinstance(model, nn.Module):
        raise GdsolverError(f"apply_to_torch expects a torch.nn.Module, got {type(model).__name__}")
    if layer is not None:
        if layer.source != "torch":
            raise GdsolverError(f"layer was extracted from {layer.source}, not from a torch model")
        name = layer.location.get("module")
        try:
            linear = model.get_submodule(name)
        except (AttributeError, TypeError):
            raise GdsolverError(f"model has no submodule '{name}' (named in layer.location['module'])") from None
    else:
        linears = _named_linears(model)
        if not linears:
            raise GdsolverError(f"model {type(model).__name__} has no nn.Linear module to write weights into")
        name, linear = linears[-1]
    if not isinstance(linear, nn.Linear):
        raise GdsolverError(f"submodule '{name}' is {type(linear).__name__}, expected nn.Linear")
    W, b = check_weights(W, b, linear.out_features, linear.in_features)
    if linear.bias is None and np.any(b != 0.0):
        raise GdsolverError(f"nn.Linear '{name}' has no bias (bias=False); cannot write a nonzero b")
    w_new = torch.from_numpy(W).to(device=linear.weight.device, dtype=linear.weight.dtype)
    b_new = None
    if linear.bias is not None:
        b_new = torch.from_numpy(b).to(device=linear.bias.device, dtype=linear.bias.dtype)
    # A value that overflows the parameter dtype (e.g. float16) must not be written as inf.
    if not torch.isfinite(w_new).all() or (b_new is not None and not torch.isfinite(b_new).all()):
        raise GdsolverError(f"new weights overflow dtype {linear.weight.dtype} of nn.Linear '{name}'")
    with torch.no_grad():
        linear.weight.copy_(w_new)
        if b_new is not None:
            linear.bias.copy_(b_new)
