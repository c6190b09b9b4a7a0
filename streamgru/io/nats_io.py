"""NATS as a source and a sink: the per-stream input decoder and sync wrappers over nats-py.

Subjects, the SGN1 / SGB1 input and SGP1 / JSON output formats and partitioning are in
:mod:`streamgru.io.nats_formats` (re-exported here).

``nats-py`` is imported only when a connection is made (extra ``nats``).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..errors import ConfigError, ProtocolError, SinkError, SourceError, require
from .assembler import info_from_hello, to_physical
from .base import Source
from .chunk import Chunk, PredictionBlock, SourceStats, StreamInfo
from .nats_formats import (
    _BATCH_MAGIC,
    IN_PREFIX,
    OUT_PREFIX,
    OUTPUT_FORMATS,
    PART_PREFIX,
    check_stream_id,
    decode_batch,
    decode_predictions,
    encode_batch,
    encode_predictions,
    fnv1a_32,
    input_subject,
    output_subject,
    partition_mapping,
    partition_of,
    partition_subject,
)
from .protocol import Data, Decoder, Hello, SampleFormat
from .sinks import Sink

__all__ = [
    "IN_PREFIX",
    "OUTPUT_FORMATS",
    "OUT_PREFIX",
    "PART_PREFIX",
    "InputDecoder",
    "NatsSink",
    "NatsSource",
    "NatsTarget",
    "check_stream_id",
    "connect",
    "decode_batch",
    "decode_predictions",
    "encode_batch",
    "encode_predictions",
    "fnv1a_32",
    "input_subject",
    "open_nats_sink",
    "open_nats_source",
    "output_subject",
    "parse_nats_uri",
    "partition_mapping",
    "partition_of",
    "partition_subject",
]

_MASK32 = 0xFFFFFFFF
_HALF32 = 1 << 31


# ------------------------------------------------------------------------------- decoding
@dataclass
class _Calibration:
    gain: np.ndarray
    baseline: np.ndarray
    sample_format: int
    session: int


class InputDecoder:
    """Turns the input messages of one stream into :class:`Chunk` objects, in index order.

    Keeps the 64-bit index expected next: a message that starts past it is a gap (``gap_before``);
    one that overlaps it is trimmed to the new samples; one entirely behind it (a repeat or a
    stale message, however far back) is dropped and counted in ``stats.ignored``. Only a HELLO of
    a new session is a device restart (``restarted=True``, the index continues): the same rule
    as the SGB1 assembler (``io/assembler.py``, firmware_bridge/PROTOCOL.md). Its whole state is JSON-able
    (:meth:`to_dict` / :meth:`from_dict`) so that a worker can hand it over.
    """

    def __init__(self) -> None:
        self.stats = SourceStats()
        self.info: StreamInfo | None = None
        self.next_index: int | None = None
        self._cal: _Calibration | None = None
        self._restart_pending = False

    # ----------------------------------------------------------------- feeding
    def feed(self, payload: bytes, t_host: float = 0.0) -> list[Chunk]:
        """Decode one message; returns its chunks (possibly none). Never raises on bad bytes."""
        payload = bytes(payload)
        if payload[:4] == _BATCH_MAGIC:
            try:
                first, samples = decode_batch(payload)
            except ProtocolError:
                self.stats.malformed += 1
                self.stats.bytes_discarded += len(payload)
                return []
            self.stats.frames += 1
            chunk = self._place(first, samples, t_host, wrap32=False)
            return [] if chunk is None else [chunk]
        decoder = Decoder()
        chunks = []
        if not payload.endswith(b"\x00"):
            payload += b"\x00"  # a message holds whole frames: end a partial one (counted bad)
        for frame in decoder.feed(payload):
            if isinstance(frame, Hello):
                self._on_hello(frame)
            elif isinstance(frame, Data):
                chunk = self._on_data(frame, t_host)
                if chunk is not None:
                    chunks.append(chunk)
            else:
                self.stats.ignored += 1
        st = decoder.stats
        self.stats.frames += st.frames
        self.stats.crc_errors += st.crc_errors
        self.stats.malformed += st.malformed + st.unsupported
        self.stats.oversize += st.oversize
        self.stats.bytes_discarded += st.bytes_discarded
        return chunks

    def _on_hello(self, hello: Hello) -> None:
        if self._cal is not None and hello.session != self._cal.session:
            self._restart_pending = True
        self._cal = _Calibration(
            np.asarray(hello.gain, dtype=np.float64),
            np.asarray(hello.baseline, dtype=np.float64),
            int(hello.sample_format),
            int(hello.session),
        )
        self.info = info_from_hello(hello)

    def _on_data(self, data: Data, t_host: float) -> Chunk | None:
        cal = self._cal
        if cal is None:
            if data.sample_format is not SampleFormat.FLOAT32:
                self.stats.ignored += 1
                return None
            samples = data.values()
        elif data.n_channels != cal.gain.shape[0] or int(data.sample_format) != cal.sample_format:
            self.stats.ignored += 1
            return None
        else:
            samples = to_physical(data.values(), cal.gain, cal.baseline)
        return self._place(data.first_index, samples, t_host, wrap32=True)

    def _place(self, first: int, samples: np.ndarray, t_host: float, wrap32: bool) -> Chunk | None:
        """Put a block at its 64-bit index: gap, overlap trim, stale drop or restart."""
        expected = self.next_index
        gap = 0
        restarted = self._restart_pending
        if expected is None:
            start = first
        else:
            if wrap32:
                delta = (first - expected) & _MASK32
                delta = delta - (1 << 32) if delta >= _HALF32 else delta
            else:
                delta = first - expected
            if restarted:
                start = expected
                self.stats.restarts += 1
            elif delta < 0:
                skip = -delta
                if skip >= samples.shape[0]:  # entirely behind: a repeat or a stale message
                    self.stats.ignored += 1
                    self.stats.stale_frames += 1
                    return None
                samples = samples[skip:]
                start = expected
            else:
                start = expected + delta
                gap = delta
        self._restart_pending = False
        if gap:
            self.stats.gaps += 1
            self.stats.samples_lost += gap
        self.next_index = start + samples.shape[0]
        self.stats.chunks += 1
        self.stats.samples += samples.shape[0]
        return Chunk(samples, start, t_host, gap_before=gap, restarted=restarted)

    # ------------------------------------------------------------------- state
    def to_dict(self) -> dict[str, Any]:
        """The decoder's state as JSON-able values (counters included)."""
        cal = self._cal
        return {
            "next_index": self.next_index,
            "restart_pending": self._restart_pending,
            "calibration": None
            if cal is None
            else {
                "gain": cal.gain.tolist(),
                "baseline": cal.baseline.tolist(),
                "sample_format": cal.sample_format,
                "session": cal.session,
            },
            "info": None if self.info is None else self.info.to_dict(),
            "stats": self.stats.to_dict(),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> InputDecoder:
        """Rebuild a decoder from :meth:`to_dict` output."""
        dec = cls()
        dec.next_index = state.get("next_index")
        dec._restart_pending = bool(state.get("restart_pending", False))
        cal = state.get("calibration")
        if cal:
            dec._cal = _Calibration(
                np.asarray(cal["gain"], dtype=np.float64),
                np.asarray(cal["baseline"], dtype=np.float64),
                int(cal["sample_format"]),
                int(cal["session"]),
            )
        if state.get("info"):
            info = dict(state["info"])
            for key in ("labels", "units", "gain", "baseline"):
                info[key] = tuple(info[key])
            dec.info = StreamInfo(**info)
        dec.stats = SourceStats(**state.get("stats", {}))
        return dec


# ------------------------------------------------------------------------------- URIs
@dataclass(frozen=True)
class NatsTarget:
    """A parsed ``nats://host:port/SUBJECT?opt=value`` URI."""

    server: str
    subject: str
    options: dict[str, str]


def parse_nats_uri(uri: str) -> NatsTarget:
    """Split ``nats://host:port/SUBJECT`` (``tls://`` too) into server URL and subject."""
    parts = urlsplit(uri)
    if parts.scheme not in ("nats", "tls") or not parts.hostname:
        raise ConfigError(f"nats uri: expected nats://host:port/SUBJECT, got {uri!r}")
    subject = parts.path.lstrip("/")
    if not subject or " " in subject or subject.startswith(".") or subject.endswith("."):
        raise ConfigError(f"nats uri: expected a subject after the host, got {uri!r}")
    port = parts.port or 4222
    auth = f"{parts.username}:{parts.password}@" if parts.username else ""
    server = f"{parts.scheme}://{auth}{parts.hostname}:{port}"
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return NatsTarget(server, subject, options)


async def connect(server: str, name: str = "streamgru", **kwargs: Any) -> Any:
    """Connect to ``server`` with nats-py (imported here), reconnecting forever by default.

    Connection errors are logged as one line each on the ``streamgru.nats`` logger (not as
    nats-py's tracebacks).
    """
    nats = require("nats", "nats", "the NATS source, sink and cluster worker")
    logger = logging.getLogger("streamgru.nats")

    async def on_error(exc: Exception) -> None:
        logger.warning("nats: %r", exc, extra={"fields": {"server": server}})

    async def on_disconnect() -> None:
        logger.warning("nats: disconnected", extra={"fields": {"server": server}})

    async def on_reconnect() -> None:
        logger.info("nats: reconnected", extra={"fields": {"server": server}})

    opts = {
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "error_cb": on_error,
        "disconnected_cb": on_disconnect,
        "reconnected_cb": on_reconnect,
    }
    opts.update(kwargs)
    return await nats.connect(server, **opts)


class _LoopThread:
    """An asyncio loop on a daemon thread, so that blocking callers can use nats-py."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float | None = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5.0)


# ------------------------------------------------------------------------------- source / sink
class NatsSource(Source):
    """Chunks of one stream from a core NATS subject (``nats://host:port/sg.in.bed1``).

    Messages are queued raw (up to ``queue`` messages, default 10000; beyond that new messages
    are dropped, counted in ``dropped``, and show up as a gap by their index) and decoded in
    :meth:`read`. Core NATS keeps nothing while this process is away; the cluster worker
    (:mod:`streamgru.cluster`) is the durable path. Options (query or keywords): ``fs``
    and ``channels`` describe an SGN1 stream (an SGB1 HELLO overrides them), ``queue``,
    ``connect_timeout`` (5 s).
    """

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri)
        self.target = parse_nats_uri(uri)
        opts = {**self.target.options, **options}
        timeout = float(opts.get("connect_timeout", 5.0))
        self.dropped = 0
        self._queue: queue.Queue[tuple[bytes, float]] = queue.Queue(int(opts.get("queue", 10000)))
        self._decoder = InputDecoder()
        fs = float(opts.get("fs", 0) or 0)
        if fs:
            self.info = StreamInfo(
                fs=fs, n_channels=int(opts.get("channels", 1)), labels=(), units=()
            )
        self._loop = _LoopThread("streamgru-nats-source")
        try:
            self._nc = self._loop.call(connect(self.target.server), timeout)
            self._loop.call(self._nc.subscribe(self.target.subject, cb=self._on_msg), timeout)
            self._loop.call(self._nc.flush(timeout), timeout + 1.0)  # subscribed at the server
        except Exception as exc:
            self._loop.stop()
            raise SourceError(f"{uri}: cannot subscribe: {exc!r}") from exc

    async def _on_msg(self, msg: Any) -> None:
        try:
            self._queue.put_nowait((msg.data, time.monotonic()))
        except queue.Full:
            self.dropped += 1

    def _fill(self, deadline: float | None) -> None:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            payload, t_host = self._queue.get(timeout=left)
        except queue.Empty:
            return
        self._pending.extend(self._decoder.feed(payload, t_host))
        if self._decoder.info is not None:
            self.info = self._decoder.info

    def _extra_stats(self, stats: SourceStats) -> None:
        d = self._decoder.stats
        for name in (
            "frames",
            "crc_errors",
            "malformed",
            "bytes_discarded",
            "oversize",
            "ignored",
            "gaps",
            "samples_lost",
            "restarts",
        ):
            setattr(stats, name, getattr(d, name))

    def _close(self) -> None:
        try:
            self._loop.call(self._nc.close(), 5.0)
        except Exception:  # closing a lost connection is not an error
            pass
        self._loop.stop()


class NatsSink(Sink):
    """Predictions to ``nats://host:port/SUBJECT`` (``format=json`` for JSON, default SGP1).

    A subject ending in ``.>`` or ``.*`` (e.g. ``nats://h/sg.out.>``) is a prefix: each block goes
    to ``<prefix>.<stream_id>``; any other subject is used as it is. Publishing is buffered by
    the client and never blocks on a slow reader (core NATS drops for slow subscribers; a
    JetStream stream on the subject keeps everything).
    """

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri)
        self.target = parse_nats_uri(uri)
        opts = {**self.target.options, **options}
        self.fmt = str(opts.get("format", "sgp1"))
        if self.fmt not in OUTPUT_FORMATS:
            raise ConfigError(
                f"{uri}: format: expected one of {', '.join(OUTPUT_FORMATS)}, got {self.fmt!r}"
            )
        subject = self.target.subject
        self._prefix = subject[:-2] if subject.endswith((".>", ".*")) else None
        self._timeout = float(opts.get("connect_timeout", 5.0))
        self._loop = _LoopThread("streamgru-nats-sink")
        try:
            self._nc = self._loop.call(connect(self.target.server), self._timeout)
        except Exception as exc:
            self._loop.stop()
            raise SinkError(f"{uri}: cannot connect: {exc!r}") from exc

    def write(self, block: PredictionBlock) -> None:
        """Publish one block (buffered by the client; :meth:`flush` waits for the server)."""
        if self.closed:
            raise SinkError(f"{self.uri}: write to a closed sink")
        subject = self.target.subject
        if self._prefix is not None:
            subject = f"{self._prefix}.{block.stream_id}"
        payload = encode_predictions(block, self.fmt)
        try:
            self._loop.call(self._nc.publish(subject, payload), self._timeout)
        except Exception as exc:
            raise SinkError(f"{self.uri}: cannot publish to {subject!r}: {exc!r}") from exc
        self.stats.written += block.n_samples

    def flush(self) -> None:
        try:
            self._loop.call(self._nc.flush(self._timeout), self._timeout + 1.0)
        except Exception as exc:
            raise SinkError(f"{self.uri}: flush failed: {exc!r}") from exc

    def _close(self) -> None:
        try:
            self._loop.call(self._nc.drain(), self._timeout)
        except Exception:  # closing a lost connection is not an error
            pass
        self._loop.stop()


def open_nats_source(uri: str, **options: Any) -> NatsSource:
    """``open_source`` hook for ``nats://`` and ``tls://`` URIs."""
    return NatsSource(uri, **options)


def open_nats_sink(uri: str, **options: Any) -> NatsSink:
    """``open_sink`` hook for ``nats://`` and ``tls://`` URIs."""
    return NatsSink(uri, **options)
