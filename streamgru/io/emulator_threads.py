"""Serving an emulator from the caller's thread or a background one: the methods
:class:`~streamgru.io.emulator.Emulator` inherits (the loop itself is
:mod:`streamgru.io.emulator_serve`)."""

from __future__ import annotations

import sys
import threading

from .emulator_report import EmulatorReport


class Serving:
    """``serve_*`` (blocking), ``start_*`` (a daemon thread), ``stop`` and ``join``; the host
    class provides ``stop_event`` and ``report``."""

    stop_event: threading.Event
    report: EmulatorReport
    _thread: threading.Thread | None
    _error: BaseException | None

    def serve_tcp(self, host: str = "127.0.0.1", port: int = 0, ready=None) -> EmulatorReport:
        """Serve one client at a time on ``host:port`` until done or ``stop_event``; blocking.

        ``ready(address)`` is called once listening, with the bound (host, port).
        """
        from .emulator_serve import serve_tcp

        return serve_tcp(self, host, port, ready)  # type: ignore[arg-type]

    def serve_pty(self, link: str | None = None, ready=None) -> EmulatorReport:
        """Serve on a new pseudo-terminal; ``ready(path)`` gets the slave path (or ``link``, a
        symlink kept pointing at the current pty across simulated disconnects)."""
        from .emulator_serve import serve_pty

        return serve_pty(self, link, ready)  # type: ignore[arg-type]

    def serve_stdout(self, stream=None) -> EmulatorReport:
        """Write the stream to a binary file object (default: stdout), no commands."""
        from .emulator_serve import serve_stream

        out = stream if stream is not None else sys.stdout.buffer
        return serve_stream(self, out)  # type: ignore[arg-type]

    def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Serve TCP from a daemon thread; returns the bound address. Stop with :meth:`stop`."""
        return self._start(lambda ready: self.serve_tcp(host, port, ready))

    def start_pty(self, link: str | None = None) -> str:
        """Serve a pty from a daemon thread; returns the path to open. Stop with :meth:`stop`."""
        return self._start(lambda ready: self.serve_pty(link, ready))

    def _start(self, target):
        box: list = []
        got = threading.Event()

        def ready(value):
            box.append(value)
            got.set()

        def run():
            try:
                target(ready)
            except BaseException as exc:  # surfaced by start_* / stop
                box.append(exc)
                got.set()
                self._error = exc

        self._error = None
        self._thread = threading.Thread(target=run, name="streamgru-emulator", daemon=True)
        self._thread.start()
        if not got.wait(10.0):
            raise RuntimeError("the emulator did not start within 10 s")
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    def stop(self, timeout: float = 5.0) -> EmulatorReport:
        """Stop a served emulator and wait for its thread; returns the report."""
        self.stop_event.set()
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(timeout)
        return self.report

    def join(self, timeout: float) -> bool:
        """Wait for a served emulator to finish by itself; True if it did."""
        thread = getattr(self, "_thread", None)
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()
