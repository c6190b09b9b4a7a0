"""Reading Keras files for :mod:`streamgru.model.formats.keras_import`, with bounded memory and
no code: the members of a ``.keras`` zip (sizes checked before anything is read, reads bounded),
HDF5 files opened read-only, links followed only inside the file, and datasets checked for
shape, dtype and storage before their data is read.

Every failure is a :class:`~streamgru.errors.WeightsError` (the importer adds the file name).
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import WeightsError

#: Largest ``config.json`` read from a ``.keras`` archive (bytes).
MAX_CONFIG_BYTES = 16 * 2**20
#: Largest ``model.weights.h5`` read from a ``.keras`` archive (bytes).
MAX_WEIGHTS_BYTES = 1 * 2**30
#: A member larger than this must also compress less than :data:`MAX_RATIO` to one: float
#: weights do not compress a hundredfold, a zip bomb does.
RATIO_FLOOR_BYTES = 64 * 2**20
MAX_RATIO = 100


def _read_archive(path: Path) -> tuple[Any, bytes, str]:
    """``config.json`` (parsed) and ``model.weights.h5`` (bytes) of a Keras 3 archive."""
    try:
        with zipfile.ZipFile(path) as zf:
            config_raw = _member(zf, "config.json", MAX_CONFIG_BYTES)
            weights = _member(zf, "model.weights.h5", MAX_WEIGHTS_BYTES)
            names = zf.namelist()
            meta_raw = (
                _member(zf, "metadata.json", MAX_CONFIG_BYTES)
                if "metadata.json" in names
                else b"{}"
            )
    except WeightsError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise WeightsError(f"not a readable .keras archive (zip): {exc}") from exc
    config = _json(config_raw, "config.json")
    meta = _json(meta_raw, "metadata.json")
    version = str(meta.get("keras_version", "")) if isinstance(meta, dict) else ""
    return config, weights, version


def _member(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError as exc:
        raise WeightsError(
            f"the .keras archive has no {name!r} (found {zf.namelist()[:10]})"
        ) from exc
    if info.file_size > limit:
        raise WeightsError(f"{name} claims {info.file_size} bytes, more than the limit of {limit}")
    if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_RATIO * info.compress_size:
        raise WeightsError(
            f"{name} claims {info.file_size} bytes from {info.compress_size} compressed "
            f"(more than {MAX_RATIO}:1): refused as a zip bomb"
        )
    with zf.open(info) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise WeightsError(f"{name} expands past the limit of {limit} bytes")
    return data


def _json(raw: bytes | str, where: str) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise WeightsError(f"{where} is not valid JSON: {exc}") from exc


class _open_h5:
    """``h5py.File`` opened read-only, with its errors turned into :class:`WeightsError`."""

    def __init__(self, h5py, path: Path, source) -> None:
        self.h5py, self.path, self.source = h5py, path, source

    def __enter__(self):
        try:
            self.file = self.h5py.File(self.source, "r")
        except (OSError, ValueError, TypeError, RuntimeError) as exc:
            raise WeightsError(f"not a readable HDF5 file: {exc}") from exc
        return self.file

    def __exit__(self, *exc_info) -> None:
        self.file.close()


def _legacy_config(h5) -> tuple[Any, str]:
    raw = h5.attrs.get("model_config")
    if raw is None:
        raise WeightsError(
            "no 'model_config' attribute: this looks like a weights-only file; the layer settings "
            "(reset_after, activations) are needed, so save the whole model with model.save(...)"
        )
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="strict")
    version = h5.attrs.get("keras_version", b"")
    version = version.decode() if isinstance(version, bytes) else str(version)
    return _json(raw, "model_config"), version


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _checked_get(h5py, group, path: str):
    """``group[path]`` following hard and soft links only (never into another file)."""
    node = group
    for part in [p for p in path.split("/") if p]:
        try:
            link = node.get(part, getlink=True)
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise WeightsError(f"cannot read {path!r}: {exc}") from exc
        if link is None:
            return None
        if isinstance(link, h5py.ExternalLink):
            raise WeightsError(f"{path!r} is a link into another file; refused")
        try:
            node = node[part]
        except (KeyError, OSError, ValueError) as exc:
            raise WeightsError(f"cannot read {path!r}: {exc}") from exc
    return node


def _read(h5py, ds, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float dataset of exactly ``shape`` as float64 (checked before any data is read)."""
    if not isinstance(ds, h5py.Dataset):
        raise WeightsError(f"{name}: expected a dataset, found {type(ds).__name__}")
    if tuple(ds.shape or ()) != shape:
        raise WeightsError(f"{name}: expected shape {shape}, found {tuple(ds.shape or ())}")
    if ds.dtype.kind != "f":
        raise WeightsError(f"{name}: expected floating-point weights, found dtype {ds.dtype}")
    if ds.is_virtual or ds.external:
        raise WeightsError(
            f"{name}: stored outside this file (virtual or external dataset); refused"
        )
    try:
        arr = np.asarray(ds[()], dtype=np.float64)
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        raise WeightsError(f"{name}: unreadable dataset (truncated file?): {exc}") from exc
    if not np.all(np.isfinite(arr)):
        raise WeightsError(f"{name}: weights must be finite, found NaN/Inf")
    return arr


class _LegacyWeights:
    """Weights of a legacy H5 model: ``model_weights/<layer>/<weight_name>``, listed in order."""

    def __init__(self, h5py, h5) -> None:
        self.h5py = h5py
        self.root = _checked_get(h5py, h5, "model_weights")
        if self.root is None:
            self.root = h5  # save_weights() files keep the layer groups at the top
        if not isinstance(self.root, h5py.Group):
            raise WeightsError("'model_weights' is not a group")

    def layer(self, name: str, class_name: str, ordinal: int) -> list[tuple[str, Any]]:
        group = _checked_get(self.h5py, self.root, name)
        if group is None:
            raise WeightsError(f"layer {name!r}: no weights group 'model_weights/{name}'")
        names = [_text(n) for n in np.ravel(group.attrs.get("weight_names", []))]
        out = []
        for wname in names:
            ds = _checked_get(self.h5py, group, wname)
            if ds is None:
                raise WeightsError(f"layer {name!r}: weight {wname!r} is listed but missing")
            out.append((f"{name}/{wname}", ds))
        return out


class _ArchiveWeights:
    """Weights of a Keras 3 ``model.weights.h5``: ``layers/<key>[/cell]/vars/<i>``."""

    def __init__(self, h5py, h5) -> None:
        self.h5py = h5py
        layers = _checked_get(h5py, h5, "layers")
        if layers is None or not isinstance(layers, h5py.Group):
            raise WeightsError("model.weights.h5 has no 'layers' group")
        self.groups: dict[str, Any] = {}
        self.by_key: dict[str, Any] = {}
        for key in layers:
            group = _checked_get(h5py, layers, key)
            self.by_key[key] = group
            vars_group = (
                _checked_get(h5py, group, "vars") if isinstance(group, h5py.Group) else None
            )
            if vars_group is not None and "name" in vars_group.attrs:
                self.groups[_text(vars_group.attrs["name"])] = group

    def layer(self, name: str, class_name: str, ordinal: int) -> list[tuple[str, Any]]:
        group = self.groups.get(name)
        if group is None:  # older archives: keys are snake_case(class) + "_<n>"
            key = _snake(class_name) + (f"_{ordinal}" if ordinal else "")
            group = self.by_key.get(key)
        if group is None:
            raise WeightsError(
                f"layer {name!r} ({class_name}): no weights group in model.weights.h5"
            )
        sub = "cell/vars" if class_name == "GRU" else "vars"
        vars_group = _checked_get(self.h5py, group, sub)
        if vars_group is None:
            return []
        keys = sorted(vars_group, key=lambda k: int(k) if k.isdigit() else -1)
        if any(not k.isdigit() for k in keys):
            raise WeightsError(f"layer {name!r}: unexpected entries {keys} in {sub}")
        return [(f"{name}/{sub}/{k}", _checked_get(self.h5py, vars_group, k)) for k in keys]


def _snake(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()
