"""Sources fed by a device over a byte link (serial, TCP, UDP), speaking SGB1 or text lines.

:class:`DeviceSource` owns a :class:`~streamgru.io.links.Link` and a reader that turns bytes into
chunks (:class:`Sgb1Reader` or :class:`AsciiReader`). When the link is lost (unplugged cable,
closed connection, or no byte for ``stall`` seconds) it reopens it with jittered exponential
backoff; the reader, and so the stream's place, survives: the sample index continues and what was
missed while away is counted as a gap from the index.

``stats.reconnects`` counts re-established connections, one each: a reopened link counts once it
has delivered its first good frame (or text line). A link that opens and dies before that (a TCP
connection accepted into the backlog of a listener about to close, a USB node that vanishes
again while the device enumerates) is part of the same outage: it is not counted, and the
backoff is not reset, so such links are retried at a growing interval rather than at once.

Opening waits up to ``hello_timeout`` seconds for the stream's description: an SGB1 HELLO (asked
for with GET_INFO, sent again every 0.5 s) or the first good text line.

A device that restarted while its HELLO was lost (UDP) sends DATA whose index is behind: every
frame is dropped as stale. After :data:`STALE_ASK_FRAMES` consecutive stale frames, or stale
frames for :data:`STALE_ASK_S` seconds, the source sends GET_INFO (at most once every
:data:`ASK_EVERY_S` seconds; counted in ``Sgb1Reader.info_requests``): the HELLO that answers
carries the new session, and the stream continues, flagged ``restarted``.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ConfigError, SourceError
from .ascii import AsciiLineReader
from .assembler import StreamAssembler
from .base import Source
from .chunk import Chunk, SourceStats, StreamInfo
from .links import Link, LinkLost
from .protocol import Data, Decoder, Event, GetInfo, Hello, Start, Status, encode

#: Longest single blocking read, so that a deadline and a stall are noticed promptly.
_SLICE = 0.05
#: Consecutive stale DATA frames after which the source asks for a HELLO (GET_INFO) ...
STALE_ASK_FRAMES = 32
#: ... or seconds of stale frames, whichever comes first;
STALE_ASK_S = 1.0
#: and at most one such GET_INFO this often.
ASK_EVERY_S = 1.0


class Sgb1Reader:
    """SGB1 bytes → chunks: a :class:`Decoder` and a :class:`StreamAssembler`.

    Keeps the latest STATUS (``status``) and the last 64 EVENT frames (``events``).
    """

    def __init__(self) -> None:
        self.decoder = Decoder()
        self.assembler = StreamAssembler()
        self.status: Status | None = None
        self.events: deque[Event] = deque(maxlen=64)
        self.other = 0
        self.info_requests = 0  # GET_INFO sent because of a run of stale frames
        self._seq = 0
        self._last_ask = -float("inf")

    @property
    def info(self) -> StreamInfo | None:
        return self.assembler.info

    @property
    def frames(self) -> int:
        """Good frames decoded so far."""
        return self.decoder.stats.frames

    def feed(self, data: bytes, t_host: float) -> list[Chunk]:
        chunks = []
        for frame in self.decoder.feed(data):
            if isinstance(frame, Data):
                chunk = self.assembler.on_data(frame, t_host)
                if chunk is not None:
                    chunks.append(chunk)
            elif isinstance(frame, Hello):
                self.assembler.on_hello(frame)
            elif isinstance(frame, Status):
                self.status = frame
            elif isinstance(frame, Event):
                self.events.append(frame)
            elif frame.TYPE & 0x80:  # a host command echoed back (e.g. on loop://)
                self.other += 1
        return chunks

    def greeting(self, start: bool) -> bytes:
        """What to send on (re)connecting: GET_INFO, then START unless ``start`` is false."""
        self._seq = (self._seq + 2) & 0xFFFF
        out = encode(GetInfo(self._seq))
        return out + encode(Start((self._seq + 1) & 0xFFFF)) if start else out

    def ask_info(self) -> bytes:
        self._seq = (self._seq + 1) & 0xFFFF
        return encode(GetInfo(self._seq))

    def recovery(self, now: float) -> bytes:
        """GET_INFO when a run of stale frames suggests a restart whose HELLO was lost (module
        docstring), else ``b""``; ``now`` is ``time.monotonic()``."""
        a = self.assembler
        if not a.stale_run or now - self._last_ask < ASK_EVERY_S:
            return b""
        if a.stale_run < STALE_ASK_FRAMES and now - a.stale_since < STALE_ASK_S:
            return b""
        self._last_ask = now
        self.info_requests += 1
        return self.ask_info()

    def reset(self) -> None:
        self.decoder.reset()

    def fill_stats(self, stats: SourceStats) -> None:
        d = self.decoder.stats
        a = self.assembler.stats
        stats.frames = d.frames
        stats.crc_errors = d.crc_errors
        stats.malformed = d.malformed + d.unsupported
        stats.bytes_discarded = d.bytes_discarded
        stats.oversize = d.oversize
        stats.ignored = a.ignored + self.other
        stats.stale_frames = a.stale
        stats.gaps = a.gaps
        stats.samples_lost = a.samples_lost
        stats.restarts = a.restarts


class AsciiReader:
    """Text lines → chunks, with the stream info built from the URI's options."""

    def __init__(self, fs: float, channels: int | None, units: str, labels: tuple[str, ...]):
        self.lines = AsciiLineReader(channels)
        self._fs = fs
        self._units = units
        self._labels = labels
        self.info: StreamInfo | None = None

    @property
    def frames(self) -> int:
        """Good lines parsed so far."""
        return self.lines.lines

    def feed(self, data: bytes, t_host: float) -> list[Chunk]:
        chunks = self.lines.feed(data, t_host)
        if self.info is None and self.lines.channels is not None and (chunks or self.lines.lines):
            n = self.lines.channels
            labels = self._labels or self.lines.labels
            if len(labels) != n:
                labels = ()
            self.info = StreamInfo(
                fs=self._fs,
                n_channels=n,
                labels=labels,
                units=(self._units,) * n,
                sample_format="ascii",
            )
        return chunks

    def greeting(self, start: bool) -> bytes:
        return b""

    def ask_info(self) -> bytes:
        return b""

    def recovery(self, now: float) -> bytes:
        return b""  # text lines carry no index: nothing is ever stale

    def reset(self) -> None:
        self.lines.reset()

    def fill_stats(self, stats: SourceStats) -> None:
        r = self.lines
        stats.frames = r.lines
        stats.malformed = r.malformed
        stats.bytes_discarded = r.bytes_discarded
        stats.oversize = r.oversize
        stats.samples_lost = r.malformed
        stats.gaps = r.malformed


class Backoff:
    """Jittered exponential backoff: ``initial * 2**k`` capped at ``maximum``, times U(0.5, 1)."""

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None):
        self.initial = initial
        self.maximum = maximum
        self.failures = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        delay = min(self.maximum, self.initial * (2.0**self.failures))
        self.failures += 1
        return delay * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0


@dataclass(frozen=True)
class LinkSettings:
    """How a :class:`DeviceSource` keeps its link.

    Attributes
    ----------
    hello_timeout : seconds to wait at open for the stream's description
    reconnect : reopen a lost link (else :meth:`DeviceSource.read` raises :class:`SourceError`)
    backoff, backoff_max : first and longest wait between reconnection attempts, seconds
    stall : a link silent this long is treated as lost (0: never)
    start : send START on every (re)connection (SGB1)
    """

    hello_timeout: float = 3.0
    reconnect: bool = True
    backoff: float = 0.05
    backoff_max: float = 2.0
    stall: float = 5.0
    start: bool = True


class DeviceSource(Source):
    """Chunks from a device on a byte link (see the module docstring).

    Parameters
    ----------
    uri : str
    make_link : callable returning a new, unopened :class:`Link`
    reader : :class:`Sgb1Reader` or :class:`AsciiReader`
    settings : :class:`LinkSettings`; keyword arguments (its field names) replace its fields
    """

    def __init__(
        self,
        uri: str,
        make_link: Callable[[], Link],
        reader,
        settings: LinkSettings | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(uri)
        s = replace(settings or LinkSettings(), **overrides)
        self.settings = s
        self._make_link = make_link
        self.reader = reader
        self._reconnect = s.reconnect
        self._backoff = Backoff(s.backoff, s.backoff_max)
        self._stall = s.stall
        self._start = s.start
        self._link: Link | None = None
        self._next_attempt = 0.0
        self._last_rx = time.monotonic()
        self._reconnects = 0
        #: frame count when a reopened link came up; None once it delivered (or on the first link)
        self._unproven_since: int | None = None
        self.last_error: str = ""
        link = make_link()
        try:
            link.open()
        except OSError as exc:
            raise SourceError(f"{uri}: cannot open: {exc}") from exc
        self._connected(link, first=True)
        try:
            self._wait_info(s.hello_timeout)
        except BaseException:
            self._close()
            raise

    # -- connection management -----------------------------------------------------------------

    @property
    def address(self):
        """The link's local address where it has one (UDP: the bound (host, port))."""
        return getattr(self._link, "address", None)

    @property
    def connected(self) -> bool:
        """True while the link is up."""
        return self._link is not None

    def fileno(self) -> int | None:
        """The link's descriptor while it is up and a selector may watch it (TCP, UDP), else
        None: a reader may then wait for it with ``select`` and call ``read(timeout=0)``,
        which reads what arrived without blocking (and gives None at once when nothing did).
        """
        link = self._link
        return None if link is None else link.fileno()

    def _connected(self, link: Link, first: bool = False) -> None:
        self._link = link
        self._last_rx = time.monotonic()
        if first:
            self._backoff.reset()
        else:  # counted (and the backoff reset) once it delivers: see _proven
            self._unproven_since = self.reader.frames
        self.reader.reset()
        self._send(self.reader.greeting(self._start))

    def _proven(self) -> None:
        """A reopened link delivered a good frame: the connection is re-established."""
        if self._unproven_since is not None and self.reader.frames > self._unproven_since:
            self._unproven_since = None
            self._reconnects += 1
            self._backoff.reset()

    def _send(self, data: bytes) -> None:
        if data and self._link is not None:
            try:
                self._link.write(data)
            except LinkLost as exc:
                self._lost(exc)

    def _lost(self, exc: BaseException) -> None:
        self.last_error = str(exc)
        link, self._link = self._link, None
        if link is not None:
            link.close()
        if not self._reconnect or (link is not None and not link.reconnectable):
            raise SourceError(f"{self.uri}: link lost: {exc}") from exc
        now = time.monotonic()
        if self._unproven_since is None:
            self._next_attempt = now  # a link that worked: try again at once
        else:  # a reopened link that never delivered: the outage goes on, back off
            self._next_attempt = now + self._backoff.next()

    def _try_reconnect(self, deadline: float | None) -> None:
        now = time.monotonic()
        if now < self._next_attempt:
            wake = self._next_attempt if deadline is None else min(self._next_attempt, deadline)
            time.sleep(max(0.0, wake - now))
            if time.monotonic() < self._next_attempt:
                return
        link = self._make_link()
        try:
            link.open()
        except OSError as exc:
            self.last_error = str(exc)
            self._next_attempt = time.monotonic() + self._backoff.next()
            return
        self._connected(link)

    def _wait_info(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        next_ask = time.monotonic() + 0.5
        while self.reader.info is None:
            now = time.monotonic()
            if now >= end:
                hint = (
                    "is it an SGB1 device? for text lines add ?protocol=ascii&fs=<Hz>"
                    if isinstance(self.reader, Sgb1Reader)
                    else "no parsable text line arrived"
                )
                raise SourceError(
                    f"{self.uri}: no stream description within {timeout:g} s ({hint})"
                    + (f"; last error: {self.last_error}" if self.last_error else "")
                )
            if now >= next_ask:
                self._send(self.reader.ask_info())
                next_ask = now + 0.5
            self._fill(min(end, next_ask))
        self.info = self.reader.info

    # -- Source --------------------------------------------------------------------------------

    def _fill(self, deadline: float | None) -> None:
        if self._link is None:
            self._try_reconnect(deadline)
            return
        now = time.monotonic()
        wait = _SLICE if deadline is None else max(0.0, min(_SLICE, deadline - now))
        try:
            data = self._link.read(wait)
        except LinkLost as exc:
            self._lost(exc)
            return
        now = time.monotonic()
        if not data:
            if self._stall and now - self._last_rx > self._stall:
                self._lost(LinkLost(f"no data for {self._stall:g} s"))
            return
        self._last_rx = now
        self._pending.extend(self.reader.feed(data, now))
        self._send(self.reader.recovery(now))  # a restart whose HELLO was lost
        if self._unproven_since is not None:
            self._proven()
        if self.reader.info is not None:
            self.info = self.reader.info

    def _extra_stats(self, stats: SourceStats) -> None:
        self.reader.fill_stats(stats)
        stats.reconnects = self._reconnects

    def _close(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.close()


def ascii_reader_from(opts, uri_text: str) -> AsciiReader:
    """An :class:`AsciiReader` from ``fs`` (required), ``channels``, ``units``, ``labels``."""
    fs = opts.number("fs", None, positive=True)
    if fs is None:
        raise ConfigError(f"{uri_text}: protocol=ascii needs fs=<Hz> (text carries no rate)")
    channels = opts.integer("channels", None, minimum=1)
    units = opts.text("units", "") or ""
    labels_text = opts.text("labels", "") or ""
    labels = tuple(x for x in labels_text.split(",") if x)
    return AsciiReader(fs, channels, units, labels)
