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

from streamgru.runtime.logs import get_logger, log, setup_logging
from streamgru.runtime.metrics import LatencyRecorder, StreamCounters, make_registry
from streamgru.runtime.notify import Notifier
from streamgru.runtime.snapshots import SnapshotStore, StreamSnapshot
from streamgru.runtime.workers import Inbox


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
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["bed1.snapshot.json"]
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

    from streamgru.runtime import daemon as daemon_module
    from streamgru.runtime.config import Config, StreamConfig

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
