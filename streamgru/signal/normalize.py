"""Per-channel normalisation applied after the filter: ``(X - mean) / std``.

A model file records the statistics its training inputs were normalised with under
``input_mean`` and ``input_std`` (docs/design.md section 6), as JSON lists (one per channel) or
numbers (every channel alike); :meth:`Normalizer.from_metadata` reads them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ConfigError, ShapeError

_SAMPLE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _statistic(field: str, value: Any) -> np.ndarray:
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{field}: expected a number or a JSON list, got {value!r}") from exc
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{field}: expected a number or a list of numbers, got {value!r}"
        ) from exc
    if arr.ndim > 1 or arr.size == 0:
        raise ConfigError(
            f"{field}: expected a number or a non-empty flat list, got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ConfigError(f"{field}: expected finite values, got {arr.tolist()}")
    return arr.reshape(-1)


class Normalizer:
    """``(X - mean) / std`` per channel.

    Parameters
    ----------
    mean : float or (n_channels,) array_like
    std : float or (n_channels,) array_like, every value > 0
        A number applies to every channel; two lists must have the same length.

    Raises
    ------
    ConfigError
        Non-finite values, ``std <= 0``, or lists of different lengths.
    """

    def __init__(self, mean: Any = 0.0, std: Any = 1.0) -> None:
        mean_arr = _statistic("input_mean", mean)
        std_arr = _statistic("input_std", std)
        if (std_arr <= 0).any():
            raise ConfigError(f"input_std: every value must be > 0, got {std_arr.tolist()}")
        if mean_arr.size != std_arr.size and 1 not in (mean_arr.size, std_arr.size):
            raise ConfigError(
                f"input_mean / input_std: expected the same number of channels, got "
                f"{mean_arr.size} and {std_arr.size}"
            )
        size = max(mean_arr.size, std_arr.size)
        self._mean = np.broadcast_to(mean_arr, (size,)).copy()
        self._std = np.broadcast_to(std_arr, (size,)).copy()
        self._mean.setflags(write=False)
        self._std.setflags(write=False)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> Normalizer:
        """Read ``input_mean`` and ``input_std`` from a model's metadata.

        Parameters
        ----------
        metadata : mapping
            E.g. ``model.metadata``; values may be JSON strings (as stored in weights files),
            lists or numbers. With neither key the identity (mean 0, std 1) comes back.

        Raises
        ------
        ConfigError
            Only one of the two keys present, or an invalid value.
        """
        has_mean, has_std = "input_mean" in metadata, "input_std" in metadata
        if has_mean != has_std:
            missing = "input_std" if has_mean else "input_mean"
            raise ConfigError(f"{missing}: missing from the metadata while its partner is present")
        if not has_mean:
            return cls()
        return cls(metadata["input_mean"], metadata["input_std"])

    @property
    def mean(self) -> np.ndarray:
        """(n,) float64, read-only; n is 1 when one value applies to every channel."""
        return self._mean

    @property
    def std(self) -> np.ndarray:
        """(n,) float64, read-only, every value > 0."""
        return self._std

    @property
    def is_identity(self) -> bool:
        """True when mean is 0 and std is 1 everywhere (``apply`` then only copies)."""
        return bool((self._mean == 0).all() and (self._std == 1).all())

    def apply(self, X: Any) -> np.ndarray:
        """``(X - mean) / std`` along the last axis.

        Parameters
        ----------
        X : (..., n_channels) array_like, or any shape when the statistics are scalars
            float32 stays float32 (computed in float64, rounded once); other dtypes give float64.

        Returns
        -------
        A new array of the shape of ``X``.
        """
        arr = np.asarray(X)
        dtype = arr.dtype if arr.dtype in _SAMPLE_DTYPES else np.dtype(np.float64)
        n = self._mean.size
        if n > 1 and (arr.ndim == 0 or arr.shape[-1] != n):
            raise ShapeError(f"normalise: expected shape (..., {n}), got {arr.shape}")
        out = (arr.astype(np.float64) - self._mean) / self._std
        if n == 1:
            out = out.reshape(arr.shape)
        return out.astype(dtype, copy=False)

    def to_dict(self) -> dict[str, Any]:
        """``{"input_mean": [...], "input_std": [...]}``, JSON-safe."""
        return {"input_mean": self._mean.tolist(), "input_std": self._std.tolist()}

    def __repr__(self) -> str:
        return f"Normalizer(mean={self._mean.tolist()}, std={self._std.tolist()})"
