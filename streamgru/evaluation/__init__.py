"""Beat-by-beat scoring of detections against reference annotations (``streamgru score``).

* :mod:`.annotations`: reference beats from WFDB annotation files or CSV files;
* :mod:`.bxb`: WFDB ``bxb`` / ANSI/AAMI EC57 matching and statistics (pure numpy);
* :mod:`.run`: a WFDB record through the daemon's pipeline (resampler, the model's filter chain
  and normalisation, the GRU, :class:`~streamgru.signal.beats.BeatDetector`);
* :mod:`.report`: the printed table and the JSON document.

See ``docs/scoring.md`` for the rules and how they relate to ``bxb`` and EC57.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import lazy_attribute

if TYPE_CHECKING:  # pragma: no cover - imported lazily below (the command line stays light)
    from .annotations import BEAT_SYMBOLS, AnnotationError, read_csv_beats, read_wfdb_beats
    from .bxb import RecordScore, ScoreSettings, Totals, match_nearest, score_beats, totals

_LAZY = {
    **dict.fromkeys(
        ("BEAT_SYMBOLS", "AnnotationError", "read_csv_beats", "read_wfdb_beats"), ".annotations"
    ),
    **dict.fromkeys(
        ("RecordScore", "ScoreSettings", "Totals", "match_nearest", "score_beats", "totals"), ".bxb"
    ),
}

__all__ = [
    "BEAT_SYMBOLS",
    "AnnotationError",
    "RecordScore",
    "ScoreSettings",
    "Totals",
    "match_nearest",
    "read_csv_beats",
    "read_wfdb_beats",
    "score_beats",
    "totals",
]


def __getattr__(name: str) -> Any:
    """The names of ``__all__``, imported on first use."""
    return lazy_attribute(__name__, _LAZY, globals(), name)
