"""The one snapshot envelope every stateful streamgru object writes and reads.

``snapshot() -> bytes`` of a ``Stepper``, ``BatchStepper``, ``CudaBatchStepper``,
``FilterChain``, ``StreamResampler`` and the daemon's per-stream state all produce an
envelope built by :func:`pack`; ``restore(bytes)`` parses it with :func:`unpack`, which refuses
a foreign blob with a :class:`~streamgru.errors.SnapshotError` subclass naming expected versus
got. Layout (little-endian), envelope version 1::

    0     4s   magic b"SGST"
    4     u16  envelope version (1)
    6     u16  reserved, zero
    8     u64  total length of the blob in bytes (the CRC included)
    16    u32  n: length of the header
    20    n    header, UTF-8 JSON (sorted keys):
               kind    the class that wrote it ("Stepper", "FilterChain", ...)
               dtype   the state's compute dtype ("float32", "float64", "" when not one)
               digest  {name: hex}: what must match to restore (model checksum, sections, ...)
               meta    small JSON values (step counts, flags)
               arrays  [[name, dtype ("<f8", "<f4", "<i8", "|u1"), shape], ...] in payload order
               parts   [[name, n_bytes], ...]: nested envelopes or other bytes, after the arrays
    20+n       payload: each array C-ordered, then each part
    end-4 u32  CRC-32 (zlib) of every byte before it

This module is below the engine: it imports numpy and :mod:`streamgru.errors` only.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import SnapshotError

MAGIC = b"SGST"
VERSION = 1
_FIXED = struct.Struct("<4sHHQI")
_CRC = struct.Struct("<I")
#: Magics of the formats streamgru wrote before this envelope (refused with a clear message).
LEGACY_MAGICS = {b"SGS1": "Stepper", b"SGFZ": "FilterChain", b"SGRS": "StreamResampler"}
_ARRAY_DTYPES = ("<f8", "<f4", "<i8", "|u1")


class SnapshotFormatError(SnapshotError):
    """Not an envelope, or a malformed one (bad magic, header, array table)."""


class SnapshotTruncatedError(SnapshotFormatError):
    """The blob is shorter (or longer) than its header says."""


class SnapshotCorruptError(SnapshotFormatError):
    """The CRC-32 does not match: bytes were changed."""


class SnapshotVersionError(SnapshotError):
    """Another envelope version, or a format written by an older streamgru."""


class SnapshotKindError(SnapshotError):
    """The blob was written by another kind of object."""


class SnapshotMismatchError(SnapshotError):
    """The blob was taken from another model, filter or ratio (a digest differs)."""


class SnapshotDtypeError(SnapshotError):
    """The blob holds state of another dtype."""


class SnapshotShapeError(SnapshotError):
    """An array in the blob has another shape than the restoring object's state."""


@dataclass(frozen=True)
class Envelope:
    """A parsed snapshot: what :func:`unpack` returns (arrays are read-only views)."""

    kind: str
    dtype: str
    digest: dict[str, str]
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    parts: dict[str, bytes] = field(default_factory=dict)

    def array(
        self, name: str, shape: tuple[int, ...], dtype: Any = np.float64, finite: bool = True
    ) -> np.ndarray:
        """A native-order copy of array ``name``, checked against ``shape`` and ``dtype``.

        Raises
        ------
        SnapshotFormatError : no such array, or NaN/Inf in it (``finite=True``)
        SnapshotShapeError, SnapshotDtypeError : shape or dtype differ (expected vs got named)
        """
        if name not in self.arrays:
            raise SnapshotFormatError(
                f"{self.kind} snapshot: expected an array {name!r}, got {sorted(self.arrays)}"
            )
        arr = self.arrays[name]
        want = np.dtype(dtype)
        if arr.dtype.newbyteorder("=") != want.newbyteorder("="):
            raise SnapshotDtypeError(
                f"{self.kind} snapshot: array {name!r} expected dtype {want.name}, "
                f"got {arr.dtype.name}"
            )
        if arr.shape != tuple(shape):
            raise SnapshotShapeError(
                f"{self.kind} snapshot: array {name!r} expected shape {tuple(shape)}, "
                f"got {arr.shape}"
            )
        out = arr.astype(want.newbyteorder("="), copy=True)
        if finite and out.dtype.kind == "f" and not np.isfinite(out).all():
            raise SnapshotFormatError(f"{self.kind} snapshot: array {name!r} holds NaN or Inf")
        return out

    def part(self, name: str) -> bytes:
        """The nested bytes ``name``; SnapshotFormatError when absent."""
        if name not in self.parts:
            raise SnapshotFormatError(
                f"{self.kind} snapshot: expected a part {name!r}, got {sorted(self.parts)}"
            )
        return self.parts[name]

    def meta_int(self, name: str, low: int = 0, high: int | None = None) -> int:
        """Integer meta value ``name`` in ``[low, high]``; SnapshotFormatError otherwise."""
        value = self.meta.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise SnapshotFormatError(
                f"{self.kind} snapshot: meta {name!r} expected an integer >= {low}, got {value!r}"
            )
        if high is not None and value > high:
            raise SnapshotFormatError(
                f"{self.kind} snapshot: meta {name!r} expected at most {high}, got {value!r}"
            )
        return value


def pack(
    kind: str,
    dtype: Any,
    digest: dict[str, str],
    arrays: dict[str, np.ndarray] | None = None,
    parts: dict[str, bytes] | None = None,
    meta: dict[str, Any] | None = None,
) -> bytes:
    """Build an envelope (layout in the module docstring).

    Parameters
    ----------
    kind : the writing class's name
    dtype : the state's compute dtype (numpy dtype or name), or "" / None
    digest : {name: hex string} of what a restoring object must match
    arrays : {name: ndarray} (float64, float32, int64 or uint8; written little-endian, C order)
    parts : {name: bytes} (nested envelopes)
    meta : JSON-safe values
    """
    arrays = arrays or {}
    parts = parts or {}
    table, chunks = [], []
    for name, value in arrays.items():
        arr = np.asarray(value)
        le = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        table.append([name, le.dtype.str, list(le.shape)])
        chunks.append(le.tobytes())
    header = {
        "kind": kind,
        "dtype": "" if dtype is None or dtype == "" else np.dtype(dtype).name,
        "digest": dict(digest),
        "meta": dict(meta or {}),
        "arrays": table,
        "parts": [[name, len(blob)] for name, blob in parts.items()],
    }
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    payload = b"".join(chunks) + b"".join(bytes(p) for p in parts.values())
    total = _FIXED.size + len(head) + len(payload) + _CRC.size
    body = _FIXED.pack(MAGIC, VERSION, 0, total, len(head)) + head + payload
    return body + _CRC.pack(zlib.crc32(body))


def _check_frame(blob: Any) -> bytes:
    """Type, length, magic, version and CRC; returns the blob as bytes."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise SnapshotFormatError(f"a snapshot is bytes, got {type(blob).__name__}")
    data = bytes(blob)
    if len(data) < _FIXED.size + _CRC.size:
        if data[:4] in LEGACY_MAGICS:
            _refuse_legacy(data[:4])
        raise SnapshotTruncatedError(
            f"snapshot too short: expected at least {_FIXED.size + _CRC.size} bytes, got {len(data)}"
        )
    magic, version, _, total, _ = _FIXED.unpack_from(data)
    if magic in LEGACY_MAGICS:
        _refuse_legacy(magic)
    if magic != MAGIC:
        raise SnapshotFormatError(
            f"not a streamgru snapshot: expected magic {MAGIC!r} at offset 0, got {magic!r}"
        )
    if version > VERSION:
        raise SnapshotVersionError(
            f"snapshot envelope version {version} is newer than this streamgru reads "
            f"(expected {VERSION}); upgrade streamgru to restore it"
        )
    if version != VERSION:
        raise SnapshotVersionError(f"snapshot envelope version: expected {VERSION}, got {version}")
    if total != len(data):
        raise SnapshotTruncatedError(
            f"snapshot truncated or padded: its header says {total} bytes, got {len(data)}"
        )
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[: -_CRC.size]) != crc:
        raise SnapshotCorruptError("snapshot is corrupt: CRC-32 mismatch")
    return data


def _refuse_legacy(magic: bytes) -> None:
    raise SnapshotVersionError(
        f"snapshot was written by an older streamgru (a {LEGACY_MAGICS[magic]} blob, format "
        f"{magic!r}); this version reads envelope {MAGIC!r} v{VERSION} only: take a new snapshot"
    )


def _parse_header(data: bytes) -> tuple[dict[str, Any], int]:
    _, _, _, _, n_head = _FIXED.unpack_from(data)
    start = _FIXED.size
    if start + n_head > len(data) - _CRC.size:
        raise SnapshotFormatError(f"snapshot header length {n_head} overruns the blob at {start}")
    try:
        header = json.loads(data[start : start + n_head].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotFormatError(f"snapshot header at offset {start} is not JSON: {exc}") from exc
    keys = {"kind", "dtype", "digest", "meta", "arrays", "parts"}
    if not isinstance(header, dict) or set(header) != keys:
        got = sorted(header) if isinstance(header, dict) else type(header).__name__
        raise SnapshotFormatError(f"snapshot header: expected keys {sorted(keys)}, got {got}")
    return header, start + n_head


def _split_payload(header: dict[str, Any], data: bytes, offset: int):
    arrays: dict[str, np.ndarray] = {}
    parts: dict[str, bytes] = {}
    end = len(data) - _CRC.size
    try:
        for name, dtype, shape in header["arrays"]:
            if dtype not in _ARRAY_DTYPES or not all(isinstance(n, int) and n >= 0 for n in shape):
                raise SnapshotFormatError(
                    f"snapshot array {name!r}: expected a dtype in {_ARRAY_DTYPES} and a shape "
                    f"of sizes >= 0, got {dtype!r} {shape!r}"
                )
            n_bytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            if offset + n_bytes > end:
                raise SnapshotTruncatedError(
                    f"snapshot array {name!r} ({n_bytes} bytes at offset {offset}) overruns "
                    f"the payload, which ends at {end}"
                )
            arrays[str(name)] = np.frombuffer(
                data, dtype=dtype, count=n_bytes // np.dtype(dtype).itemsize, offset=offset
            ).reshape(shape)
            offset += n_bytes
        for name, n_bytes in header["parts"]:
            if not isinstance(n_bytes, int) or n_bytes < 0 or offset + n_bytes > end:
                raise SnapshotTruncatedError(
                    f"snapshot part {name!r} ({n_bytes!r} bytes at offset {offset}) overruns "
                    f"the payload, which ends at {end}"
                )
            parts[str(name)] = data[offset : offset + n_bytes]
            offset += n_bytes
    except (TypeError, ValueError) as exc:
        raise SnapshotFormatError(f"snapshot array table is malformed: {exc}") from exc
    if offset != end:
        raise SnapshotFormatError(
            f"snapshot payload: expected it to end at offset {offset}, it ends at {end}"
        )
    return arrays, parts


def unpack(
    blob: Any,
    kind: str | tuple[str, ...],
    dtype: Any = None,
    digest: dict[str, str] | None = None,
) -> Envelope:
    """Parse and check an envelope written by :func:`pack`.

    Parameters
    ----------
    blob : bytes-like
    kind : the kind (or kinds) the caller restores
    dtype : the caller's compute dtype, or None to accept any
    digest : {name: hex} that must be present and equal in the blob (other names are ignored)

    Raises
    ------
    SnapshotFormatError (and its children SnapshotTruncatedError, SnapshotCorruptError),
    SnapshotVersionError, SnapshotKindError, SnapshotDtypeError, SnapshotMismatchError; every
    message names what was expected and what the blob holds.
    """
    data = _check_frame(blob)
    header, offset = _parse_header(data)
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    got_kind = header["kind"]
    if got_kind not in kinds:
        expected = " or ".join(repr(k) for k in kinds)
        raise SnapshotKindError(f"snapshot holds a {got_kind!r}, expected a {expected}")
    if dtype is not None and header["dtype"] != np.dtype(dtype).name:
        raise SnapshotDtypeError(
            f"{got_kind} snapshot holds {header['dtype'] or 'no'} state, expected "
            f"{np.dtype(dtype).name}"
        )
    got_digest = header["digest"]
    if not isinstance(got_digest, dict) or not isinstance(header["meta"], dict):
        raise SnapshotFormatError("snapshot header: digest and meta must be objects")
    for name, want in (digest or {}).items():
        got = got_digest.get(name)
        if got != want:
            raise SnapshotMismatchError(
                f"{got_kind} snapshot was taken with a different {name}: expected {name} "
                f"{_short(want)}, got {_short(got)}; refusing to restore"
            )
    arrays, parts = _split_payload(header, data, offset)
    return Envelope(got_kind, header["dtype"], got_digest, header["meta"], arrays, parts)


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 20 else text[:16] + "..."


def rebuild(factory: Any, args: tuple, kwargs: dict[str, Any], blob: bytes) -> Any:
    """``factory(*args, **kwargs)`` then ``.restore(blob)``: the unpickler of every stateful
    class (settings kept apart from state, as river does; see their ``__reduce__``)."""
    obj = factory(*args, **kwargs)
    obj.restore(blob)
    return obj
