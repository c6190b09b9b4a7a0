"""Sources that make their samples on the host: file replays and synthetic signals.

Samples are released on an absolute schedule, so a slow reader never makes the stream drift:
sample ``n`` is due at ``t0 + n / (fs * speed)``, where ``t0`` is the first read. ``speed=1`` is
real time, ``speed=10`` ten times faster, ``speed=0`` as fast as the reader takes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..errors import ConfigError
from .base import Source
from .chunk import Chunk, StreamInfo


class Pacer:
    """When sample ``n`` (counted from 0) is due, in ``time.monotonic()`` seconds."""

    def __init__(self, fs: float, speed: float) -> None:
        if speed < 0:
            raise ConfigError(f"speed must be >= 0 (0: as fast as possible), got {speed}")
        self.rate = fs * speed
        self.t0: float | None = None

    def due(self, n: int) -> float:
        """Monotonic time at which sample ``n`` is due (``-inf`` at ``speed=0``)."""
        if self.t0 is None:
            self.t0 = time.monotonic()
        if self.rate == 0:
            return float("-inf")
        return self.t0 + n / self.rate


class PacedSource(Source):
    """Chunks of ``chunk`` samples from ``block(n) -> (n, C) float``, released on schedule.

    Parameters
    ----------
    uri : str
    info : StreamInfo
    block : callable giving the next n samples as (n, C) physical values
    total : number of samples, or None for an endless stream
    speed : 1 real time, 0 as fast as possible
    chunk : samples per chunk
    """

    def __init__(
        self,
        uri: str,
        info: StreamInfo,
        block: Callable[[int], np.ndarray],
        total: int | None,
        speed: float,
        chunk: int,
    ) -> None:
        super().__init__(uri)
        if chunk < 1:
            raise ConfigError(f"{uri}: chunk must be >= 1, got {chunk}")
        self.info = info
        self._block = block
        self._total = total
        self._chunk = int(chunk)
        self._pacer = Pacer(info.fs, speed)
        self._next = 0

    def _fill(self, deadline: float | None) -> None:
        n = self._chunk if self._total is None else min(self._chunk, self._total - self._next)
        if n <= 0:
            self.finished = True
            return
        due = self._pacer.due(self._next + n)
        now = time.monotonic()
        if due > now:
            wake = due if deadline is None else min(due, deadline)
            time.sleep(max(0.0, wake - now))
            if time.monotonic() < due:
                return
        samples = np.ascontiguousarray(self._block(n), dtype=np.float32)
        self._pending.append(Chunk(samples, self._next, time.monotonic()))
        self._next += n


def looping_block(values: np.ndarray, loop: bool) -> tuple[Callable[[int], np.ndarray], int | None]:
    """A ``block(n)`` reading ``values`` (T, C) in order, wrapping around when ``loop``."""
    pos = 0
    length = values.shape[0]

    def block(n: int) -> np.ndarray:
        nonlocal pos
        if not loop:
            out = values[pos : pos + n]
            pos += n
            return out
        idx = (pos + np.arange(n)) % length
        pos = (pos + n) % length
        return values[idx]

    return block, (None if loop else length)
