"""The device emulator: what it sends, how it answers, and that its fault report is exact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamgru.errors import ConfigError
from streamgru.io import protocol as p
from streamgru.io.assembler import StreamAssembler
from streamgru.io.emulator import Emulator, Faults, parse_at
from streamgru.io.synthetic import make_generator

ROOT = Path(__file__).resolve().parents[1]
MITDB = ROOT / "streamgru" / "data" / "mitdb" / "100.hea"


def decode_all(wire: bytes):
    dec = p.Decoder()
    frames = dec.feed(wire)
    asm = StreamAssembler()
    chunks = []
    for f in frames:
        if isinstance(f, p.Hello):
            asm.on_hello(f)
        elif isinstance(f, p.Data) and (c := asm.on_data(f, 0.0)) is not None:
            chunks.append(c)
    return frames, chunks, dec.stats, asm.stats


@pytest.mark.parametrize("fmt", ["int16", "int24", "float32"])
def test_frames_carry_the_quantised_signal(fmt):
    emu = Emulator(kind="ecg", fs=360, channels=2, sample_format=fmt, speed=0, duration=2)
    frames, chunks, dstats, _ = decode_all(emu.stream_bytes())
    hello = frames[0]
    assert isinstance(hello, p.Hello) and hello.sample_format.label == fmt
    assert (hello.fs_num, hello.fs_den, hello.units) == (360, 1, ("mV", "mV"))
    got = np.concatenate([c.samples for c in chunks])
    assert got.shape == (720, 2)
    assert np.array_equal(got, emu.reference(720))
    # quantisation error is at most half a count
    exact = make_generator("ecg", 360, 2, 0).generate(720)
    assert np.max(np.abs(got - exact)) <= 0.5 / hello.gain[0] + 1e-6
    assert dstats.bytes_discarded == 0 and emu.report.samples_sent == 720


def test_the_run_is_deterministic_and_seeded():
    a = Emulator(kind="noise", fs=100, seed=3, speed=0, duration=1).stream_bytes()
    b = Emulator(kind="noise", fs=100, seed=3, speed=0, duration=1).stream_bytes()
    c = Emulator(kind="noise", fs=100, seed=4, speed=0, duration=1).stream_bytes()
    assert a == b and a != c


def test_wrap_around_of_the_device_index():
    emu = Emulator(kind="sine", fs=100, speed=0, duration=3, start_index=2**32 - 150)
    frames, chunks, _, astats = decode_all(emu.stream_bytes())
    firsts = [f.first_index for f in frames if isinstance(f, p.Data)]
    assert min(firsts) < 150 < 2**32 - 150 < max(firsts)  # the 32-bit index wrapped
    assert chunks[0].first_index == 2**32 - 150
    assert chunks[-1].end_index == 2**32 - 150 + 300  # unwrapped, continuous
    assert astats.gaps == 0


def test_faults_are_reported_exactly():
    faults = Faults(drop_every=5, flip_every=7, garbage_every=3, disconnect_at=(400, 0.5))
    emu = Emulator(kind="ecg", fs=200, channels=3, speed=0, duration=5, faults=faults)
    _frames, chunks, dstats, astats = decode_all(emu.stream_bytes())
    r = emu.report
    e = r.expected
    assert r.frames_dropped > 0 and r.frames_flipped > 0 and r.garbage_inserts > 0
    assert r.disconnects == 1 and r.samples_lost_disconnected == 100
    assert (
        dstats.crc_errors + dstats.malformed
        == e.bad_frames
        == r.frames_flipped + (r.garbage_inserts)
    )
    assert dstats.bytes_discarded == e.bytes_discarded
    assert (astats.gaps, astats.samples_lost) == (e.gaps, e.samples_lost)
    trailing = r.samples_generated - e.end_index  # lost after the last frame that arrived
    assert e.first_index == 0
    assert e.samples_lost + trailing == (
        r.samples_dropped + r.samples_flipped + r.samples_lost_disconnected
    )
    ref = emu.reference(r.samples_generated)
    for c in chunks:
        assert np.array_equal(c.samples, ref[c.first_index : c.end_index])
    assert sum(c.n_samples for c in chunks) == e.samples == r.samples_sent


def test_commands_are_answered():
    emu = Emulator(kind="sine", fs=100, speed=0, autostart=False)
    out = emu.handle(p.Ping(7))
    (ack,) = p.Decoder().feed(out[0].data)
    assert isinstance(ack, p.Ack) and (ack.command, ack.seq) == (0x84, 7)
    (synced,) = p.Decoder().feed(emu.handle(p.TimeSync(9, 1_700_000_000_000_000))[0].data)
    assert isinstance(synced, p.Ack) and (synced.command, synced.seq) == (0x85, 9)
    (hello,) = p.Decoder().feed(emu.handle(p.GetInfo(1))[0].data)
    assert hello == emu.hello
    assert emu.handle(p.Start(2)) and emu.streaming
    emu.advance(3, True)
    stop = emu.handle(p.Stop(3))
    kinds = [pk.kind for pk in stop]
    assert kinds == ["data", "control"] and not emu.streaming  # the partial frame goes out first
    (nack,) = p.Decoder().feed(emu.handle(p.Ack(1, 2, 3))[0].data)
    assert isinstance(nack, p.Nack)
    assert emu.report.commands == {
        "Ping": 1,
        "TimeSync": 1,
        "GetInfo": 1,
        "Start": 1,
        "Stop": 1,
        "Ack": 1,
    }


def test_wfdb_record_is_sent_with_its_own_calibration():
    pytest.importorskip("wfdb")
    import wfdb

    emu = Emulator(record=MITDB, speed=0, duration=2)
    frames, chunks, _, _ = decode_all(emu.stream_bytes())
    hello = frames[0]
    assert (hello.gain, hello.baseline) == ((200.0, 200.0), (1024.0, 1024.0))
    assert hello.labels == ("MLII", "V5") and hello.units == ("mV", "mV")
    assert hello.fs == 360.0
    want = wfdb.rdrecord(str(MITDB.with_suffix("")), sampto=720).p_signal.astype(np.float32)
    assert np.array_equal(np.concatenate([c.samples for c in chunks]), want)


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="SAMPLE:SECONDS"):
        parse_at("12", "--pause-at")
    with pytest.raises(ConfigError, match="kind must be one of"):
        Emulator(kind="eeg")
    with pytest.raises(ConfigError, match="speed"):
        Emulator(speed=-1)
    with pytest.raises(ConfigError, match="do not fit"):
        Emulator(channels=300, sample_format="float32")
    assert parse_at("100:0.5", "x") == (100, 0.5)


def test_simulate_cli_writes_the_raw_stream_and_its_report(tmp_path):
    report = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamgru.cli",
            "simulate",
            "--kind",
            "sine",
            "--fs",
            "100",
            "--speed",
            "0",
            "--duration",
            "1",
            "--frame-samples",
            "10",
            "--drop-every",
            "4",
            "--report",
            str(report),
        ],
        capture_output=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr.decode()
    _frames, chunks, _, astats = decode_all(done.stdout)
    rep = json.loads(report.read_text())
    assert rep == json.loads(done.stderr.decode().strip().splitlines()[-1])
    assert rep["frames_dropped"] == 2 and rep["samples_generated"] == 100  # frames 4 and 8
    assert astats.samples_lost == rep["expected"]["samples_lost"] == 20
    assert sum(c.n_samples for c in chunks) == rep["samples_sent"]
