"""Loading and saving weights files, dispatched by extension.

Native: ``.safetensors``, ``.npz``. Imported (optional extras): ``.pt`` / ``.pth`` (torch),
``.onnx`` (onnx), ``.h5`` / ``.keras`` (h5py). Importers map their framework's convention onto
the canonical one (:mod:`streamgru.model.conventions`) and record it in ``metadata["mapping"]``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import WeightsError
from ..core import GRUModel
from .native import load_npz, load_safetensors, save_native

__all__ = ["SUPPORTED_EXTENSIONS", "load_model", "save_native"]

SUPPORTED_EXTENSIONS = (".safetensors", ".npz", ".pt", ".pth", ".onnx", ".h5", ".keras")


def load_model(path: str | os.PathLike) -> GRUModel:
    """Load a GRU model from a weights file, choosing the reader by extension.

    Raises
    ------
    WeightsError
        unreadable, truncated or inconsistent files; unsupported extensions.
    UnsupportedModelError
        models that cannot stream (bidirectional, unknown activations).
    MissingDependencyError
        when the file's framework reader (torch, onnx, h5py) is not installed.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return load_safetensors(path)
    if suffix == ".npz":
        return load_npz(path)
    if suffix in (".pt", ".pth"):
        from .torch_import import load_torch

        return load_torch(path)
    if suffix == ".onnx":
        from .onnx_import import load_onnx

        return load_onnx(path)
    if suffix in (".h5", ".keras"):
        from .keras_import import load_keras

        return load_keras(path)
    raise WeightsError(
        f"{path}: unsupported extension {suffix!r}; expected one of {SUPPORTED_EXTENSIONS}"
    )
