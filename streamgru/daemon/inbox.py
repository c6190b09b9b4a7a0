"""The inbox between the daemon's readers and its processing loop.

One bounded deque per stream behind one condition variable: the processing loop takes
*everything* that has arrived in one call (all pending chunks of a stream go through the model
together). A reader thread whose stream is full waits (back-pressure on its socket or tty)
instead of dropping: a gap is then visible, and counted, at the device's sample index.

Sources read on the processing thread itself (:mod:`streamgru.daemon.mux`) use
:meth:`Inbox.put_now`, which never waits: that thread empties the inbox every round, and reads a
source only while its stream has room (:meth:`Inbox.room`). When the processing thread sleeps
in a selector rather than on the condition variable, :meth:`Inbox.set_waker` gives the inbox a
way to wake it when a reader thread puts something.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..io.chunk import StreamInfo
from .device_beats import DeviceEvent


@dataclass(frozen=True)
class SourceEvent:
    """A message from a reader to the processing loop, in order with the chunks.

    kind : "opened" (``info`` holds the StreamInfo; chunks that follow come from it),
        "lost" (the source was lost), "ended" (a finite source reached its end), "device"
        (``device`` holds an EVENT frame the source decoded, on the stream's index)
    """

    kind: str
    info: StreamInfo | None = None
    device: DeviceEvent | None = None


class Inbox:
    """Bounded per-stream queues with one wake-up for the consumer.

    Parameters
    ----------
    capacity : items (chunks or events) each stream may hold
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self._queues: dict[str, deque] = {}
        self._cond = threading.Condition()
        self._pending = 0
        self._waker: Callable[[], None] | None = None

    def set_waker(self, waker: Callable[[], None] | None) -> None:
        """Also call ``waker()`` (from the putting thread) whenever an item arrives or
        :meth:`wake` is called: for a consumer that waits somewhere else than :meth:`take_all`."""
        self._waker = waker

    def add_stream(self, stream_id: str) -> None:
        with self._cond:
            self._queues.setdefault(stream_id, deque())

    def remove_stream(self, stream_id: str) -> list[Any]:
        """Forget a stream; returns what it still held."""
        with self._cond:
            q = self._queues.pop(stream_id, deque())
            self._pending -= len(q)
            self._cond.notify_all()
            return list(q)

    def put(self, stream_id: str, item: Any, stop: threading.Event) -> bool:
        """Append, waiting while the stream's queue is full; False when ``stop`` was set first."""
        with self._cond:
            q = self._queues.get(stream_id)
            while q is not None and len(q) >= self.capacity:
                if stop.is_set():
                    return False
                self._cond.wait(0.05)
                q = self._queues.get(stream_id)
            if q is None:
                return False
            q.append(item)
            self._pending += 1
            self._cond.notify_all()
        if self._waker is not None:
            self._waker()
        return True

    def put_now(self, stream_id: str, item: Any) -> bool:
        """Append without waiting and without waking anyone (the consumer's own thread puts);
        False when the stream is unknown. The caller keeps within :meth:`room`."""
        with self._cond:
            q = self._queues.get(stream_id)
            if q is None:
                return False
            q.append(item)
            self._pending += 1
            return True

    def room(self, stream_id: str) -> int:
        """How many more items the stream may hold before it is full."""
        q = self._queues.get(stream_id)
        return 0 if q is None else max(0, self.capacity - len(q))

    def take_all(self, timeout: float) -> dict[str, list[Any]]:
        """Everything waiting, per stream (waits up to ``timeout`` s when nothing is)."""
        with self._cond:
            if not self._pending and timeout > 0:
                self._cond.wait(timeout)
            if not self._pending:
                return {}
            out = {}
            for sid, q in self._queues.items():
                if q:
                    out[sid] = list(q)
                    q.clear()
            self._pending = 0
            self._cond.notify_all()  # readers waiting for room
            return out

    @property
    def waiting(self) -> int:
        """Items waiting in all streams."""
        return self._pending

    def depth(self, stream_id: str) -> int:
        q = self._queues.get(stream_id)
        return 0 if q is None else len(q)

    def wake(self) -> None:
        """Wake the consumer (a signal or a reload asks the loop to look up)."""
        with self._cond:
            self._cond.notify_all()
        if self._waker is not None:
            self._waker()
