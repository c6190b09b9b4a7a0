"""The model card's held-out table from ``streamgru score --json`` output.

Usage: ``python weights/score_table.py build/ecg-heldout.json`` prints a Markdown table, one row
per condition (the record name before its last ``_``) and one column per sample rate; each cell
is ``Se / +P (TP, FP, FN)``; then the gross and average rows.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

RATES = (250, 360, 500, 1000)


def _cell(row: dict) -> str:
    se = "n/a" if row["sensitivity"] is None else f"{row['sensitivity']:.4f}"
    ppv = "n/a" if row["ppv"] is None else f"{row['ppv']:.4f}"
    return f"{se} / {ppv} ({row['tp']}, {row['fp']}, {row['fn']})"


def main(path: str) -> None:
    with open(path, encoding="utf-8") as handle:
        doc = json.load(handle)
    table: dict[str, dict[int, str]] = defaultdict(dict)
    for row in doc["records"]:
        name, _, rate = row["record"].rpartition("_")
        if rate.isdigit() and int(rate) in RATES:
            table[name][int(rate)] = _cell(row)
        else:  # a real record, at its own rate
            table[row["record"]][int(row["fs"])] = _cell(row)
    print("| record / condition | " + " | ".join(f"{r} Hz" for r in RATES) + " |")
    print("|---|" + "---|" * len(RATES))
    for name in sorted(table, key=lambda n: (n.startswith("100"), n)):
        print(f"| `{name}` | " + " | ".join(table[name].get(r, "–") for r in RATES) + " |")
    t = doc["totals"]
    print(
        f"| **gross** ({t['n_records']} records) | {t['gross_sensitivity']:.4f} / "
        f"{t['gross_ppv']:.4f} ({t['tp']}, {t['fp']}, {t['fn']}) | | | |"
    )
    print(
        f"| **average** (per-record mean) | {t['average_sensitivity']:.4f} / "
        f"{t['average_ppv']:.4f} | | | |"
    )


if __name__ == "__main__":
    main(sys.argv[1])
