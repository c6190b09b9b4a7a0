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
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UnsupportedModelError, WeightsError, require
from ..conventions import zrh_to_rzn
from ..core import GRUModel
from .onnx_glue import _GlueMapper
from .onnx_graph import ACTIVATIONS, DATA_GLUE, SIDE_GLUE, _Data, _describe
from .onnx_head import _HeadMapper


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


class _GraphMapper(_GlueMapper, _HeadMapper):
    """Walks one ONNX graph and collects GRU layers and head layers in data-flow order."""

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

    def _makes_zeros(self, node) -> bool:
        """Whether a side node's output is all zeros (the exporter's default initial state)."""
        op = node.op_type
        if op == "ConstantOfShape":
            value = self._attrs(node).get("value")
            return value is None or not np.any(self._array(value, _describe(node)))
        if op == "Concat":
            return all(self._is_zero(name) for name in node.input if name)
        return op in (*DATA_GLUE, "Expand") and bool(node.input) and self._is_zero(node.input[0])

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
        layout = self._gru_variant(where, attrs)
        k = len(self.layers)
        w, r, b, hidden = self._gru_weights(node, attrs, src)
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

    def _gru_variant(self, where: str, attrs: dict[str, Any]) -> int:
        """Check a GRU node's attributes (forward, default activations, no clip, one cell
        variant for all layers); sets ``self.lbr`` and returns its ``layout`` (0 or 1)."""
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
        return layout

    def _gru_weights(self, node, attrs: dict[str, Any], src: _Data) -> tuple:
        """W (1, 3H, I), R (1, 3H, H), B (6H,) float64 (zeros when absent) and H, checked."""
        where = _describe(node)
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
        return w, r, b, hidden

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
