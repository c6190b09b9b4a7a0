"""Faults a hostile week at the bedside brings (issue 19), at the daemon's level: a stuck sink
beside healthy ones, untrusted strings in the log, configs that could never run, permissions.

Every daemon here runs as a subprocess on loopback; every wait is bounded.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from test_daemon_helpers import DaemonProcess, read_jsonl, scrape, tiny_model, wait_until

from streamgru.daemon.config import load_config
from streamgru.daemon.writer import Item, SinkWriter
from streamgru.errors import ConfigError
from streamgru.io.chunk import PredictionBlock

FS = 250.0


def _sink_drops(text: str, sink: str) -> dict[str, float]:
    """``{reason: rows}`` of ``streamgru_sink_dropped_rows_total`` for one sink."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "streamgru_sink_dropped_rows_total" and (
                sample.labels.get("sink") == sink
            ):
                out[sample.labels["reason"]] = sample.value
    return out


def _fault_site(tmp_path, model) -> str:
    return f"""
[daemon]
state_dir = "{tmp_path / "state"}"
snapshot_interval_s = 0
sink_shutdown_s = 2

[metrics]
port = 0

[[stream]]
id = "a"
source = "synthetic://ecg?fs={FS:g}&speed=4&seed=1"
model = "{model}"
sinks = ["stdout://?queue_blocks=16", "jsonl://{tmp_path / "a.jsonl"}"]

[[stream]]
id = "b"
source = "synthetic://sine?fs={FS:g}&speed=4&seed=2"
model = "{model}"
sinks = ["jsonl://{tmp_path / "b.jsonl"}"]
"""


def test_a_stuck_sink_stalls_nobody_and_sigterm_still_snapshots(tmp_path, record_property):
    """stdout:// into a pipe nobody reads, beside two healthy jsonl sinks (issue 19, point 1)."""
    model = tiny_model(tmp_path / "m.safetensors", fs=FS)
    cfg = tmp_path / "site.toml"
    cfg.write_text(_fault_site(tmp_path, model))
    daemon = DaemonProcess(["run", "--config", str(cfg)], tmp_path, stdout=subprocess.PIPE)
    try:
        port = daemon.wait_msg("ready", timeout=120)["metrics_port"]
        # the pipe fills (64 KiB), then the stdout sink's 16-block queue: its drops are counted
        wait_until(
            lambda: (
                _sink_drops(scrape(port)[1], "stdout://?queue_blocks=16").get("queue_full", 0) > 0
            ),
            60,
            "the stuck sink's drops in /metrics",
            daemon,
        )
        # the healthy sinks keep receiving while the stuck one stays stuck
        before = len(read_jsonl(tmp_path / "a.jsonl")), len(read_jsonl(tmp_path / "b.jsonl"))
        wait_until(
            lambda: (
                len(read_jsonl(tmp_path / "a.jsonl")) > before[0] + 2000
                and len(read_jsonl(tmp_path / "b.jsonl")) > before[1] + 2000
            ),
            60,
            "the healthy sinks to go on",
            daemon,
        )
        drops = _sink_drops(scrape(port)[1], "stdout://?queue_blocks=16")
        t0 = time.monotonic()
        daemon.signal(signal.SIGTERM)
        code = daemon.wait(20)  # systemd's default stop timeout is 90 s; well within it
        exit_s = time.monotonic() - t0
    finally:
        daemon.stop()
        if daemon.proc.stdout is not None:
            daemon.proc.stdout.close()
    assert code == 0, daemon.tail()
    totals = {r["stream"]: r for r in daemon.records() if r.get("msg") == "stream totals"}
    for sid in ("a", "b"):
        rows = read_jsonl(tmp_path / f"{sid}.jsonl")
        index = np.array([r["index"] for r in rows])
        # every row reached the healthy sink, in order, none missing
        np.testing.assert_array_equal(index, np.arange(totals[sid]["samples_in"]))
        assert totals[sid]["samples_out"] == len(rows)
        assert (tmp_path / "state" / f"{sid}.snapshot").exists()
    assert totals["b"]["dropped_output"] == 0
    assert totals["a"]["dropped_output"] >= drops["queue_full"] > 0  # the stuck sink's only
    abandoned = [r for r in daemon.records() if r.get("msg") == "sink stuck at shutdown: abandoned"]
    assert [r["sink"] for r in abandoned] == ["stdout://?queue_blocks=16"]
    summary = (
        f"stuck stdout sink beside 2 healthy jsonl sinks: a.jsonl {totals['a']['samples_out']} "
        f"rows, b.jsonl {totals['b']['samples_out']} rows, none lost; stuck sink dropped "
        f"{drops['queue_full']:.0f} rows (queue_full, in /metrics) before SIGTERM, "
        f"{totals['a']['dropped_output']} in all; SIGTERM to exit 0 in {exit_s:.2f} s"
    )
    record_property("summary", summary)
    print("\n" + summary)


class _Blocking:
    """A sink whose writes wait until released (a stuck consumer)."""

    release = None

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.rows: list[int] = []

    def write(self, block: PredictionBlock) -> None:
        if self.uri.startswith("stuck") and not type(self).release.wait(10):
            raise OSError("still stuck")
        self.rows.extend(range(block.first_index, block.first_index + block.n_samples))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize("policy", ["drop-oldest", "block"])
def test_sink_policies_drop_by_their_rule_and_never_wait(policy):
    """A full queue: drop-oldest keeps the newest blocks, block keeps the oldest; put_many
    returns at once either way, and the other sink gets everything."""
    import threading

    from streamgru.daemon.metrics import LatencyRecorder, StreamCounters

    _Blocking.release = threading.Event()
    opened: dict[str, _Blocking] = {}

    def open_sink(uri):
        opened[uri] = _Blocking(uri)
        return opened[uri]

    writer = SinkWriter(open_sink, capacity=4)
    stuck = f"stuck://?policy={policy}"
    writer.add(stuck)
    writer.add("ok://?queue_blocks=100")
    writer.start()
    counters, rec = StreamCounters(), LatencyRecorder()
    items = [
        Item(
            PredictionBlock("s", 10 * k, 0.0, np.zeros((10, 1), np.float32)),
            (stuck, "ok://?queue_blocks=100"),
            counters,
            rec,
        )
        for k in range(20)
    ]
    writer.put_many(items[:1])
    wait_until(lambda: "stuck://" in opened and writer.lanes[stuck].depth == 0, 10, "a take")
    writer.put_many(items[1:])  # 19 blocks for a 4-block queue, its sink stuck: never waits
    assert not _Blocking.release.is_set() and opened["stuck://"].rows == []  # still stuck
    wait_until(lambda: len(opened["ok://"].rows) == 200, 10, "the healthy sink")
    stats = writer.sink_stats()
    assert stats[stuck][2]["queue_full"] == (20 - 1 - 4) * 10  # 4 queued, 1 taken
    _Blocking.release.set()
    assert writer.close(timeout=10) == []
    got = opened["stuck://"].rows
    kept = list(range(10)) + (
        list(range(160, 200)) if policy == "drop-oldest" else list(range(10, 50))
    )
    assert got == kept
    assert counters.samples_out == 200 and counters.dropped_output == 150


def test_writer_abandons_a_stuck_sink_at_the_deadline():
    import threading

    from streamgru.daemon.metrics import LatencyRecorder, StreamCounters

    _Blocking.release = threading.Event()
    writer = SinkWriter(_Blocking, capacity=8)
    writer.add("stuck://")
    writer.start()
    counters = StreamCounters()
    for k in range(5):
        block = PredictionBlock("s", k, 0.0, np.zeros((1, 1), np.float32))
        writer.put_many([Item(block, ("stuck://",), counters, LatencyRecorder())])
    wait_until(lambda: writer.lanes["stuck://"].depth < 5, 10, "the lane to take a block")
    assert writer.close(timeout=0.2) == ["stuck://"]
    assert writer.sink_stats()["stuck://"][2]["abandoned"] >= 1
    _Blocking.release.set()


# ------------------------------------------------------------------ point 4: log injection
HOSTILE = "bed\x1b[2J\x1b]0;owned\x07\r\n2026-01-01 00:00:00 error streamgru.daemon: forged x=1"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_untrusted_strings_cannot_forge_log_lines(fmt):
    import io

    from streamgru.daemon.logs import MAX_FIELD_CHARS, get_logger, log, setup_logging

    out = io.StringIO()
    setup_logging("info", fmt, stream=out)
    try:
        log(
            get_logger("daemon"),
            logging.INFO,
            "source open",
            device=HOSTILE,
            labels=[HOSTILE] * 100_000,
            units=("µV\u2028x", "\u202eevil"),
            error="e" * 100_000,
        )
    finally:
        setup_logging("info", "json")
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one record, one line
    line = text[:-1]
    assert not any(c in line for c in "\x1b\r\x07\u2028\u202e")
    assert len(line) < 40 * MAX_FIELD_CHARS  # 100 000 labels and a 100 kB error: bounded
    assert "(+99936 items)" in line and "(+99488 chars)" in line
    if fmt == "json":
        rec = json.loads(line)  # ASCII JSON: the value decodes back as the device sent it
        assert rec["device"] == HOSTILE and rec["labels"][:64] == [HOSTILE] * 64
    else:
        assert 'device="bed\\\\x1b[2J' in line  # quoted, the escape visible


def test_a_device_hello_cannot_forge_lines_in_the_text_log(tmp_path):
    """A device whose HELLO carries ESC, CR and LF in its id: the daemon's text log stays one
    record per line with the characters escaped."""
    from streamgru.io.emulator import Emulator

    model = tiny_model(tmp_path / "m.safetensors", fs=FS)
    emu = Emulator(kind="ecg", fs=FS, speed=4.0, seed=1, device_id=HOSTILE)
    host, port = emu.start_tcp("127.0.0.1", 0)
    args = ["run", "--source", f"tcp://{host}:{port}", "--model", str(model)]
    args += ["--sink", "null://", "--no-metrics", "--log-format", "text"]
    daemon = DaemonProcess(args, tmp_path)
    try:
        wait_until(lambda: "source open" in daemon.tail(200), 120, "the device", daemon)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
    finally:
        daemon.stop()
        emu.stop()
    text = daemon.log_path.read_text(encoding="utf-8", errors="replace")
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert not any(line.startswith("2026-01-01") for line in text.splitlines())
    opened = [line for line in text.splitlines() if "source open" in line]
    assert opened and 'device="bed\\\\x1b[2J' in opened[0]


# ------------------------------------------------------- point 5: what config check refuses
def _check(tmp_path, model, stream=None, daemon=None):
    """``config check`` of one stream (synthetic source, a jsonl sink) with keys overridden."""
    from streamgru.daemon.commands import config_check_command

    doc = {
        "id": "s",
        "source": f"synthetic://ecg?fs={FS:g}",
        "model": str(model),
        "sinks": [f"jsonl://{tmp_path / 'out.jsonl'}"],
        **(stream or {}),
    }
    lines = [f"{k} = {json.dumps(v)}" for k, v in doc.items()]
    text = "[[stream]]\n" + "\n".join(lines) + "\n"
    if daemon:
        text += "[daemon]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in daemon.items())
    path = tmp_path / "site.toml"
    path.write_text(text + "\n")
    return config_check_command(str(path), quiet=True)


@pytest.mark.parametrize(
    "stream, daemon, message",
    [
        ({"sinks": ["jsonl:///tmp/x.jsonl?bogus=1"]}, None, r"stream\[0\]\.sinks\[0\]: .*bogus"),
        ({"sinks": ["stdout://?policy=sometimes"]}, None, r"stream\[0\]\.sinks\[0\]: .*policy"),
        ({"sinks": ["null://?queue_blocks=0"]}, None, r"stream\[0\]\.sinks\[0\]: .*queue_blocks"),
        ({"sinks": ["csv:///tmp/x.csv?mode=999"]}, None, r"stream\[0\]\.sinks\[0\]: .*mode"),
        ({"source": "tcp://127.0.0.1:9?bogus=1"}, None, r"stream\[0\]\.source: .*bogus"),
        ({"source": "synthetic://ecg?freq=3"}, None, r"stream\[0\]\.source: .*freq"),
        ({"source": "udp://:9?baud=9600"}, None, r"stream\[0\]\.source: .*baud"),
        ({"pick": ["V5"]}, None, r"stream\[0\]\.pick: no channel labelled 'V5'"),
        ({"pick": [3]}, None, r"stream\[0\]\.pick: channel 3 does not exist"),
        ({"source": "synthetic://ecg?fs=500"}, None, r"stream\[0\]\.fs: the source announces 500"),
        ({}, {"state_dir": "FILE"}, r"daemon\.state_dir: .* exists and is not a directory"),
        ({}, {"state_dir": "FILE/sub"}, r"daemon\.state_dir: .* is not a directory"),
        ({}, {"state_dir_mode": "0999"}, r"daemon\.state_dir_mode: expected permission bits"),
        ({}, {"sink_shutdown_s": 0}, r"daemon\.sink_shutdown_s: expected a number > 0"),
    ],
)
def test_config_check_refuses_what_would_fail_at_run_time(tmp_path, stream, daemon, message):
    model = tiny_model(tmp_path / "m.safetensors", fs=FS)
    (tmp_path / "FILE").write_text("not a folder")
    if daemon and "state_dir" in daemon:
        daemon = {"state_dir": str(tmp_path / daemon["state_dir"])}
    with pytest.raises(ConfigError, match=message):
        _check(tmp_path, model, stream, daemon)


def test_config_check_accepts_the_good_options(tmp_path):
    model = tiny_model(tmp_path / "m.safetensors", fs=FS)
    sinks = [
        "stdout://?policy=block&queue_blocks=64",
        f"jsonl://{tmp_path / 'o.jsonl'}?mode=0600&append=0&policy=drop-oldest",
        "tcp://127.0.0.1:0?queue=100",
    ]
    stream = {"sinks": sinks, "pick": ["ecg0"], "source": f"synthetic://ecg?fs={FS:g}&hr=70"}
    daemon = {"state_dir": str(tmp_path / "new" / "state"), "state_dir_mode": "0700"}
    assert _check(tmp_path, model, stream, daemon) == 0
    assert not (tmp_path / "new").exists() and not (tmp_path / "o.jsonl").exists()  # no effects
    cfg = load_config(tmp_path / "site.toml")
    assert cfg.daemon.state_dir_mode == 0o700 and cfg.daemon.sink_shutdown_s == 5.0


def test_a_stream_that_can_never_run_ends_the_daemon_with_78(tmp_path):
    """The last stream cannot run (its pick names no channel of a synthetic source): exit 78,
    with the key to change on stderr."""
    model = tiny_model(tmp_path / "m.safetensors", fs=FS)
    args = ["run", "--source", f"synthetic://ecg?fs={FS:g}", "--model", str(model)]
    args += ["--pick", "V5", "--sink", "null://", "--no-metrics"]
    daemon = DaemonProcess(args, tmp_path)
    try:
        code = daemon.wait(120)
    finally:
        daemon.stop()
    assert code == 78, daemon.tail()
    assert "pick" in daemon.tail() and "V5" in daemon.tail()


# ---------------------------------------------------------------- point 7: permissions
def test_files_and_state_dir_are_created_private_under_umask_000(tmp_path):
    from streamgru.daemon.snapshots import SnapshotStore, StreamSnapshot
    from streamgru.io.sinks import open_sink

    block = PredictionBlock("s", 0, 1.0, np.zeros((2, 1), np.float32))
    old = os.umask(0)
    try:
        paths = {
            f"jsonl://{tmp_path / 'a' / 'out.jsonl'}": 0o640,
            f"csv://{tmp_path / 'out.csv'}": 0o640,
            f"jsonl://{tmp_path / 'mine.jsonl'}?mode=0600": 0o600,
        }
        for uri in paths:
            with open_sink(uri) as sink:
                sink.write(block)
        store = SnapshotStore(tmp_path / "var" / "state")
        store.save(StreamSnapshot("s", 2, "ab" * 32, None, b"state"))
        (tmp_path / "kept").mkdir(0o777)
        SnapshotStore(tmp_path / "kept", mode=0o700).save(
            StreamSnapshot("s", 2, "ab" * 32, None, b"state")
        )
    finally:
        os.umask(old)
    for uri, mode in paths.items():
        path = uri.split("://", 1)[1].split("?")[0]
        assert os.stat(path).st_mode & 0o777 == mode, uri
    assert (tmp_path / "var").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "var" / "state").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "var" / "state" / "s.snapshot").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "kept").stat().st_mode & 0o777 == 0o777  # an existing folder is not changed


def test_rows_dropped_for_a_slow_tcp_client_reach_the_sink_metrics():
    """A tcp:// client that connects and never reads: its drops (the sink's own per-client
    queue) are counted per sink as ``client_slow``, beside the writer's own reasons."""
    import socket

    from prometheus_client import generate_latest

    from streamgru.daemon.metrics import LatencyRecorder, StreamCounters, make_registry
    from streamgru.io.sinks import open_sink

    uri = "tcp://127.0.0.1:0?queue=10&queue_blocks=5000"
    writer = SinkWriter(open_sink)
    lane = writer.add(uri)
    writer.start()
    counters = StreamCounters()
    y = np.zeros((100, 1), np.float32)

    def put(k: int) -> None:
        block = PredictionBlock("s", 100 * k, 0.0, y)
        writer.put_many([Item(block, (uri,), counters, LatencyRecorder())])

    put(0)
    wait_until(lambda: lane.slot.sink is not None, 10, "the tcp sink to open")
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(lane.slot.sink.address)
    try:
        wait_until(lambda: lane.slot.sink.n_clients == 1, 10, "the client")
        for k in range(1, 2001):
            put(k)
        wait_until(lambda: writer.sink_stats()[uri][2]["client_slow"] > 0, 30, "client drops")
        text = generate_latest(
            make_registry(
                lambda: {
                    "streams": {},
                    "queues": [],
                    "sink_errors": writer.errors(),
                    "sinks": writer.sink_stats(),
                    "ready": True,
                }
            )
        ).decode()
    finally:
        client.close()
        writer.close(timeout=10)
    assert _sink_drops(text, uri)["client_slow"] > 0
    assert f'streamgru_sink_written_rows_total{{sink="{uri}"}}' in text


def test_a_sink_that_raises_anything_does_not_end_its_lane():
    """A sink bug (TypeError, not an I/O error) on one write: logged, the sink reopened after
    its backoff, the later blocks written; the lane's thread lives on."""
    from streamgru.daemon.metrics import LatencyRecorder, StreamCounters

    class Buggy:
        opened = 0

        def __init__(self, uri: str) -> None:
            type(self).opened += 1
            self.rows: list[int] = []

        def write(self, block: PredictionBlock) -> None:
            if block.first_index == 0:
                raise TypeError("a bug in the sink")
            self.rows.append(block.first_index)

        def flush(self) -> None:
            pass

        def close(self) -> None:
            pass

    sinks: list[Buggy] = []
    writer = SinkWriter(lambda uri: sinks.append(Buggy(uri)) or sinks[-1], backoff=(0.01, 0.01))
    lane = writer.add("buggy://")
    writer.start()
    counters = StreamCounters()
    block = PredictionBlock("s", 0, 0.0, np.zeros((1, 1), np.float32))
    writer.put_many([Item(block, ("buggy://",), counters, LatencyRecorder())])
    wait_until(lambda: lane.slot.errors == 1, 10, "the failed write")
    for k in range(1, 1500):  # bounded (30 s at most): the backoff is 10 ms
        block = PredictionBlock("s", k, 0.0, np.zeros((1, 1), np.float32))
        writer.put_many([Item(block, ("buggy://",), counters, LatencyRecorder())])
        if len(sinks) > 1 and sinks[-1].rows:
            break
        time.sleep(0.02)
    assert lane.is_alive() and len(sinks) == 2 and sinks[-1].rows
    assert writer.close(timeout=10) == []
