"""The ONNX importer's graph model: allowed ops, tensors on the data path, and the mapper's
state with the helpers that read constants and attributes (:mod:`.onnx_import` walks the graph).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import WeightsError

#: Shape-only ops allowed on the data path (they move axes, never mix features).
DATA_GLUE = (
    "Squeeze",
    "Unsqueeze",
    "Transpose",
    "Slice",
    "Gather",
    "Reshape",
    "Cast",
    "Identity",
    "Dropout",
)
#: Ops allowed off the data path (on constants, shapes or the initial state).
SIDE_GLUE = (
    *DATA_GLUE,
    "Shape",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Size",
    "Range",
    "Expand",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Equal",
    "Where",
    "Not",
    "Less",
    "Greater",
    "Max",
    "Min",
)
#: Head activations that may follow a MatMul/Gemm (+ Add), by ONNX op name.
ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softmax": "softmax"}

_BIG = 2**62


@dataclass
class _Data:
    """A tensor on the data path: ``stage`` counts the mapped nodes before it."""

    stage: int
    rank: int | None
    width: int | None
    last_step: bool = False  # a GRU's final state Y_h (no time axis)
    layer_axis: int | None = None  # Y_h's num_directions axis (0 for layout 0, 1 for layout 1)
    stack: tuple[int, ...] | None = None  # stages of Y_h tensors concatenated on layer_axis


@dataclass
class _Head:
    weight: np.ndarray  # (out, in) float64
    bias: np.ndarray  # (out,) float64
    activation: str = "identity"
    open: bool = True  # still accepts a bias Add / an activation


def _describe(node) -> str:
    name = node.name or (node.output[0] if node.output else "?")
    return f"{node.op_type} node {name!r}"


class _MapperBase:
    """The state of one graph walk and the helpers every part of the walk uses."""

    def __init__(self, onnx, proto) -> None:
        self.onnx = onnx
        self.graph = proto.graph
        self.opset = next(
            (int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0
        )
        self.consts: dict[str, np.ndarray | None] = {}
        self.data: dict[str, _Data] = {}
        self.stage = 0
        self.layers: list[dict[str, np.ndarray]] = []
        self.head: list[_Head] = []
        self.lbr: int | None = None
        self.data_input = ""
        self.notes: list[str] = []
        self.state_inputs: list[str] = []
        self.deps: dict[str, frozenset[str]] = {}
        self.zeros: set[str] = set()  # side tensors known to be all zeros

    def _is_zero(self, name: str) -> bool:
        if name in self.zeros:
            return True
        value = self.consts.get(name)
        return value is not None and value.dtype.kind in "fiub" and not np.any(value)

    def _take(self, node, data_in: list, position: int = 0) -> _Data:
        """The one data input of a mapped node, which must be the latest stage."""
        if len(data_in) != 1 or data_in[0][0] != position:
            raise WeightsError(
                f"{_describe(node)}: expected the data path at input {position} only, found it "
                f"at inputs {[k for k, _ in data_in]}; streamgru maps a chain, not a graph with "
                "branches"
            )
        src = self.data[data_in[0][1]]
        if src.stack is not None:
            raise WeightsError(
                f"{_describe(node)} reads the final states of several GRU layers at once; only "
                "the top layer's output can feed a streaming head"
            )
        if src.stage != self.stage:
            raise WeightsError(
                f"{_describe(node)} reads the output of an earlier layer (stage {src.stage}, "
                f"latest {self.stage}); skip connections and branches cannot be mapped"
            )
        return src

    def _advance(self, node, outputs: dict[int, _Data]) -> None:
        self.stage += 1
        for k, data in outputs.items():
            if k < len(node.output) and node.output[k]:
                data.stage = self.stage
                self.data[node.output[k]] = data

    def _attrs(self, node) -> dict[str, Any]:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def _array(self, tensor, where: str) -> np.ndarray:
        if tensor.data_location == self.onnx.TensorProto.EXTERNAL:
            raise WeightsError(
                f"{where} is stored as external data; streamgru reads self-contained .onnx files "
                "only (save with save_as_external_data=False)"
            )
        try:
            return self.onnx.numpy_helper.to_array(tensor)
        except Exception as exc:  # malformed raw_data, unknown dtypes
            raise WeightsError(f"{where}: unreadable tensor: {exc}") from exc

    def _constant(self, node) -> np.ndarray | None:
        for attr in node.attribute:
            if attr.name == "value":
                return self._array(attr.t, f"{_describe(node)} value")
            if attr.name in ("value_float", "value_int"):
                return np.array(self.onnx.helper.get_attribute_value(attr))
            if attr.name in ("value_floats", "value_ints"):
                return np.array(list(self.onnx.helper.get_attribute_value(attr)))
        return None

    def _fold(self, node) -> np.ndarray | None:
        """Evaluate a few shape ops on constants (enough for weights behind Transpose/Cast)."""
        vals = [self.consts.get(name) if name else None for name in node.input]
        if not vals or vals[0] is None:
            return None
        x = vals[0]
        attrs = self._attrs(node)
        op = node.op_type
        try:
            if op in ("Identity", "Dropout"):
                return x
            if op == "Cast":
                return x.astype(self.onnx.helper.tensor_dtype_to_np_dtype(int(attrs["to"])))
            if op == "Transpose":
                return np.transpose(x, attrs.get("perm"))
            if op == "Reshape" and len(vals) > 1 and vals[1] is not None:
                shape = [int(s) for s in np.ravel(vals[1])]
                shape = [x.shape[k] if s == 0 else s for k, s in enumerate(shape)]
                return x.reshape(shape)
            if op in ("Squeeze", "Unsqueeze"):
                axes = self._axes(node, attrs)
                if axes is None:
                    return np.squeeze(x) if op == "Squeeze" else None
                if op == "Squeeze":
                    return np.squeeze(x, axis=tuple(axes))
                return np.expand_dims(x, axis=tuple(axes))
            if op == "Concat" and all(v is not None for v in vals):
                parts = [v for v in vals if v is not None]  # all of them
                return np.concatenate(parts, axis=int(attrs.get("axis", 0)))
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            raise WeightsError(
                f"{_describe(node)}: cannot evaluate on its constants: {exc}"
            ) from exc
        return None

    def _axes(self, node, attrs: dict) -> list[int] | None:
        if "axes" in attrs:
            return [int(a) for a in attrs["axes"]]
        if len(node.input) > 1 and node.input[1]:
            value = self.consts.get(node.input[1])
            return None if value is None else [int(a) for a in np.ravel(value)]
        return None

    def _weight(self, node, index: int, role: str) -> np.ndarray:
        """A constant input of ``node`` as finite float64."""
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            raise WeightsError(f"{_describe(node)}: input {role} is missing")
        if name not in self.consts:
            raise WeightsError(
                f"{_describe(node)}: input {role} ({name!r}) is computed at run time; expected "
                "a constant (initializer)"
            )
        value = self.consts[name]
        if value is None:
            raise WeightsError(
                f"{_describe(node)}: input {role} ({name!r}) is computed by nodes streamgru does "
                "not evaluate; expected an initializer"
            )
        if value.dtype.kind != "f" and str(value.dtype) != "bfloat16":
            raise WeightsError(
                f"{_describe(node)}: input {role} ({name!r}): expected floating-point weights, "
                f"found dtype {value.dtype}"
            )
        arr = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise WeightsError(
                f"{_describe(node)}: input {role} ({name!r}): weights must be finite, found NaN/Inf"
            )
        return arr
