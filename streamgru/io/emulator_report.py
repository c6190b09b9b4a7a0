"""What the device emulator (:mod:`streamgru.io.emulator`) injects, sends and counts.

:class:`Faults` (the faults to inject), :class:`EmulatorReport` (everything it did, with the
:class:`Expected` counts of a host that saw every delivered byte) and :class:`Packet` (bytes for
the wire with what they carry).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Faults:
    """Faults to inject (0 / None: off). See the module docstring."""

    drop_every: int = 0
    flip_every: int = 0
    garbage_every: int = 0
    pause_at: tuple[int, float] | None = None
    disconnect_at: tuple[int, float] | None = None


@dataclass
class Expected:
    """What a host that received every delivered byte must count."""

    gaps: int = 0
    samples_lost: int = 0
    bad_frames: int = 0  # crc_errors + malformed
    bytes_discarded: int = 0
    samples: int = 0  # samples delivered intact
    first_index: int | None = None  # device index of the first sample delivered intact
    end_index: int | None = None  # device index after the last sample delivered intact


@dataclass
class EmulatorReport:
    """Everything the emulator did, exactly (``to_dict()`` for JSON)."""

    samples_generated: int = 0
    frames_generated: int = 0
    frames_sent: int = 0
    samples_sent: int = 0
    frames_dropped: int = 0
    samples_dropped: int = 0
    frames_flipped: int = 0
    samples_flipped: int = 0
    garbage_inserts: int = 0
    garbage_bytes: int = 0
    pauses: int = 0
    disconnects: int = 0
    samples_lost_disconnected: int = 0
    frames_unsent: int = 0
    samples_unsent: int = 0
    samples_stopped: int = 0
    samples_saturated: int = 0
    hello_sent: int = 0
    connections: int = 0
    commands: dict[str, int] = field(default_factory=dict)
    nacks: int = 0
    expected: Expected = field(default_factory=Expected)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Packet:
    """Bytes for the wire plus what they carry, committed once delivered (or not)."""

    data: bytes
    kind: str  # "data", "flipped", "garbage", "dropped", "control"
    first: int = 0  # device index
    n: int = 0
