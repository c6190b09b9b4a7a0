"""Deterministic synthetic signals: ECG, sine and noise, generated block by block.

Every generator is sequential and seeded: ``generate(n)`` returns the next ``n`` samples, and the
concatenation of any sequence of calls equals one call for the total (any chunking gives the same
signal). Values are float64 in physical units, shape (n, channels).

The ECG follows the spirit of McSharry et al.'s ECGSYN (IEEE TBME 2003): each beat is a sum of
five Gaussians (P, Q, R, S, T) placed on a phase that runs from -π to π over the beat; RR
intervals vary with respiratory sinus arrhythmia (0.25 Hz) and a slow random (AR(1)) component;
baseline wander and white noise are added. Channels are scaled, sign-flipped projections of the
same heart (like leads), each with its own noise.
"""

from __future__ import annotations

import math

import numpy as np

#: ECGSYN wave angles (rad), amplitudes (mV) and widths (rad) for P, Q, R, S, T.
_THETA = np.array([-math.pi / 3, -math.pi / 12, 0.0, math.pi / 12, math.pi / 2])
_AMPL = np.array([0.15, -0.15, 1.2, -0.25, 0.30])
_WIDTH = np.array([0.25, 0.1, 0.1, 0.1, 0.4])

#: Per-channel lead factors (cycled when there are more channels).
_LEADS = (1.0, 0.65, -0.45, 0.85, 0.3, -0.7, 0.5, 1.1)


class EcgGenerator:
    """Synthetic ECG in mV.

    Parameters
    ----------
    fs : sample rate (Hz); channels : number of leads; seed : RNG seed
    heart_rate : mean rate (beats per minute); hrv : relative RR variability (0 disables)
    noise : white noise standard deviation (mV); wander : baseline wander amplitude (mV)
    """

    units = "mV"

    def __init__(
        self,
        fs: float,
        channels: int = 1,
        seed: int = 0,
        heart_rate: float = 70.0,
        hrv: float = 0.05,
        noise: float = 0.01,
        wander: float = 0.05,
    ) -> None:
        if fs <= 0 or channels < 1 or heart_rate <= 0:
            raise ValueError(
                f"ECG needs fs > 0, channels >= 1, heart_rate > 0; got {fs}, {channels}, "
                f"{heart_rate}"
            )
        self.fs = float(fs)
        self.channels = int(channels)
        self.labels = tuple(f"ecg{c}" for c in range(channels))
        self._rr_mean = 60.0 / heart_rate
        self._hrv = float(hrv)
        self._noise = float(noise)
        self._wander = float(wander)
        self._beat_rng = np.random.default_rng([seed, 1])
        self._noise_rng = np.random.default_rng([seed, 2])
        self._lead = np.array([_LEADS[c % len(_LEADS)] for c in range(channels)])
        self._n = 0  # samples generated so far
        self._beat_start = 0.0  # time (s) of the current beat's phase -π
        self._beat_rr = self._rr_mean
        self._ar = 0.0
        self._width = _WIDTH * math.sqrt(self._rr_mean)

    def _next_rr(self, t: float) -> float:
        self._ar = 0.9 * self._ar + math.sqrt(1 - 0.81) * float(self._beat_rng.standard_normal())
        rsa = math.sin(2 * math.pi * 0.25 * t)
        rr = self._rr_mean * (1.0 + self._hrv * (0.5 * rsa + 0.5 * self._ar))
        return max(rr, 0.25 * self._rr_mean)

    def generate(self, n: int) -> np.ndarray:
        """The next ``n`` samples, (n, channels) float64 in mV."""
        t = (self._n + np.arange(n)) / self.fs
        beat = np.empty(n)
        phase = np.empty(n)
        i = 0
        while i < n:
            end_t = self._beat_start + self._beat_rr
            j = i + int(np.searchsorted(t[i:], end_t, side="left"))
            phase[i:j] = -math.pi + 2 * math.pi * (t[i:j] - self._beat_start) / self._beat_rr
            beat[i:j] = self._beat_rr
            if j < n:
                self._beat_start = end_t
                self._beat_rr = self._next_rr(end_t)
            i = j
        dtheta = phase[:, None] - _THETA[None, :]
        dtheta = (dtheta + math.pi) % (2 * math.pi) - math.pi
        z = (_AMPL * np.exp(-0.5 * (dtheta / self._width) ** 2)).sum(axis=1)
        z += self._wander * np.sin(2 * math.pi * 0.3 * t)
        out = z[:, None] * self._lead[None, :]
        if self._noise > 0:
            out += self._noise * self._noise_rng.standard_normal((n, self.channels))
        self._n += n
        return out


class SineGenerator:
    """Sines: channel c has frequency ``freq * (c + 1)`` Hz and the given amplitude."""

    units = ""

    def __init__(
        self, fs: float, channels: int = 1, freq: float = 1.0, amplitude: float = 1.0
    ) -> None:
        if fs <= 0 or channels < 1:
            raise ValueError(f"sine needs fs > 0 and channels >= 1, got {fs}, {channels}")
        self.fs = float(fs)
        self.channels = int(channels)
        self.labels = tuple(f"sine{c}" for c in range(channels))
        self._freq = float(freq) * (np.arange(channels) + 1)
        self._amplitude = float(amplitude)
        self._n = 0

    def generate(self, n: int) -> np.ndarray:
        """The next ``n`` samples, (n, channels) float64."""
        t = (self._n + np.arange(n))[:, None] / self.fs
        self._n += n
        return self._amplitude * np.sin(2 * math.pi * self._freq[None, :] * t)


class NoiseGenerator:
    """White Gaussian noise with standard deviation ``std``."""

    units = ""

    def __init__(self, fs: float, channels: int = 1, seed: int = 0, std: float = 1.0) -> None:
        if fs <= 0 or channels < 1:
            raise ValueError(f"noise needs fs > 0 and channels >= 1, got {fs}, {channels}")
        self.fs = float(fs)
        self.channels = int(channels)
        self.labels = tuple(f"noise{c}" for c in range(channels))
        self._std = float(std)
        self._rng = np.random.default_rng([seed, 3])

    def generate(self, n: int) -> np.ndarray:
        """The next ``n`` samples, (n, channels) float64."""
        return self._std * self._rng.standard_normal((n, self.channels))


KINDS = ("ecg", "sine", "noise")


def make_generator(kind: str, fs: float, channels: int, seed: int = 0, **params: float):
    """A generator by name: ``"ecg"``, ``"sine"`` or ``"noise"`` (``params`` passed through)."""
    if kind == "ecg":
        return EcgGenerator(fs, channels, seed, **params)
    if kind == "sine":
        return SineGenerator(fs, channels, **params)
    if kind == "noise":
        return NoiseGenerator(fs, channels, seed, **params)
    raise ValueError(f"synthetic kind must be one of {', '.join(KINDS)}, got {kind!r}")
