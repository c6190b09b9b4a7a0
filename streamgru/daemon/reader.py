"""The daemon's threads and the bounded queues between them.

::

    SourceReader (1 thread per stream: opens, reconnects) ──► Inbox (bounded per stream)
        │  a running socket source is handed to ──► SourceMux ──┐      │
        │                                                       ▼      ▼
        │                                             processing loop (the main thread)
        each sink ◄── SinkLane (1 thread + bounded queue per sink) ◄── SinkWriter ◄──┘
                      (an ``inline`` sink is written by the processing loop itself)

* :class:`~streamgru.daemon.inbox.Inbox`: one bounded deque per stream; the processing loop
  takes *everything* that has arrived at once (all pending chunks of a stream go through the
  model in one call). A reader thread whose stream is full waits (back-pressure on the socket
  or tty) instead of dropping: a gap is then visible, and counted, at the device's index.
* :class:`~streamgru.daemon.mux.SourceMux`: once a source runs and has a descriptor a
  selector may watch (TCP, UDP), its reader thread hands it over and sleeps; the processing
  thread reads it from one selector with all the others, so a sample reaches the model
  without a thread hand-off. The source comes back to its thread when its link goes down (to
  reconnect), when a read reports a status (lost, refused, ended) and at stop.
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, MissingDependencyError, StreamgruError
from ..io.chunk import Chunk, StreamInfo
from .device_beats import DeviceEvent, EventTap, source_events, unwrap_u32
from .inbox import Inbox, SourceEvent
from .logs import get_logger, log
from .metrics import StreamCounters

if TYPE_CHECKING:
    from .mux import SourceMux

__all__ = ["Backoff", "Inbox", "ReaderSettings", "SourceEvent", "SourceReader"]

_log = get_logger("daemon")


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
    mux : where a selectable source (a socket) is read once it runs: on the processing thread,
        this reader's thread sleeping meanwhile (None: always read here)
    """

    open_source: Callable[[str], Any]
    backoff: tuple[float, float] = (0.2, 10.0)
    read_timeout: float = 0.1
    exit_on_refused: bool = False
    mux: SourceMux | None = None


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
        # the source as announced and accepted, and the channels picked from it
        self._info: StreamInfo | None = None
        self._pick: Any = None
        # the mux: whether the processing thread is reading for us, and what it handed back
        self.mux = settings.mux
        self.in_mux = False
        self._handback: str | None = None
        self._handed_back = threading.Event()

    def stop(self) -> None:
        """Ask the thread to stop (from any thread); a source the mux reads is withdrawn."""
        self.stop_event.set()
        if self.mux is not None:
            self.mux.withdraw(self)

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
        """Read until stopped ("stop"), lost ("lost"), at the end ("ended") or refused for good
        ("misconfigured"). While the source is selectable and a :class:`SourceMux` is given,
        the processing thread reads it and this thread sleeps until it is handed back."""
        self._info, self._pick = None, None
        while not self.stop_event.is_set():
            status = self.read_once(src, self.read_timeout)
            if status is None and self._info is not None and _selectable(src):
                status = self._hand_over(src)
            if status is not None:
                return self._after(status)
        return "stop"

    def _after(self, status: str) -> str:
        """What a :meth:`read_once` status means for this thread (waits where it must)."""
        if status == "refused":  # retried, at the longest backoff
            self.stop_event.wait(self.backoff.maximum)
            return "lost"
        if status == "failed":
            self.stop_event.wait(self.backoff.next())
            return "lost"
        return status

    def _hand_over(self, src: Any) -> str | None:
        """Let the mux read ``src`` on the processing thread; back here when it gives it back
        (None: the link went down or the mux closed, go on reading here; else a status)."""
        mux = self.mux
        if mux is None:
            return None
        self._handed_back.clear()
        if not mux.offer(self, src):
            return None
        while not self._handed_back.wait(0.25):
            if self.stop_event.is_set() and mux.closed:
                break
        status, self._handback = self._handback, None
        return status

    def hand_back(self, status: str | None) -> None:
        """Called by the mux: this thread reads its source again (``status`` as from
        :meth:`read_once`)."""
        self._handback = status
        self._handed_back.set()

    def _put(self, item: Any) -> bool:
        if self.in_mux:
            return self.inbox.put_now(self.stream_id, item)
        return self.inbox.put(self.stream_id, item, self.stop_event)

    def read_once(self, src: Any, timeout: float) -> str | None:
        """One read of ``src`` (waiting up to ``timeout`` s): None to go on, else "stop",
        "ended", "misconfigured", "refused" (to be retried) or "failed" (lost; the error is
        counted and logged). Never waits longer than ``timeout`` (the mux calls it with 0)."""
        try:
            chunk = src.read(timeout=timeout)
            cur = getattr(src, "info", None)
            if cur is not None and cur is not self._info:
                status = self._opened(cur)
                if status is not None:
                    return status
            now = time.monotonic()
            if now >= self._next_sync:
                self._sync_stats(src)
                self._next_sync = now + STATS_SYNC_S
            if chunk is None:
                return "ended" if _finished(src) else None
            if self._info is None:
                return None  # no description yet: cannot check the samples
            self._device_end = chunk.end_index
            chunk = self._place(chunk, self._info, self._pick)
            if not self._put(chunk) or not self._forward_events(src):
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
            return "failed"
        return None

    def _opened(self, info: StreamInfo) -> str | None:
        """The source announced ``info`` (first, or anew): check it, tell the loop."""
        verdict = self._accept(info)
        if isinstance(verdict, str):
            self.counters.source_errors += 1
            return verdict
        self._info, self._pick = info, verdict
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
        return None if self._put(SourceEvent("opened", info)) else "stop"

    def _forward_events(self, src: Any) -> bool:
        """Queue the EVENT frames the source decoded since the last look (after the chunk they
        came with), on the stream's index; False when asked to stop."""
        for ev in self._tap.take(source_events(src)):
            index = unwrap_u32(int(ev.sample_index), self._device_end) + self._offset
            event = DeviceEvent(index, int(ev.code), str(getattr(ev, "text", "")))
            if not self._put(SourceEvent("device", device=event)):
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


def _selectable(src: Any) -> bool:
    """True when ``src`` has a descriptor a selector may watch now (:meth:`fileno`)."""
    fileno = getattr(src, "fileno", None)
    return callable(fileno) and fileno() is not None


def _finished(src: Any) -> bool:
    """A finite source (file, synthetic with a duration) that has nothing more to give."""
    for name in ("finished", "exhausted", "eof", "at_end"):
        value = getattr(src, name, None)
        if value is not None and not callable(value):
            return bool(value)
        if callable(value):
            return bool(value())
    return False
