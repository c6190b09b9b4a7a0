"""``streamgru run`` as a subprocess, fed by the device emulator over a pty and over TCP.

Each test starts the daemon, waits for its ``ready`` log line, lets the emulator play a bounded
run at ``speed=0`` (as fast as the link takes it: nothing is lost before the daemon connects,
and the run ends by itself), then stops the daemon with SIGTERM and checks a clean exit, the
outputs against the stepper's offline outputs, and the counters against what the emulator
injected. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from test_daemon_helpers import (
    DaemonProcess,
    NotifyListener,
    metric_values,
    offline_outputs,
    read_jsonl,
    scrape,
    tiny_model,
    wait_until,
)

from streamgru.daemon.snapshots import StreamSnapshot
from streamgru.io.emulator import Emulator, Faults
from streamgru.signal.chain import FilterChain

FS = 250.0

pytestmark = pytest.mark.skipif(os.name != "posix", reason="ptys and signals need POSIX")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("daemon") / "m.safetensors", fs=FS)


def outputs_of(rows):
    idx = np.array([r["index"] for r in rows], dtype=np.int64)
    Y = np.array([r["y"] for r in rows], dtype=np.float32)
    return idx, Y


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_outputs_equal_the_offline_stepper(tmp_path, model_path, transport):
    n = int(16 * FS)
    if transport == "pty":
        # The daemon starts first, on a symlink the emulator will create. An endless emulator
        # at 8x real time, so that the pty is never closed under the reader.
        link = tmp_path / "ttyEMU"
        uri = f"serial://{link}"
        emu = Emulator(kind="ecg", fs=FS, speed=8.0, seed=7)
    else:
        # A finite run at speed 0: the emulator waits for the connection, then sends it all.
        emu = Emulator(kind="ecg", fs=FS, duration=n / FS, speed=0.0, seed=7)
        host, port = emu.start_tcp("127.0.0.1", 0)
        uri = f"tcp://{host}:{port}"
    out = tmp_path / "out.jsonl"
    notify = NotifyListener(tmp_path)
    daemon = DaemonProcess(
        [
            "run",
            "--source",
            uri,
            "--model",
            str(model_path),
            "--filter",
            "ecg-monitor",
            "--sink",
            f"jsonl://{out}",
            "--metrics-port",
            "0",
        ],
        tmp_path,
        env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"},
    )
    try:
        ready = daemon.wait_msg("ready", timeout=60)
        assert ready["watchdog_s"] == pytest.approx(0.1)
        if transport == "pty":
            emu.start_pty(str(link))
        wait_until(lambda: len(read_jsonl(out)) >= n, 60, f"{n} rows in {out}", daemon)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        daemon.stop()
        emu.stop()
    idx, Y = outputs_of(read_jsonl(out))
    m, first = idx.size, int(idx[0])
    assert m >= n
    # Over TCP the device waits for the host: everything from sample 0. Over the pty, what
    # the device wrote before the port was opened is flushed by the open (pyserial) and DATA
    # before the HELLO cannot be calibrated: the stream starts a little later, and fresh.
    assert first == 0 or transport == "pty"
    np.testing.assert_array_equal(idx, np.arange(first, first + m))  # every sample, in order
    spec = FilterChain.preset("ecg-monitor", FS).to_dict()
    ref = offline_outputs(model_path, emu.reference(first + m)[first:], spec)
    np.testing.assert_allclose(Y, ref, rtol=1e-5, atol=1e-6)
    totals = daemon.wait_msg("stream totals", timeout=1)
    assert totals["samples_in"] == totals["samples_out"] == m
    assert totals["samples_lost"] == totals["gaps"] == totals["dropped_output"] == 0
    msgs = [r.get("msg") for r in daemon.records()]
    assert msgs.index("kernels warm") < msgs.index("ready")  # compiled and warmed first
    messages = notify.poll()
    notify.close()
    assert "READY=1" in messages and "WATCHDOG=1" in messages and "STOPPING=1" in messages
    assert messages.index("READY=1") < messages.index("STOPPING=1")


def test_sigterm_snapshot_then_resume_continues_identically(tmp_path, model_path):
    n = int(40 * FS)
    X = (np.sin(np.arange(n) / 9.0) + 0.2 * np.cos(np.arange(n) / 31.0)).astype(np.float32)
    data = tmp_path / "x.npy"
    np.save(data, X[:, None])
    out = tmp_path / "out.jsonl"
    state = tmp_path / "state"
    common = [
        "--model",
        str(model_path),
        "--filter",
        "ecg-monitor",
        "--sink",
        f"jsonl://{out}",
        "--no-metrics",
        "--state-dir",
        str(state),
    ]
    # first run: real time x4, stopped by SIGTERM part-way
    first = DaemonProcess(
        ["run", "--source", f"file://{data}?fs={FS:g}&speed=4", *common], tmp_path
    )
    try:
        first.wait_msg("ready", timeout=60)
        wait_until(lambda: len(read_jsonl(out)) >= 500, 30, "500 rows before SIGTERM", first)
        first.signal(signal.SIGTERM)
        assert first.wait(30) == 0
    finally:
        first.stop()
    rows_first = read_jsonl(out)
    stop_at = len(rows_first)
    assert 500 <= stop_at < n
    snapshot = StreamSnapshot.from_bytes((state / "stream0.snapshot").read_bytes())
    assert snapshot.next_index == stop_at
    # second run: the file replays from 0 as fast as possible; --resume skips what was done
    second = DaemonProcess(
        ["run", "--source", f"file://{data}?fs={FS:g}&speed=0", "--resume", *common], tmp_path
    )
    try:
        assert second.wait(60) == 0  # the file ends: the daemon stops by itself
    finally:
        second.stop()
    resumed = second.wait_msg("resumed", timeout=1)
    assert resumed["next_index"] == stop_at
    idx, Y = outputs_of(read_jsonl(out))
    np.testing.assert_array_equal(idx, np.arange(n))
    spec = FilterChain.preset("ecg-monitor", FS).to_dict()
    ref = offline_outputs(model_path, X[:, None], spec)
    np.testing.assert_allclose(Y, ref, rtol=1e-5, atol=1e-6)
    totals = second.wait_msg("stream totals", timeout=1)
    assert totals["skipped"] == stop_at and totals["samples_in"] == n - stop_at


def test_faults_are_survived_and_counted_exactly(tmp_path, model_path):
    n = int(48 * FS)
    faults = Faults(drop_every=37, flip_every=53, garbage_every=41, disconnect_at=(6000, 0.3))
    emu = Emulator(kind="ecg", fs=FS, duration=n / FS, speed=0.0, seed=3, faults=faults)
    host, port = emu.start_tcp("127.0.0.1", 0)
    out = tmp_path / "out.jsonl"
    daemon = DaemonProcess(
        [
            "run",
            "--source",
            f"tcp://{host}:{port}",
            "--model",
            str(model_path),
            "--filter",
            "ecg-monitor",
            "--sink",
            f"jsonl://{out}",
            "--metrics-port",
            "0",
            "--gap-policy",
            "reset",
        ],
        tmp_path,
    )
    try:
        mport = daemon.wait_msg("ready", timeout=60)["metrics_port"]
        assert emu.join(60), "the emulator did not finish"
        expected = emu.report.expected
        assert expected.gaps > 0 and expected.bad_frames > 0

        def scraped():
            return metric_values(scrape(mport)[1], "stream0")

        def counted(m):
            return {
                "gaps": m.get("gaps"),
                "samples_lost": m.get("samples_lost"),
                "bad_frames": m.get("crc_errors", 0) + m.get("malformed", 0),
                "bytes_discarded": m.get("bytes_discarded"),
                "samples_in": m.get("samples_in"),
                "samples_out": m.get("samples_out"),
                "resets": m.get("resets"),
            }

        want = {
            "gaps": expected.gaps,
            "samples_lost": expected.samples_lost,
            "bad_frames": expected.bad_frames,
            "bytes_discarded": expected.bytes_discarded,
            "samples_in": expected.samples,
            "samples_out": expected.samples,
            "resets": expected.gaps,  # gap_policy = reset: one reset per gap
        }
        # the endpoint is scraped until everything delivered has been counted
        wait_until(lambda: counted(scraped()) == want, 30, f"the metrics to reach {want}", daemon)
        m = scraped()
        assert m["latency_seconds_count"] == expected.samples
        # one unplug, one re-established connection (the source reconnects by itself)
        assert m["reconnects"] == 1 and m["state"] in ("running", "reconnecting")
        assert scrape(mport, "/healthz")[0] == 200
        status, text = scrape(mport, "/readyz")
        assert status == 200 and "stream0=" in text
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        daemon.stop()
        emu.stop()
    report = emu.report
    assert report.disconnects == 1 and report.frames_dropped > 0 and report.frames_flipped > 0
    assert report.garbage_inserts > 0
    totals = daemon.wait_msg("stream totals", timeout=1)
    assert counted(totals) == want
    idx, _ = outputs_of(read_jsonl(out))
    assert idx.size == expected.samples and idx[-1] == expected.end_index - 1  # went on to the end
    assert np.all(np.diff(idx) > 0)
