"""Native weights files: ``.safetensors`` (preferred) and ``.npz``, PyTorch state_dict names.

Both hold the arrays of :meth:`GRUModel.state_dict` and string metadata (docs/design.md section 6).
In ``.npz`` the metadata is a JSON object stored as a unicode array under ``__metadata__``.
Neither format can carry code: ``.npz`` is read with ``allow_pickle=False``.

Nothing is read whole: a safetensors header is checked against the file size before it is
read, every tensor's dtype, shape and byte range against the header and the file, and the
data is memory-mapped, so a hostile or sparse file costs no more memory than its real tensors
(at most :data:`MAX_NATIVE_BYTES`). Every failure is a :class:`WeightsError` naming the file.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import WeightsError
from ..core import GRUModel

NPZ_METADATA_KEY = "__metadata__"
#: Largest total uncompressed size of the arrays in a native ``.npz`` (bytes).
MAX_NPZ_BYTES = 1 << 30
#: Largest total tensor data in a native ``.safetensors`` file (bytes).
MAX_NATIVE_BYTES = 1 << 30
#: Largest safetensors JSON header (bytes; the format's own limit is 100 MB).
MAX_HEADER_BYTES = 100_000_000
#: safetensors dtypes a native file may hold: floating point only (the importers' rule).
SAFETENSORS_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8"}


def _convention_of(meta: dict[str, str]) -> str:
    reset = meta.get("reset", "after")
    if reset not in ("after", "before"):
        raise WeightsError(f"metadata 'reset': expected 'after' or 'before', got {reset!r}")
    return "pytorch" if reset == "after" else "pytorch-reset-before"


def _read_header(path: Path, fh: Any, size: int) -> dict[str, Any]:
    """The JSON header of an open safetensors file of ``size`` bytes, checked before reading."""
    if size < 8:
        raise WeightsError(
            f"{path}: truncated safetensors file ({size} bytes, expected at least 8)"
        )
    header_len = int.from_bytes(fh.read(8), "little")
    if header_len > size - 8:
        raise WeightsError(
            f"{path}: header claims {header_len} bytes but only {size - 8} follow "
            "(truncated or not safetensors)"
        )
    if header_len > MAX_HEADER_BYTES:
        raise WeightsError(
            f"{path}: header claims {header_len} bytes, more than the {MAX_HEADER_BYTES} allowed"
        )
    try:
        header = json.loads(fh.read(header_len))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise WeightsError(
            f"{path}: the safetensors header at offset 8 is not valid JSON: {exc}"
        ) from exc
    if not isinstance(header, dict):
        raise WeightsError(
            f"{path}: the safetensors header must be a JSON object, got {type(header).__name__}"
        )
    header["__header_len__"] = header_len
    return header


def _tensor_spec(path: Path, name: str, spec: Any, data_len: int) -> tuple[np.dtype, tuple, int]:
    """(dtype, shape, begin) of one header entry, its byte range checked against the data."""
    if not isinstance(spec, dict):
        raise WeightsError(f"{path}: tensor {name!r}: expected a JSON object, got {spec!r:.80}")
    dtype = spec.get("dtype")
    if dtype not in SAFETENSORS_DTYPES:
        raise WeightsError(
            f"{path}: tensor {name!r}: dtype {dtype!r} refused; expected one of "
            f"{sorted(SAFETENSORS_DTYPES)} (weights are floating point)"
        )
    shape, offsets = spec.get("shape"), spec.get("data_offsets")
    if not isinstance(shape, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise WeightsError(f"{path}: tensor {name!r}: shape must be a list of sizes, got {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1] <= data_len
    ):
        raise WeightsError(
            f"{path}: tensor {name!r}: data_offsets {offsets!r} outside the {data_len} data bytes"
        )
    np_dtype = np.dtype(SAFETENSORS_DTYPES[dtype])
    claimed = math.prod(shape) * np_dtype.itemsize
    if claimed != offsets[1] - offsets[0]:
        raise WeightsError(
            f"{path}: tensor {name!r}: dtype {dtype} shape {shape} needs {claimed} bytes, "
            f"data_offsets give {offsets[1] - offsets[0]}"
        )
    return np_dtype, tuple(shape), offsets[0]


def load_safetensors(path: Path) -> GRUModel:
    """Load a native ``.safetensors`` file; tensors are memory-mapped and copied to float64.

    Raises :class:`WeightsError` naming the file for every failure, including running out of
    memory (MemoryError) and I/O errors.
    """
    try:
        return _load_safetensors(path)
    except MemoryError as exc:
        raise WeightsError(f"{path}: not enough memory to load the weights") from exc


def _load_safetensors(path: Path) -> GRUModel:
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            header = _read_header(path, fh, size)
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read the weights file: {exc}") from exc
    data_start = 8 + header.pop("__header_len__")
    data_len = size - data_start
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise WeightsError(f"{path}: __metadata__ must map strings to strings")
    specs = {name: _tensor_spec(path, name, spec, data_len) for name, spec in header.items()}
    total = sum(math.prod(shape) * dt.itemsize for dt, shape, _ in specs.values())
    if total > MAX_NATIVE_BYTES:
        raise WeightsError(
            f"{path}: the tensors hold {total} bytes, more than the {MAX_NATIVE_BYTES} allowed"
        )
    arrays: dict[str, np.ndarray] = {}
    try:
        mm = np.memmap(path, dtype=np.uint8, mode="r") if data_len > 0 else None
        for name, (dt, shape, begin) in specs.items():
            count = math.prod(shape)
            if mm is None or count == 0:
                arrays[name] = np.zeros(shape, dtype=dt)
                continue
            raw = mm[data_start + begin : data_start + begin + count * dt.itemsize]
            arrays[name] = np.array(raw.view(dt).reshape(shape), copy=True)
        del mm
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path}: cannot map the tensor data: {exc}") from exc
    return _build(path, arrays, meta)


def _check_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Floating-point arrays only, and every GRU weight with both of its biases."""
    for name, arr in arrays.items():
        if arr.dtype.kind != "f":
            raise WeightsError(
                f"{path}: {name}: dtype {arr.dtype} refused; expected float16/32/64 weights"
            )
    for name in arrays:
        for weight in ("weight_ih", "weight_hh"):
            if weight not in name:
                continue
            for bias in ("bias_ih", "bias_hh"):
                wanted = name.replace(weight, bias)
                if wanted not in arrays:
                    raise WeightsError(
                        f"{path}: {name} has no {wanted}; native files carry every bias "
                        "(write zeros explicitly for a bias-free layer)"
                    )


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _check_metadata(path: Path, model: GRUModel) -> None:
    """Refuse metadata the daemon would otherwise turn into silently wrong numbers."""
    if "fs" in model.metadata:
        fs = _number(model.meta_json("fs"))
        if fs is None or not math.isfinite(fs) or fs <= 0:
            raise WeightsError(
                f"{path}: metadata 'fs': expected a finite sample rate > 0 Hz, "
                f"got {model.metadata['fs']!r:.80}"
            )
    post = model.meta_json("postprocessing")
    candidates = [("threshold", model.meta_json("threshold"), "threshold" in model.metadata)]
    if isinstance(post, dict):
        candidates.append(("postprocessing.threshold", post.get("threshold"), "threshold" in post))
    for key, value, present in candidates:
        number = _number(value)
        if present and (number is None or not math.isfinite(number)):
            raise WeightsError(
                f"{path}: metadata {key!r}: expected a finite number, got {value!r:.80}"
            )
    channels = model.meta_json("channels")
    if channels is not None:
        count = len(channels) if isinstance(channels, list) else _number(channels)
        if count != model.input_size:
            raise WeightsError(
                f"{path}: metadata 'channels': expected {model.input_size} label(s) or the "
                f"count {model.input_size} (the model's inputs), got {str(channels)[:80]!r}"
            )


def _build(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, str]) -> GRUModel:
    _check_arrays(path, arrays)
    try:
        model = GRUModel.from_state_dict(arrays, convention=_convention_of(meta), metadata=meta)
    except WeightsError as exc:
        if str(path) in str(exc) or type(exc) is not WeightsError:
            raise
        raise WeightsError(f"{path}: {exc}") from exc
    _check_metadata(path, model)
    return model


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
    """Load a native ``.npz`` file (no pickles); every failure is a :class:`WeightsError`."""
    try:
        return _load_npz(path)
    except MemoryError as exc:
        raise WeightsError(f"{path}: not enough memory to load the weights") from exc


def _load_npz(path: Path) -> GRUModel:
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
    return _build(path, arrays, meta)


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
            members: dict[str, Any] = {**arrays, NPZ_METADATA_KEY: np.array(json.dumps(meta))}
            np.savez(fh, **members)
    else:
        raise WeightsError(f"{path}: native files end in .safetensors or .npz, got {suffix!r}")
    os.replace(tmp, path)
