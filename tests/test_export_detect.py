"""On-device detection: the exported int8 ECG model and the C beat detector of
firmware_bridge/examples/ecg_detect send each beat as an SGB1 EVENT; the host decodes them and
finds exactly the beats BeatDetector finds on the fixed-point reference's scores.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
from test_export_fixed import ECG, held_out_segment

import streamgru as sg
from streamgru.export import export_c, export_spec
from streamgru.export.api import quantize_for
from streamgru.export.calibration import builtin_segment
from streamgru.export.fixed_reference import run_fixed
from streamgru.export.toolchain import HOST_FLAGS, find_tool
from streamgru.io.protocol import Decoder, Event, encode
from streamgru.signal.beats import BeatDetector

ROOT = Path(__file__).resolve().parents[1]
FW = ROOT / "firmware_bridge"
EX = FW / "examples" / "ecg_detect"
BEAT_CODE = 0x0101
TEXT = re.compile(r"^beat s=(\d+) e=(\d+)$")
POST = {"threshold": 0.5, "refractory_s": 0.25, "max_wait_s": 0.2}


def build_detect_sim(src: Path, out: Path) -> Path:
    cmd = [find_tool("gcc"), *HOST_FLAGS, "-DSG_PREFIX=ecg", '-DSG_HEADER="ecg.h"']
    cmd += ["-I", str(FW), "-I", str(EX), "-I", str(src), "-o", str(out)]
    cmd += [str(EX / f) for f in ("detect_sim.c", "beat_detect.c", "beat_event.c")]
    cmd += [str(FW / "sgb1.c"), str(src / "ecg.c")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return out


def test_device_beats_arrive_as_events_equal_to_host_decisions(tmp_path):
    model = sg.load_model(ECG)
    X, _ = held_out_segment()
    X = X[:21600]  # one minute
    export_c(model, tmp_path / "c", "int8", "ecg", log=lambda _l: None)
    exe = build_detect_sim(tmp_path / "c", tmp_path / "detect_sim")
    det = BeatDetector(360.0, **POST)
    args = [str(exe), str(len(X)), "0.5", str(det.refractory_samples), str(det.max_wait_samples)]
    done = subprocess.run(args, input=X.tobytes(), capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    frames = Decoder().feed(done.stdout)
    assert frames and all(isinstance(f, Event) and f.code == BEAT_CODE for f in frames)
    spec = export_spec(model, "ecg", fixed=True)
    scores = run_fixed(
        quantize_for(model, spec, "int8", builtin_segment()), spec.conditioning, True, X
    )
    expected = det.update(scores[:, 0], first_index=0)
    assert len(expected) > 60  # a minute of sinus rhythm
    assert [f.sample_index for f in frames] == [e.index for e in expected]
    for frame, event in zip(frames, expected):
        match = TEXT.match(frame.text)
        assert match, frame.text
        assert int(match.group(2)) == event.emitted_index
        # the device rounds in float32: (uint32)(score * 1000 + 0.5)
        s = np.float32(min(max(event.score, 0.0), 9.999))
        assert int(match.group(1)) == int(s * np.float32(1000.0) + np.float32(0.5))


def test_protocol_doc_golden_vector_of_a_beat_event():
    doc = (FW / "PROTOCOL.md").read_text()
    section = doc[doc.index("### Beat events") :]
    payload = re.search(r"payload ((?:[0-9a-f]{2} ?)+)", section).group(1).split()
    wire = re.search(r"wire    ((?:[0-9a-f]{2} ?)+)", section).group(1).split()
    event = Event(sample_index=123456, code=BEAT_CODE, text="beat s=873 e=123470")
    assert bytes.fromhex("".join(payload)) == event.payload()
    assert bytes.fromhex("".join(wire)) == encode(event)


def test_cortex_m4_sends_the_same_beat_events(tmp_path):
    from streamgru.export import cortexm as cm

    model = sg.load_model(ECG)
    X, _ = held_out_segment()
    X = X[:3600]  # ten seconds on the emulated M4F
    export_c(model, tmp_path / "c", "int8", "ecg", log=lambda _l: None)
    det = BeatDetector(360.0, **POST)
    elf = cm.build_firmware(
        tmp_path / "c",
        "ecg",
        X,
        tmp_path / "detect.elf",
        main=EX / "cortexm_main.c",
        extra=(EX / "beat_detect.c", EX / "beat_event.c", FW / "sgb1.c"),
        defines=(
            "SG_THRESHOLD=0.5f",
            f"SG_REFRACTORY={det.refractory_samples}u",
            f"SG_MAX_WAIT={det.max_wait_samples}u",
        ),
    )
    wire = b"".join(bytes.fromhex(line) for line in cm.run_firmware_lines(elf))
    frames = Decoder().feed(wire)
    spec = export_spec(model, "ecg", fixed=True)
    scores = run_fixed(
        quantize_for(model, spec, "int8", builtin_segment()), spec.conditioning, True, X
    )
    expected = det.update(scores[:, 0], first_index=0)
    assert len(expected) >= 10
    assert [(f.code, f.sample_index) for f in frames] == [(BEAT_CODE, e.index) for e in expected]
