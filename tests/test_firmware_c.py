"""The firmware's C library and example firmware, built with gcc and tested on the host.

``make -C firmware_bridge test`` compiles with -Werror and the address/undefined sanitizers and
runs the C tests against the shared golden vectors. The example firmware then runs on a fake ADC
and the Python decoder reads what it sent: every sample equals the fake ADC's value at its index,
and the gaps the host counts are exactly the device's overruns plus the samples discarded while
stopped.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from streamgru.io import protocol as p
from streamgru.io.assembler import StreamAssembler

ROOT = Path(__file__).resolve().parents[1]
BRIDGE = ROOT / "firmware_bridge"

needs_gcc = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("make") is None,
    reason="gcc and make are needed to build the firmware C tests (apt-get install gcc make)",
)

#: The portable C: the library and the example firmware's core (not the board glue, .ino).
PORTABLE = ["sgb1.h", "sgb1.c", "examples/arduino_ecg/device.h", "examples/arduino_ecg/device.c"]


def test_portable_c_allocates_nothing_and_includes_no_hardware_headers():
    for name in PORTABLE:
        text = (BRIDGE / name).read_text(encoding="utf-8")
        code = re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)  # comments out
        assert not re.search(r"\b(malloc|calloc|realloc|free|alloca)\s*\(", code), name
        includes = set(re.findall(r"#include\s*[<\"]([^>\"]+)[>\"]", code))
        assert includes <= {"stddef.h", "stdint.h", "string.h", "sgb1.h", "device.h"}, name


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fw")
    done = subprocess.run(
        ["make", "-C", str(BRIDGE), "test", f"BUILD={out}", "CC=gcc"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "0 failures" in done.stdout
    return out


@needs_gcc
def test_c_library_and_device_tests_pass(build):
    assert (build / "test_sgb1").exists() and (build / "test_device").exists()


def fake_adc(index: np.ndarray, channel: int) -> np.ndarray:
    """The C fake ADC (fake_board.c): (index * 37 + channel * 101) % 1024, in uint32 arithmetic."""
    return ((index.astype(np.uint64) * 37 + channel * 101) % (1 << 32)) % 1024


@needs_gcc
def test_example_firmware_stream_decodes_exactly_on_the_host(build, tmp_path):
    out = tmp_path / "stream.bin"
    done = subprocess.run(
        [str(build / "host_sim"), str(out), "3000", "1000", "400", "2000", "2100"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stderr.strip().splitlines()[-1])
    assert summary["overrun_samples"] > 0 and summary["stopped_samples"] == 100

    frames = p.Decoder().feed(out.read_bytes())
    assert isinstance(frames[0], p.Hello)
    hello = frames[0]
    assert hello.fs_num == 2000000 and hello.fs_den == 5556 and hello.labels == ("MLII", "V5")
    acks = [f for f in frames if isinstance(f, p.Ack)]
    assert [(a.command, a.seq) for a in acks] == [
        (0x81, 2),
        (0x84, 3),
        (0x85, 4),
        (0x82, 6),
        (0x81, 7),
    ]
    nacks = [f for f in frames if isinstance(f, p.Nack)]
    assert [(n.command, n.seq, n.reason) for n in nacks] == [(0x99, 5, 1)]

    asm = StreamAssembler()
    asm.on_hello(hello)
    chunks = [c for f in frames if isinstance(f, p.Data) if (c := asm.on_data(f, 0.0))]
    for c in chunks:
        idx = np.arange(c.first_index, c.end_index)
        for ch in range(2):
            raw = fake_adc(idx, ch).astype(np.float64)
            assert np.array_equal(c.samples[:, ch], ((raw - 512.0) / 200.0).astype(np.float32))
    received = sum(c.n_samples for c in chunks)
    assert asm.stats.samples_lost == summary["overrun_samples"] + summary["stopped_samples"]
    assert received + asm.stats.samples_lost == summary["ticks"]
    statuses = [f for f in frames if isinstance(f, p.Status)]
    assert statuses and statuses[-1].overrun_samples <= summary["overrun_samples"]
