"""PyTorch frontend: find a model's chain of dense layers by execution, capture the inputs of
any of its layers, write weights back.

Nothing is guessed from the module tree. Every nn.Linear gets a forward hook and the model
runs on a sample of X:
1. the output (a tensor, or the one picked from a tuple / dict with `output=`) must be the
   output of an executed Linear, through identity or ReLU, optionally followed by Softmax /
   LogSoftmax over the classes;
2. walking back, a Linear whose input is exactly the output of an earlier Linear (through
   identity or ReLU) extends the chain; the first one whose input comes from anything else
   starts it, and everything before it is the fixed prefix.
Each link is confirmed by probing: the earlier Linear's output is replaced by strictly
negative, then large positive values, and the later one's input must follow as identity or
ReLU would. A coincidence on the sample, LeakyReLU, ReLU6, residual additions or a shared
Linear therefore end the chain instead of being misread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from gdsolver.errors import GdsolverError, UnsupportedModelError
from gdsolver.extract.inputs import as_samples, check_weights
from gdsolver.extract.network import DenseLayer, Network

# Number of samples used to identify and verify the chain.
SAMPLE_SIZE = 256
# float32 tolerance for "this tensor is that tensor".
_RTOL, _ATOL = 1e-4, 1e-5

OutputSelector = int | str | Callable[[Any], torch.Tensor] | None


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


def _call(model: nn.Module, x: torch.Tensor) -> Any:
    """model(x) with user errors (wrong input shape, ...) turned into GdsolverError."""
    try:
        return model(x)
    except GdsolverError:
        raise
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GdsolverError(f"model forward failed on X of shape {tuple(x.shape)}: {msg}") from None


def _describe(out: Any) -> str:
    if isinstance(out, dict):
        return f"a dict with keys {list(out)}"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {len(out)}"
    return type(out).__name__


def select_output(out: Any, output: OutputSelector = None) -> torch.Tensor:
    """The tensor a model's raw output stands for: the output itself, or the element picked by
    `output` (an index of a tuple/list, a key of a dict, or a callable raw -> tensor)."""
    if output is None:
        if isinstance(out, torch.Tensor):
            return out
        raise GdsolverError(f"model output is {_describe(out)}, not a tensor; pass output= (an index, a key "
                            "or a callable) to choose the scores")
    if callable(output):
        try:
            t = output(out)
        except Exception as exc:
            raise GdsolverError(f"output selector {output!r} failed on the model output: {exc}") from None
    elif isinstance(out, dict):
        if output not in out:
            raise GdsolverError(f"output: the model returns a dict with keys {list(out)}; no key {output!r}")
        t = out[output]
    elif isinstance(out, (tuple, list)):
        if isinstance(output, bool) or not isinstance(output, int) or not -len(out) <= output < len(out):
            raise GdsolverError(f"output: the model returns {_describe(out)}; {output!r} is not an index into it")
        t = out[output]
    else:
        raise GdsolverError(f"output: the model returns a single {type(out).__name__}; drop output={output!r}")
    if not isinstance(t, torch.Tensor):
        raise GdsolverError(f"output {output!r} of the model is {type(t).__name__}, expected a tensor")
    return t


def _candidates(out: Any) -> list[tuple[Any, torch.Tensor]]:
    """(selector, tensor) for every floating tensor at the top level of a raw output."""
    if isinstance(out, torch.Tensor):
        return [(None, out)]
    items = out.items() if isinstance(out, dict) else enumerate(out) if isinstance(out, (tuple, list)) else []
    return [(k, v) for k, v in items if isinstance(v, torch.Tensor) and v.is_floating_point()]


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = _RTOL, atol: float = _ATOL) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol))


# A probe value reaches the next layer through nothing but the activation (and a softmax tail),
# so it must arrive nearly exactly: a fresh BatchNorm (x / sqrt(1 + 1e-5)) or any other near-
# identity op in between would pass the sample check's float32 tolerance but not this one.
_PROBE_RTOL, _PROBE_ATOL = 1e-6, 1e-7


def _as_2d(t: torch.Tensor, T: int) -> torch.Tensor | None:
    """(T, N) view of a per-sample tensor, or None when it is not per-sample."""
    if t.dim() == 0 or t.shape[0] != T:
        return None
    return t.reshape(T, -1)


_ACTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"identity": lambda a: a, "relu": torch.relu}
_TAILS: dict[str | None, Callable[[torch.Tensor], torch.Tensor]] = {
    None: lambda a: a, "Softmax": lambda a: torch.softmax(a.double(), 1),
    "LogSoftmax": lambda a: torch.log_softmax(a.double(), 1)}


class _Trace:
    """One recorded forward pass: every Linear call (name, input, output) in execution order."""

    def __init__(self, model: nn.Module, xs: torch.Tensor) -> None:
        self.model, self.xs = model, xs
        self.linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not self.linears:
            raise GdsolverError(f"model {type(model).__name__} has no nn.Linear module; a sweep needs dense layers "
                                "(nn.Linear)")
        names = {id(m): n for n, m in self.linears}
        self.calls: list[tuple[str, torch.Tensor, torch.Tensor]] = []
        # every leaf module run, in order, as (name, type, index into calls for Linears): for messages
        self.events: list[tuple[str, str, int | None]] = []
        leaves = [(n, m) for n, m in model.named_modules() if not any(True for _ in m.children())]

        def record(mod: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            # clone: an in-place ReLU after the Linear would otherwise overwrite `out`
            self.events.append((names[id(mod)], "Linear", len(self.calls)))
            self.calls.append((names[id(mod)], inputs[0].detach().clone(), out.detach().clone()))

        def leaf(name: str):
            return lambda mod, _i, _o: self.events.append((name, type(mod).__name__, None))

        handles = [m.register_forward_hook(record) for _, m in self.linears]
        handles += [m.register_forward_hook(leaf(n)) for n, m in leaves if not isinstance(m, nn.Linear)]
        try:
            with eval_mode(model), torch.no_grad():
                self.raw = _call(model, xs)
        finally:
            for h in handles:
                h.remove()
        if not self.calls:
            raise GdsolverError("no nn.Linear module ran during the forward pass; a sweep needs dense layers")
        self.T = xs.shape[0]

    def runs(self, name: str) -> int:
        return sum(1 for c in self.calls if c[0] == name)

    def probe(self, i: int, value: Callable[[torch.Tensor], torch.Tensor], watch: str | None,
              output: OutputSelector) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Re-run with call i's output replaced by value(out); return (the replacement, what is
        watched: the input of Linear `watch`, or the selected model output when watch is None)."""
        name = self.calls[i][0]
        mod = self.model.get_submodule(name)
        box: dict[str, torch.Tensor] = {}

        def replace(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> torch.Tensor:
            p = value(out.detach())
            box["p"] = p.clone()
            return p

        def see(_m: nn.Module, inputs: tuple) -> None:
            box.setdefault("seen", inputs[0].detach().clone())

        handles = [mod.register_forward_hook(replace)]
        if watch is not None:
            handles.append(self.model.get_submodule(watch).register_forward_pre_hook(see))
        try:
            with eval_mode(self.model), torch.no_grad():
                raw = _call(self.model, self.xs)
        finally:
            for h in handles:
                h.remove()
        seen = box.get("seen") if watch is not None else select_output(raw, output).detach()
        return box["p"], seen


def _negative(out: torch.Tensor) -> torch.Tensor:
    return -(out.abs() + 1.0)


def _positive(out: torch.Tensor) -> torch.Tensor:
    return out.abs() + 1.0


def _link(trace: _Trace, i: int, got: torch.Tensor, tail: str | None, watch: str | None,
          output: OutputSelector) -> str | None:
    """The activation between call i's output and `got` (the next Linear's input, or the model
    output through `tail`), confirmed by probing; None when they are not linked."""
    T = trace.T
    lin = _as_2d(trace.calls[i][2], T)
    got2 = _as_2d(got, T)
    if lin is None or got2 is None or lin.shape != got2.shape:
        return None
    f = _TAILS[tail]
    matches = [a for a, g in _ACTS.items() if _close(got2, f(g(lin)).to(got2.dtype))]
    if not matches:
        return None
    verdict = None
    for act in matches:
        ok = True
        for value in (_negative, _positive):
            p, seen = trace.probe(i, value, watch, output)
            p2, seen2 = _as_2d(p, T), None if seen is None else _as_2d(seen, T)
            if seen2 is None or not _close(seen2, f(_ACTS[act](p2)), _PROBE_RTOL, _PROBE_ATOL):
                ok = False
                break
        if ok:
            verdict = act
            break
    return verdict


def _pick_output(trace: _Trace, output: OutputSelector) -> tuple[OutputSelector, list[int], list[str], str | None]:
    """(selector, the chain's call indices, their activations, tail) of the chosen output. Among
    several outputs that come from dense layers, the one whose chain produces all the others on
    its way (e.g. logits beside the embedding they are computed from) is chosen; else ask."""
    if output is not None:
        cands = [(output, select_output(trace.raw, output))]
    else:
        cands = _candidates(trace.raw)
        if not cands:
            raise GdsolverError(f"model output is {_describe(trace.raw)} with no floating tensor to sweep")
    hits = [(sel, _last_layer(trace, y, sel)) for sel, y in cands]
    found = [(sel, *_chain(trace, hit[0], hit[1], sel), hit[2]) for sel, hit in hits if hit is not None]
    lasts = [f[1][-1] for f in found]
    for f in found:
        if all(i in f[1] for i in lasts):
            return f
    if len(found) > 1:
        raise GdsolverError(f"model output is {_describe(trace.raw)} and {len(found)} of its elements "
                            f"({[f[0] for f in found]}) come from a dense layer; pass output= to choose one")
    if output is None and not isinstance(trace.raw, torch.Tensor):
        raise GdsolverError(f"model output is {_describe(trace.raw)} and none of its elements is the output of "
                            "an nn.Linear (optionally through ReLU and Softmax/LogSoftmax)")
    last = trace.calls[-1][0]
    raise UnsupportedModelError(f"model output is not the output of an nn.Linear (nor of ReLU, Softmax or LogSoftmax on "
                        f"one; the last to run was nn.Linear '{last}'); the model must end with nn.Linear, optionally "
                        "followed by ReLU and Softmax/LogSoftmax")


def _last_layer(trace: _Trace, y: torch.Tensor, sel: OutputSelector) -> tuple[int, str, str | None] | None:
    """The latest Linear call that produces y through an activation and a tail, probed."""
    for i in range(len(trace.calls) - 1, -1, -1):
        for tail in _TAILS:
            act = _link(trace, i, y, tail, None, sel)
            if act is not None:
                return i, act, tail
    return None


def resolve_output(model: nn.Module, X: Any, output: OutputSelector = None, *, name: str = "X") -> OutputSelector:
    """The one output rule, shared by network_from_torch, the trainers and gdsolver.sweep: which
    element of the model's output holds the scores. A tensor output is itself (None); a tuple /
    dict output: the element `output` names, else the one that comes from a dense layer (when
    several do, the one whose chain computes the others, e.g. logits beside the embedding they
    are made from); else a clear error asking for output=."""
    X = as_samples(X)
    xs = _to_tensor(X[:SAMPLE_SIZE], model)
    try:
        with eval_mode(model), torch.no_grad():
            raw = _call(model, xs)
    except GdsolverError as exc:  # name the data (train X, val X) the forward failed on
        raise GdsolverError(str(exc).replace(" on X of", f" on {name} of", 1)) from None
    if output is not None or isinstance(raw, torch.Tensor):
        select_output(raw, output)  # a bad selector is refused now, with the output's shape
        return output
    try:
        return _pick_output(_Trace(model, xs), None)[0]
    except GdsolverError as exc:
        raise GdsolverError(f"{exc}; pass output= (an index, a key or a callable) to choose the scores"
                            if "output=" not in str(exc) else str(exc)) from None


def network_from_torch(model: nn.Module, X: Any, *, output: OutputSelector = None) -> Network:
    """The chain of dense layers at the end of a PyTorch model (see the module docstring).

    output: which element of a tuple / dict output holds the scores (an index, a key or a
    callable raw output -> tensor); found automatically when one element comes from a dense
    layer, or one element's chain computes all the others."""
    if not isinstance(model, nn.Module):
        raise GdsolverError(f"expected a torch.nn.Module, got {type(model).__name__}")
    X = as_samples(X)
    trace = _Trace(model, _to_tensor(X[:SAMPLE_SIZE], model))
    sel, chain, acts, tail = _pick_output(trace, output)
    layers = [_dense_layer(model, trace.calls[i][0], act) for i, act in zip(chain, acts)]
    tail_info = {"softmax": tail, "output": sel if (sel is None or isinstance(sel, (int, str))) else repr(sel)}
    modules = [la.name for la in layers]
    return Network(layers, "torch", tail_info, prefix=_prefix(trace, chain[0]),
                   _features_fn=_features_fn(model, modules))


def _dense_layer(model: nn.Module, lname: str, activation: str) -> DenseLayer:
    """The nn.Linear named `lname` as a chain layer: its weights in float64, where it lives."""
    lin = model.get_submodule(lname)
    W = lin.weight.detach().to("cpu", torch.float64).numpy().copy()
    has_bias = lin.bias is not None
    b = lin.bias.detach().to("cpu", torch.float64).numpy().copy() if has_bias else np.zeros(W.shape[0])
    location = {"module": lname, "module_type": type(lin).__name__, "has_bias": has_bias,
                "in_features": int(W.shape[1]), "out_features": int(W.shape[0])}
    return DenseLayer(W, b, activation, lname, location=location, has_bias=has_bias)


def refresh_network(net: Network, model: nn.Module) -> Network:
    """`net` (network_from_torch of `model`) with the model's current weights: the same chain,
    activations and tail, read without the extraction's probing forward passes (what they find
    does not depend on the weights; 3 ms on a two-layer MLP, half of a 0.055 s budget's polish)."""
    layers = [_dense_layer(model, la.location["module"], la.activation) for la in net.layers]
    for new, old in zip(layers, net.layers):
        if new.W.shape != old.W.shape or new.has_bias != old.has_bias:
            raise GdsolverError(f"nn.Linear '{new.name}' has weight shape {new.W.shape} (bias: {new.has_bias}), the "
                                f"network it was extracted into {old.W.shape} (bias: {old.has_bias}): extract it again")
    return Network(layers, net.source, dict(net.tail), prefix=dict(net.prefix), _features_fn=net._features_fn)


def _chain(trace: _Trace, i_last: int, act_last: str, sel: OutputSelector) -> tuple[list[int], list[str]]:
    """Call indices and activations of the chain ending at call i_last, walking back while a
    Linear's input is an earlier Linear's output through identity or ReLU (probed)."""
    name = trace.calls[i_last][0]
    if trace.runs(name) != 1:
        raise GdsolverError(f"final nn.Linear '{name}' ran {trace.runs(name)} times in one forward pass; shared "
                            "final layers are not supported")
    if trace.calls[i_last][1].dim() != 2:
        raise GdsolverError(f"input of final nn.Linear '{name}' has shape {tuple(trace.calls[i_last][1].shape)}, "
                            "expected (T, N); only 2-D (sample, feature) inputs are supported")
    chain, acts = [i_last], [act_last]
    while True:
        cur = chain[0]
        inp = trace.calls[cur][1]
        prev = None
        for i in range(cur - 1, -1, -1):
            pname = trace.calls[i][0]
            if trace.runs(pname) != 1 or trace.calls[i][1].dim() != 2 or pname in (trace.calls[c][0] for c in chain):
                continue
            act = _link(trace, i, inp, None, trace.calls[cur][0], sel)
            if act is not None:
                prev = (i, act)
                break
        if prev is None:
            break
        chain.insert(0, prev[0])
        acts.insert(0, prev[1])
    return chain, acts


_PASS_THROUGH = ("ReLU", "Identity", "Dropout", "Flatten")


def _prefix(trace: _Trace, first: int) -> dict[str, Any]:
    """The Linears that ran before the chain, and what ends the chain (the modules between the
    last of them and the chain's first layer that a sweep cannot encode)."""
    before = [c[0] for c in trace.calls[:first]]
    if not before:
        return {"layers": [], "stop": None}
    pos = next(i for i, e in enumerate(trace.events) if e[2] == first)
    prev = max(i for i, e in enumerate(trace.events[:pos]) if e[2] is not None)
    ops = [f"{t} '{n}'" for n, t, _ in trace.events[prev + 1:pos] if t not in _PASS_THROUGH]
    stop = (f"{', '.join(ops)} comes between it and nn.Linear '{trace.events[prev][0]}'" if ops else
            f"its input is not the output of nn.Linear '{trace.events[prev][0]}' through identity or ReLU")
    return {"layers": sorted(set(before)), "stop": stop}


def _features_fn(model: nn.Module, modules: list[str]) -> Callable[[Any, int, int], np.ndarray]:
    """Closure (X, k, batch) -> inputs (T, N_k) float64 of chain layer k, captured by a hook."""

    def features(X: Any, k: int, batch_size: int) -> np.ndarray:
        X = as_samples(X)
        name = modules[k]
        linear = model.get_submodule(name)
        parts: list[np.ndarray] = []

        def hook(_mod: nn.Module, inputs: tuple) -> None:
            parts.append(inputs[0].detach().to("cpu", torch.float64).numpy())

        handle = linear.register_forward_pre_hook(hook)
        try:
            with eval_mode(model), torch.no_grad():
                for start in range(0, X.shape[0], batch_size):
                    n_before = len(parts)
                    _call(model, _to_tensor(X[start:start + batch_size], model))
                    if len(parts) != n_before + 1:
                        raise GdsolverError(f"module '{name}' ran {len(parts) - n_before} times in one forward "
                                            "pass, expected once")
        finally:
            handle.remove()
        return np.concatenate(parts, axis=0)

    return features


def _resolve_linear(model: nn.Module, layer: Any) -> tuple[str, nn.Linear]:
    if layer is None:
        linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        if len(linears) == 1:
            return linears[0]
        if not linears:
            raise GdsolverError(f"model {type(model).__name__} has no nn.Linear module to write weights into")
        raise GdsolverError(f"model has {len(linears)} nn.Linear modules; pass layer= (a layer of "
                            "network_from_torch, or a module name) so the weights go into the layer that was swept")
    if isinstance(layer, DenseLayer):
        name = layer.location.get("module")
        if name is None:
            raise GdsolverError("layer was not extracted from a torch model: its location names no module")
    elif isinstance(layer, str):
        name = layer
    else:
        raise GdsolverError(f"layer: expected a DenseLayer or a module name, got {type(layer).__name__}")
    try:
        linear = model.get_submodule(name)
    except (AttributeError, TypeError):
        raise GdsolverError(f"model has no submodule '{name}' (named in the layer's location)") from None
    if not isinstance(linear, nn.Linear):
        raise GdsolverError(f"submodule '{name}' is {type(linear).__name__}, expected nn.Linear")
    return name, linear


def apply_to_torch(model: nn.Module, W: Any, b: Any, layer: DenseLayer | str | None = None) -> None:
    """Write W (M, N) and b (M,) into an nn.Linear of the model in place (dtype/device kept).

    layer: the DenseLayer (of network_from_torch) the weights were solved for, or its module name.
    Without it, the model must have exactly one nn.Linear: registration order does not say
    which layer runs last, so it is never guessed."""
    if not isinstance(model, nn.Module):
        raise GdsolverError(f"apply_to_torch expects a torch.nn.Module, got {type(model).__name__}")
    name, linear = _resolve_linear(model, layer)
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


def linear_params(model: nn.Module, layer: DenseLayer | str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Copies of the weight and bias of the nn.Linear a layer names (to restore them exactly)."""
    _, linear = _resolve_linear(model, layer)
    return linear.weight.detach().clone(), None if linear.bias is None else linear.bias.detach().clone()


def restore_params(model: nn.Module, layer: DenseLayer | str,
                   saved: tuple[torch.Tensor, torch.Tensor | None]) -> None:
    """Put back what linear_params saved, bit for bit."""
    _, linear = _resolve_linear(model, layer)
    with torch.no_grad():
        linear.weight.copy_(saved[0])
        if saved[1] is not None:
            linear.bias.copy_(saved[1])
