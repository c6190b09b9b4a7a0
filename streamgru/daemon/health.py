"""The daemon's metrics endpoint: what ``/metrics``, ``/healthz`` and ``/readyz`` report.

The collector and the probes run on the HTTP thread and only read the daemon's state.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, MissingDependencyError
from ..io.uri import redact_uri
from .logs import clean_text, get_logger, log
from .metrics import MetricsServer, make_registry

if TYPE_CHECKING:
    from .daemon import Daemon

_log = get_logger("daemon")

#: /healthz fails when the main loop has not turned for this long, seconds.
HEALTH_STALL_S = 5.0


def start_metrics(d: Daemon) -> MetricsServer | None:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` for ``d``; None when prometheus-client is missing."""
    m = d.config.metrics
    try:
        registry = make_registry(lambda: metrics_snapshot(d))
    except MissingDependencyError as exc:  # the streams matter more than their metrics
        log(_log, logging.WARNING, "metrics endpoint disabled", error=str(exc))
        return None
    try:
        server = MetricsServer(
            registry, lambda: health(d), lambda: readiness(d), host=m.host, port=m.port
        )
    except OSError as exc:
        raise ConfigError(f"metrics.port: cannot listen on {m.host}:{m.port}: {exc}") from exc
    server.start()
    return server


def metrics_snapshot(d: Daemon) -> dict[str, Any]:
    """What the Prometheus collector reads (called from the HTTP thread)."""
    streams = dict(d.streams)
    queues = [("inbox", sid, d.inbox.depth(sid)) for sid in streams]
    writer = d.writer
    sinks = {} if writer is None else writer.sink_stats()
    queues += [("sink", uri, depth) for uri, (depth, _, _) in sinks.items()]
    return {
        "streams": {sid: (rt.counters, rt.state, rt.latency) for sid, rt in streams.items()},
        "queues": queues,
        "sink_errors": {} if writer is None else writer.errors(),
        "sinks": sinks,
        "ready": d.ready,
    }


def health(d: Daemon) -> tuple[bool, str]:
    """/healthz: the main loop turns."""
    stalled = time.monotonic() - d._tick
    if stalled > HEALTH_STALL_S:
        return False, f"processing loop stalled for {stalled:.1f} s"
    return True, "ok"


#: Stream states in which /readyz answers "not ready" (503) even once the daemon is started.
NOT_READY_STATES = ("refused", "misconfigured", "failed")


def readiness(d: Daemon) -> tuple[bool, str]:
    """/readyz: started, and no stream refused or failed; the text gives every stream's state
    and, for a refused source, why it was refused."""
    streams = list(d.streams.items())
    states = ", ".join(f"{sid}={rt.state}" for sid, rt in streams)
    reasons = []
    for sid, rt in streams:
        if rt.state in NOT_READY_STATES:
            why = None if rt.reader is None else rt.reader.refusal
            reasons.append(f"{sid} {rt.state}" + (f": {why}" if why else ""))
    ok = d.ready and not reasons
    text = ("ready: " if ok else "not ready: ") + states
    return ok, redact_uri(text + "".join(f"\n{r}" for r in reasons))


def misconfigured(streams: dict[str, Any]) -> list[str]:
    """Why each ``misconfigured`` stream cannot run (one line each, logged as an error): what
    the daemon prints before it exits 78."""
    lines = []
    for sid, rt in streams.items():
        if rt.state != "misconfigured":
            continue
        uri = rt.plan.config.source
        reason = None if rt.reader is None else rt.reader.refusal
        text = f"stream {sid}: " + (
            f"the source {uri} can never match: {reason}"
            if reason
            else f"the source {uri} cannot be opened (see the log above)"
        )
        log(_log, logging.ERROR, "stream cannot run", stream=sid, error=text)
        lines.append(clean_text(text, 2048))  # printed as it is: may quote a device's HELLO
    return lines
