"""Training pools of synthetic ECG and their windows at the model's 360 Hz.

A pool is a list of clean :class:`ecg_synth.SynthRecord` at their native rates (250, 360, 500
or 1000 Hz). A training window is cut at the native rate, gets its artefacts there
(:func:`ecg_noise.random_augment`), and reaches 360 Hz through ``resample_poly``, whose output
equals what the package's streaming resampler (``streamgru.signal.resample.StreamResampler``,
the daemon's ``--resample``) gives for the same input.

Seeds: the training pools use ``numpy.random.default_rng([POOL_KEY, i])`` (own synthesiser)
and ECGSYN seeds ``ECGSYN_SEED0 + i``; the held-out records (``make_heldout_ecg.py``) use
``default_rng([HELDOUT_KEY, i])`` and ECGSYN seeds from ``HELDOUT_ECGSYN_SEED0``: disjoint by
construction.
"""

from __future__ import annotations

import math
from fractions import Fraction

import ecg_noise
import ecg_synth
import numpy as np
import scipy.signal

MODEL_FS = 360.0
POOL_KEY = 1
HELDOUT_KEY = 2
ECGSYN_SEED0 = 10_000
HELDOUT_ECGSYN_SEED0 = 900_000
NATIVE_RATES = (250.0, 360.0, 500.0, 1000.0)
RATE_P = (0.2, 0.4, 0.2, 0.2)


def ratio(fs: float, to: float = MODEL_FS) -> tuple[int, int]:
    """(up, down) in lowest terms taking ``fs`` to ``to``."""
    f = Fraction(to).limit_denominator(1000) / Fraction(fs).limit_denominator(1000)
    return f.numerator, f.denominator


def to_model_rate(seg: np.ndarray, fs: float) -> np.ndarray:
    """``seg`` (n,) at ``fs`` resampled to 360 Hz (``resample_poly``, edge padding as the
    streaming resampler's steady start)."""
    up, down = ratio(fs)
    if up == down:
        return np.asarray(seg, dtype=np.float64)
    return scipy.signal.resample_poly(seg, up, down, padtype="edge")


def synth_pool(n: int, duration_s: float) -> list[ecg_synth.SynthRecord]:
    """``n`` records of the own synthesiser with random settings, training seeds."""
    out = []
    for i in range(n):
        rng = np.random.default_rng([POOL_KEY, i])
        fs = float(rng.choice(NATIVE_RATES, p=RATE_P))
        out.append(ecg_synth.random_synth(rng, fs, duration_s))
    return out


def ecgsyn_pool(n: int, duration_s: float) -> list[ecg_synth.SynthRecord]:
    """``n`` neurokit2 ECGSYN records (45-150 bpm, HRV std 1-8 bpm), training seeds."""
    out = []
    for i in range(n):
        rng = np.random.default_rng([POOL_KEY, 100_000 + i])
        fs = float(rng.choice(NATIVE_RATES, p=RATE_P))
        hr, hr_std = rng.uniform(45, 150), rng.uniform(1, 8)
        out.append(ecg_synth.ecgsyn_ecg(ECGSYN_SEED0 + i, fs, duration_s, hr, hr_std))
    return out


def pool_window(
    rec: ecg_synth.SynthRecord,
    rng: np.random.Generator,
    win: int,
    margin: int,
    gain: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A random window of ``rec`` at 360 Hz with artefacts added at its native rate.

    Returns the raw window (win,) float64 mV and the beat positions in its indexing (float, may
    lie outside [0, win)).
    """
    fs = rec.fs
    n_nat = math.ceil((win + 2 * margin) * fs / MODEL_FS) + 4
    st = int(rng.integers(0, rec.signal.size - n_nat))
    seg = rec.signal[st : st + n_nat] * gain
    seg = ecg_noise.random_augment(seg, fs, rng)
    pos = (rec.beats[(rec.beats >= st - 50) & (rec.beats < st + n_nat + 50)] - st) * (MODEL_FS / fs)
    seg = to_model_rate(seg, fs)[margin : margin + win]
    return seg, pos - margin
