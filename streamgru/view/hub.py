"""What the live view shows, decimated for display and bounded: :class:`ViewHub`.

The sink side (:meth:`ViewHub.add`, called from the daemon's sink writer) only keeps a
reference to each prediction block and updates the status (beats, heart rate, samples lost from
index jumps, latency from arrival to here): a few microseconds, never waiting for a viewer. The
blocks are reduced to display points when a viewer polls (or once a second of signal is
pending): every ``bucket`` consecutive samples (``bucket = round(fs / points_per_s)``) become one
point holding the min and the max of each input channel and each output, so a QRS spike
survives decimation. Points go into a per-stream ring of the last ``window_s`` seconds (the
oldest are overwritten).

The viewer side (:meth:`ViewHub.poll`, called by each browser connection at the display rate,
``rate_hz``) copies what is newer than that connection's cursor; a viewer that fell more than a
ring behind skips to what the ring still holds. A block without samples (beats only) updates the
beats, never the index. :meth:`ViewHub.remove` (its view sink closed) and :meth:`ViewHub.forget`
(a SIGHUP reload removed the stream while the shared view sink stays open for the others) drop
a stream: it leaves the page, and if it comes back it starts afresh (a new ``epoch``, so the
viewers' cursors start again). The lock is held for list appends on the sink
side and for one decimation of at most a second of signal on the viewer side.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..io.chunk import PredictionBlock

#: Seconds after :meth:`ViewHub.forget` during which blocks of a forgotten stream (still queued
#: on the view sink's lane when the daemon dropped the stream) are ignored, not shown again.
FORGET_GRACE_S = 2.0


@dataclass(frozen=True)
class ViewSettings:
    """How the view decimates and how often it pushes.

    points_per_s : display points per second of signal (per stream)
    rate_hz : pushes per second to each browser
    window_s : seconds of signal the page shows (and the ring keeps)
    max_clients : browser connections served at once
    """

    points_per_s: float = 100.0
    rate_hz: float = 20.0
    window_s: float = 10.0
    max_clients: int = 8


@dataclass
class _Stream:
    """One stream's ring of display points and its status (guarded by the hub's lock)."""

    fs: float
    bucket: int
    width: int  # inputs + outputs
    n_inputs: int
    labels: list[str]
    capacity: int
    mins: np.ndarray = field(init=False)
    maxs: np.ndarray = field(init=False)
    where: np.ndarray = field(init=False)  # (capacity,) int64 sample index of each point
    seq: int = 0  # points ever written
    carry: np.ndarray | None = None  # (k < bucket, width) samples not yet a whole point
    carry_first: int = 0
    pending: list = field(default_factory=list)  # (first index, inputs, outputs) not yet points
    pending_rows: int = 0
    next_index: int | None = None
    lost: int = 0
    beats: deque = field(default_factory=lambda: deque(maxlen=512))  # (seq, index, hr)
    beat_seq: int = 0
    hr: float | None = None
    latency_ms: float | None = None
    epoch: int = 0  # which incarnation of the stream id (viewer cursors are per epoch)

    def __post_init__(self) -> None:
        self.mins = np.zeros((self.capacity, self.width), np.float32)
        self.maxs = np.zeros((self.capacity, self.width), np.float32)
        self.where = np.zeros(self.capacity, np.int64)


class ViewHub:
    """The shared state between the view's sink and its web server (module docstring)."""

    def __init__(self, settings: ViewSettings | None = None) -> None:
        self.settings = settings or ViewSettings()
        self.lock = threading.Lock()
        self.streams: dict[str, _Stream] = {}
        self.closed = False
        self._epochs = 0
        self._forgotten: dict[str, float] = {}  # stream id → when forget() dropped it

    # ------------------------------------------------------------ sink side
    def add(self, block: PredictionBlock) -> None:
        """Take one block (see the module docstring): kept by reference until the next viewer
        poll (or one second of signal) reduces the pending blocks to points in one go.

        block : outputs (T, O) float32, inputs (T, C) float32 or None, events, fs
        """
        if block.n_samples == 0 and not block.events:
            return
        n_in = 0 if block.inputs is None else block.inputs.shape[1]
        width = n_in + block.outputs.shape[1]
        th = block.t_host
        if isinstance(th, np.ndarray) and not th.size:
            th = time.monotonic()
        t = float(th[-1]) if isinstance(th, np.ndarray) else float(th)
        latency = (time.monotonic() - t) * 1e3
        with self.lock:
            if self._forgotten and self._was_forgotten(block.stream_id):
                return
            s = self.streams.get(block.stream_id)
            if s is None or (s.width != width and block.n_samples):
                s = self._new_stream(block, width, n_in)
            if block.n_samples:  # beats alone say nothing of the index: lost stays as it is
                first = int(block.first_index)
                if s.next_index is not None and first != s.next_index:
                    s.lost += max(0, first - s.next_index)
                s.next_index = first + block.n_samples
                s.pending.append((first, block.inputs, block.outputs))
                s.pending_rows += block.n_samples
            for event in block.events:
                hr = getattr(event, "hr_bpm", None)
                s.beat_seq += 1
                s.beats.append((s.beat_seq, int(event.index), hr))
                if hr is not None and math.isfinite(hr):
                    s.hr = float(hr)
            s.latency_ms = latency
            if s.pending_rows >= s.fs:  # nobody polled for a second of signal: bound the list
                self._drain(s)

    def _new_stream(self, block: PredictionBlock, width: int, n_in: int) -> _Stream:
        cfg = self.settings
        fs = float(block.fs) if block.fs and block.fs > 0 else 250.0
        bucket = max(1, round(fs / cfg.points_per_s))
        ins = list(block.input_labels) if len(block.input_labels) == n_in else []
        outs = list(block.labels) if len(block.labels) == width - n_in else []
        labels = (ins or [f"in{k}" for k in range(n_in)]) + (
            outs or [f"y{k}" for k in range(width - n_in)]
        )
        capacity = max(16, math.ceil(cfg.window_s * fs / bucket))
        s = _Stream(fs, bucket, width, n_in, labels, capacity)
        self._epochs += 1
        s.epoch = self._epochs
        self.streams[block.stream_id] = s
        return s

    def remove(self, stream_ids: set[str] | list[str]) -> None:
        """Drop these streams (their view sink closed): they leave the page."""
        with self.lock:
            for sid in stream_ids:
                self.streams.pop(sid, None)

    def forget(self, stream_ids: set[str] | list[str]) -> None:
        """Drop these streams (the daemon no longer runs them, its view sink stays open for
        others): they leave the page, and their blocks still on the way are ignored for
        :data:`FORGET_GRACE_S` seconds."""
        now = time.monotonic()
        with self.lock:
            for sid in stream_ids:
                self.streams.pop(sid, None)
                self._forgotten[sid] = now

    def _was_forgotten(self, sid: str) -> bool:
        """True for a block of a stream forgotten less than FORGET_GRACE_S ago (lock held)."""
        when = self._forgotten.get(sid)
        if when is None:
            return False
        if time.monotonic() - when < FORGET_GRACE_S:
            return True
        del self._forgotten[sid]  # a stream of that id runs again
        return False

    def _drain(self, s: _Stream) -> None:
        """Pending blocks → points, one contiguous run at a time (an index jump drops the
        partial point before it)."""
        pending, s.pending, s.pending_rows = s.pending, [], 0
        k = 0
        while k < len(pending):
            first = end = pending[k][0]
            j = k
            while j < len(pending) and pending[j][0] == end:
                end += pending[j][2].shape[0]
                j += 1
            rows = np.concatenate([p[2] for p in pending[k:j]], axis=0)
            if s.n_inputs:
                ins = np.concatenate([p[1] for p in pending[k:j]], axis=0)
                rows = np.hstack([ins, rows])
            if s.carry is not None and s.carry_first + s.carry.shape[0] == first:
                rows = np.concatenate([s.carry, rows], axis=0)
                first = s.carry_first
            whole = rows.shape[0] // s.bucket * s.bucket
            if whole:
                self._push(s, rows[:whole], first)
            s.carry = rows[whole:].copy()
            s.carry_first = first + whole
            k = j

    @staticmethod
    def _push(s: _Stream, rows: np.ndarray, first: int) -> None:
        """Whole buckets of ``rows`` (n * bucket, width) → n points in the ring."""
        shaped = rows.reshape(-1, s.bucket, s.width)
        lo, hi = shaped.min(axis=1), shaped.max(axis=1)
        where = first + s.bucket * np.arange(lo.shape[0], dtype=np.int64)
        if lo.shape[0] > s.capacity:  # more than a window at once: keep the newest
            s.seq += lo.shape[0] - s.capacity
            lo, hi, where = lo[-s.capacity :], hi[-s.capacity :], where[-s.capacity :]
        pos = (s.seq + np.arange(lo.shape[0])) % s.capacity
        s.mins[pos], s.maxs[pos], s.where[pos] = lo, hi, where
        s.seq += lo.shape[0]

    # ---------------------------------------------------------- viewer side
    def poll(self, cursors: dict[str, tuple[int, int, int]]) -> dict[str, Any]:
        """What is new for one viewer since ``cursors`` (updated in place): a JSON-able dict of
        the streams the hub holds now (a removed stream is absent, and so leaves the page).

        cursors : stream id → (epoch, points seen, beats seen)
        """
        out: dict[str, Any] = {}
        with self.lock:
            for sid, s in self.streams.items():
                if s.pending:
                    self._drain(s)
                epoch, seen, beats_seen = cursors.get(sid, (s.epoch, 0, 0))
                if epoch != s.epoch:  # the stream was removed and came back: from its start
                    seen = beats_seen = 0
                start = max(seen, s.seq - s.capacity)
                pos = np.arange(start, s.seq) % s.capacity
                mins, maxs, where = s.mins[pos], s.maxs[pos], s.where[pos]
                new_beats = [b for b in s.beats if b[0] > beats_seen]
                cursors[sid] = (s.epoch, s.seq, s.beat_seq)
                status = (s.fs, s.bucket, s.n_inputs, list(s.labels), s.lost, s.hr, s.latency_ms)
                out[sid] = (status, mins, maxs, where, new_beats, start > seen)
        return {sid: _as_json(*item) for sid, item in out.items()}


def _as_json(status: tuple, mins, maxs, where, beats, skipped: bool) -> dict[str, Any]:
    fs, bucket, n_inputs, labels, lost, hr, latency = status
    return {
        "fs": fs,
        "bucket": bucket,
        "n_inputs": n_inputs,
        "labels": labels,
        "lost": lost,
        "hr": None if hr is None else round(hr, 1),
        "latency_ms": None if latency is None else round(latency, 2),
        "skipped": skipped,
        "at": where.tolist(),
        "min": _rounded(mins.T),
        "max": _rounded(maxs.T),
        "beats": [[index, None if hr is None else round(hr, 1)] for _, index, hr in beats],
    }


def _rounded(X: np.ndarray) -> list[list[float | None]]:
    """(K, n) float32 → lists of 6 significant digits, non-finite values as None."""
    out = []
    for row in X:
        finite = np.isfinite(row)
        vals = [float(f"{v:.6g}") for v in row.tolist()]
        out.append([v if ok else None for v, ok in zip(vals, finite.tolist())])
    return out
