"""Beat-by-beat comparison as WFDB's ``bxb`` and ANSI/AAMI EC57 do it (pure numpy).

Rules (``docs/scoring.md`` gives the reasoning):

1. **Matching**: a reference beat and a detection match when they lie within the match window
   (150 ms by default, EC57's) of each other. Matching is one-to-one and nearest first: all
   candidate pairs within the window are taken in order of distance (ties: earlier reference
   first), and a pair is accepted when neither side is matched yet. Matching runs over the whole
   record, so a beat just outside the scored interval can still claim its detection.
2. **Scored interval** ``[start, end)``: a matched pair counts as a true positive when its
   *reference* beat lies in it; an unmatched reference beat in it is a false negative; an
   unmatched detection in it is a false positive. Pairs whose reference lies outside count for
   nothing (a detection at the interval's edge paired with a beat outside is not an FP).
3. **The first 5 minutes** of each record are excluded when EC57 asks for it (records of at
   least :data:`EC57_MIN_RECORD_S`; ``skip_first="auto"``), otherwise only ``settle_s`` (the
   filter and the GRU settling after a cold start) is left out.
4. **End of record**: unmatched beats and detections within one match window of the end of the
   data are not counted: their partner could have fallen after the data ended.
5. ``Se = TP / (TP + FN)``, ``+P = TP / (TP + FP)``, ``F1 = 2 TP / (2 TP + FP + FN)``; **gross**
   statistics sum the counts over records, then divide; **average** statistics are the means of
   the per-record ratios (records where a ratio is undefined are left out of that mean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError

#: EC57 excludes the first five minutes of each record from the statistics.
EC57_SKIP_S = 300.0
#: ``skip_first="auto"`` applies the five-minute rule only to records at least this long.
EC57_MIN_RECORD_S = 600.0
_SKIP_MODES = ("auto", "yes", "no")


@dataclass(frozen=True)
class ScoreSettings:
    """How a record is scored.

    Attributes
    ----------
    window_s : match window in seconds (EC57: 0.150)
    skip_first : "auto" (five minutes on records >= 10 min), "yes" (always), "no" (never)
    settle_s : seconds left out at the start when the five-minute rule does not apply
    """

    window_s: float = 0.150
    skip_first: str = "auto"
    settle_s: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.window_s) and self.window_s > 0):
            raise InvalidInputError(f"window: expected a positive time, got {self.window_s} s")
        if self.skip_first not in _SKIP_MODES:
            raise InvalidInputError(
                f"skip_first: expected one of {_SKIP_MODES}, got {self.skip_first!r}"
            )
        if not (math.isfinite(self.settle_s) and self.settle_s >= 0):
            raise InvalidInputError(f"settle: expected a time >= 0, got {self.settle_s} s")

    def skipped_s(self, duration_s: float) -> float:
        """Seconds excluded at the start of a record lasting ``duration_s``."""
        if self.skip_first == "yes" or (
            self.skip_first == "auto" and duration_s >= EC57_MIN_RECORD_S
        ):
            return EC57_SKIP_S
        return self.settle_s


@dataclass(frozen=True)
class RecordScore:
    """The comparison of one record. Rates are NaN where undefined (no beats / no detections).

    ``n_reference`` is the number of reference beats scored (``tp + fn``).
    """

    record: str
    fs: float
    n_reference: int
    tp: int
    fn: int
    fp: int
    skipped_s: float
    ec57_skip: bool
    delay_ms_median: float

    @property
    def sensitivity(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def ppv(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def f1(self) -> float:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(sensitivity=self.sensitivity, ppv=self.ppv, f1=self.f1)
        return out


@dataclass(frozen=True)
class Totals:
    """Gross (pooled counts) and average (mean of per-record ratios) statistics."""

    n_records: int
    tp: int
    fn: int
    fp: int
    gross_sensitivity: float
    gross_ppv: float
    gross_f1: float
    average_sensitivity: float
    average_ppv: float
    average_f1: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def _indices(name: str, values: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidInputError(f"{name}: expected a 1-D array of sample indices, got {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise InvalidInputError(f"{name}: expected integer sample indices, got {arr.dtype}")
    return np.sort(arr.astype(np.int64), kind="stable")


def match_nearest(
    reference: np.ndarray, detected: np.ndarray, window: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one, nearest-first matching within ``window`` samples.

    Parameters
    ----------
    reference, detected : (n,), (m,) int64, sorted sample indices
    window : float, the match window in samples (inclusive)

    Returns
    -------
    (ref_match, det_match) : (n,), (m,) int64: the index of the partner in the other array, or -1
    """
    ref_match = np.full(reference.size, -1, dtype=np.int64)
    det_match = np.full(detected.size, -1, dtype=np.int64)
    if not reference.size or not detected.size:
        return ref_match, det_match
    lo = np.searchsorted(detected, reference - window, side="left")
    hi = np.searchsorted(detected, reference + window, side="right")
    counts = hi - lo
    ri = np.repeat(np.arange(reference.size), counts)
    starts = np.repeat(lo - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    di = np.arange(ri.size) + starts
    dist = np.abs(detected[di] - reference[ri])
    for k in np.lexsort((ri, dist)).tolist():  # by distance, then earlier reference
        r, d = int(ri[k]), int(di[k])
        if ref_match[r] < 0 and det_match[d] < 0:
            ref_match[r], det_match[d] = d, r
    return ref_match, det_match


def score_beats(
    reference: Sequence[int] | np.ndarray,
    detected: Sequence[int] | np.ndarray,
    fs: float,
    n_samples: int,
    settings: ScoreSettings | None = None,
    record: str = "",
) -> RecordScore:
    """Score detections against reference beats of one record.

    Parameters
    ----------
    reference, detected : sample indices (int) at ``fs``, any order
    fs : sample rate in Hz of both
    n_samples : length of the record's data in samples (the end for rule 4)
    settings : window and exclusions (:class:`ScoreSettings`)
    record : the record's name, for the report
    """
    settings = settings or ScoreSettings()
    if not (math.isfinite(fs) and fs > 0):
        raise InvalidInputError(f"fs: expected a positive sample rate in Hz, got {fs}")
    if n_samples < 0:
        raise InvalidInputError(f"n_samples: expected >= 0, got {n_samples}")
    ref = _indices("reference", reference)
    det = _indices("detected", detected)
    window = settings.window_s * fs
    ref_match, det_match = match_nearest(ref, det, window)
    skipped = settings.skipped_s(n_samples / fs)
    start = skipped * fs
    end = float(n_samples)
    in_ref = (ref >= start) & (ref < end)
    in_det = (det >= start) & (det < end)
    near_end_ref = ref > end - window
    near_end_det = det > end - window
    tp_mask = in_ref & (ref_match >= 0)
    tp = int(np.count_nonzero(tp_mask))
    fn = int(np.count_nonzero(in_ref & (ref_match < 0) & ~near_end_ref))
    fp = int(np.count_nonzero(in_det & (det_match < 0) & ~near_end_det))
    delays = (det[ref_match[tp_mask]] - ref[tp_mask]) / fs * 1e3
    return RecordScore(
        record=record,
        fs=float(fs),
        n_reference=tp + fn,
        tp=tp,
        fn=fn,
        fp=fp,
        skipped_s=float(skipped),
        ec57_skip=skipped == EC57_SKIP_S,
        delay_ms_median=float(np.median(delays)) if delays.size else float("nan"),
    )


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def totals(scores: Sequence[RecordScore]) -> Totals:
    """Gross and average statistics over records."""
    tp = sum(s.tp for s in scores)
    fn = sum(s.fn for s in scores)
    fp = sum(s.fp for s in scores)
    return Totals(
        n_records=len(scores),
        tp=tp,
        fn=fn,
        fp=fp,
        gross_sensitivity=_ratio(tp, tp + fn),
        gross_ppv=_ratio(tp, tp + fp),
        gross_f1=_ratio(2 * tp, 2 * tp + fp + fn),
        average_sensitivity=_mean([s.sensitivity for s in scores]),
        average_ppv=_mean([s.ppv for s in scores]),
        average_f1=_mean([s.f1 for s in scores]),
    )
