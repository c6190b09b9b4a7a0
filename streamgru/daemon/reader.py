"""The daemon's threads and the bounded queues between them.

::

    SourceReader (1 thread per stream) ──► Inbox (bounded per stream) ──► processing loop
                                                                            (the main thread)
        each sink ◄── SinkLane (1 thread + bounded queue per sink) ◄── SinkWriter ◄──┘

* :class:`Inbox`: one bounded deque per stream behind one condition variable, so the processing
  loop sleeps until *any* stream has data and then takes *everything* that has arrived (all
  pending chunks of a stream go through the model in one call). A reader whose stream is full
  waits (back-pressure on the socket or tty) instead of dropping: a gap is then visible, and
  counted, at the device's sample index.
* :class:`SourceReader`: opens its source (jittered exponential backoff between attempts),
  checks the announced rate and channels, reads with a timeout, and reconnects when the source
  is lost, while the other streams go on. A device that comes back announcing another rate or
  channel count is refused (state ``refused``) and retried at the longest backoff. A source
  that can never match (a file or a synthetic signal: what it announces cannot change), or any
  source when ``exit_on_refused`` is set, is not retried: the stream becomes ``misconfigured``
  (and the daemon exits 78 once no stream is left running).
* :class:`~streamgru.daemon.writer.SinkWriter`: fans each round's blocks out to one
  ``SinkLane`` per sink (its own bounded queue and thread, so a stuck sink stalls only itself;
  a full queue drops by the sink's policy and counts it), records the per-sample latency
  (arrival to written), and reopens a failed sink with backoff (:mod:`streamgru.daemon.writer`).
* A source the reader had to reopen (lost, refused) numbers its samples afresh; the reader
  keeps the stream's 64-bit index going across source objects (see ``SourceReader._place``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, MissingDependencyError, StreamgruError
from ..io.chunk import Chunk, StreamInfo
from .device_beats import DeviceEvent, EventTap, source_events, unwrap_u32
from .logs import get_logger, log
from .metrics import StreamCounters

_log = get_logger("daemon")


# -------------------------------------------------------------------- inbox
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
            return True

    def take_all(self, timeout: float) -> dict[str, list[Any]]:
        """Everything waiting, per stream (waits up to ``timeout`` s when nothing is)."""
        with self._cond:
            if not self._pending:
                self._cond.wait(timeout)
            if not self._pending:
                return {}
            out = {sid: list(q) for sid, q in self._queues.items() if q}
            for q in self._queues.values():
                q.clear()
            self._pending = 0
            self._cond.notify_all()  # readers waiting for room
            return out

    def depth(self, stream_id: str) -> int:
        q = self._queues.get(stream_id)
        return 0 if q is None else len(q)

    def wake(self) -> None:
        """Wake the consumer (a signal or a reload asks the loop to look up)."""
        with self._cond:
            self._cond.notify_all()


# -------------------------------------------------------------------- readers
class Backoff:
    """Jittered exponential backoff: ``initial * 2**k`` capped at ``maximum``, times 0.5–1.0."""

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self._k = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        base = min(self.maximum, self.initial * (2.0**self._k))
        self._k += 1
        return base * (0.5 + 0.5 * self._rng.random())

    def reset(self) -> None:
        self._k = 0


#: Seconds between copies of a source's stats into the stream's counters (and at close).
STATS_SYNC_S = 0.1


#: SourceStats fields mirrored into the stream's counters (totals across reopened sources).
_SOURCE_STATS = (
    "crc_errors",
    "malformed",
    "bytes_discarded",
    "reconnects",
    "ignored",
    "stale_frames",
)
#: Source schemes whose announcement cannot change from one attempt to the next (a replayed
#: file, a synthetic signal): a refusal of these is final.
DETERMINISTIC_SCHEMES = ("file", "synthetic")


def refusal_is_final(uri: str, exit_on_refused: bool = False) -> bool:
    """True when a refused source at ``uri`` is not worth retrying (see the module docstring)."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    return exit_on_refused or scheme in DETERMINISTIC_SCHEMES


@dataclass(frozen=True)
class ReaderSettings:
    """How a :class:`SourceReader` opens and reads its source.

    Attributes
    ----------
    open_source : ``streamgru.io.sources.open_source`` (injectable for tests)
    backoff : initial and longest wait between attempts, seconds
    read_timeout : seconds a read waits before the stop flag is looked at
    exit_on_refused : a refused source ends the stream (state "misconfigured") whatever its
        kind; by default only a deterministic one does (:func:`refusal_is_final`)
    """

    open_source: Callable[[str], Any]
    backoff: tuple[float, float] = (0.2, 10.0)
    read_timeout: float = 0.1
    exit_on_refused: bool = False


class SourceReader(threading.Thread):
    """Reads one stream's source into the inbox, reconnecting when it is lost.

    Parameters
    ----------
    stream_id, uri : the stream and its source URI
    inbox : where chunks go
    check : called with the source's StreamInfo; returns the channel indices to pick (or
        None for all) or raises ConfigError to refuse the source
    counters : the stream's counters (source errors, reconnects, CRC errors, ...)
    set_state : called with "connecting", "running", "reconnecting", "refused", "ended",
        "misconfigured"
    settings : how the source is opened and read (:class:`ReaderSettings`)
    """

    def __init__(
        self,
        stream_id: str,
        uri: str,
        inbox: Inbox,
        check: Callable[[StreamInfo], np.ndarray | None],
        counters: StreamCounters,
        set_state: Callable[[str], None],
        settings: ReaderSettings,
    ) -> None:
        super().__init__(name=f"streamgru-reader-{stream_id}", daemon=True)
        self.stream_id = stream_id
        self.uri = uri
        self.inbox = inbox
        self.check = check
        self.counters = counters
        self.set_state = set_state
        self.open_source = settings.open_source
        self.backoff = Backoff(*settings.backoff)
        self.read_timeout = settings.read_timeout
        self.stop_event = threading.Event()
        self.source: Any = None
        self._base = dict.fromkeys(_SOURCE_STATS, 0)
        self._next_sync = 0.0
        # index continuity across source objects (see _place)
        self._offset = 0
        self._last_end: int | None = None
        self._last_device: tuple[int, str] | None = None
        self._fresh_source = True
        self._device_end: int | None = None  # end index of the last chunk, as the source counts
        self._tap = EventTap()
        self._refusal: str | None = None
        self.final_refusal = refusal_is_final(uri, settings.exit_on_refused)

    def stop(self) -> None:
        self.stop_event.set()

    @property
    def refusal(self) -> str | None:
        """Why the source was last refused (None while it is accepted)."""
        return self._refusal

    # ---------------------------------------------------------------- thread
    def run(self) -> None:
        opened_before = False
        while not self.stop_event.is_set():
            src = self._open(opened_before)
            if src is None:
                if not self.stop_event.is_set():
                    return  # misconfigured: the state says so, not "stopped"
                break
            if opened_before:  # reopened by us (sources that reconnect themselves count too)
                self._base["reconnects"] += 1
            opened_before = True
            status = self._pump(src)
            self._close(src)
            if status == "misconfigured":
                return  # the state says so; the daemon exits 78 when no stream is left
            if status == "ended":
                self.inbox.put(self.stream_id, SourceEvent("ended"), self.stop_event)
                self.set_state("ended")
                log(_log, logging.INFO, "source ended", stream=self.stream_id, uri=self.uri)
                return
            if status == "stop":
                break
            self.inbox.put(self.stream_id, SourceEvent("lost"), self.stop_event)
        self.set_state("stopped")

    def _open(self, reconnecting: bool) -> Any:
        """Open the source, retrying with backoff; None when asked to stop or when the URI
        itself is wrong or needs a package that is not installed (a ConfigError or a
        MissingDependencyError: retrying cannot help; state "misconfigured")."""
        self.set_state("reconnecting" if reconnecting else "connecting")
        while not self.stop_event.is_set():
            try:
                src = self.open_source(self.uri)
            except (ConfigError, MissingDependencyError) as exc:
                self.counters.source_errors += 1
                log(
                    _log,
                    logging.ERROR,
                    "source URI refused",
                    stream=self.stream_id,
                    uri=self.uri,
                    error=str(exc),
                )
                self.set_state("misconfigured")
                return None
            except (StreamgruError, OSError) as exc:  # unplugged, refused, no HELLO, ...
                self.counters.source_errors += 1
                wait = self.backoff.next()
                log(
                    _log,
                    logging.WARNING,
                    "source unavailable",
                    stream=self.stream_id,
                    uri=self.uri,
                    error=str(exc),
                    retry_in_s=round(wait, 3),
                )
                self.stop_event.wait(wait)
                continue
            self.source = src
            self._fresh_source = True
            self._tap = EventTap()
            return src
        return None

    def _accept(self, info: StreamInfo) -> np.ndarray | str | None:
        """Check the announced stream; "refused" when it does not fit (and will be retried),
        "misconfigured" when it does not fit and never will (:attr:`final_refusal`)."""
        try:
            pick = self.check(info)
        except ConfigError as exc:
            text = str(exc)
            if self.final_refusal:
                log(
                    _log,
                    logging.ERROR,
                    "source refused for good: it does not match the stream and cannot change",
                    stream=self.stream_id,
                    uri=self.uri,
                    error=text,
                    fs=info.fs,
                    channels=info.n_channels,
                )
                self._refusal = text
                self.set_state("misconfigured")
                return "misconfigured"
            if text != self._refusal:
                log(
                    _log,
                    logging.ERROR,
                    "source refused: it does not match the stream (retried)",
                    stream=self.stream_id,
                    uri=self.uri,
                    error=text,
                    fs=info.fs,
                    channels=info.n_channels,
                    retry_every_s=self.backoff.maximum,
                )
            self._refusal = text
            self.set_state("refused")
            return "refused"
        if self._refusal is not None:
            log(_log, logging.INFO, "source accepted again", stream=self.stream_id)
        self._refusal = None
        return pick

    def _pump(self, src: Any) -> str:
        """Read until stopped ("stop"), lost ("lost") or at the end ("ended")."""
        info = None
        pick: Any = None
        try:
            while not self.stop_event.is_set():
                chunk = src.read(timeout=self.read_timeout)
                cur = getattr(src, "info", None)
                if cur is not None and cur is not info:
                    verdict = self._accept(cur)
                    if isinstance(verdict, str):
                        self.counters.source_errors += 1
                        if verdict == "misconfigured":
                            return verdict
                        self.stop_event.wait(self.backoff.maximum)
                        return "lost"
                    info, pick = cur, verdict
                    self.backoff.reset()
                    self.set_state("running")
                    log(
                        _log,
                        logging.INFO,
                        "source open",
                        stream=self.stream_id,
                        uri=self.uri,
                        fs=info.fs,
                        channels=info.n_channels,
                        device=info.device_id,
                    )
                    if not self.inbox.put(
                        self.stream_id, SourceEvent("opened", info), self.stop_event
                    ):
                        return "stop"
                now = time.monotonic()
                if now >= self._next_sync:
                    self._sync_stats(src)
                    self._next_sync = now + STATS_SYNC_S
                if chunk is None:
                    if _finished(src):
                        return "ended"
                    continue
                if info is None:
                    continue  # no description yet: cannot check the samples
                self._device_end = chunk.end_index
                chunk = self._place(chunk, info, pick)
                if not self.inbox.put(self.stream_id, chunk, self.stop_event):
                    return "stop"
                if not self._forward_events(src):
                    return "stop"
        except StopIteration:
            return "ended"
        except (StreamgruError, OSError, EOFError) as exc:
            self.counters.source_errors += 1
            self.set_state("reconnecting")
            log(
                _log,
                logging.WARNING,
                "source lost",
                stream=self.stream_id,
                uri=self.uri,
                error=str(exc) or type(exc).__name__,
            )
            self.stop_event.wait(self.backoff.next())
            return "lost"
        return "stop"

    def _forward_events(self, src: Any) -> bool:
        """Queue the EVENT frames the source decoded since the last look (after the chunk they
        came with), on the stream's index; False when asked to stop."""
        for ev in self._tap.take(source_events(src)):
            index = unwrap_u32(int(ev.sample_index), self._device_end) + self._offset
            event = DeviceEvent(index, int(ev.code), str(getattr(ev, "text", "")))
            if not self.inbox.put(
                self.stream_id, SourceEvent("device", device=event), self.stop_event
            ):
                return False
        return True

    def _place(self, chunk: Chunk, info: StreamInfo, pick: Any) -> Chunk:
        """Pick the model's channels and keep the stream index going across source objects.

        A source the reader had to reopen numbers its samples on its own: when it is the same
        device session and its index moved forward, the index is kept (the gap is exact);
        otherwise (another session, or an index that went back) it is rebased to continue
        where the stream left off, and the chunk is marked ``restarted``.
        """
        restarted = chunk.restarted
        if self._fresh_source:
            self._fresh_source = False
            device = (info.session, info.device_id)
            if self._last_end is not None:
                same = device == self._last_device and chunk.first_index + self._offset >= (
                    self._last_end
                )
                if not same:
                    self._offset = self._last_end - chunk.first_index
                    restarted = True
            self._last_device = device
        first = chunk.first_index + self._offset
        if pick is not None or first != chunk.first_index or restarted != chunk.restarted:
            samples = (
                chunk.samples if pick is None else np.ascontiguousarray(chunk.samples[:, pick])
            )
            chunk = Chunk(samples, first, chunk.t_host, chunk.gap_before, restarted)
        self._last_end = chunk.end_index
        return chunk

    def _sync_stats(self, src: Any) -> None:
        stats = getattr(src, "stats", None)
        if stats is None:
            return
        c = self.counters
        for name in _SOURCE_STATS:
            setattr(c, name, self._base[name] + int(getattr(stats, name, 0)))

    def _close(self, src: Any) -> None:
        self._sync_stats(src)
        stats = getattr(src, "stats", None)
        if stats is not None:
            for name in _SOURCE_STATS:
                self._base[name] += int(getattr(stats, name, 0))
        try:
            src.close()
        except Exception as exc:  # closing a broken source must not stop the reader
            log(_log, logging.DEBUG, "source close failed", stream=self.stream_id, error=str(exc))
        self.source = None


def _finished(src: Any) -> bool:
    """A finite source (file, synthetic with a duration) that has nothing more to give."""
    for name in ("finished", "exhausted", "eof", "at_end"):
        value = getattr(src, name, None)
        if value is not None and not callable(value):
            return bool(value)
        if callable(value):
            return bool(value())
    return False
