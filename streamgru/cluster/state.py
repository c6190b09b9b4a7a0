"""One stream's state in the cluster: the ``SGC1`` blob (:func:`pack_state`) and :class:`StreamProcessor`.

No NATS here: a Kafka consumer could drive :class:`StreamProcessor` the same way.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import numpy as np

from ..daemon.policies import GapPolicy, NanPolicy
from ..errors import ConfigError, ShapeError, SnapshotError
from ..io.chunk import PredictionBlock
from ..io.nats_io import (
    InputDecoder,
)
from .settings import ClusterConfig

_STATE = struct.Struct("<4sHHQIII")


_STATE_MAGIC = b"SGC1"


_STATE_VERSION = 1


# ------------------------------------------------------------------------------- state record
def pack_state(
    last_seq: int, meta: dict[str, Any], filter_blob: bytes, stepper_blob: bytes
) -> bytes:
    """One stream's state as bytes (the value of ``s.<id>`` in ``sg_state``).

    Layout (little-endian)::

        0   4s   magic b"SGC1"
        4   u16  version (1)
        6   u16  reserved (0)
        8   u64  last_seq: SG_IN sequence of the last message in this state
        16  u32  len(meta), u32 len(filter), u32 len(stepper)
        28  meta JSON (decoder, policies, counters), filter snapshot (may be empty),
            Stepper.snapshot(), then u32 CRC-32 of everything before it
    """
    meta_raw = json.dumps(meta, separators=(",", ":")).encode()
    body = (
        _STATE.pack(
            _STATE_MAGIC,
            _STATE_VERSION,
            0,
            last_seq,
            len(meta_raw),
            len(filter_blob),
            len(stepper_blob),
        )
        + meta_raw
        + filter_blob
        + stepper_blob
    )
    return body + struct.pack("<I", zlib.crc32(body))


def unpack_state(blob: bytes) -> tuple[int, dict[str, Any], bytes, bytes]:
    """Check and split :func:`pack_state` bytes: ``(last_seq, meta, filter, stepper)``."""
    blob = bytes(blob)
    if len(blob) < _STATE.size + 4:
        raise SnapshotError(f"stream state: {len(blob)} bytes, expected at least {_STATE.size + 4}")
    magic, version, _, last_seq, n_meta, n_filter, n_step = _STATE.unpack_from(blob)
    if magic != _STATE_MAGIC or version != _STATE_VERSION:
        raise SnapshotError(
            f"stream state: expected {_STATE_MAGIC!r} v{_STATE_VERSION}, got {magic!r} v{version}"
        )
    end = _STATE.size + n_meta + n_filter + n_step
    if len(blob) != end + 4 or struct.unpack_from("<I", blob, end)[0] != zlib.crc32(blob[:end]):
        raise SnapshotError(f"stream state: length or CRC mismatch ({len(blob)} bytes)")
    a = _STATE.size
    meta = json.loads(blob[a : a + n_meta])
    a += n_meta
    return last_seq, meta, blob[a : a + n_filter], blob[a + n_filter : end]


# ------------------------------------------------------------------------------- one stream
class StreamProcessor:
    """One stream's whole path: message bytes → decoder → gap/NaN policy → filter → GRU → blocks.

    Pure (no NATS): :meth:`process` takes a message and its SG_IN sequence, :meth:`snapshot` /
    :meth:`restore` carry everything (decoder index and calibration, filter ``zi``, GRU hidden
    state, NaN hold values, ``last_seq``) so that a restored processor continues bit for bit.
    """

    def __init__(
        self, stream_id: str, model: Any, filter_template: Any, cfg: ClusterConfig
    ) -> None:
        self.stream_id = stream_id
        self.stepper = model.stepper()
        self.filter = None if filter_template is None else filter_template.copy()
        self.decoder = InputDecoder()
        fs = filter_template.fs if filter_template is not None and filter_template.fs else None
        fs = fs or model.fs or 0.0
        self.gaps = GapPolicy.from_seconds(cfg.gap_policy, cfg.gap_fill_max_s, fs)
        self.nans = NanPolicy(cfg.nan_policy, model.input_size)
        self.last_seq = 0
        self.revision = 0  # KV revision of s.<id> this state was read from / written as
        self.bad_chunks = 0
        self.nan_samples = 0

    def reset_state(self) -> None:
        """Start the filter and the GRU afresh (gap or NaN policy ``reset``)."""
        self.stepper.reset()
        if self.filter is not None:
            self.filter.reset()

    def _run(self, X: np.ndarray) -> np.ndarray:
        if self.filter is not None:
            X = self.filter.process(X)
        return self.stepper.step_chunk(X)

    def process(self, payload: bytes, seq: int, t_host: float = 0.0) -> list[PredictionBlock]:
        """Run one input message (SG_IN sequence ``seq``); returns its prediction blocks."""
        blocks = []
        for chunk in self.decoder.feed(payload, t_host):
            if chunk.samples.shape[1] != self.stepper.input_size:
                self.bad_chunks += 1
                continue
            decision = self.gaps.decide(chunk.gap_before, chunk.restarted)
            if decision.action == "reset":
                self.reset_state()
            elif decision.action == "fill":
                self._run(np.tile(self.nans.last, (decision.fill, 1)))
            runs, bad = self.nans.sanitize(chunk.samples)
            self.nan_samples += bad
            for k, (offset, X) in enumerate(runs):
                if self.nans.name == "reset" and (k > 0 or offset > 0):
                    self.reset_state()
                try:
                    Y = self._run(X)
                except (ShapeError, ValueError):
                    self.bad_chunks += 1
                    continue
                first = chunk.first_index + offset
                blocks.append(PredictionBlock(self.stream_id, first, t_host, Y))
        self.last_seq = seq
        return blocks

    def snapshot(self) -> bytes:
        meta = {
            "stream": self.stream_id,
            "decoder": self.decoder.to_dict(),
            "nan_last": self.nans.snapshot(),
            "bad_chunks": self.bad_chunks,
            "nan_samples": self.nan_samples,
        }
        fblob = b"" if self.filter is None else self.filter.snapshot()
        return pack_state(self.last_seq, meta, fblob, self.stepper.snapshot())

    def restore(self, blob: bytes) -> None:
        """Restore :meth:`snapshot` bytes (the decoder first: a new model keeps the index)."""
        last_seq, meta, fblob, sblob = unpack_state(blob)
        self.decoder = InputDecoder.from_dict(meta["decoder"])
        self.last_seq = last_seq
        self.bad_chunks = int(meta.get("bad_chunks", 0))
        self.nan_samples = int(meta.get("nan_samples", 0))
        self.nans.restore(meta["nan_last"])
        if self.filter is not None and fblob:
            self.filter.restore(fblob)
        self.stepper.restore(sblob)


# ------------------------------------------------------------------------------- entry points
def build_filter(cfg: ClusterConfig, model: Any) -> Any:
    """The FilterChain template for every stream (None for no filter)."""
    from ..signal.chain import FilterChain

    if cfg.filter == "none":
        return None
    if cfg.filter == "model":
        spec = model.meta_json("filter")
        return None if not spec else FilterChain.from_dict(spec)
    fs = cfg.fs or model.fs
    if not fs:
        raise ConfigError(f"fs: filter preset {cfg.filter!r} needs --fs (the model has no fs)")
    return FilterChain.preset(cfg.filter, fs=fs, mains=cfg.mains, n_channels=model.input_size)
