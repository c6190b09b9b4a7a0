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
``edf://PATH.edf`` (or ``.bdf``)            EDF+/BDF+ recording: inputs, outputs, beats as
                                            annotations (pyedflib; :mod:`streamgru.io.edf_sink`)
``view://127.0.0.1:PORT``                   the live view: a web page with each stream's
                                            waveform, output and beats (:mod:`streamgru.view`)
``nats://host:port/SUBJECT`` (``tls://``)   SGP1 (or ``format=json``) messages on a NATS subject,
                                            e.g. ``sg.out.bed1`` (nats-py)
==========================================  ====================================================

Every sink writes :class:`~streamgru.io.chunk.PredictionBlock` s with :meth:`Sink.write`, one line
or row per sample. A JSON line is ``{"stream": id, "index": i, "t": t_host, "y": [...]}`` (NaN
and infinities as ``null``); a CSV row is ``stream,index,t,y0,y1,...`` (or the block's labels).

File sinks (stdout, jsonl, csv) never drop: a write blocks until the bytes are handed to the OS
buffer, and :meth:`Sink.flush` flushes them. A file they create gets the permission bits of
their ``mode`` option (octal, default ``0640``) whatever the umask; an existing file keeps its
own. The TCP sink (:mod:`streamgru.io.tcp_sink`) never blocks the writer: each client has a
writer thread and a bounded queue (``queue`` rows, default 10000); a block that does not fit a
slow client's queue (an empty queue takes any block) is dropped for that client and counted in
``stats.dropped``.

Any sink URI may also carry the daemon writer's options (:func:`plan_sink`, stripped before the
sink opens): ``policy`` (``drop-oldest``, the default, or ``block``) and ``queue_blocks`` (the
sink's queue size, default ``daemon.queue_blocks``); see :mod:`streamgru.daemon.writer`.
:func:`check_sink` checks a URI and all its options without opening anything.

The NATS sink (:mod:`streamgru.io.nats_io`, extra ``nats``) publishes one message per block
carrying the input index of its first row (row ``i`` follows sample ``first_index + i``); it takes
``format`` (``sgp1`` or ``json``) and ``connect_timeout`` (5 s). A subject ending in ``.>`` is a
prefix: each block goes to ``<prefix>.<stream id>``.
"""

from __future__ import annotations

import io
import json
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlencode

import numpy as np

from ..errors import ConfigError, SinkError, require
from .chunk import PredictionBlock
from .uri import URI, Options, parse_uri

EXPECTED = (
    "stdout://, jsonl://PATH, csv://PATH, tcp://127.0.0.1:PORT, lsl://?name=NAME, null://, "
    "edf://PATH.edf, view://127.0.0.1:PORT or nats://host:port/SUBJECT"
)

#: Options of any sink URI that the daemon's writer reads (not the sink).
WRITER_OPTIONS = ("policy", "queue_blocks")
#: What a sink's writer does when the sink's queue is full.
SINK_POLICIES = ("drop-oldest", "block")
#: Permission bits of a file a jsonl:// or csv:// sink creates (``mode=`` option).
DEFAULT_FILE_MODE = 0o640


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
    if isinstance(block.t_host, (float, int, np.floating)):
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
    """Destination of prediction blocks; a context manager.

    ``inline``: True for a sink whose :meth:`write` never waits on I/O (it counts, keeps in
    memory or hands to queues of its own), so the daemon may call it on its processing thread
    instead of handing the block to the sink's thread.
    """

    inline = False

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

    inline = True

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
    return _prepare(uri, options)()


def check_sink(uri: str) -> None:
    """Check a sink URI and its options (the writer's and the sink's) without opening it.

    Raises
    ------
    ConfigError : an unknown scheme or option, or a bad value, naming it.
    """
    _prepare(plan_sink(uri, 1).open_uri, {})


def _prepare(uri: str, options: dict[str, Any]) -> Callable[[], Sink]:
    """Read and check every option of ``uri``; returns what opens the sink."""
    u = parse_uri(uri, EXPECTED)
    opts = Options(u, options)
    scheme = u.scheme
    if scheme in ("stdout", "null"):
        opts.finish()
        if scheme == "null":
            return lambda: NullSink(uri)
        return lambda: TextSink(uri, sys.stdout, "jsonl", owns=False)
    if scheme in ("jsonl", "csv"):
        append = opts.flag("append", True)
        mode = _file_mode(opts)
        opts.finish()
        if not u.path:
            raise ConfigError(f"{u.text}: expected {scheme}://PATH")
        return lambda: _open_file(u, scheme, append, mode)
    if scheme == "tcp":
        max_rows = opts.integer("queue", 10000, minimum=1) or 10000
        timeout = opts.number("send_timeout", 5.0, positive=True) or 5.0
        max_clients = opts.integer("max_clients", 16, minimum=1)
        opts.finish()
        if u.port is None:
            raise ConfigError(f"{uri}: expected tcp://127.0.0.1:PORT (PORT 0 picks a free one)")
        host, port = u.host or "127.0.0.1", u.port

        def make_tcp() -> Sink:
            from .tcp_sink import TcpSink

            return TcpSink(uri, host, port, max_rows, timeout, max_clients)

        return make_tcp
    if scheme == "lsl":
        name = opts.text("name", "streamgru") or "streamgru"
        stype = opts.text("type", "Prediction") or "Prediction"
        fs = opts.number("fs", 0.0, minimum=0.0)
        opts.finish()
        return lambda: LslSink(uri, name, stype, fs or 0.0)
    if scheme in ("nats", "tls"):
        return _prepare_nats(u, opts, options)
    if scheme == "edf":  # EDF+/BDF+ recording (extra edf)
        from .edf_sink import prepare_edf_sink

        return prepare_edf_sink(u, opts)
    if scheme == "view":  # the live view in the browser (streamgru.view)
        from ..view.sink import prepare_view_sink

        return prepare_view_sink(u, opts)
    raise ConfigError(f"unknown sink scheme {scheme!r} in {uri!r}; expected {EXPECTED}")


def _prepare_nats(u: URI, opts: Options, options: dict[str, Any]) -> Callable[[], Sink]:
    """``nats://host:port/SUBJECT``: URI and options checked here, then opened by nats_io."""
    from .nats_io import parse_nats_uri

    parse_nats_uri(u.text)  # ConfigError without a host or a subject
    opts.text("format")
    opts.number("connect_timeout", None, positive=True)
    opts.finish()

    def make() -> Sink:
        from .nats_io import open_nats_sink

        require("nats", "nats", f"{u.text}: the nats:// sink")
        return open_nats_sink(u.text, **options)

    return make


def _file_mode(opts: Options) -> int:
    """The ``mode`` option: permission bits of a file the sink creates (octal, default 0640)."""
    text = opts.text("mode", None)
    if text is None:
        return DEFAULT_FILE_MODE
    try:
        mode = int(text.removeprefix("0o"), 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise ConfigError(
            f"{opts.uri.text}: option mode={text!r}: expected octal permission bits like 0640"
        )
    return mode


def _open_file(u: URI, fmt: str, append: bool, mode: int) -> TextSink:
    """Open (or create, with exactly ``mode`` whatever the umask) the sink's file."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    try:
        parent = os.path.dirname(u.path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        try:
            fd = os.open(u.path, flags | os.O_EXCL, mode)
            os.fchmod(fd, mode)  # os.open's mode passes through the umask
        except FileExistsError:
            fd = os.open(u.path, flags)
        stream = os.fdopen(fd, "a" if append else "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise SinkError(f"{u.text}: cannot open {u.path}: {exc}") from exc
    return TextSink(u.text, stream, fmt, owns=True)


@dataclass(frozen=True)
class SinkPlan:
    """A sink URI split into what the daemon's writer reads and what the sink opens.

    Attributes
    ----------
    uri : the URI as configured (the sink's name in logs and metrics)
    open_uri : the URI without the writer's options (what :func:`open_sink` gets)
    policy : ``drop-oldest`` or ``block`` (see :mod:`streamgru.daemon.writer`)
    queue_blocks : how many blocks the sink's queue holds
    """

    uri: str
    open_uri: str
    policy: str
    queue_blocks: int


def plan_sink(uri: str, queue_blocks: int) -> SinkPlan:
    """Split the writer's options (``policy``, ``queue_blocks``) off a sink URI.

    ``queue_blocks`` is the default queue size (``daemon.queue_blocks``).
    Raises :class:`ConfigError` for a bad policy or size.
    """
    if not isinstance(uri, str) or "://" not in uri:
        raise ConfigError(f"expected a URI like {EXPECTED}, got {uri!r}")
    base, _, query = uri.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    found = {k: v for k, v in pairs if k in WRITER_OPTIONS}
    policy = found.get("policy", "drop-oldest")
    if policy not in SINK_POLICIES:
        raise ConfigError(
            f"{uri}: option policy={policy!r}: expected one of {', '.join(SINK_POLICIES)}"
        )
    size = found.get("queue_blocks", str(queue_blocks))
    if not size.isdigit() or int(size) < 1:
        raise ConfigError(f"{uri}: option queue_blocks={size!r}: expected an integer >= 1")
    if not found:
        return SinkPlan(uri, uri, policy, int(size))
    rest = [(k, v) for k, v in pairs if k not in WRITER_OPTIONS]
    open_uri = base + ("?" + urlencode(rest) if rest else "")
    return SinkPlan(uri, open_uri, policy, int(size))
