"""The processing thread reads running socket sources itself (streamgru.daemon.mux), and writes
sinks whose writes never wait (``inline``) itself, keeping order behind a lane's backlog."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
from test_daemon_helpers import tiny_model, wait_until

from streamgru.daemon.config import parse_config
from streamgru.daemon.daemon import Daemon
from streamgru.daemon.inbox import Inbox
from streamgru.daemon.metrics import LatencyRecorder, StreamCounters
from streamgru.daemon.mux import SourceMux
from streamgru.daemon.reader import ReaderSettings, SourceReader
from streamgru.daemon.writer import Item, SinkLane
from streamgru.io.chunk import PredictionBlock
from streamgru.io.emulator import Emulator
from streamgru.io.sinks import NullSink, plan_sink
from streamgru.io.sources import open_source

FS = 250.0


class _Recorder:
    """Sink factory: inline sinks that note the writing thread and each block's rows."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writes: list[tuple[str, int, int, int]] = []  # (stream, thread, first, n)
        outer = self

        class Sink(NullSink):
            def write(self, block: PredictionBlock) -> None:
                with outer.lock:
                    outer.writes.append(
                        (block.stream_id, threading.get_ident(), block.first_index, block.n_samples)
                    )
                super().write(block)

        self.sink_class = Sink

    def __call__(self, uri: str) -> NullSink:
        return self.sink_class(uri)


def _config(model, sources: dict[str, str]):
    return parse_config(
        {
            "stream": [
                {"id": sid, "source": uri, "model": str(model), "sinks": ["null://"]}
                for sid, uri in sources.items()
            ],
            "daemon": {"reconnect_initial_s": 0.05, "reconnect_max_s": 0.3},
            "metrics": {"enabled": False},
            "logging": {"level": "error"},
        }
    )


def test_socket_sources_run_on_the_processing_thread_and_go_back_when_lost(tmp_path):
    model = tiny_model(tmp_path / "m.safetensors", fs=FS)
    emus = [Emulator(kind="ecg", fs=FS, speed=4.0, seed=k) for k in range(2)]
    addresses = [e.start_tcp("127.0.0.1", 0) for e in emus]
    sources = {f"dev{k}": f"tcp://{h}:{p}" for k, (h, p) in enumerate(addresses)}
    sources["synth"] = f"synthetic://ecg?fs={FS:g}&speed=4"
    sinks = _Recorder()
    daemon = Daemon(_config(model, sources), open_sink=sinks, configure_logging=False, environ={})
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        wait_until(lambda: daemon.mux.sources == 2, 60, "both TCP sources in the mux")
        wait_until(
            lambda: all(rt.counters.samples_out > 500 for rt in daemon.streams.values()),
            30,
            "every stream to write",
        )
        # the null sink is inline: once its lane has opened it, the blocks are written on the
        # processing thread, whichever thread read its source (the mux for TCP, the reader
        # thread for the synthetic one). A block offered while the lane's thread holds the
        # sink (its flush after the queue it drained) waits on the lane, so: nearly all.
        with sinks.lock:
            recent = sinks.writes[-100:]
        here = [sid for sid, t, _first, _n in recent if t == runner.ident]
        assert len(here) >= 90 and set(here) == set(sources)
        # the first device goes away: its source goes back to its reader, which reconnects
        emus[0].stop()
        dev0 = daemon.streams["dev0"]
        wait_until(lambda: daemon.mux.sources == 1, 30, "the lost source to leave the mux")
        wait_until(
            lambda: not getattr(dev0.reader.source, "connected", True), 30, "the link to be down"
        )
        emus[0] = Emulator(kind="ecg", fs=FS, speed=4.0, seed=7)
        emus[0].start_tcp("127.0.0.1", addresses[0][1])
        before = dev0.counters.samples_out
        wait_until(lambda: daemon.mux.sources == 2, 30, "the reconnected source back in the mux")
        wait_until(lambda: dev0.counters.samples_out > before + 300, 30, "the device again")
        assert dev0.counters.restarts >= 1  # a new device session: a discontinuity
    finally:
        daemon.request_stop()
        runner.join(30)
        for e in emus:
            e.stop()
    assert not runner.is_alive()
    assert daemon.mux.closed and daemon.mux.sources == 0
    assert not any(rt.reader is not None and rt.reader.is_alive() for rt in daemon.streams.values())
    with sinks.lock:  # each stream's rows in order, none twice
        for sid in sources:
            firsts = [f for s, _t, f, _n in sinks.writes if s == sid]
            assert firsts == sorted(firsts) and len(set(firsts)) == len(firsts)


def test_a_reader_stopped_while_the_mux_reads_for_it_gets_its_source_back(tmp_path):
    emu = Emulator(kind="ecg", fs=FS, speed=4.0, seed=1)
    host, port = emu.start_tcp("127.0.0.1", 0)
    inbox = Inbox(64)
    inbox.add_stream("s")
    mux = SourceMux(inbox)
    inbox.set_waker(mux.wake)
    states: list[str] = []
    reader = SourceReader(
        "s",
        f"tcp://{host}:{port}",
        inbox,
        lambda info: None,
        StreamCounters(),
        states.append,
        ReaderSettings(open_source, backoff=(0.05, 0.2), mux=mux),
    )
    reader.start()
    taken: list = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (mux.sources == 0 or len(taken) < 20):
            mux.pump(mux.wait(0.05))  # this test's thread is the processing thread
            taken.extend(inbox.take_all(0.0).get("s", []))
        assert mux.sources == 1, "the running source was not offered to the mux"
        chunks = [c for c in taken if hasattr(c, "samples")]
        assert len(chunks) >= 10
        firsts = [c.first_index for c in chunks]
        assert firsts == sorted(firsts)
        src = reader.source
        assert isinstance(src.fileno(), int)
        reader.stop()  # from the processing thread: withdrawn at once, no pump needed
        assert mux.sources == 0
        reader.join(5.0)
        assert not reader.is_alive()
        assert src.closed and states[-1] == "stopped"
    finally:
        reader.stop()
        mux.close()
        emu.stop()


def _block(first: int, n: int = 4) -> PredictionBlock:
    Y = np.zeros((n, 1), np.float32)
    return PredictionBlock("s", first, time.monotonic(), Y)


def test_an_inline_sink_is_written_on_the_caller_only_behind_an_empty_queue():
    gate = threading.Event()
    written: list[tuple[int, int]] = []  # (first index, thread)

    class Sink(NullSink):
        def write(self, block: PredictionBlock) -> None:
            if block.first_index == 0:
                gate.wait(10)  # the lane's thread is stuck in the first write
            written.append((block.first_index, threading.get_ident()))

    lane = SinkLane(
        plan_sink("null://", 16),
        lambda uri: Sink(uri),
        (0.05, 0.1),
        time.monotonic,
        threading.Lock(),
    )
    lane.start()
    counters, recorder = StreamCounters(), LatencyRecorder()

    def offer(first: int) -> None:
        lane.offer([Item(_block(first), ("null://",), counters, recorder)])

    try:
        offer(0)  # the sink is not open yet: queued; the lane opens it and blocks in write
        wait_until(lambda: lane.slot.sink is not None and lane.depth == 0, 10, "the lane busy")
        offer(4)  # the lane is writing: queued behind it, not written here
        offer(8)
        assert [f for f, _t in written] == []
        gate.set()
        wait_until(lambda: len(written) == 3 and lane.depth == 0, 10, "the backlog written")
        offer(12)  # nothing queued, nobody writing: written here, at once
        assert written[-1] == (12, threading.get_ident())
    finally:
        gate.set()
        lane.stop()
        lane.join(10)
    assert [f for f, _t in written] == [0, 4, 8, 12]
    assert {t for f, t in written if f < 12} == {lane.ident}
    assert counters.samples_out == 16 and counters.dropped_output == 0


@pytest.mark.parametrize("inline", [False, True])
def test_a_sink_that_may_block_stays_on_its_lane(inline):
    class Sink(NullSink):
        pass

    Sink.inline = inline
    threads: list[int] = []

    class Recording(Sink):
        def write(self, block: PredictionBlock) -> None:
            threads.append(threading.get_ident())

    lane = SinkLane(
        plan_sink("null://", 16), Recording, (0.05, 0.1), time.monotonic, threading.Lock()
    )
    lane.start()
    try:
        counters, recorder = StreamCounters(), LatencyRecorder()
        for k in range(3):
            lane.offer([Item(_block(4 * k), ("null://",), counters, recorder)])
            wait_until(lambda k=k: len(threads) == k + 1, 10, "the block written")
    finally:
        lane.stop()
        lane.join(10)
    # the first block opens the sink on the lane; after it, only an inline sink is written here
    assert threads[0] == lane.ident
    assert set(threads[1:]) == ({threading.get_ident()} if inline else {lane.ident})


class _Capture(_Recorder):
    """Also keeps every block's rows and outputs, by stream."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[tuple[int, np.ndarray]]] = {}
        self._hold: tuple[Callable[[], bool], Callable[[], bool]] | None = None
        self._hold_thread = 0
        outer = self
        base = self.sink_class

        class Sink(base):  # type: ignore[misc, valid-type]
            def write(self, block: PredictionBlock) -> None:
                outer._wait_once()
                with outer.lock:
                    outer.rows.setdefault(block.stream_id, []).append(
                        (block.first_index, block.outputs.copy())
                    )
                super().write(block)

        self.sink_class = Sink

    def hold_once(self, when: Callable[[], bool], until: Callable[[], bool]) -> None:
        """Make the first write on this thread (where the daemon's loop will run) made while
        ``when()`` is true wait, at most 10 s, until ``until()`` is true. A write on a sink
        lane's thread never waits: the loop goes on draining the inbox meanwhile."""
        self._hold = (when, until)
        self._hold_thread = threading.get_ident()

    def _wait_once(self) -> None:
        hold = self._hold
        if hold is None or threading.get_ident() != self._hold_thread or not hold[0]():
            return
        self._hold = None
        deadline = time.monotonic() + 10.0
        while not hold[1]() and time.monotonic() < deadline:
            time.sleep(0.002)


def test_the_daemon_runs_a_model_once_a_round_for_all_its_streams_bit_for_bit(tmp_path):
    """Three streams of one model through the daemon, two with its ECG filter (one stack, a
    filter state per row), one without (a stack of its own): one compiled call a round per
    stack, and each stream's outputs exactly those of its own Stepper over the same samples."""
    from test_daemon_helpers import offline_outputs

    from streamgru.signal.chain import FilterChain

    model = tiny_model(tmp_path / "m.safetensors", fs=FS, channels=1)
    uris = {f"s{k}": f"synthetic://ecg?fs={FS:g}&speed=8&duration=6&seed={k}" for k in range(3)}
    filters = {"s0": "ecg-monitor", "s1": "ecg-monitor", "s2": "none"}
    doc = {
        "stream": [
            {
                "id": sid,
                "source": uri,
                "model": str(model),
                "filter": filters[sid],
                "sinks": ["null://"],
            }
            for sid, uri in uris.items()
        ],
        "metrics": {"enabled": False},
        "logging": {"level": "error"},
    }
    sinks = _Capture()
    daemon = Daemon(parse_config(doc), open_sink=sinks, configure_logging=False, environ={})
    # A fast machine may finish each block before the next one arrives, so that no round
    # ever holds two streams. So once both filtered streams are open (their "opened" events
    # handled: an event in a stream's arrivals flushes the round before it), a write on the
    # processing thread waits, bounded, until both have blocks queued: the next round is sure
    # to run them in one call.
    filtered = ("s0", "s1")
    sinks.hold_once(
        when=lambda: all(daemon.streams[s].info is not None for s in filtered),
        until=lambda: all(daemon.inbox.depth(s) for s in filtered),
    )
    assert daemon.run() == 0  # the sources end: the daemon stops by itself
    assert daemon.round.calls < daemon.round.blocks  # several streams per call
    for sid, uri in uris.items():
        src = open_source(uri.replace("speed=8", "speed=0"))
        X = np.concatenate([c.samples for c in src])
        src.close()
        parts = sorted(sinks.rows[sid], key=lambda p: p[0])
        Y = np.concatenate([y for _first, y in parts])
        assert parts[0][0] == 0 and len(Y) == len(X) == FS * 6
        spec = None if filters[sid] == "none" else FilterChain.preset(filters[sid], FS).to_dict()
        np.testing.assert_array_equal(Y, offline_outputs(model, X, spec))
