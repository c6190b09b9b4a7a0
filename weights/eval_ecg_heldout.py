"""Score the beat detector on WFDB records through the daemon's pipeline (until, and beside,
``streamgru score``).

Usage (from the repository root)::

    python weights/eval_ecg_heldout.py build/ecg-heldout/*.hea [--model M] [--json OUT]
        [--channel 0] [--skip-s 1.0]

Per record: signal ``--channel`` (mV) -> ``StreamResampler`` to the model's rate (when the
record's rate differs; as ``--resample`` in the daemon) -> ``model.stepper()`` (the model's own
filter chain and normalisation, float32, compiled) -> ``BeatDetector`` with the model's
threshold and refractory -> beat indices mapped back to the record's rate -> one-to-one matching
with the ``.atr`` beat annotations (150 ms, ``pair_beats``). Reference beats and unmatched
detections in the first ``--skip-s`` seconds (cold start) and the last 0.2 s are not scored.
Prints a Markdown table (Se, +P, F1, gross and average totals) and optionally writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BEAT_SYMBOLS = frozenset("NLRAaJSVFejE/fQ")
TAIL_S = 0.2


def detect(model, x: np.ndarray, fs: float) -> np.ndarray:
    """Beat indices (int64, at ``fs``) of the model's pipeline over raw mV ``x`` (n,)."""
    from streamgru.signal.beats import BeatDetector
    from streamgru.signal.resample import StreamResampler

    mfs = float(model.fs)
    xin = np.ascontiguousarray(x, dtype=np.float32)
    if abs(fs - mfs) > 1e-6 * mfs:
        xin = StreamResampler.from_rates(fs, mfs).process(xin[:, None])[:, 0]
    st = model.stepper(dtype="float32", filter="model", normalize=True)
    scores = st.step_chunk(np.ascontiguousarray(xin[:, None], dtype=np.float32))[:, 0]
    det = BeatDetector(
        mfs,
        threshold=float(model.metadata["threshold"]),
        refractory_s=float(model.metadata["refractory_s"]),
    )
    events = det.update(scores, first_index=0) + det.flush()
    idx = np.array([e.index for e in events], dtype=np.float64)
    return np.round(idx * fs / mfs).astype(np.int64)


def score_record(model, hea: str, channel: int = 0, skip_s: float = 1.0) -> dict:
    """Counts and rates of one record (``hea``: path of the header)."""
    import wfdb

    from streamgru.signal.beats import pair_beats

    base = str(Path(hea).with_suffix(""))
    rec = wfdb.rdrecord(base, channels=[channel])
    ann = wfdb.rdann(base, "atr")
    fs = float(rec.fs)
    ref = np.array([s for s, y in zip(ann.sample, ann.symbol) if y in BEAT_SYMBOLS], np.int64)
    det = detect(model, rec.p_signal[:, 0], fs)
    lo, hi = round(skip_s * fs), rec.sig_len - round(TAIL_S * fs)
    d, r = pair_beats(det, ref, fs, 0.150)
    tp = int(((r >= lo) & (r < hi)).sum())
    fn = int(((ref >= lo) & (ref < hi)).sum()) - tp
    stray = np.setdiff1d(det, d)
    fp = int(((stray >= lo) & (stray < hi)).sum())
    se = tp / (tp + fn) if tp + fn else float("nan")
    ppv = tp / (tp + fp) if tp + fp else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return {
        "record": Path(base).name,
        "fs": fs,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "se": se,
        "ppv": ppv,
        "f1": f1,
    }


def totals(rows: list[dict]) -> dict:
    """Gross (pooled counts) and average (mean of per-record rates) statistics."""
    tp, fp, fn = (sum(r[k] for r in rows) for k in ("tp", "fp", "fn"))
    return {
        "gross": {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "se": tp / (tp + fn),
            "ppv": tp / (tp + fp),
            "f1": 2 * tp / (2 * tp + fp + fn),
        },
        "average": {k: float(np.mean([r[k] for r in rows])) for k in ("se", "ppv", "f1")},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("records", nargs="+", help="WFDB headers (.hea)")
    ap.add_argument("--model", default=str(REPO / "weights" / "ecg_beats.safetensors"))
    ap.add_argument("--channel", type=int, default=0)
    ap.add_argument("--skip-s", type=float, default=1.0, help="unscored start (s)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    import streamgru as sg

    model = sg.load_model(args.model)
    rows = [score_record(model, h, args.channel, args.skip_s) for h in args.records]
    print("| record | fs | TP | FP | FN | Se | +P | F1 |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['record']} | {r['fs']:g} | {r['tp']} | {r['fp']} | {r['fn']} | "
            f"{r['se']:.4f} | {r['ppv']:.4f} | {r['f1']:.4f} |"
        )
    tot = totals(rows)
    g, a = tot["gross"], tot["average"]
    print(
        f"| gross | | {g['tp']} | {g['fp']} | {g['fn']} | {g['se']:.4f} | {g['ppv']:.4f} | "
        f"{g['f1']:.4f} |\n| average | | | | | {a['se']:.4f} | {a['ppv']:.4f} | "
        f"{a['f1']:.4f} |"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"records": rows, **tot}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
