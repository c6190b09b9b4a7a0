"""``streamgru score``: score a model's beats on WFDB records, or any detector's CSV."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StreamgruError
from .annotations import read_csv_beats, read_wfdb_beats
from .bxb import RecordScore, ScoreSettings, score_beats, totals
from .report import format_table, to_document
from .run import detect_record, read_record

#: Exit status for unreadable or malformed inputs (sysexits.h EX_DATAERR).
EX_DATAERR = 65


@dataclass(frozen=True)
class ScoreRequest:
    """What ``streamgru score`` was asked (see ``streamgru score --help``)."""

    model: str | None
    records: tuple[str, ...]
    settings: ScoreSettings
    channel: str | None = None
    annotation: str = "atr"
    reference_csv: str | None = None
    detections_csv: str | None = None
    fs: float | None = None
    span: tuple[int | None, int | None] = (None, None)
    json_path: str | None = None


def _score_records(request: ScoreRequest) -> tuple[list[RecordScore], dict[str, Any]]:
    from .. import load_model

    model = load_model(request.model)
    scores: list[RecordScore] = []
    channels: list[str] = []
    for record in request.records:
        signal = read_record(record, request.channel, request.span, model)
        if request.reference_csv:
            reference, _ = read_csv_beats(request.reference_csv)
        else:
            reference, _ = read_wfdb_beats(record, request.annotation)
        n = signal.samples.size
        reference = reference[(reference >= signal.first) & (reference < signal.first + n)]
        detected = detect_record(model, signal)
        scores.append(
            score_beats(
                reference - signal.first,
                detected - signal.first,
                signal.fs,
                n,
                request.settings,
                record=signal.name,
            )
        )
        channels.append(signal.channel)
    context = {
        "model": str(request.model),
        "model_checksum": model.checksum(),
        "model_fs": float(model.fs),
        "channels": channels,
        "span": list(request.span),
    }
    return scores, context


def _score_detections(request: ScoreRequest) -> tuple[list[RecordScore], dict[str, Any]]:
    assert request.detections_csv and request.reference_csv and request.fs
    detected, _ = read_csv_beats(request.detections_csv)
    reference, _ = read_csv_beats(request.reference_csv)
    last = max(int(detected.max(initial=0)), int(reference.max(initial=0))) + 1
    n = last if request.span[1] is None else int(request.span[1])
    score = score_beats(
        reference, detected, request.fs, n, request.settings, Path(request.detections_csv).stem
    )
    return [score], {"detections": request.detections_csv, "reference": request.reference_csv}


def score_command(request: ScoreRequest) -> int:
    """Run the scoring, print the table, write the JSON; returns the exit status."""
    try:
        if request.detections_csv:
            scores, context = _score_detections(request)
        else:
            scores, context = _score_records(request)
    except StreamgruError as exc:
        print(f"streamgru score: error: {exc}", file=sys.stderr)
        return EX_DATAERR
    total = totals(scores)
    print(format_table(scores, total))
    if any(s.ec57_skip for s in scores):
        print("first 5 minutes excluded (ANSI/AAMI EC57) on records of 10 minutes or more")
    if request.json_path:
        document = to_document(scores, total, request.settings, context)
        Path(request.json_path).write_text(
            json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
    return 0


def detections_only_ready(values: dict[str, Any]) -> str | None:
    """The usage problem with a detections-only request, or None when it is complete."""
    missing = [k for k in ("reference", "fs") if values.get(k) is None]
    if missing:
        return "--detections needs " + " and ".join(f"--{k}" for k in missing)
    fs = float(values["fs"])
    if not np.isfinite(fs) or fs <= 0:
        return f"--fs: expected a positive sample rate in Hz, got {values['fs']}"
    return None
