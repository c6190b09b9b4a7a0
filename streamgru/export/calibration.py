"""Calibration data for fixed-point exports: the user's file, or the built-in ECG segment.

The built-in segment (``data/ecg_calibration.npy``, (21600,) float32 mV) is one minute of
MIT-BIH record 100, lead MLII, samples 36000..57600 (inside the shipped ECG model's training
range, away from its held-out last five minutes); see ``streamgru/data/mitdb/ATTRIBUTION.md``.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..model.core import GRUModel

_BUILTIN = "ecg_calibration.npy"
_MIN_SAMPLES = 100


def builtin_segment() -> np.ndarray:
    """The built-in ECG calibration minute, (21600, 1) float32 in mV at 360 Hz."""
    path = Path(str(importlib.resources.files("streamgru.export") / "data" / _BUILTIN))
    return np.load(path).astype(np.float32).reshape(-1, 1)


def load_calibration(path: str | Path, input_size: int) -> np.ndarray:
    """Raw samples from a ``.npy`` or ``.csv`` file as (T, input_size) float32.

    A file of shape (T,) is accepted when input_size is 1. CSV: one sample per line, values
    separated by commas, no header.

    Raises
    ------
    ConfigError
        Unreadable file, another extension, wrong shape, non-finite values, fewer than 100
        samples.
    """
    path = Path(path)
    try:
        if path.suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        elif path.suffix == ".csv":
            data = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
        else:
            raise ConfigError(
                f"--calibrate {path}: expected a .npy or .csv file, got {path.suffix!r}"
            )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--calibrate {path}: cannot read the samples: {exc}") from exc
    data = np.asarray(data)
    if data.ndim == 1 and input_size == 1:
        data = data.reshape(-1, 1)
    if data.ndim != 2 or data.shape[1] != input_size or data.dtype.kind not in "fiu":
        raise ConfigError(
            f"--calibrate {path}: expected real samples of shape (T, {input_size}), got "
            f"{data.shape} {data.dtype}"
        )
    if data.shape[0] < _MIN_SAMPLES or not np.isfinite(data).all():
        raise ConfigError(
            f"--calibrate {path}: expected at least {_MIN_SAMPLES} finite samples, got "
            f"{data.shape[0]} (finite: {bool(np.isfinite(data).all())})"
        )
    return np.ascontiguousarray(data, dtype=np.float32)


def default_calibration(model: GRUModel) -> np.ndarray:
    """The built-in segment for a one-channel ECG model at 360 Hz; ConfigError otherwise."""
    if model.input_size == 1 and model.fs == 360.0:
        return builtin_segment()
    raise ConfigError(
        "a fixed-point export needs calibration data: pass --calibrate FILE (.npy or .csv of raw "
        f"samples, shape (T, {model.input_size})); the built-in segment fits only one-channel "
        f"ECG models at 360 Hz (this model: input_size {model.input_size}, fs {model.fs})"
    )
