"""``view://127.0.0.1:PORT``: the live view as a sink of the daemon.

Options: ``points_per_s`` (100: display points per second of signal; each is the min and max of
its samples), ``rate_hz`` (20: pushes per second to each browser), ``window_s`` (10: seconds
shown), ``max_clients`` (8). ``PORT`` 0 lets the OS pick a free port; the URL is logged
(``live view``, field ``url``) and is :attr:`ViewSink.url`.

Sinks opened with the same URI share one server (one page shows every stream that lists it):
each stream's sink writer may open its own :class:`ViewSink`, and the server lives until the
last of them closes; a sink that closes takes its streams off the page (a stream a SIGHUP reload
removed does not linger there). :meth:`ViewSink.write` only reduces the block to display points under a
short lock (:class:`~streamgru.view.hub.ViewHub`); it never waits for a browser.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..errors import ConfigError
from ..io.chunk import PredictionBlock
from ..io.sinks import Sink
from ..io.uri import URI, Options
from .hub import ViewHub, ViewSettings
from .server import ViewServer

_log = logging.getLogger("streamgru.view")
_LOCK = threading.Lock()
#: URI → (server, number of open sinks using it)
_SERVERS: dict[str, tuple[ViewServer, int]] = {}


def _acquire(uri: str, host: str, port: int, settings: ViewSettings) -> ViewServer:
    with _LOCK:
        held = _SERVERS.get(uri)
        if held is not None:
            _SERVERS[uri] = (held[0], held[1] + 1)
            return held[0]
        server = ViewServer(ViewHub(settings), host, port)
        _SERVERS[uri] = (server, 1)
    fields = {"url": server.url, "rate_hz": settings.rate_hz, "window_s": settings.window_s}
    _log.info("live view", extra={"fields": fields})
    if host not in ("127.0.0.1", "localhost", "::1"):
        _log.warning("live view on a non-loopback address: anyone who reaches it sees the data")
    return server


def _release(uri: str) -> None:
    with _LOCK:
        server, count = _SERVERS[uri]
        if count > 1:
            _SERVERS[uri] = (server, count - 1)
            return
        del _SERVERS[uri]
    server.stop()


def forget_streams(stream_ids: list[str]) -> None:
    """Take these streams off every open live view (the daemon stopped running them: a SIGHUP
    reload removed them, while the view's sink stays open for the other streams)."""
    with _LOCK:
        servers = [server for server, _ in _SERVERS.values()]
    for server in servers:
        server.hub.forget(stream_ids)


def open_views() -> dict[str, str]:
    """URI → URL of every live view server now open (for the demo and tests)."""
    with _LOCK:
        return {uri: server.url for uri, (server, _) in _SERVERS.items()}


class ViewSink(Sink):
    """Feeds the live view (module docstring); ``url`` is where the page is."""

    inline = True  # a bounded ring in memory

    def __init__(self, uri: str, host: str, port: int, settings: ViewSettings) -> None:
        super().__init__(uri)
        self._server = _acquire(uri, host, port, settings)
        self.hub = self._server.hub
        self.url = self._server.url
        self._streams: set[str] = set()

    def write(self, block: PredictionBlock) -> None:
        self._streams.add(block.stream_id)
        self.hub.add(block)
        self.stats.written += block.n_samples

    def _close(self) -> None:
        self.hub.remove(self._streams)  # a stream gone (a reload) leaves the page
        _release(self.uri)


def prepare_view_sink(u: URI, opts: Options) -> Callable[[], Sink]:
    """``view://HOST:PORT``: options read and checked now; returns what opens the sink."""
    settings = ViewSettings(
        points_per_s=opts.number("points_per_s", 100.0, positive=True) or 100.0,
        rate_hz=opts.number("rate_hz", 20.0, positive=True) or 20.0,
        window_s=opts.number("window_s", 10.0, positive=True) or 10.0,
        max_clients=opts.integer("max_clients", 8, minimum=1) or 8,
    )
    opts.finish()
    if u.port is None:
        raise ConfigError(f"{u.text}: expected view://127.0.0.1:PORT (PORT 0 picks a free one)")
    if settings.rate_hz > 100 or settings.points_per_s > 2000:
        raise ConfigError(f"{u.text}: rate_hz <= 100 and points_per_s <= 2000, got {settings}")
    host, port, uri = u.host or "127.0.0.1", u.port, u.text
    return lambda: ViewSink(uri, host, port, settings)
