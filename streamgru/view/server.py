"""The live view's web server: the page (static files shipped in the package, no build step, no
CDN) and its data as Server-Sent Events, on the standard library's ``ThreadingHTTPServer``.

========================  ====================================================================
path                      what
========================  ====================================================================
``/``                     the page (``static/index.html``, ``view.js``, ``view.css``)
``/events``               ``text/event-stream``: one ``data:`` JSON message per display tick
                          (``rate_hz``) with each stream's new points, beats and status
``/state.json``           the same, once, from the ring's start (for scripts and checks)
========================  ====================================================================

Each browser connection is served by its own thread, at most ``max_clients`` at once (others get
503); it polls the :class:`~streamgru.view.hub.ViewHub` at the display rate and never touches
the signal path. A server on loopback answers only requests whose ``Host`` is a loopback name
(403 otherwise: no DNS rebinding), and a client that stalls for 30 s is let go.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from ..errors import SinkError
from .hub import ViewHub

_log = logging.getLogger("streamgru.view")

#: The files the page is made of: URL path → (package file, content type).
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/view.js": ("view.js", "text/javascript; charset=utf-8"),
    "/view.css": ("view.css", "text/css; charset=utf-8"),
}


def static_file(name: str) -> bytes:
    """The bytes of one shipped page file (``streamgru/view/static/<name>``)."""
    return resources.files("streamgru.view").joinpath("static", name).read_bytes()


#: Host names a loopback-bound view answers to (a page from elsewhere that rebinds its own name
#: to 127.0.0.1 sends its own name as Host, and is refused).
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


class _Handler(BaseHTTPRequestHandler):
    server: ViewServer
    timeout = 30.0  # a client that neither sends its request nor reads its events is let go

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the daemon logs JSON lines; a page load is not worth one

    def _host_ok(self) -> bool:
        """On loopback, only requests that name a loopback host (no DNS rebinding)."""
        if self.server.server_address[0] not in LOOPBACK_NAMES:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        name = host[1:].split("]", 1)[0] if host.startswith("[") else host.rsplit(":", 1)[0]
        return name in LOOPBACK_NAMES

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if not self._host_ok():
            self._send(403, "text/plain; charset=utf-8", b"open the view by its loopback URL\n")
        elif path in STATIC:
            name, ctype = STATIC[path]
            self._send(200, ctype, static_file(name))
        elif path == "/state.json":
            body = json.dumps(self.server.message({}), allow_nan=False).encode()
            self._send(200, "application/json", body)
        elif path == "/events":
            self._events()
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _events(self) -> None:
        srv = self.server
        if not srv.enter():
            self._send(503, "text/plain; charset=utf-8", b"too many viewers\n")
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            cursors: dict[str, tuple[int, int, int]] = {}
            period = 1.0 / srv.hub.settings.rate_hz
            while not srv.stopping.is_set():
                body = json.dumps(srv.message(cursors), allow_nan=False)
                self.wfile.write(b"data: " + body.encode() + b"\n\n")
                self.wfile.flush()
                srv.stopping.wait(period)
        except OSError:  # the browser went away
            pass
        finally:
            srv.leave()


class ViewServer(ThreadingHTTPServer):
    """Serves one :class:`ViewHub` on ``host:port`` (port 0: the OS picks; see ``url``)."""

    daemon_threads = True

    def __init__(self, hub: ViewHub, host: str, port: int) -> None:
        try:
            super().__init__((host, port), _Handler)
        except OSError as exc:
            raise SinkError(f"view: cannot listen on {host}:{port}: {exc}") from exc
        self.hub = hub
        self.stopping = threading.Event()
        self._clients = 0
        self._count_lock = threading.Lock()
        self.started = time.time()
        bound_host, bound_port = str(self.server_address[0]), int(self.server_address[1])
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}/"
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="streamgru-view"
        )
        self._thread.daemon = True
        self._thread.start()

    def message(self, cursors: dict[str, tuple[int, int, int]]) -> dict[str, Any]:
        """One message: server time, the display settings and each stream's news."""
        cfg = self.hub.settings
        return {
            "t": round(time.time(), 3),
            "window_s": cfg.window_s,
            "rate_hz": cfg.rate_hz,
            "streams": self.hub.poll(cursors),
        }

    def enter(self) -> bool:
        with self._count_lock:
            if self._clients >= self.hub.settings.max_clients:
                return False
            self._clients += 1
            return True

    def leave(self) -> None:
        with self._count_lock:
            self._clients -= 1

    def stop(self) -> None:
        """Stop serving, end every event stream, close the socket (bounded waits)."""
        self.stopping.set()
        self.shutdown()
        self._thread.join(5.0)
        self.server_close()
