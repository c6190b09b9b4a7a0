"""Recordings with annotations (EDF+ / BDF+ annotations, XDF marker streams), replayed with
their annotations delivered in order with the samples.

An :class:`AnnotatedSource` is a :class:`~streamgru.io.paced.PacedSource` that also keeps a
bounded deque ``events`` of :class:`Annotation` s: each is appended once the replay has released
the sample it starts at, so the daemon's reader forwards it after the chunk that holds it, on the
stream's index, exactly like a device's EVENT frame (the daemon logs it as ``device event`` with
code :data:`ANNOTATION_CODE` and the annotation's text).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .chunk import StreamInfo
from .paced import PacedSource

#: The EVENT code an annotation travels under (device EVENT codes are the device's own; beats
#: are 0x0101, ``firmware_bridge/PROTOCOL.md``).
ANNOTATION_CODE = 0x0200

#: How many released annotations a source keeps until the reader takes them.
EVENTS_KEPT = 4096


@dataclass(frozen=True)
class Annotation:
    """One annotation of a recording, placed on the stream's sample index.

    Attributes
    ----------
    sample_index : int, the sample it starts at (``round(onset_s * fs)``; looping replays add
        the record length once per pass)
    text : str, the annotation's text (EDF+ TAL text, the XDF marker)
    duration_s : float, seconds (0 when the file gives none)
    onset_s : float, seconds from the recording's first sample
    code : int, :data:`ANNOTATION_CODE`
    """

    sample_index: int
    text: str
    duration_s: float = 0.0
    onset_s: float = 0.0
    code: int = ANNOTATION_CODE


def place_annotations(
    onsets_s: Sequence[float], durations_s: Sequence[float], texts: Sequence[str], fs: float
) -> tuple[Annotation, ...]:
    """Annotations at ``round(onset * fs)``, sorted by index (onsets before the first sample
    are placed at 0).

    Parameters
    ----------
    onsets_s, durations_s : (N,) float seconds; texts : N str; fs : Hz
    """
    out = [
        Annotation(max(0, round(float(o) * fs)), str(t), float(d or 0.0), float(o))
        for o, d, t in zip(onsets_s, durations_s, texts)
    ]
    return tuple(sorted(out, key=lambda a: a.sample_index))


class AnnotatedSource(PacedSource):
    """A paced replay that releases its annotations as it passes them (see the module docstring).

    Parameters
    ----------
    uri, info, block, total, speed, chunk : as :class:`PacedSource`
    annotations : sorted by ``sample_index``
    length : samples in one pass of the recording (annotations repeat each pass when looping)

    Attributes
    ----------
    annotations : every annotation of the recording (one pass), for callers
    events : deque of the :class:`Annotation` s released so far (bounded, oldest dropped)
    """

    def __init__(
        self,
        uri: str,
        info: StreamInfo,
        block: Callable[[int], np.ndarray],
        total: int | None,
        speed: float,
        chunk: int,
        annotations: Sequence[Annotation] = (),
        length: int = 0,
    ) -> None:
        super().__init__(uri, info, block, total, speed, chunk)
        self.annotations = tuple(annotations)
        self.events: deque[Annotation] = deque(maxlen=EVENTS_KEPT)
        self._length = int(length)
        self._k = 0  # next annotation of the current pass
        self._pass_start = 0  # stream index of the current pass's first sample

    def _fill(self, deadline: float | None) -> None:
        super()._fill(deadline)
        self._release()

    def _release(self) -> None:
        """Append every annotation that starts before the next sample to be released."""
        notes = self.annotations
        while notes:
            if self._k >= len(notes):  # this pass is done: the next one (looping replays)
                if self._length <= 0:
                    return
                self._pass_start += self._length
                self._k = 0
            note = notes[self._k]
            index = self._pass_start + note.sample_index
            if index >= self._next:
                return
            self.events.append(
                Annotation(index, note.text, note.duration_s, note.onset_s, note.code)
            )
            self._k += 1
