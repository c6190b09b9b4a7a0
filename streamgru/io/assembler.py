"""From decoded SGB1 frames to a stream: HELLO → :class:`StreamInfo`, DATA → :class:`Chunk`.

Gap accounting uses the device's 32-bit sample index. With ``expected`` the index after the last
delivered sample, a DATA frame starting at ``first`` is ``delta = (first - expected) mod 2**32``
ahead:

* ``delta < 2**31``: a forward step; ``delta`` samples were lost (0: contiguous). Wrap-around of
  the 32-bit counter is therefore seamless; the delivered index is 64-bit and never wraps.
* otherwise the index went back by ``2**32 - delta`` samples, however far: a stale, duplicate or
  replayed frame. It is dropped and counted (``stale``, and in ``ignored``); ``expected`` stays,
  so the next real frame reports no phantom gap. A backwards index alone never means a restart:
  a frame replayed from far back must not feed old samples to the model as new ones.

A device restart is known from its HELLO: the ``session`` changes at every boot, and a device
sends HELLO at boot, on every new connection and when asked (GET_INFO). After a HELLO with a new
session, the next DATA frame is taken wherever its index is (its device counter started again),
continues the 64-bit index where the stream left off and carries ``restarted=True`` (how much
was lost is unknown).

A restart whose HELLO was lost (UDP) shows as a run of stale frames (the new session's index
is behind): ``stale_run`` counts the consecutive stale frames and ``stale_since`` is the arrival
time of the run's first, so that a source can ask the device for its HELLO (GET_INFO;
:class:`~streamgru.io.device_source.Sgb1Reader`). A delivered frame or a HELLO ends the run.

DATA before the first HELLO is dropped and counted in ``ignored``: without the gain and baseline
its samples cannot be put in physical units (sources ask for a HELLO when they open). DATA whose
channel count or sample format disagrees with the HELLO is dropped and counted the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chunk import Chunk, StreamInfo
from .protocol import Data, Hello, SampleFormat

_MASK = 0xFFFFFFFF
_HALF = 1 << 31


def info_from_hello(hello: Hello) -> StreamInfo:
    """The :class:`StreamInfo` a HELLO describes."""
    return StreamInfo(
        fs=hello.fs,
        n_channels=hello.n_channels,
        labels=hello.labels,
        units=hello.units,
        gain=hello.gain,
        baseline=hello.baseline,
        device_id=hello.device_id,
        firmware=hello.firmware,
        sample_format=hello.sample_format.label,
        session=hello.session,
    )


def to_physical(values: np.ndarray, gain: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """``(values - baseline) / gain`` computed in float64, returned as (T, C) float32.

    values : (T, C) raw values; gain, baseline : (C,) float64.
    """
    out = (np.asarray(values, dtype=np.float64) - baseline) / gain
    return np.ascontiguousarray(out, dtype=np.float32)


@dataclass
class AssemblerStats:
    """Counters of a :class:`StreamAssembler` (see :class:`streamgru.io.chunk.SourceStats`);
    ``stale`` counts DATA frames behind the index (also counted in ``ignored``)."""

    ignored: int = 0
    gaps: int = 0
    samples_lost: int = 0
    restarts: int = 0
    stale: int = 0


class StreamAssembler:
    """Turns HELLO and DATA frames of one device into stream info and physical-unit chunks.

    The assembler outlives reconnections: keep one per stream so that the index continues and a
    gap across an unplugged cable is counted from the index.
    """

    def __init__(self) -> None:
        self.info: StreamInfo | None = None
        self.stats = AssemblerStats()
        self._gain = np.ones(0)
        self._baseline = np.zeros(0)
        self._format: SampleFormat | None = None
        self._identity = False
        self._expected: int | None = None  # 64-bit index after the last delivered sample
        self._expected_dev = 0  # the same on the device's 32-bit counter
        self._restart_pending = False
        self.stale_run = 0  # consecutive stale DATA frames
        self.stale_since = 0.0  # t_host of the first frame of that run

    def on_hello(self, hello: Hello) -> StreamInfo:
        """Take a HELLO; returns the (possibly new) stream info."""
        if self.info is not None and hello.session != self.info.session:
            self._restart_pending = True
        self.stale_run = 0
        self.info = info_from_hello(hello)
        self._gain = np.asarray(hello.gain, dtype=np.float64)
        self._baseline = np.asarray(hello.baseline, dtype=np.float64)
        self._format = hello.sample_format
        # float32 samples with gain 1 and baseline 0 are their own physical values (the float64
        # round trip of to_physical gives the same bits): taken as they are
        self._identity = (
            self._format is SampleFormat.FLOAT32
            and bool(np.all(self._gain == 1.0))
            and bool(np.all(self._baseline == 0.0))
        )
        return self.info

    def on_data(self, data: Data, t_host: float) -> Chunk | None:
        """Take a DATA frame; returns its chunk, or ``None`` when the frame is not used."""
        if (
            self.info is None
            or data.n_channels != self.info.n_channels
            or data.sample_format != self._format
        ):
            self.stats.ignored += 1
            return None
        gap = 0
        restarted = False
        if self._expected is None:
            first = data.first_index
        else:
            delta = (data.first_index - self._expected_dev) & _MASK
            if self._restart_pending:  # a new session: the device counter started again
                first = self._expected
                restarted = True
                self.stats.restarts += 1
            elif delta >= _HALF:  # behind: stale, duplicate or replayed, however far back
                self.stats.stale += 1
                self.stats.ignored += 1
                if not self.stale_run:
                    self.stale_since = t_host
                self.stale_run += 1
                return None
            else:
                first = self._expected + delta
                gap = delta
        self._restart_pending = False
        self.stale_run = 0
        if gap:
            self.stats.gaps += 1
            self.stats.samples_lost += gap
        self._expected = first + data.n_samples
        self._expected_dev = (data.first_index + data.n_samples) & _MASK
        values = data.values()  # a fresh array
        samples = values if self._identity else to_physical(values, self._gain, self._baseline)
        return Chunk(samples, first, t_host, gap_before=gap, restarted=restarted)
