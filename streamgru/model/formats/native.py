"""Native weights files: ``.safetensors`` (preferred) and ``.npz``, PyTorch state_dict names.

Both hold the arrays of :meth:`GRUModel.state_dict` and string metadata (docs/design.md section 6).
In ``.npz`` the metadata is a JSON object stored as a unicode array under ``__metadata__``.
Neither format can carry code: ``.npz`` is read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ...errors import WeightsError
from ..core import GRUModel

NPZ_METADATA_KEY = "__metadata__"
#: Largest total uncompressed size of the arrays in a native ``.npz`` (bytes).
MAX_NPZ_BYTES = 1 << 30


def _convention_of(meta: dict[str, str]) -> str:
    reset = meta.get("reset", "after")
    if reset not in ("after", "before"):
        raise WeightsError(f"metadata 'reset': expected 'after' or 'before', got {reset!r}")
    return "pytorch" if reset == "after" else "pytorch-reset-before"


def load_safetensors(path: Path) -> GRUModel:
    """Load a native ``.safetensors`` file."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    data = path.read_bytes()
    if len(data) < 8:
        raise WeightsError(
            f"{path}: truncated safetensors file ({len(data)} bytes, expected at least 8)"
        )
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8:
        raise WeightsError(
            f"{path}: header claims {header_len} bytes but only {len(data) - 8} follow "
            "(truncated or not safetensors)"
        )
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise WeightsError(
            f"{path}: the safetensors header at offset 8 is not valid JSON: {exc}"
        ) from exc
    if not isinstance(header, dict):
        raise WeightsError(
            f"{path}: the safetensors header must be a JSON object, got {type(header).__name__}"
        )
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise WeightsError(f"{path}: __metadata__ must map strings to strings")
    try:
        arrays = st_load(data)
    except KeyError as exc:
        raise WeightsError(
            f"{path}: tensor dtype {exc} has no numpy equivalent; save float32 or float64 tensors"
        ) from exc
    except (SafetensorError, ValueError, TypeError) as exc:
        raise WeightsError(
            f"{path}: not a readable safetensors file: {type(exc).__name__}: {exc}"
        ) from exc
    return GRUModel.from_state_dict(arrays, convention=_convention_of(meta), metadata=meta)


def _check_npz_members(path: Path) -> None:
    """Refuse an archive whose arrays claim more bytes than it holds, before numpy allocates.

    A hostile ``.npy`` header can declare any shape; numpy would allocate it before noticing
    that the data is missing.
    """
    total = 0
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            total += info.file_size
            if total > MAX_NPZ_BYTES:
                raise WeightsError(
                    f"{path}: the archive expands to more than {MAX_NPZ_BYTES} bytes; refused"
                )
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                else:
                    raise WeightsError(
                        f"{path}: {info.filename}: unsupported .npy version {version}"
                    )
            claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if claimed > info.file_size:
                raise WeightsError(
                    f"{path}: {info.filename}: the header claims {claimed} bytes of data for shape "
                    f"{shape} but the member holds {info.file_size} bytes (truncated or hostile)"
                )


def load_npz(path: Path) -> GRUModel:
    """Load a native ``.npz`` file (no pickles)."""
    try:
        _check_npz_members(path)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files if k != NPZ_METADATA_KEY}
            meta_raw = str(npz[NPZ_METADATA_KEY]) if NPZ_METADATA_KEY in npz.files else "{}"
    except WeightsError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise WeightsError(f"{path}: not a readable .npz archive: {exc}") from exc
    try:
        meta = json.loads(meta_raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise WeightsError(f"{path}: {NPZ_METADATA_KEY} is not a JSON object: {exc}") from exc
    if not isinstance(meta, dict):
        raise WeightsError(f"{path}: {NPZ_METADATA_KEY} must be a JSON object")
    meta = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    return GRUModel.from_state_dict(arrays, convention=_convention_of(meta), metadata=meta)


def save_native(model: GRUModel, path: str | os.PathLike) -> None:
    """Write ``model`` as ``.safetensors`` (float32 tensors if exact, else float64) or ``.npz``.

    The file is written to a temporary name and renamed, so a crash never leaves half a file.
    """
    path = Path(path)
    arrays = {}
    for name, arr in model.state_dict().items():
        as32 = arr.astype(np.float32)
        exact = np.array_equal(as32.astype(np.float64), arr)
        arrays[name] = as32 if exact else np.ascontiguousarray(arr)
    meta = model.native_metadata()
    tmp = path.with_name(path.name + ".tmp")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.numpy import save

        tmp.write_bytes(save(arrays, metadata=meta))
    elif suffix == ".npz":
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays, **{NPZ_METADATA_KEY: np.array(json.dumps(meta))})
    else:
        raise WeightsError(f"{path}: native files end in .safetensors or .npz, got {suffix!r}")
    os.replace(tmp, path)
