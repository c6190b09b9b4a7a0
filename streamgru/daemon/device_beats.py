"""Device-side events in the daemon, and device-side beats compared with the host's, per beat.

Firmware running an exported model and beat detector sends each beat as an SGB1 EVENT with
``code = 0x0101`` (``firmware_bridge/PROTOCOL.md``, "Beat events"); a device source keeps the
last 64 decoded EVENT frames in a bounded deque (``Sgb1Reader.events``). Here:

* :class:`EventTap`: the events a source decoded since the last look (the deque is only read);
  an event pushed out of the deque before it was seen is counted in ``missed``;
* :func:`unwrap_u32`: an EVENT's 32-bit sample index → the source's 64-bit index;
* :class:`BeatComparison`: device beats against the host's own BeatDetector decisions on the
  same stream, paired within a tolerance; a beat that finds no partner once the host has
  processed well past it is a disagreement (``"device only"`` or ``"host only"``).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .logs import get_logger, log

_log = get_logger("daemon")

#: EVENT code of a beat decided on the device.
BEAT_EVENT_CODE = 0x0101
#: Default pairing tolerance between a device beat and a host beat, seconds.
AGREE_TOLERANCE_S = 0.050
#: How far the host must have processed past a beat before it is judged unpaired, seconds
#: (covers the detectors' decision wait, 0.2 s for the shipped model, and link jitter).
SETTLE_S = 1.0


@dataclass(frozen=True)
class DeviceEvent:
    """An EVENT frame placed on the stream's sample index.

    index : the stream's 64-bit sample index (int); code : the EVENT code; text : its text
    """

    index: int
    code: int
    text: str = ""

    @property
    def is_beat(self) -> bool:
        return self.code == BEAT_EVENT_CODE


def source_events(src: Any) -> Any:
    """The deque of decoded EVENT frames of a source (``src.events`` or ``src.reader.events``),
    or None for sources that have none."""
    events = getattr(src, "events", None)
    if events is None:
        events = getattr(getattr(src, "reader", None), "events", None)
    return events if hasattr(events, "__iter__") else None


class EventTap:
    """New entries of a bounded deque that a source appends to, by object identity.

    ``missed`` counts entries that fell out of the deque before :meth:`take` saw them (more than
    its capacity between two looks; the reader looks after every read, so this is rare).
    """

    def __init__(self) -> None:
        self._last: Any = None
        self._seen_any = False
        self.missed = 0

    def take(self, events: Any) -> list[Any]:
        """The entries appended since the last call, oldest first."""
        if events is None:
            return []
        items = list(events)
        if not items:
            return []
        new = items
        if self._seen_any:
            for k in range(len(items) - 1, -1, -1):
                if items[k] is self._last:
                    new = items[k + 1 :]
                    break
            else:
                maxlen = getattr(events, "maxlen", None)
                if maxlen is not None and len(items) >= maxlen:
                    self.missed += 1  # at least one fell out unseen (the exact count is lost)
        if new:
            self._last = new[-1]
            self._seen_any = True
        return new


def unwrap_u32(index32: int, near: int | None) -> int:
    """The 64-bit index whose low 32 bits are ``index32`` and that lies nearest ``near`` (the
    source's current 64-bit index; ``index32`` itself when unknown)."""
    if near is None:
        return int(index32)
    span = 1 << 32
    base = near - (near % span)
    candidates = (base - span + index32, base + index32, base + span + index32)
    return min((c for c in candidates if c >= 0), key=lambda c: abs(c - near))


@dataclass
class Verdict:
    """One beat judged: ``agree`` (device and host both decided it) or a disagreement.

    kind : "agree", "device only" or "host only"; index : the beat (the device's when paired);
    other : the host's index of a paired beat (None otherwise)
    """

    kind: str
    index: int
    other: int | None = None


@dataclass
class BeatComparison:
    """Device beats against host beats of one stream, paired within ``tolerance`` samples.

    Comparison starts at the first device beat (host beats before it are not judged: the device
    may not run a detector at all). Feed both sides with :meth:`add_device` / :meth:`add_host`
    in any order, and :meth:`settle` with how far the host has processed.
    """

    tolerance: int
    settle: int
    started_at: int | None = None
    device: list[int] = field(default_factory=list)  # unpaired, sorted
    host: list[int] = field(default_factory=list)  # unpaired, sorted

    @classmethod
    def for_rate(
        cls, fs: float, tolerance_s: float = AGREE_TOLERANCE_S, settle_s: float = SETTLE_S
    ) -> BeatComparison:
        return cls(tolerance=max(1, round(tolerance_s * fs)), settle=max(1, round(settle_s * fs)))

    def add_device(self, index: int) -> list[Verdict]:
        if self.started_at is None:
            self.started_at = index - self.tolerance
            self.host = [h for h in self.host if h >= self.started_at]
        return self._add(int(index), self.device, self.host, device_side=True)

    def add_host(self, index: int) -> list[Verdict]:
        if self.started_at is None:
            # kept a while in case the first device beat (the same beat) comes later
            self.host.append(int(index))
            return []
        if index < self.started_at:
            return []
        return self._add(int(index), self.host, self.device, device_side=False)

    def _add(self, index: int, mine: list[int], theirs: list[int], device_side: bool):
        k = bisect.bisect_left(theirs, index)
        best = None
        for j in (k - 1, k):
            if 0 <= j < len(theirs) and abs(theirs[j] - index) <= self.tolerance:
                if best is None or abs(theirs[j] - index) < abs(theirs[best] - index):
                    best = j
        if best is None:
            bisect.insort(mine, index)
            return []
        other = theirs.pop(best)
        device, host = (index, other) if device_side else (other, index)
        return [Verdict("agree", device, host)]

    def settle_until(self, processed: int | None) -> list[Verdict]:
        """Disagreements for the beats that can no longer be paired: those more than
        ``settle`` samples before ``processed`` (None: all, at the end of the stream)."""
        if self.started_at is None:
            if processed is not None:  # no device beat yet: forget old host beats
                self.host = [h for h in self.host if h >= processed - self.settle]
            else:
                self.host = []
            return []
        limit = None if processed is None else processed - self.settle
        out: list[Verdict] = []
        for side, kind in ((self.device, "device only"), (self.host, "host only")):
            keep = []
            for b in side:
                if limit is None or b < limit:
                    out.append(Verdict(kind, b))
                else:
                    keep.append(b)
            side[:] = keep
        out.sort(key=lambda v: v.index)
        return out


def count(verdicts: Iterable[Verdict]) -> tuple[int, int]:
    """``(agreements, disagreements)`` among verdicts."""
    agree = disagree = 0
    for v in verdicts:
        if v.kind == "agree":
            agree += 1
        else:
            disagree += 1
    return agree, disagree


class DeviceBeatMonitor:
    """The daemon's side of device events: logs them, counts them in the stream's counters
    (``device_beats``, ``device_events``, ``beats_agreed``, ``beats_disagreed``) and compares
    device beats with the host's beats of streams that detect beats (``events = true``).

    Called on the processing thread only. One :class:`BeatComparison` per stream, started at its
    first device beat and judged afresh when its source is reopened.
    """

    def __init__(self, tolerance_s: float = AGREE_TOLERANCE_S, settle_s: float = SETTLE_S):
        self.tolerance_s = tolerance_s
        self.settle_s = settle_s
        self._by_stream: dict[str, BeatComparison] = {}

    def device(self, stream_id: str, event: DeviceEvent, counters: Any, plan: Any) -> None:
        """One EVENT frame from the stream's device (its plan: see :meth:`_comparison`)."""
        if not event.is_beat:
            counters.device_events += 1
            log(
                _log,
                logging.INFO,
                "device event",
                stream=stream_id,
                index=event.index,
                code=event.code,
                text=event.text,
            )
            return
        counters.device_beats += 1
        log(_log, logging.INFO, "device beat", stream=stream_id, index=event.index, text=event.text)
        cmp = self._comparison(stream_id, plan)
        if cmp is not None:
            self._record(stream_id, cmp.add_device(event.index), counters)

    def host(
        self, stream_id: str, indices: list[int], processed: int, counters: Any, plan: Any
    ) -> None:
        """The host's beats of one processing round, and the stream index processed up to."""
        cmp = self._comparison(stream_id, plan)
        if cmp is None:
            return
        verdicts: list[Verdict] = []
        for index in indices:
            verdicts += cmp.add_host(int(index))
        verdicts += cmp.settle_until(processed)
        self._record(stream_id, verdicts, counters)

    def _comparison(self, stream_id: str, plan: Any) -> BeatComparison | None:
        """The stream's comparison; None unless the stream (its
        :class:`~streamgru.daemon.plan.StreamPlan`) detects beats on the host on the source's
        own grid (``events = true``, not resampled)."""
        if not plan.config.events or plan.resample is not None:
            return None
        cmp = self._by_stream.get(stream_id)
        if cmp is None:
            cmp = BeatComparison.for_rate(plan.fs, self.tolerance_s, self.settle_s)
            self._by_stream[stream_id] = cmp
        return cmp

    def finish(self, stream_id: str, counters: Any) -> None:
        """The stream's source ended or was reopened: judge every beat still unpaired."""
        cmp = self._by_stream.pop(stream_id, None)
        if cmp is not None:
            self._record(stream_id, cmp.settle_until(None), counters)

    def finish_all(self, streams: dict[str, Any]) -> None:
        """:meth:`finish` every stream (at shutdown), ``streams`` maps id → runtime."""
        for sid, rt in streams.items():
            self.finish(sid, rt.counters)

    def _record(self, stream_id: str, verdicts: list[Verdict], counters: Any) -> None:
        agree, disagree = count(verdicts)
        counters.beats_agreed += agree
        counters.beats_disagreed += disagree
        for v in verdicts:
            if v.kind != "agree":
                log(
                    _log,
                    logging.WARNING,
                    "beat disagreement",
                    stream=stream_id,
                    index=v.index,
                    side=v.kind,
                )
