"""SGB1 frames: one dataclass per frame type, their byte layouts, and an incremental decoder.

The byte layouts are those of ``firmware_bridge/PROTOCOL.md`` (little-endian everywhere). Every
payload starts with the 4-byte header ``u8 version | u8 type | u16 flags``; framing (COBS, CRC,
0x00 delimiter) lives in :mod:`streamgru.io.framing`.

>>> wire = encode(Ping(seq=7))
>>> Decoder().feed(wire)
[Ping(seq=7)]
"""

from __future__ import annotations

import dataclasses
import math
import struct
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..errors import ProtocolError
from .framing import MAX_PAYLOAD, Deframer, encode_payload
from .protocol_types import (
    STATUS_LEAD_OFF,
    STATUS_OVERRUN,
    STATUS_SATURATED,
    STATUS_TIME_SYNCED,
    VERSION,
    Ack,
    FrameType,
    GetInfo,
    Nack,
    NackReason,
    Ping,
    SampleFormat,
    Start,
    Status,
    Stop,
    TimeSync,
)

__all__ = [
    "STATUS_LEAD_OFF",
    "STATUS_OVERRUN",
    "STATUS_SATURATED",
    "STATUS_TIME_SYNCED",
    "VERSION",
    "Ack",
    "Data",
    "Decoder",
    "DecoderStats",
    "Event",
    "Frame",
    "FrameType",
    "GetInfo",
    "Hello",
    "Nack",
    "NackReason",
    "Ping",
    "SampleFormat",
    "Start",
    "Status",
    "Stop",
    "TimeSync",
    "decode_payload",
    "encode",
    "frame_payload",
]

_HEADER = struct.Struct("<BBH")


# --------------------------------------------------------------------------------------------
# small readers and writers


class _Reader:
    def __init__(self, payload: bytes) -> None:
        self.buf = payload
        self.pos = _HEADER.size

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.buf):
            raise ProtocolError(
                f"truncated {what}: need {n} bytes at offset {self.pos}, "
                f"payload has {len(self.buf)}"
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> tuple:
        st = struct.Struct("<" + fmt)
        return st.unpack(self.take(st.size, what))

    def string(self, what: str) -> str:
        (n,) = self.unpack("B", what + " length")
        return self.take(n, what).decode("utf-8", errors="replace")


def _string(text: str, what: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"{what} must be at most 255 UTF-8 bytes, got {len(raw)}")
    return bytes((len(raw),)) + raw


def _header(ftype: FrameType, flags: int = 0) -> bytes:
    return _HEADER.pack(VERSION, int(ftype), flags)


# --------------------------------------------------------------------------------------------
# device → host


@dataclass(frozen=True)
class Hello:
    """Who the device is and how to read its DATA frames.

    ``physical = (raw - baseline) / gain`` per channel. ``session`` changes when the device
    restarts (its sample index then starts again); a reconnect within one session keeps the index.
    """

    session: int
    fs_num: int
    fs_den: int
    sample_format: SampleFormat
    device_id: str
    firmware: str
    gain: tuple[float, ...]
    baseline: tuple[float, ...]
    units: tuple[str, ...]
    labels: tuple[str, ...]

    TYPE: ClassVar[FrameType] = FrameType.HELLO

    @property
    def n_channels(self) -> int:
        return len(self.gain)

    @property
    def fs(self) -> float:
        """Sample rate in Hz (``fs_num / fs_den``)."""
        return self.fs_num / self.fs_den

    def payload(self) -> bytes:
        n = len(self.gain)
        same = len(self.baseline) == len(self.units) == len(self.labels) == n
        if not same or not 1 <= n <= 255:
            raise ValueError(
                f"HELLO needs 1..255 channels with one gain, baseline, unit and label each; got "
                f"{n} gains, {len(self.baseline)} baselines, {len(self.units)} units, "
                f"{len(self.labels)} labels"
            )
        out = bytearray(_header(FrameType.HELLO))
        out += struct.pack(
            "<IIIBB", self.session, self.fs_num, self.fs_den, n, int(self.sample_format)
        )
        out += _string(self.device_id, "device_id") + _string(self.firmware, "firmware")
        for c in range(n):
            out += struct.pack("<ff", self.gain[c], self.baseline[c])
            out += _string(self.units[c], "unit") + _string(self.labels[c], "label")
        return bytes(out)

    @classmethod
    def parse(cls, r: _Reader, flags: int) -> Hello:
        session, num, den, n, fmt = r.unpack("IIIBB", "HELLO fields")
        if num == 0 or den == 0:
            raise ProtocolError(f"HELLO sample rate {num}/{den} must have non-zero terms")
        if n == 0:
            raise ProtocolError("HELLO declares 0 channels")
        try:
            sfmt = SampleFormat(fmt)
        except ValueError:
            raise ProtocolError(f"HELLO sample format {fmt} is not 1, 2 or 3") from None
        device_id = r.string("device_id")
        firmware = r.string("firmware")
        gain, baseline, units, labels = [], [], [], []
        for c in range(n):
            g, b = r.unpack("ff", f"channel {c} gain/baseline")
            if not (math.isfinite(g) and math.isfinite(b)) or g == 0.0:
                raise ProtocolError(
                    f"HELLO channel {c}: gain must be finite and non-zero and baseline finite, "
                    f"got gain={g}, baseline={b}"
                )
            gain.append(g)
            baseline.append(b)
            units.append(r.string(f"channel {c} unit"))
            labels.append(r.string(f"channel {c} label"))
        return cls(
            session,
            num,
            den,
            sfmt,
            device_id,
            firmware,
            tuple(gain),
            tuple(baseline),
            tuple(units),
            tuple(labels),
        )


@dataclass(frozen=True)
class Data:
    """A block of consecutive samples, interleaved by sample (s0c0, s0c1, ..., s1c0, ...).

    ``raw`` holds ``n_samples * n_channels * sample_format.size`` bytes; the format travels in the
    header flags (bits 0-1) so that every DATA frame's length is checked exactly.
    """

    first_index: int
    t_device_us: int
    n_samples: int
    n_channels: int
    status: int
    sample_format: SampleFormat
    raw: bytes = field(repr=False)

    TYPE: ClassVar[FrameType] = FrameType.DATA
    _FIELDS: ClassVar[struct.Struct] = struct.Struct("<IIBBH")

    def payload(self) -> bytes:
        size = self.n_samples * self.n_channels * self.sample_format.size
        if len(self.raw) != size:
            raise ValueError(f"DATA raw must be {size} bytes, got {len(self.raw)}")
        return (
            _header(FrameType.DATA, int(self.sample_format))
            + self._FIELDS.pack(
                self.first_index, self.t_device_us, self.n_samples, self.n_channels, self.status
            )
            + self.raw
        )

    @classmethod
    def parse(cls, r: _Reader, flags: int) -> Data:
        first, t_us, ns, nc, status = r.unpack("IIBBH", "DATA fields")
        try:
            sfmt = SampleFormat(flags & 0x3)
        except ValueError:
            raise ProtocolError(f"DATA flags {flags:#06x} carry no sample format") from None
        size = ns * nc * sfmt.size
        body = r.buf[r.pos :]
        if ns == 0 or nc == 0 or len(body) != size:
            raise ProtocolError(
                f"DATA with {ns} samples x {nc} channels of {sfmt.label} needs {size} sample "
                f"bytes at offset {r.pos}, got {len(body)}"
            )
        r.pos = len(r.buf)
        return cls(first, t_us, ns, nc, status, sfmt, bytes(body))

    def values(self) -> np.ndarray:
        """Raw values, shape (n_samples, n_channels): int32 for int16/int24, float32 for float32."""
        shape = (self.n_samples, self.n_channels)
        if self.sample_format is SampleFormat.INT16:
            return np.frombuffer(self.raw, dtype="<i2").astype(np.int32).reshape(shape)
        if self.sample_format is SampleFormat.FLOAT32:
            return np.frombuffer(self.raw, dtype="<f4").astype(np.float32).reshape(shape)
        b = np.frombuffer(self.raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        return v.astype(np.int32).reshape(shape)

    @classmethod
    def from_values(
        cls,
        first_index: int,
        t_device_us: int,
        values: np.ndarray,
        sample_format: SampleFormat | str,
        status: int = 0,
    ) -> Data:
        """Build a DATA frame from raw values of shape (n_samples, n_channels).

        Integer formats take values already rounded and inside the format's range (checked);
        float32 takes any finite or non-finite float.
        """
        sfmt = SampleFormat.parse(sample_format)
        v = np.asarray(values)
        if v.ndim != 2 or not (1 <= v.shape[0] <= 255 and 1 <= v.shape[1] <= 255):
            raise ValueError(f"DATA values must be (1..255, 1..255), got shape {v.shape}")
        if sfmt is SampleFormat.FLOAT32:
            raw = np.ascontiguousarray(v, dtype="<f4").tobytes()
        else:
            lo, hi = sfmt.limits
            iv = np.asarray(v, dtype=np.int64)
            if iv.size and (iv.min() < lo or iv.max() > hi):
                raise ValueError(f"{sfmt.label} values must lie in [{lo:.0f}, {hi:.0f}]")
            if sfmt is SampleFormat.INT16:
                raw = iv.astype("<i2").tobytes()
            else:
                u = (iv & 0xFFFFFF).astype("<u4").reshape(-1)
                trio = np.stack([u & 0xFF, (u >> 8) & 0xFF, u >> 16], axis=1)
                raw = trio.astype(np.uint8).tobytes()
        return cls(
            first_index & 0xFFFFFFFF,
            t_device_us & 0xFFFFFFFF,
            v.shape[0],
            v.shape[1],
            status,
            sfmt,
            raw,
        )


@dataclass(frozen=True)
class Event:
    """Something happened at a sample (button, lead-off, ...); ``text`` is free UTF-8."""

    sample_index: int
    code: int
    text: str = ""

    TYPE: ClassVar[FrameType] = FrameType.EVENT

    def payload(self) -> bytes:
        return (
            _header(FrameType.EVENT)
            + struct.pack("<IH", self.sample_index, self.code)
            + _string(self.text, "EVENT text")
        )

    @classmethod
    def parse(cls, r: _Reader, flags: int) -> Event:
        index, code = r.unpack("IH", "EVENT fields")
        return cls(index, code, r.string("EVENT text"))


Frame = Hello | Data | Status | Event | Ack | Nack | Start | Stop | GetInfo | Ping | TimeSync

_FIXED = (Status, Ack, Nack, Start, Stop, GetInfo, Ping, TimeSync)
_BY_TYPE: dict[int, type] = {
    int(cls.TYPE): cls
    for cls in (Hello, Data, Event, *_FIXED)  # type: ignore[attr-defined]
}


def frame_payload(frame: Frame) -> bytes:
    """The payload (header + fields, no CRC, not COBS-encoded) of ``frame``."""
    if isinstance(frame, _FIXED):
        values = [getattr(frame, f.name) for f in dataclasses.fields(frame)]
        return _header(frame.TYPE) + struct.pack("<" + frame._FMT, *values)
    payload = frame.payload()  # type: ignore[union-attr]
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(
            f"{frame.TYPE.name} payload is {len(payload)} bytes, more than {MAX_PAYLOAD}"
        )
    return payload


def encode(frame: Frame) -> bytes:
    """Wire bytes of ``frame``: ``COBS(payload ‖ CRC16-LE) ‖ 0x00``."""
    return encode_payload(frame_payload(frame))


def decode_payload(payload: bytes) -> Frame:
    """Parse one CRC-checked payload into its frame.

    Raises
    ------
    ProtocolError
        Wrong version, unknown type, or fields inconsistent with the length (offset named).
    """
    if len(payload) < _HEADER.size:
        raise ProtocolError(f"payload of {len(payload)} bytes is shorter than the 4-byte header")
    version, ftype, flags = _HEADER.unpack_from(payload)
    if version != VERSION:
        raise ProtocolError(f"protocol version {version} at offset 0, expected {VERSION}")
    cls = _BY_TYPE.get(ftype)
    if cls is None:
        raise ProtocolError(f"unknown frame type {ftype:#04x} at offset 1")
    r = _Reader(payload)
    if cls in _FIXED:
        return cls(*r.unpack(cls._FMT, cls.TYPE.name + " fields"))
    return cls.parse(r, flags)  # type: ignore[attr-defined]


@dataclass
class DecoderStats:
    """Running totals of a :class:`Decoder`.

    Attributes
    ----------
    frames : frames returned
    crc_errors : blocks whose CRC did not match
    malformed : blocks with bad COBS, too short, or a CRC-good payload whose fields do not fit
    unsupported : CRC-good frames of another protocol version or an unknown type
    oversize : runs longer than the largest frame without a 0x00
    bytes_discarded : bytes that were not part of a returned frame
    """

    frames: int = 0
    crc_errors: int = 0
    malformed: int = 0
    unsupported: int = 0
    oversize: int = 0
    bytes_discarded: int = 0


class Decoder:
    """Incremental SGB1 decoder: ``feed(bytes)`` split anywhere → complete, checked frames.

    Never raises on input bytes and never returns a frame that failed a check: the CRC, the
    COBS structure, the version, the type, and for DATA that ``n_samples * n_channels *
    sample size`` equals the sample bytes. After garbage it resynchronises at the next 0x00.
    Memory is bounded by the largest frame (:data:`streamgru.io.framing.MAX_ENCODED`).
    """

    def __init__(self) -> None:
        self._deframer = Deframer()
        self._rejected = DecoderStats()

    @property
    def stats(self) -> DecoderStats:
        f = self._deframer.stats
        r = self._rejected
        return DecoderStats(
            frames=f.frames - r.malformed - r.unsupported,
            crc_errors=f.crc_errors,
            malformed=f.malformed + r.malformed,
            unsupported=r.unsupported,
            oversize=f.oversize,
            bytes_discarded=f.bytes_discarded + r.bytes_discarded,
        )

    @property
    def pending(self) -> int:
        """Bytes of a partial frame held (never more than ``MAX_ENCODED``)."""
        return self._deframer.pending

    def reset(self) -> None:
        """Drop any partial frame (e.g. after a reconnect); the totals are kept."""
        self._deframer.reset()

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Consume ``data`` and return the frames it completed, in arrival order."""
        frames: list[Frame] = []
        for payload, wire_len in self._deframer.feed(data):
            try:
                frames.append(decode_payload(payload))
            except ProtocolError:
                version, ftype = payload[0], payload[1]
                if version != VERSION or ftype not in _BY_TYPE:
                    self._rejected.unsupported += 1
                else:
                    self._rejected.malformed += 1
                self._rejected.bytes_discarded += wire_len
        return frames
