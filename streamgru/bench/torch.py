"""PyTorch runners for ``streamgru bench``, built on a model's weights.

* :class:`TorchCellRunner`: ``torch.nn.GRUCell`` per sample (a stack of cells for L > 1), then
  the head; with a batch of B streams it is torch's many-stream step.
* :class:`TorchGRURunner`: ``torch.nn.GRU`` over a block of T samples, then the head.

PyTorch's GRU resets after the recurrent product; a reset-before model (Keras
``reset_after=False``, ONNX ``linear_before_reset=0``) has no torch equivalent and raises
:class:`~streamgru.bench.runners.ComparisonUnavailableError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..errors import require
from ..model.core import GRUModel
from .runners import ComparisonUnavailableError, Runner


def _torch() -> Any:
    return require("torch", "torch", "the PyTorch comparison")


def _tensor(torch: Any, arr: np.ndarray) -> Any:
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def torch_head(torch: Any, model: GRUModel) -> Any:
    """The model's head as a ``torch.nn.Sequential`` (``Identity`` when there is none)."""
    nn = torch.nn
    mods: list[Any] = []
    for dense in model.head:
        lin = nn.Linear(dense.in_features, dense.out_features)
        with torch.no_grad():
            lin.weight.copy_(_tensor(torch, dense.weight))
            lin.bias.copy_(_tensor(torch, dense.bias))
        mods.append(lin)
        act = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}.get(dense.activation)
        if act is not None:
            mods.append(act())
        elif dense.activation == "softmax":
            mods.append(nn.Softmax(dim=-1))
    if not mods:
        return nn.Identity()
    return mods[0] if len(mods) == 1 else nn.Sequential(*mods)


def _require_reset_after(model: GRUModel) -> None:
    if not model.reset_after:
        raise ComparisonUnavailableError(
            "torch.nn.GRU and GRUCell reset after the recurrent product; this model resets before "
            "it (a different function), so there is no torch equivalent to time"
        )


class _TorchRunner(Runner):
    framework = "torch"

    def __init__(self, model: GRUModel) -> None:
        _require_reset_after(model)
        self.torch = _torch()
        self.model = model
        self.head = torch_head(self.torch, model).eval()

    @contextmanager
    def active(self) -> Iterator[None]:
        with self.torch.inference_mode():
            yield

    def to_numpy(self, out: Any) -> np.ndarray:
        return out.detach().numpy().astype(np.float64)


class TorchCellRunner(_TorchRunner):
    """``torch.nn.GRUCell`` per sample (one cell per layer), inputs (B, I) tensors."""

    name = "torch GRUCell"
    kind = "sample"

    def __init__(self, model: GRUModel) -> None:
        super().__init__(model)
        torch = self.torch
        self.cells = []
        for layer in model.layers:
            cell = torch.nn.GRUCell(layer.input_size, layer.hidden_size)
            with torch.no_grad():
                cell.weight_ih.copy_(_tensor(torch, layer.weight_ih))
                cell.weight_hh.copy_(_tensor(torch, layer.weight_hh))
                cell.bias_ih.copy_(_tensor(torch, layer.bias_ih))
                cell.bias_hh.copy_(_tensor(torch, layer.bias_hh))
            self.cells.append(cell.eval())
        self.reset()

    def reset(self, n_streams: int = 1) -> None:
        self.h = [self.torch.zeros(n_streams, self.model.hidden_size) for _ in self.cells]
        self.call = self._step_one if len(self.cells) == 1 else self._step_stack

    def prepare(self, X: np.ndarray) -> list[Any]:
        t = _tensor(self.torch, X)
        if t.dim() == 2:
            t = t.unsqueeze(1)
        return [t[i].clone() for i in range(t.shape[0])]

    def _step_one(self, x: Any) -> Any:
        h = self.cells[0](x, self.h[0])
        self.h[0] = h
        return self.head(h)

    def _step_stack(self, x: Any) -> Any:
        inp = x
        for k, cell in enumerate(self.cells):
            inp = cell(inp, self.h[k])
            self.h[k] = inp
        return self.head(inp)


class TorchGRURunner(_TorchRunner):
    """``torch.nn.GRU`` on a (T, 1, I) block carrying its hidden state, then the head."""

    name = "torch GRU block"
    kind = "block"

    def __init__(self, model: GRUModel) -> None:
        super().__init__(model)
        torch = self.torch
        self.gru = torch.nn.GRU(model.input_size, model.hidden_size, num_layers=model.num_layers)
        with torch.no_grad():
            for k, layer in enumerate(model.layers):
                getattr(self.gru, f"weight_ih_l{k}").copy_(_tensor(torch, layer.weight_ih))
                getattr(self.gru, f"weight_hh_l{k}").copy_(_tensor(torch, layer.weight_hh))
                getattr(self.gru, f"bias_ih_l{k}").copy_(_tensor(torch, layer.bias_ih))
                getattr(self.gru, f"bias_hh_l{k}").copy_(_tensor(torch, layer.bias_hh))
        self.gru.eval()
        self.reset()

    def reset(self, n_streams: int = 1) -> None:
        self.h = self.torch.zeros(self.model.num_layers, 1, self.model.hidden_size)

    def prepare(self, X: np.ndarray) -> Any:
        return _tensor(self.torch, X).unsqueeze(1)

    def call(self, x: Any) -> Any:  # type: ignore[override]
        y, self.h = self.gru(x, self.h)
        return self.head(y)
