"""The golden vectors in firmware_bridge/vectors/ agree with the Python codec, byte for byte.

The C tests (firmware_bridge/tests/test_sgb1.c, run by tests/test_firmware_c.py) read the same
file, so the two sides agree with each other.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamgru.io import protocol as p
from streamgru.io.framing import cobs_decode, cobs_encode, crc16

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "firmware_bridge" / "vectors" / "sgb1_vectors.txt"


def unhex(text: str) -> bytes:
    return b"" if text == "-" else bytes.fromhex(text)


def read_vectors() -> dict[str, list]:
    out: dict[str, list] = {
        "crc": [],
        "cobs": [],
        "frame": [],
        "reject": [],
        "stream": [],
        "assemble": [],
    }
    lines = iter(VECTORS.read_text(encoding="utf-8").splitlines())
    for line in lines:
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word in ("crc", "cobs"):
            a, b = rest.split()
            out[word].append((unhex(a), b))
        elif word == "reject":
            why, name, wire = rest.split()
            out["reject"].append((why, name, unhex(wire)))
        elif word == "assemble":  # ordered steps: ("hello", [session]) / ("data", [...])
            steps = []
            for item in lines:
                if item == "end":
                    break
                key, *values = item.split()
                steps.append((key, values))
            out["assemble"].append((rest, steps))
        elif word in ("frame", "stream"):
            fields: dict[str, list[str]] = {"_head": rest.split()}
            for item in lines:
                if item == "end":
                    break
                key, _, value = item.partition(" ")
                fields.setdefault(key, []).append(value)
            out[word].append(fields)
    return out


VEC = read_vectors()


def build(fields: dict) -> p.Frame:
    """The frame a vector's inputs describe, built with the Python dataclasses."""
    kind = fields["_head"][0]
    one = {k: v[0] for k, v in fields.items() if k != "_head"}
    if kind == "hello":
        chans = [c.split() for c in fields["channel"]]
        num, den = map(int, one["fs"].split())
        return p.Hello(
            int(one["session"]),
            num,
            den,
            p.SampleFormat(int(one["format"])),
            one["device"],
            one["firmware"],
            tuple(float(c[0]) for c in chans),
            tuple(float(c[1]) for c in chans),
            tuple(c[2] for c in chans),
            tuple(c[3] for c in chans),
        )
    if kind == "data":
        ns, nc = map(int, one["shape"].split())
        fmt = p.SampleFormat(int(one["format"]))
        dtype = np.float32 if fmt is p.SampleFormat.FLOAT32 else np.int64
        values = np.array(one["values"].split(), dtype=np.float64).astype(dtype).reshape(ns, nc)
        return p.Data.from_values(
            int(one["first"]), int(one["t_us"]), values, fmt, int(one["status"])
        )
    if kind == "event":
        return p.Event(int(one["index"]), int(one["code"]), one["text"])
    if kind == "time_sync":
        return p.TimeSync(int(one["seq"]), int(one["host_time"]))
    simple = {"start": p.Start, "stop": p.Stop, "get_info": p.GetInfo, "ping": p.Ping}
    if kind in simple:
        return simple[kind](int(one["seq"]))
    fixed = {"status": p.Status, "ack": p.Ack, "nack": p.Nack}
    return fixed[kind](*map(int, one["fields"].split()))


def test_the_vectors_file_is_what_the_generator_writes():
    done = subprocess.run(
        [sys.executable, str(VECTORS.parent / "make_vectors.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_there_are_vectors_of_every_kind():
    kinds = {f["_head"][0] for f in VEC["frame"]}
    assert kinds == {
        "hello",
        "data",
        "status",
        "event",
        "ack",
        "nack",
        "start",
        "stop",
        "get_info",
        "ping",
        "time_sync",
    }
    assert len(VEC["crc"]) >= 3 and len(VEC["cobs"]) >= 10 and VEC["reject"] and VEC["stream"]


@pytest.mark.parametrize(("data", "want"), VEC["crc"])
def test_crc_vectors(data, want):
    assert crc16(data) == int(want, 16)


@pytest.mark.parametrize(("data", "want"), VEC["cobs"])
def test_cobs_vectors(data, want):
    assert cobs_encode(data) == unhex(want)
    assert cobs_decode(unhex(want)) == data


@pytest.mark.parametrize("fields", VEC["frame"], ids=[f["_head"][1] for f in VEC["frame"]])
def test_frame_vectors(fields):
    frame = build(fields)
    payload, wire = unhex(fields["payload"][0]), unhex(fields["wire"][0])
    assert p.frame_payload(frame) == payload
    assert p.encode(frame) == wire
    assert p.Decoder().feed(wire) == [frame]


@pytest.mark.parametrize(("why", "name", "wire"), VEC["reject"], ids=[r[1] for r in VEC["reject"]])
def test_reject_vectors(why, name, wire):
    dec = p.Decoder()
    assert dec.feed(wire) == []
    s = dec.stats
    assert s.bytes_discarded == len(wire)
    counted = {
        "crc": s.crc_errors,
        "cobs": s.malformed,
        "version": s.unsupported,
        "length": s.malformed,
        "data_length": s.malformed,
    }[why]
    assert counted == 1


def test_stream_vector():
    (fields,) = VEC["stream"]
    dec = p.Decoder()
    got = dec.feed(unhex(fields["in"][0]))
    assert [p.frame_payload(f) for f in got] == [unhex(x) for x in fields["out"]]


# ---- the worked examples in PROTOCOL.md -----------------------------------------------------

PROTOCOL_MD = ROOT / "firmware_bridge" / "PROTOCOL.md"


def worked_examples() -> list[tuple[bytes, bytes]]:
    """(payload, wire) pairs from the code blocks of PROTOCOL.md's "Worked examples" section."""
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    section = text.split("## 6. Worked examples", 1)[1]
    blocks = re.findall(r"```\n(.*?)```", section, flags=re.S)
    found = []
    for block in blocks:
        runs = re.findall(r"\b(payload|wire)((?:\s+[0-9a-f]{2}\b)+)", block)
        assert [kind for kind, _ in runs] == ["payload", "wire"] * (len(runs) // 2), block
        for (_, payload), (_, wire) in zip(runs[::2], runs[1::2]):
            found.append((bytes.fromhex(payload), bytes.fromhex(wire)))
    return found


def test_protocol_md_worked_examples_are_right_and_cover_every_frame_type():
    examples = worked_examples()
    seen = set()
    for payload, wire in examples:
        frames = p.Decoder().feed(wire)
        assert len(frames) == 1, wire.hex(" ")
        (frame,) = frames
        assert p.frame_payload(frame) == payload
        assert p.encode(frame) == wire
        seen.add(frame.TYPE)
    assert seen == set(p.FrameType)


# ---- the host's index rule (assemble vectors) -----------------------------------------------


@pytest.mark.parametrize(("name", "steps"), VEC["assemble"], ids=[a[0] for a in VEC["assemble"]])
def test_assemble_vectors(name, steps):
    """Gaps, wrap, stale frames however far back (no phantom gap after them) and restarts only
    on a new HELLO session, as firmware_bridge/PROTOCOL.md states them."""
    from streamgru.io.assembler import StreamAssembler

    asm = StreamAssembler()
    stale = 0
    for key, values in steps:
        if key == "hello":
            fmt = p.SampleFormat.INT16
            asm.on_hello(
                p.Hello(int(values[0]), 250, 1, fmt, "d", "f", (1.0,), (0.0,), ("mV",), ("I",))
            )
            continue
        first, n, verdict = int(values[0]), int(values[1]), values[2]
        data = p.Data.from_values(first, 0, np.zeros((n, 1), np.int64), "int16")
        chunk = asm.on_data(data, 0.0)
        if verdict == "stale":
            assert chunk is None, (name, values)
            stale += 1
            continue
        assert chunk.first_index == int(values[3]) and chunk.restarted == (verdict == "restart")
        if verdict == "accept":
            assert chunk.gap_before == int(values[4]), (name, values)
    assert asm.stats.stale == stale
    assert {name for name, _ in VEC["assemble"]} >= {"restart_is_a_new_session"}
