"""SGB1 vocabulary: the protocol version, frame types, sample formats, NACK reasons, DATA status
bits, and the fixed-layout frames (STATUS, ACK, NACK and the host commands), each a struct format
``_FMT`` after the 4-byte header. Re-exported by :mod:`streamgru.io.protocol`, which holds the
variable-length frames, the codec and the decoder (``firmware_bridge/PROTOCOL.md``).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import ClassVar

#: Protocol version carried in every header; frames of another version are counted and dropped.
VERSION = 1


class FrameType(enum.IntEnum):
    """Frame type codes; the high bit marks host → device commands."""

    HELLO = 0x01
    DATA = 0x02
    STATUS = 0x03
    EVENT = 0x04
    ACK = 0x05
    NACK = 0x06
    START = 0x81
    STOP = 0x82
    GET_INFO = 0x83
    PING = 0x84
    TIME_SYNC = 0x85


class SampleFormat(enum.IntEnum):
    """Wire format of one raw sample value (little-endian)."""

    INT16 = 1
    INT24 = 2
    FLOAT32 = 3

    @property
    def size(self) -> int:
        """Bytes per value: 2, 3 or 4."""
        return {1: 2, 2: 3, 3: 4}[int(self)]

    @property
    def label(self) -> str:
        """``"int16"``, ``"int24"`` or ``"float32"``."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int | SampleFormat) -> SampleFormat:
        """Accept ``"int16"``/``"int24"``/``"float32"``, a code or a member."""
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                raise ValueError(
                    f"sample format must be int16, int24 or float32, got {value!r}"
                ) from None
        return cls(int(value))

    @property
    def limits(self) -> tuple[float, float]:
        """Smallest and largest raw value."""
        if self is SampleFormat.INT16:
            return -32768.0, 32767.0
        if self is SampleFormat.INT24:
            return -8388608.0, 8388607.0
        return -math.inf, math.inf


class NackReason(enum.IntEnum):
    """Why a device refused a command."""

    UNKNOWN_TYPE = 1
    BAD_LENGTH = 2
    BAD_VERSION = 3
    INVALID_STATE = 4


#: DATA ``status`` bits (informational; the sample index is the authority on loss).
STATUS_OVERRUN = 0x0001  # the device dropped samples just before this frame
STATUS_LEAD_OFF = 0x0002
STATUS_SATURATED = 0x0004
STATUS_TIME_SYNCED = 0x0008


@dataclass(frozen=True)
class Status:
    """Device health: counters since boot and the fill of its sample buffer."""

    uptime_ms: int
    overrun_samples: int
    dropped_frames: int
    buffer_used: int
    buffer_size: int

    TYPE: ClassVar[FrameType] = FrameType.STATUS
    _FMT: ClassVar[str] = "IIIHH"


@dataclass(frozen=True)
class Ack:
    """A command was done; ``t_device_us`` is the device clock when it was handled."""

    command: int
    seq: int
    t_device_us: int

    TYPE: ClassVar[FrameType] = FrameType.ACK
    _FMT: ClassVar[str] = "BHI"


@dataclass(frozen=True)
class Nack:
    """A command was refused (see :class:`NackReason`)."""

    command: int
    seq: int
    reason: int

    TYPE: ClassVar[FrameType] = FrameType.NACK
    _FMT: ClassVar[str] = "BHB"


# --------------------------------------------------------------------------------------------
# host → device


@dataclass(frozen=True)
class Start:
    """Start sending DATA (the sample index keeps counting while stopped)."""

    seq: int = 0
    TYPE: ClassVar[FrameType] = FrameType.START
    _FMT: ClassVar[str] = "H"


@dataclass(frozen=True)
class Stop:
    """Stop sending DATA."""

    seq: int = 0
    TYPE: ClassVar[FrameType] = FrameType.STOP
    _FMT: ClassVar[str] = "H"


@dataclass(frozen=True)
class GetInfo:
    """Ask for a HELLO."""

    seq: int = 0
    TYPE: ClassVar[FrameType] = FrameType.GET_INFO
    _FMT: ClassVar[str] = "H"


@dataclass(frozen=True)
class Ping:
    """Ask for an ACK (liveness, round trip)."""

    seq: int = 0
    TYPE: ClassVar[FrameType] = FrameType.PING
    _FMT: ClassVar[str] = "H"


@dataclass(frozen=True)
class TimeSync:
    """The host's clock in microseconds; the device ACKs with its own clock."""

    seq: int = 0
    host_time_us: int = 0
    TYPE: ClassVar[FrameType] = FrameType.TIME_SYNC
    _FMT: ClassVar[str] = "HQ"
