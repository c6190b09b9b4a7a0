"""Text lines as samples: CSV (``1.0,2.0``) or Arduino Serial-Plotter (``a:1 b:2``) format.

One line is one sample of every channel; values are separated by commas, semicolons, tabs or
spaces; a value may carry a label (``label:value``). The first good line fixes the channel count
(and the labels, if it has them); a first line of names only (``MLII,V5``) is taken as a header.

Text has no sample index, so loss cannot be seen; a line that does not parse (wrong count, not a
number, longer than :data:`MAX_LINE`) is counted as malformed and as one lost sample, so that the
index keeps its place in time.
"""

from __future__ import annotations

import re

import numpy as np

from .chunk import Chunk

#: Longest accepted line in bytes; longer runs are discarded up to the next newline.
MAX_LINE = 4096

_SPLIT = re.compile(r"[,;\t ]+")


class AsciiLineReader:
    """Incremental text-line parser: bytes in, (T, C) float32 chunks out.

    Parameters
    ----------
    channels : the channel count, or None to take it from the first good line
    """

    def __init__(self, channels: int | None = None) -> None:
        self.channels = channels
        self.labels: tuple[str, ...] = ()
        self.lines = 0
        self.malformed = 0
        self.bytes_discarded = 0
        self.oversize = 0
        self._buf = bytearray()
        self._skipping = False
        self._next = 0
        self._lost = 0

    def reset(self) -> None:
        """Drop a partial line (after a reconnect)."""
        self.bytes_discarded += len(self._buf)
        self._buf.clear()
        self._skipping = False

    def feed(self, data: bytes, t_host: float) -> list[Chunk]:
        """Consume bytes; returns at most one chunk per contiguous run of good lines."""
        rows: list[list[float]] = []
        chunks: list[Chunk] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            piece = data[start:] if end < 0 else data[start:end]
            if self._skipping:
                self.bytes_discarded += len(piece) + (end >= 0)
            elif len(self._buf) + len(piece) > MAX_LINE:
                self.bytes_discarded += len(self._buf) + len(piece) + (end >= 0)
                self._buf.clear()
                self.oversize += 1
                self._skipping = True
                self._bad_line(rows, chunks, t_host)
            else:
                self._buf += piece
                if end >= 0:
                    self._line(bytes(self._buf), rows, chunks, t_host)
                    self._buf.clear()
            if end < 0:
                break
            self._skipping = False
            start = end + 1
        self._flush(rows, chunks, t_host)
        return chunks

    def _line(self, raw: bytes, rows: list, chunks: list, t_host: float) -> None:
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            return
        tokens = [t for t in _SPLIT.split(text) if t]
        labels, values = [], []
        try:
            for tok in tokens:
                label, sep, value = tok.rpartition(":")
                labels.append(label if sep else "")
                values.append(float(value))
        except ValueError:
            if self.lines == 0 and self.malformed == 0 and not self.labels and tokens:
                self.labels = tuple(tokens)  # a header line
                if self.channels is None:
                    self.channels = len(tokens)
                return
            self._bad_line(rows, chunks, t_host)
            return
        if self.channels is None:
            self.channels = len(values)
        if len(values) != self.channels:
            self._bad_line(rows, chunks, t_host)
            return
        if not self.labels and all(labels):
            self.labels = tuple(labels)
        self.lines += 1
        rows.append(values)

    def _bad_line(self, rows: list, chunks: list, t_host: float) -> None:
        self.malformed += 1
        self._flush(rows, chunks, t_host)
        self._lost += 1

    def _flush(self, rows: list, chunks: list, t_host: float) -> None:
        if not rows:
            return
        samples = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
        first = self._next + self._lost
        chunks.append(Chunk(samples, first, t_host, gap_before=self._lost))
        self._next = first + len(rows)
        self._lost = 0
        rows.clear()
