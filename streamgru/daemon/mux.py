"""Reading every running socket source on the processing thread, from one selector.

A :class:`~streamgru.daemon.reader.SourceReader` thread opens its source, waits for its
description and reconnects it when it is lost: the blocking parts. Once the source runs and
has a descriptor a selector may watch (``fileno()``: the TCP and UDP device links), the reader
*offers* it to the :class:`SourceMux` and sleeps. The processing thread then waits in
:meth:`SourceMux.wait` on all those descriptors at once (and on a wake-up pipe for the inbox),
reads the sources that have bytes (:meth:`SourceMux.pump`: ``read(timeout=0)``, decode, into
the inbox without waiting) and runs them through the model in the same round. So a sample
goes from its socket to its prediction without a thread hand-off, and 64 streams cost one
thread's wake-ups instead of 64 threads contending for the GIL.

A source goes back to its reader thread (:meth:`SourceReader.hand_back`) when its link goes
down (``fileno()`` becomes None or changes: reconnecting blocks), when a read reports a status
(lost, refused, ended), when the reader is stopped (:meth:`withdraw`) and when the mux closes.
A source the mux holds that had nothing to read for :data:`SWEEP_S` seconds is read anyway, so
a stalled link is noticed and its counters are copied as in the reader's own loop. A stream whose inbox
queue is full is not read that round (its bytes wait in the socket: back-pressure, as a
reader thread would wait).
"""

from __future__ import annotations

import os
import selectors
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from .inbox import Inbox

if TYPE_CHECKING:
    from .reader import SourceReader

#: A source the mux holds is read (``read(timeout=0)``) at least this often, seconds.
SWEEP_S = 0.05
#: Most reads of one source in one round (each gives at most one chunk).
MAX_READS_PER_ROUND = 64


class SourceMux:
    """One selector over the running socket sources (see the module docstring).

    Parameters
    ----------
    inbox : where the sources' chunks and events go (:meth:`Inbox.put_now`)
    """

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self.closed = False
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        # the pipe outlives close(): a reader thread may still wake() (never a reused fd)
        weakref.finalize(self, _close_fds, self._wake_r, self._wake_w)
        self._lock = threading.RLock()
        self._offers: list[tuple[SourceReader, Any]] = []
        self._active: dict[SourceReader, tuple[Any, int]] = {}
        self._last_read: dict[SourceReader, float] = {}  # when the mux last read each source
        self._carry: set[SourceReader] = set()  # sources with decoded chunks left to read
        self._woken = False
        self._next_sweep = 0.0

    @property
    def sources(self) -> int:
        """How many sources the mux reads now."""
        return len(self._active)

    # ------------------------------------------------------------- any thread
    def offer(self, reader: SourceReader, src: Any) -> bool:
        """A reader hands its running source over; False when the mux is closed."""
        with self._lock:
            if self.closed:
                return False
            self._offers.append((reader, src))
        self.wake()
        return True

    def withdraw(self, reader: SourceReader) -> None:
        """Give ``reader``'s source back to it now (it is being stopped), if the mux has it."""
        with self._lock:
            for k, (r, _src) in enumerate(self._offers):
                if r is reader:
                    del self._offers[k]
                    reader.hand_back(None)
                    return
            if reader in self._active:
                self._release(reader, None)

    def wake(self) -> None:
        """Interrupt :meth:`wait` (an offer, a chunk from a reader thread, a stop request)."""
        if self._woken or self.closed:
            return
        self._woken = True
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):  # full (a wake-up is pending anyway) or closed
            pass

    # ------------------------------------------------------ processing thread
    def wait(self, timeout: float) -> list[SourceReader]:
        """Take the offers, then wait up to ``timeout`` s for a source to be readable or for a
        wake-up; returns the readers whose sources are ready (their bytes or decoded chunks)."""
        with self._lock:
            if self.closed:
                return []
            self._take_offers()
            ready = [r for r in self._carry if r in self._active]  # chunks left from a round
            self._carry.clear()
        if ready or self.inbox.waiting:
            timeout = 0.0
        events = self._selector.select(max(0.0, timeout))
        for key, _mask in events:
            if key.data is None:
                self._drain_wake_pipe()
            elif key.data not in ready:
                ready.append(key.data)
        return ready

    def pump(self, ready: list[SourceReader]) -> None:
        """Read the ``ready`` sources (and those not read for :data:`SWEEP_S`) into the inbox."""
        with self._lock:
            now = time.monotonic()
            if now >= self._next_sweep:  # the sources not read for a while, read anyway
                self._next_sweep = now + SWEEP_S
                idle = [r for r, t in self._last_read.items() if now - t >= SWEEP_S]
                ready = ready + [r for r in idle if r not in ready]
            for reader in ready:
                entry = self._active.get(reader)
                if entry is None:
                    continue
                src, fd = entry
                self._last_read[reader] = now
                status = self._read(reader, src)
                if status is not None or src.fileno() != fd:
                    self._release(reader, status)

    def close(self) -> None:
        """Give every source back and stop accepting offers (idempotent)."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            for reader, _src in self._offers:
                reader.hand_back(None)
            self._offers.clear()
            for reader in list(self._active):
                self._release(reader, None)
            self._selector.close()

    # ---------------------------------------------------------------- inside
    def _take_offers(self) -> None:
        for reader, src in self._offers:
            fd = src.fileno()
            try:
                if fd is None:
                    raise ValueError("the link went down before it was taken")
                self._selector.register(fd, selectors.EVENT_READ, reader)
            except (ValueError, KeyError, OSError):
                reader.hand_back(None)  # the reader goes on with it (or reconnects it)
                continue
            self._active[reader] = (src, fd)
            self._last_read[reader] = time.monotonic()
            if src.pending:  # decoded by the reader's thread, not yet read
                self._carry.add(reader)
        self._offers.clear()

    def _read(self, reader: SourceReader, src: Any) -> str | None:
        """Read what ``src`` has, within its stream's room; a status ends the mux's hold."""
        budget = min(self.inbox.room(reader.stream_id), MAX_READS_PER_ROUND)
        reader.in_mux = True
        try:
            for _ in range(budget):
                status = reader.read_once(src, 0.0)
                if status is not None:
                    return status
                if not src.pending:
                    return None
        finally:
            reader.in_mux = False
        if src.pending:  # out of room this round: read on at the next, without waiting
            self._carry.add(reader)
        return None

    def _release(self, reader: SourceReader, status: str | None) -> None:
        _src, fd = self._active.pop(reader)
        self._last_read.pop(reader, None)
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError, OSError):
            pass
        reader.hand_back(status)

    def _drain_wake_pipe(self) -> None:
        self._woken = False  # before reading: a wake-up after this point writes again
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass


def _close_fds(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
