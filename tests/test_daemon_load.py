"""A bounded load test on loopback: 8 streams at 1 kHz, 30 s of signal each, replayed at 10x
real time (about 3 s of wall time) through one daemon; nothing may be lost or dropped.

The per-sample latency (arrival to prediction written) is printed (``pytest -s`` or ``-rA``)
and recorded as test properties; it is never asserted (the machine is shared).
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
SECONDS = 30.0
SPEED = 10.0


@pytest.mark.slow
def test_eight_streams_at_1khz_nothing_lost(tmp_path, record_property):
    model = tiny_model(tmp_path / "m.safetensors", fs=FS, hidden=16)
    streams = [
        {
            "id": f"bed{k}",
            "source": f"synthetic://ecg?fs={FS:g}&speed={SPEED:g}&duration={SECONDS:g}&seed={k}",
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
        runner.join(SECONDS / SPEED + 60)  # every source ends: the daemon stops by itself
        assert not runner.is_alive(), "the daemon did not stop after its sources ended"
    finally:
        daemon.request_stop()
        runner.join(30)
    n = int(SECONDS * FS)
    lines = [f"load test: {N_STREAMS} streams x {FS:g} Hz, {SECONDS:g} s of signal at {SPEED:g}x"]
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
    rows = read_jsonl(tmp_path / "bed3.jsonl")
    idx = np.array([r["index"] for r in rows])
    np.testing.assert_array_equal(idx, np.arange(n))
    record_property("latency_p50_ms_worst_stream", round(worst["p50"] * 1e3, 3))
    record_property("latency_p99_ms_worst_stream", round(worst["p99"] * 1e3, 3))
    print("\n" + "\n".join(lines))
