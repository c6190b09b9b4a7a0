"""Synthetic ECG with exact beat labels, for training and testing the beat detector.

Two generators, both deterministic from a ``numpy.random.Generator``:

* :func:`synth_ecg`: a sum-of-Gaussians beat model (P, Q, R, S, T waves as in ECGSYN, evaluated
  directly at the requested sample rate) with normal beats, premature ventricular beats (no P
  wave, wide QRS, large discordant T, compensatory pause; isolated, bigeminy, trigeminy,
  couplets, runs), premature atrial beats, paced beats (pacing spike + wide QRS), left / right
  bundle-branch-block-like wide notched QRS, sinus rhythm with heart-rate variability or an
  AF-like irregular rhythm with fibrillatory waves, 40-180 bpm. The label of each beat is the
  sample of the largest absolute value of its QRS waves alone, so it is exact by construction.
* :func:`ecgsyn_ecg`: neurokit2's ``ecg_simulate`` (ECGSYN, McSharry et al. 2003; MIT licence),
  whose R peaks are not returned: they are located as the local maxima of the clean signal
  (one per expected beat, refined to the exact sample).

Additive artefacts for the raw signal before the filter chain live in :mod:`ecg_noise`.

All signals are ``(n,) float64`` in mV; labels are ``(k,) int64`` sample indices with one AAMI
beat symbol each (``N``, ``V``, ``A``, ``/``, ``L``, ``R``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: conduction types of the supraventricular beats of a record
CONDUCTIONS = ("normal", "lbbb", "rbbb", "paced")
#: ventricular ectopy patterns
ECTOPY = ("none", "isolated", "bigeminy", "trigeminy", "couplets", "runs")
#: AAMI symbol of the conducted beats per conduction type
CONDUCTED_SYMBOL = {"normal": "N", "lbbb": "L", "rbbb": "R", "paced": "/"}


@dataclass(frozen=True)
class Beat:
    """One beat template: Gaussian waves (amplitude mV, centre s from the fiducial, width s)."""

    amp: np.ndarray  # (w,) float64
    centre: np.ndarray  # (w,) float64, seconds relative to the beat time
    width: np.ndarray  # (w,) float64, seconds (Gaussian sigma)
    qrs: np.ndarray  # (w,) bool: which waves form the QRS complex (the label's support)
    t_scales: np.ndarray  # (w,) bool: waves whose position scales with sqrt(RR) (the T wave)


@dataclass(frozen=True)
class SynthRecord:
    """A synthetic record: ``signal`` (n,) float64 mV at ``fs``, ``beats`` (k,) int64 sample
    indices, ``symbols`` one AAMI symbol per beat."""

    signal: np.ndarray
    beats: np.ndarray
    symbols: list[str]
    fs: float


def _beat(waves: list[tuple[float, float, float, bool, bool]]) -> Beat:
    a = np.array(waves, dtype=np.float64)
    return Beat(a[:, 0], a[:, 1], a[:, 2], a[:, 3].astype(bool), a[:, 4].astype(bool))


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def normal_template(rng: np.random.Generator, p_wave: bool = True) -> Beat:
    """A narrow-QRS beat (R height 1): P, Q, R, S, T with random sizes and timing."""
    sign_t = 1.0 if rng.random() < 0.9 else -1.0
    waves = [
        (-_u(rng, 0.02, 0.25), -_u(rng, 0.018, 0.026), _u(rng, 0.006, 0.010), True, False),
        (1.0, 0.0, _u(rng, 0.007, 0.013), True, False),
        (-_u(rng, 0.05, 0.45), _u(rng, 0.02, 0.03), _u(rng, 0.007, 0.012), True, False),
        (sign_t * _u(rng, 0.1, 0.45), _u(rng, 0.22, 0.30), _u(rng, 0.035, 0.06), False, True),
    ]
    if p_wave:
        waves.insert(0, (_u(rng, 0.05, 0.25), -_u(rng, 0.14, 0.20), _u(rng, 0.015, 0.03), 0, 0))
    return _beat(waves)


def pvc_template(rng: np.random.Generator) -> Beat:
    """A premature ventricular beat: no P, wide (120-200 ms) large QRS, discordant large T."""
    s = 1.0 if rng.random() < 0.5 else -1.0
    w = _u(rng, 0.022, 0.04)  # QRS duration ~ 5 sigma: 110-200 ms
    off = _u(rng, 0.03, 0.06) * (1.0 if rng.random() < 0.5 else -1.0)
    return _beat(
        [
            (s * _u(rng, 1.2, 2.5), 0.0, w, True, False),
            (-s * _u(rng, 0.2, 0.8), off, _u(rng, 0.015, 0.03), True, False),
            (-s * _u(rng, 0.4, 1.0), _u(rng, 0.26, 0.36), _u(rng, 0.05, 0.09), False, True),
        ]
    )


def lbbb_template(rng: np.random.Generator) -> Beat:
    """Left-BBB-like: no Q, broad notched R (two humps, 120-170 ms), discordant T."""
    gap = _u(rng, 0.035, 0.06)
    return _beat(
        [
            (_u(rng, 0.05, 0.2), -_u(rng, 0.16, 0.22), _u(rng, 0.015, 0.03), False, False),
            (_u(rng, 0.75, 0.9), -gap / 2, _u(rng, 0.012, 0.018), True, False),
            (1.0, gap / 2, _u(rng, 0.012, 0.018), True, False),
            (-_u(rng, 0.2, 0.5), _u(rng, 0.28, 0.34), _u(rng, 0.05, 0.07), False, True),
        ]
    )


def rbbb_template(rng: np.random.Generator) -> Beat:
    """Right-BBB-like rSR': small r, S, tall wide R' (QRS 120-160 ms), T opposite to R'."""
    return _beat(
        [
            (_u(rng, 0.05, 0.2), -_u(rng, 0.16, 0.22), _u(rng, 0.015, 0.03), False, False),
            (_u(rng, 0.25, 0.55), -_u(rng, 0.045, 0.06), _u(rng, 0.008, 0.012), True, False),
            (-_u(rng, 0.2, 0.5), -_u(rng, 0.015, 0.025), _u(rng, 0.008, 0.012), True, False),
            (1.0, 0.0, _u(rng, 0.013, 0.02), True, False),
            (-_u(rng, 0.1, 0.35), _u(rng, 0.26, 0.32), _u(rng, 0.05, 0.07), False, True),
        ]
    )


def paced_template(rng: np.random.Generator) -> Beat:
    """A ventricular paced beat: a 0.5-2 ms pacing spike, then a wide QRS and discordant T."""
    s = 1.0 if rng.random() < 0.7 else -1.0
    spike = (1.0 if rng.random() < 0.5 else -1.0) * _u(rng, 1.0, 4.0)
    return _beat(
        [
            (spike, -_u(rng, 0.035, 0.05), _u(rng, 0.0004, 0.001), False, False),
            (s * 1.0, 0.0, _u(rng, 0.022, 0.032), True, False),
            (-s * _u(rng, 0.1, 0.4), _u(rng, 0.035, 0.05), _u(rng, 0.015, 0.025), True, False),
            (-s * _u(rng, 0.3, 0.7), _u(rng, 0.27, 0.34), _u(rng, 0.05, 0.08), False, True),
        ]
    )


def conducted_template(rng: np.random.Generator, conduction: str, p_wave: bool) -> Beat:
    if conduction == "normal":
        return normal_template(rng, p_wave)
    if conduction == "lbbb":
        return lbbb_template(rng)
    if conduction == "rbbb":
        return rbbb_template(rng)
    if conduction == "paced":
        return paced_template(rng)
    raise ValueError(f"conduction: expected one of {CONDUCTIONS}, got {conduction!r}")


def rr_series(
    rng: np.random.Generator, duration_s: float, hr_bpm: float, irregular: bool
) -> np.ndarray:
    """Beat times (s) of the underlying rhythm: sinus with respiratory and slow HRV, or AF-like
    (independent log-normal RR with 15-30 % variation). RR is kept in [0.3, 1.6] s."""
    mean_rr = 60.0 / hr_bpm
    times, t = [], _u(rng, 0.1, 0.9) * mean_rr
    f_resp, a_resp = _u(rng, 0.15, 0.4), _u(rng, 0.0, 0.06)
    f_lf, a_lf = _u(rng, 0.03, 0.12), _u(rng, 0.0, 0.05)
    ph1, ph2 = _u(rng, 0, 2 * math.pi), _u(rng, 0, 2 * math.pi)
    cv = _u(rng, 0.12, 0.3)
    while t < duration_s + 2.0:
        times.append(t)
        if irregular:
            rr = mean_rr * math.exp(rng.normal(0.0, cv))
        else:
            mod = a_resp * math.sin(2 * math.pi * f_resp * t + ph1)
            mod += a_lf * math.sin(2 * math.pi * f_lf * t + ph2)
            rr = mean_rr * (1.0 + mod + rng.normal(0.0, 0.01))
        t += min(max(rr, 0.3), 1.6)
    return np.array(times)


def _ectopic_flags(rng: np.random.Generator, n: int, ectopy: str) -> np.ndarray:
    """Which of ``n`` underlying beats are replaced by a PVC (0 = conducted, 1 = PVC).

    ``ectopy="mixed"`` (not drawn in training, used for the held-out PVC-rich records) changes
    the pattern every 30 beats, cycling through the five patterns of :data:`ECTOPY`.
    """
    f = np.zeros(n, dtype=np.int64)
    if ectopy == "none":
        return f
    if ectopy == "mixed":
        for j, a in enumerate(range(0, n, 30)):
            f[a : a + 30] = _ectopic_flags(rng, min(30, n - a), ECTOPY[1 + j % 5])
        return f
    i = 2
    while i < n:
        if ectopy == "isolated":
            f[i] = rng.random() < 0.15
            i += 1 + int(f[i])
        elif ectopy in ("bigeminy", "trigeminy"):
            period = 2 if ectopy == "bigeminy" else 3
            f[i] = (i % period) == 0
            i += 1
        elif ectopy == "couplets":
            if rng.random() < 0.12:
                f[i : i + 2] = 1
                i += 4
            else:
                i += 1
        elif ectopy == "runs":
            if rng.random() < 0.05:
                k = int(rng.integers(3, 9))
                f[i : i + k] = 1
                i += k + 3
            elif rng.random() < 0.08:
                f[i] = 1
                i += 2
            else:
                i += 1
        else:
            raise ValueError(f"ectopy: expected one of {ECTOPY}, got {ectopy!r}")
    return f


def beat_schedule(
    rng: np.random.Generator,
    duration_s: float,
    hr_bpm: float,
    irregular: bool,
    ectopy: str,
    apc_rate: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Beat times (s), kinds (0 conducted, 1 PVC, 2 APC) and preceding RR (s).

    A PVC comes early (coupling 55-75 % of RR, at least 0.3 s; runs at 150-200 bpm) and is
    followed by a compensatory pause: the next conducted beat keeps the underlying rhythm's time.
    An APC comes early (70-85 % of RR) and resets the rhythm (no full pause).
    """
    base = rr_series(rng, duration_s, hr_bpm, irregular)
    flags = _ectopic_flags(rng, base.size, ectopy)
    times, kinds = [base[0]], [0]
    shift = 0.0
    for i in range(1, base.size):
        rr = base[i] - base[i - 1]
        if flags[i]:
            if flags[i - 1]:  # inside a couplet or run: fast ventricular rate
                t = times[-1] + max(_u(rng, 0.3, 0.4), 0.3)
            else:
                t = times[-1] + max(rr * _u(rng, 0.55, 0.75), 0.3)
            times.append(t)
            kinds.append(1)
            continue
        t = base[i] + shift
        if flags[i - 1] and t - times[-1] < 0.35:  # the pause must leave room after a run
            shift += 0.35 - (t - times[-1])
            t = base[i] + shift
        if apc_rate > 0 and kinds[-1] == 0 and rng.random() < apc_rate:
            early = rr * (1.0 - _u(rng, 0.7, 0.85))
            t = max(t - early, times[-1] + 0.3)
            shift -= early
            kinds.append(2)
        else:
            kinds.append(0)
        times.append(t)
    times_a = np.array(times)
    rr_prev = np.diff(times_a, prepend=times_a[0] - 60.0 / hr_bpm)
    keep = times_a < duration_s
    return times_a[keep], np.array(kinds)[keep], rr_prev[keep]


def _render(out: np.ndarray, fs: float, t0: float, beat: Beat, scale: float, rr: float) -> int:
    """Add one beat at time ``t0`` (s) into ``out``; return the sample of its QRS |max|."""
    centre = beat.centre * np.where(beat.t_scales, math.sqrt(min(max(rr, 0.3), 1.6)), 1.0)
    lo = max(int((t0 - 0.4) * fs), 0)
    hi = min(int((t0 + 0.7) * fs) + 1, out.size)
    t = np.arange(lo, hi) / fs - t0
    g = np.exp(-0.5 * ((t[:, None] - centre[None, :]) / beat.width[None, :]) ** 2)
    waves = g * (beat.amp * scale)[None, :]
    out[lo:hi] += waves.sum(axis=1)
    qrs = waves[:, beat.qrs].sum(axis=1)
    return lo + int(np.argmax(np.abs(qrs)))


def synth_ecg(
    rng: np.random.Generator,
    fs: float,
    duration_s: float,
    hr_bpm: float = 75.0,
    conduction: str = "normal",
    ectopy: str = "none",
    irregular: bool = False,
    r_amp_mv: float = 1.0,
    inverted: bool = False,
    apc_rate: float = 0.0,
) -> SynthRecord:
    """A clean synthetic ECG lead with exact beat labels.

    Parameters
    ----------
    rng : numpy Generator (the only source of randomness)
    fs : sample rate in Hz; duration_s : length in seconds
    hr_bpm : mean rate of the underlying rhythm, 40-180
    conduction : "normal", "lbbb", "rbbb" or "paced" (every conducted beat)
    ectopy : PVC pattern, one of :data:`ECTOPY` or "mixed" (1-2 PVC morphologies per record)
    irregular : AF-like RR and fibrillatory waves instead of P waves
    r_amp_mv : height of the conducted beats' main deflection in mV (0.3-3)
    inverted : the whole lead negated (electrodes swapped)
    apc_rate : chance that a conducted beat is a premature atrial beat (symbol "A")

    Returns
    -------
    SynthRecord with the signal (round(duration_s * fs),) float64 mV.
    """
    n = round(duration_s * fs)
    out = np.zeros(n)
    p_wave = not irregular
    cond = conducted_template(rng, conduction, p_wave)
    pvcs = [pvc_template(rng) for _ in range(1 + int(rng.random() < 0.3))]
    times, kinds, rr_prev = beat_schedule(rng, duration_s, hr_bpm, irregular, ectopy, apc_rate)
    sym_c = CONDUCTED_SYMBOL[conduction]
    beats, symbols = [], []
    for t0, kind, rr in zip(times.tolist(), kinds.tolist(), rr_prev.tolist()):
        jitter = math.exp(rng.normal(0.0, 0.04))
        if kind == 1:
            tpl = pvcs[int(rng.integers(len(pvcs)))] if len(pvcs) > 1 else pvcs[0]
            symbols.append("V")
        else:
            tpl = cond
            symbols.append("A" if kind == 2 else sym_c)
        beats.append(_render(out, fs, t0, tpl, r_amp_mv * jitter, rr))
    if irregular:
        out += fibrillatory_waves(rng, n, fs, r_amp_mv)
    if inverted:
        out = -out
    lab = np.array(beats, dtype=np.int64)
    keep = (lab >= 0) & (lab < n)
    return SynthRecord(out, lab[keep], [s for s, k in zip(symbols, keep) if k], float(fs))


def fibrillatory_waves(rng: np.random.Generator, n: int, fs: float, scale: float) -> np.ndarray:
    """AF f-waves: 4-9 Hz oscillation with drifting frequency, 3-10 % of the R height."""
    t = np.arange(n) / fs
    f0 = _u(rng, 4.0, 9.0)
    drift = 0.8 * np.sin(2 * np.pi * _u(rng, 0.05, 0.2) * t + _u(rng, 0, 6.3))
    phase = 2 * np.pi * np.cumsum(f0 + drift) / fs
    env = 1.0 + 0.5 * np.sin(2 * np.pi * _u(rng, 0.1, 0.5) * t)
    return scale * _u(rng, 0.03, 0.1) * env * np.sin(phase)


def random_synth(rng: np.random.Generator, fs: float, duration_s: float) -> SynthRecord:
    """A synthetic record with every setting drawn at random (the training distribution)."""
    conduction = str(rng.choice(CONDUCTIONS, p=[0.55, 0.15, 0.15, 0.15]))
    ectopy = str(rng.choice(ECTOPY, p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.15]))
    return synth_ecg(
        rng,
        fs,
        duration_s,
        hr_bpm=_u(rng, 40.0, 180.0) if rng.random() < 0.8 else _u(rng, 40.0, 100.0),
        conduction=conduction,
        ectopy=ectopy,
        irregular=bool(rng.random() < 0.2),
        r_amp_mv=math.exp(_u(rng, math.log(0.3), math.log(3.0))),
        inverted=bool(rng.random() < 0.2),
        apc_rate=0.05 if rng.random() < 0.3 else 0.0,
    )


# ---------------------------------------------------------------------- neurokit2 ECGSYN
def locate_r_peaks(clean: np.ndarray, fs: float, hr_bpm: float) -> np.ndarray:
    """R peaks of a clean, upright simulated ECG: local maxima above half the 99th percentile,
    at least 0.55 mean-RR apart, each the exact maximum sample within +-40 ms.

    Returns (k,) int64 sample indices.
    """
    import scipy.signal

    height = 0.5 * float(np.percentile(clean, 99.5))
    dist = max(1, int(0.55 * 60.0 / hr_bpm * fs))
    peaks, _ = scipy.signal.find_peaks(clean, height=height, distance=dist)
    half = max(1, round(0.04 * fs))
    out = []
    for p in peaks.tolist():
        lo, hi = max(p - half, 0), min(p + half + 1, clean.size)
        out.append(lo + int(np.argmax(clean[lo:hi])))
    return np.unique(np.array(out, dtype=np.int64))


def ecgsyn_ecg(
    seed: int, fs: float, duration_s: float, hr_bpm: float, hr_std: float
) -> SynthRecord:
    """neurokit2 ECGSYN at ``fs`` (no noise), R peaks located by :func:`locate_r_peaks`.

    ECGSYN's own scale is about -0.4..1.2 mV (R about 1.2 mV); all beats are "N".
    """
    import neurokit2 as nk

    x = nk.ecg_simulate(
        duration=duration_s,
        sampling_rate=int(fs),
        noise=0.0,
        heart_rate=hr_bpm,
        heart_rate_std=hr_std,
        method="ecgsyn",
        random_state=int(seed),
    )
    x = np.asarray(x, dtype=np.float64)
    beats = locate_r_peaks(x, fs, hr_bpm)
    return SynthRecord(x, beats, ["N"] * beats.size, float(fs))
