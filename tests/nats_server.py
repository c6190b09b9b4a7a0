"""A real ``nats-server -js`` on a free loopback port with a temporary store, for tests and benches.

>>> with NatsServer(partitions=4) as server:       # doctest: +SKIP
...     server.url                                 # 'nats://127.0.0.1:PORT'

The config holds the partition mapping ``sg.in.* -> sg.part.{{partition(N,1)}}.{{wildcard(1)}}``
that cluster workers expect (``partitions=None`` leaves it out). :func:`skip_reason` says why
the cluster tests cannot run (no binary, no nats-py), or None.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from streamgru.io.nats_io import partition_mapping


def skip_reason() -> str | None:
    """Why a NATS test must be skipped, or None when it can run."""
    if shutil.which("nats-server") is None:
        return "nats-server not installed: apt-get install nats-server"
    if importlib.util.find_spec("nats") is None:
        return "nats-py not installed: pip install 'streamgru[nats]'"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """Starts nats-server with JetStream on 127.0.0.1, a temp store dir; :meth:`stop` ends it."""

    def __init__(self, partitions: int | None = 4, start_timeout: float = 10.0) -> None:
        self.partitions = partitions
        self.start_timeout = start_timeout
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        self._dir = tempfile.TemporaryDirectory(prefix="sg-nats-")
        root = Path(self._dir.name)
        self.port = free_port()
        lines = [
            f"listen: 127.0.0.1:{self.port}",
            f"jetstream {{ store_dir: {json.dumps(str(root / 'store'))} }}",
        ]
        if self.partitions:
            ((src, dst),) = partition_mapping(self.partitions).items()
            lines.append(f"mappings = {{ {json.dumps(src)}: {json.dumps(dst)} }}")
        conf = root / "server.conf"
        conf.write_text("\n".join(lines) + "\n")
        self._log = open(root / "server.log", "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            ["nats-server", "-c", str(conf)], stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.log_tail()}")
            if b"Server is ready" in (root / "server.log").read_bytes():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nats-server not ready in {self.start_timeout} s: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        if self._dir is None:
            return ""
        path = Path(self._dir.name) / "server.log"
        return path.read_bytes()[-n:].decode(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
