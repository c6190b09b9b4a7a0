"""What the processing loop does with a stream's results once its round has run: log the notes,
hand the prediction blocks to the sink writer (or count them written when the stream has no
sink), log and pass on the beats, and compare the host's beats with the device's."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .device_beats import DeviceBeatMonitor
from .logs import get_logger, log
from .writer import Item

if TYPE_CHECKING:
    from ..io.chunk import PredictionBlock
    from .pipeline import ProcessResult
    from .streams import StreamRuntime

_log = get_logger("daemon")


def emit_result(
    rt: StreamRuntime,
    result: ProcessResult,
    outbox: list[Item],
    on_block: Callable[[PredictionBlock], None] | None,
    on_event: Callable[[str, Any], None] | None,
    device_beats: DeviceBeatMonitor,
) -> None:
    """Log the notes, queue the blocks in ``outbox`` for the sinks, log and pass on the beats."""
    for note in result.notes:
        level = logging.WARNING if note["what"] != "nonfinite" else logging.INFO
        log(
            _log,
            level,
            note["what"],
            stream=rt.id,
            **{k: v for k, v in note.items() if k != "what"},
        )
    uris = tuple(rt.sinks)
    for block in result.blocks:
        if on_block is not None:
            on_block(block)
        if uris:
            outbox.append(Item(block, uris, rt.counters, rt.latency))
        else:  # no sink: "written" when processed
            rt.counters.samples_out += block.n_samples
            rt.latency.add_many(time.monotonic() - block.times())
    for event in result.events:
        hr = None if event.hr_bpm is None else round(event.hr_bpm, 1)
        log(_log, logging.INFO, "beat", stream=rt.id, index=event.index, hr_bpm=hr)
        if on_event is not None:
            on_event(rt.id, event)
    if result.blocks:
        end = result.blocks[-1].first_index + result.blocks[-1].n_samples
        beats = [e.index for e in result.events]
        device_beats.host(rt.id, beats, end, rt.counters, rt.plan)
