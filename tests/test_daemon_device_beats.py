"""Device-side beat events (SGB1 EVENT code 0x0101) in the daemon: logged, counted, and compared
beat by beat with the host's own BeatDetector decisions on the same stream."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import numpy as np
from test_daemon_helpers import REPO, stream_plan, wait_until

from streamgru.daemon.config import parse_config
from streamgru.daemon.daemon import Daemon
from streamgru.daemon.device_beats import (
    BEAT_EVENT_CODE,
    BeatComparison,
    EventTap,
    count,
    unwrap_u32,
)
from streamgru.daemon.metrics import StreamCounters
from streamgru.demo.record import read_record
from streamgru.io.chunk import Chunk, StreamInfo
from streamgru.io.protocol import Event

MODEL = REPO / "streamgru" / "data" / "weights" / "ecg_beats.safetensors"
FS = 360.0


def test_beats_pair_within_the_tolerance_and_the_rest_disagree():
    cmp = BeatComparison(tolerance=10, settle=100)
    assert cmp.add_host(50) == []  # before the first device beat: kept for a while ...
    verdicts = cmp.add_device(55)  # ... and paired with it
    assert [(v.kind, v.index, v.other) for v in verdicts] == [("agree", 55, 50)]
    verdicts = cmp.add_device(300) + cmp.add_host(309)  # 9 apart: agree
    verdicts += cmp.add_host(500) + cmp.add_device(520)  # 20 apart: two disagreements
    verdicts += cmp.add_device(700)
    assert count(verdicts) == (1, 0)
    assert cmp.settle_until(600) == []  # 500 and 520 are not more than 100 behind yet
    settled = cmp.settle_until(700)
    assert [(v.kind, v.index) for v in settled] == [("host only", 500), ("device only", 520)]
    final = cmp.settle_until(None)
    assert [(v.kind, v.index) for v in final] == [("device only", 700)]


def test_host_beats_before_the_device_sends_any_are_not_judged():
    cmp = BeatComparison(tolerance=10, settle=100)
    cmp.add_host(10)
    cmp.add_host(400)
    assert cmp.settle_until(1000) == []  # no device beat: nothing is compared
    assert cmp.add_device(1200) == [] and cmp.add_host(1000) == []  # before the start: ignored
    assert [v.kind for v in cmp.settle_until(None)] == ["device only"]


def test_the_tap_returns_each_new_event_once():
    events: deque = deque(maxlen=4)
    tap = EventTap()
    assert tap.take(events) == [] and tap.take(None) == []
    a, b, c = (Event(i, BEAT_EVENT_CODE) for i in range(3))
    events.extend([a, b])
    assert tap.take(events) == [a, b]
    events.append(c)
    assert tap.take(events) == [c] and tap.take(events) == []
    same = Event(2, BEAT_EVENT_CODE)  # equal to c, another frame: new
    events.append(same)
    assert tap.take(events) == [same] and tap.missed == 0
    burst = [Event(10 + i, BEAT_EVENT_CODE) for i in range(6)]  # more than the deque holds
    events.extend(burst)
    assert tap.take(events) == burst[-4:] and tap.missed == 1


def test_a_32_bit_event_index_is_unwrapped_near_the_stream():
    span = 1 << 32
    assert unwrap_u32(5, None) == 5
    assert unwrap_u32(100, 120) == 100
    assert unwrap_u32(span - 10, span + 20) == span - 10  # just before the wrap
    assert unwrap_u32(3, span - 5) == span + 3  # just after it
    assert unwrap_u32(7, 3 * span + 9) == 3 * span + 7


class FakeDevice:
    """A finite source: ``X`` in chunks, and EVENT frames appended to ``events`` once the data
    up to the sample they were decided at has been read (as a device sends them)."""

    def __init__(self, X: np.ndarray, beats: list[int], chunk: int = 180) -> None:
        self.info = StreamInfo(FS, 1, ("MLII",), ("mV",), device_id="fake")
        self.X, self.chunk, self.pos = X, chunk, 0
        self.pending = sorted(beats)
        self.events: deque = deque(maxlen=64)
        self.finished = False

    def read(self, timeout: float = 0.1):
        if self.pos >= self.X.shape[0]:
            self.finished = True
            return None
        samples = np.ascontiguousarray(self.X[self.pos : self.pos + self.chunk])
        chunk = Chunk(samples, self.pos, time.monotonic(), 0, False)
        self.pos += samples.shape[0]
        while self.pending and self.pending[0] + 72 < self.pos:  # decided 0.2 s later
            self.events.append(Event(self.pending.pop(0), BEAT_EVENT_CODE, "beat s=900"))
        if self.pos >= 360 and not getattr(self, "_button", False):
            self._button = True
            self.events.append(Event(100, 0x0002, "button"))  # not a beat: counted apart
        return chunk

    def close(self) -> None:
        pass


def host_beats(X: np.ndarray) -> list[int]:
    """The host's beats on X, as the daemon's pipeline decides them (one call)."""
    pipe = stream_plan(MODEL, filter="model", events=True).pipeline(StreamCounters())
    result = pipe.process([Chunk(X, 0, 0.0, 0, False)])
    return [int(e.index) for e in result.events]


def test_the_daemon_logs_counts_and_compares_device_beats():
    record = read_record("100")
    X = record.physical(542_000 + int(30 * FS))[542_000:, :1].astype(np.float32)
    H = host_beats(X)
    assert len(H) > 25
    # the device: every host beat but the first (not judged: before the device's first) and
    # the tenth (a host-only beat), plus one beat the host never decided (device only)
    spurious = H[15] + int(0.4 * FS)
    device = [b for k, b in enumerate(H[:-1]) if k not in (0, 10)] + [spurious]
    config = parse_config(
        {
            "stream": [
                {
                    "id": "ecg",
                    "source": "tcp://127.0.0.1:1",  # replaced by the fake below
                    "model": str(MODEL),
                    "filter": "model",
                    "events": True,
                    "sinks": [],
                }
            ],
            "metrics": {"enabled": False},
            "daemon": {"snapshot_interval_s": 0},
        }
    )
    daemon = Daemon(config, open_source=lambda uri: FakeDevice(X, device), configure_logging=False)
    runner = threading.Thread(target=daemon.run, daemon=True)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("streamgru.daemon")  # may not propagate (setup_logging)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        runner.start()
        runner.join(120)  # the fake device ends: the daemon stops by itself
        assert not runner.is_alive()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    c = daemon.streams["ecg"].counters
    assert c.beats == len(H)  # the host decided the same beats in the daemon as in one call
    assert c.device_beats == len(device) and c.device_events == 1
    # every device beat but the spurious one pairs with a host beat; the host's tenth, its last
    # (after the device's last) and the spurious one disagree; the host's first is not judged
    assert c.beats_agreed == len(device) - 1
    assert c.beats_disagreed == 3
    messages = [r.getMessage() for r in records]
    assert sum("beat disagreement" in m for m in messages) == c.beats_disagreed
    assert sum("device beat" in m for m in messages) == len(device)


def test_beat_events_from_a_real_sgb1_device_over_tcp(tmp_path):
    """The same through DeviceSource: an SGB1 stream (HELLO, DATA) with beat EVENTs between the
    DATA frames, served once over loopback TCP."""
    import socket

    from streamgru.io.emulator import Emulator
    from streamgru.io.protocol import encode

    emu = Emulator(kind="ecg", fs=FS, speed=0, duration=20, seed=1)
    frames = list(emu.frames())
    n = emu.report.expected.end_index
    H = host_beats(np.ascontiguousarray(emu.reference(n)[:, :1], dtype=np.float32))
    assert len(H) > 10
    device = H[1:]  # all but the first: every one agrees, nothing disagrees
    wire, k, end = [frames[0]], 0, 0
    for frame in frames[1:]:
        wire.append(frame)
        end += emu.frame_samples
        while k < len(device) and device[k] + 72 < end:
            wire.append(encode(Event(device[k], BEAT_EVENT_CODE, "beat s=900")))
            k += 1
    wire += [encode(Event(b, BEAT_EVENT_CODE, "beat s=900")) for b in device[k:]]
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"".join(wire))
            conn.settimeout(0.5)
            stop = time.monotonic() + 60
            while time.monotonic() < stop:  # until the host hangs up
                try:
                    if not conn.recv(4096):
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break

    threading.Thread(target=serve, daemon=True).start()
    host, port = server.getsockname()[:2]
    config = parse_config(
        {
            "stream": [
                {
                    "id": "dev",
                    "source": f"tcp://{host}:{port}",
                    "model": str(MODEL),
                    "filter": "model",
                    "events": True,
                    "sinks": [],
                }
            ],
            "metrics": {"enabled": False},
            "daemon": {"snapshot_interval_s": 0},
            "logging": {"level": "error"},
        }
    )
    daemon = Daemon(config, configure_logging=False)
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        wait_until(lambda: daemon.ready, 60, "the daemon to be ready")
        c = daemon.streams["dev"].counters
        wait_until(lambda: c.samples_out >= n and c.device_beats == len(device), 60, "every sample")
    finally:
        daemon.request_stop()
        runner.join(30)
        server.close()
    assert not runner.is_alive()
    assert c.beats == len(H) and c.device_beats == len(device) and c.device_events == 0
    assert (c.beats_agreed, c.beats_disagreed) == (len(device), 0)
