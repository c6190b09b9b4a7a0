"""The daemon's sink writers: one :class:`SinkLane` (a bounded queue and its own thread) per
sink, behind :class:`SinkWriter`, the fan-out the main loop hands each round's blocks to.

A sink that blocks (a pipe nobody reads, a full disk on NFS, a stuck FIFO) stalls only its own
lane: the main loop never waits on a sink queue, and the other sinks go on. What a lane cannot
take is dropped by its policy and counted per sink (``streamgru_sink_dropped_rows_total``):

* ``drop-oldest`` (the default): a full queue discards its oldest block to take the new one, so
  the sink stays current once it moves again;
* ``block``: the lane waits on its sink as long as the sink takes (nothing queued is discarded)
  and a block that finds its queue full is the one dropped, so the sink gets an unbroken run.

Either way the main loop and the other sinks never wait. At shutdown every lane writes what it
has queued; a lane still busy at the deadline (``daemon.sink_shutdown_s``) is abandoned, its
queued rows counted as dropped, so the daemon can still write its snapshots and exit.
See :mod:`streamgru.daemon.reader` for the threads and queues as a whole.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..io.chunk import PredictionBlock
from ..io.sinks import SinkPlan, plan_sink
from .logs import log
from .metrics import LatencyRecorder, StreamCounters
from .reader import Backoff, _log

#: Reasons a row is dropped for one sink (the ``reason`` label of the metric).
DROP_REASONS = ("queue_full", "sink_down", "abandoned", "client_slow")
#: Blocks a lane takes off its queue at a time (the rest stay droppable by the policy).
TAKE_BLOCKS = 64


# -------------------------------------------------------------------- writers
class SinkSlot:
    """One open (or failed, to be reopened) sink of a :class:`SinkLane`."""

    def __init__(self, uri: str, open_sink: Callable[[str], Any], backoff: Backoff) -> None:
        self.uri = uri
        self.open_sink = open_sink
        self.backoff = backoff
        self.sink: Any = None
        self.errors = 0
        self.dirty = False
        self.retry_at = 0.0
        self.client_dropped = 0  # rows a closed sink had dropped on its own (TCP clients)

    def open(self) -> None:
        """Open now (raises on failure)."""
        self.sink = self.open_sink(self.uri)
        self.backoff.reset()

    def own_dropped(self) -> int:
        """Rows the sink itself dropped (a slow TCP client), across reopenings."""
        stats = getattr(self.sink, "stats", None)
        return self.client_dropped + int(getattr(stats, "dropped", 0) or 0)

    def write(self, block: PredictionBlock, now: float) -> bool:
        """Write a block; False when the sink is down (the block is lost for this sink)."""
        if self.sink is None and not self._reopen(now):
            return False
        try:
            self.sink.write(block)
        except Exception as exc:  # any failure, a sink's bug included: not the lane's end
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
        except Exception as exc:  # as in write
            self._fail("sink flush failed", exc, now)

    def close(self) -> None:
        self.flush(time.monotonic())
        if self.sink is not None:
            try:
                self.sink.close()
            except Exception as exc:  # report, but closing goes on
                self.errors += 1
                log(_log, logging.ERROR, "sink close failed", sink=self.uri, error=str(exc))
            self._forget()

    def _forget(self) -> None:
        self.client_dropped = self.own_dropped()
        self.sink = None

    def _fail(self, what: str, exc: BaseException, now: float) -> None:
        self.errors += 1
        log(_log, logging.ERROR, what, sink=self.uri, error=str(exc))
        try:
            self.sink.close()
        except Exception:  # already broken
            pass
        self._forget()
        self.retry_at = now + self.backoff.next()

    def _reopen(self, now: float) -> bool:
        if now < self.retry_at:
            return False
        try:
            self.open()
        except Exception as exc:  # as in write: logged and retried with backoff
            self.errors += 1
            self.retry_at = now + self.backoff.next()
            log(_log, logging.WARNING, "sink unavailable", sink=self.uri, error=str(exc))
            return False
        log(_log, logging.INFO, "sink open", sink=self.uri)
        return True


@dataclass
class Item:
    """A block on its way to its sinks, with where its counts and latency go.

    ``counted`` is set (under the writer's lock) by the first sink that takes the block.
    """

    block: PredictionBlock
    uris: tuple[str, ...]
    counters: StreamCounters
    recorder: LatencyRecorder
    counted: bool = False


@dataclass
class LaneStats:
    """Running totals of one sink, in rows: written, and dropped by reason."""

    written: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))


class SinkLane(threading.Thread):
    """One sink's bounded queue and the thread that writes it (see the module docstring).

    Parameters
    ----------
    plan : the sink's URI and writer options (:func:`streamgru.io.sinks.plan_sink`)
    open_sink : opens ``plan.open_uri`` (called on this lane's thread, never the main one)
    backoff : initial and longest wait before reopening a failed sink, seconds
    clock : the clock ``t_host`` is measured on
    lock : the writer's lock over the stream counters (shared by every lane)
    """

    def __init__(
        self,
        plan: SinkPlan,
        open_sink: Callable[[str], Any],
        backoff: tuple[float, float],
        clock: Callable[[], float],
        lock: threading.Lock,
    ) -> None:
        super().__init__(name=f"streamgru-sink {plan.uri}"[:60], daemon=True)
        self.plan = plan
        self.uri = plan.uri
        self.slot = SinkSlot(plan.open_uri, open_sink, Backoff(*backoff))
        self.clock = clock
        self.stats = LaneStats()
        self._lock = lock
        self._queue: deque[Item] = deque()
        self._taken: deque[Item] = deque()  # off the queue, not yet written
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()  # held while a block is written to the sink
        self._stopping = False
        self.abandoned = False

    # ------------------------------------------------------ from other threads
    @property
    def depth(self) -> int:
        """Blocks waiting: queued, or taken by the thread and not yet written."""
        return len(self._queue) + len(self._taken)

    def offer(self, items: list[Item]) -> None:
        """Queue blocks without ever waiting (one wake-up of the lane for all of them); a full
        queue drops by the lane's policy. A sink whose writes never wait (``inline``: the null,
        view and TCP sinks) is written here instead, on the calling thread, when it is open
        and the lane's thread is not writing it: what the lane had queued first, then these
        blocks (no hand-off to the lane's thread, and the order is kept)."""
        with self._cond:
            if not (self._stopping or self.abandoned) and self._write_inline(items):
                return
            for item in items:
                if self._stopping or self.abandoned:
                    self._drop(item, "abandoned" if self.abandoned else "sink_down")
                elif len(self._queue) < self.plan.queue_blocks:
                    self._queue.append(item)
                elif self.plan.policy == "block":
                    self._drop(item, "queue_full")
                else:
                    self._drop(self._queue.popleft(), "queue_full")
                    self._queue.append(item)
            self._cond.notify()

    def _write_inline(self, items: list[Item]) -> bool:
        """The lane's queue and ``items``, written on the calling thread (under the queue's
        lock); False when the sink is not inline or not open, or the lane's thread has blocks
        in hand (taken off the queue, or being written)."""
        sink = self.slot.sink
        if sink is None or not getattr(sink, "inline", False) or self._taken:
            return False
        if not self._write_lock.acquire(blocking=False):
            return False
        try:
            backlog = list(self._queue)
            self._queue.clear()
            for item in backlog + items:
                self.write(item)
            self.slot.flush(self.clock())
        finally:
            self._write_lock.release()
        return True

    def stop(self) -> None:
        """Write what is queued, then close the sink and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def abandon(self) -> int:
        """Give up on a stuck sink: count its queued rows (and those taken but not yet written)
        as dropped; returns how many."""
        with self._cond:
            self.abandoned = True
            items = [*self._taken, *self._queue]
            self._queue.clear()
            self._taken.clear()
        for item in items:
            self._drop(item, "abandoned")
        return sum(item.block.n_samples for item in items)

    # ----------------------------------------------------------------- thread
    def run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait(0.5)
                if not self._queue:
                    break
                for _ in range(min(len(self._queue), TAKE_BLOCKS)):
                    self._taken.append(self._queue.popleft())
            while True:
                with self._cond:
                    if self.abandoned or not self._taken:
                        break
                    item = self._taken.popleft()
                    self._write_lock.acquire()  # taken under the queue's lock: order kept
                try:
                    self.write(item)
                finally:
                    self._write_lock.release()
            if not self._queue and not self.abandoned:
                with self._write_lock:
                    self.slot.flush(self.clock())
        if not self.abandoned:
            self.slot.close()

    def write(self, item: Item) -> bool:
        """Write one block now, on the calling thread; count it written or dropped."""
        block = item.block
        if not self.slot.write(block, self.clock()):
            self._drop(item, "sink_down")
            return False
        done = self.clock()
        with self._lock:
            self.stats.written += block.n_samples
            first = not item.counted
            item.counted = True
            if first:
                item.counters.samples_out += block.n_samples
        if first:
            if isinstance(block.t_host, (float, int, np.floating)):
                item.recorder.add(done - float(block.t_host), block.n_samples)
            else:
                item.recorder.add_many(done - np.asarray(block.t_host))
        return True

    def _drop(self, item: Item, reason: str) -> None:
        n = item.block.n_samples
        with self._lock:
            self.stats.dropped[reason] += n
            item.counters.dropped_output += n


class SinkWriter:
    """Fans each round's blocks out to one :class:`SinkLane` per sink URI.

    A block goes to each of its stream's sinks (fan-out); the per-sample latency (arrival to
    written) and ``samples_out`` are recorded once, when the first sink that takes the block has
    it (a failing sink does not hide what the others wrote). What a sink could not take is
    counted in the stream's ``dropped_output`` and in the sink's own drop counts.

    Parameters
    ----------
    open_sink : ``streamgru.io.sinks.open_sink`` (injectable for tests)
    capacity : blocks a sink's queue holds unless its URI says ``queue_blocks=N``
    backoff : initial and longest wait before reopening a failed sink, seconds
    clock : the clock ``t_host`` is measured on (``time.monotonic``)
    shutdown_s : how long :meth:`close` waits for the sinks before abandoning the stuck ones
    """

    def __init__(
        self,
        open_sink: Callable[[str], Any],
        capacity: int = 4096,
        backoff: tuple[float, float] = (0.2, 10.0),
        clock: Callable[[], float] = time.monotonic,
        shutdown_s: float = 5.0,
    ) -> None:
        self.open_sink = open_sink
        self.capacity = capacity
        self.backoff = backoff
        self.clock = clock
        self.shutdown_s = shutdown_s
        self.lanes: dict[str, SinkLane] = {}
        self.retired: list[SinkLane] = []
        self.abandoned: list[str] = []
        self._started = False
        self._lock = threading.Lock()

    # ------------------------------------------------------ from the main loop
    def add(self, uri: str) -> SinkLane:
        """The lane of ``uri``, made (and started, once the writer runs) if new; the sink opens
        on the lane's thread (an open failure is logged and retried with backoff)."""
        lane = self.lanes.get(uri)
        if lane is None:
            plan = plan_sink(uri, self.capacity)
            lane = SinkLane(plan, self.open_sink, self.backoff, self.clock, self._lock)
            self.lanes = {**self.lanes, uri: lane}
            if self._started:
                lane.start()
        return lane

    def start(self) -> None:
        """Start every lane's thread (lanes added later start at once)."""
        self._started = True
        for lane in self.lanes.values():
            lane.start()

    def is_alive(self) -> bool:
        return any(lane.is_alive() for lane in [*self.lanes.values(), *self.retired])

    def retire(self, keep: set[str]) -> None:
        """Close (on their own threads, after what they have queued) every sink not in ``keep``."""
        gone = [lane for uri, lane in self.lanes.items() if uri not in keep]
        self.lanes = {uri: lane for uri, lane in self.lanes.items() if uri in keep}
        for lane in gone:
            lane.stop()
        self.retired = [lane for lane in self.retired if lane.is_alive()] + gone

    def put(
        self,
        block: PredictionBlock,
        uris: tuple[str, ...],
        counters: StreamCounters,
        recorder: LatencyRecorder,
    ) -> None:
        """Queue one block for its sinks (never waits)."""
        self.put_many([Item(block, uris, counters, recorder)])

    def put_many(self, items: list[Item]) -> None:
        """Queue the blocks of one processing round on their sinks' lanes, each lane once
        (never waits)."""
        lanes = self.lanes
        per_lane: dict[str, list[Item]] = {}
        for item in items:
            for uri in item.uris:
                if uri in lanes:
                    per_lane.setdefault(uri, []).append(item)
                else:
                    with self._lock:
                        item.counters.dropped_output += item.block.n_samples
        for uri, queued in per_lane.items():
            lanes[uri].offer(queued)

    def close(self, timeout: float | None = None) -> list[str]:
        """Write what is queued, flush and close every sink; a sink still busy after
        ``min(timeout, shutdown_s)`` seconds is abandoned. Returns the abandoned URIs."""
        limit = self.shutdown_s if timeout is None else min(timeout, self.shutdown_s)
        lanes = [*self.lanes.values(), *self.retired]
        for lane in lanes:
            lane.stop()
            if lane.ident is None:  # never started: close what was opened on this thread
                lane.slot.close()
        deadline = time.monotonic() + limit
        for lane in lanes:
            if lane.is_alive():
                lane.join(max(0.0, deadline - time.monotonic()))
            if lane.is_alive():
                rows = lane.abandon()
                self.abandoned.append(lane.uri)
                log(
                    _log,
                    logging.ERROR,
                    "sink stuck at shutdown: abandoned",
                    sink=lane.uri,
                    waited_s=limit,
                    rows_dropped=rows,
                )
        return self.abandoned

    # --------------------------------------------------------------- reading
    def errors(self) -> dict[str, int]:
        """Failed writes or opens per sink URI."""
        return {uri: lane.slot.errors for uri, lane in self.lanes.items()}

    def sink_stats(self) -> dict[str, tuple[int, int, dict[str, int]]]:
        """Per sink URI: (queue depth, rows written, rows dropped by reason) for /metrics."""
        out = {}
        for uri, lane in self.lanes.items():
            with self._lock:
                dropped = dict(lane.stats.dropped)
                written = lane.stats.written
            dropped["client_slow"] = lane.slot.own_dropped()
            out[uri] = (lane.depth, written, dropped)
        return out

    def _write(self, item: Item) -> None:
        """Write one item to its sinks on the calling thread (what the lanes do, in turn)."""
        for uri in item.uris:
            lane = self.lanes.get(uri)
            if lane is None:
                with self._lock:
                    item.counters.dropped_output += item.block.n_samples
            else:
                lane.write(item)
