"""Artefacts added to a raw ECG lead (mV) before the filter chain, at the signal's own rate.

Every function returns ``(n,) float64`` mV and draws only from the ``numpy.random.Generator``
it is given. :func:`random_augment` is the training mix; the held-out conditions call the
single artefacts with fixed sizes.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal


def baseline_wander(n: int, fs: float, rng: np.random.Generator, amp: float) -> np.ndarray:
    """1-3 sines of 0.05-0.5 Hz (respiration, movement), each up to ``amp`` mV."""
    t = np.arange(n) / fs
    out = np.zeros(n)
    for _ in range(int(rng.integers(1, 4))):
        f = rng.uniform(0.05, 0.5)
        out += rng.uniform(0.3, 1.0) * amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3))
    return out


def emg_noise(n: int, fs: float, rng: np.random.Generator, rms: float) -> np.ndarray:
    """Muscle noise: 20-150 Hz (capped below Nyquist) noise in bursts, ``rms`` mV at full
    envelope."""
    hi = min(150.0, 0.45 * fs)
    sos = scipy.signal.butter(2, [20.0, hi], "bandpass", output="sos", fs=fs)
    pad = int(fs)
    w = scipy.signal.sosfilt(sos, rng.standard_normal(n + pad))[pad:]
    w /= w.std() + 1e-12
    t = np.arange(n) / fs
    env = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t + rng.uniform(0, 6.3))
    return rms * w * env**0.5


def electrode_motion(
    n: int, fs: float, rng: np.random.Generator, amp: float, per_min: float
) -> np.ndarray:
    """Electrode-motion artefacts: low-frequency bumps (0.1-0.5 s wide), smoothed steps that
    decay (rise 50-300 ms, decay 0.3-3 s) and 1-4 Hz wobbles, ``per_min`` events a minute,
    each up to ``amp`` mV."""
    t = np.arange(n) / fs
    out = np.zeros(n)
    n_ev = int(rng.poisson(per_min * n / fs / 60.0))
    for _ in range(n_ev):
        t0 = rng.uniform(0, n / fs)
        a = amp * rng.uniform(0.3, 1.0) * (1.0 if rng.random() < 0.5 else -1.0)
        kind = rng.integers(3)
        if kind == 0:
            out += a * np.exp(-0.5 * ((t - t0) / rng.uniform(0.1, 0.5)) ** 2)
        elif kind == 1:
            rise = rng.uniform(0.05, 0.3)
            step = 1.0 / (1.0 + np.exp(-np.clip((t - t0) / (rise / 4), -50, 50)))
            out += a * step * np.exp(-np.clip(t - t0, 0, None) / rng.uniform(0.3, 3.0))
        else:
            dur = rng.uniform(0.5, 2.0)
            env = np.exp(-0.5 * ((t - t0) / (dur / 2)) ** 2)
            out += a * env * np.sin(2 * np.pi * rng.uniform(1.0, 4.0) * (t - t0))
    return out


def mains_hum(n: int, fs: float, rng: np.random.Generator, freq: float, amp: float) -> np.ndarray:
    """A mains sine of ``freq`` Hz and ``amp`` mV (aliased as a real ADC would at low rates)."""
    t = np.arange(n) / fs
    return amp * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))


def white_noise(n: int, rng: np.random.Generator, rms: float) -> np.ndarray:
    return rng.normal(0.0, rms, n)


def random_augment(seg: np.ndarray, fs: float, rng: np.random.Generator) -> np.ndarray:
    """The training mix of artefacts on a raw segment (mV) at ``fs``: each with some chance,
    at random sizes; about a quarter of segments get none."""
    n = seg.size
    out = np.array(seg, dtype=np.float64)
    if rng.random() < 0.25:
        return out
    if rng.random() < 0.6:
        out += baseline_wander(n, fs, rng, rng.uniform(0.1, 1.5))
    if rng.random() < 0.35:
        out += white_noise(n, rng, math.exp(rng.uniform(math.log(0.003), math.log(0.08))))
    if rng.random() < 0.35:
        out += emg_noise(n, fs, rng, math.exp(rng.uniform(math.log(0.01), math.log(0.15))))
    if rng.random() < 0.3:
        out += electrode_motion(n, fs, rng, rng.uniform(0.2, 2.0), rng.uniform(5, 30))
    if rng.random() < 0.3:
        freq = 50.0 if rng.random() < 0.5 else 60.0
        out += mains_hum(n, fs, rng, freq, rng.uniform(0.02, 0.3))
    return out
