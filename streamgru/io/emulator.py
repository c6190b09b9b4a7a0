"""A device emulator on the host: speaks SGB1 like the firmware, injects faults on request.

It samples a synthetic signal (``kind``: ecg, sine, noise) or a recording (``record``: .npy,
.csv, WFDB), quantises it to the wire format (``raw = round(x * gain + baseline)``, clipped),
and sends HELLO, DATA, ACK/NACK frames; it answers START, STOP, GET_INFO, PING and TIME_SYNC.
Its sample clock runs from boot like the firmware's timer: samples taken while stopped or
disconnected are lost, and the host sees the gap in the index.

Use it

* in process: ``Emulator(...).stream_bytes()`` (all wire bytes of a run, no pacing) or
  ``frames()``; ``start_tcp()`` / ``start_pty()`` serve it from a thread;
* blocking: ``serve_tcp(host, port)``, ``serve_pty(link=None)``, ``serve_stdout()``;
* from the command line: ``streamgru simulate`` (:mod:`streamgru.io.emulator_cli`).

Settings: :class:`EmulatorConfig`; what it injects and counts: :mod:`streamgru.io.emulator_report`.

Faults (all counted in :attr:`Emulator.report`; a fault never touches HELLO, ACK or NACK):

* ``drop_every=N``: every N-th DATA frame is not sent;
* ``flip_every=N``: every N-th DATA frame has one byte changed (never into 0x00);
* ``garbage_every=N``: 1..32 random non-zero bytes and a 0x00 go out before every N-th frame;
* ``pause_at=(S, seconds)``: at sample S the output stalls (nothing lost: sent late, in a burst);
* ``disconnect_at=(S, seconds)``: at sample S the link closes (TCP, pty) and comes back after the
  wait; samples taken meanwhile are lost (at ``speed=0`` the clock jumps ``seconds * fs``).

Sample positions S count from 0 at boot (the device index minus ``start_index``). The report's
``expected`` block is what a host that saw every delivered byte must count: gaps, samples lost,
rejected frames and discarded bytes.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .assembler import to_physical
from .emulator_report import EmulatorReport, Expected, Faults, Packet
from .emulator_signal import make_signal, rational
from .emulator_threads import Serving
from .protocol import (
    STATUS_SATURATED,
    Ack,
    Data,
    Decoder,
    Frame,
    GetInfo,
    Hello,
    Nack,
    NackReason,
    Ping,
    SampleFormat,
    Start,
    Stop,
    TimeSync,
    encode,
)

__all__ = [
    "DEFAULT_GAIN",
    "Emulator",
    "EmulatorConfig",
    "EmulatorReport",
    "Expected",
    "Faults",
    "Packet",
    "parse_at",
]

_MASK = 0xFFFFFFFF

#: Default gain (counts per unit) by wire format, for synthetic signals and npy/csv records.
DEFAULT_GAIN = {SampleFormat.INT16: 1000.0, SampleFormat.INT24: 100000.0, SampleFormat.FLOAT32: 1.0}


@dataclass(frozen=True)
class EmulatorConfig:
    """The settings of an :class:`Emulator` (``streamgru simulate``'s signal and fault options).

    Attributes
    ----------
    kind : "ecg", "sine" or "noise" (ignored when ``record`` is given)
    record : path of a .npy, .csv or WFDB record to play instead (``loop`` repeats it)
    fs : sample rate (Hz); required for .npy/.csv, taken from a WFDB header, else 250
    channels : channel count (synthetic signals)
    sample_format : "int16", "int24" or "float32"
    gain, baseline : raw = round(x * gain + baseline); gain defaults to the WFDB header's, else
        1000 (int16), 100000 (int24), 1 (float32)
    seed : synthetic signal and fault RNG seed
    speed : 1 real time, 10 ten times faster, 0 as fast as the link takes it
    duration : seconds of signal, then the run ends (None: endless, or the record's length)
    frame_samples : samples per DATA frame (default fs/50, at most what fits 1024 bytes)
    autostart : stream from boot (else wait for START)
    start_index : device index of the first sample (e.g. near 2**32 to test wrap-around)
    faults : :class:`Faults` (None: none)
    session : HELLO session (default: derived from seed)
    loop : repeat the record
    device_id : the HELLO's device id
    """

    kind: str = "ecg"
    record: str | Path | None = None
    fs: float | None = None
    channels: int = 1
    sample_format: str = "int16"
    gain: float | None = None
    baseline: float = 0.0
    seed: int = 0
    speed: float = 1.0
    duration: float | None = None
    frame_samples: int | None = None
    autostart: bool = True
    start_index: int = 0
    faults: Faults | None = None
    session: int | None = None
    loop: bool = False
    device_id: str = "streamgru-emulator"


class Emulator(Serving):
    """An SGB1 device on the host.

    ``Emulator(config)`` with an :class:`EmulatorConfig`, or ``Emulator(**settings)`` with its
    fields as keywords (``Emulator(kind="sine", fs=100, speed=0)``); keywords given with a
    config replace its fields.
    """

    def __init__(self, config: EmulatorConfig | None = None, /, **settings: Any) -> None:
        c = replace(config or EmulatorConfig(), **settings)
        self.settings = c
        self.config = dict(
            kind=c.kind,
            record=c.record,
            fs=c.fs,
            channels=c.channels,
            sample_format=c.sample_format,
            gain=c.gain,
            baseline=c.baseline,
            seed=c.seed,
            loop=c.loop,
        )
        self.format = SampleFormat.parse(c.sample_format)
        if c.speed < 0:
            raise ConfigError(f"speed must be >= 0, got {c.speed}")
        self.speed = float(c.speed)
        self.faults = c.faults or Faults()
        self.autostart = c.autostart
        self.report = EmulatorReport()
        self.stop_event = threading.Event()
        self._signal, info = make_signal(self.config)
        self.fs = info["fs"]
        self.hello, gains, bases = self._hello(c, info)
        self._gain = np.array(gains)
        self._baseline = np.array(bases)
        n_ch = info["channels"]
        max_fit = (1024 - 16) // (n_ch * self.format.size)
        if max_fit < 1:
            raise ConfigError(f"{n_ch} channels of {self.format.label} do not fit one frame")
        fsamp = c.frame_samples or max(1, round(self.fs / 50))
        self.frame_samples = int(min(fsamp, max_fit, 255))
        if c.duration is not None:
            self.total = round(c.duration * self.fs)
        else:
            self.total = info["length"] if not c.loop else None
        self.start_index = int(c.start_index) & _MASK
        self.ticks = 0  # samples taken since boot
        self.streaming = c.autostart
        self.away = False  # disconnected by a fault: samples taken now are lost
        self._fault_tick = -1
        self._frames = 0  # DATA frames built (fault counter)
        self._block: list[np.ndarray] = []
        self._block_n = 0
        self._block_first = 0
        self._rng = random.Random(c.seed)
        self._probe = Decoder()

    def _hello(self, c: EmulatorConfig, info: dict) -> tuple[Hello, tuple, tuple]:
        """The HELLO this device announces (rate, format, per-channel gain and baseline), and
        the gains and baselines (float32-exact floats, one per channel)."""
        from .. import __version__

        n_ch = info["channels"]
        gain = c.gain
        if gain is None:
            gain = info["gain"] if info["gain"] is not None else DEFAULT_GAIN[self.format]
            base = info["baseline"] if info["gain"] is not None else (c.baseline,) * n_ch
        else:
            base = (c.baseline,) * n_ch
        gains = tuple(float(np.float32(g)) for g in np.broadcast_to(gain, (n_ch,)))
        bases = tuple(float(np.float32(b)) for b in np.broadcast_to(base, (n_ch,)))
        if not all(math.isfinite(g) and g != 0 for g in gains):
            raise ConfigError(f"gain must be finite and non-zero, got {gain}")
        num, den = rational(self.fs)
        hello = Hello(
            session=(c.session if c.session is not None else (0x5E55_0000 + c.seed) & _MASK),
            fs_num=num,
            fs_den=den,
            sample_format=self.format,
            device_id=c.device_id,
            firmware=f"streamgru-emulator {__version__}",
            gain=gains,
            baseline=bases,
            units=info["units"],
            labels=info["labels"],
        )
        return hello, gains, bases

    # -- signal ---------------------------------------------------------------------------------

    @property
    def n_channels(self) -> int:
        return self.hello.n_channels

    def _quantise(self, x: np.ndarray) -> np.ndarray:
        y = x * self._gain + self._baseline
        if self.format is SampleFormat.FLOAT32:
            return y.astype(np.float32)
        lo, hi = self.format.limits
        y = np.where(np.isfinite(y), np.rint(y), lo)
        clipped = (y < lo) | (y > hi)
        self.report.samples_saturated += int(clipped.any(axis=1).sum())
        return np.clip(y, lo, hi).astype(np.int64)

    def reference(self, n: int) -> np.ndarray:
        """The first ``n`` samples a host must receive, in physical units, (n, C) float32.

        Made from a fresh copy of the signal, so it does not disturb this emulator.
        """
        signal, _ = make_signal(self.config)
        raw = self._quantise_pure(signal(n))
        return to_physical(raw, self._gain, self._baseline)

    def _quantise_pure(self, x: np.ndarray) -> np.ndarray:
        saved = self.report.samples_saturated
        try:
            return self._quantise(x)
        finally:
            self.report.samples_saturated = saved

    def device_index(self, tick: int) -> int:
        """The 32-bit device index of sample ``tick`` (counted from boot)."""
        return (self.start_index + tick) & _MASK

    def device_time_us(self, tick: int | None = None) -> int:
        """The device clock (µs since boot) at sample ``tick`` (default: now), 32 bits."""
        t = self.ticks if tick is None else tick
        return int(t * 1e6 / self.fs) & _MASK

    # -- frames ---------------------------------------------------------------------------------

    def advance(self, n: int, send: bool) -> list[Packet]:
        """Take ``n`` samples. With ``send`` they go into DATA frames (returned, faults applied);
        without, they are lost (stopped or disconnected; counted)."""
        if self.total is not None:
            n = min(n, self.total - self.ticks)
        if n <= 0:
            return []
        raw = self._quantise(self._signal(n))
        self.report.samples_generated += n
        out: list[Packet] = []
        if not send:
            out += self.flush()
            if self.away:
                self.report.samples_lost_disconnected += n
            elif not self.streaming:
                self.report.samples_stopped += n
            else:
                self.report.samples_unsent += n
            self.ticks += n
            for p in out:
                self.commit(p, delivered=False)
            return []
        pos = 0
        while pos < n:
            if self._block_n == 0:
                self._block_first = self.ticks + pos
            take = min(n - pos, self.frame_samples - self._block_n)
            self._block.append(raw[pos : pos + take])
            self._block_n += take
            pos += take
            if self._block_n == self.frame_samples:
                out += self._emit()
        self.ticks += n
        return out

    def flush(self) -> list[Packet]:
        """Close the partial DATA frame, if any."""
        return self._emit() if self._block_n else []

    def _emit(self) -> list[Packet]:
        values = np.concatenate(self._block)
        n, first_tick = self._block_n, self._block_first
        self._block, self._block_n = [], 0
        self._frames += 1
        k = self._frames
        self.report.frames_generated += 1
        lo, hi = self.format.limits
        status = STATUS_SATURATED if (np.any(values <= lo) or np.any(values >= hi)) else 0
        first = self.device_index(first_tick)
        frame = Data.from_values(
            first, self.device_time_us(first_tick), values, self.format, status=status
        )
        f = self.faults
        out: list[Packet] = []
        if f.garbage_every and k % f.garbage_every == 0:
            out.append(Packet(self._garbage(), "garbage"))
        if f.drop_every and k % f.drop_every == 0:
            self.commit(Packet(b"", "dropped", first, n), delivered=False)
        elif f.flip_every and k % f.flip_every == 0:
            out.append(Packet(self._flip(encode(frame)), "flipped", first, n))
        else:
            out.append(Packet(encode(frame), "data", first, n))
        return out

    def _garbage(self) -> bytes:
        while True:
            junk = bytes(self._rng.randrange(1, 256) for _ in range(self._rng.randrange(1, 33)))
            if not self._probe.feed(junk + b"\x00"):
                return junk + b"\x00"

    def _flip(self, wire: bytes) -> bytes:
        while True:
            pos = self._rng.randrange(0, len(wire) - 1)
            b = wire[pos] ^ 0x5A or wire[pos] ^ 0xA5
            bad = wire[:pos] + bytes((b,)) + wire[pos + 1 :]
            if not self._probe.feed(bad):
                return bad

    def control(self, frame: Frame) -> Packet:
        """A HELLO, ACK or NACK packet (never faulted)."""
        if isinstance(frame, Hello):
            self.report.hello_sent += 1
        return Packet(encode(frame), "control")

    def commit(self, p: Packet, delivered: bool) -> None:
        """Account for a packet that went out (``delivered``) or could not."""
        r = self.report
        e = r.expected
        if p.kind == "dropped":
            r.frames_dropped += 1
            r.samples_dropped += p.n
        elif not delivered:
            if p.kind in ("data", "flipped"):
                r.frames_unsent += 1
                r.samples_unsent += p.n
        elif p.kind == "garbage":
            r.garbage_inserts += 1
            r.garbage_bytes += len(p.data)
            e.bad_frames += 1
            e.bytes_discarded += len(p.data)
        elif p.kind == "flipped":
            r.frames_flipped += 1
            r.samples_flipped += p.n
            e.bad_frames += 1
            e.bytes_discarded += len(p.data)
        elif p.kind == "data":
            r.frames_sent += 1
            r.samples_sent += p.n
            if e.end_index is None:
                e.first_index = p.first
            else:
                delta = (p.first - e.end_index) & _MASK
                if delta:
                    e.gaps += 1
                    e.samples_lost += delta
            e.end_index = (p.first + p.n) & _MASK
            e.samples += p.n

    # -- commands -------------------------------------------------------------------------------

    def handle(self, frame: Frame) -> list[Packet]:
        """Answer one host frame; returns the packets to send (and the partial DATA frame when
        a STOP closes it)."""
        name = type(frame).__name__
        self.report.commands[name] = self.report.commands.get(name, 0) + 1
        out: list[Packet] = []
        if isinstance(frame, GetInfo):
            return [self.control(self.hello)]
        if isinstance(frame, Start):
            self.streaming = True
        elif isinstance(frame, Stop):
            out += self.flush()
            self.streaming = False
        elif not isinstance(frame, (Ping, TimeSync)):
            self.report.nacks += 1
            cmd = int(frame.TYPE)
            return [self.control(Nack(cmd, 0, int(NackReason.INVALID_STATE)))]
        ack = Ack(int(frame.TYPE), frame.seq, self.device_time_us())
        return [*out, self.control(ack)]

    def nack_for(self, payload: bytes, reason: NackReason) -> Packet:
        """A NACK for a payload that did not parse."""
        self.report.nacks += 1
        cmd = payload[1] if len(payload) > 1 else 0
        seq = payload[4] | (payload[5] << 8) if len(payload) >= 6 else 0
        return self.control(Nack(cmd, seq, int(reason)))

    # -- non-interactive use --------------------------------------------------------------------

    def frames(self, n_samples: int | None = None) -> Iterator[bytes]:
        """Wire bytes of a run without a host or pacing: HELLO, then DATA (faults applied).

        ``n_samples`` (default: ``total``) bounds it. A pause is counted and skipped; a
        disconnect loses ``seconds * fs`` samples. START is implied.
        """
        end = n_samples if n_samples is not None else self.total
        if end is None:
            raise ConfigError("frames() of an endless emulator needs n_samples")
        if self.total is not None:
            end = min(end, self.total)
        p = self.control(self.hello)
        self.commit(p, True)
        yield p.data
        self.streaming = True
        while self.ticks < end:
            n = min(end - self.ticks, self.frame_samples - self._block_n)
            n = self.to_fault(n)
            for p in self.advance(n, True):
                self.commit(p, True)
                yield p.data
            _, disconnect = self.fault_here()
            if disconnect is not None:
                lost = self.jump_lost(disconnect)
                for p in self.flush():
                    self.commit(p, True)
                    yield p.data
                self.away = True
                self.advance(min(lost, end - self.ticks), False)
                self.away = False
        for p in self.flush():
            self.commit(p, True)
            yield p.data

    def stream_bytes(self, n_samples: int | None = None) -> bytes:
        """``b"".join(frames(n_samples))``."""
        return b"".join(self.frames(n_samples))

    def to_fault(self, n: int) -> int:
        """Shorten a step so that it stops at the next fault position."""
        for at in (self.faults.pause_at, self.faults.disconnect_at):
            if at is not None and self.ticks < at[0] < self.ticks + n:
                n = at[0] - self.ticks
        return n

    def fault_here(self) -> tuple[float | None, float | None]:
        """The pause and disconnect (seconds, or None) due at this sample, counted once."""
        if self._fault_tick == self.ticks:
            return None, None
        self._fault_tick = self.ticks
        pause = disconnect = None
        if self.faults.pause_at is not None and self.ticks == self.faults.pause_at[0]:
            self.report.pauses += 1
            pause = self.faults.pause_at[1]
        if self.faults.disconnect_at is not None and self.ticks == self.faults.disconnect_at[0]:
            self.report.disconnects += 1
            disconnect = self.faults.disconnect_at[1]
        return pause, disconnect

    def jump_lost(self, seconds: float) -> int:
        """Samples a disconnect of ``seconds`` loses when the clock is not paced (speed 0)."""
        return max(1, round(seconds * self.fs))

    @property
    def done(self) -> bool:
        """All ``total`` samples taken."""
        return self.total is not None and self.ticks >= self.total


def parse_at(text: str | None, what: str) -> tuple[int, float] | None:
    """``"SAMPLE:SECONDS"`` → (int, float)."""
    if not text:
        return None
    try:
        sample, seconds = text.split(":")
        out = (int(sample), float(seconds))
    except ValueError:
        raise ConfigError(f"{what} must be SAMPLE:SECONDS (e.g. 1000:0.5), got {text!r}") from None
    if out[0] < 0 or out[1] < 0:
        raise ConfigError(f"{what} must be non-negative, got {text!r}")
    return out
