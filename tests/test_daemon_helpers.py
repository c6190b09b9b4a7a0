"""Shared helpers of the daemon tests (no tests here): tiny models, a subprocess daemon, logs.

Everything is bounded: every wait has a deadline, every subprocess is killed at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import streamgru as sg

REPO = Path(__file__).resolve().parents[1]


def tiny_model(
    path: Path,
    fs: float = 250.0,
    channels: int = 1,
    hidden: int = 8,
    outputs: int = 1,
    seed: int = 3,
    filter_spec: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Save a small random GRU (sigmoid head) with fs/channels metadata; returns the path."""
    from factories import random_model

    base = random_model(
        input_size=channels, hidden_size=hidden, head=((outputs, "sigmoid"),), seed=seed
    )
    meta = {"head_activations": json.dumps([d.activation for d in base.head])}
    meta.update({"fs": json.dumps(fs), "channels": json.dumps(channels)})
    if filter_spec is not None:
        meta["filter"] = json.dumps(filter_spec)
    meta.update(extra or {})
    model = sg.GRUModel.from_state_dict(base.state_dict(), metadata=meta)
    model.save(path)
    return path


def offline_outputs(model_path: Path, X: np.ndarray, filter_spec: dict | None) -> np.ndarray:
    """What the pipeline must produce for contiguous samples X (T, C): the stepper's offline
    outputs (filter + normalisation + GRU), float32."""
    from streamgru.signal.chain import FilterChain

    model = sg.load_model(model_path)
    chain = None if filter_spec is None else FilterChain.from_dict(filter_spec)
    return model.stepper(filter=chain).step_chunk(np.asarray(X, dtype=np.float32))


def stream_plan(model_path: Path, **stream):
    """The StreamPlan of one ``[[stream]]`` (id "s", an unused TCP source, the "ecg-monitor"
    filter) with ``stream`` keys added or overriding, as the daemon would make it."""
    from streamgru.daemon.config import parse_config
    from streamgru.daemon.plan import plan_stream

    doc = {
        "id": "s",
        "source": "tcp://127.0.0.1:1",
        "model": str(model_path),
        "filter": "ecg-monitor",
        **stream,
    }
    return plan_stream(parse_config({"stream": [doc]}).streams[0], 0)


def two_channel_signal(n: int, fs: float, seed: int = 0) -> np.ndarray:
    """(n, 2) float32: two slow sinusoids sampled at ``fs``, an offset and seeded noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    x = np.stack([np.sin(2 * np.pi * 1.3 * t), np.cos(2 * np.pi * 0.7 * t)], axis=1)
    return (x + 0.1 * rng.standard_normal((n, 2)) + 0.5).astype(np.float32)


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a jsonl sink file (a torn last line is ignored)."""
    rows = []
    if not Path(path).exists():
        return rows
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


class DaemonProcess:
    """``python -m streamgru.cli ARGS`` in a subprocess, stderr (JSON lines) to a file."""

    def __init__(
        self, args: list[str], workdir: Path, env: dict | None = None, stdout=subprocess.DEVNULL
    ) -> None:
        self.log_path = Path(workdir) / f"daemon-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # closed in stop()
        full_env = dict(os.environ)
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamgru.cli", *args],
            stdout=stdout,
            stderr=self._log,
            cwd=str(workdir),
            env=full_env,
        )

    def records(self) -> list[dict]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def wait_for(self, pred: Callable[[dict], bool], timeout: float = 60.0) -> dict:
        """The first log record matching ``pred`` (AssertionError at the deadline or exit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for rec in self.records():
                if pred(rec):
                    return rec
            if self.proc.poll() is not None:
                for rec in self.records():
                    if pred(rec):
                        return rec
                raise AssertionError(
                    f"daemon exited ({self.proc.returncode}) first:\n{self.tail()}"
                )
            time.sleep(0.05)
        raise AssertionError(f"no matching log line within {timeout} s:\n{self.tail()}")

    def wait_msg(self, msg: str, timeout: float = 60.0, **fields) -> dict:
        return self.wait_for(
            lambda r: r.get("msg") == msg and all(r.get(k) == v for k, v in fields.items()),
            timeout,
        )

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(
                f"daemon did not exit within {timeout} s:\n{self.tail()}"
            ) from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def systemd_unit_keys() -> dict[str, list[str]]:
    """The example unit ``deploy/streamgru.service``: each key's values, in file order
    (comments and section headers skipped)."""
    unit = Path(__file__).resolve().parents[1] / "deploy" / "streamgru.service"
    keys: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def wait_until(
    pred: Callable[[], bool], timeout: float, what: str, daemon: DaemonProcess | None = None
) -> None:
    """Poll ``pred`` every 20 ms until true; AssertionError naming ``what`` at the deadline
    (with the daemon's last log lines when one is given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    tail = "" if daemon is None else "\n" + daemon.tail()
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{tail}")


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    """GET http://127.0.0.1:port/path → (status, body)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric_values(text: str, stream: str) -> dict[str, float]:
    """``{"samples_in": ..., ...}`` of one stream from Prometheus text (counters lose _total)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("stream") != stream:
                continue
            name = sample.name.removeprefix("streamgru_").removesuffix("_total")
            if "state" in sample.labels:
                if sample.value:
                    out["state"] = sample.labels["state"]
                continue
            if "le" in sample.labels:
                continue
            out[name] = sample.value
    return out


class NotifyListener:
    """A NOTIFY_SOCKET for a child process: an AF_UNIX datagram socket in a temp folder,
    drained by a thread (a receiver that does not read would make datagrams pile up)."""

    def __init__(self, folder: Path) -> None:
        import socket
        import threading

        self.path = str(Path(folder) / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except OSError:  # timeout, or closed
                continue
            self.messages.extend(data.decode().split("\n"))

    def poll(self) -> list[str]:
        return list(self.messages)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
