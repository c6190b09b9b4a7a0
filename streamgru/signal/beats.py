"""Beat post-processing: a per-sample beat score in, beat events (with heart rate) out.

A beat model (e.g. ``weights/ecg_beats.safetensors``) gives one score in [0, 1] per sample that
rises shortly after each R peak. :class:`BeatDetector` turns that score stream into beat events,
in streaming fashion and independently of how the stream is chunked; :func:`match_beats` scores
detections against reference annotations beat by beat.

Pure numpy: no numba, no torch (the daemon and tests import this without compiling anything).

>>> import numpy as np
>>> scores = np.zeros(1000)
>>> scores[[100, 101, 102, 400, 401, 700]] = [0.6, 0.9, 0.7, 0.8, 0.95, 0.7]
>>> det = BeatDetector(fs=360.0, threshold=0.5)
>>> events = det.update(scores[:500], first_index=0) + det.update(scores[500:])
>>> [(e.index, e.emitted_index) for e in events]
[(101, 103), (401, 402), (700, 701)]
>>> round(events[1].hr_bpm, 1)
72.0
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

from ..errors import InvalidInputError, ShapeError, SnapshotError

__all__ = [
    "BeatDetector",
    "BeatEvent",
    "BeatMatch",
    "detect_beats",
    "match_beats",
    "pair_beats",
]

_SNAPSHOT_VERSION = 1
_INDEX_MODES = ("peak", "crossing")


@dataclass(frozen=True)
class BeatEvent:
    """One detected beat.

    Attributes
    ----------
    index : int
        Sample index of the beat (stream indexing, as ``first_index`` in
        :meth:`BeatDetector.update`): the score maximum of the run above threshold
        (``index_mode="peak"``) or the run's first sample (``index_mode="crossing"``).
    t : float
        ``index / fs`` in seconds from stream index 0.
    score : float
        The score at ``index``.
    rr_s : float or None
        Seconds since the previous beat; None for the first beat and the first beat after a gap.
    hr_bpm : float or None
        Instantaneous heart rate ``60 / rr_s``.
    hr_smoothed_bpm : float or None
        ``60 / median`` of the last ``hr_window`` RR intervals (None until there is one).
    emitted_index : int
        The sample index at which the detector decided (the first sample below threshold after
        the run, the sample where ``max_wait_s`` ran out, or the crossing itself); the event is
        returned by the :meth:`BeatDetector.update` call that contains this sample.
    """

    index: int
    t: float
    score: float
    rr_s: float | None
    hr_bpm: float | None
    hr_smoothed_bpm: float | None
    emitted_index: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the fields."""
        return asdict(self)


class BeatDetector:
    """Streaming threshold + refractory beat detector over a per-sample score.

    A *run* is a maximal stretch of consecutive samples with ``score >= threshold`` (NaN counts as
    below). Each run yields at most one beat:

    * ``index_mode="peak"`` (default): the beat index is the run's first score maximum. The event
      is emitted when the run ends, or ``max_wait_s`` after the run began if it is still going
      (then the maximum so far is used and the rest of the run is ignored). Latency after the
      peak is therefore bounded by ``max_wait_s``.
    * ``index_mode="crossing"``: the beat index is the run's first sample; the event is emitted at
      once (lowest latency; the index is earlier and less precise than the peak).

    A run must begin inside the stream: one that is already above threshold at the first sample
    after :meth:`reset` or after a gap began where the detector could not see it (typically the
    model's output from its zero initial state), so it gives no beat (counted in
    :attr:`n_unstarted`). A candidate closer than ``refractory_s`` to the previous accepted beat
    is dropped (counted in :attr:`n_suppressed`). Results do not depend on how the scores are chunked: feeding a stream
    in any pieces gives the same events, with the same ``emitted_index``.

    Parameters
    ----------
    fs : float
        Sample rate of the score stream in Hz.
    threshold : float
        Score level that starts a run.
    refractory_s : float
        Minimum spacing of accepted beats in seconds (0.25 s allows up to 240 bpm).
    index_mode : {"peak", "crossing"}
    max_wait_s : float
        Longest time a run is waited for in ``"peak"`` mode before its event is emitted.
    hr_window : int
        Number of recent RR intervals whose median gives the smoothed heart rate.
    """

    def __init__(
        self,
        fs: float,
        threshold: float = 0.5,
        refractory_s: float = 0.25,
        index_mode: str = "peak",
        max_wait_s: float = 0.2,
        hr_window: int = 8,
    ) -> None:
        fs = float(fs)
        if not (math.isfinite(fs) and fs > 0):
            raise ValueError(f"fs: expected a positive sample rate in Hz, got {fs}")
        threshold = float(threshold)
        if not math.isfinite(threshold):
            raise ValueError(f"threshold: expected a finite number, got {threshold}")
        if not (refractory_s >= 0 and math.isfinite(refractory_s)):
            raise ValueError(f"refractory_s: expected a finite value >= 0, got {refractory_s}")
        if index_mode not in _INDEX_MODES:
            raise ValueError(f"index_mode: expected one of {_INDEX_MODES}, got {index_mode!r}")
        if not (max_wait_s > 0 and math.isfinite(max_wait_s)):
            raise ValueError(f"max_wait_s: expected a finite value > 0, got {max_wait_s}")
        if int(hr_window) < 1:
            raise ValueError(f"hr_window: expected an integer >= 1, got {hr_window}")
        self.fs = fs
        self.threshold = threshold
        self.refractory_s = float(refractory_s)
        self.index_mode = index_mode
        self.max_wait_s = float(max_wait_s)
        self.hr_window = int(hr_window)
        #: refractory and max-wait in samples (ceil: never shorter than asked)
        self.refractory_samples = math.ceil(self.refractory_s * fs - 1e-9)
        self.max_wait_samples = max(1, math.ceil(self.max_wait_s * fs - 1e-9))
        self.reset()

    # ----------------------------------------------------------------- state
    def reset(self) -> None:
        """Forget everything: the next :meth:`update` may start at any index."""
        self._next_index: int | None = None
        self._in_run = False
        self._run_start = 0
        self._peak_index = 0
        self._peak_score = 0.0
        self._run_done = False  # this run's event was emitted (or dropped) already
        self._last_beat: int | None = None
        self._rr_known = False  # the next RR interval can be trusted (no gap since last beat)
        self._rr_history: list[float] = []
        #: first index of the current contiguous stretch of scores (None before the first update)
        self._segment_start: int | None = None
        self.n_beats = 0
        self.n_suppressed = 0
        self.n_unstarted = 0

    def _settings(self) -> dict[str, Any]:
        return {
            "fs": self.fs,
            "threshold": self.threshold,
            "refractory_s": self.refractory_s,
            "index_mode": self.index_mode,
            "max_wait_s": self.max_wait_s,
            "hr_window": self.hr_window,
        }

    def snapshot(self) -> bytes:
        """The state as bytes (UTF-8 JSON) for :meth:`restore` on a detector with equal settings."""
        state = {
            "version": _SNAPSHOT_VERSION,
            "kind": "streamgru.BeatDetector",
            "settings": self._settings(),
            "next_index": self._next_index,
            "in_run": self._in_run,
            "run_start": self._run_start,
            "peak_index": self._peak_index,
            "peak_score": self._peak_score,
            "run_done": self._run_done,
            "last_beat": self._last_beat,
            "rr_known": self._rr_known,
            "rr_history": list(self._rr_history),
            "n_beats": self.n_beats,
            "n_suppressed": self.n_suppressed,
            "segment_start": self._segment_start,
            "n_unstarted": self.n_unstarted,
        }
        return json.dumps(state, sort_keys=True).encode()

    def restore(self, blob: bytes | str | dict) -> None:
        """Load a state written by :meth:`snapshot`; refuses another version or other settings."""
        try:
            state = blob if isinstance(blob, dict) else json.loads(blob)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SnapshotError(f"BeatDetector snapshot: not valid JSON: {exc}") from exc
        if not isinstance(state, dict) or state.get("kind") != "streamgru.BeatDetector":
            raise SnapshotError(
                "BeatDetector snapshot: expected a blob from BeatDetector.snapshot()"
            )
        if state.get("version") != _SNAPSHOT_VERSION:
            raise SnapshotError(
                f"BeatDetector snapshot: expected version {_SNAPSHOT_VERSION}, "
                f"got {state.get('version')!r}"
            )
        if state.get("settings") != self._settings():
            raise SnapshotError(
                f"BeatDetector snapshot: made with settings {state.get('settings')}, "
                f"this detector has {self._settings()}"
            )
        try:
            nxt = state["next_index"]
            self._next_index = None if nxt is None else int(nxt)
            self._in_run = bool(state["in_run"])
            self._run_start = int(state["run_start"])
            self._peak_index = int(state["peak_index"])
            self._peak_score = float(state["peak_score"])
            self._run_done = bool(state["run_done"])
            last = state["last_beat"]
            self._last_beat = None if last is None else int(last)
            self._rr_known = bool(state["rr_known"])
            self._rr_history = [float(v) for v in state["rr_history"]][-self.hr_window :]
            self.n_beats = int(state["n_beats"])
            self.n_suppressed = int(state["n_suppressed"])
            seg = state.get("segment_start")  # absent in snapshots of earlier releases
            self._segment_start = None if seg is None else int(seg)
            self.n_unstarted = int(state.get("n_unstarted", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"BeatDetector snapshot: missing or bad field: {exc}") from exc

    @property
    def next_index(self) -> int | None:
        """The stream index the next :meth:`update` is expected to start at (None after reset)."""
        return self._next_index

    # ------------------------------------------------------------- streaming
    def update(self, scores: Any, first_index: int | None = None) -> list[BeatEvent]:
        """Consume ``scores`` for samples ``first_index ..`` and return the beats decided in them.

        Parameters
        ----------
        scores : (T,) or (T, 1) array of float
            The beat score per sample (e.g. a Stepper's ``step_chunk`` output).
        first_index : int, optional
            Stream index of ``scores[0]``; defaults to where the previous call ended (0 at first).
            A jump forward is a gap: an open run is closed (its beat emitted at the first missing
            index) and the next beat gets no RR interval; going backwards raises
            :class:`InvalidInputError` and leaves the state unchanged.
        """
        s = np.asarray(scores, dtype=np.float64)
        if s.ndim == 2 and s.shape[1] == 1:
            s = s[:, 0]
        if s.ndim != 1:
            raise ShapeError(f"scores: expected shape (T,) or (T, 1), got {np.shape(scores)}")
        events: list[BeatEvent] = []
        if first_index is None:
            first_index = 0 if self._next_index is None else self._next_index
        first_index = int(first_index)
        if self._next_index is not None and first_index != self._next_index:
            if first_index < self._next_index:
                raise InvalidInputError(
                    f"first_index: expected {self._next_index} (or later, after a gap), "
                    f"got {first_index}: the stream went backwards"
                )
            self._close_run(self._next_index, events)
            self._rr_known = False
            self._rr_history.clear()
            self._segment_start = first_index
        elif self._next_index is None:
            self._segment_start = first_index
        n = s.shape[0]
        self._next_index = first_index + n
        if n == 0:
            return events
        above = s >= self.threshold  # NaN compares False: below threshold
        prev = np.empty(n, dtype=bool)
        prev[0] = self._in_run
        prev[1:] = above[:-1]
        edges = np.flatnonzero(above != prev)  # run starts (above) and ends (below) in this chunk
        # Walk the segments between edges; a segment is entirely above or below threshold.
        bounds = [0, *edges.tolist(), n]
        for k in range(len(bounds) - 1):
            a, b = bounds[k], bounds[k + 1]
            if a == b:
                continue
            if above[a]:
                if not self._in_run:
                    self._start_run(first_index + a, float(s[a]), events)
                self._extend_run(s, a, b, first_index, events)
            elif self._in_run:
                self._close_run(first_index + a, events)
        return events

    def flush(self) -> list[BeatEvent]:
        """End of stream: emit the beat of a run that is still open (at the next index)."""
        events: list[BeatEvent] = []
        if self._next_index is not None:
            self._close_run(self._next_index, events)
        return events

    # -------------------------------------------------------------- internals
    def _start_run(self, index: int, score: float, events: list[BeatEvent]) -> None:
        self._in_run = True
        self._run_start = index
        self._peak_index = index
        self._peak_score = score
        self._run_done = False
        if index == self._segment_start:  # above threshold from the first sample seen: no edge
            self._run_done = True
            self.n_unstarted += 1
            return
        if self.index_mode == "crossing":
            self._emit(index, score, index, events)
            self._run_done = True

    def _extend_run(
        self, s: np.ndarray, a: int, b: int, first_index: int, events: list[BeatEvent]
    ) -> None:
        """Samples s[a:b] are all above threshold and belong to the open run."""
        if self._run_done:
            return
        # In peak mode the run is decided at the latest at sample run_start + max_wait_samples - 1
        # (its position in this chunk is `deadline`).
        deadline = self._run_start + self.max_wait_samples - 1 - first_index
        stop = min(b, deadline + 1)
        if stop > a:
            seg = s[a:stop]
            k = int(np.argmax(seg))  # first maximum: ties keep the earliest sample
            if seg[k] > self._peak_score:
                self._peak_score = float(seg[k])
                self._peak_index = first_index + a + k
        if deadline < b:
            self._emit(self._peak_index, self._peak_score, first_index + max(deadline, a), events)
            self._run_done = True

    def _close_run(self, at_index: int, events: list[BeatEvent]) -> None:
        if self._in_run and not self._run_done:
            self._emit(self._peak_index, self._peak_score, at_index, events)
        self._in_run = False
        self._run_done = False

    def _emit(self, index: int, score: float, at_index: int, events: list[BeatEvent]) -> None:
        last = self._last_beat
        if last is not None and index - last < self.refractory_samples:
            self.n_suppressed += 1
            return
        rr = hr = None
        if last is not None and self._rr_known:
            rr = (index - last) / self.fs
            hr = 60.0 / rr
            self._rr_history.append(rr)
            del self._rr_history[: -self.hr_window]
        smooth = 60.0 / float(np.median(self._rr_history)) if self._rr_history else None
        self._last_beat = index
        self._rr_known = True
        self.n_beats += 1
        events.append(
            BeatEvent(
                index=int(index),
                t=index / self.fs,
                score=float(score),
                rr_s=rr,
                hr_bpm=hr,
                hr_smoothed_bpm=smooth,
                emitted_index=int(at_index),
            )
        )


def detect_beats(scores: Any, fs: float, threshold: float = 0.5, **kwargs: Any) -> np.ndarray:
    """Offline helper: beat indices (int64, relative to ``scores[0]``) of a whole score array.

    Runs a :class:`BeatDetector` (extra keyword arguments go to it) over ``scores`` and flushes.
    """
    det = BeatDetector(fs, threshold=threshold, **kwargs)
    events = det.update(scores, first_index=0) + det.flush()
    return np.array([e.index for e in events], dtype=np.int64)


class BeatMatch(NamedTuple):
    """Beat-by-beat comparison counts (unpacks as ``tp, fp, fn, sensitivity, ppv``)."""

    tp: int
    fp: int
    fn: int
    sensitivity: float  # tp / (tp + fn); NaN when there are no reference beats
    ppv: float  # positive predictivity tp / (tp + fp); NaN when nothing was detected


def _sorted_int(name: str, values: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ShapeError(f"{name}: expected a 1-D array of sample indices, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ShapeError(f"{name}: expected integer sample indices, got dtype {arr.dtype}")
    return np.sort(arr.astype(np.int64))


def pair_beats(
    detected_idx: Sequence[int] | np.ndarray,
    reference_idx: Sequence[int] | np.ndarray,
    fs: float,
    tolerance_s: float = 0.150,
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs of detections and reference beats within ``tolerance_s``.

    Reference beats are taken in time order; each is paired with the earliest unpaired detection
    with ``|detected - reference| <= tolerance``. With equal windows on a line this greedy rule
    gives the largest possible number of pairs. Returns ``(detected, reference)`` index arrays of
    equal length (the pairs), both sorted.
    """
    det = _sorted_int("detected_idx", detected_idx)
    ref = _sorted_int("reference_idx", reference_idx)
    tol = float(tolerance_s) * float(fs)
    pairs_d: list[int] = []
    pairs_r: list[int] = []
    j = 0
    for r in ref.tolist():
        while j < det.size and det[j] < r - tol:
            j += 1  # too early for this reference and for every later one
        if j < det.size and det[j] <= r + tol:
            pairs_d.append(int(det[j]))
            pairs_r.append(int(r))
            j += 1
    return np.array(pairs_d, dtype=np.int64), np.array(pairs_r, dtype=np.int64)


def match_beats(
    detected_idx: Sequence[int] | np.ndarray,
    reference_idx: Sequence[int] | np.ndarray,
    fs: float,
    tolerance_s: float = 0.150,
) -> BeatMatch:
    """Beat-by-beat matching of detections against reference annotations.

    Each reference beat matches at most one detection and vice versa, within ``tolerance_s``
    (150 ms, as in ANSI/AAMI EC57 practice). Indices are sample numbers at ``fs``.

    Returns
    -------
    BeatMatch
        ``(tp, fp, fn, sensitivity, ppv)``.
    """
    det = _sorted_int("detected_idx", detected_idx)
    ref = _sorted_int("reference_idx", reference_idx)
    paired, _ = pair_beats(det, ref, fs, tolerance_s)
    tp = int(paired.size)
    fp = int(det.size - tp)
    fn = int(ref.size - tp)
    sens = tp / (tp + fn) if (tp + fn) else float("nan")
    ppv = tp / (tp + fp) if (tp + fp) else float("nan")
    return BeatMatch(tp, fp, fn, sens, ppv)
