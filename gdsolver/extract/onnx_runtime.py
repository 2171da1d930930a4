"""onnxruntime sessions run in batches, with the model's input dtype and shape enforced.

A model exported with a fixed batch size only accepts batches of exactly that size, so
the last batch is padded (by repeating its last row) and the padded rows are dropped.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx

from gdsolver.errors import GdsolverError
from gdsolver.extract.inputs import as_samples


def log_severity() -> int:
    """onnxruntime's log level for our sessions: GDSOLVER_ORT_LOG_LEVEL (0 verbose .. 4 fatal
    only; the CLI sets 4 unless -v), default 3 (errors only: unused-initializer warnings are
    noise here). What goes wrong reaches the caller as a GdsolverError either way."""
    raw = os.environ.get("GDSOLVER_ORT_LOG_LEVEL", "")
    return int(raw) if raw in ("0", "1", "2", "3", "4") else 3


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class OrtRunner:
    """One CPU inference session over a model with a single data input."""

    def __init__(self, model: onnx.ModelProto, input_info: onnx.ValueInfoProto, label: str) -> None:
        import onnxruntime as ort  # lazy: only ONNX users need it

        self.label = label
        self.input_name = input_info.name
        tt = input_info.type.tensor_type
        self.dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type) if tt.elem_type else np.dtype(np.float32)
        # None = symbolic/unknown dimension; an absent shape means "not declared".
        self.shape: list[int | None] | None = (
            [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim]
            if tt.HasField("shape") else None)
        self.fixed_batch = self.shape[0] if self.shape else None
        level = log_severity()
        ort.set_default_logger_severity(level)  # the process-wide logger (environment, providers)
        opts = ort.SessionOptions()
        opts.log_severity_level = level
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = level
        try:
            self.session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise GdsolverError(f"onnxruntime cannot load ONNX model {label}: {_first_line(exc)}") from None

    def _check_input(self, X: np.ndarray) -> np.ndarray:
        if self.shape is not None:
            per_sample = self.shape[1:]
            ok = X.ndim == len(self.shape) and all(e is None or e == g for e, g in zip(per_sample, X.shape[1:]))
            if not ok:
                expected = tuple("?" if e is None else e for e in per_sample)
                raise GdsolverError(f"input '{self.input_name}' of ONNX model {self.label} expects samples of shape "
                                    f"{expected} (model input shape {tuple('?' if e is None else e for e in self.shape)}), "
                                    f"got X with shape {X.shape}")
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, as an error
            Xc = X.astype(self.dtype, copy=False)
        if np.issubdtype(self.dtype, np.inexact) and not np.isfinite(Xc).all():
            raise GdsolverError(f"X overflows dtype {self.dtype} of input '{self.input_name}'")
        return Xc

    def run(self, X: Any, batch_size: int, outputs: list[str], batch_axes: list[int] | None = None) -> list[np.ndarray]:
        """Run the session on X in batches; outputs concatenated along their batch axis (default 0), as float64."""
        X = self._check_input(as_samples(X))
        axes = batch_axes or [0] * len(outputs)
        T = X.shape[0]
        step = self.fixed_batch or max(1, int(batch_size))
        parts: list[list[np.ndarray]] = [[] for _ in outputs]
        for start in range(0, T, step):
            xb = X[start:start + step]
            n = xb.shape[0]
            if self.fixed_batch and n < step:
                xb = np.concatenate([xb, np.repeat(xb[-1:], step - n, axis=0)], axis=0)
            try:
                res = self.session.run(outputs, {self.input_name: np.ascontiguousarray(xb)}, self._run_options)
            except Exception as exc:
                raise GdsolverError(f"onnxruntime failed on ONNX model {self.label} with a batch of shape {xb.shape}: "
                                    f"{_first_line(exc)}") from None
            for k, (r, ax) in enumerate(zip(res, axes)):
                r = np.asarray(r)
                if r.ndim <= ax or r.shape[ax] != xb.shape[0]:
                    raise GdsolverError(f"output '{outputs[k]}' of ONNX model {self.label} has shape {r.shape}; "
                                        f"expected {xb.shape[0]} samples along axis {ax}")
                parts[k].append(np.take(r, np.arange(n), axis=ax).astype(np.float64, copy=False))
        return [np.concatenate(p, axis=ax) for p, ax in zip(parts, axes)]
