"""NATS subjects, message formats and partitioning (no NATS connection, no nats-py).

Subjects (``<id>`` is a stream id: one subject token, ``[A-Za-z0-9_-]{1,64}``)::

    sg.in.<id>          devices / gateways publish input here
    sg.part.<p>.<id>    the same messages after the server's partition mapping (cluster mode)
    sg.out.<id>         predictions

Input messages (one NATS message = one or more complete records of one stream), either

* **SGN1 batch** (24-byte header, then samples), little-endian::

      0   4s   magic b"SGN1"
      4   u16  version (1)
      6   u16  n_channels C (>= 1)
      8   u64  first_index: 64-bit index of the first sample in the stream
      16  u32  n_samples T (>= 1)
      20  u32  reserved (0)
      24  f32  T * C samples in physical units, interleaved by sample (row-major (T, C))

* or **SGB1 frames** (``firmware_bridge/PROTOCOL.md``): one or more complete COBS frames, each
  ending in ``0x00``, exactly as a device writes them on a UART. A ``HELLO`` sets the stream's
  calibration (kept with the stream's state); ``DATA`` frames are unwrapped from their 32-bit index
  to 64 bits. A float32 ``DATA`` frame before any ``HELLO`` is taken as physical units (gain 1,
  baseline 0); an integer one is ignored (counted) since it cannot be calibrated.

The two cannot be confused: byte 1 of an SGB1 frame is the COBS copy of the version byte, 0x01,
where SGN1 has ``b"G"``.

Predictions (one message per input chunk) on ``sg.out.<id>``, either **SGP1** (the default)::

      0   4s   magic b"SGP1"
      4   u16  version (1)
      6   u16  n_outputs O
      8   u64  first_index: the input index of the first row
      16  u32  n_samples T
      20  u32  reserved (0)
      24  f32  T * O outputs, row-major (T, O)

or JSON: ``{"stream": "<id>", "first_index": 1234, "outputs": [[...], ...]}`` (float32 values
printed as the shortest float64 that rounds back to them).

Partitioning: ``partition_of(id, n)`` is FNV-1a (32-bit) of the id modulo n: the function
``nats-server`` uses for the subject mapping ``{{partition(n,1)}}``, so a publisher that cannot rely
on the server's mapping can compute the partition itself and publish on ``sg.part.<p>.<id>``.

``nats-py`` is imported only when a connection is made (extra ``nats``).
"""

from __future__ import annotations

import json
import re
import struct
from typing import Any

import numpy as np

from ..errors import ConfigError, ProtocolError
from .chunk import PredictionBlock

IN_PREFIX = "sg.in"
PART_PREFIX = "sg.part"
OUT_PREFIX = "sg.out"

_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_BLOCK = struct.Struct("<4sHHQII")
_BATCH_MAGIC = b"SGN1"
_PRED_MAGIC = b"SGP1"
_FORMAT_VERSION = 1
_MASK32 = 0xFFFFFFFF
OUTPUT_FORMATS = ("sgp1", "json")


# ------------------------------------------------------------------------------- names
def check_stream_id(stream_id: str) -> str:
    """Return ``stream_id`` if it is one NATS subject token ``[A-Za-z0-9_-]{1,64}``."""
    if not isinstance(stream_id, str) or not _ID_RE.match(stream_id):
        raise ConfigError(
            f"stream id: expected 1-64 characters of [A-Za-z0-9_-] (one NATS subject token), "
            f"got {stream_id!r}"
        )
    return stream_id


def fnv1a_32(data: bytes) -> int:
    """FNV-1a, 32 bits (Go's ``hash/fnv`` New32a), as nats-server's ``partition()`` uses it."""
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & _MASK32
    return h


def partition_of(stream_id: str, n_partitions: int) -> int:
    """Partition of a stream: ``fnv1a_32(id) % n``, equal to the server's ``partition(n,1)``."""
    if n_partitions < 1:
        raise ConfigError(f"partitions: expected an integer >= 1, got {n_partitions}")
    return fnv1a_32(stream_id.encode()) % n_partitions


def input_subject(stream_id: str) -> str:
    """``sg.in.<id>``: where a device publishes when the server maps partitions."""
    return f"{IN_PREFIX}.{check_stream_id(stream_id)}"


def partition_subject(stream_id: str, n_partitions: int) -> str:
    """``sg.part.<p>.<id>``: where a device publishes when it computes the partition itself."""
    return f"{PART_PREFIX}.{partition_of(stream_id, n_partitions)}.{check_stream_id(stream_id)}"


def output_subject(stream_id: str) -> str:
    """``sg.out.<id>``: where predictions for a stream go."""
    return f"{OUT_PREFIX}.{stream_id}"


def partition_mapping(n_partitions: int) -> dict[str, str]:
    """The nats-server ``mappings`` entry that partitions ``sg.in.*`` over n partitions."""
    dest = f"{PART_PREFIX}.{{{{partition({n_partitions},1)}}}}.{{{{wildcard(1)}}}}"
    return {f"{IN_PREFIX}.*": dest}


# ------------------------------------------------------------------------------- formats
def encode_batch(first_index: int, samples: Any) -> bytes:
    """One SGN1 message: ``samples`` (T, C) or (T,) in physical units from ``first_index``."""
    arr = np.asarray(samples, dtype="<f4")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 1 or not 1 <= arr.shape[1] <= 0xFFFF:
        raise ValueError(f"samples: expected shape (T >= 1, 1..65535), got {arr.shape}")
    if not 0 <= first_index < 1 << 64:
        raise ValueError(f"first_index: expected 0 <= index < 2**64, got {first_index}")
    header = _BLOCK.pack(_BATCH_MAGIC, _FORMAT_VERSION, arr.shape[1], first_index, arr.shape[0], 0)
    return header + np.ascontiguousarray(arr).tobytes()


def _decode_block(payload: bytes, magic: bytes, what: str) -> tuple[int, np.ndarray]:
    if len(payload) < _BLOCK.size:
        raise ProtocolError(f"{what}: {len(payload)} bytes, shorter than the 24-byte header")
    got, version, width, first, n, _ = _BLOCK.unpack_from(payload)
    if got != magic or version != _FORMAT_VERSION:
        raise ProtocolError(
            f"{what}: expected magic {magic!r} version {_FORMAT_VERSION} at offset 0, "
            f"got {got!r} version {version}"
        )
    size = _BLOCK.size + 4 * n * width
    if n < 1 or width < 1 or len(payload) != size:
        raise ProtocolError(
            f"{what}: {n} rows x {width} columns need {size} bytes, got {len(payload)}"
        )
    values = np.frombuffer(payload, dtype="<f4", offset=_BLOCK.size).reshape(n, width)
    return first, values.astype(np.float32)


def decode_batch(payload: bytes) -> tuple[int, np.ndarray]:
    """Parse an SGN1 message: ``(first_index, samples (T, C) float32)``."""
    return _decode_block(payload, _BATCH_MAGIC, "SGN1 batch")


def encode_predictions(block: PredictionBlock, fmt: str = "sgp1") -> bytes:
    """A prediction message in ``fmt`` ("sgp1" binary or "json")."""
    out = block.outputs
    if fmt == "json":
        obj = {
            "stream": block.stream_id,
            "first_index": int(block.first_index),
            "outputs": out.astype(np.float64).tolist(),
        }
        return json.dumps(obj, separators=(",", ":")).encode()
    if fmt != "sgp1":
        raise ConfigError(f"output format: expected one of {OUTPUT_FORMATS}, got {fmt!r}")
    header = _BLOCK.pack(
        _PRED_MAGIC, _FORMAT_VERSION, out.shape[1], block.first_index, out.shape[0], 0
    )
    return header + out.astype("<f4", copy=False).tobytes()


def decode_predictions(payload: bytes) -> tuple[int, np.ndarray]:
    """Parse a prediction message (SGP1 or JSON): ``(first_index, outputs (T, O) float32)``."""
    if payload[:1] == b"{":
        obj = json.loads(payload)
        return int(obj["first_index"]), np.asarray(obj["outputs"], dtype=np.float32)
    return _decode_block(payload, _PRED_MAGIC, "SGP1 predictions")
