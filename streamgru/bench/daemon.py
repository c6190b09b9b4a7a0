"""Daemon mode of ``streamgru bench``: end-to-end latency from a sample's arrival on a socket to
its prediction written by a sink, at ``n_streams`` emulated devices × ``fs``.

:func:`daemon_probe` builds the setup from the daemon's public pieces:

* the device emulators (:class:`streamgru.io.emulator.Emulator`, SGB1 over TCP on 127.0.0.1,
  float32 noise with ``input_size`` channels) run in a separate process, so the device side
  does not compete with the daemon for the GIL, at a lower priority (:data:`EMULATOR_NICE`);
* the daemon (:class:`streamgru.daemon.daemon.Daemon`) runs in this process from a config made
  with :func:`streamgru.daemon.config.parse_config`: one ``tcp://`` source per stream, the
  model, no filter, one sink; metrics, snapshots and the watchdog off;
* the sink is a :class:`streamgru.io.sinks.NullSink` that, when the daemon's sink writer hands
  it a block, records ``time.monotonic()`` minus each row's arrival time (``t_host``, taken on
  the same clock by the source when the bytes were read); the null sink writes without waiting
  (``inline``), so the daemon's processing thread writes it;
* the distribution is of the rows that arrived from :data:`SETTLE_S` after ready on, while
  every device streams; the connection storm before is reported apart (``settling_*``).

The emulators stop first and the daemon drains before it stops, so ``sent``, ``received`` and
``lost`` can be compared exactly. A build without the daemon or the emulator reports the mode
``unavailable``.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from typing import Any

import numpy as np

from .stats import cdf_points, deadline_ns_for, latency_stats, percentile_ns

#: Seconds the daemon gets to receive what the emulators sent before it is stopped.
DRAIN_S = 0.3
#: Seconds after ready whose rows are not in the distribution: the devices connect, say HELLO
#: and start streaming all at once (each reader thread opens its link, then hands it to the
#: processing thread). Their rows are counted and their longest latency is reported
#: (``settling_rows``, ``settling_max_ns``); nothing is dropped from ``received`` or ``lost``.
SETTLE_S = 1.0
#: Niceness added to the emulators' process. The devices stand in for hardware outside this
#: machine; at equal priority their process (tens of Python threads, most of a core at 64
#: streams) competes with the daemon for the same cores and its scheduling, not the daemon's,
#: makes the tail. Lower priority still delivers every frame on time (``dropped_on_device``).
EMULATOR_NICE = 10
#: Per-stream daemon counters (StreamCounters) whose sum is reported as ``lost``; those the
#: running build does not have count as 0.
LOSS_COUNTERS = ("samples_lost", "dropped_input", "dropped_output")


def daemon_available() -> str | None:
    """None when this build can run the daemon mode, else the reason it cannot."""
    try:
        from ..daemon.config import parse_config  # noqa: F401
        from ..daemon.daemon import Daemon  # noqa: F401
        from ..io.emulator import Emulator  # noqa: F401
        from ..io.sinks import NullSink  # noqa: F401
    except ImportError as exc:
        return f"the daemon is not installed in this build ({exc})"
    return None


def _serve_emulators(conn: Any, n_streams: int, fs: float, channels: int, seed: int) -> None:
    """Child process: serve ``n_streams`` emulators on loopback TCP until told to stop, at a
    lower priority than the daemon (:data:`EMULATOR_NICE`)."""
    from ..io.emulator import Emulator

    try:
        os.nice(EMULATOR_NICE)
    except OSError:  # not allowed here: equal priority, as before
        pass

    emulators = [
        Emulator(kind="noise", fs=fs, channels=channels, sample_format="float32", seed=seed + k)
        for k in range(n_streams)
    ]
    try:
        conn.send([e.start_tcp("127.0.0.1", 0) for e in emulators])
        conn.recv()  # stop
    finally:
        reports = [e.stop() for e in emulators]
        conn.send(
            {
                "sent": int(sum(r.samples_sent for r in reports)),
                "dropped_on_device": int(sum(r.samples_dropped for r in reports)),
            }
        )
        conn.close()


class _LatencySinks:
    """The sink factory: NullSinks that record arrival → written latencies (seconds) of the
    rows that arrived from ``since`` on (``time.monotonic()``; earlier rows: only their count
    and the longest latency, in ``settling``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[np.ndarray] = []
        self.by_stream: dict[str, list[np.ndarray]] = {}
        self.since = float("inf")
        self.settling = {"rows": 0, "max_s": 0.0}
        outer = self

        from ..io.sinks import NullSink

        class RecordingSink(NullSink):
            def write(self, block: Any) -> None:
                now = time.monotonic()
                arrived = block.times()
                lat = now - arrived
                keep = arrived >= outer.since
                with outer.lock:
                    if not keep.all():
                        early = lat[~keep]
                        outer.settling["rows"] += int(early.size)
                        outer.settling["max_s"] = max(outer.settling["max_s"], float(early.max()))
                        lat = lat[keep]
                    outer.latencies.append(lat)
                    outer.by_stream.setdefault(str(block.stream_id), []).append(lat)
                super().write(block)

        self.sink_class = RecordingSink

    def __call__(self, uri: str) -> Any:
        return self.sink_class(uri)


def daemon_probe(
    model_path: str | os.PathLike,
    *,
    n_streams: int,
    fs: float,
    duration_s: float,
    channels: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Run emulators → daemon → recording sink for ``duration_s`` and collect the latencies.

    Returns
    -------
    dict: ``latencies_ns`` (one per prediction written), ``stream_latencies_ns`` (the same by
    stream id), ``sent`` (samples the emulators
    sent), ``dropped_on_device`` (samples the emulators could not send: a host that does not
    read), ``received`` (prediction rows written), ``lost`` (samples the daemon counted as
    lost or dropped), ``startup_s`` (daemon start to ready), ``transport``.
    """
    from ..daemon.config import parse_config
    from ..daemon.daemon import Daemon

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=_serve_emulators, args=(child, n_streams, fs, channels, seed), daemon=True
    )
    proc.start()
    try:
        if not parent.poll(60.0):
            raise TimeoutError("the device emulators did not start within 60 s")
        addresses = parent.recv()
        doc = {
            "stream": [
                {
                    "id": f"bench{k}",
                    "source": f"tcp://{host}:{port}",
                    "model": os.fspath(model_path),
                    "fs": fs,
                    "channels": channels,
                    "filter": "none",
                    "sinks": ["null://"],
                }
                for k, (host, port) in enumerate(addresses)
            ],
            "daemon": {"snapshot_interval_s": 0, "watchdog": False},
            "metrics": {"enabled": False},
            "logging": {"level": "warning"},
        }
        sinks = _LatencySinks()
        daemon = Daemon(parse_config(doc), open_sink=sinks, configure_logging=False, environ={})
        t0 = time.monotonic()
        daemon.startup()
        startup_s = time.monotonic() - t0
        sinks.since = time.monotonic() + SETTLE_S
        loop = threading.Thread(target=daemon.main_loop, name="bench-daemon-loop", daemon=True)
        loop.start()
        try:
            time.sleep(SETTLE_S + duration_s)
            parent.send("stop")
            device = parent.recv() if parent.poll(30.0) else {"sent": -1, "dropped_on_device": -1}
            time.sleep(DRAIN_S)
        finally:
            daemon.request_stop()
            loop.join(10.0)
            daemon.shutdown()
    finally:
        proc.join(10.0)
        if proc.is_alive():
            proc.terminate()
    return _results(daemon, sinks, device, startup_s)


def _results(daemon: Any, sinks: _LatencySinks, device: dict, startup_s: float) -> dict[str, Any]:
    """:func:`daemon_probe`'s result from the stopped daemon and the recording sinks."""
    counters = [rt.counters for rt in daemon.streams.values()]
    with sinks.lock:
        lat_s = np.concatenate(sinks.latencies) if sinks.latencies else np.zeros(0)
        per_stream = {k: np.concatenate(v) for k, v in sinks.by_stream.items()}
    return {
        "latencies_ns": np.round(lat_s * 1e9).astype(np.int64),
        "stream_latencies_ns": {
            k: np.round(v * 1e9).astype(np.int64) for k, v in per_stream.items()
        },
        "sent": int(device["sent"]),
        "dropped_on_device": int(device["dropped_on_device"]),
        "received": int(sum(c.samples_out for c in counters)),
        "lost": int(sum(getattr(c, name, 0) for c in counters for name in LOSS_COUNTERS)),
        "startup_s": startup_s,
        "settling_rows": int(sinks.settling["rows"]),
        "settling_max_ns": round(sinks.settling["max_s"] * 1e9),
        "transport": "tcp://127.0.0.1 (SGB1, emulators in a separate process)",
    }


def worst_stream(stream_latencies_ns: dict[str, Any]) -> dict[str, Any]:
    """The stream with the highest p99 of its own latencies (ns arrays by stream id):
    ``worst_stream`` (its id), ``worst_stream_p50_ns``, ``worst_stream_p99_ns`` and
    ``stream_p99_ns`` (every stream's p99); empty when no stream wrote a row."""
    p99 = {
        k: percentile_ns(np.asarray(v), 99.0)
        for k, v in sorted(stream_latencies_ns.items())
        if np.asarray(v).size
    }
    if not p99:
        return {}
    worst = max(p99, key=lambda k: p99[k])
    return {
        "worst_stream": worst,
        "worst_stream_p50_ns": percentile_ns(np.asarray(stream_latencies_ns[worst]), 50.0),
        "worst_stream_p99_ns": p99[worst],
        "stream_p99_ns": p99,
    }


def summarise_probe(result: dict[str, Any], n_streams: int, fs: float) -> tuple[dict, dict]:
    """(latency entry for the report, mode details) from a :func:`daemon_probe` result."""
    lat = np.asarray(result["latencies_ns"], dtype=np.int64).ravel()
    if lat.size == 0:
        raise ValueError("the daemon wrote no predictions: nothing reached the sink")
    xs, fr = cdf_points(lat)
    entry = {
        "method": f"daemon socket→sink ({n_streams} streams × {fs:g} Hz)",
        "framework": "streamgru",
        "mode": "daemon",
        **latency_stats(lat, deadline_ns_for(fs)),
        "cdf": {"ns": xs, "fraction": fr},
    }
    details = {
        **worst_stream(result.get("stream_latencies_ns") or {}),
        "n_streams": int(n_streams),
        "fs": float(fs),
        "sent": int(result.get("sent", -1)),
        "received": int(result.get("received", lat.size)),
        "lost": int(result.get("lost", 0)),
        "dropped_on_device": int(result.get("dropped_on_device", 0)),
        "startup_s": float(result.get("startup_s", 0.0)),
        "settle_s": SETTLE_S,
        "settling_rows": int(result.get("settling_rows", 0)),
        "settling_max_ns": int(result.get("settling_max_ns", 0)),
        "transport": str(result.get("transport", "")),
    }
    return entry, details
