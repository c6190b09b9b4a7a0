"""A small XDF 1.0 writer for the tests (no tests here): what LabRecorder writes, by hand.

XDF is ``XDF:`` then chunks ``[n length bytes: 1][length: n bytes LE][tag: u16 LE][content]``
(length counts tag + content). Tags: 1 file header (XML), 2 stream header (u32 id + XML),
3 samples (u32 id, varlen count, then per sample a timestamp flag byte (8: a f64 follows) and
the values: little-endian numbers, or per channel a varlen length + UTF-8 bytes for strings),
4 clock offset (u32 id, f64 collection time, f64 offset), 6 stream footer (u32 id + XML).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

_FORMATS = {"float32": "<f4", "double64": "<f8", "int16": "<i2", "int32": "<i4"}


@dataclass
class XdfStream:
    """One stream to write: ``samples`` (n, C) numbers, or a list of strings (markers, C=1)."""

    name: str
    type: str
    fs: float
    channel_format: str
    samples: np.ndarray | list[str]
    timestamps: np.ndarray
    labels: Sequence[str] = ()
    units: Sequence[str] = ()
    extra: dict = field(default_factory=dict)


def _chunk(tag: int, content: bytes) -> bytes:
    length = len(content) + 2
    return struct.pack("<BQH", 8, length, tag) + content


def _varlen(n: int) -> bytes:
    return struct.pack("<BI", 4, n)


def _header_xml(s: XdfStream, n_channels: int) -> str:
    chans = "".join(
        f"<channel><label>{escape(lab)}</label><unit>{escape(unit)}</unit>"
        f"<type>{escape(s.type)}</type></channel>"
        for lab, unit in zip(s.labels, s.units or [""] * len(s.labels))
    )
    desc = f"<desc><channels>{chans}</channels></desc>" if chans else "<desc></desc>"
    return (
        '<?xml version="1.0"?><info>'
        f"<name>{escape(s.name)}</name><type>{escape(s.type)}</type>"
        f"<channel_count>{n_channels}</channel_count><nominal_srate>{s.fs}</nominal_srate>"
        f"<channel_format>{s.channel_format}</channel_format>"
        f"<source_id>{escape(s.name)}-src</source_id><created_at>100.0</created_at>"
        f"{desc}</info>"
    )


def _samples(sid: int, s: XdfStream) -> bytes:
    out = [struct.pack("<I", sid), _varlen(len(s.timestamps))]
    if s.channel_format == "string":
        for ts, text in zip(s.timestamps, s.samples):
            raw = str(text).encode()
            out.append(struct.pack("<Bd", 8, float(ts)) + _varlen(len(raw)) + raw)
    else:
        values = np.asarray(s.samples, dtype=_FORMATS[s.channel_format])
        for ts, row in zip(s.timestamps, values):
            out.append(struct.pack("<Bd", 8, float(ts)) + row.tobytes())
    return b"".join(out)


def write_xdf(path: Path, streams: Sequence[XdfStream], chunk: int = 100) -> Path:
    """Write ``streams`` to ``path`` as XDF 1.0, samples in chunks of ``chunk``; returns path."""
    parts = [b"XDF:", _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')]
    for sid, s in enumerate(streams, start=1):
        n_ch = 1 if s.channel_format == "string" else np.asarray(s.samples).shape[1]
        parts.append(_chunk(2, struct.pack("<I", sid) + _header_xml(s, n_ch).encode()))
    for sid, s in enumerate(streams, start=1):
        for a in range(0, len(s.timestamps), chunk):
            piece = XdfStream(
                s.name,
                s.type,
                s.fs,
                s.channel_format,
                s.samples[a : a + chunk],
                s.timestamps[a : a + chunk],
            )
            parts.append(_chunk(3, _samples(sid, piece)))
        parts.append(_chunk(4, struct.pack("<Idd", sid, float(s.timestamps[-1]), 0.0)))
    for sid, s in enumerate(streams, start=1):
        footer = (
            '<?xml version="1.0"?><info>'
            f"<first_timestamp>{float(s.timestamps[0])}</first_timestamp>"
            f"<last_timestamp>{float(s.timestamps[-1])}</last_timestamp>"
            f"<sample_count>{len(s.timestamps)}</sample_count>"
            "<clock_offsets><offset><time>0</time><value>0</value></offset></clock_offsets>"
            "</info>"
        )
        parts.append(_chunk(6, struct.pack("<I", sid) + footer.encode()))
    path.write_bytes(b"".join(parts))
    return path
