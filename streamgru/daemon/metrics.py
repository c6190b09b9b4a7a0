"""Daemon metrics: plain counters on the hot path, Prometheus text on ``/metrics``.

The processing threads only add to plain integers (:class:`StreamCounters`) and to a
:class:`LatencyRecorder`; a collector turns them into Prometheus families when ``/metrics`` is
scraped, from a :class:`prometheus_client.CollectorRegistry` of the daemon's own (never the
global one, so several daemons, or tests, live in one process).

:class:`MetricsServer` serves ``/metrics``, ``/healthz`` (the processing loop is alive) and
``/readyz`` (models warmed, streams started) from a ``ThreadingHTTPServer`` on 127.0.0.1 unless
configured otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from ..errors import require
from ..io.uri import redact_uri

#: Upper bounds (seconds) of the latency histogram's buckets.
LATENCY_BUCKETS = (
    50e-6,
    100e-6,
    200e-6,
    300e-6,
    500e-6,
    750e-6,
    1e-3,
    2e-3,
    5e-3,
    10e-3,
    20e-3,
    50e-3,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


@dataclass
class StreamCounters:
    """Running totals of one stream (monotonic; written by the daemon's threads).

    Attributes
    ----------
    samples_in : samples taken from the source
    samples_out : prediction rows written (counted once, at the first sink that took them)
    gaps, samples_lost : discontinuities before chunks and the samples missing in them
    samples_filled : samples synthesised by the ``fill`` gap policy
    nonfinite : samples that held a NaN or Inf (sanitised by the NaN policy)
    resets : times the state was reset (gap, NaN, restart, reload)
    dropped_output : prediction rows dropped because a sink queue stayed full or a sink failed
        (per sink: a block two sinks failed to take counts twice)
    skipped : samples whose index was already processed (before the resume index, overlaps)
    beats : beat events detected
    device_beats, device_events : beat EVENTs (code 0x0101) and other EVENTs from the device
    beats_agreed, beats_disagreed : device beats paired with a host beat, and beats only one
        side decided (``streamgru.daemon.device_beats``; counted once the device sent a beat)
    crc_errors, malformed, bytes_discarded, ignored, reconnects, restarts, source_errors : from the
        source(s) (totals across reconnections) and the reader
    stale_frames : DATA frames behind the index (also in ``ignored``), from the source(s)
    """

    samples_in: int = 0
    samples_out: int = 0
    gaps: int = 0
    samples_lost: int = 0
    samples_filled: int = 0
    nonfinite: int = 0
    resets: int = 0
    dropped_output: int = 0
    skipped: int = 0
    beats: int = 0
    device_beats: int = 0
    device_events: int = 0
    beats_agreed: int = 0
    beats_disagreed: int = 0
    crc_errors: int = 0
    malformed: int = 0
    bytes_discarded: int = 0
    ignored: int = 0
    stale_frames: int = 0
    reconnects: int = 0
    restarts: int = 0
    source_errors: int = 0

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_COUNTER_HELP = {
    "samples_in": "Samples read from the source",
    "samples_out": "Prediction rows written",
    "gaps": "Gaps (lost samples) seen before chunks",
    "samples_lost": "Samples lost in gaps",
    "samples_filled": "Samples synthesised by the fill gap policy",
    "nonfinite": "Samples holding NaN or Inf, handled by the NaN policy",
    "resets": "State resets (gap, NaN, device restart, reload)",
    "dropped_output": "Prediction rows dropped because a sink queue was full or a sink failed",
    "skipped": "Samples already processed (before the resume index, or overlaps), skipped",
    "beats": "Beat events detected",
    "device_beats": "Beat events (EVENT code 0x0101) sent by the device",
    "device_events": "Other EVENT frames sent by the device",
    "beats_agreed": "Device beats paired with a host beat (within 50 ms)",
    "beats_disagreed": "Beats decided on only one side (device or host)",
    "crc_errors": "Frames rejected for a CRC mismatch",
    "malformed": "Frames rejected for their structure",
    "bytes_discarded": "Bytes that were not part of a good frame",
    "ignored": "Good frames not used: DATA behind the index (stale, duplicate or replayed), "
    "before the first HELLO, or not matching it",
    "stale_frames": "DATA frames behind the index (stale, duplicate or replayed), dropped; "
    "also counted in ignored",
    "reconnects": "Reconnections of the source",
    "restarts": "Device restarts seen on the source",
    "source_errors": "Times the source was lost or could not be opened",
}


class LatencyRecorder:
    """Per-sample latency: a histogram for Prometheus plus recent values for percentiles.

    :meth:`add` records one latency for ``n`` samples (the rows of one written block share
    their arrival time). Thread-safe.

    Parameters
    ----------
    buckets : upper bounds in seconds
    recent : how many recent blocks the percentiles are computed over
    """

    def __init__(self, buckets: Iterable[float] = LATENCY_BUCKETS, recent: int = 65536) -> None:
        self.bounds = np.asarray(tuple(buckets), dtype=np.float64)
        self.counts = np.zeros(self.bounds.size + 1, dtype=np.int64)  # last: +Inf
        self.sum = 0.0
        self.count = 0
        self._lat = np.zeros(recent, dtype=np.float64)
        self._n = np.zeros(recent, dtype=np.int64)
        self._pos = 0
        self._filled = 0
        self._lock = threading.Lock()

    def add(self, latency_s: float, n: int = 1) -> None:
        """Record ``n`` samples that each took ``latency_s`` seconds."""
        if n <= 0:
            return
        k = int(np.searchsorted(self.bounds, latency_s, side="left"))
        with self._lock:
            self.counts[k] += n
            self.sum += latency_s * n
            self.count += n
            self._lat[self._pos] = latency_s
            self._n[self._pos] = n
            self._pos = (self._pos + 1) % self._lat.size
            self._filled = min(self._filled + 1, self._lat.size)

    def add_many(self, latencies_s: np.ndarray) -> None:
        """Record one latency per sample."""
        lat = np.asarray(latencies_s, dtype=np.float64).ravel()
        if not lat.size:
            return
        # rows of one block come in runs of equal arrival times (a chunk each): one entry a run
        starts = np.flatnonzero(np.concatenate(([True], lat[1:] != lat[:-1])))
        counts = np.diff(np.append(starts, lat.size))
        for v, c in zip(lat[starts].tolist(), counts.tolist()):
            self.add(v, c)

    def percentiles(self, qs: Iterable[float] = (50, 99)) -> dict[str, float]:
        """``{"p50": seconds, ...}`` over the recent samples (NaN when nothing recorded)."""
        with self._lock:
            lat = self._lat[: self._filled].copy()
            n = self._n[: self._filled].copy()
        out: dict[str, float] = {}
        order = np.argsort(lat)
        lat, n = lat[order], n[order]
        cum = np.cumsum(n)
        total = int(cum[-1]) if cum.size else 0
        for q in qs:
            key = f"p{q:g}".replace(".", "_")
            if not total:
                out[key] = float("nan")
                continue
            rank = max(1, int(np.ceil(q / 100.0 * total)))
            out[key] = float(lat[int(np.searchsorted(cum, rank, side="left"))])
        out["max"] = float(lat[-1]) if lat.size else float("nan")
        return out

    def buckets(self) -> tuple[list[tuple[str, int]], float]:
        """Cumulative ``[(le, count)]`` (Prometheus style, ending with "+Inf") and the sum."""
        with self._lock:
            cum = np.cumsum(self.counts)
            total = self.sum
        labels = [_le(b) for b in self.bounds.tolist()] + ["+Inf"]
        return list(zip(labels, cum.tolist())), total


def _le(bound: float) -> str:
    return repr(float(bound))


class DaemonCollector:
    """Turns the daemon's counters into Prometheus families at scrape time.

    Parameters
    ----------
    snapshot : callable returning a dict with ``streams`` (id → (StreamCounters, state str,
        LatencyRecorder)), ``queues`` (list of (queue, stream or sink, depth)), ``sink_errors``
        (sink uri → count), ``ready`` (bool) and optionally ``sinks`` (sink uri → (queue depth,
        rows written, {reason: rows dropped})), as ``SinkWriter.sink_stats()`` gives it
    """

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list:
        return []  # families are created per scrape

    def collect(self):
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        snap = self._snapshot()
        counters = {
            name: CounterMetricFamily(f"streamgru_{name}", help_text, labels=["stream"])
            for name, help_text in _COUNTER_HELP.items()
        }
        state = GaugeMetricFamily(
            "streamgru_stream_state",
            "1 for the stream's current state (starting, running, reconnecting, refused, stopped)",
            labels=["stream", "state"],
        )
        latency = HistogramMetricFamily(
            "streamgru_latency_seconds",
            "Per-sample latency from arrival (chunk t_host) to prediction written",
            labels=["stream"],
        )
        for sid, (ctr, st, rec) in snap["streams"].items():
            for name, fam in counters.items():
                fam.add_metric([sid], getattr(ctr, name))
            state.add_metric([sid, st], 1)
            buckets, total = rec.buckets()
            latency.add_metric([sid], buckets, total)
        yield from counters.values()
        yield state
        yield latency
        depth = GaugeMetricFamily(
            "streamgru_queue_depth", "Items waiting in a queue", labels=["queue", "name"]
        )
        for queue, name, value in snap["queues"]:
            depth.add_metric([queue, redact_uri(name)], value)
        yield depth
        sink_errors = CounterMetricFamily(
            "streamgru_sink_errors", "Failed writes or opens of a sink", labels=["sink"]
        )
        for uri, count in snap["sink_errors"].items():
            sink_errors.add_metric([redact_uri(uri)], count)
        yield sink_errors
        yield from _sink_families(snap.get("sinks", {}))
        yield GaugeMetricFamily(
            "streamgru_ready", "1 once the daemon is ready", value=int(snap["ready"])
        )


def _sink_families(sinks: dict[str, tuple[int, int, dict[str, int]]]) -> Iterator[Any]:
    """Per sink URI: rows written, rows dropped by reason, queue depth (see
    :meth:`streamgru.daemon.writer.SinkWriter.sink_stats`)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    written = CounterMetricFamily(
        "streamgru_sink_written_rows", "Prediction rows a sink took", labels=["sink"]
    )
    dropped = CounterMetricFamily(
        "streamgru_sink_dropped_rows",
        "Prediction rows a sink did not deliver: queue_full (its queue was full, by its policy), "
        "sink_down (failed or closed), abandoned (stuck at shutdown), client_slow (a TCP "
        "client's own queue was full)",
        labels=["sink", "reason"],
    )
    depth = GaugeMetricFamily(
        "streamgru_sink_queue_depth", "Blocks waiting in a sink's queue", labels=["sink"]
    )
    for uri, (queued, rows, drops) in sinks.items():
        label = redact_uri(uri)  # a sink's password never becomes a label
        written.add_metric([label], rows)
        depth.add_metric([label], queued)
        for reason, count in drops.items():
            dropped.add_metric([label, reason], count)
    yield written
    yield dropped
    yield depth


def make_registry(snapshot: Callable[[], dict[str, Any]]):
    """A fresh ``CollectorRegistry`` holding a :class:`DaemonCollector` (needs prometheus-client)."""
    prom = require("prometheus_client", "daemon", "the /metrics endpoint")
    registry = prom.CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(snapshot))
    return registry


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` over HTTP, served from a daemon thread.

    Parameters
    ----------
    registry : a prometheus ``CollectorRegistry``
    health, ready : callables returning ``(ok, text)``
    host, port : where to listen (port 0: any free port; see :attr:`port`)
    """

    def __init__(
        self,
        registry: Any,
        health: Callable[[], tuple[bool, str]],
        ready: Callable[[], tuple[bool, str]],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/readyz"):
                    ok, text = (health if path == "/healthz" else ready)()
                    self._reply(200 if ok else 503, (text + "\n").encode(), "text/plain")
                else:
                    self._reply(404, b"not found: try /metrics, /healthz, /readyz\n", "text/plain")

            def _reply(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes are not worth a log line each

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="streamgru-metrics", daemon=True
        )

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
