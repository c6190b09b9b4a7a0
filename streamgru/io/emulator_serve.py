"""Serving an :class:`~streamgru.io.emulator.Emulator` over TCP, a pty, or a byte stream.

One loop for all three (:func:`run`): keep the sample clock (paced at ``fs * speed``, or driven by
the link at ``speed=0``), queue the packets the emulator makes, write them without blocking,
read and answer host commands, and carry out pauses and disconnects. A packet is accounted as
delivered only once all its bytes were written. In real time, DATA that finds more than
:data:`QUEUE_CAP` bytes waiting (a host that does not read) is not sent and counted, as a
device's transmit overrun would be.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import sys
import time
from collections import deque

from ..errors import ProtocolError
from .emulator import Emulator, EmulatorReport, Packet
from .framing import Deframer
from .protocol import NackReason, decode_payload

#: Bytes that may wait for the link before new DATA is dropped (real time) or held (speed 0).
QUEUE_CAP = 1 << 16


class _Conn:
    """A connected byte pipe: non-blocking read/write on file descriptors."""

    def __init__(
        self,
        rfd: int | None,
        wfd: int,
        sock: socket.socket | None = None,
        peer_fd: int | None = None,
    ) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self.sock = sock
        self.peer_fd = peer_fd  # pty: our copy of the slave, to see what the host has not read

    def unread(self) -> int:
        """Bytes written that the host has not read yet (pty only; 0 elsewhere)."""
        if self.peer_fd is None:
            return 0
        import fcntl
        import termios

        try:
            buf = fcntl.ioctl(self.peer_fd, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return 0
        return int.from_bytes(buf, sys.byteorder)

    def read(self) -> bytes | None:
        """Available bytes, ``b""`` if none, ``None`` when the other side is gone."""
        try:
            if self.sock is not None:
                data = self.sock.recv(4096)
            elif self.rfd is not None:
                data = os.read(self.rfd, 4096)
            else:
                return b""  # a write-only endpoint (stdout) has nothing to read
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            return None
        return data if data else None

    def write(self, data: memoryview) -> int | None:
        """Bytes written (0 if the link is full), ``None`` when it is gone."""
        try:
            if self.sock is not None:
                return self.sock.send(data)
            return os.write(self.wfd, data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            return None


class _TcpEndpoint:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.address = (host, port)
        self._server: socket.socket | None = None
        self._client: socket.socket | None = None
        self.listen()

    def listen(self) -> None:
        deadline = time.monotonic() + 5.0
        while True:
            try:
                server = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
                server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                server.bind(self.address)
                break
            except OSError:
                server.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        server.listen(1)
        server.setblocking(False)
        self._server = server
        self.address = server.getsockname()[:2]

    def accept(self) -> _Conn | None:
        if self._server is None or self._client is not None:
            return None
        try:
            sock, _ = self._server.accept()
        except (BlockingIOError, InterruptedError):
            return None
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._client = sock
        return _Conn(sock.fileno(), sock.fileno(), sock)

    def wait_fds(self) -> list:
        return [self._server] if self._server is not None and self._client is None else []

    def drop(self) -> None:
        """The client left (or was dropped): wait for the next one."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def unplug(self) -> None:
        # the listener first: a host reconnecting at once must be refused, not accepted into
        # the backlog of a socket about to close
        if self._server is not None:
            self._server.close()
            self._server = None
        self.drop()

    def replug(self) -> None:
        self.listen()

    def close(self) -> None:
        self.unplug()


class _PtyEndpoint:
    def __init__(self, link: str | None) -> None:
        self.link = link
        self.path = ""
        self._fds: tuple[int, int] | None = None
        self._given = False
        self.replug()

    def replug(self) -> None:
        import tty

        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._fds = (master, slave)
        self._given = False
        self.path = os.ttyname(slave)
        if self.link:
            tmp = f"{self.link}.tmp{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(self.path, tmp)
            os.replace(tmp, self.link)

    @property
    def address(self) -> str:
        return self.link or self.path

    def accept(self) -> _Conn | None:
        if self._fds is None or self._given:
            return None
        self._given = True
        return _Conn(self._fds[0], self._fds[0], peer_fd=self._fds[1])

    def wait_fds(self) -> list:
        return []

    def drop(self) -> None:
        """A pty has no client to lose: the device stays plugged in."""
        self._given = False

    def unplug(self) -> None:
        # the link first, as a USB device's node goes away: a host must not reopen the old pty
        if self.link:
            with contextlib.suppress(OSError):
                os.unlink(self.link)
        if self._fds is not None:
            for fd in self._fds:
                os.close(fd)
            self._fds = None

    def close(self) -> None:
        self.unplug()


class _StreamEndpoint:
    #: a closed stdout ends the run
    final = True

    def __init__(self, stream) -> None:
        self.stream = stream
        self.address = "-"
        self._given = False

    def accept(self) -> _Conn | None:
        if self._given:
            return None
        self._given = True
        return _Conn(None, self.stream.fileno())

    def wait_fds(self) -> list:
        return []

    def drop(self) -> None:
        self._given = True  # a closed stdout does not come back

    def unplug(self) -> None:
        self._given = False

    def replug(self) -> None:
        pass

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()


class _Out:
    """Packets waiting for the link; each is committed when fully written (or lost)."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.queue: deque[Packet] = deque()
        self.offset = 0
        self.bytes = 0

    def put(self, p: Packet, realtime: bool) -> None:
        if p.kind == "dropped":
            return
        if realtime and p.kind != "control" and self.bytes > QUEUE_CAP:
            self.emu.commit(p, delivered=False)
            return
        self.queue.append(p)
        self.bytes += len(p.data)

    def write(self, conn: _Conn) -> bool:
        """Write what the link takes; False when the link is gone."""
        while self.queue:
            p = self.queue[0]
            n = conn.write(memoryview(p.data)[self.offset :])
            if n is None:
                return False
            if n == 0:
                return True
            self.offset += n
            self.bytes -= n
            if self.offset == len(p.data):
                self.queue.popleft()
                self.offset = 0
                self.emu.commit(p, delivered=True)
        return True

    def lose_all(self) -> None:
        for p in self.queue:
            self.emu.commit(p, delivered=False)
        self.queue.clear()
        self.offset = 0
        self.bytes = 0

    def drain(self, conn: _Conn, timeout: float) -> None:
        """Write everything, then wait until the other side has read it (pty) or the kernel
        has it (socket), up to ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while self.queue and time.monotonic() < end:
            if not self.write(conn):
                return
            if self.queue:
                select.select([], [conn.wfd], [], 0.05)
        if conn.peer_fd is None:
            return
        # a pty also holds bytes the line discipline has not taken yet (FIONREAD does not count
        # them): wait until it has read nothing for 0.1 s
        quiet_since = time.monotonic()
        while time.monotonic() < end and time.monotonic() - quiet_since < 0.1:
            if conn.unread() > 0:
                quiet_since = time.monotonic()
            time.sleep(0.01)


def run(emu: Emulator, ep, ready=None) -> EmulatorReport:
    """The serving loop (see the module docstring); returns the emulator's report."""
    return _Session(emu, ep).run(ready)


class _Session:
    """One serving run: the link, the queues and the pause / disconnect timers."""

    def __init__(self, emu: Emulator, ep) -> None:
        self.emu = emu
        self.ep = ep
        self.out = _Out(emu)
        self.held: deque[Packet] = deque()  # DATA made during a pause, sent after it
        self.rx = Deframer()
        self.conn: _Conn | None = None
        self.realtime = emu.speed > 0
        self.rate = emu.fs * emu.speed
        self.t0 = time.monotonic()
        self.pause_until: float | None = None
        self.away_until: float | None = None

    def run(self, ready=None) -> EmulatorReport:
        emu = self.emu
        if ready is not None:
            ready(self.ep.address)
        try:
            while not emu.stop_event.is_set():
                now = time.monotonic()
                self._plug(now)
                todo = self._take_samples(self._due(now))
                if emu.done:
                    self._finish()
                    break
                if self._serve_link(now, todo):
                    break
        finally:
            self.out.lose_all()
            self.ep.close()
        return emu.report

    def _plug(self, now: float) -> None:
        """Come back from a disconnect, accept a host, end a pause that is over."""
        emu = self.emu
        if self.away_until is not None and now >= self.away_until:
            self.away_until = None
            emu.away = False
            self.ep.replug()
        if self.conn is None and self.away_until is None:
            self.conn = self.ep.accept()
            if self.conn is not None:
                emu.report.connections += 1
                emu.streaming = emu.autostart  # a new host starts it again if it must
                self.rx = Deframer()
                self.out.put(emu.control(emu.hello), self.realtime)
        if self.pause_until is not None and now >= self.pause_until:
            self.pause_until = None
            while self.held:
                self.out.put(self.held.popleft(), False)

    def _due(self, now: float) -> int:
        """Samples the clock says to take now (paced), or the link can take (speed 0)."""
        emu = self.emu
        if self.realtime:
            return int((now - self.t0) * self.rate) - emu.ticks
        if (
            self.conn is not None
            and emu.streaming
            and self.pause_until is None
            and self.out.bytes < 4096
        ):
            return 8 * emu.frame_samples
        return 0

    def _take_samples(self, todo: int) -> int:
        """Take up to ``todo`` samples, stopping at faults; returns how many are left."""
        emu = self.emu
        while todo > 0 and not emu.done:
            step = emu.to_fault(min(todo, 4 * emu.frame_samples))
            sendable = self.conn is not None and emu.streaming and self.away_until is None
            for p in emu.advance(step, sendable):
                if self.pause_until is not None:
                    self.held.append(p)
                else:
                    self.out.put(p, self.realtime)
            todo -= step
            pause, disconnect = emu.fault_here()
            if pause is not None:
                self.pause_until = time.monotonic() + pause
            if disconnect is not None:
                self._disconnect(disconnect)
                break
        return todo

    def _disconnect(self, seconds: float) -> None:
        """Send what is made, then unplug for ``seconds`` (samples taken meanwhile are lost)."""
        emu, out = self.emu, self.out
        for p in emu.flush():
            out.put(p, False)
        while self.held:
            out.put(self.held.popleft(), False)
        if self.conn is not None:
            out.drain(self.conn, 2.0)
        out.lose_all()
        self.ep.unplug()
        self.conn = None
        emu.away = True
        self.away_until = time.monotonic() + seconds
        if not self.realtime:
            emu.advance(emu.jump_lost(seconds), False)

    def _finish(self) -> None:
        """All samples taken: send the rest and let the host read it."""
        out = self.out
        for p in [*self.held, *self.emu.flush()]:
            out.put(p, False)
        self.held.clear()
        if self.conn is not None:
            out.drain(self.conn, 2.0)
        out.lose_all()

    def _serve_link(self, now: float, todo: int) -> bool:
        """Wait for the link (or the clock), read and answer commands, write; True ends the
        run (a final endpoint, such as stdout, went away)."""
        emu, conn = self.emu, self.conn
        rfds = list(self.ep.wait_fds())
        wfds = []
        if conn is not None:
            if conn.rfd is not None:
                rfds.append(conn.rfd)
            if self.out.queue and self.pause_until is None:
                wfds.append(conn.wfd)
        wait = 0.02
        if self.realtime:
            wait = max(0.0, min(wait, (emu.ticks + emu.frame_samples) / self.rate + self.t0 - now))
        elif todo == 0 and conn is not None and emu.streaming and not wfds:
            wait = 0.0
        if rfds or wfds:
            readable, _, _ = select.select(rfds, wfds, [], wait)
        else:
            time.sleep(wait)
            readable = []
        if conn is not None and conn.rfd is not None and conn.rfd in readable:
            data = conn.read()
            if data is None:
                return self._lost()
            for payload, _ in self.rx.feed(data):
                for p in _answer(emu, payload):
                    self.out.put(p, False)
        if self.conn is not None and self.pause_until is None and not self.out.write(self.conn):
            return self._lost()
        return False

    def _lost(self) -> bool:
        """The host went away: drop what waits for it; True when the endpoint is final."""
        self.out.lose_all()
        self.ep.drop()
        self.conn = None
        return bool(getattr(self.ep, "final", False))


def _answer(emu: Emulator, payload: bytes) -> list[Packet]:
    try:
        frame = decode_payload(payload)
    except ProtocolError:
        reason = NackReason.BAD_VERSION if payload[0] != 1 else NackReason.BAD_LENGTH
        if (
            payload[0] == 1
            and len(payload) > 1
            and payload[1] not in (0x81, 0x82, 0x83, 0x84, 0x85)
        ):
            reason = NackReason.UNKNOWN_TYPE
        return [emu.nack_for(payload, reason)]
    if not int(frame.TYPE) & 0x80:
        return [emu.nack_for(payload, NackReason.UNKNOWN_TYPE)]
    return emu.handle(frame)


def serve_tcp(emu: Emulator, host: str, port: int, ready=None) -> EmulatorReport:
    return run(emu, _TcpEndpoint(host, port), ready)


def serve_pty(emu: Emulator, link: str | None, ready=None) -> EmulatorReport:
    return run(emu, _PtyEndpoint(link), ready)


def serve_stream(emu: Emulator, stream) -> EmulatorReport:
    return run(emu, _StreamEndpoint(stream))
