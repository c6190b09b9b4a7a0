"""Bounded load tests on loopback: 8 streams at 1 kHz through one daemon, nothing lost.

* 30 s of signal per stream replayed at 10x real time (about 3 s of wall time), in chunks of
  100 samples (a chunk every 10 ms per stream: the per-chunk Python work stays near what a
  device's frames cost in real time, while the numeric path gets ten times the samples);
* 3 s of signal per stream in real time, in the devices' usual 20-sample chunks: the operating
  point of the latency target.

The per-sample latency (arrival to prediction written) is printed (``pytest -s`` or ``-rA``)
and recorded as test properties; it is never asserted (the machine is shared). The synthetic
sources all start together, so their chunks arrive in phase: the worst case for the last
stream served.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from test_daemon_helpers import read_jsonl, tiny_model, wait_until

from streamgru.runtime.config import parse_config
from streamgru.runtime.daemon import Daemon

N_STREAMS = 8
FS = 1000.0


def run_load(tmp_path, seconds: float, speed: float, chunk: int) -> Daemon:
    """Run the daemon in a thread until its finite sources end; returns it."""
    model = tiny_model(tmp_path / "m.safetensors", fs=FS, hidden=16)
    streams = [
        {
            "id": f"bed{k}",
            "source": f"synthetic://ecg?fs={FS:g}&speed={speed:g}&duration={seconds:g}"
            f"&seed={k}&chunk={chunk}",
            "model": str(model),
            "filter": "ecg-monitor",
            "sinks": [f"jsonl://{tmp_path / f'bed{k}.jsonl'}"],
        }
        for k in range(N_STREAMS)
    ]
    config = parse_config(
        {"stream": streams, "metrics": {"port": 0}, "logging": {"level": "warning"}}
    )
    daemon = Daemon(config)
    runner = threading.Thread(target=daemon.run, name="daemon-under-test", daemon=True)
    runner.start()
    try:
        wait_until(lambda: daemon.ready, 60, "the daemon to be ready")
        runner.join(seconds / speed + 60)  # every source ends: the daemon stops by itself
        assert not runner.is_alive(), "the daemon did not stop after its sources ended"
    finally:
        daemon.request_stop()
        runner.join(30)
    return daemon


def check_and_report(daemon: Daemon, tmp_path, n: int, title: str, record_property) -> None:
    lines = [title]
    worst = {"p50": 0.0, "p99": 0.0}
    for sid, rt in daemon.streams.items():
        c = rt.counters
        assert c.samples_in == c.samples_out == n, (sid, c)
        assert c.samples_lost == c.gaps == c.dropped_output == 0, (sid, c)
        lat = rt.latency.percentiles((50, 99))
        worst = {k: max(worst[k], lat[k]) for k in worst}
        lines.append(
            f"  {sid}: {c.samples_out} samples, latency p50 {lat['p50'] * 1e3:.3f} ms, "
            f"p99 {lat['p99'] * 1e3:.3f} ms, max {lat['max'] * 1e3:.3f} ms"
        )
    idx = np.array([r["index"] for r in read_jsonl(tmp_path / "bed3.jsonl")])
    np.testing.assert_array_equal(idx, np.arange(n))
    record_property("latency_p50_ms_worst_stream", round(worst["p50"] * 1e3, 3))
    record_property("latency_p99_ms_worst_stream", round(worst["p99"] * 1e3, 3))
    print("\n" + "\n".join(lines))


@pytest.mark.slow
def test_eight_streams_at_1khz_10x_nothing_lost(tmp_path, record_property):
    seconds, speed = 30.0, 10.0
    daemon = run_load(tmp_path, seconds, speed, chunk=100)
    title = f"load: {N_STREAMS} streams x {FS:g} Hz, {seconds:g} s of signal at {speed:g}x"
    check_and_report(daemon, tmp_path, int(seconds * FS), title, record_property)


@pytest.mark.slow
def test_eight_streams_at_1khz_real_time_latency(tmp_path, record_property):
    seconds = 3.0
    daemon = run_load(tmp_path, seconds, 1.0, chunk=20)
    title = f"load: {N_STREAMS} streams x {FS:g} Hz in real time, 20-sample chunks"
    check_and_report(daemon, tmp_path, int(seconds * FS), title, record_property)
