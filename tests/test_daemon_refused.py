"""A source that can never match ends the daemon (exit 78, with the fix named); a live device
that is refused is retried, and ``/readyz`` says not ready meanwhile.

The ad hoc daemon runs in a subprocess (``python -m streamgru.cli run ...``) on WFDB records
the tests write themselves: 20 s of MIT-BIH record 100 (shipped in the package), resampled to
250 Hz, and a two-channel copy at 360 Hz whose labels name no channel of the model.
"""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
from test_daemon_helpers import REPO, DaemonProcess, scrape, tiny_model, wait_until

from streamgru.daemon.config import parse_config
from streamgru.daemon.reader import refusal_is_final
from streamgru.demo.record import read_record
from streamgru.io.emulator import Emulator

MODEL = REPO / "streamgru" / "data" / "weights" / "ecg_beats.safetensors"  # 360 Hz, MLII
SECONDS = 20
#: Bound on each daemon run: model load, kernel warm-up and the refusal (or the whole record).
DEADLINE_S = 90.0
EX_CONFIG = 78

wfdb = pytest.importorskip("wfdb")


def write_record(folder: Path, name: str, signal_mv: np.ndarray, fs: float, labels: list[str]):
    """A WFDB record (format 16) of (T, C) float64 mV; returns the .hea path."""
    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV"] * len(labels),
        sig_name=labels,
        p_signal=signal_mv,
        fmt=["16"] * len(labels),
        adc_gain=[200.0] * len(labels),
        baseline=[0] * len(labels),
        write_dir=str(folder),
    )
    return folder / f"{name}.hea"


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """``{"250": .hea at 250 Hz (MLII), "2ch": .hea at 360 Hz with two unknown channels}``."""
    from scipy.signal import resample_poly

    folder = tmp_path_factory.mktemp("records")
    x = read_record("100").physical(int(SECONDS * 360))  # (T, 2): MLII, V5
    at250 = resample_poly(x[:, :1], 25, 36, axis=0)  # 360 Hz * 25 / 36 = 250 Hz
    return {
        "250": write_record(folder, "r250", at250, 250.0, ["MLII"]),
        "2ch": write_record(folder, "r2ch", x, 360.0, ["lead A", "lead B"]),
    }


def run_daemon(tmp_path: Path, source: str, model: Path, *extra: str) -> DaemonProcess:
    args = ["run", "--source", source, "--model", str(model), "--sink", "null://", *extra]
    return DaemonProcess(args, tmp_path)


def config_errors(daemon: DaemonProcess) -> str:
    """The plain-text lines the daemon prints on stderr before it exits 78."""
    text = daemon.log_path.read_text(errors="replace")
    return "\n".join(ln for ln in text.splitlines() if "configuration error" in ln)


def test_only_deterministic_sources_are_refused_for_good():
    assert refusal_is_final("file:///data/r.hea?speed=0")
    assert refusal_is_final("synthetic://ecg?fs=250")
    assert not refusal_is_final("tcp://127.0.0.1:5555")
    assert not refusal_is_final("serial:///dev/ttyACM0")
    assert refusal_is_final("tcp://127.0.0.1:5555", exit_on_refused=True)


def test_exit_on_refused_is_a_daemon_key():
    doc = {"stream": [{"id": "s", "source": "tcp://127.0.0.1:1", "model": str(MODEL)}]}
    assert parse_config(doc).daemon.exit_on_refused is False
    doc["daemon"] = {"exit_on_refused": True}
    assert parse_config(doc).daemon.exit_on_refused is True


def test_a_file_at_another_rate_exits_78_naming_resample(tmp_path, records):
    daemon = run_daemon(tmp_path, f"file://{records['250']}?speed=0", MODEL, "--no-metrics")
    try:
        assert daemon.wait(DEADLINE_S) == EX_CONFIG, daemon.tail()
        refused = daemon.wait_msg("stream cannot run", timeout=1)
        assert "250 Hz" in refused["error"] and "360 Hz" in refused["error"]
        errors = config_errors(daemon)
        assert "--fs 250 --resample" in errors and "stream stream0" in errors, daemon.tail()
        assert not [r for r in daemon.records() if r.get("msg") == "source open"]
    finally:
        daemon.stop()


@pytest.mark.parametrize("rate_options", [(), ("--fs", "250")], ids=["header-rate", "fs-given"])
def test_the_same_file_with_resample_gives_beats(tmp_path, records, rate_options):
    """``--resample`` alone takes a WFDB file's own rate from its header; ``--fs`` agrees."""
    daemon = run_daemon(
        tmp_path,
        f"file://{records['250']}?speed=0",
        MODEL,
        "--no-metrics",
        *rate_options,
        "--resample",
        "--events",
    )
    try:
        assert daemon.wait(DEADLINE_S) == 0, daemon.tail()  # the file ends: a clean stop
    finally:
        daemon.stop()
    beats = [r for r in daemon.records() if r.get("msg") == "beat"]
    # record 100 beats about 75 times a minute: some 25 beats in 20 s (ten at the very least)
    assert 10 <= len(beats) <= 40, daemon.tail()
    assert config_errors(daemon) == ""


def test_a_channel_mismatch_exits_78_naming_pick_and_channels(tmp_path, records):
    daemon = run_daemon(tmp_path, f"file://{records['2ch']}?speed=0", MODEL, "--no-metrics")
    try:
        assert daemon.wait(DEADLINE_S) == EX_CONFIG, daemon.tail()
        errors = config_errors(daemon)
        assert "`pick`" in errors and "`channels`" in errors, daemon.tail()
        assert "2 channel(s)" in errors
    finally:
        daemon.stop()


@pytest.fixture
def wrong_rate_device(tmp_path):
    """A TCP emulator at 500 Hz and a tiny model at 250 Hz: ``(model path, tcp uri)``."""
    model = tiny_model(tmp_path / "m.safetensors", fs=250.0)
    emu = Emulator(kind="ecg", fs=500.0, speed=1.0, seed=4)
    host, port = emu.start_tcp("127.0.0.1", 0)
    yield model, f"tcp://{host}:{port}"
    emu.stop()


def test_a_refused_live_device_is_retried_and_not_ready(tmp_path, wrong_rate_device):
    model, uri = wrong_rate_device
    daemon = run_daemon(tmp_path, uri, model, "--metrics-port", "0")
    try:
        mport = daemon.wait_msg("ready", timeout=DEADLINE_S)["metrics_port"]
        refused = daemon.wait_for(lambda r: "source refused" in r.get("msg", ""), DEADLINE_S)
        assert "retried" in refused["msg"] and "--resample" in refused["error"]
        wait_until(lambda: scrape(mport, "/readyz")[0] == 503, 30, "/readyz to say 503", daemon)
        status, text = scrape(mport, "/readyz")
        assert status == 503 and "stream0=refused" in text and "500 Hz" in text, text
        assert scrape(mport, "/healthz")[0] == 200  # alive, only not ready
        assert daemon.proc.poll() is None  # still up, retrying
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        daemon.stop()


def test_exit_on_refused_ends_a_refused_live_device(tmp_path, wrong_rate_device):
    model, uri = wrong_rate_device
    daemon = run_daemon(tmp_path, uri, model, "--no-metrics", "--exit-on-refused")
    try:
        assert daemon.wait(DEADLINE_S) == EX_CONFIG, daemon.tail()
        assert "--resample" in config_errors(daemon), daemon.tail()
    finally:
        daemon.stop()
