"""The :class:`Source` contract shared by every input (device links, replays, synthetic, LSL)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator

from ..errors import SourceError
from .chunk import Chunk, SourceStats, StreamInfo


class Source(ABC):
    """A stream of :class:`Chunk` s.

    Use as a context manager and iterator, or call :meth:`read` from your own loop::

        with open_source("synthetic://ecg?fs=250&speed=0&duration=2") as src:
            print(src.info.fs, src.info.labels)
            for chunk in src:          # chunk.samples: (T, C) float32
                ...

    Attributes
    ----------
    uri : str
        What was opened (named in every error).
    info : StreamInfo or None
        Known after open (devices: from their HELLO, which open waits for).
    stats : SourceStats
        Running totals (a fresh copy on each access).
    finished : bool
        True once a finite source (a file without ``loop``, a ``duration``) has delivered
        everything; :meth:`read` then returns ``None`` at once.
    """

    def __init__(self, uri: str, iter_timeout: float | None = None) -> None:
        self.uri = uri
        self.info: StreamInfo | None = None
        self.finished = False
        self.closed = False
        self._pending: deque[Chunk] = deque()
        self._chunks = 0
        self._samples = 0
        self._iter_timeout = iter_timeout

    # -- what subclasses provide ---------------------------------------------------------------

    @abstractmethod
    def _fill(self, deadline: float | None) -> None:
        """Append chunks to ``self._pending`` or return at ``deadline`` (monotonic seconds,
        ``None``: wait as long as needed); set ``self.finished`` at the end of a finite stream."""

    def _close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (called once)."""

    def _extra_stats(self, stats: SourceStats) -> None:  # noqa: B027 - optional hook
        """Fill the counters the subclass keeps."""

    # -- the public API ------------------------------------------------------------------------

    @property
    def stats(self) -> SourceStats:
        stats = SourceStats(chunks=self._chunks, samples=self._samples)
        self._extra_stats(stats)
        return stats

    @property
    def pending(self) -> int:
        """Chunks already decoded and waiting: :meth:`read` returns the next of them at once."""
        return len(self._pending)

    def read(self, timeout: float | None = None) -> Chunk | None:
        """The next chunk, or ``None`` when none came within ``timeout`` seconds or the stream
        has ended (``self.finished`` tells which). ``timeout=None`` waits as long as it takes.

        Raises
        ------
        SourceError
            The source was closed, or it failed for good (a link that may not reconnect).
        """
        if self.closed:
            raise SourceError(f"{self.uri}: read from a closed source")
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while not self._pending and not self.finished:
            self._fill(deadline)
            if deadline is not None and time.monotonic() >= deadline:
                break
        if not self._pending:
            return None
        chunk = self._pending.popleft()
        self._chunks += 1
        self._samples += chunk.n_samples
        return chunk

    def close(self) -> None:
        """Close the source; idempotent."""
        if not self.closed:
            self.closed = True
            self._close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Chunk]:
        return self

    def __next__(self) -> Chunk:
        chunk = self.read(self._iter_timeout)
        if chunk is not None:
            return chunk
        if self.finished:
            raise StopIteration
        raise SourceError(f"{self.uri}: no data within {self._iter_timeout} s")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.uri!r}>"
