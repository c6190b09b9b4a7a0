"""Write the held-out ECG records of the beat detector's model card as WFDB files.

Usage (from the repository root)::

    python weights/make_heldout_ecg.py [OUT_DIR]      # default build/ecg-heldout/

Writes, deterministically (the same files on every run):

* one record per condition x sample rate (250, 360, 500, 1000 Hz), 180 s each, named
  ``<condition>_<rate>`` (e.g. ``pvc_250``): signal ``ECG`` in mV (format 16, 1 uV per unit)
  and beat annotations ``.atr`` with AAMI symbols (``N``, ``V``, ``A``, ``/``, ``L``, ``R``).
  They come from ``ecg_synth`` / ``ecg_noise`` with the held-out seeds
  ``default_rng([HELDOUT_KEY, k])`` and ECGSYN seeds from ``HELDOUT_ECGSYN_SEED0``, which no
  training pool uses (``ecg_dataset``);
* ``100_v5``: all 30 min of MIT-BIH record 100's V5 lead (never trained on), 360 Hz, with the
  record's beat annotations;
* ``100_mlii_heldout``: record 100 MLII samples [542000, 650000) (the held-out part).

``RECORDS`` lists the names in a fixed order; :func:`condition_record` makes one record in memory
(used by the tests).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO, REPO / "weights"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import ecg_dataset  # noqa: E402
import ecg_noise  # noqa: E402
import ecg_synth  # noqa: E402

RATES = (250, 360, 500, 1000)
DURATION_S = 180.0
#: condition name -> (what it is, for the model card)
CONDITIONS = {
    "nsr": "normal sinus rhythm, 55-95 bpm, R 1 mV",
    "pvc": "PVC-rich: isolated, bigeminy, trigeminy, couplets, runs (30 beats each)",
    "paced": "ventricular paced, pacing spike + wide QRS",
    "lbbb": "left-BBB-like broad notched R, discordant T",
    "rbbb": "right-BBB-like rSR'",
    "af": "AF-like irregular RR (80-130 bpm), f-waves, isolated PVCs",
    "tachy": "sinus tachycardia 150-180 bpm",
    "brady": "sinus bradycardia 40-50 bpm",
    "ecgsyn": "neurokit2 ECGSYN, 60-100 bpm, HRV",
    "wander": "normal + baseline wander up to 1 mV (0.05-0.5 Hz)",
    "emg": "normal + muscle noise 0.1 mV rms (20-150 Hz bursts)",
    "motion": "normal + electrode motion (bumps, steps, wobbles up to 1 mV, 12/min)",
    "mains50": "normal + 50 Hz hum 0.2 mV (the chain notches 60 Hz only)",
    "low_amp": "R 0.3 mV + 0.01 mV white noise",
    "high_amp": "R 3 mV",
    "inverted": "inverted lead (negative R)",
}
RECORDS = [f"{c}_{r}" for c in CONDITIONS for r in RATES] + ["100_v5", "100_mlii_heldout"]
BASE_NOISE_MV = 0.005  # every synthetic record: white noise of a quiet front end


def _clean(cond: str, rng: np.random.Generator, fs: float, k: int) -> ecg_synth.SynthRecord:
    d = DURATION_S
    if cond == "pvc":
        return ecg_synth.synth_ecg(rng, fs, d, rng.uniform(60, 90), ectopy="mixed")
    if cond in ("paced", "lbbb", "rbbb"):
        return ecg_synth.synth_ecg(rng, fs, d, rng.uniform(60, 85), conduction=cond)
    if cond == "af":
        return ecg_synth.synth_ecg(
            rng, fs, d, rng.uniform(80, 130), irregular=True, ectopy="isolated"
        )
    if cond == "tachy":
        return ecg_synth.synth_ecg(rng, fs, d, rng.uniform(150, 180))
    if cond == "brady":
        return ecg_synth.synth_ecg(rng, fs, d, rng.uniform(40, 50))
    if cond == "ecgsyn":
        seed = ecg_dataset.HELDOUT_ECGSYN_SEED0 + k
        rec = ecg_synth.ecgsyn_ecg(seed, fs, d, rng.uniform(60, 100), rng.uniform(2, 6))
        return ecg_synth.SynthRecord(rec.signal / 1.2, rec.beats, rec.symbols, fs)  # R 1 mV
    amp = {"low_amp": 0.3, "high_amp": 3.0}.get(cond, 1.0)
    return ecg_synth.synth_ecg(
        rng, fs, d, rng.uniform(55, 95), r_amp_mv=amp, inverted=cond == "inverted"
    )


def condition_record(cond: str, fs: int) -> ecg_synth.SynthRecord:
    """The held-out record ``<cond>_<fs>``: (signal mV at fs, exact labels, symbols)."""
    if cond not in CONDITIONS or fs not in RATES:
        raise ValueError(f"expected a condition in {list(CONDITIONS)} and a rate in {RATES}")
    k = list(CONDITIONS).index(cond) * len(RATES) + RATES.index(fs)
    rng = np.random.default_rng([ecg_dataset.HELDOUT_KEY, k])
    rec = _clean(cond, rng, float(fs), k)
    x = rec.signal.copy()
    n = x.size
    x += ecg_noise.white_noise(n, rng, BASE_NOISE_MV)
    if cond == "wander":
        x += ecg_noise.baseline_wander(n, fs, rng, 1.0)
    elif cond == "emg":
        x += ecg_noise.emg_noise(n, fs, rng, 0.1)
    elif cond == "motion":
        x += ecg_noise.electrode_motion(n, fs, rng, 1.0, 12.0)
    elif cond == "mains50":
        x += ecg_noise.mains_hum(n, fs, rng, 50.0, 0.2)
    elif cond == "low_amp":
        x += ecg_noise.white_noise(n, rng, 0.01)
    return ecg_synth.SynthRecord(x, rec.beats, rec.symbols, float(fs))


def write_record(name: str, rec: ecg_synth.SynthRecord, sig_name: str, out: Path) -> None:
    """One WFDB record (format 16, gain 1000/mV) and its ``.atr`` beat annotations."""
    import wfdb

    sig = np.round(rec.signal * 1000.0) / 1000.0
    wfdb.wrsamp(
        name,
        fs=rec.fs,
        units=["mV"],
        sig_name=[sig_name],
        p_signal=sig[:, None],
        fmt=["16"],
        adc_gain=[1000.0],
        baseline=[0],
        write_dir=str(out),
    )
    beats = np.asarray(rec.beats, dtype=np.int64)
    wfdb.wrann(name, "atr", beats, symbol=list(rec.symbols), write_dir=str(out))


def record100(channel: int, lo: int, hi: int) -> ecg_synth.SynthRecord:
    """Samples [lo, hi) of record 100's signal ``channel`` and its beat annotations."""
    import wfdb
    from train_ecg_beats import BEAT_SYMBOLS, record_path

    path = str(record_path())
    r = wfdb.rdrecord(path, channels=[channel], sampfrom=lo, sampto=hi)
    ann = wfdb.rdann(path, "atr", sampfrom=lo, sampto=hi)
    keep = [i for i, s in enumerate(ann.symbol) if s in BEAT_SYMBOLS]
    beats = np.array([ann.sample[i] - lo for i in keep], dtype=np.int64)
    return ecg_synth.SynthRecord(
        r.p_signal[:, 0].astype(np.float64), beats, [ann.symbol[i] for i in keep], float(r.fs)
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default="build/ecg-heldout", help="output directory")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for cond in CONDITIONS:
        for fs in RATES:
            write_record(f"{cond}_{fs}", condition_record(cond, fs), "ECG", out)
    from train_ecg_beats import HELD_OUT, N_SAMPLES

    write_record("100_v5", record100(1, 0, N_SAMPLES), "V5", out)
    write_record("100_mlii_heldout", record100(0, *HELD_OUT), "MLII", out)
    print(f"wrote {len(RECORDS)} records to {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
