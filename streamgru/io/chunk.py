"""The records that flow through io: what a source yields and what a sink writes.

* :class:`Chunk`: consecutive samples of one stream, in physical units, with their place in the
  stream (a 64-bit sample index) and the host time they arrived.
* :class:`StreamInfo`: what a stream is (rate, channels, units, calibration, device).
* :class:`SourceStats`: running totals a source keeps; gaps and corruption are counted, never
  hidden.
* :class:`PredictionBlock`: model outputs for consecutive samples, for sinks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class Chunk:
    """Consecutive samples of one stream.

    Attributes
    ----------
    samples : (T, C) float32, C-contiguous, physical units (``(raw - baseline) / gain``)
    first_index : int
        Index of ``samples[0]`` in the stream, 64-bit (the device's 32-bit index unwrapped);
        consecutive chunks satisfy
        ``next.first_index == prev.first_index + prev.T + next.gap_before``.
    t_host : float
        ``time.monotonic()`` seconds when the chunk's bytes arrived (replays: when it was released).
    gap_before : int
        Samples lost just before this chunk (0 when contiguous with the previous chunk).
    restarted : bool
        The device restarted (new session) or its index jumped back: a discontinuity of unknown
        length before this chunk; ``first_index`` still continues from the previous chunk.
    """

    samples: np.ndarray
    first_index: int
    t_host: float
    gap_before: int = 0
    restarted: bool = False

    def __post_init__(self) -> None:
        s = self.samples
        if s.dtype != np.float32 or s.ndim != 2 or not s.flags.c_contiguous:
            self.samples = np.ascontiguousarray(np.atleast_2d(s), dtype=np.float32)

    @property
    def n_samples(self) -> int:
        """T, the number of samples."""
        return int(self.samples.shape[0])

    @property
    def end_index(self) -> int:
        """Index one past the last sample: ``first_index + T``."""
        return self.first_index + self.n_samples


@dataclass
class StreamInfo:
    """Description of a stream, from a device HELLO, a file header or the URI's options.

    Attributes
    ----------
    fs : float
        Sample rate in Hz.
    n_channels : int
    labels, units : tuple of str, one per channel
    gain, baseline : tuple of float, one per channel; ``physical = (raw - baseline) / gain``
        (1 and 0 for sources that deliver physical values directly)
    device_id, firmware : str (``""`` when unknown)
    sample_format : str
        ``"int16"``, ``"int24"``, ``"float32"`` (SGB1), ``"float64"`` (files), ``"ascii"`` ...
    session : int
        The device's boot session (SGB1), 0 elsewhere.
    """

    fs: float
    n_channels: int
    labels: tuple[str, ...]
    units: tuple[str, ...]
    gain: tuple[float, ...] = ()
    baseline: tuple[float, ...] = ()
    device_id: str = ""
    firmware: str = ""
    sample_format: str = "float32"
    session: int = 0

    def __post_init__(self) -> None:
        n = self.n_channels
        self.labels = tuple(self.labels) or tuple(f"ch{c}" for c in range(n))
        self.units = tuple(self.units) or ("",) * n
        self.gain = tuple(float(g) for g in self.gain) or (1.0,) * n
        self.baseline = tuple(float(b) for b in self.baseline) or (0.0,) * n
        for name in ("labels", "units", "gain", "baseline"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"StreamInfo.{name} needs {n} entries (one per channel), "
                    f"got {len(getattr(self, name))}"
                )

    def to_dict(self) -> dict:
        """Plain JSON-able dict."""
        return asdict(self)


@dataclass
class SourceStats:
    """Running totals of a source.

    Attributes
    ----------
    frames : good frames (or lines) decoded
    crc_errors : frames rejected for a CRC mismatch
    malformed : frames or lines rejected for their structure (COBS, lengths, unparsable text)
    bytes_discarded : bytes that were not part of a good frame
    oversize : runs longer than the largest frame without a delimiter
    ignored : good frames not used (DATA before the first HELLO, stale or mismatched DATA,
        host commands echoed back)
    stale_frames : DATA frames behind the index (stale, duplicate or replayed; also in
        ``ignored``)
    gaps : discontinuities counted from the sample index
    samples_lost : samples missing in those gaps
    restarts : device restarts (new session or a backwards index)
    reconnects : connections re-established after the link was lost, one each (a reopened
        link counts once it delivers a good frame or line)
    chunks, samples : what was delivered
    """

    frames: int = 0
    crc_errors: int = 0
    malformed: int = 0
    bytes_discarded: int = 0
    oversize: int = 0
    ignored: int = 0
    stale_frames: int = 0
    gaps: int = 0
    samples_lost: int = 0
    restarts: int = 0
    reconnects: int = 0
    chunks: int = 0
    samples: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PredictionBlock:
    """Model outputs for consecutive samples of one stream, as given to a sink.

    Attributes
    ----------
    stream_id : str
    first_index : int
        Sample index of ``outputs[0]`` (the input chunk's ``first_index``).
    t_host : float or (T,) float64
        Arrival time(s) of the input: a scalar applies to all T rows.
    outputs : (T, O) float32
    labels : tuple of str, optional output names (used as CSV / LSL channel names)
    inputs : (T, C) float32 or None: the samples the rows were computed from, as the model was
        fed them (after channel picking and resampling, before the filter); the daemon fills it
        for the sinks that record or show the signal (``edf://``, ``view://``); no copy is made
    events : beat events decided while computing these rows (objects with ``.index`` and
        ``.hr_bpm``, :class:`~streamgru.signal.beats.BeatEvent`; an event may lie before
        ``first_index``: a detector decides a beat a little after it)
    fs : the rows' sample rate in Hz (0.0: unknown)
    input_labels : names of the ``inputs`` columns (empty: unknown)
    """

    stream_id: str
    first_index: int
    t_host: float | np.ndarray
    outputs: np.ndarray
    labels: tuple[str, ...] = field(default=())
    inputs: np.ndarray | None = None
    events: tuple = ()
    fs: float = 0.0
    input_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        out = np.asarray(self.outputs, dtype=np.float32)
        if out.ndim == 1:
            out = out[:, None]
        if out.ndim != 2:
            raise ValueError(f"PredictionBlock.outputs must be (T, O), got shape {out.shape}")
        self.outputs = np.ascontiguousarray(out)
        if self.inputs is not None and (
            self.inputs.ndim != 2 or self.inputs.shape[0] != out.shape[0]
        ):
            raise ValueError(
                f"PredictionBlock.inputs must be ({out.shape[0]}, C), got {self.inputs.shape}"
            )
        if not np.isscalar(self.t_host):
            t = np.asarray(self.t_host, dtype=np.float64).reshape(-1)
            if t.shape[0] != out.shape[0]:
                raise ValueError(
                    f"PredictionBlock.t_host must be a scalar or ({out.shape[0]},), "
                    f"got shape {t.shape}"
                )
            self.t_host = t

    @property
    def n_samples(self) -> int:
        return int(self.outputs.shape[0])

    def times(self) -> np.ndarray:
        """(T,) float64 arrival time of each row."""
        if np.isscalar(self.t_host):
            return np.full(self.n_samples, self.t_host, dtype=np.float64)
        return np.asarray(self.t_host, dtype=np.float64)
