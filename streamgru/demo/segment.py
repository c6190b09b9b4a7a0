"""Which part of record 100 the demo replays, and what that part is to the model.

A trained model's metadata says which samples of which record it learned from
(``trained_on``: ``{"record": "100", "train_samples": [a, b], "held_out_samples": [c, d]}``,
written by ``weights/train_ecg_beats.py``). The demo replays the held-out part by default, so its
scores are scores on ECG the model never saw, and labels any other range by what it is:

* ``held-out segment``: wholly inside ``held_out_samples``;
* ``training segment``: overlapping ``train_samples`` (a score there is a training-set score);
* ``segment``: anything else (outside both ranges, or a model whose metadata names neither).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import StreamgruError

#: The record the demo replays (shipped in ``streamgru/data/mitdb``).
RECORD = "100"


@dataclass(frozen=True)
class Segment:
    """A range of record samples to replay, and what it is to the model.

    Attributes
    ----------
    start, stop : record sample indices, [start, stop) (int)
    kind : "held-out", "training" or "other"
    note : why the range was chosen, or what is unknown about it ("" when nothing)
    """

    start: int
    stop: int
    kind: str
    note: str = ""

    @property
    def label(self) -> str:
        """``"held-out segment"``, ``"training segment"`` or ``"segment"``."""
        return {"held-out": "held-out segment", "training": "training segment"}.get(
            self.kind, "segment"
        )

    def describe(self, fs: float) -> str:
        """``"held-out segment, samples 542000..650000 (25:05.6-30:05.6)"``."""
        return (
            f"{self.label}, samples {self.start}..{self.stop} "
            f"({clock(self.start / fs)}-{clock(self.stop / fs)})"
        )


def clock(seconds: float) -> str:
    """``mm:ss.s`` of a time in the record."""
    return f"{int(seconds // 60):02d}:{seconds % 60:04.1f}"


def model_ranges(model_path: Path) -> dict[str, tuple[int, int]]:
    """``{"training": (a, b), "held-out": (c, d)}`` from the model's ``trained_on`` metadata,
    for record 100 only; keys are missing where the metadata does not name them."""
    from ..model.formats import load_model

    trained_on = load_model(model_path).meta_json("trained_on")
    if not isinstance(trained_on, dict) or str(trained_on.get("record", "")) != RECORD:
        return {}
    out = {}
    for kind, key in (("training", "train_samples"), ("held-out", "held_out_samples")):
        value = trained_on.get(key)
        if isinstance(value, list | tuple) and len(value) == 2:
            a, b = int(value[0]), int(value[1])
            if 0 <= a < b:
                out[kind] = (a, b)
    return out


def choose_segment(
    model_path: Path,
    n_samples: int,
    segment: str = "held-out",
    start: int | None = None,
    stop: int | None = None,
) -> Segment:
    """The range to replay: ``start``/``stop`` when given, else the model's ``segment``
    ("held-out" or "training") from its metadata.

    A model that names no such range (the untrained example) replays the record from its start,
    and the note says so. Raises StreamgruError for a range outside the record.
    """
    if segment not in ("held-out", "training"):
        raise StreamgruError(f"--segment: expected 'held-out' or 'training', got {segment!r}")
    ranges = model_ranges(model_path)
    note = ""
    if start is not None or stop is not None:
        a = 0 if start is None else int(start)
        b = n_samples if stop is None else int(stop)
        note = "chosen with --from/--to"
    elif segment in ranges:
        a, b = ranges[segment]
        note = f"the model's {'held_out_samples' if segment == 'held-out' else 'train_samples'}"
    else:
        key = "held_out_samples" if segment == "held-out" else "train_samples"
        a, b = 0, n_samples
        note = (
            f"the model's metadata names no {key} of record {RECORD} (trained_on): replaying "
            "from the start, which may be training data; choose a range with --from/--to"
        )
    if not 0 <= a < b <= n_samples:
        raise StreamgruError(
            f"--from/--to: expected 0 <= from < to <= {n_samples} (the record's length), "
            f"got {a} and {b}"
        )
    return Segment(a, b, classify(a, b, ranges), note)


def classify(a: int, b: int, ranges: dict[str, tuple[int, int]]) -> str:
    """What [a, b) is to a model with these ranges: "held-out", "training" or "other"."""
    train = ranges.get("training")
    if train is not None and a < train[1] and train[0] < b:
        return "training"
    held = ranges.get("held-out")
    if held is not None and held[0] <= a and b <= held[1]:
        return "held-out"
    return "other"
