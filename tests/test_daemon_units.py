"""The daemon's small parts: sd_notify, JSON logs, latency percentiles, atomic snapshots,
the bounded inbox, the metrics collector."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from streamgru.daemon.logs import get_logger, log, setup_logging
from streamgru.daemon.metrics import LatencyRecorder, StreamCounters, make_registry
from streamgru.daemon.notify import Notifier
from streamgru.daemon.reader import Inbox
from streamgru.daemon.snapshots import SnapshotStore, StreamSnapshot


@pytest.mark.parametrize("abstract", [False, True])
def test_notifier_sends_datagrams(tmp_path, abstract):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"streamgru-test-{os.getpid()}"
        sock.bind("\0" + name)
        address = "@" + name
    else:
        address = str(tmp_path / "notify")
        sock.bind(address)
    sock.settimeout(5)
    n = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "4000000"})
    assert n.enabled and n.watchdog_interval() == 2.0
    assert n.ready("1 stream") and n.watchdog() and n.stopping()
    got = [sock.recv(1024).decode() for _ in range(3)]
    assert got == ["READY=1\nSTATUS=1 stream", "WATCHDOG=1", "STOPPING=1"]
    n.close()
    sock.close()
    other_pid = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1", "WATCHDOG_PID": "1"})
    assert other_pid.watchdog_interval() is None
    assert not Notifier({}).enabled and not Notifier({}).ready()


def test_logs_are_one_json_object_per_line():
    stream = io.StringIO()
    setup_logging("info", "json", stream)
    try:
        logger = get_logger("test")
        log(logger, logging.WARNING, "gap", stream="bed1", lost=12, ratio=float("nan"))
        log(logger, logging.DEBUG, "hidden")
        logger.info("multi\nline")
    finally:
        setup_logging("info", "json")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["msg"] == "gap" and first["stream"] == "bed1" and first["lost"] == 12
    assert first["level"] == "warning" and first["ratio"] == "nan" and first["ts"].endswith("Z")
    assert json.loads(lines[1])["msg"] == "multi\nline"


def test_latency_recorder_weights_blocks_by_samples():
    rec = LatencyRecorder()
    rec.add(0.001, 98)  # nearest rank: p99 is the 99th of 100 samples
    rec.add(0.010, 1)
    rec.add(0.100, 1)
    p = rec.percentiles((50, 99, 99.5))
    assert p["p50"] == 0.001 and p["p99"] == 0.010 and p["p99_5"] == 0.1 and p["max"] == 0.1
    buckets, total = rec.buckets()
    assert buckets[-1] == ("+Inf", 100) and total == pytest.approx(0.098 + 0.01 + 0.1)
    rec.add_many(np.array([0.002, 0.002, 0.003]))
    assert rec.count == 103


def test_collector_exports_counters_and_histogram():
    from prometheus_client import generate_latest

    counters = StreamCounters(samples_in=10, gaps=2, crc_errors=3)
    rec = LatencyRecorder()
    rec.add(0.0004, 10)
    registry = make_registry(
        lambda: {
            "streams": {"bed1": (counters, "running", rec)},
            "queues": [("inbox", "bed1", 4)],
            "sink_errors": {"null://": 0},
            "ready": True,
        }
    )
    text = generate_latest(registry).decode()
    assert 'streamgru_samples_in_total{stream="bed1"} 10.0' in text
    assert 'streamgru_gaps_total{stream="bed1"} 2.0' in text
    assert 'streamgru_crc_errors_total{stream="bed1"} 3.0' in text
    assert 'streamgru_latency_seconds_bucket{le="0.0005",stream="bed1"} 10.0' in text
    assert 'streamgru_stream_state{state="running",stream="bed1"} 1.0' in text
    assert 'streamgru_queue_depth{name="bed1",queue="inbox"} 4.0' in text
    assert "streamgru_ready 1.0" in text


def test_snapshots_are_written_atomically(tmp_path):
    store = SnapshotStore(tmp_path / "state")
    snap = StreamSnapshot("bed1", 1234, "ab" * 32, None, b"\x00\x01state", b'{"x": 1}', (0.5,))
    store.save(snap)
    store.save(snap)  # replaces
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["bed1.snapshot"]
    back = store.load("bed1")
    assert back == snap
    assert store.load("other") is None


def test_inbox_is_bounded_and_takes_everything():
    inbox = Inbox(capacity=2)
    inbox.add_stream("a")
    stop = threading.Event()
    assert inbox.put("a", 1, stop) and inbox.put("a", 2, stop)
    done = []
    t = threading.Thread(target=lambda: done.append(inbox.put("a", 3, stop)))
    t.start()
    t.join(0.2)
    assert t.is_alive()  # full: the reader waits (back-pressure), nothing is dropped
    assert inbox.take_all(1.0) == {"a": [1, 2]}
    t.join(5)
    assert done == [True] and inbox.take_all(1.0) == {"a": [3]}
    assert inbox.take_all(0.01) == {}


def test_signals_are_captured_then_restored_and_a_second_sigint_forces_exit(monkeypatch):
    import signal

    from streamgru.daemon import daemon as daemon_module
    from streamgru.daemon.config_schema import Config, StreamConfig

    config = Config(streams=(StreamConfig(id="a", source="tcp://127.0.0.1:1", model=Path()),))
    d = daemon_module.Daemon(config, environ={})
    before = signal.getsignal(signal.SIGTERM)
    with d.capture_signals():
        assert signal.getsignal(signal.SIGTERM) == d.handle_signal
        assert signal.getsignal(signal.SIGHUP) == d.handle_signal
    assert signal.getsignal(signal.SIGTERM) is before
    d.handle_signal(signal.SIGHUP)
    assert d.reload_requested and not d.should_exit
    exits = []
    monkeypatch.setattr(daemon_module.os, "_exit", exits.append)
    d.handle_signal(signal.SIGINT)
    assert d.should_exit and exits == []  # the first one drains
    d.handle_signal(signal.SIGINT)
    assert exits == [130]  # the second one does not wait


_WARM_SCRIPT = r"""
import sys
from pathlib import Path

import numpy as np
from numba.core.dispatcher import Dispatcher

sys.path.insert(0, sys.argv[2])
from test_daemon_helpers import tiny_model

from streamgru.io.chunk import Chunk
from streamgru.daemon.config import parse_config
from streamgru.daemon.plan import plan_stream, warm_up
from streamgru.daemon.round import RoundBatch


def compiled():
    # every numba dispatcher of streamgru's modules, with the signatures it has (compiled or
    # loaded from the cache)
    out = {}
    for name, mod in list(sys.modules.items()):
        if not name.startswith("streamgru"):
            continue
        for attr, obj in list(vars(mod).items()):
            items = obj.items() if isinstance(obj, dict) else [("", obj)]
            for key, d in items:
                if isinstance(d, Dispatcher):
                    out[f"{name}.{attr}{key}"] = sorted(map(str, d.overloads))
    return out


model = tiny_model(Path(sys.argv[1]) / "m.safetensors", fs=250.0, channels=2)
kinds = [("ecg-monitor", "float32"), ("none", "float32"), ("ecg-monitor", "float64")]
streams = [
    {"id": f"s{k}", "source": f"tcp://127.0.0.1:{k + 1}", "model": str(model), "filter": f,
     "dtype": d, "gap_policy": "fill", "nan_policy": "reset", "events": True}
    for k, (f, d) in enumerate(kinds)
]
plans = [plan_stream(s, k) for k, s in enumerate(parse_config({"stream": streams}).streams)]
warm_up(plans)  # what the daemon does before READY=1
before = compiled()
X = np.random.default_rng(0).standard_normal((600, 2)).astype(np.float32)
X[400:403, 1] = np.nan
rounds = RoundBatch()  # the daemon runs its pipelines' model calls in rounds
for plan in plans:
    pipe = plan.pipeline()
    pipe.use_round(rounds)
    pipe.process([Chunk(X[:1], 0, 0.0)])
    rounds.flush()
    pipe.process([Chunk(X[1:300], 1, 1.0), Chunk(X[300:310], 300, 2.0)])  # one group
    pipe.process([Chunk(X[320:], 320, 3.0)])  # a gap (filled), NaNs (reset)
    rounds.flush()
    pipe.restore(pipe.snapshot())
    pipe.process([Chunk(X[:100], 600, 4.0)])
    rounds.flush()
after = compiled()
assert before, "no numba dispatcher found: the check would prove nothing"
new = {k: v for k, v in after.items() if before.get(k) != v}
assert not new, f"compiled after the warm-up: {new}"
print("ok", len(before))
"""


def test_warm_up_leaves_nothing_to_compile_once_ready(tmp_path):
    # In a fresh interpreter (this one may have compiled everything already): after warm_up,
    # running streams of every kind adds no signature to any numba dispatcher, i.e. no
    # compile (or cache load) pause after READY=1.
    import subprocess
    import sys

    tests = str(Path(__file__).resolve().parent)
    proc = subprocess.run(
        [sys.executable, "-c", _WARM_SCRIPT, str(tmp_path), tests],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stdout + proc.stderr


def test_sink_writer_fans_out_counts_once_and_survives_a_failing_sink():
    from streamgru.daemon.writer import Item, SinkWriter
    from streamgru.io.chunk import PredictionBlock

    got: dict[str, list] = {"a://": [], "b://": []}
    failing = {"c://": True}

    class FakeSink:
        def __init__(self, uri):
            self.uri = uri

        def write(self, block):
            if failing.get(self.uri):
                raise OSError("link down")
            got.setdefault(self.uri, []).append(block)

        def flush(self):
            pass

        def close(self):
            pass

    clock = [100.0]
    writer = SinkWriter(FakeSink, capacity=4, backoff=(1.0, 1.0), clock=lambda: clock[0])
    for uri in ("a://", "b://", "c://"):
        writer.add(uri)
    counters, rec = StreamCounters(), LatencyRecorder()
    block = PredictionBlock("s", 10, 99.5, np.zeros((5, 1), np.float32))

    def write(uris):  # what the writer thread does with one queued block
        writer._write(Item(block, uris, counters, rec))

    write(("a://", "b://", "c://"))
    write(("c://", "a://"))  # c is down: a still gets it
    failing["c://"] = False
    clock[0] = 100.1  # before c's retry time: still down
    write(("c://",))
    clock[0] = 102.0  # after it: reopened
    write(("c://",))
    assert [b.first_index for b in got["a://"]] == [10, 10] and len(got["b://"]) == 1
    assert len(got["c://"]) == 1  # the last block only
    # rows count once per block (at its first sink that took it); each failed write is a drop
    assert counters.samples_out == 3 * 5 and rec.count == 3 * 5
    assert counters.dropped_output == 3 * 5
    assert writer.errors()["c://"] == 1  # one failure; no reopen tried before its time
    # the thread: what is queued is written before close() returns
    writer.start()
    writer.put(block, ("a://", "b://"), counters, rec)
    writer.close(timeout=10)
    assert not writer.is_alive() and len(got["a://"]) == 3 and len(got["b://"]) == 2


@pytest.mark.parametrize("error", ["config", "missing extra"])
def test_a_source_that_cannot_open_by_its_nature_is_not_retried(error):
    from streamgru.daemon.reader import ReaderSettings, SourceReader
    from streamgru.errors import ConfigError, MissingDependencyError

    calls, states = [], []

    def open_source(uri):
        calls.append(uri)
        if error == "config":
            raise ConfigError(f"{uri}: bad option")
        raise MissingDependencyError("lsl:// needs pylsl: pip install 'streamgru[lsl]'")

    reader = SourceReader(
        "s",
        "lsl://?type=ECG",
        Inbox(capacity=2),
        lambda info: None,
        StreamCounters(),
        states.append,
        ReaderSettings(open_source, backoff=(0.001, 0.002)),
    )
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert calls == ["lsl://?type=ECG"] and states[-1] == "misconfigured"
    assert reader.counters.source_errors == 1


def test_uri_passwords_reach_neither_metric_labels_nor_log_lines():
    """A ``nats://user:pass@host`` or ``tcp://user:pass@...`` URI is a sink's metric label and
    appears in log fields and in errors quoting it: the password never does."""
    from prometheus_client import generate_latest

    from streamgru.io.uri import redact_uri

    assert redact_uri("nats://bed:s3cret@10.0.0.1:4222/x?a=b") == "nats://bed@10.0.0.1:4222/x?a=b"
    assert redact_uri("tcp://u:p@ss@127.0.0.1:9") == "tcp://u@127.0.0.1:9"
    assert redact_uri("nats://TOKEN@h:4222") == "nats://***@h:4222"  # a token in the user
    assert redact_uri("jsonl://out@2.jsonl") == "jsonl://out@2.jsonl"  # a path, not a user
    sink = "nats://bed:s3cret@127.0.0.1:4222/rows"
    registry = make_registry(
        lambda: {
            "streams": {},
            "queues": [("sink", sink, 1)],
            "sink_errors": {sink: 2},
            "sinks": {sink: (1, 10, {"sink_down": 3})},
            "ready": True,
        }
    )
    text = generate_latest(registry).decode()
    assert "s3cret" not in text
    assert 'streamgru_sink_errors_total{sink="nats://bed@127.0.0.1:4222/rows"} 2.0' in text
    assert 'streamgru_sink_written_rows_total{sink="nats://bed@127.0.0.1:4222/rows"}' in text
    for fmt in ("json", "text"):
        stream = io.StringIO()
        setup_logging("info", fmt, stream)
        try:
            logger = get_logger("test")
            log(logger, logging.WARNING, "sink unavailable", sink=sink, error=f"{sink}: refused")
            logger.error("cannot open %s", "tcp://u:hunter2@127.0.0.1:1")
        finally:
            setup_logging("info", "json")
        out = stream.getvalue()
        assert "s3cret" not in out and "hunter2" not in out
        assert "nats://bed@127.0.0.1:4222/rows" in out and "tcp://u@127.0.0.1:1" in out


def test_stale_frames_reach_the_stream_counters_and_metrics():
    """A source's ``stats.stale_frames`` (DATA behind the index) is summed across reconnections
    into the stream's counters and exported as ``streamgru_stale_frames_total``."""
    from types import SimpleNamespace

    from prometheus_client import generate_latest

    from streamgru.daemon.reader import ReaderSettings, SourceReader
    from streamgru.io.chunk import SourceStats

    counters = StreamCounters()
    reader = SourceReader(
        "bed1",
        "udp://127.0.0.1:0",
        Inbox(capacity=2),
        lambda info: None,
        counters,
        lambda state: None,
        ReaderSettings(lambda uri: None),
    )
    first = SimpleNamespace(stats=SourceStats(ignored=5, stale_frames=3), close=lambda: None)
    reader._sync_stats(first)
    assert (counters.stale_frames, counters.ignored) == (3, 5)
    reader._close(first)  # a reconnection: the next source's totals add to these
    reader._sync_stats(SimpleNamespace(stats=SourceStats(ignored=2, stale_frames=2)))
    assert (counters.stale_frames, counters.ignored) == (5, 7)
    registry = make_registry(
        lambda: {
            "streams": {"bed1": (counters, "running", LatencyRecorder())},
            "queues": [],
            "sink_errors": {},
            "ready": True,
        }
    )
    assert 'streamgru_stale_frames_total{stream="bed1"} 5.0' in generate_latest(registry).decode()


def test_readyz_text_does_not_quote_a_source_password():
    from types import SimpleNamespace

    from streamgru.daemon.health import readiness

    reader = SimpleNamespace(refusal="tcp://bed:s3cret@127.0.0.1:9: fs 250 Hz, expected 360 Hz")
    rt = SimpleNamespace(state="refused", reader=reader)
    ok, text = readiness(SimpleNamespace(streams={"bed": rt}, ready=True))
    assert not ok and "s3cret" not in text and "tcp://bed@127.0.0.1:9" in text
