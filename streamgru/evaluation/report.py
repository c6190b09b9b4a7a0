"""The ``streamgru score`` table and JSON document."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .bxb import RecordScore, ScoreSettings, Totals

_HEADER = (
    f"{'record':<18} {'fs':>6} {'beats':>6} {'TP':>6} {'FN':>5} {'FP':>5} "
    f"{'Se':>7} {'+P':>7} {'F1':>7} {'skip s':>6} {'delay ms':>8}"
)


def _pct(value: float) -> str:
    return "    n/a" if math.isnan(value) else f"{100 * value:6.2f}%"


def _ms(value: float) -> str:
    return "     n/a" if math.isnan(value) else f"{value:8.1f}"


def format_table(scores: Sequence[RecordScore], total: Totals) -> str:
    """One row per record, then the gross and average rows (rates in percent)."""
    lines = [_HEADER, "-" * len(_HEADER)]
    for s in scores:
        lines.append(
            f"{s.record[:18]:<18} {s.fs:>6g} {s.n_reference:>6} {s.tp:>6} {s.fn:>5} {s.fp:>5} "
            f"{_pct(s.sensitivity)} {_pct(s.ppv)} {_pct(s.f1)} {s.skipped_s:>6g} "
            f"{_ms(s.delay_ms_median)}"
        )
    lines.append("-" * len(_HEADER))
    beats = sum(s.n_reference for s in scores)
    lines.append(
        f"{'gross':<18} {'':>6} {beats:>6} {total.tp:>6} {total.fn:>5} {total.fp:>5} "
        f"{_pct(total.gross_sensitivity)} {_pct(total.gross_ppv)} {_pct(total.gross_f1)}"
    )
    lines.append(
        f"{'average':<18} {'':>6} {'':>6} {'':>6} {'':>5} {'':>5} "
        f"{_pct(total.average_sensitivity)} {_pct(total.average_ppv)} {_pct(total.average_f1)}"
    )
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    """NaN -> None, so the JSON document is standard JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def to_document(
    scores: Sequence[RecordScore],
    total: Totals,
    settings: ScoreSettings,
    context: dict[str, Any],
) -> dict[str, Any]:
    """The JSON document: settings, ``context`` (model, channel...), records and totals."""
    return _clean(
        {
            "settings": {
                "window_ms": settings.window_s * 1e3,
                "skip_first": settings.skip_first,
                "settle_s": settings.settle_s,
                **context,
            },
            "records": [s.to_dict() for s in scores],
            "totals": total.to_dict(),
        }
    )
