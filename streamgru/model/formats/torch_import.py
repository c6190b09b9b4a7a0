"""PyTorch ``.pt`` / ``.pth`` importer: the ``state_dict`` of an ``nn.GRU`` (+ Linear) or GRUCell.

PyTorch's layout *is* the canonical one (gate rows r, z, n; reset applied after the recurrent
product), so the arrays go to :meth:`GRUModel.from_state_dict` as they are. What this module adds
is a safe load (``torch.load(..., weights_only=True)``: a file can never run code) and clear
errors for what a weights-only load refuses or what is not a plain state_dict.

Accepted file contents:

* a ``state_dict`` (dict / OrderedDict of tensors): ``gru.weight_ih_l0`` ... ``fc.weight``, a bare
  ``nn.GRU`` (``weight_ih_l0`` ...) or ``nn.GRUCell`` (``weight_ih``, ``weight_hh``, ...);
* a training checkpoint dict holding such a state_dict under ``state_dict`` /
  ``model_state_dict`` / ``model``, optionally with a ``metadata`` dict of strings (for example
  ``{"head_activations": '["relu", "identity"]'}`` for a head of several Linear layers).

torch is imported only here, and only when a file is loaded.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import WeightsError, require
from ..core import GRUModel

#: Keys under which training checkpoints commonly keep the model's state_dict.
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")

_GLOBAL = re.compile(r"GLOBAL\s+([\w.]+)")


def load_torch(path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> GRUModel:
    """Load a PyTorch ``state_dict`` file (``.pt`` / ``.pth``) as a :class:`GRUModel`.

    Parameters
    ----------
    path : path to a file written by ``torch.save(model.state_dict(), path)``
    metadata : mapping, optional
        Extra metadata for :meth:`GRUModel.from_state_dict`, e.g. ``head_activations`` for a head
        of several Linear layers (a state_dict does not record activations).

    Returns
    -------
    GRUModel with float64 weights (exact copies of float32 / float16 / bfloat16 tensors) and
    ``metadata["mapping"]`` saying what was done.

    Raises
    ------
    WeightsError
        unreadable, truncated or garbage files; a whole pickled ``nn.Module``; non-tensor or
        non-floating values; wrong shapes (the key is named).
    UnsupportedModelError
        a bidirectional GRU or another model that cannot stream.
    MissingDependencyError
        torch is not installed.
    """
    torch = require("torch", "torch", "loading .pt files")
    path = Path(path)
    obj = _safe_load(torch, path)
    state, file_meta, where = _find_state_dict(torch, path, obj)
    arrays = {key: _to_float64(torch, path, key, value) for key, value in state.items()}
    is_cell = any(k == "weight_ih" or k.endswith(".weight_ih") for k in arrays)
    meta: dict[str, Any] = dict(file_meta)
    meta.update(metadata or {})
    kind = "GRUCell" if is_cell else "GRU"
    meta.setdefault("mapping", f"pytorch {kind} state_dict{where}: as is")
    meta.setdefault("source_format", "pytorch")
    try:
        return GRUModel.from_state_dict(arrays, convention="pytorch", metadata=meta)
    except WeightsError as exc:
        raise type(exc)(f"{path}: {exc}") from exc


def _safe_load(torch, path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``; every failure becomes a :class:`WeightsError`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = _GLOBAL.search(text)
        if found:
            name = found.group(1)
            raise WeightsError(
                f"{path}: the file holds a pickled Python object ({name}), not a state_dict of "
                "tensors; streamgru never unpickles code. Save the weights with "
                "torch.save(model.state_dict(), path) and load that file instead."
            ) from exc
        raise WeightsError(
            f"{path}: not a weights-only PyTorch file (a weights-only load refused it: "
            f"{_first_line(text)}); save the weights with torch.save(model.state_dict(), path)"
        ) from exc
    except (
        RuntimeError,
        OSError,
        EOFError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        UnicodeDecodeError,
        pickle.PickleError,
    ) as exc:
        raise WeightsError(
            f"{path}: not a readable PyTorch file (truncated or not written by torch.save): "
            f"{type(exc).__name__}: {_first_line(str(exc))}"
        ) from exc


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:limit]


def _find_state_dict(torch, path: Path, obj: Any) -> tuple[Mapping[str, Any], dict[str, str], str]:
    """Return (state_dict, metadata from the checkpoint, where-note for the mapping)."""
    if not isinstance(obj, Mapping):
        raise WeightsError(
            f"{path}: expected a state_dict (a dict of tensors), found {type(obj).__name__}; "
            "save the weights with torch.save(model.state_dict(), path)"
        )
    for key in obj:
        if not isinstance(key, str):
            raise WeightsError(f"{path}: state_dict keys must be strings, found {key!r}")
    if obj and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in CHECKPOINT_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and any(
                isinstance(v, torch.Tensor) for v in inner.values()
            ):
                for inner_key in inner:
                    if not isinstance(inner_key, str):
                        raise WeightsError(
                            f"{path}: state_dict keys must be strings, found {inner_key!r} "
                            f"under {key!r}"
                        )
                return (
                    inner,
                    _checkpoint_metadata(path, obj.get("metadata")),
                    f" (checkpoint[{key!r}])",
                )
        raise WeightsError(
            f"{path}: no tensors found; expected a state_dict or a checkpoint with one of the keys "
            f"{list(CHECKPOINT_KEYS)}, found keys {sorted(obj)[:10]}"
        )
    return obj, {}, ""


def _checkpoint_metadata(path: Path, meta: Any) -> dict[str, str]:
    if meta is None:
        return {}
    if not isinstance(meta, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise WeightsError(
            f"{path}: checkpoint 'metadata' must map strings to strings, found {meta!r}"
        )
    return dict(meta)


def _to_float64(torch, path: Path, key: str, value: Any) -> np.ndarray:
    """A floating, dense, CPU tensor as a float64 numpy array (exact for every float dtype)."""
    if not isinstance(value, torch.Tensor):
        raise WeightsError(f"{path}: {key}: expected a tensor, found {type(value).__name__}")
    if value.layout != torch.strided or value.is_quantized:
        raise WeightsError(
            f"{path}: {key}: expected a dense float tensor, found layout {value.layout}"
        )
    if value.device.type != "cpu":
        raise WeightsError(f"{path}: {key}: expected a CPU tensor, found device {value.device}")
    if not value.is_floating_point():
        raise WeightsError(
            f"{path}: {key}: expected a floating-point tensor, found dtype {value.dtype}"
        )
    return value.detach().to(torch.float64).contiguous().numpy().copy()
