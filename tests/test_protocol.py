"""SGB1 codec: CRC, COBS, frame layouts, the incremental decoder and the stream assembler.

Property tests feed the decoder random bytes and corrupted streams: it never raises, never holds
more than one frame's worth of bytes, never returns a frame that differs from one that was sent,
returns every frame whose bytes arrived intact, and the assembler counts gaps exactly.
"""

from __future__ import annotations

import binascii
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamgru.errors import ProtocolError
from streamgru.io import protocol as p
from streamgru.io.assembler import StreamAssembler
from streamgru.io.framing import (
    MAX_ENCODED,
    MAX_PAYLOAD,
    cobs_decode,
    cobs_encode,
    crc16,
    encode_payload,
)

HELLO = p.Hello(
    7,
    360,
    1,
    p.SampleFormat.INT16,
    "dev",
    "fw 1",
    (200.0, 100.0),
    (1024.0, 0.0),
    ("mV", "uV"),
    ("MLII", "V5"),
)

FAST = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---- CRC and COBS ---------------------------------------------------------------------------


def test_crc_is_ccitt_false_and_matches_the_standard_library():
    assert crc16(b"123456789") == 0x29B1  # the CRC-16/CCITT-FALSE check value
    data = bytes(range(256)) * 3
    assert crc16(data) == binascii.crc_hqx(data, 0xFFFF)


@pytest.mark.parametrize(
    ("data", "encoded"),
    [
        (b"", b"\x01"),
        (b"\x00", b"\x01\x01"),
        (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
        (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
        (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    ],
)
def test_cobs_known_encodings(data, encoded):
    assert cobs_encode(data) == encoded
    assert cobs_decode(encoded) == data


@FAST
@given(st.binary(max_size=1200))
def test_cobs_round_trip_and_bounds(data):
    enc = cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(enc) == data


@pytest.mark.parametrize("block", [b"", b"\x00", b"\x05\x01\x02", b"\x02\x00", b"\x03\x01"])
def test_cobs_decode_rejects_malformed_blocks(block):
    assert cobs_decode(block) is None


def test_encode_payload_refuses_sizes_outside_the_limits():
    with pytest.raises(ValueError, match=r"4\.\.1024"):
        encode_payload(b"\x01\x02\x03")
    with pytest.raises(ValueError, match=r"4\.\.1024"):
        encode_payload(bytes(MAX_PAYLOAD + 1))
    assert len(encode_payload(bytes(MAX_PAYLOAD))) <= MAX_ENCODED + 1


# ---- frames ------------------------------------------------------------------------------


def all_frames() -> list[p.Frame]:
    return [
        HELLO,
        p.Data.from_values(0xFFFFFFF0, 99, np.array([[1, -2], [3, 4]]), "int16"),
        p.Data.from_values(5, 0, np.array([[8388607, -8388608, -1]]), "int24", status=1),
        p.Data.from_values(6, 0, np.array([[1.5], [np.inf], [-0.0]], np.float32), "float32"),
        p.Status(1, 2, 3, 4, 5),
        p.Event(9, 2, "lead off é"),
        p.Ack(0x81, 3, 1234),
        p.Nack(0x99, 4, 1),
        p.Start(1),
        p.Stop(2),
        p.GetInfo(3),
        p.Ping(65535),
        p.TimeSync(5, 2**63 + 5),
    ]


def test_every_frame_type_round_trips_split_anywhere():
    frames = all_frames()
    wire = b"".join(p.encode(f) for f in frames)
    for step in (1, 2, 7, len(wire)):
        dec = p.Decoder()
        out = [f for i in range(0, len(wire), step) for f in dec.feed(wire[i : i + step])]
        assert out == frames
        assert dec.stats.frames == len(frames)
        assert dec.stats.bytes_discarded == 0


def test_data_values_per_format():
    ints = np.array([[0, 1, -1], [32767, -32768, 7]])
    assert np.array_equal(p.Data.from_values(0, 0, ints, "int16").values(), ints)
    big = np.array([[8388607, -8388608, 65536]])
    assert np.array_equal(p.Data.from_values(0, 0, big, "int24").values(), big)
    with pytest.raises(ValueError, match="int16 values"):
        p.Data.from_values(0, 0, np.array([[40000]]), "int16")
    with pytest.raises(ValueError, match="sample format"):
        p.SampleFormat.parse("int8")


def test_data_layout_is_little_endian_with_the_format_in_the_flags():
    frame = p.Data.from_values(0x01020304, 0x0A0B0C0D, np.array([[0x1122, -2]]), "int16", 0x0102)
    assert p.frame_payload(frame) == bytes.fromhex("01020100040302010d0c0b0a010202012211feff")


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (bytes([2, 0x84, 0, 0, 1, 0]), "version 2"),
        (bytes([1, 0x77, 0, 0]), "unknown frame type"),
        (bytes([1, 0x84, 0, 0, 1]), "truncated PING"),
        (p.frame_payload(all_frames()[1]) + b"\x00", "needs 8 sample bytes"),
        (p.frame_payload(all_frames()[1])[:-1], "needs 8 sample bytes"),
        (bytes([1, 0x02, 0, 0]) + bytes(12), "no sample format"),
    ],
)
def test_decode_payload_names_what_is_wrong(payload, match):
    with pytest.raises(ProtocolError, match=match):
        p.decode_payload(payload)


def test_hello_with_zero_gain_is_rejected():
    bad = p.Hello(1, 1, 1, p.SampleFormat.INT16, "", "", (0.0,), (0.0,), ("",), ("",))
    with pytest.raises(ProtocolError, match="gain"):
        p.decode_payload(bad.payload())


def test_decoder_counts_rejected_frames_by_kind():
    good = p.encode(p.Ping(1))
    flipped = bytearray(good)
    flipped[2] ^= 0x10  # the type byte: COBS stays valid, the CRC does not
    wrong_version = encode_payload(bytes([2, 0x84, 0, 0, 1, 0]))
    bad_length = encode_payload(p.frame_payload(all_frames()[1]) + b"\x00")
    stream = b"\x00\x00" + bytes(flipped) + b"\x05\x01\x00" + wrong_version + bad_length + good
    dec = p.Decoder()
    assert dec.feed(stream) == [p.Ping(1)]
    s = dec.stats
    assert (s.frames, s.crc_errors, s.malformed, s.unsupported) == (1, 1, 2, 1)
    assert s.bytes_discarded == len(stream) - len(good)


def test_a_stream_without_delimiters_is_dropped_in_bounded_memory():
    dec = p.Decoder()
    junk = bytes(range(1, 256)) * 40  # 10 kB, no 0x00
    for i in range(0, len(junk), 100):
        assert dec.feed(junk[i : i + 100]) == []
        assert dec.pending <= MAX_ENCODED
    good = p.encode(p.Ping(3))
    assert dec.feed(b"\x00" + good) == [p.Ping(3)]
    assert dec.stats.oversize == 1
    assert dec.stats.bytes_discarded == len(junk) + 1


@FAST
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_decoder_never_raises_and_stays_bounded_on_random_bytes(parts):
    dec = p.Decoder()
    total = 0
    for part in parts:
        for frame in dec.feed(part):
            assert isinstance(frame, tuple(p._BY_TYPE.values()))
        total += len(part)
        assert dec.pending <= MAX_ENCODED
    s = dec.stats
    assert s.bytes_discarded + dec.pending <= total


# ---- corrupted streams: exact survival ----------------------------------------------------


def make_stream(sizes: list[int], channels: int, fmt: str, start: int):
    """DATA frames of the given sizes, contiguous from ``start``; returns (frames, wire, spans)."""
    rng = np.random.default_rng(len(sizes))
    sfmt = p.SampleFormat.parse(fmt)
    lo, hi = (-1000, 1000) if sfmt is not p.SampleFormat.FLOAT32 else (-1, 1)
    frames, spans, wire = [], [], bytearray()
    index = start
    for n in sizes:
        vals = rng.integers(lo, hi, size=(n, channels))
        frame = p.Data.from_values(index, index * 3, vals, sfmt)
        index += n
        start_pos = len(wire)
        wire += p.encode(frame)
        frames.append(frame)
        spans.append((start_pos, len(wire) - 1))  # [first byte, delimiter]
    return frames, bytes(wire), spans


mutation = st.tuples(
    st.sampled_from(["flip", "delete", "insert"]),
    st.integers(0, 10**6),
    st.binary(min_size=1, max_size=8),
)


@FAST
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=25),
    channels=st.integers(1, 3),
    fmt=st.sampled_from(["int16", "int24", "float32"]),
    mutations=st.lists(mutation, max_size=6),
    cuts=st.lists(st.integers(0, 10**6), max_size=8),
)
def test_corrupted_streams_never_yield_a_corrupted_frame(sizes, channels, fmt, mutations, cuts):
    frames, wire, spans = make_stream(sizes, channels, fmt, start=0)
    touched: set[int] = set()
    buf = bytearray(wire)
    at = {m[1] % len(wire): m for m in mutations}  # one mutation per position of the wire
    # apply from the end so that earlier positions stay where they were
    for i in sorted(at, reverse=True):
        kind, _, data = at[i]
        touched.add(i)
        if kind == "flip":
            buf[i] ^= data[0] or 0x01
        elif kind == "delete":
            del buf[i]
            touched.add(i + 1)  # a later mutation at index i now lands on the original byte i + 1
        else:
            buf[i:i] = data
    dec = p.Decoder()
    got: list[p.Frame] = []
    points = sorted({c % (len(buf) + 1) for c in cuts} | {0, len(buf)})
    for a, b in zip(points, points[1:]):
        got += dec.feed(bytes(buf[a:b]))
    sent = {f.first_index: f for f in frames}
    for f in got:
        assert f == sent[f.first_index]  # never a corrupted sample
    intact = [
        f
        for f, (s0, s1) in zip(frames, spans)
        if not touched & set(range(s0, s1 + 1)) and (s0 == 0 or s0 - 1 not in touched)
    ]
    got_ids = {f.first_index for f in got}
    assert {f.first_index for f in intact} <= got_ids
    # what the assembler counts is exactly what is missing between the frames that came
    asm = StreamAssembler()
    asm.on_hello(
        p.Hello(
            1,
            250,
            1,
            p.SampleFormat.parse(fmt),
            "",
            "",
            (1.0,) * channels,
            (0.0,) * channels,
            ("",) * channels,
            ("",) * channels,
        )
    )
    chunks = [c for f in got if (c := asm.on_data(f, 0.0)) is not None]
    ordered = sorted(got, key=lambda f: f.first_index)
    assert [c.first_index for c in chunks] == [f.first_index for f in ordered]
    holes = [b.first_index - (a.first_index + a.n_samples) for a, b in zip(ordered, ordered[1:])]
    assert asm.stats.gaps == sum(h > 0 for h in holes)
    assert asm.stats.samples_lost == sum(holes)


# ---- the assembler -------------------------------------------------------------------------


def data(first: int, n: int, channels: int = 2, fmt: str = "int16") -> p.Data:
    values = (np.arange(n * channels).reshape(n, channels) + first) % 1000
    return p.Data.from_values(first, 0, values, fmt)


def test_assembler_converts_to_physical_units_with_gain_and_baseline():
    asm = StreamAssembler()
    info = asm.on_hello(HELLO)
    assert (info.fs, info.labels, info.units) == (360.0, ("MLII", "V5"), ("mV", "uV"))
    frame = p.Data.from_values(0, 0, np.array([[1224, 50], [824, -100]]), "int16")
    chunk = asm.on_data(frame, 1.5)
    assert chunk.samples.dtype == np.float32 and chunk.samples.flags.c_contiguous
    assert np.array_equal(chunk.samples, np.array([[1.0, 0.5], [-1.0, -1.0]], np.float32))
    assert (chunk.first_index, chunk.t_host, chunk.gap_before) == (0, 1.5, 0)


def test_data_before_hello_and_mismatched_data_are_ignored():
    asm = StreamAssembler()
    assert asm.on_data(data(0, 4), 0.0) is None
    asm.on_hello(HELLO)
    assert asm.on_data(data(4, 4, channels=3), 0.0) is None
    assert asm.on_data(data(4, 4, fmt="int24"), 0.0) is None
    assert asm.on_data(data(8, 4), 0.0).first_index == 8
    assert asm.stats.ignored == 3
    assert asm.stats.gaps == 0  # the first chunk defines the start


@FAST
@given(
    start=st.one_of(st.integers(0, 2**32 - 1), st.integers(2**32 - 600, 2**32 - 1)),
    steps=st.lists(st.tuples(st.integers(1, 50), st.booleans()), min_size=1, max_size=60),
)
def test_gaps_are_counted_exactly_across_the_32_bit_wrap(start, steps):
    asm = StreamAssembler()
    asm.on_hello(HELLO)
    index = start  # unwrapped
    delivered = []
    lost = gaps = 0
    pending_gap = 0
    for n, dropped in steps:
        if dropped:
            pending_gap += n
        else:
            chunk = asm.on_data(data(index & 0xFFFFFFFF, n), 0.0)
            if delivered:
                assert chunk.gap_before == pending_gap
                lost += pending_gap
                gaps += pending_gap > 0
            if chunk is not None:
                delivered.append(chunk)
            pending_gap = 0
        index += n
    if delivered:
        base = delivered[0].first_index
        assert base == start or base < 2**32
        for a, b in zip(delivered, delivered[1:]):
            assert b.first_index == a.end_index + b.gap_before
    assert (asm.stats.gaps, asm.stats.samples_lost) == (gaps, lost)


def test_stale_frames_are_dropped_and_restarts_continue_the_index():
    asm = StreamAssembler()
    asm.on_hello(HELLO)
    asm.on_data(data(1000, 10), 0.0)
    assert asm.on_data(data(995, 10), 0.0) is None  # a duplicate, just behind
    assert asm.stats.ignored == 1
    # a new session restarts even when the index looks like it continues
    asm.on_hello(replace(HELLO, session=8))
    chunk = asm.on_data(data(0, 5), 0.0)
    assert chunk.restarted and chunk.first_index == 1010
    assert asm.stats.restarts == 1
    assert not asm.on_data(data(5, 5), 0.0).restarted


@pytest.mark.parametrize("back", [4097, 100_000, 2**31 - 1, 2**31])
def test_a_frame_replayed_from_far_back_is_stale_not_a_restart(back):
    """Issue 19, point 3: a DATA frame from more than 4096 samples back (or 2**31) was taken as
    a device restart, fed its old samples to the model and made the next real frame report a
    phantom gap. Only a HELLO of a new session is a restart; stale frames are counted and dropped."""
    asm = StreamAssembler()
    asm.on_hello(HELLO)
    start = 2**31 + 5000  # far enough from 0 that 2**31 back stays on the counter
    first = asm.on_data(data(start, 10), 0.0)
    assert asm.on_data(data((start + 10 - back) & 0xFFFFFFFF, 10), 0.0) is None
    assert asm.on_hello(HELLO) is not None  # the same session again (a reconnect): no restart
    assert asm.on_data(data((start + 10 - back) & 0xFFFFFFFF, 10), 0.0) is None
    nxt = asm.on_data(data(start + 10, 10), 0.0)  # the real device goes on
    assert nxt.first_index == first.end_index and nxt.gap_before == 0 and not nxt.restarted
    assert (asm.stats.stale, asm.stats.ignored, asm.stats.restarts) == (2, 2, 0)
    assert (asm.stats.gaps, asm.stats.samples_lost) == (0, 0)
