"""Beat-by-beat scoring of detections against reference annotations (``streamgru score``).

* :mod:`.annotations`: reference beats from WFDB annotation files or CSV files;
* :mod:`.bxb`: WFDB ``bxb`` / ANSI/AAMI EC57 matching and statistics (pure numpy);
* :mod:`.run`: a WFDB record through the daemon's pipeline (resampler, the model's filter chain
  and normalisation, the GRU, :class:`~streamgru.signal.beats.BeatDetector`);
* :mod:`.report`: the printed table and the JSON document.

See ``docs/scoring.md`` for the rules and how they relate to ``bxb`` and EC57.
"""

from .annotations import BEAT_SYMBOLS, AnnotationError, read_csv_beats, read_wfdb_beats
from .bxb import RecordScore, ScoreSettings, Totals, match_nearest, score_beats, totals

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
