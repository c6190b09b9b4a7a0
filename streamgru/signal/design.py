"""Filter design with scipy, in second-order sections only (docs/design.md section 7).

Butterworth high-, low- and band-pass filters come from ``scipy.signal.butter(..., output="sos",
fs=fs)``; mains notches from ``scipy.signal.iirnotch`` converted with ``scipy.signal.tf2sos``.
Sections are float64 rows ``[b0, b1, b2, 1, a1, a2]`` run by :mod:`streamgru.kernels.sos`.

Every invalid value raises :class:`~streamgru.errors.ConfigError` naming the field and the
allowed range, e.g. ``lowpass: must be below Nyquist (fs/2 = 180.0 Hz), got 200.0``.

Presets (``mains`` is 50 or 60 Hz; its notch is left out where mains is not below Nyquist):

==================  ===============  =====  =====================================
preset              band (Hz)        order  notes
==================  ===============  =====  =====================================
``ecg-monitor``     0.5 – 40         2      + mains notch
``ecg-diagnostic``  0.05 – 150       2      lowpass clamped to 0.45 fs; + notch
``eeg``             1 – 45           4      + mains notch
``emg``             20 – 450         4      lowpass clamped to 0.45 fs; + notch
``ppg``             0.5 – 8          2      no notch
==================  ===============  =====  =====================================

``order`` is the Butterworth order of each edge (a band-pass of order N has N sections).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..errors import ConfigError

#: Allowed Butterworth orders.
MIN_ORDER, MAX_ORDER = 1, 12
#: Allowed mains frequencies in Hz.
MAINS_FREQUENCIES = (50, 60)
#: Lowpass edges of the clamped presets are kept at or below this fraction of fs.
CLAMP_FRACTION = 0.45

#: name → (highpass Hz, lowpass Hz, order, mains notch, lowpass clamped below Nyquist)
_PRESETS: dict[str, tuple[float | None, float | None, int, bool, bool]] = {
    "ecg-monitor": (0.5, 40.0, 2, True, False),
    "ecg-diagnostic": (0.05, 150.0, 2, True, True),
    "eeg": (1.0, 45.0, 4, True, False),
    "emg": (20.0, 450.0, 4, True, True),
    "ppg": (0.5, 8.0, 2, False, False),
}

#: The preset names, in documentation order.
PRESETS: tuple[str, ...] = tuple(_PRESETS)


def _number(field: str, value: Any) -> float:
    """A finite real number from ``value``, or ConfigError naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{field}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{field}: must be finite, got {value}")
    return value


def check_fs(fs: Any) -> float:
    """Validate a sample rate in Hz: a finite number > 0. Returns it as float."""
    fs = _number("fs", fs)
    if fs <= 0:
        raise ConfigError(f"fs: must be > 0 Hz, got {fs}")
    return fs


def _cutoff(field: str, value: Any, fs: float) -> float:
    """A cutoff frequency strictly between 0 and Nyquist."""
    freq = _number(field, value)
    if freq <= 0:
        raise ConfigError(f"{field}: must be > 0 Hz, got {freq}")
    nyquist = fs / 2.0
    if freq >= nyquist:
        raise ConfigError(f"{field}: must be below Nyquist (fs/2 = {nyquist} Hz), got {freq}")
    return freq


def _order(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"order: expected an integer in {MIN_ORDER}..{MAX_ORDER}, got {value!r}")
    if not MIN_ORDER <= int(value) <= MAX_ORDER:
        raise ConfigError(f"order: must be in {MIN_ORDER}..{MAX_ORDER}, got {int(value)}")
    return int(value)


def notch_list(notch: Any) -> list[float]:
    """``notch`` (None, one number or an iterable of numbers) as a list of floats, unchecked."""
    if notch is None:
        return []
    if isinstance(notch, numbers.Real) and not isinstance(notch, bool):
        return [float(notch)]
    if isinstance(notch, (str, bytes)) or not isinstance(notch, Iterable):
        raise ConfigError(f"notch: expected a frequency in Hz or a list of them, got {notch!r}")
    return [_number(f"notch[{k}]", f) for k, f in enumerate(notch)]


def design_sos(
    fs: float,
    highpass: float | None = None,
    lowpass: float | None = None,
    notch: float | Iterable[float] | None = None,
    order: int = 4,
    notch_q: float = 30.0,
) -> np.ndarray:
    """Design a causal filter as second-order sections with scipy.

    Parameters
    ----------
    fs : float
        Sample rate in Hz, > 0.
    highpass, lowpass : float, optional
        Butterworth edges in Hz, each in (0, fs/2). Both give a band-pass
        (``butter(order, [highpass, lowpass], "bandpass")``), which needs highpass < lowpass.
    notch : float or iterable of float, optional
        Notch frequencies in Hz, each in (0, fs/2): one ``iirnotch(f, notch_q, fs=fs)`` section
        per frequency, after the Butterworth sections.
    order : int
        Butterworth order, 1..12.
    notch_q : float
        Quality factor of the notches, > 0 (30 gives a -3 dB width of f/30).

    Returns
    -------
    (n_sections, 6) float64, C-contiguous, validated by :func:`validate_sos`.

    Raises
    ------
    ConfigError
        Naming the field (``fs``, ``highpass``, ``lowpass``, ``notch``, ``order``, ``notch_q``)
        and the allowed range; also when no filter at all is asked for.
    """
    fs = check_fs(fs)
    order = _order(order)
    hp = None if highpass is None else _cutoff("highpass", highpass, fs)
    lp = None if lowpass is None else _cutoff("lowpass", lowpass, fs)
    freqs = notch_list(notch)
    notches = [
        _cutoff("notch" if len(freqs) == 1 else f"notch[{k}]", f, fs) for k, f in enumerate(freqs)
    ]
    q = _number("notch_q", notch_q)
    if notches and q <= 0:
        raise ConfigError(f"notch_q: must be > 0, got {q}")
    if hp is not None and lp is not None and hp >= lp:
        raise ConfigError(f"highpass: must be below lowpass ({lp} Hz) for a band-pass, got {hp}")
    if hp is None and lp is None and not notches:
        raise ConfigError("filter: give at least one of highpass, lowpass or notch")

    import scipy.signal  # here, not at import: about 0.5 s a recorded filter does not need

    sections = []
    if hp is not None and lp is not None:
        sections.append(scipy.signal.butter(order, [hp, lp], "bandpass", output="sos", fs=fs))
    elif hp is not None:
        sections.append(scipy.signal.butter(order, hp, "highpass", output="sos", fs=fs))
    elif lp is not None:
        sections.append(scipy.signal.butter(order, lp, "lowpass", output="sos", fs=fs))
    for f0 in notches:
        b, a = scipy.signal.iirnotch(f0, q, fs=fs)
        sections.append(scipy.signal.tf2sos(b, a))
    return validate_sos(np.concatenate(sections, axis=0))


def preset_parameters(name: str, fs: float, mains: int = 50) -> dict[str, Any]:
    """The :func:`design_sos` keyword arguments of a preset at sample rate ``fs``.

    Parameters
    ----------
    name : str
        One of :data:`PRESETS`.
    fs : float
        Sample rate in Hz.
    mains : int
        Mains frequency, 50 or 60 Hz; its notch is included when the preset has one and mains
        is below Nyquist.

    Returns
    -------
    dict with ``fs``, ``highpass``, ``lowpass``, ``notch`` (list of Hz), ``order``, ``notch_q``.
    """
    if name not in _PRESETS:
        raise ConfigError(f"preset: expected one of {', '.join(PRESETS)}, got {name!r}")
    fs = check_fs(fs)
    if isinstance(mains, bool) or mains not in MAINS_FREQUENCIES:
        raise ConfigError(f"mains: must be 50 or 60 (Hz), got {mains!r}")
    highpass, lowpass, order, with_notch, clamp = _PRESETS[name]
    nyquist = fs / 2.0
    if clamp and lowpass is not None:
        lowpass = min(lowpass, CLAMP_FRACTION * fs)
    if lowpass is not None and lowpass >= nyquist:
        raise ConfigError(
            f"fs: preset {name!r} needs fs above {2.0 * lowpass} Hz (its lowpass "
            f"{lowpass} Hz must be below Nyquist), got {fs}"
        )
    if highpass is not None and lowpass is not None and highpass >= lowpass:
        raise ConfigError(
            f"fs: preset {name!r} needs fs above {highpass / CLAMP_FRACTION} Hz (its lowpass, "
            f"clamped to {CLAMP_FRACTION} fs, must stay above the {highpass} Hz highpass), got {fs}"
        )
    notch = [float(mains)] if with_notch and mains < nyquist else []
    return {
        "fs": fs,
        "highpass": highpass,
        "lowpass": lowpass,
        "notch": notch,
        "order": order,
        "notch_q": 30.0,
    }


def preset_sos(name: str, fs: float, mains: int = 50) -> np.ndarray:
    """The second-order sections of a preset: ``design_sos(**preset_parameters(...))``."""
    return design_sos(**preset_parameters(name, fs, mains))


def validate_sos(sos: Any, field: str = "sos") -> np.ndarray:
    """Check hand-made (or designed) second-order sections and return a float64 C copy.

    Parameters
    ----------
    sos : array_like, (n_sections, 6)
        Rows ``[b0, b1, b2, a0, a1, a2]`` with ``a0 == 1`` exactly (scipy's convention).
    field : str
        Name used in the error messages.

    Returns
    -------
    (n_sections, 6) float64, C-contiguous, a new array.

    Raises
    ------
    ConfigError
        Wrong shape, no sections, a non-finite coefficient, ``a0 != 1``, or an unstable section
        (a pole with ``|p| >= 1``, from ``numpy.roots([1, a1, a2])``).
    """
    try:
        arr = np.array(sos, dtype=np.float64, order="C", copy=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{field}: expected an (n_sections, 6) array of numbers: {exc}") from exc
    if arr.ndim != 2 or arr.shape[1] != 6 or arr.shape[0] < 1:
        raise ConfigError(
            f"{field}: expected shape (n_sections, 6) with n_sections >= 1, got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        row = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise ConfigError(
            f"{field}: section {row} has a non-finite coefficient: {arr[row].tolist()}"
        )
    for row, section in enumerate(arr):
        if section[3] != 1.0:
            raise ConfigError(
                f"{field}: section {row} must have a0 == 1 (normalised), got a0 = {section[3]}"
            )
        radius = float(np.max(np.abs(np.roots([1.0, section[4], section[5]])), initial=0.0))
        if radius >= 1.0:
            raise ConfigError(
                f"{field}: section {row} is unstable: its poles must lie inside the unit circle "
                f"(|p| < 1), got |p| = {radius:.6g} from a1 = {section[4]}, a2 = {section[5]}"
            )
    return arr


def steady_state_unit(sos: np.ndarray) -> np.ndarray:
    """``scipy.signal.sosfilt_zi(sos)`` as a float64 C-contiguous (n_sections, 2) array.

    Computed as scipy (1.17) computes it, without importing ``scipy.signal`` (about 0.5 s of a
    daemon's start when the model carries its filter): per section, ``lfilter_zi`` solves
    ``(I - companion(a).T) zi = b[1:] - a[1:] * b[0]``, scaled by the DC gain ``sum(b) /
    sum(a)`` of the sections before. Same operations in the same order, so the same bits
    (tests/test_signal.py checks it against scipy). ``sos`` (n_sections, 6) float64 with
    ``a0 == 1`` (:func:`validate_sos`); anything else goes to scipy itself.
    """
    arr = np.asarray(sos)
    if arr.dtype != np.float64 or arr.ndim != 2 or arr.shape[1] != 6 or np.any(arr[:, 3] != 1.0):
        import scipy.signal

        return np.ascontiguousarray(scipy.signal.sosfilt_zi(sos), dtype=np.float64)
    zi = np.empty((arr.shape[0], 2), dtype=np.float64)
    scale = 1.0
    for k in range(arr.shape[0]):
        b, a = arr[k, :3], arr[k, 3:]
        companion = np.zeros((2, 2), dtype=np.float64)
        companion[0, :] = -a[1:] / (1.0 * a[0:1])
        companion[1, 0] = 1.0
        i_minus_a = np.eye(2) - companion.T
        zi[k, :] = scale * np.linalg.solve(i_minus_a, b[1:] - a[1:] * b[0])
        scale *= np.sum(b) / np.sum(a)
    return zi
