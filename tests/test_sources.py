"""open_source: URIs and options, replays, synthetic signals, and devices end to end without
hardware (the emulator on loop://, TCP loopback, a pty, UDP loopback, and the CLI).

Every device test compares the samples that arrive with the emulator's quantised reference and the
host's counters with what the emulator reports it injected. All loops are bounded.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from streamgru import open_source
from streamgru.errors import ConfigError, SourceError
from streamgru.io import protocol as p
from streamgru.io.emulator import Emulator, Faults
from streamgru.io.synthetic import make_generator

serial = pytest.importorskip("serial")

ROOT = Path(__file__).resolve().parents[1]
MITDB = ROOT / "streamgru" / "data" / "mitdb" / "100.hea"


def read_until(
    src, end_index: int, budget: float = 20.0, emu: Emulator | None = None, done=None
) -> list:
    """Chunks until one ends at or after ``end_index``, or nothing comes once the sender has
    finished (``emu`` or ``done()``); bounded by ``budget`` seconds."""
    chunks = []
    stop = time.monotonic() + budget
    while time.monotonic() < stop:
        finished = (emu is not None and emu.join(0)) or (done is not None and done())
        c = src.read(timeout=0.25)
        if c is not None:
            chunks.append(c)
            if c.end_index >= end_index:
                break
        elif src.finished or finished:
            break
    return chunks


def loop_port(head: bytes = b""):
    """A pyserial loop:// port holding ``head`` (its queue holds only 4 kB)."""
    port = serial.serial_for_url("loop://", timeout=0.05)
    port.write_timeout = 5.0
    port.write(head)
    return port


def feed(port, data: bytes) -> None:
    """Write ``data`` from a thread, so that a reader can drain the small loop:// queue.

    Start it after the source has opened: what the source sends (GET_INFO, START) comes back on
    the loop, and two writers at once would interleave their bytes.
    """

    def run() -> None:
        try:
            for i in range(0, len(data), 512):
                port.write(data[i : i + 512])
        except serial.SerialException:
            pass  # the test closed the port, or nobody read for 5 s

    threading.Thread(target=run, daemon=True).start()


def check_samples(chunks, emu: Emulator) -> int:
    ref = emu.reference(emu.report.samples_generated + 1)
    base = emu.start_index
    for c in chunks:
        assert np.array_equal(c.samples, ref[c.first_index - base : c.end_index - base])
    return sum(c.n_samples for c in chunks)


# ---- URIs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("/dev/ttyUSB0", "expected a URI like"),
        ("ftp://x", "unknown source scheme 'ftp'"),
        ("synthetic://eeg", "synthetic://ecg"),
        ("synthetic://ecg?fs=-1", "fs=.*number > 0"),
        ("synthetic://ecg?sped=2", "unknown option.*sped"),
        ("synthetic://ecg?duration=abc", "duration.*a number"),
        ("loop://?protocol=ascii", "protocol=ascii needs fs"),
        ("loop://?protocol=json", "protocol must be sgb1 or ascii"),
        ("tcp://127.0.0.1", "tcp://host:port"),
        ("udp://127.0.0.1", "udp://:port"),
        ("serial://", "serial:///dev/ttyUSB0"),
        ("file://", "file://PATH"),
        ("lsl://?fs=3", "exactly one of type=, name="),
    ],
)
def test_bad_uris_say_what_was_expected(uri, match):
    with pytest.raises(ConfigError, match=match):
        open_source(uri)


def test_unreachable_devices_raise_source_errors_naming_the_uri(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"tcp://127.0.0.1:{port}"
    with pytest.raises(SourceError, match=uri):
        open_source(uri)
    with pytest.raises(SourceError, match="cannot open"):
        open_source(f"serial://{tmp_path}/nope")
    with pytest.raises(SourceError, match="no stream description"):
        open_source("loop://", hello_timeout=0.3)  # nothing answers


# ---- replays and synthetic signals ------------------------------------------------------


def test_synthetic_signal_is_deterministic_and_chunking_free():
    want = make_generator("ecg", 250, 2, 5).generate(500)
    for chunk in (1, 7, 50):
        with open_source(
            f"synthetic://ecg?fs=250&channels=2&seed=5&speed=0&duration=2&chunk={chunk}"
        ) as src:
            assert src.info.units == ("mV", "mV") and src.info.n_channels == 2
            chunks = list(src)
        assert np.array_equal(np.concatenate([c.samples for c in chunks]), want.astype(np.float32))
        assert [c.first_index for c in chunks] == list(range(0, 500, chunk))
        assert src.finished and src.stats.samples == 500


def test_real_time_pacing_releases_a_chunk_only_when_due():
    with open_source("synthetic://sine?fs=100&speed=1&chunk=10") as src:
        assert src.read(timeout=0) is None  # the first chunk is due 0.1 s after the first read
        assert src.read(timeout=5) is not None
        assert not src.finished


def test_npy_and_csv_replay(tmp_path):
    values = np.arange(40, dtype=np.float64).reshape(20, 2) / 4
    np.save(tmp_path / "x.npy", values)
    (tmp_path / "x.csv").write_text(
        "# exported\nleft;right\n" + "".join(f"{a};{b}\n" for a, b in values)
    )
    for name in ("x.npy", "x.csv"):
        with open_source(f"file://{tmp_path / name}?fs=10&speed=0&chunk=6") as src:
            got = np.concatenate([c.samples for c in src])
        assert np.array_equal(got, values.astype(np.float32))
    assert src.info.labels == ("left", "right")
    with pytest.raises(ConfigError, match="fs=<Hz>"):
        open_source(f"file://{tmp_path / 'x.npy'}")
    with open_source(f"file://{tmp_path / 'x.npy'}?fs=10&speed=0&chunk=15&loop=1") as src:
        chunks = [src.read(1) for _ in range(3)]
    assert [c.first_index for c in chunks] == [0, 15, 30]
    assert np.array_equal(chunks[1].samples[5:], values[:10].astype(np.float32))


def test_file_replay_speed_factor_and_as_fast_as_possible(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1000, 1)))  # 10 s at 100 Hz
    took = {}
    for speed in (20, 0):
        start = time.monotonic()
        with open_source(f"file://{tmp_path / 'x.npy'}?fs=100&speed={speed}&chunk=50") as src:
            assert sum(c.n_samples for c in src) == 1000
        took[speed] = time.monotonic() - start
    assert took[20] >= 0.5 - 0.01  # 20 times real time: 0.5 s, never earlier
    assert took[0] < 0.25  # as fast as possible: no pacing


def test_wfdb_replay_arrives_with_its_gain_and_units():
    wfdb = pytest.importorskip("wfdb")
    with open_source(f"file://{MITDB}?speed=0&chunk=360") as src:
        info = src.info
        chunks = [src.read(1) for _ in range(3)]
    assert (info.fs, info.labels, info.units) == (360.0, ("MLII", "V5"), ("mV", "mV"))
    assert (info.gain, info.baseline) == ((200.0, 200.0), (1024.0, 1024.0))
    want = wfdb.rdrecord(str(MITDB.with_suffix("")), sampto=1080).p_signal.astype(np.float32)
    assert np.array_equal(np.concatenate([c.samples for c in chunks]), want)


# ---- devices: loop://, TCP, pty, UDP ------------------------------------------------------


def test_reconnect_backoff_is_exponential_capped_and_jittered():
    import random

    from streamgru.io.device_source import Backoff

    b = Backoff(0.1, 1.0, random.Random(1))
    for k, cap in enumerate([0.1, 0.2, 0.4, 0.8, 1.0, 1.0]):  # after k failures in a row
        waits = []
        for _ in range(20):
            b.failures = k
            waits.append(b.next())
        assert all(cap / 2 <= w <= cap for w in waits) and len(set(waits)) > 10  # jittered
    assert b.failures == 6
    b.reset()
    assert b.failures == 0 and b.next() <= 0.1


FAULTS = Faults(drop_every=6, flip_every=9, garbage_every=4)


def test_sgb1_over_loop_url_counts_every_fault_exactly():
    emu = Emulator(
        kind="ecg", fs=250, channels=2, speed=0, duration=4, faults=FAULTS, start_index=2**32 - 300
    )
    wire = emu.stream_bytes()
    hello = p.encode(emu.hello)
    port = loop_port(wire[: len(hello)])
    with open_source("loop://", port=port, stall=0) as src:
        feed(port, wire[len(hello) :])
        chunks = read_until(src, emu.start_index + 1000, budget=10)
        stats = src.stats
    e = emu.report.expected
    assert chunks[-1].end_index == emu.start_index + 1000  # 64-bit: it crossed 2**32
    assert check_samples(chunks, emu) == e.samples
    assert (stats.gaps, stats.samples_lost) == (e.gaps, e.samples_lost)
    assert stats.crc_errors + stats.malformed == e.bad_frames
    assert stats.bytes_discarded == e.bytes_discarded
    assert stats.ignored == 2  # our own GET_INFO and START came back on the loop


def test_ascii_lines_over_loop_url():
    port = loop_port()
    feed(port, b"MLII,V5\r\n1.5,2\n3,4\nnot a number\n5,6\n7\n" + b"9" * 5000 + b"\n8,9\n")
    with open_source("loop://?protocol=ascii&fs=100&units=mV", port=port, stall=0) as src:
        chunks = read_until(src, 7, budget=5)
        stats = src.stats
    assert src.info.labels == ("MLII", "V5") and src.info.units == ("mV", "mV")
    rows = {
        i: row
        for c in chunks
        for i, row in zip(range(c.first_index, c.end_index), c.samples.tolist())
    }
    assert rows == {0: [1.5, 2.0], 1: [3.0, 4.0], 3: [5.0, 6.0], 6: [8.0, 9.0]}
    assert (stats.malformed, stats.oversize, stats.samples_lost) == (3, 1, 3)


def test_ascii_plotter_labels():
    port = loop_port(b"ecg:1 resp:2\necg:3 resp:4\n")
    with open_source("loop://?protocol=ascii&fs=50", port=port, stall=0) as src:
        assert src.info.labels == ("ecg", "resp")
        assert src.read(1).samples.tolist() == [[1.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize("scheme", ["tcp", "socket"])  # our TCP link, and pyserial's
def test_tcp_device_end_to_end_with_faults(scheme):
    emu = Emulator(
        kind="ecg",
        fs=500,
        channels=2,
        sample_format="int24",
        speed=0,
        duration=3,
        autostart=False,
        faults=FAULTS,
    )
    host, port = emu.start_tcp()
    try:
        with open_source(f"{scheme}://{host}:{port}") as src:
            assert src.info.sample_format == "int24" and src.info.session == emu.hello.session
            chunks = read_until(src, emu.total, emu=emu)
            stats = src.stats
    finally:
        emu.stop()
    e = emu.report.expected
    assert check_samples(chunks, emu) == e.samples
    assert (stats.gaps, stats.samples_lost) == (e.gaps, e.samples_lost)
    assert (stats.crc_errors + stats.malformed, stats.bytes_discarded) == (
        e.bad_frames,
        e.bytes_discarded,
    )
    assert emu.report.commands == {"GetInfo": 1, "Start": 1}


def test_tcp_unplug_and_reconnect_keeps_the_stream_place():
    emu = Emulator(
        kind="sine", fs=200, speed=0, autostart=False, faults=Faults(disconnect_at=(400, 0.3))
    )
    host, port = emu.start_tcp()
    try:
        with open_source(f"tcp://{host}:{port}", backoff=0.02, backoff_max=0.1) as src:
            chunks = read_until(src, 1000)
            stats = src.stats
    finally:
        emu.stop()
    lost = emu.report.samples_lost_disconnected
    assert lost == 60  # 0.3 s at 200 Hz: the device clock kept running while away
    assert stats.reconnects == 1 and emu.report.connections == 2
    assert (stats.gaps, stats.samples_lost) == (1, lost)
    (gap,) = [c for c in chunks if c.gap_before]
    assert gap.first_index == 400 + lost and gap.gap_before == lost
    check_samples(chunks, emu)


def test_one_outage_counts_one_reconnect_even_through_a_connection_that_dies_at_once():
    """A device (or a serial-to-TCP bridge) whose listener stays open while it is away: the
    host's first reconnection is accepted and dropped before a byte, the next one streams.
    That is one outage and one re-established connection."""
    emu = Emulator(kind="sine", fs=100, speed=0, duration=4)
    frames = list(emu.frames())
    hello, data = frames[0], frames[1:]
    per, skip = emu.frame_samples, 3
    half = len(data) // 2
    plan = [hello + b"".join(data[:half]), None, hello + b"".join(data[half + skip :])]
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    accepted: list[int] = []
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            for wire in plan:
                conn, _ = server.accept()
                accepted.append(len(accepted))
                with conn:
                    if wire is None:  # accepted, then dropped before a byte
                        continue
                    conn.settimeout(1)
                    conn.sendall(wire)
                    conn.shutdown(socket.SHUT_WR)  # FIN after the data
                    stop = time.monotonic() + 10
                    while time.monotonic() < stop:  # until the host hangs up (read what it sent)
                        try:
                            if not conn.recv(4096):
                                break
                        except TimeoutError:
                            continue
        except OSError as exc:
            errors.append(exc)

    server_thread = threading.Thread(target=serve, daemon=True)
    server_thread.start()
    host, port = server.getsockname()[:2]
    end = emu.report.expected.end_index
    try:
        with open_source(f"tcp://{host}:{port}", backoff=0.02, backoff_max=0.1) as src:
            chunks = read_until(src, end, budget=15)
            stats = src.stats
    finally:
        server.close()
        server_thread.join(10)
    assert not errors and accepted == [0, 1, 2]
    assert chunks[-1].end_index == end
    assert stats.reconnects == 1
    assert (stats.gaps, stats.samples_lost) == (1, skip * per)
    assert check_samples(chunks, emu) == end - skip * per


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="no pseudo-terminals on this platform")
def test_serial_device_on_a_pty_with_faults_and_an_unplug(tmp_path):
    link = str(tmp_path / "ttyEMU")
    emu = Emulator(
        kind="ecg",
        fs=250,
        channels=2,
        speed=0,
        autostart=False,
        duration=6,
        faults=Faults(drop_every=5, flip_every=7, garbage_every=3, disconnect_at=(600, 0.2)),
    )
    path = emu.start_pty(link)
    assert path == link and os.path.realpath(link).startswith("/dev/")
    try:
        with open_source(f"serial://{link}?baud=921600", backoff=0.02, backoff_max=0.1) as src:
            chunks = read_until(src, emu.total, emu=emu)
            stats = src.stats
    finally:
        emu.stop()
    e = emu.report.expected
    assert check_samples(chunks, emu) == e.samples
    assert stats.reconnects == 1 and emu.report.samples_lost_disconnected == 50
    assert (stats.gaps, stats.samples_lost) == (e.gaps, e.samples_lost)
    assert (stats.crc_errors + stats.malformed, stats.bytes_discarded) == (
        e.bad_frames,
        e.bytes_discarded,
    )


def test_a_pause_stalls_the_stream_without_losing_a_sample():
    emu = Emulator(kind="sine", fs=200, speed=0, duration=3, autostart=False)
    emu.faults.pause_at = (300, 0.4)
    host, port = emu.start_tcp()
    try:
        with open_source(f"tcp://{host}:{port}") as src:
            chunks = read_until(src, emu.total, emu=emu)
            stats = src.stats
    finally:
        emu.stop()
    assert emu.report.pauses == 1 and emu.report.disconnects == 0
    assert check_samples(chunks, emu) == emu.total == emu.report.expected.samples
    assert (stats.gaps, stats.samples_lost, stats.reconnects) == (0, 0, 0)
    waits = np.diff([c.t_host for c in chunks])
    assert waits.max() >= 0.25  # the device held its frames for 0.4 s
    before = chunks[int(np.argmax(waits))]
    assert before.end_index <= 300 + emu.frame_samples


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="no pseudo-terminals on this platform")
def test_spy_url_logs_the_traffic_of_a_serial_device(tmp_path):
    link, log = str(tmp_path / "ttyEMU"), tmp_path / "spy.log"
    emu = Emulator(kind="ecg", fs=250, channels=2, speed=0, autostart=False)  # endless
    emu.start_pty(link)
    try:
        # closed while the device is still there: each reopening of a spy:// URL truncates its
        # log file, and pyserial closes it only when the port is collected
        with open_source(f"spy://{link}?file={log}&baud=921600") as src:
            chunks = read_until(src, 500)
            stats = src.stats
    finally:
        emu.stop()
    assert chunks[-1].end_index >= 500 and check_samples(chunks, emu) == chunks[-1].end_index
    assert (stats.gaps, stats.samples_lost, stats.reconnects) == (0, 0, 0)
    del src
    gc.collect()
    assert "RX" in log.read_text(errors="replace")  # pyserial's hex dump of what the host read


class _Rfc2217Port:
    """The serial port behind the test's RFC 2217 server: what pyserial's PortManager reads."""

    baudrate, bytesize, parity, stopbits = 115200, 8, "N", 1
    rts = dtr = cts = dsr = cd = True
    ri = break_condition = rtscts = xonxoff = False

    def reset_input_buffer(self) -> None:
        pass

    def reset_output_buffer(self) -> None:
        pass


def test_rfc2217_url_end_to_end_with_faults():
    from serial import rfc2217

    emu = Emulator(kind="ecg", fs=250, channels=2, speed=0, duration=3, faults=FAULTS)
    wire = emu.stream_bytes()
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError as exc:
            errors.append(exc)
            return
        with conn:
            conn.settimeout(0.05)
            lock = threading.Lock()

            class Net:
                def write(self, data: bytes) -> None:
                    with lock:
                        conn.sendall(data)

            manager = rfc2217.PortManager(_Rfc2217Port(), Net())
            sent = False
            stop = time.monotonic() + 15
            while time.monotonic() < stop:
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                to_port = b"".join(manager.filter(data))
                if to_port and not sent:  # the host's GET_INFO: it is open and negotiated
                    Net().write(b"".join(manager.escape(wire)))
                    sent = True

    server_thread = threading.Thread(target=serve, daemon=True)
    server_thread.start()
    host, port = server.getsockname()[:2]
    e = emu.report.expected
    try:
        with open_source(f"rfc2217://{host}:{port}?baud=921600", stall=0) as src:
            chunks = read_until(src, e.end_index, budget=15)
            stats = src.stats
    finally:
        server.close()
        server_thread.join(20)
    assert not errors
    assert check_samples(chunks, emu) == e.samples
    assert (stats.gaps, stats.samples_lost) == (e.gaps, e.samples_lost)
    assert (stats.crc_errors + stats.malformed, stats.bytes_discarded) == (
        e.bad_frames,
        e.bytes_discarded,
    )


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="no pseudo-terminals on this platform")
def test_simulate_cli_on_a_pty_replays_a_wfdb_record_with_its_calibration(tmp_path):
    wfdb = pytest.importorskip("wfdb")
    report = tmp_path / "report.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamgru.cli",
            "simulate",
            "--record",
            str(MITDB),
            "--speed",
            "0",
            "--duration",
            "2",
            "--wait-start",
            "--flip-every",
            "5",
            "--pty",
            "--report",
            str(report),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        text=True,
    )
    try:
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/"), proc.stderr.read() if proc.poll() is not None else path
        with open_source(f"serial://{path}", backoff=0.02, backoff_max=0.1) as src:
            info = src.info
            chunks = read_until(src, 720, done=lambda: proc.poll() is not None)
            stats = src.stats
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert (info.fs, info.labels, info.units) == (360.0, ("MLII", "V5"), ("mV", "mV"))
    assert (info.gain, info.baseline) == ((200.0, 200.0), (1024.0, 1024.0))
    rep = json.loads(report.read_text())
    assert rep["frames_flipped"] > 0
    assert (stats.gaps, stats.samples_lost) == (
        rep["expected"]["gaps"],
        rep["expected"]["samples_lost"],
    )
    assert stats.crc_errors + stats.malformed == rep["expected"]["bad_frames"]
    assert sum(c.n_samples for c in chunks) == rep["expected"]["samples"]
    want = wfdb.rdrecord(str(MITDB.with_suffix("")), sampto=720).p_signal.astype(np.float32)
    for c in chunks:
        assert np.array_equal(c.samples, want[c.first_index : c.end_index])


def test_udp_datagrams_one_frame_each():
    emu = Emulator(kind="sine", fs=100, speed=0, duration=2, faults=Faults(drop_every=4))
    frames = list(emu.frames())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stop = threading.Event()

    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for _ in range(100):  # HELLO until the source is listening
                if stop.wait(0.02):
                    return
                tx.sendto(frames[0], ("127.0.0.1", port))
                if stop.is_set():
                    return
            # not reached when the source opened

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        src = open_source(f"udp://127.0.0.1:{port}", hello_timeout=5)
    finally:
        stop.set()
        sender.join(2)
    with src, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        assert src.address == ("127.0.0.1", port)
        for i, frame in enumerate(frames[1:]):
            # datagrams without their delimiter, and a truncated one, must not spill over
            tx.sendto(frame[:-1] if i % 2 else frame, ("127.0.0.1", port))
            if i == 3:
                tx.sendto(frame[:5], ("127.0.0.1", port))
        e = emu.report.expected
        chunks = read_until(src, e.end_index, budget=5)
        stats = src.stats
    assert check_samples(chunks, emu) == e.samples
    assert (stats.gaps, stats.samples_lost) == (e.gaps, e.samples_lost)
    assert stats.crc_errors + stats.malformed == 1


def test_simulate_cli_serves_tcp_and_its_report_matches(tmp_path):
    report = tmp_path / "report.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamgru.cli",
            "simulate",
            "--kind",
            "ecg",
            "--fs",
            "250",
            "--channels",
            "2",
            "--speed",
            "0",
            "--duration",
            "2",
            "--wait-start",
            "--drop-every",
            "5",
            "--serve",
            "tcp://127.0.0.1:0",
            "--report",
            str(report),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        text=True,
    )
    try:
        address = proc.stdout.readline().strip()
        assert address.startswith("tcp://127.0.0.1:")
        with open_source(address) as src:
            chunks = read_until(src, 500, done=lambda: proc.poll() is not None)
            stats = src.stats
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    rep = json.loads(report.read_text())
    assert (stats.gaps, stats.samples_lost) == (
        rep["expected"]["gaps"],
        rep["expected"]["samples_lost"],
    )
    assert sum(c.n_samples for c in chunks) == rep["expected"]["samples"]
    ref = Emulator(kind="ecg", fs=250, channels=2).reference(500)
    for c in chunks:
        assert np.array_equal(c.samples, ref[c.first_index : c.end_index])


def test_a_device_restart_is_flagged():
    first = Emulator(kind="sine", fs=100, speed=0, duration=1, session=1).stream_bytes()
    again = Emulator(kind="sine", fs=100, speed=0, duration=1, session=2).stream_bytes()
    head = len(p.encode(Emulator(kind="sine", fs=100, session=1).hello))
    port = loop_port(first[:head])
    with open_source("loop://", port=port, stall=0) as src:
        feed(port, first[head:] + again)
        chunks = read_until(src, 200, budget=5)
        assert src.stats.restarts == 1 and src.info.session == 2
    assert [c.first_index for c in chunks if c.restarted] == [100]
    assert chunks[-1].end_index == 200


def test_a_restart_whose_hello_was_lost_is_recovered_by_asking_for_it():
    """UDP: the device restarts (new session, index from 0) and its HELLO is lost, so its DATA is
    behind and dropped as stale. After STALE_ASK_FRAMES of them the source sends GET_INFO (once:
    rate-limited); the HELLO that answers it makes the next frame a restart, and the stream
    goes on where it left off."""
    from streamgru.io.device_source import STALE_ASK_FRAMES

    old = Emulator(kind="sine", fs=100, speed=0, duration=1, session=1, start_index=50_000)
    new = Emulator(kind="sine", fs=100, speed=0, duration=2, session=2, seed=1)
    old_frames, new_frames = list(old.frames()), list(new.frames())  # [0]: the HELLO
    n_stale = STALE_ASK_FRAMES + 8
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stop = threading.Event()

    def hello_until_open() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for _ in range(100):
                if stop.wait(0.02):
                    return
                tx.sendto(old_frames[0], ("127.0.0.1", port))

    sender = threading.Thread(target=hello_until_open, daemon=True)
    sender.start()
    try:
        src = open_source(f"udp://127.0.0.1:{port}", hello_timeout=5)
    finally:
        stop.set()
        sender.join(2)

    def asked(dev: socket.socket) -> int:
        dev.settimeout(0.5)
        frames = []
        try:
            while len(frames) < 10:
                frames += p.Decoder().feed(dev.recv(65536))
        except TimeoutError:
            pass
        return sum(isinstance(f, p.GetInfo) for f in frames)

    with src, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dev:
        for frame in old_frames[1:]:
            dev.sendto(frame, ("127.0.0.1", port))
        before = read_until(src, 50_100, budget=5)
        for frame in new_frames[1 : 1 + n_stale]:  # the restarted device; its HELLO lost
            dev.sendto(frame, ("127.0.0.1", port))
        t0 = time.monotonic()
        while src.stats.stale_frames < n_stale and time.monotonic() - t0 < 5:
            assert src.read(0.05) is None
        assert src.stats.stale_frames == n_stale and src.stats.restarts == 0
        assert asked(dev) == 1  # one GET_INFO for the whole run (rate-limited)
        dev.sendto(p.encode(new.hello), ("127.0.0.1", port))  # the device answers
        for frame in new_frames[1 + n_stale :]:
            dev.sendto(frame, ("127.0.0.1", port))
        after = read_until(src, 50_100 + 200 - 2 * n_stale, budget=5)
        stats = src.stats
    assert before[-1].end_index == 50_100
    assert after[0].restarted and after[0].first_index == 50_100
    assert after[-1].end_index == 50_100 + 200 - 2 * n_stale
    got = np.concatenate([c.samples for c in after])
    assert np.array_equal(got, new.reference(200)[2 * n_stale :])  # the new session's samples
    assert (stats.restarts, stats.stale_frames, src.reader.info_requests) == (1, n_stale, 1)


def test_iteration_stops_at_the_end_and_read_after_close_raises():
    src = open_source("synthetic://noise?fs=50&speed=0&duration=1")
    assert sum(c.n_samples for c in src) == 50
    assert src.read(timeout=0) is None and src.finished
    src.close()
    with pytest.raises(SourceError, match="closed"):
        src.read()


@pytest.mark.parametrize(
    "kind,values",
    [
        ("ecg", {"hr": 70, "hrv": 0.05, "noise": 0.01, "wander": 0.1}),
        ("sine", {"freq": 5, "amplitude": 2}),
        ("noise", {"std": 0.5}),
    ],
)
def test_the_option_table_config_check_uses_is_what_the_synthetic_opener_reads(kind, values):
    """``check_source_options`` (what ``config check`` refuses) lists exactly the options the
    opener takes: every listed one opens, an unlisted one is refused by both."""
    from streamgru.io.sources import SOURCE_OPTIONS, SYNTHETIC_OPTIONS, check_source_options

    common = {"speed": 0, "chunk": 10, "fs": 250, "channels": 2, "seed": 3, "duration": 0.1}
    assert set(common) == set(SOURCE_OPTIONS["synthetic"]) and set(values) == set(
        SYNTHETIC_OPTIONS[kind]
    )
    uri = f"synthetic://{kind}?" + "&".join(f"{k}={v}" for k, v in {**common, **values}.items())
    check_source_options(uri)
    with open_source(uri) as src:
        assert src.info.n_channels == 2
    for bad in (uri + "&bogus=1", f"synthetic://{kind}?hz=1"):
        with pytest.raises(ConfigError, match=r"bogus|hz"):
            check_source_options(bad)
        with pytest.raises(ConfigError, match=r"bogus|hz"):
            open_source(bad)
