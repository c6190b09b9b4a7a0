"""``open_sink(uri)``: where predictions go.

==========================================  ====================================================
URI                                         what
==========================================  ====================================================
``stdout://`` (the default)                 JSON lines on standard output
``jsonl://PATH``                            JSON lines appended to a file
``csv://PATH``                              CSV rows appended to a file (header when it is empty)
``tcp://127.0.0.1:PORT``                    a server: JSON lines to every connected client
``lsl://?name=NAME&type=TYPE&fs=HZ``        a Lab Streaming Layer outlet (pylsl)
``null://``                                 discard (counts rows)
``nats://host:port/SUBJECT`` (``tls://``)   SGP1 (or ``format=json``) messages on a NATS subject,
                                            e.g. ``sg.out.bed1`` (nats-py)
==========================================  ====================================================

Every sink writes :class:`~streamgru.io.chunk.PredictionBlock` s with :meth:`Sink.write`, one line
or row per sample. A JSON line is ``{"stream": id, "index": i, "t": t_host, "y": [...]}`` (NaN
and infinities as ``null``); a CSV row is ``stream,index,t,y0,y1,...`` (or the block's labels).

File sinks (stdout, jsonl, csv) never drop: a write blocks until the bytes are handed to the OS
buffer, and :meth:`Sink.flush` flushes them. The TCP sink never blocks the writer: each client
has a writer thread and a bounded queue (``queue`` rows, default 10000); a block that does not fit
a slow client's queue (an empty queue takes any block) is dropped for that client and counted in
``stats.dropped``.

The NATS sink (:mod:`streamgru.io.nats_io`, extra ``nats``) publishes one message per block
carrying the input index of its first row (row ``i`` follows sample ``first_index + i``); it takes
``format`` (``sgp1`` or ``json``) and ``connect_timeout`` (5 s). A subject ending in ``.>`` is a
prefix: each block goes to ``<prefix>.<stream id>``.
"""

from __future__ import annotations

import io
import json
import os
import select
import socket
import sys
import threading
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from ..errors import ConfigError, SinkError, require
from .chunk import PredictionBlock
from .uri import URI, Options, parse_uri

EXPECTED = (
    "stdout://, jsonl://PATH, csv://PATH, tcp://127.0.0.1:PORT, lsl://?name=NAME, null:// "
    "or nats://host:port/SUBJECT"
)


@dataclass
class SinkStats:
    """Running totals: ``written`` rows accepted by :meth:`Sink.write`, ``dropped`` rows not
    delivered (TCP: per client whose queue was full)."""

    written: int = 0
    dropped: int = 0


def _texts(Y: np.ndarray, nonfinite: str) -> list[str]:
    """Each row of a (T, O) float32 block as comma-separated shortest reprs, formatted a block
    at once: ``Y.astype(str)`` gives what ``str(np.float32(v))`` gives, without a Python call
    per value; NaN and Inf become ``nonfinite``."""
    text = Y.astype(str)
    finite = np.isfinite(Y)
    if not finite.all():
        text[~finite] = nonfinite
    if Y.shape[1] == 1:
        return text[:, 0].tolist()
    return [",".join(row) for row in text.tolist()]


def json_lines(block: PredictionBlock) -> str:
    """The block as JSON lines (one per sample, each ending with a newline)."""
    n = block.n_samples
    if n == 0:
        return ""
    head = '{"stream": ' + json.dumps(block.stream_id) + ', "index": '
    rows = range(block.first_index, block.first_index + n)
    ys = _texts(block.outputs, "null")
    if np.isscalar(block.t_host):
        t = repr(float(block.t_host))
        return "".join(f'{head}{i}, "t": {t}, "y": [{y}]}}\n' for i, y in zip(rows, ys))
    ts = block.times().tolist()
    return "".join(f'{head}{i}, "t": {t!r}, "y": [{y}]}}\n' for i, t, y in zip(rows, ts, ys))


def _csv_field(text: str) -> str:
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_rows(block: PredictionBlock) -> str:
    """The block as CSV rows ``stream,index,t,y...`` (each ending with a newline)."""
    stream = _csv_field(block.stream_id)
    times = block.times()
    out = []
    for k in range(block.n_samples):
        y = ",".join(str(v) for v in block.outputs[k])
        out.append(f"{stream},{block.first_index + k},{float(times[k])!r},{y}\n")
    return "".join(out)


class Sink(ABC):
    """Destination of prediction blocks; a context manager."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.stats = SinkStats()
        self.closed = False

    @abstractmethod
    def write(self, block: PredictionBlock) -> None:
        """Write one block (T rows)."""

    def flush(self) -> None:  # noqa: B027 - nothing to flush by default
        """Push buffered rows out."""

    def close(self) -> None:
        """Flush and release; idempotent."""
        if not self.closed:
            self.closed = True
            self._close()

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.uri!r}>"


class NullSink(Sink):
    """Counts rows and discards them."""

    def write(self, block: PredictionBlock) -> None:
        self.stats.written += block.n_samples


class TextSink(Sink):
    """JSON lines or CSV rows on a text stream (stdout or a file); never drops."""

    def __init__(self, uri: str, stream: TextIO, fmt: str, owns: bool) -> None:
        super().__init__(uri)
        self._stream = stream
        self._fmt = fmt
        self._owns = owns
        self._width: int | None = None

    def write(self, block: PredictionBlock) -> None:
        if self.closed:
            raise SinkError(f"{self.uri}: write to a closed sink")
        try:
            if self._fmt == "csv":
                self._csv_header(block)
                self._stream.write(csv_rows(block))
            else:
                self._stream.write(json_lines(block))
        except (OSError, ValueError) as exc:
            raise SinkError(f"{self.uri}: cannot write: {exc}") from exc
        self.stats.written += block.n_samples

    def _csv_header(self, block: PredictionBlock) -> None:
        width = block.outputs.shape[1]
        if self._width is None:
            self._width = width
            if self._is_empty():
                names = (
                    block.labels if len(block.labels) == width else [f"y{i}" for i in range(width)]
                )
                self._stream.write(",".join(["stream", "index", "t", *map(_csv_field, names)]))
                self._stream.write("\n")
        elif width != self._width:
            raise SinkError(f"{self.uri}: rows have {self._width} outputs, got {width}")

    def _is_empty(self) -> bool:
        try:
            return self._stream.tell() == 0
        except (OSError, io.UnsupportedOperation):
            return True

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError) as exc:
            raise SinkError(f"{self.uri}: cannot flush: {exc}") from exc

    def _close(self) -> None:
        try:
            self._stream.flush()
        finally:
            if self._owns:
                self._stream.close()


class _Client:
    """One TCP client: a bounded queue of rows and the thread that sends them."""

    def __init__(self, sock: socket.socket, max_rows: int, timeout: float) -> None:
        self.sock = sock
        self.max_rows = max_rows
        self.dropped = 0
        self.alive = True
        self._queue: deque[tuple[bytes, int]] = deque()
        self._rows = 0
        self._cond = threading.Condition()
        sock.settimeout(timeout)
        self.thread = threading.Thread(target=self._run, name="streamgru-tcp-sink", daemon=True)
        self.thread.start()

    def put(self, data: bytes, rows: int) -> None:
        with self._cond:
            if not self.alive:
                return
            if self._queue and self._rows + rows > self.max_rows:
                self.dropped += rows
                return
            self._queue.append((data, rows))
            self._rows += rows
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self.alive and not self._queue:
                    self._cond.wait(0.5)
                if not self.alive:
                    break
                data, rows = self._queue.popleft()
            try:
                self.sock.sendall(data)
            except OSError:
                self.stop()
            with self._cond:
                self._rows -= rows
        self.sock.close()

    def stop(self) -> None:
        with self._cond:
            self.alive = False
            self.dropped += self._rows
            self._rows = 0
            self._queue.clear()
            self._cond.notify()


class TcpSink(Sink):
    """A TCP server sending JSON lines to every connected client (see the module docstring).

    ``address`` is the bound (host, port): give port 0 to let the OS pick one.
    """

    def __init__(self, uri: str, host: str, port: int, max_rows: int, timeout: float) -> None:
        super().__init__(uri)
        try:
            self._server = socket.create_server((host, port))
        except OSError as exc:
            raise SinkError(f"{uri}: cannot listen on {host}:{port}: {exc}") from exc
        self._server.setblocking(False)
        self.address: tuple[str, int] = self._server.getsockname()[:2]
        self._max_rows = max_rows
        self._timeout = timeout
        self._clients: list[_Client] = []
        self._lock = threading.Lock()
        self._dropped_gone = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._accept, name="streamgru-tcp-accept", daemon=True
        )
        self._thread.start()

    @property
    def n_clients(self) -> int:
        with self._lock:
            return sum(c.alive for c in self._clients)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._server], [], [], 0.1)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            try:
                sock, _ = self._server.accept()
            except OSError:
                continue
            sock.setblocking(True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._clients.append(_Client(sock, self._max_rows, self._timeout))

    def write(self, block: PredictionBlock) -> None:
        if self.closed:
            raise SinkError(f"{self.uri}: write to a closed sink")
        data = json_lines(block).encode()
        with self._lock:
            for client in self._clients:
                client.put(data, block.n_samples)
            gone = [c for c in self._clients if not c.alive]
            for c in gone:
                self._dropped_gone += c.dropped
                self._clients.remove(c)
            self.stats.dropped = self._dropped_gone + sum(c.dropped for c in self._clients)
        self.stats.written += block.n_samples

    def _close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._server.close()
        with self._lock:
            clients, self._clients = self._clients, []
        for c in clients:
            c.stop()
        for c in clients:
            c.thread.join(2.0)


class LslSink(Sink):
    """An LSL outlet; each row's timestamp is its ``t_host``."""

    def __init__(self, uri: str, name: str, stype: str, fs: float) -> None:
        super().__init__(uri)
        from .lsl import LslOutlet

        self._outlet = LslOutlet(name, stype, fs)

    def write(self, block: PredictionBlock) -> None:
        try:
            self._outlet.push(block)
        except SinkError:
            raise
        except Exception as exc:
            raise SinkError(f"{self.uri}: {exc}") from exc
        self.stats.written += block.n_samples

    def _close(self) -> None:
        self._outlet.close()


def open_sink(uri: str = "stdout://", **options: Any) -> Sink:
    """Open the sink at ``uri`` (see the module docstring)."""
    u = parse_uri(uri, EXPECTED)
    opts = Options(u, options)
    scheme = u.scheme
    if scheme == "stdout":
        opts.finish()
        return TextSink(uri, sys.stdout, "jsonl", owns=False)
    if scheme == "null":
        opts.finish()
        return NullSink(uri)
    if scheme in ("jsonl", "csv"):
        append = opts.flag("append", True)
        opts.finish()
        return _open_file(u, scheme, append)
    if scheme == "tcp":
        max_rows = opts.integer("queue", 10000, minimum=1)
        timeout = opts.number("send_timeout", 5.0, positive=True)
        opts.finish()
        if u.port is None:
            raise ConfigError(f"{uri}: expected tcp://127.0.0.1:PORT (PORT 0 picks a free one)")
        return TcpSink(uri, u.host or "127.0.0.1", u.port, max_rows, timeout)
    if scheme == "lsl":
        name = opts.text("name", "streamgru") or "streamgru"
        stype = opts.text("type", "Prediction") or "Prediction"
        fs = opts.number("fs", 0.0, minimum=0.0)
        opts.finish()
        return LslSink(uri, name, stype, fs or 0.0)
    if scheme in ("nats", "tls"):
        return _open_nats(u, opts, options)
    raise ConfigError(f"unknown sink scheme {scheme!r} in {uri!r}; expected {EXPECTED}")


def _open_nats(u: URI, opts: Options, options: dict[str, Any]) -> Sink:
    """``nats://host:port/SUBJECT``: URI and options checked here, then opened by nats_io."""
    from .nats_io import open_nats_sink, parse_nats_uri

    parse_nats_uri(u.text)  # ConfigError without a host or a subject
    opts.text("format")
    opts.number("connect_timeout", None, positive=True)
    opts.finish()
    require("nats", "nats", f"{u.text}: the nats:// sink")
    return open_nats_sink(u.text, **options)


def _open_file(u: URI, fmt: str, append: bool) -> TextSink:
    if not u.path:
        raise ConfigError(f"{u.text}: expected {fmt}://PATH")
    try:
        parent = os.path.dirname(u.path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        stream = open(u.path, "a" if append else "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise SinkError(f"{u.text}: cannot open {u.path}: {exc}") from exc
    return TextSink(u.text, stream, fmt, owns=True)
