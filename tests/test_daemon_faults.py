"""Faults the daemon survives without stopping the other streams (in process, threads):
a device that comes back announcing another rate is refused, and accepted again once right."""

from __future__ import annotations

import threading

import pytest
from test_daemon_helpers import tiny_model, wait_until

from streamgru.daemon.config import parse_config
from streamgru.daemon.daemon import Daemon
from streamgru.io.emulator import Emulator

FS = 250.0


@pytest.fixture
def running(tmp_path):
    """A daemon in a thread over a TCP emulator ("dev") and a synthetic stream ("other")."""
    model = tiny_model(tmp_path / "m.safetensors", fs=FS)
    emu = Emulator(kind="ecg", fs=FS, speed=4.0, seed=1)
    host, port = emu.start_tcp("127.0.0.1", 0)
    config = parse_config(
        {
            "stream": [
                {
                    "id": "dev",
                    "source": f"tcp://{host}:{port}",
                    "model": str(model),
                    "sinks": ["null://"],
                },
                {
                    "id": "other",
                    "source": f"synthetic://ecg?fs={FS:g}&speed=4",
                    "model": str(model),
                    "sinks": ["null://"],
                },
            ],
            "daemon": {
                "reconnect_initial_s": 0.05,
                "reconnect_max_s": 0.3,
                "state_dir": str(tmp_path / "state"),
                "snapshot_interval_s": 0.2,
            },
            "metrics": {"enabled": False},
            "logging": {"level": "error"},
        }
    )
    daemon = Daemon(config)
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    state = {"emu": emu}
    yield daemon, port, state
    daemon.request_stop()
    runner.join(30)
    state["emu"].stop()
    assert not runner.is_alive()


def test_a_device_with_another_hello_is_refused_while_others_go_on(running):
    daemon, port, state = running
    wait_until(lambda: daemon.ready, 60, "the daemon to be ready")
    dev, other = daemon.streams["dev"], daemon.streams["other"]
    wait_until(
        lambda: dev.counters.samples_out > 300 and other.counters.samples_out > 300,
        30,
        "both streams to run",
    )
    assert dev.state == "running"
    state["emu"].stop()  # unplugged ...
    state["emu"] = Emulator(kind="ecg", fs=2 * FS, speed=4.0, seed=2)  # ... another device
    state["emu"].start_tcp("127.0.0.1", port)
    wait_until(lambda: dev.state == "refused", 30, "the device to be refused")
    frozen = dev.counters.samples_in
    before = other.counters.samples_out
    wait_until(lambda: other.counters.samples_out > before + 500, 30, "the other stream")
    assert dev.counters.samples_in == frozen  # nothing of the wrong device got in
    assert dev.counters.source_errors >= 1
    state["emu"].stop()
    state["emu"] = Emulator(kind="ecg", fs=FS, speed=4.0, seed=3)  # the right kind again
    state["emu"].start_tcp("127.0.0.1", port)
    wait_until(
        lambda: dev.state == "running" and dev.counters.samples_in > frozen + 300,
        30,
        "the device to be accepted again",
    )
    assert dev.counters.restarts >= 1  # a new device session: a discontinuity, state reset
    # periodic snapshots (every 0.2 s) of both streams, written while running
    state_dir = daemon.config.daemon.state_dir
    wait_until(
        lambda: all((state_dir / f"{sid}.snapshot").exists() for sid in ("dev", "other")),
        30,
        "periodic snapshots",
    )
