"""ONNX importer: forward ``GRU`` nodes (stacked), the exporter's glue, and a MatMul/Gemm head.

ONNX's GRU keeps its gate blocks as rows in the order (z, r, h) and its bias as one
``B = [Wb; Rb]`` of shape (1, 6H); PyTorch (canonical) uses (r, z, n) with separate input and
recurrent biases, so each block is reordered with :func:`~streamgru.model.conventions.zrh_to_rzn`.
``linear_before_reset=1`` is PyTorch's reset-after cell; the default ``0`` applies the reset gate
before the recurrent product (``n = tanh(W_n x + R_n (r * h) + Wb_n + Rb_n)``), which maps to the
``"pytorch-reset-before"`` convention. Neither can be turned into the other.

The graph is read, never run: this module walks every node that feeds the model's first output,
in data-flow order, and accepts only

* ``GRU`` nodes (forward direction, default activations, no ``clip``, ``layout`` 0 or 1), each fed
  by the previous one, so a stacked GRU keeps every layer;
* shape glue on the data path (Squeeze, Unsqueeze, Transpose, Slice, Gather, Reshape, Cast,
  Identity, Dropout; Shape, Concat, Constant and friends off it), checked not to touch the
  feature (last) axis; the final states ``Y_h`` concatenated into ``h_n`` are accepted only
  when indexed back to the *top* layer (``h_n[-1]``: a head on ``h_n[0]`` would drop layers);
* a head after the top GRU: ``MatMul`` (weight (in, out), transposed here) or ``Gemm``, each
  optionally followed by ``Add`` (bias) and one of Relu / Sigmoid / Tanh / Softmax.

Anything else on the way (an LSTM, a Conv, a residual Add, an unknown op) is refused with a
:class:`WeightsError` naming the node. The GRU's ``initial_h`` may be a graph input (the stepper
owns the state) or a constant zero; ``sequence_lens`` is ignored (it only pads batches).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UnsupportedModelError, WeightsError, require
from ..conventions import zrh_to_rzn
from ..core import GRUModel

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


def load_onnx(path: str | os.PathLike) -> GRUModel:
    """Load an ``.onnx`` model holding forward GRU node(s) and an optional Linear head.

    Returns
    -------
    GRUModel, float64 weights, ``convention`` reset-after for ``linear_before_reset=1`` and
    reset-before for ``0``; ``metadata["mapping"]`` says what was done.

    Raises
    ------
    WeightsError
        unreadable files, external data, unmappable nodes (named), wrong shapes.
    UnsupportedModelError
        reverse / bidirectional GRUs (they cannot stream), other activations, ``clip``,
        a nonzero constant initial state.
    MissingDependencyError
        the ``onnx`` package is not installed.
    """
    onnx = require("onnx", "onnx", "loading .onnx files")
    path = Path(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types on garbage
        raise WeightsError(
            f"{path}: not a readable ONNX file: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        return _GraphMapper(onnx, proto).build()
    except WeightsError as exc:
        raise type(exc)(f"{path}: {exc}") from exc
    except (IndexError, KeyError, TypeError, ValueError, AttributeError) as exc:
        # a node missing inputs or outputs, an attribute of the wrong type, ...
        raise WeightsError(f"{path}: malformed ONNX graph: {type(exc).__name__}: {exc}") from exc


def _describe(node) -> str:
    name = node.name or (node.output[0] if node.output else "?")
    return f"{node.op_type} node {name!r}"


class _GraphMapper:
    """Walks one ONNX graph and collects GRU layers and head layers in data-flow order."""

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

    # ----------------------------------------------------------------- driver
    def build(self) -> GRUModel:
        graph = self.graph
        if not graph.output:
            raise WeightsError("the ONNX graph has no outputs")
        for tensor in graph.initializer:
            self.consts[tensor.name] = self._array(tensor, f"initializer {tensor.name!r}")
        for sparse in graph.sparse_initializer:
            self.consts[sparse.values.name] = None
        output = graph.output[0].name
        nodes = self._ancestors(output)
        grus = [n for n in graph.node if n.op_type == "GRU"]
        used = {id(n) for n in nodes}
        for node in grus:
            if id(node) not in used:
                raise WeightsError(
                    f"{_describe(node)} does not feed the output {output!r}; every GRU layer must "
                    "be on the path from the input to the output"
                )
        self._check_ops(nodes)
        data_input = self._data_input(nodes, grus)
        self.data_input = data_input
        rank, width = self._input_rank_width(data_input)
        self.data[data_input] = _Data(stage=0, rank=rank, width=width)
        for node in nodes:
            self._visit(node)
        out = self.data.get(output)
        if out is None or out.stage != self.stage:
            raise WeightsError(
                f"the output {output!r} is not computed from the last mapped layer; "
                "expected input -> GRU layers -> optional Linear head -> output"
            )
        return self._model(data_input, output)

    def _ancestors(self, output: str) -> list:
        """Nodes the output depends on, in the graph's (topological) order."""
        producer = {}
        for node in self.graph.node:
            for name in node.output:
                if name:
                    producer[name] = node
        needed: set[int] = set()
        stack = [output]
        seen: set[str] = set()
        while stack:
            name = stack.pop()
            if name in seen or name not in producer:
                continue
            seen.add(name)
            node = producer[name]
            needed.add(id(node))
            stack.extend(i for i in node.input if i)
        ordered = [n for n in self.graph.node if id(n) in needed]
        defined = {i.name for i in self.graph.input} | set(self.consts)
        for node in ordered:
            for name in node.input:
                if name and name not in defined:
                    raise WeightsError(
                        f"{_describe(node)} reads {name!r} before it is computed "
                        "(the graph is not topologically sorted)"
                    )
            defined.update(node.output)
        return ordered

    def _check_ops(self, nodes: list) -> None:
        """Refuse, by name, any node on the way to the output that streamgru cannot map."""
        known = {*SIDE_GLUE, "GRU", "MatMul", "Gemm", *ACTIVATIONS}
        for node in nodes:
            if node.op_type not in known or node.domain not in ("", "ai.onnx"):
                raise WeightsError(
                    f"{_describe(node)} cannot be mapped: streamgru reads forward GRU nodes, shape "
                    "glue and a MatMul/Gemm + Add head with Relu/Sigmoid/Tanh/Softmax"
                )

    def _data_input(self, nodes: list, grus: list) -> str:
        """The graph input that feeds the first GRU's X (the sample stream).

        Also fills ``self.deps``: for every tensor, the graph inputs it is computed from.
        """
        if not grus:
            raise WeightsError("no GRU node found in the ONNX graph (expected an ONNX 'GRU' op)")
        inputs = [i.name for i in self.graph.input if i.name not in self.consts]
        deps = self.deps
        deps.update({name: frozenset([name]) for name in inputs})
        first: str | None = None
        for node in nodes:
            if node.op_type == "GRU" and first is None:
                src = deps.get(node.input[0], frozenset())
                if len(src) != 1:
                    raise WeightsError(
                        f"{_describe(node)}: its input X must come from exactly one graph input, "
                        f"found {sorted(src) or 'none'}"
                    )
                first = next(iter(src))
            merged = frozenset().union(*(deps.get(i, frozenset()) for i in node.input if i))
            for name in node.output:
                deps[name] = merged
        if first is None:
            raise WeightsError("no GRU node feeds the first output of the ONNX graph")
        return first

    def _input_rank_width(self, name: str) -> tuple[int | None, int | None]:
        for value in self.graph.input:
            if value.name == name and value.type.HasField("tensor_type"):
                ttype = value.type.tensor_type
                if not ttype.HasField("shape"):
                    return None, None
                dims = ttype.shape.dim
                last = dims[-1].dim_value if dims and dims[-1].HasField("dim_value") else None
                return len(dims), last
        return None, None

    # --------------------------------------------------------------- visiting
    def _visit(self, node) -> None:
        op = node.op_type
        if op == "Constant":
            self.consts[node.output[0]] = self._constant(node)
            return
        data_in = [(k, name) for k, name in enumerate(node.input) if name in self.data]
        if op == "GRU":
            self._gru(node, data_in)
        elif op in ("MatMul", "Gemm"):
            self._linear(node, data_in)
        elif op == "Add" and data_in:
            self._bias(node, data_in)
        elif op in ACTIVATIONS and data_in:
            self._activation(node, data_in)
        elif op == "Concat" and data_in:
            self._stack(node, data_in)
        elif data_in and self.data[data_in[0][1]].stack is not None:
            self._unstack(node, data_in)
        elif data_in:
            self._data_glue(node, data_in)
        elif all(name in self.consts for name in node.input if name) and op != "ConstantOfShape":
            value = self._fold(node)
            for k, name in enumerate(node.output):
                self.consts[name] = value if k == 0 else None
        elif self._makes_zeros(node):
            self.zeros.add(node.output[0])
        # else: a side tensor (shapes, the initial state); it never reaches a data input.

    def _is_zero(self, name: str) -> bool:
        if name in self.zeros:
            return True
        value = self.consts.get(name)
        return value is not None and value.dtype.kind in "fiub" and not np.any(value)

    def _makes_zeros(self, node) -> bool:
        """Whether a side node's output is all zeros (the exporter's default initial state)."""
        op = node.op_type
        if op == "ConstantOfShape":
            value = self._attrs(node).get("value")
            return value is None or not np.any(self._array(value, _describe(node)))
        if op == "Concat":
            return all(self._is_zero(name) for name in node.input if name)
        return op in (*DATA_GLUE, "Expand") and bool(node.input) and self._is_zero(node.input[0])

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

    # -------------------------------------------------------------------- GRU
    def _gru(self, node, data_in: list) -> None:
        src = self._take(node, data_in, 0)
        where = _describe(node)
        if self.head:
            raise WeightsError(
                f"{where} comes after a Linear head layer; expected GRU layers first"
            )
        if src.last_step:
            raise WeightsError(
                f"{where} reads the final state Y_h of the layer below, not its sequence Y"
            )
        attrs = self._attrs(node)
        direction = attrs.get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else str(direction)
        if direction != "forward":
            raise UnsupportedModelError(
                f"{where}: direction={direction!r}; a reverse or bidirectional GRU reads the "
                "future, so it cannot run sample by sample. Export a forward (unidirectional) "
                "model."
            )
        acts = [
            a.decode() if isinstance(a, bytes) else str(a) for a in attrs.get("activations", [])
        ]
        if acts and (
            len(acts) < 2
            or acts[0].lower() != "sigmoid"
            or any(a.lower() != "tanh" for a in acts[1:])
        ):
            raise UnsupportedModelError(
                f"{where}: activations {acts} are not supported; expected the defaults "
                "['Sigmoid', 'Tanh']"
            )
        if "clip" in attrs:
            raise UnsupportedModelError(
                f"{where}: clip={attrs['clip']} is not supported (no clipping in the cell)"
            )
        layout = int(attrs.get("layout", 0))
        if layout not in (0, 1):
            raise WeightsError(f"{where}: layout must be 0 or 1, found {layout}")
        lbr = int(attrs.get("linear_before_reset", 0))
        if lbr not in (0, 1):
            raise WeightsError(f"{where}: linear_before_reset must be 0 or 1, found {lbr}")
        if self.lbr is not None and lbr != self.lbr:
            raise UnsupportedModelError(
                f"{where}: linear_before_reset={lbr} but the layer below has {self.lbr}; "
                "all layers must use one cell variant"
            )
        self.lbr = lbr
        k = len(self.layers)
        w = self._weight(node, 1, "W")
        r = self._weight(node, 2, "R")
        if r.ndim != 3 or r.shape[0] != 1 or r.shape[1] != 3 * r.shape[2]:
            raise WeightsError(f"{where}: R: expected shape (1, 3*H, H), found {r.shape}")
        hidden = int(r.shape[2])
        if "hidden_size" in attrs and int(attrs["hidden_size"]) != hidden:
            raise WeightsError(f"{where}: hidden_size={attrs['hidden_size']} but R has H={hidden}")
        if w.ndim != 3 or w.shape[:2] != (1, 3 * hidden):
            raise WeightsError(
                f"{where}: W: expected shape (1, {3 * hidden}, input_size), found {w.shape}"
            )
        if src.width is not None and w.shape[2] != src.width:
            raise WeightsError(f"{where}: W: expected input_size {src.width}, found {w.shape[2]}")
        if src.rank is not None and src.rank != 3:
            raise WeightsError(f"{where}: X: expected a 3-D sequence tensor, found rank {src.rank}")
        if len(node.input) > 3 and node.input[3]:
            b = self._weight(node, 3, "B")
            if b.shape != (1, 6 * hidden):
                raise WeightsError(f"{where}: B: expected shape (1, {6 * hidden}), found {b.shape}")
            b = b[0]
        else:
            b = np.zeros(6 * hidden)
        if len(node.input) > 5 and node.input[5]:
            self._initial_state(node, node.input[5])
        self.layers.append(
            {
                f"gru.weight_ih_l{k}": zrh_to_rzn(w[0], axis=0),
                f"gru.weight_hh_l{k}": zrh_to_rzn(r[0], axis=0),
                f"gru.bias_ih_l{k}": zrh_to_rzn(b[: 3 * hidden]),
                f"gru.bias_hh_l{k}": zrh_to_rzn(b[3 * hidden :]),
            }
        )
        self._advance(
            node,
            {
                0: _Data(stage=0, rank=4, width=hidden),
                1: _Data(stage=0, rank=3, width=hidden, last_step=True, layer_axis=layout),
            },
        )

    def _initial_state(self, node, name: str) -> None:
        if name in self.data:
            raise WeightsError(f"{_describe(node)}: initial_h is computed from the data path")
        if self._is_zero(name):
            return
        sources = self.deps.get(name, frozenset())
        if name in self.consts or not sources or self.data_input in sources:
            raise UnsupportedModelError(
                f"{_describe(node)}: initial_h ({name!r}) is neither zero nor a graph input; a "
                "constant or computed initial state is not supported (the stepper starts from "
                "zeros; set its hidden state instead)"
            )
        self.state_inputs.extend(s for s in sorted(sources) if s not in self.state_inputs)

    # ------------------------------------------------------------------- head
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

    # ------------------------------------------------------------------- glue
    def _data_glue(self, node, data_in: list) -> None:
        op = node.op_type
        where = _describe(node)
        if op == "Shape" or op == "Size":
            return  # a shape tensor: side information, never data
        if op not in DATA_GLUE or len(data_in) != 1 or data_in[0][0] != 0:
            raise WeightsError(
                f"{where} cannot be mapped on the data path: streamgru reads forward GRU nodes, "
                f"shape glue ({', '.join(DATA_GLUE)}) and a MatMul/Gemm + Add head with "
                "Relu/Sigmoid/Tanh/Softmax"
            )
        src = self.data[data_in[0][1]]
        rank = src.rank
        attrs = self._attrs(node)
        if op == "Transpose":
            perm = attrs.get("perm")
            if rank is not None:
                perm = list(perm) if perm is not None else list(range(rank))[::-1]
                if perm[-1] != rank - 1:
                    raise WeightsError(f"{where}: perm {perm} moves the feature (last) axis")
        elif op in ("Squeeze", "Unsqueeze"):
            axes = self._axes(node, attrs)
            if axes is None:
                rank = None
            elif rank is not None:
                new_rank = rank - len(axes) if op == "Squeeze" else rank + len(axes)
                check = rank if op == "Squeeze" else new_rank
                norm = [a % check for a in axes]
                if check - 1 in norm:
                    raise WeightsError(f"{where}: axes {axes} touch the feature (last) axis")
                rank = new_rank
        elif op == "Slice":
            self._check_slice(node, attrs, src)
        elif op == "Gather":
            axis = int(attrs.get("axis", 0))
            if rank is not None and axis % rank == rank - 1:
                raise WeightsError(f"{where}: gathers along the feature (last) axis")
            indices = self.consts.get(node.input[1])
            rank = None if rank is None or indices is None else rank - 1 + np.ndim(indices)
        elif op == "Reshape":
            rank = self._check_reshape(node, attrs, src)
        elif op == "Cast":
            to = int(attrs.get("to", 1))
            if not np.issubdtype(self.onnx.helper.tensor_dtype_to_np_dtype(to), np.floating):
                raise WeightsError(f"{where}: casts the data to a non-floating type ({to})")
        keeps_layout = op in ("Identity", "Cast", "Dropout")
        self.data[node.output[0]] = _Data(
            stage=src.stage,
            rank=rank,
            width=src.width,
            last_step=src.last_step,
            layer_axis=src.layer_axis if keeps_layout else None,
        )

    def _stack(self, node, data_in: list) -> None:
        """Concat of the layers' final states Y_h (how torch.onnx.export builds ``h_n``)."""
        where = _describe(node)
        parts = [self.data[name] for _, name in data_in]
        inputs = [name for name in node.input if name]
        axis = int(self._attrs(node).get("axis", 0))
        layer_axis = parts[0].layer_axis
        if len(parts) != len(inputs) or any(
            p.layer_axis is None or p.layer_axis != layer_axis or p.stack for p in parts
        ):
            raise WeightsError(
                f"{where} cannot be mapped on the data path: only the final states Y_h of GRU "
                "layers may be concatenated (as in h_n), and only to be indexed by layer"
            )
        if axis % 3 != layer_axis:
            raise WeightsError(
                f"{where}: concatenates final states along axis {axis}, not the layer axis "
                f"{layer_axis}"
            )
        stages = tuple(p.stage for p in parts)
        self.data[node.output[0]] = _Data(
            stage=max(stages),
            rank=3,
            width=parts[0].width,
            last_step=True,
            layer_axis=layer_axis,
            stack=stages,
        )

    def _unstack(self, node, data_in: list) -> None:
        """Gather / Slice of one layer out of stacked final states: it must be the top layer."""
        where = _describe(node)
        src = self.data[data_in[0][1]]
        stack = src.stack or ()
        attrs = self._attrs(node)
        picked: list[int] | None = None
        rank = src.rank
        if node.op_type == "Gather" and len(data_in) == 1 and data_in[0][0] == 0:
            index = self.consts.get(node.input[1])
            if int(attrs.get("axis", 0)) % 3 == src.layer_axis and index is not None:
                if np.size(index) == 1 and -len(stack) <= int(np.ravel(index)[0]) < len(stack):
                    picked = [stack[int(np.ravel(index)[0])]]
                    rank = 3 - 1 + np.ndim(index)
        elif node.op_type == "Slice" and len(data_in) == 1 and data_in[0][0] == 0:
            picked = self._sliced_layers(node, attrs, src)
        if picked is None:
            raise WeightsError(
                f"{where}: the stacked final states of the GRU layers must be indexed on the "
                "layer axis by a constant (Gather or Slice)"
            )
        if picked != [self.stage]:
            chosen = ", ".join(str(p - 1) for p in picked) or "none"
            raise WeightsError(
                f"{where} selects the final state of GRU layer(s) {chosen} of {len(stack)}; only "
                "the top layer's output can feed a streaming head, so mapping it would drop layers"
            )
        self.data[node.output[0]] = _Data(
            stage=self.stage, rank=rank, width=src.width, last_step=True
        )

    def _sliced_layers(self, node, attrs: dict, src: _Data) -> list[int] | None:
        if "starts" in attrs:
            starts, ends = list(attrs["starts"]), list(attrs["ends"])
            axes = list(attrs.get("axes", range(len(starts))))
            steps = [1] * len(starts)
        else:
            vals = [self.consts.get(n) if n else None for n in [*node.input[1:5], "", "", "", ""]]
            if vals[0] is None or vals[1] is None:
                return None
            starts, ends = list(np.ravel(vals[0])), list(np.ravel(vals[1]))
            axes = list(np.ravel(vals[2])) if vals[2] is not None else list(range(len(starts)))
            steps = list(np.ravel(vals[3])) if vals[3] is not None else [1] * len(starts)
        stack = list(src.stack or ())
        picked = stack
        for axis, start, end, step in zip(axes, starts, ends, steps):
            if int(axis) % 3 == src.layer_axis:
                picked = stack[slice(int(start), min(int(end), len(stack) + 1), int(step) or 1)]
            elif int(axis) % 3 == 2:
                return None  # the feature axis
        return picked

    def _axes(self, node, attrs: dict) -> list[int] | None:
        if "axes" in attrs:
            return [int(a) for a in attrs["axes"]]
        if len(node.input) > 1 and node.input[1]:
            value = self.consts.get(node.input[1])
            return None if value is None else [int(a) for a in np.ravel(value)]
        return None

    def _check_slice(self, node, attrs: dict, src: _Data) -> None:
        rank = src.rank
        if "starts" in attrs:
            starts, ends = list(attrs["starts"]), list(attrs["ends"])
            axes = list(attrs.get("axes", range(len(starts))))
            steps = [1] * len(starts)
        else:
            vals = [self.consts.get(n) if n else None for n in list(node.input[1:5]) + [""] * 4]
            if vals[0] is None or vals[1] is None:
                return  # dynamic bounds: only the time/batch axes are sliced by exporters
            starts, ends = list(np.ravel(vals[0])), list(np.ravel(vals[1]))
            axes = list(np.ravel(vals[2])) if vals[2] is not None else list(range(len(starts)))
            steps = list(np.ravel(vals[3])) if vals[3] is not None else [1] * len(starts)
        if rank is None:
            return
        full = _BIG // 4 if src.width is None else src.width
        for axis, start, end, step in zip(axes, starts, ends, steps):
            if int(axis) % rank == rank - 1 and (
                int(start) != 0 or int(end) < full or int(step) != 1
            ):
                raise WeightsError(
                    f"{_describe(node)}: slices the feature (last) axis "
                    f"(start {start}, end {end}, step {step})"
                )

    def _check_reshape(self, node, attrs: dict, src: _Data) -> int | None:
        shape = self.consts.get(node.input[1]) if len(node.input) > 1 else None
        if shape is None:
            return None  # computed from Shape ops: the exporter's batch/time bookkeeping
        shape = [int(s) for s in np.ravel(shape)]
        last = shape[-1] if shape else None
        ok = (src.width is not None and last == src.width) or (
            last == 0 and not int(attrs.get("allowzero", 0)) and src.rank == len(shape)
        )
        if not ok:
            raise WeightsError(
                f"{_describe(node)}: reshape to {shape} does not keep the feature axis "
                f"(expected its last entry to be {src.width})"
            )
        return len(shape)

    # -------------------------------------------------------------- constants
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
                return np.concatenate(vals, axis=int(attrs.get("axis", 0)))
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            raise WeightsError(
                f"{_describe(node)}: cannot evaluate on its constants: {exc}"
            ) from exc
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

    # ------------------------------------------------------------------ model
    def _model(self, data_input: str, output: str) -> GRUModel:
        state: dict[str, np.ndarray] = {}
        for layer in self.layers:
            state.update(layer)
        for k, dense in enumerate(self.head):
            state[f"head.{k}.weight"] = dense.weight
            state[f"head.{k}.bias"] = dense.bias
        lbr = int(self.lbr or 0)
        mapping = (
            f"onnx GRU z,r,h -> r,z,n; B=[Wb;Rb] split into bias_ih, bias_hh; "
            f"linear_before_reset={lbr} (reset {'after' if lbr else 'before'}); "
            f"{len(self.layers)} GRU layer(s)"
        )
        if self.head:
            mapping += f"; head: {', '.join(dict.fromkeys(self.notes))}"
        meta: dict[str, Any] = {
            "mapping": mapping,
            "source_format": "onnx",
            "onnx_input": data_input,
            "onnx_output": output,
            "head_activations": json.dumps([d.activation for d in self.head]),
        }
        if self.state_inputs:
            meta["onnx_initial_state_inputs"] = json.dumps(self.state_inputs)
        convention = "pytorch" if lbr else "pytorch-reset-before"
        return GRUModel.from_state_dict(state, convention=convention, metadata=meta)
