"""A WFDB record through the same pipeline the daemon runs, beats out.

raw channel (physical units) -> :class:`~streamgru.signal.resample.StreamResampler` to the
model's rate when the record's differs (the daemon's ``--resample``) -> ``model.stepper()``
(the model's own filter chain and normalisation, float32, from a cold start at the first
sample, as at a connection) -> :class:`~streamgru.signal.beats.BeatDetector` with the model's
``threshold`` / ``refractory_s`` -> beat indices mapped back to the record's sample clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..signal.beats import BeatDetector
from ..signal.resample import StreamResampler
from .annotations import AnnotationError, _wfdb, record_base


@dataclass(frozen=True)
class RecordSignal:
    """One channel of a record, in physical units.

    Attributes
    ----------
    name : record name
    fs : sample rate, Hz
    samples : (n,) float32, the channel from ``first`` on
    first : sample index (on the record's clock) of ``samples[0]``
    channel : the channel's name
    """

    name: str
    fs: float
    samples: np.ndarray
    first: int
    channel: str


def _pick_channel(names: list[str], channel: str | int | None, model: Any, where: str) -> int:
    if channel is None:
        wanted = (model.metadata.get("channels") or [None])[0] if model is not None else None
        return names.index(wanted) if wanted in names else 0
    if isinstance(channel, int) or str(channel).isdigit():
        index = int(channel)
        if not 0 <= index < len(names):
            raise InvalidInputError(
                f"{where}: channel {index} does not exist (the record has {len(names)}: {names})"
            )
        return index
    if channel not in names:
        raise InvalidInputError(f"{where}: no channel named {channel!r} (it has {names})")
    return names.index(str(channel))


def read_record(
    record: str | Path,
    channel: str | int | None = None,
    span: tuple[int | None, int | None] = (None, None),
    model: Any = None,
) -> RecordSignal:
    """One channel of a WFDB record, samples ``span = (from, to)`` (``None``: the ends)."""
    wfdb = _wfdb()
    base = record_base(record)
    where = str(base.with_suffix(".hea"))
    try:
        header = wfdb.rdheader(str(base))
    except Exception as exc:
        raise AnnotationError(f"{where}: not a readable WFDB record ({exc})") from exc
    names = list(header.sig_name or [])
    index = _pick_channel(names, channel, model, where)
    n_total = int(header.sig_len or 0)
    lo = 0 if span[0] is None else int(span[0])
    hi = n_total if span[1] is None else min(int(span[1]), n_total)
    if not 0 <= lo < hi:
        raise InvalidInputError(
            f"{where}: expected 0 <= from < to <= {n_total} samples, got from={lo} to={hi}"
        )
    try:
        rec = wfdb.rdrecord(str(base), sampfrom=lo, sampto=hi, channels=[index])
    except Exception as exc:
        raise AnnotationError(f"{where}: cannot read its signal ({exc})") from exc
    samples = np.ascontiguousarray(rec.p_signal[:, 0], dtype=np.float32)
    if not np.all(np.isfinite(samples)):
        raise InvalidInputError(f"{where}: channel {names[index]!r} holds NaN or Inf samples")
    return RecordSignal(base.name, float(header.fs), samples, lo, names[index])


def detect_record(model: Any, signal: RecordSignal) -> np.ndarray:
    """Beat indices (int64, on the record's clock) of the model's pipeline over ``signal``."""
    model_fs = float(model.fs)
    if not (math.isfinite(signal.fs) and signal.fs > 0):
        raise InvalidInputError(f"{signal.name}: expected a positive sample rate, got {signal.fs}")
    x = signal.samples[:, None]
    if abs(signal.fs - model_fs) > 1e-9 * model_fs:
        x = StreamResampler.from_rates(signal.fs, model_fs).process(x)
    stepper = model.stepper(dtype="float32")
    scores = stepper.step_chunk(np.ascontiguousarray(x, dtype=np.float32))[:, 0]
    detector = BeatDetector(
        model_fs,
        threshold=float(model.metadata.get("threshold", 0.5)),
        refractory_s=float(model.metadata.get("refractory_s", 0.25)),
    )
    events = detector.update(scores, first_index=0) + detector.flush()
    at_model_rate = np.array([e.index for e in events], dtype=np.float64)
    return signal.first + np.round(at_model_rate * signal.fs / model_fs).astype(np.int64)
