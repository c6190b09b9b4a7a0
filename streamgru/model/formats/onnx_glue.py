"""The ONNX importer's shape glue on the data path: Squeeze / Unsqueeze / Transpose / Slice /
Gather / Reshape and friends, checked not to touch the feature axis, and the final states
``Y_h`` of stacked layers (Concat, then indexed back to the top layer)."""

from __future__ import annotations

import numpy as np

from ...errors import WeightsError
from .onnx_graph import _BIG, DATA_GLUE, _Data, _describe, _MapperBase


class _GlueMapper(_MapperBase):
    """Shape glue and stacked final states (see the module docstring)."""

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
        value = self.consts.get(node.input[1]) if len(node.input) > 1 else None
        if value is None:
            return None  # computed from Shape ops: the exporter's batch/time bookkeeping
        shape = [int(s) for s in np.ravel(value)]
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
