"""open_sink: JSON lines and CSV files, stdout, the TCP server with slow clients, LSL, null."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from streamgru import open_sink
from streamgru.errors import ConfigError, SinkError
from streamgru.io.chunk import PredictionBlock
from streamgru.io.sinks import json_lines

ROOT = Path(__file__).resolve().parents[1]


def block(first: int = 0, n: int = 3, width: int = 2, t=1.25) -> PredictionBlock:
    y = (np.arange(n * width, dtype=np.float32).reshape(n, width) + first) / 4
    return PredictionBlock("ecg-1", first, t, y, labels=tuple(f"p{i}" for i in range(width)))


def test_prediction_block_checks_its_shapes():
    b = PredictionBlock("s", 0, np.array([1.0, 2.0]), np.array([0.5, 0.25]))
    assert b.outputs.shape == (2, 1) and b.outputs.dtype == np.float32
    assert b.times().tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="t_host must be a scalar or"):
        PredictionBlock("s", 0, np.zeros(3), np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"\(T, O\)"):
        PredictionBlock("s", 0, 0.0, np.zeros((2, 1, 1)))


def test_stdout_json_lines(capsys):
    with open_sink() as sink:
        sink.write(
            PredictionBlock("a", 7, np.array([1.5, 2.5]), np.array([[0.1, np.nan], [np.inf, 2.0]]))
        )
        sink.flush()
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(x) for x in lines] == [
        {"stream": "a", "index": 7, "t": 1.5, "y": [0.1, None]},
        {"stream": "a", "index": 8, "t": 2.5, "y": [None, 2.0]},
    ]
    assert sink.stats.written == 2 and sink.stats.dropped == 0


def test_jsonl_file_appends_and_flushes(tmp_path):
    path = tmp_path / "out" / "p.jsonl"
    for first in (0, 3):
        sink = open_sink(f"jsonl://{path}")
        sink.write(block(first))
        sink.flush()
        assert len(path.read_text().splitlines()) == first + 3  # visible after flush()
        sink.close()
        assert sink.stats.dropped == 0  # file sinks never drop
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(6))
    assert rows[4]["y"] == [float(v) for v in block(3).outputs[1]]


def test_csv_file_has_one_header(tmp_path):
    path = tmp_path / "p.csv"
    for first in (0, 3):
        with open_sink(f"csv://{path}") as sink:
            sink.write(block(first, t=np.array([1.0, 2.0, 3.0])))
    lines = path.read_text().splitlines()
    assert lines[0] == "stream,index,t,p0,p1"
    assert lines[1] == "ecg-1,0,1.0,0.0,0.25"
    assert len(lines) == 7
    with open_sink(f"csv://{path}?append=0") as sink, pytest.raises(SinkError, match="outputs"):
        sink.write(block())
        sink.write(block(width=3))


def test_null_sink_counts():
    with open_sink("null://") as sink:
        sink.write(block(n=5))
    assert sink.stats.written == 5


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("kafka://x", "unknown sink scheme"),
        ("tcp://127.0.0.1", "PORT"),
        ("jsonl://", "jsonl://PATH"),
        ("stdout://?x=1", "unknown option"),
        ("tcp://127.0.0.1:0?queue=0", "queue"),
    ],
)
def test_bad_sink_uris(uri, match):
    with pytest.raises(ConfigError, match=match):
        open_sink(uri)


class LineReader:
    """JSON lines from a socket, with a buffer that keeps partial lines between calls."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        sock.settimeout(0.2)

    def read(self, n: int, budget: float = 5.0) -> list[dict]:
        end = time.monotonic() + budget
        while self.buf.count(b"\n") < n and time.monotonic() < end:
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            if not data:
                break
            self.buf += data
        lines = self.buf.split(b"\n")
        self.buf = lines.pop()
        return [json.loads(x) for x in lines]


def wait_for(cond, budget: float = 5.0) -> bool:
    end = time.monotonic() + budget
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_tcp_sink_serves_every_client_and_a_slow_one_never_blocks_the_writer():
    sink = open_sink("tcp://127.0.0.1:0?queue=400")
    try:
        host, port = sink.address
        assert host == "127.0.0.1" and port > 0
        fast = socket.create_connection((host, port), timeout=2)
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before the handshake
        slow.connect((host, port))  # and then never reads
        assert wait_for(lambda: sink.n_clients == 2)
        big = np.zeros((200, 64), np.float32)  # about 80 kB of JSON per block
        n_blocks = 120  # about 10 MB: more than the kernel buffers for the slow client
        got: list[dict] = []
        reader = LineReader(fast)
        longest = 0.0
        for k in range(n_blocks):
            block = PredictionBlock("s", k * 200, 0.0, big)
            start = time.monotonic()
            sink.write(block)
            longest = max(longest, time.monotonic() - start)
            got += reader.read(200 * (k + 1) - len(got))
        assert longest < 1.0  # a write only queues (the send timeout is 5 s): never blocked
        assert len(got) == 200 * n_blocks  # the fast client got everything, in order
        assert [r["index"] for r in got] == list(range(200 * n_blocks))
        assert sink.stats.written == 200 * n_blocks
        assert sink.stats.dropped > 0  # the slow client's queue overflowed and was counted
        assert sink.stats.dropped % 200 == 0
        fast.close()
        slow.close()
    finally:
        sink.close()


def test_tcp_sink_refuses_clients_beyond_max_clients_and_counts_them(caplog):
    assert open_sink("tcp://127.0.0.1:0").max_clients == 16  # the default cap
    with pytest.raises(ConfigError, match="max_clients"):
        open_sink("tcp://127.0.0.1:0?max_clients=0")
    sink = open_sink("tcp://127.0.0.1:0?max_clients=2")
    socks = []
    try:
        with caplog.at_level("WARNING", logger="streamgru.tcp"):
            for _ in range(2):
                socks.append(socket.create_connection(sink.address, timeout=2))
            assert wait_for(lambda: sink.n_clients == 2)
            for _ in range(3):  # each closed at once, never served
                extra = socket.create_connection(sink.address, timeout=2)
                socks.append(extra)
                assert extra.recv(10) == b""
            assert wait_for(lambda: sink.refused == 3)
        assert sink.n_clients == 2
        assert caplog.text.count("tcp sink refused a client") == 1  # rate-limited
        sink.write(block(0, 5))
        assert [r["index"] for r in LineReader(socks[0]).read(5)] == list(range(5))
    finally:
        for sock in socks:
            sock.close()
        sink.close()


def test_tcp_sink_counts_the_rows_cut_at_close_as_dropped():
    """Rows still queued for a client that does not read when the sink closes were never
    delivered: counted in ``stats.dropped`` (the daemon's ``client_slow``)."""
    sink = open_sink("tcp://127.0.0.1:0?queue=1000000&send_timeout=0.5")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(sink.address)  # and then never reads
    try:
        assert wait_for(lambda: sink.n_clients == 1)
        big = np.zeros((200, 64), np.float32)  # about 80 kB of JSON per block
        for k in range(120):  # about 10 MB: more than the kernel buffers hold
            sink.write(PredictionBlock("s", k * 200, 0.0, big))
        assert sink.stats.dropped == 0  # the queue holds it all until now
    finally:
        sink.close()
        slow.close()
    assert 0 < sink.stats.dropped <= 200 * 120 and sink.stats.dropped % 200 == 0


@pytest.mark.skipif(importlib.util.find_spec("pylsl") is None, reason="pylsl is not installed")
def test_lsl_sink_to_lsl_source_on_this_machine(tmp_path):
    """In a subprocess, with liblsl told to stay on this machine (loopback only)."""
    cfg = tmp_path / "lsl_api.cfg"
    # machine scope: discovery queries go to 127.0.0.1 only (TTL 0) and are listened for on
    # 127.0.0.1, so the inlet finds only this machine's outlet and connects over loopback
    cfg.write_text(
        "[multicast]\nResolveScope = machine\nListenAddress = 127.0.0.1\n[ports]\nIPv6 = disable\n"
    )
    code = """
import threading, time, numpy as np, pylsl
from streamgru import open_sink, open_source
from streamgru.io.chunk import PredictionBlock
from streamgru.io.sinks import json_lines
sink = open_sink("lsl://?name=sgtest&type=SGTest&fs=100")
stop = threading.Event()
def stamp(i):  # the input time of sample i, forwarded as its LSL timestamp
    return 5000.0 + i / 100
def pump():
    for k in range(400):
        if stop.is_set():
            return
        idx = np.arange(10 * k, 10 * k + 10)
        y = np.stack([idx, idx], axis=1).astype(np.float32)
        sink.write(PredictionBlock("s", 10 * k, stamp(idx), y, ("a", "b")))
        time.sleep(0.02)
th = threading.Thread(target=pump, daemon=True)
th.start()
with open_source("lsl://?type=SGTest&timeout=5") as src:
    info = src.info
    got = 0
    for _ in range(200):
        c = src.read(timeout=0.1)
        if c is not None:
            got += c.n_samples
            last = c.samples[-1].tolist()
        if got >= 50:
            break
# the timestamps as they arrive, without clock correction
inlet = pylsl.StreamInlet(pylsl.resolve_byprop("type", "SGTest", 1, 5)[0])
inlet.open_stream(5)
rows, stamps = [], []
for _ in range(100):
    r, t = inlet.pull_chunk(timeout=0.1)
    rows += r
    stamps += t
    if len(stamps) >= 30:
        break
inlet.close_stream()
stop.set()
th.join(5)
sink.close()
same = len(stamps) >= 30 and all(abs(t - stamp(r[0])) < 1e-6 for r, t in zip(rows, stamps))
print(info.fs, info.n_channels, info.labels, got >= 50, last[0] == last[1], same)
"""
    env = dict(os.environ, LSLAPICFG=str(cfg))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
    )
    if "could not be loaded" in done.stderr:
        pytest.skip("liblsl is not available: " + done.stderr.strip().splitlines()[-1])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[0] == "100.0 2 ('a', 'b') True True True"


def test_lsl_source_keeps_a_short_buffer_and_flushes_it_at_start(monkeypatch):
    """With a stand-in for pylsl: the inlet holds ``buffer`` seconds, is flushed once open (the
    first chunk is fresh), and chunks count what arrived from 0."""
    import types

    from streamgru import open_source

    calls: list = []

    class Empty:
        def child(self, name):
            return self

        def empty(self):
            return True

    class Info:
        def channel_count(self):
            return 2

        def nominal_srate(self):
            return 250.0

        def desc(self):
            return Empty()

        def source_id(self):
            return "dev-1"

        def name(self):
            return "ecg"

    class Inlet:
        def __init__(self, info, max_buflen, recover, processing_flags):
            calls.append(("inlet", max_buflen))

        def info(self, timeout):
            return Info()

        def open_stream(self, timeout):
            calls.append("open")

        def flush(self):
            calls.append("flush")
            return 0

        def pull_chunk(self, timeout, max_samples, dest_obj):
            calls.append("pull")
            dest_obj[:3] = [[1, 2], [3, 4], [5, 6]]
            return None, [1.0, 2.0, 3.0]

        def close_stream(self):
            calls.append("close")

    fake = types.SimpleNamespace(
        resolve_byprop=lambda prop, value, n, timeout: [f"{prop}={value}"],
        StreamInlet=Inlet,
        proc_clocksync=1,
    )
    monkeypatch.setitem(sys.modules, "pylsl", fake)
    with open_source("lsl://?type=ECG&buffer=1") as src:
        assert (src.info.fs, src.info.n_channels, src.info.device_id) == (250.0, 2, "dev-1")
        a, b = src.read(1), src.read(1)
    assert calls[:3] == [("inlet", 1), "open", "flush"] and calls[-1] == "close"
    assert a.samples.tolist() == [[1, 2], [3, 4], [5, 6]] and a.samples.dtype == np.float32
    assert (a.first_index, b.first_index) == (0, 3)


def test_lsl_without_pylsl_says_how_to_get_it(monkeypatch):
    from streamgru import open_source
    from streamgru.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "pylsl", None)  # makes "import pylsl" fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'streamgru\[lsl\]'"):
        open_sink("lsl://?name=x")
    with pytest.raises(MissingDependencyError, match="pylsl"):
        open_source("lsl://?type=ECG&timeout=0.1")


def _row_by_row(block):
    stream = json.dumps(block.stream_id)
    times = block.times()
    out = []
    for k in range(block.n_samples):
        y = ",".join(str(v) if math.isfinite(v) else "null" for v in block.outputs[k])
        out.append(
            f'{{"stream": {stream}, "index": {block.first_index + k}, '
            f'"t": {float(times[k])!r}, "y": [{y}]}}\n'
        )
    return "".join(out)


def test_json_lines_equal_the_row_by_row_text():
    rng = np.random.default_rng(1)
    for n_out in (1, 3):
        for scalar_time in (True, False):
            for n in (0, 1, 37):
                Y = rng.standard_normal((n, n_out)) * 10.0 ** rng.integers(-44, 39, (n, n_out))
                Y = Y.astype(np.float32)
                if n > 6:
                    Y[1, 0], Y[2, -1], Y[3, 0], Y[4, 0], Y[5, 0] = (
                        np.nan,
                        np.inf,
                        -np.inf,
                        -0.0,
                        1e-45,
                    )
                t = 1234.5678 if scalar_time else rng.random(n) * 1e6
                block = PredictionBlock('bed"1\u00e9', 2**40 + 3, t, Y)
                text = json_lines(block)
                assert text == _row_by_row(block)
                assert [json.loads(line)["index"] for line in text.splitlines()] == list(
                    range(2**40 + 3, 2**40 + 3 + n)
                )
