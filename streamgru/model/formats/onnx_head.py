"""The ONNX importer's head: MatMul / Gemm layers, each optionally followed by a bias ``Add``
and one of Relu / Sigmoid / Tanh / Softmax."""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedModelError, WeightsError
from .onnx_graph import ACTIVATIONS, _Data, _describe, _Head, _MapperBase


class _HeadMapper(_MapperBase):
    """Linear head layers after the top GRU (see the module docstring)."""

    def _linear(self, node, data_in: list) -> None:
        where = _describe(node)
        src = self._take(node, data_in, 0)
        if not self.layers:
            raise WeightsError(
                f"{where} comes before any GRU layer; expected GRU layers, then the head"
            )
        if node.op_type == "MatMul":
            b = self._weight(node, 1, "B")
            if b.ndim != 2:
                raise WeightsError(
                    f"{where}: expected a 2-D (in, out) weight, found shape {b.shape}"
                )
            weight = b.T
            bias = np.zeros(weight.shape[0])
            self.notes.append("MatMul weight (in, out) transposed")
        else:
            attrs = self._attrs(node)
            if int(attrs.get("transA", 0)):
                raise WeightsError(f"{where}: transA=1 on the data path is not a Linear layer")
            b = self._weight(node, 1, "B")
            if b.ndim != 2:
                raise WeightsError(f"{where}: expected a 2-D weight, found shape {b.shape}")
            weight = float(attrs.get("alpha", 1.0)) * (b if int(attrs.get("transB", 0)) else b.T)
            bias = np.zeros(weight.shape[0])
            if len(node.input) > 2 and node.input[2]:
                bias = float(attrs.get("beta", 1.0)) * self._broadcast_bias(
                    node, self._weight(node, 2, "C"), weight.shape[0]
                )
            self.notes.append(f"Gemm transB={int(attrs.get('transB', 0))}")
        if src.width is not None and weight.shape[1] != src.width:
            raise WeightsError(
                f"{where}: expected a weight with {src.width} inputs, found shape {b.shape}"
            )
        for layer in self.head:
            layer.open = False
        self.head.append(_Head(weight=np.array(weight, dtype=np.float64), bias=bias))
        self._advance(node, {0: _Data(stage=0, rank=src.rank, width=weight.shape[0])})

    def _open_head(self, node) -> _Head:
        if not self.head or not self.head[-1].open:
            raise WeightsError(
                f"{_describe(node)} does not follow a MatMul/Gemm; streamgru maps a GRU stack and "
                "a head of Linear layers each followed by at most one activation"
            )
        return self.head[-1]

    def _bias(self, node, data_in: list) -> None:
        if len(data_in) != 1:
            raise WeightsError(
                f"{_describe(node)} adds two data tensors (a residual connection); "
                "it cannot be mapped onto a GRU stack with a Linear head"
            )
        position = data_in[0][0]
        src = self._take(node, data_in, position)
        head = self._open_head(node)
        if head.activation != "identity":
            raise WeightsError(f"{_describe(node)}: a bias after the activation cannot be mapped")
        value = self._weight(node, 1 - position, "bias")
        head.bias = head.bias + self._broadcast_bias(node, value, head.weight.shape[0])
        self._advance(node, {0: _Data(stage=0, rank=src.rank, width=src.width)})

    def _activation(self, node, data_in: list) -> None:
        src = self._take(node, data_in, 0)
        head = self._open_head(node)
        if head.activation != "identity":
            raise WeightsError(f"{_describe(node)}: two activations in a row cannot be mapped")
        if node.op_type == "Softmax":
            axis = int(self._attrs(node).get("axis", -1 if self.opset >= 13 else 1))
            last = axis == -1 or (src.rank is not None and axis == src.rank - 1)
            if not last:
                raise UnsupportedModelError(
                    f"{_describe(node)}: softmax over axis {axis} (rank {src.rank}); only the "
                    "feature (last) axis can be mapped"
                )
        head.activation = ACTIVATIONS[node.op_type]
        head.open = False
        self._advance(node, {0: _Data(stage=0, rank=src.rank, width=src.width)})

    def _broadcast_bias(self, node, value: np.ndarray, out: int) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        if value.size == 1:
            return np.full(out, float(value.reshape(-1)[0]))
        if value.shape[-1] == out and value.size == out:
            return value.reshape(out)
        raise WeightsError(
            f"{_describe(node)}: expected a bias of shape ({out},), found {value.shape}"
        )
