"""ONNX Runtime runners for ``streamgru bench``, on a graph built here from a model's weights.

:func:`build_onnx_gru` writes the model as an ONNX graph with ``onnx.helper``: one ``GRU`` node
per layer (gate blocks reordered from PyTorch's (r, z, n) to ONNX's (z, r, h);
``linear_before_reset=1`` for a reset-after model, 0 for reset-before; ``B = [Wb; Rb]``), a
``Squeeze`` of the direction axis between layers, and the head as ``MatMul`` + ``Add`` (+ its
activation). Inputs ``x`` (T, B, I) and ``h0_k`` (1, B, H) per layer; outputs ``y`` (T, B, O)
and ``hn_k`` (1, B, H). T and B are symbolic, so one session serves both runners:

* :class:`OrtRunRunner`: ``session.run`` per sample (T = 1), carrying ``hn`` into ``h0``; with
  B > 1 it is ONNX Runtime's many-stream step;
* :class:`OrtFusedRunner`: ``session.run`` on a block of T samples (the fused GRU kernel).

Sessions run on one thread (intra- and inter-op), sequential execution, all graph optimisations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import require
from ..model.conventions import rzn_to_zrh
from ..model.core import GRUModel
from .runners import Runner

#: ONNX opset and IR version of the graphs built here (ONNX Runtime >= 1.13 reads them).
OPSET = 17
IR_VERSION = 8

_ACTIVATION_OPS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax"}


def build_onnx_gru(model: GRUModel) -> Any:
    """The model as an ``onnx.ModelProto`` (float32), checked by ``onnx.checker``."""
    onnx = require("onnx", "onnx", "the ONNX Runtime comparison")
    helper, TensorProto = onnx.helper, onnx.TensorProto
    H, I = model.hidden_size, model.input_size

    def const(name: str, arr: np.ndarray) -> Any:
        return onnx.numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name)

    inits = [onnx.numpy_helper.from_array(np.array([1], dtype=np.int64), "axis_dir")]
    nodes = []
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "B", I])]
    outputs = []
    inp = "x"
    for k, layer in enumerate(model.layers):
        inits += [
            const(f"W{k}", rzn_to_zrh(layer.weight_ih)[None]),
            const(f"R{k}", rzn_to_zrh(layer.weight_hh)[None]),
            const(
                f"B{k}",
                np.concatenate([rzn_to_zrh(layer.bias_ih), rzn_to_zrh(layer.bias_hh)])[None],
            ),
        ]
        inputs.append(helper.make_tensor_value_info(f"h0_{k}", TensorProto.FLOAT, [1, "B", H]))
        outputs.append(helper.make_tensor_value_info(f"hn_{k}", TensorProto.FLOAT, [1, "B", H]))
        nodes.append(
            helper.make_node(
                "GRU",
                [inp, f"W{k}", f"R{k}", f"B{k}", "", f"h0_{k}"],
                [f"Y{k}", f"hn_{k}"],
                hidden_size=H,
                linear_before_reset=int(model.reset_after),
                name=f"gru{k}",
            )
        )
        nodes.append(helper.make_node("Squeeze", [f"Y{k}", "axis_dir"], [f"seq{k}"]))
        inp = f"seq{k}"
    for j, dense in enumerate(model.head):
        inits += [const(f"fcW{j}", dense.weight.T), const(f"fcb{j}", dense.bias)]
        nodes.append(helper.make_node("MatMul", [inp, f"fcW{j}"], [f"mm{j}"]))
        nodes.append(helper.make_node("Add", [f"mm{j}", f"fcb{j}"], [f"lin{j}"]))
        inp = f"lin{j}"
        op = _ACTIVATION_OPS.get(dense.activation)
        if op is not None:
            attrs = {"axis": -1} if op == "Softmax" else {}
            nodes.append(helper.make_node(op, [inp], [f"act{j}"], **attrs))
            inp = f"act{j}"
    nodes.append(helper.make_node("Identity", [inp], ["y"]))
    outputs.insert(
        0, helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", "B", model.output_size])
    )
    graph = helper.make_graph(nodes, "streamgru_bench", inputs, outputs, initializer=inits)
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="streamgru-bench"
    )
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    return proto


def ort_session(model: GRUModel) -> Any:
    """An ONNX Runtime CPU session of :func:`build_onnx_gru` on one thread."""
    ort = require("onnxruntime", "bench", "the ONNX Runtime comparison")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(
        build_onnx_gru(model).SerializeToString(),
        sess_options=opts,
        providers=["CPUExecutionProvider"],
    )


class _OrtRunner(Runner):
    framework = "onnxruntime"

    def __init__(self, model: GRUModel, session: Any = None) -> None:
        self.model = model
        self.session = session if session is not None else ort_session(model)
        self._run = self.session.run
        self._outputs = ["y"] + [f"hn_{k}" for k in range(model.num_layers)]
        self._h_names = [f"h0_{k}" for k in range(model.num_layers)]
        self.reset()

    def reset(self, n_streams: int = 1) -> None:
        self.h = [
            np.zeros((1, n_streams, self.model.hidden_size), dtype=np.float32)
            for _ in range(self.model.num_layers)
        ]
        self.call = self._run_one if self.model.num_layers == 1 else self._run_stack

    def _run_one(self, x: np.ndarray) -> np.ndarray:
        y, h = self._run(self._outputs, {"x": x, "h0_0": self.h[0]})
        self.h[0] = h
        return y

    def _run_stack(self, x: np.ndarray) -> np.ndarray:
        feeds = dict(zip(self._h_names, self.h))
        feeds["x"] = x
        out = self._run(self._outputs, feeds)
        self.h = out[1:]
        return out[0]


class OrtRunRunner(_OrtRunner):
    """``InferenceSession.run`` per sample: x (1, B, I), state carried through ``h0``/``hn``."""

    name = "onnxruntime run"
    kind = "sample"

    def prepare(self, X: np.ndarray) -> list[np.ndarray]:
        X = np.asarray(X, dtype=np.float32)
        X4 = np.ascontiguousarray(X[:, None, None, :] if X.ndim == 2 else X[:, None, :, :])
        return list(X4)


class OrtFusedRunner(_OrtRunner):
    """``InferenceSession.run`` on a (T, 1, I) block: ONNX Runtime's fused GRU over T samples."""

    name = "onnxruntime fused block"
    kind = "block"

    def prepare(self, X: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(X, dtype=np.float32)[:, None, :])
