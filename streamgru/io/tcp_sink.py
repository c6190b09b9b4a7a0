"""The ``tcp://127.0.0.1:PORT`` sink: a server sending JSON lines to every connected client.

Each client has a writer thread and a bounded queue (``queue`` rows); a block that does not fit
a slow client's queue (an empty queue takes any block) is dropped for that client and counted in
``stats.dropped`` (the daemon reports it per sink as ``reason="client_slow"``), and so are the
rows still queued for (or being sent to) a client when the sink closes.

At most ``max_clients`` (16) clients are served at once: one more is closed as soon as it
connects, counted in :attr:`TcpSink.refused` and logged (``tcp sink refused a client``, at most
one line every 10 s, with the count), so connections cannot grow threads without bound.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections import deque

from ..errors import SinkError
from .chunk import PredictionBlock
from .sinks import Sink, json_lines

_log = logging.getLogger("streamgru.tcp")
#: Clients served at once when ``max_clients`` is not given.
DEFAULT_MAX_CLIENTS = 16
_REFUSED_LOG_S = 10.0  # at most one "refused" log line this often


class _Client:
    """One TCP client: a bounded queue of rows and the thread that sends them."""

    def __init__(self, sock: socket.socket, max_rows: int, timeout: float) -> None:
        self.sock = sock
        self.max_rows = max_rows
        self.dropped = 0
        self.alive = True
        self.sending = 0  # rows of the block being sent (not in the queue any more)
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
                self._rows -= rows
                self.sending = rows
            try:
                self.sock.sendall(data)
            except OSError:
                with self._cond:
                    self.dropped += rows
                self.stop()
            with self._cond:
                self.sending = 0
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

    ``address`` is the bound (host, port): give port 0 to let the OS pick one; ``refused``
    counts the clients turned away beyond ``max_clients``.
    """

    inline = True  # clients have their own queues and threads

    def __init__(
        self,
        uri: str,
        host: str,
        port: int,
        max_rows: int,
        timeout: float,
        max_clients: int = DEFAULT_MAX_CLIENTS,
    ) -> None:
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
        self.max_clients = max_clients
        self.refused = 0
        self._refused_logged = (-_REFUSED_LOG_S, 0)  # (when, count then)
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
            with self._lock:
                full = sum(c.alive for c in self._clients) >= self.max_clients
            if full:
                self._refuse(sock)
                continue
            sock.setblocking(True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._clients.append(_Client(sock, self._max_rows, self._timeout))

    def _refuse(self, sock: socket.socket) -> None:
        """Close a client beyond ``max_clients``; count it, log now and then."""
        sock.close()
        self.refused += 1
        now = time.monotonic()
        if now - self._refused_logged[0] >= _REFUSED_LOG_S:
            fields = {
                "sink": self.uri,
                "max_clients": self.max_clients,
                "refused": self.refused,
                "since_last_line": self.refused - self._refused_logged[1],
            }
            _log.warning("tcp sink refused a client", extra={"fields": fields})
            self._refused_logged = (now, self.refused)

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
        with self._lock:  # the rows cut at close: queued, or in a send that did not finish
            cut = sum(c.dropped + (c.sending if c.thread.is_alive() else 0) for c in clients)
            self.stats.dropped = self._dropped_gone + cut
