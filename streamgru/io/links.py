"""Byte links to a device: serial ports (any pyserial URL), TCP clients, UDP sockets.

The device transports live here, in io (not in the daemon): this module opens the ports and
sockets, :mod:`~streamgru.io.device_source` reconnects them.

A link only moves bytes. ``read(wait)`` returns what arrived within ``wait`` seconds (possibly
``b""``); a link that is gone raises :class:`LinkLost` (unplugged cable, closed connection), and
the owner decides whether to reconnect. Nothing here parses frames.
"""

from __future__ import annotations

import select
import socket
import time
from abc import ABC, abstractmethod

from ..errors import require

#: Longest single wait inside a serial read (the port's timeout), seconds.
POLL = 0.02


class LinkLost(Exception):
    """The link failed or was closed by the other side."""


class Link(ABC):
    """A bidirectional byte link."""

    #: True for links that may be reopened after a loss.
    reconnectable = True

    @abstractmethod
    def open(self) -> None:
        """Open the link; raises OSError (or a subclass) on failure."""

    @abstractmethod
    def read(self, wait: float) -> bytes:
        """Bytes that arrived within ``wait`` seconds (``b""`` if none)."""

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Send ``data`` (best effort for datagrams)."""

    @abstractmethod
    def close(self) -> None:
        """Close; idempotent."""

    def fileno(self) -> int | None:
        """The descriptor that becomes readable when :meth:`read` has bytes to give, where the
        link has one a selector may watch (a socket); None otherwise (or while closed)."""
        return None


class SerialLink(Link):
    """A pyserial port: ``/dev/ttyUSB0``, ``loop://``, ``socket://h:p``, ``rfc2217://``, ...

    Parameters
    ----------
    url : str
        Device path or pyserial URL.
    baudrate : int
    port : an already open pyserial-like object to use instead (not reopened after a loss)
    """

    def __init__(self, url: str, baudrate: int = 115200, port=None) -> None:
        self.url = url
        self.baudrate = baudrate
        self._port = port
        self._given = port is not None
        self.reconnectable = not self._given
        if port is not None:
            port.timeout = POLL

    def open(self) -> None:
        if self._given:
            return
        serial = require("serial", "serial", "reading a serial port")
        try:
            self._port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=POLL)
        except (serial.SerialException, ValueError) as exc:
            raise OSError(str(exc)) from exc

    def read(self, wait: float) -> bytes:
        port = self._port
        if port is None:
            raise LinkLost("port closed")
        end = time.monotonic() + max(0.0, wait)
        try:
            while True:
                waiting = port.in_waiting
                if waiting:
                    return bytes(port.read(waiting))
                data = port.read(1)  # waits up to the port timeout (POLL seconds)
                if data:
                    waiting = port.in_waiting
                    return bytes(data + port.read(waiting)) if waiting else bytes(data)
                if time.monotonic() >= end:
                    return b""
        except Exception as exc:  # SerialException, OSError (EIO after an unplug)
            raise LinkLost(str(exc)) from exc

    def write(self, data: bytes) -> None:
        if self._port is None:
            raise LinkLost("port closed")
        try:
            self._port.write(data)
        except Exception as exc:
            raise LinkLost(str(exc)) from exc

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None and not self._given:
            try:
                port.close()
            except Exception:
                pass


class TcpLink(Link):
    """A TCP client to a device that serves its stream (``tcp://host:port``)."""

    def __init__(self, host: str, port: int, connect_timeout: float = 2.0) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self._sock: socket.socket | None = None

    def open(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self._sock = sock

    def read(self, wait: float) -> bytes:
        sock = self._sock
        if sock is None:
            raise LinkLost("not connected")
        try:
            if wait > 0:  # else straight to the (non-blocking) recv: one system call
                ready, _, _ = select.select([sock], [], [], wait)
                if not ready:
                    return b""
            data = sock.recv(65536)
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise LinkLost(str(exc)) from exc
        if not data:
            raise LinkLost("connection closed by the device")
        return data

    def fileno(self) -> int | None:
        return None if self._sock is None else self._sock.fileno()

    def write(self, data: bytes) -> None:
        sock = self._sock
        if sock is None:
            raise LinkLost("not connected")
        try:
            sock.setblocking(True)
            sock.settimeout(self.connect_timeout)
            sock.sendall(data)
        except OSError as exc:
            raise LinkLost(str(exc)) from exc
        finally:
            if self._sock is not None:
                self._sock.setblocking(False)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


class UdpLink(Link):
    """A UDP socket bound to ``host:port`` (default 127.0.0.1): one SGB1 frame per datagram.

    Each datagram is returned with a 0x00 appended, so a datagram without its delimiter still
    ends its frame and a truncated datagram never runs into the next one. Commands go to the
    address the last datagram came from.
    """

    reconnectable = False

    def __init__(self, host: str, port: int) -> None:
        self.host = host or "127.0.0.1"
        self.port = port
        self._sock: socket.socket | None = None
        self._peer: tuple | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        if self._sock is None:
            return (self.host, self.port)
        return self._sock.getsockname()[:2]

    def open(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._sock = sock

    def read(self, wait: float) -> bytes:
        sock = self._sock
        if sock is None:
            raise LinkLost("closed")
        out = bytearray()
        ready = wait <= 0 or bool(select.select([sock], [], [], wait)[0])
        while ready:
            try:
                data, self._peer = sock.recvfrom(65536)
            except BlockingIOError:
                break
            except OSError as exc:
                raise LinkLost(str(exc)) from exc
            out += data + b"\x00"
            if len(out) > 1 << 20:
                break
        return bytes(out)

    def fileno(self) -> int | None:
        return None if self._sock is None else self._sock.fileno()

    def write(self, data: bytes) -> None:
        if self._sock is not None and self._peer is not None:
            try:
                self._sock.sendto(data, self._peer)
            except OSError:
                pass  # datagrams are best effort

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
