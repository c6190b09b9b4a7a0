"""What the daemon holds per stream: :class:`StreamRuntime` and the states a stream can be in."""

from __future__ import annotations

from dataclasses import dataclass

from ..io.chunk import StreamInfo
from .metrics import LatencyRecorder, StreamCounters
from .pipeline import StreamPipeline
from .plan import StreamPlan
from .reader import SourceReader

#: Stream states that only a reload (or a restart) leaves.
DEAD_STATES = ("failed", "misconfigured")


@dataclass
class StreamRuntime:
    """What the daemon holds per stream (keyed by stream id)."""

    plan: StreamPlan
    pipeline: StreamPipeline
    counters: StreamCounters
    latency: LatencyRecorder
    sinks: list[str]
    reader: SourceReader | None = None
    state: str = "starting"
    info: StreamInfo | None = None
    resumed_from: tuple[int, str] | None = None  # (session, device) of the snapshot
    ended: bool = False

    @property
    def id(self) -> str:
        return self.plan.id
