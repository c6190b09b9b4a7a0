"""The daemon's sink thread: :class:`SinkWriter` drains one bounded queue of :class:`Item` into every
stream's sinks through :class:`SinkSlot` (reopened with backoff). See :mod:`streamgru.daemon.reader`
for the threads and queues as a whole.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import StreamgruError
from ..io.chunk import PredictionBlock
from .logs import log
from .metrics import LatencyRecorder, StreamCounters
from .reader import Backoff, _log


# -------------------------------------------------------------------- writers
class SinkSlot:
    """One open (or failed, to be reopened) sink of the :class:`SinkWriter`."""

    def __init__(self, uri: str, open_sink: Callable[[str], Any], backoff: Backoff) -> None:
        self.uri = uri
        self.open_sink = open_sink
        self.backoff = backoff
        self.sink: Any = None
        self.errors = 0
        self.dirty = False
        self.retry_at = 0.0

    def open(self) -> None:
        """Open now (raises on failure)."""
        self.sink = self.open_sink(self.uri)
        self.backoff.reset()

    def write(self, block: PredictionBlock, now: float) -> bool:
        """Write a block; False when the sink is down (the block is lost for this sink)."""
        if self.sink is None and not self._reopen(now):
            return False
        try:
            self.sink.write(block)
        except (StreamgruError, OSError, ValueError) as exc:
            self._fail("sink write failed", exc, now)
            return False
        self.dirty = True
        return True

    def flush(self, now: float) -> None:
        if self.sink is None or not self.dirty:
            return
        self.dirty = False
        try:
            self.sink.flush()
        except (StreamgruError, OSError, ValueError) as exc:
            self._fail("sink flush failed", exc, now)

    def close(self) -> None:
        self.flush(time.monotonic())
        if self.sink is not None:
            try:
                self.sink.close()
            except Exception as exc:  # report, but closing goes on
                self.errors += 1
                log(_log, logging.ERROR, "sink close failed", sink=self.uri, error=str(exc))
            self.sink = None

    def _fail(self, what: str, exc: BaseException, now: float) -> None:
        self.errors += 1
        log(_log, logging.ERROR, what, sink=self.uri, error=str(exc))
        try:
            self.sink.close()
        except Exception:  # already broken
            pass
        self.sink = None
        self.retry_at = now + self.backoff.next()

    def _reopen(self, now: float) -> bool:
        if now < self.retry_at:
            return False
        try:
            self.open()
        except (StreamgruError, OSError) as exc:
            self.errors += 1
            self.retry_at = now + self.backoff.next()
            log(_log, logging.WARNING, "sink unavailable", sink=self.uri, error=str(exc))
            return False
        log(_log, logging.INFO, "sink open", sink=self.uri)
        return True


@dataclass
class Item:
    """A block on its way to its sinks, with where its counts and latency go."""

    block: PredictionBlock
    uris: tuple[str, ...]
    counters: StreamCounters
    recorder: LatencyRecorder


class SinkWriter(threading.Thread):
    """Writes prediction blocks to their sinks from one bounded queue (one thread, all sinks).

    A block goes to each of its stream's sinks in turn (fan-out); the per-sample latency
    (arrival to written) and ``samples_out`` are recorded once, when the first sink that takes
    the block has it (a failing sink does not hide what the others wrote).
    Sinks are flushed whenever the queue runs empty. A sink that fails is closed and reopened
    with backoff; what it could not take is counted in the stream's ``dropped_output``.

    Parameters
    ----------
    open_sink : ``streamgru.io.sinks.open_sink`` (injectable for tests)
    capacity : entries the queue holds (an entry is the blocks of one processing round); an
        entry that finds it full for ``put_timeout`` seconds is dropped and counted
    backoff : initial and longest wait before reopening a failed sink, seconds
    clock : the clock ``t_host`` is measured on (``time.monotonic``)
    """

    def __init__(
        self,
        open_sink: Callable[[str], Any],
        capacity: int = 4096,
        put_timeout: float = 1.0,
        backoff: tuple[float, float] = (0.2, 10.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name="streamgru-sinks", daemon=True)
        self.open_sink = open_sink
        self.queue: queue.Queue = queue.Queue(maxsize=capacity)
        self.put_timeout = put_timeout
        self.backoff = backoff
        self.clock = clock
        self.slots: dict[str, SinkSlot] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------ from other threads
    def add(self, uri: str) -> SinkSlot:
        """The slot of ``uri``, opened now if new (an open failure is logged and retried)."""
        with self._lock:
            slot = self.slots.get(uri)
            if slot is not None:
                return slot
            slot = SinkSlot(uri, self.open_sink, Backoff(*self.backoff))
            self.slots[uri] = slot
        try:
            slot.open()
        except (StreamgruError, OSError) as exc:
            slot.errors += 1
            slot.retry_at = self.clock() + slot.backoff.next()
            log(_log, logging.ERROR, "sink unavailable: will retry", sink=uri, error=str(exc))
        return slot

    def retire(self, keep: set[str]) -> None:
        """Close (from the writer thread, in order) every sink not in ``keep``."""
        self.queue.put(("retire", frozenset(keep)))

    def put(
        self,
        block: PredictionBlock,
        uris: tuple[str, ...],
        counters: StreamCounters,
        recorder: LatencyRecorder,
    ) -> None:
        """Queue one block for its sinks (dropped and counted when the queue stays full)."""
        self.put_many([Item(block, uris, counters, recorder)])

    def put_many(self, items: list[Item]) -> None:
        """Queue the blocks of one processing round as one entry (one wake-up of the writer);
        dropped and counted when the queue stays full for ``put_timeout`` seconds."""
        if not items:
            return
        try:
            self.queue.put(items, timeout=self.put_timeout)
        except queue.Full:
            for item in items:
                item.counters.dropped_output += item.block.n_samples
                log(
                    _log,
                    logging.WARNING,
                    "sink queue full: block dropped",
                    stream=item.block.stream_id,
                    first_index=item.block.first_index,
                    rows=item.block.n_samples,
                )

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued, flush and close every sink, end the thread."""
        self.queue.put(None)
        if self.is_alive():
            self.join(timeout)
        else:  # never started
            for slot in self.slots.values():
                slot.close()

    def errors(self) -> dict[str, int]:
        return {uri: slot.errors for uri, slot in list(self.slots.items())}

    # ----------------------------------------------------------------- thread
    def run(self) -> None:
        get = self.queue.get
        while True:
            item = get()
            if item is None:
                break
            if isinstance(item, tuple):
                self._retire(item[1])
            else:
                for one in item:
                    self._write(one)
            if self.queue.empty():
                now = self.clock()
                for slot in list(self.slots.values()):
                    slot.flush(now)
        for slot in list(self.slots.values()):
            slot.close()

    def _write(self, item: Item) -> None:
        block = item.block
        now = self.clock()
        counted = False
        for uri in item.uris:
            slot = self.slots.get(uri)
            ok = slot is not None and slot.write(block, now)
            if not ok:
                item.counters.dropped_output += block.n_samples
                continue
            if not counted:
                counted = True
                done = self.clock()
                item.counters.samples_out += block.n_samples
                if np.isscalar(block.t_host):
                    item.recorder.add(done - float(block.t_host), block.n_samples)
                else:
                    item.recorder.add_many(done - np.asarray(block.t_host))

    def _retire(self, keep: frozenset) -> None:
        with self._lock:
            gone = [uri for uri in self.slots if uri not in keep]
            slots = [self.slots.pop(uri) for uri in gone]
        for slot in slots:
            slot.close()
