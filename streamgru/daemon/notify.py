"""systemd's notify protocol (``sd_notify``) with the standard library only.

When systemd starts a ``Type=notify`` service it sets ``NOTIFY_SOCKET`` to an AF_UNIX datagram
socket (a path, or ``@name`` in the abstract namespace); the service sends newline-separated
``KEY=VALUE`` datagrams: ``READY=1`` once it serves, ``WATCHDOG=1`` at least every
``WATCHDOG_USEC`` microseconds when ``WatchdogSec=`` is set, ``STOPPING=1`` when it shuts down,
``STATUS=...`` free text. Without ``NOTIFY_SOCKET`` every call does nothing.

>>> n = Notifier(environ={})
>>> n.enabled, n.ready(), n.watchdog_interval()
(False, False, None)
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Mapping


class Notifier:
    """Sends sd_notify messages to ``$NOTIFY_SOCKET`` (a no-op when it is not set).

    Parameters
    ----------
    environ : mapping to read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` from
        (``os.environ`` by default).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        if address.startswith("@"):
            self._address = b"\0" + address[1:].encode()  # abstract namespace
        elif address.startswith("/"):
            self._address = address
        self._watchdog_usec = _watchdog_usec(env)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self.errors = 0

    @property
    def enabled(self) -> bool:
        """True when ``NOTIFY_SOCKET`` names a socket."""
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """Seconds between ``WATCHDOG=1`` messages (half of ``WATCHDOG_USEC``), or None."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2e6

    def notify(self, message: str) -> bool:
        """Send one datagram; False when disabled or when sending failed (counted in errors)."""
        if self._address is None:
            return False
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(
                        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                    )
                # Never block the processing loop on a receiver that does not read.
                self._sock.sendto(message.encode(), socket.MSG_DONTWAIT, self._address)
                return True
            except OSError:
                self.errors += 1
                return False

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (with ``STATUS=`` when given)."""
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the service is alive (send from the loop that does the work)."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``."""
        return self.notify("STOPPING=1" + (f"\nSTATUS={status}" if status else ""))

    def reloading(self) -> bool:
        """``RELOADING=1`` (send ``READY=1`` again when the reload is done)."""
        return self.notify("RELOADING=1")

    def status(self, text: str) -> bool:
        """``STATUS=text`` shown by ``systemctl status``."""
        return self.notify(f"STATUS={text}")

    def close(self) -> None:
        """Close the socket (later calls reopen it)."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    """``WATCHDOG_USEC`` when it applies to this process (``WATCHDOG_PID`` unset or ours)."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    return usec if usec > 0 else None
