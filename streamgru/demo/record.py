"""The demo's recording: MIT-BIH record 100, read without optional packages.

The record ships in ``streamgru/data/mitdb/`` (``100.hea``, ``100.dat`` in format 212,
``100.atr``; see ``ATTRIBUTION.md`` there). The demo must run from a clean install, where the
optional ``wfdb`` package may be absent, so this module reads the two formats it needs itself:

* format 212: two 12-bit two's-complement samples in three bytes (byte 0 = low 8 bits of the
  first, byte 1 = high nibbles of both, first in the low nibble, byte 2 = low 8 bits of the
  second), signals interleaved sample by sample;
* MIT annotations: 16-bit little-endian words, code in the top 6 bits and time increment in the
  low 10; code 59 (SKIP) carries a 32-bit increment in the next two words (high word first),
  60-62 (NUM, SUB, CHN) carry a value, 63 (AUX) a string of the given length; 0/0 ends.

Physical values are ``(digital - baseline) / gain`` as ``wfdb.rdrecord`` computes them.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SourceError

#: Annotation codes of beats (wfdb's ``is_beat`` set: N L R a V F J A S E j / Q e n f r B ?).
BEAT_CODES = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 25, 30, 34, 35, 38, 41})
_SKIP, _NUM, _SUB, _CHN, _AUX = 59, 60, 61, 62, 63


@dataclass(frozen=True)
class Record:
    """A WFDB record in memory.

    Attributes
    ----------
    name : record name ("100")
    fs : sample rate, Hz
    digital : (T, C) int16 ADC values
    gain, baseline : (C,) float64; physical = (digital - baseline) / gain
    labels, units : per channel
    """

    name: str
    fs: float
    digital: np.ndarray
    gain: np.ndarray
    baseline: np.ndarray
    labels: tuple[str, ...]
    units: tuple[str, ...]

    def physical(self, stop: int | None = None) -> np.ndarray:
        """(T, C) float64 physical values of the first ``stop`` samples (all by default)."""
        d = self.digital[:stop].astype(np.float64)
        return (d - self.baseline) / self.gain


def record_dir() -> Path:
    """The folder of the shipped MIT-BIH files (inside the installed package)."""
    return Path(str(importlib.resources.files("streamgru") / "data" / "mitdb"))


def read_record(name: str = "100", folder: Path | None = None) -> Record:
    """Read a format-212 record (header + signal file)."""
    folder = record_dir() if folder is None else Path(folder)
    hea = folder / f"{name}.hea"
    try:
        lines = [ln.strip() for ln in hea.read_text().splitlines()]
    except OSError as exc:
        raise SourceError(f"{hea}: cannot read the record header: {exc}") from exc
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    head = lines[0].split()
    n_sig, fs, n_samples = int(head[1]), float(head[2].split("/")[0]), int(head[3])
    gains: list[float] = []
    bases: list[float] = []
    labels: list[str] = []
    units: list[str] = []
    files: set[str] = set()
    for line in lines[1 : 1 + n_sig]:
        f = line.split()
        if f[1] != "212":
            raise SourceError(f"{hea}: signal format {f[1]} is not supported (only 212)")
        gain_text = f[2]
        unit = "mV"
        if "/" in gain_text:
            gain_text, unit = gain_text.split("/", 1)
        gain_text = gain_text.split("(")[0]
        gains.append(float(gain_text) or 200.0)
        bases.append(float(f[4]))  # ADC zero (the baseline when none is given)
        labels.append(" ".join(f[8:]) if len(f) > 8 else f"ch{len(labels)}")
        units.append(unit)
        files.add(f[0])
    if len(files) != 1:
        raise SourceError(f"{hea}: signals in several files are not supported")
    raw = np.fromfile(folder / files.pop(), dtype=np.uint8)
    digital = _unpack_212(raw, n_sig)[:n_samples]
    return Record(name, fs, digital, np.array(gains), np.array(bases), tuple(labels), tuple(units))


def _unpack_212(raw: np.ndarray, n_sig: int) -> np.ndarray:
    """Bytes of a format-212 file → (T, n_sig) int16."""
    raw = raw[: (raw.size // 3) * 3].reshape(-1, 3).astype(np.int16)
    first = raw[:, 0] | ((raw[:, 1] & 0x0F) << 8)
    second = raw[:, 2] | ((raw[:, 1] & 0xF0) << 4)
    flat = np.empty(2 * raw.shape[0], dtype=np.int16)
    flat[0::2], flat[1::2] = first, second
    flat[flat > 2047] -= 4096
    n = flat.size // n_sig
    return flat[: n * n_sig].reshape(n, n_sig)


def read_beats(name: str = "100", folder: Path | None = None, ext: str = "atr") -> np.ndarray:
    """Sample indices (int64, sorted) of the beat annotations of a record."""
    folder = record_dir() if folder is None else Path(folder)
    path = folder / f"{name}.{ext}"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read the annotations: {exc}") from exc
    words = np.frombuffer(data[: len(data) // 2 * 2], dtype="<u2")
    t, k, beats = 0, 0, []
    while k < words.size:
        code, value = int(words[k]) >> 10, int(words[k]) & 0x3FF
        k += 1
        if code == 0 and value == 0:
            break
        if code == _SKIP:
            hi, lo = int(words[k]), int(words[k + 1])
            skip = (hi << 16) | lo
            t += skip - (1 << 32) if skip >= 1 << 31 else skip
            k += 2
        elif code == _AUX:
            k += (value + 1) // 2
        elif code in (_NUM, _SUB, _CHN):
            continue
        else:
            t += value
            if code in BEAT_CODES:
                beats.append(t)
    return np.array(beats, dtype=np.int64)
