"""Sample-rate safety and a streaming rational resampler.

:func:`check_sample_rate` refuses a stream whose rate differs from the model's (relative
tolerance 1e-6) unless resampling is asked for, in which case it returns the rational ratio
``(up, down)`` that takes the stream to the model's rate; :class:`StreamResampler` then does the
resampling chunk by chunk.

:class:`StreamResampler` is the streaming form of ``scipy.signal.resample_poly(x, up, down)``:
the same FIR (``firwin(2 * half_len + 1, 1 / max(up, down), window=("kaiser", 5.0)) * up``,
``half_len = 10 * max(up, down)``), the same output grid, so that output ``k`` equals
``resample_poly(x, up, down, padtype=...)[k]`` (``"edge"`` for the steady start, ``"constant"``
for the zero start) within 1e-12 of the signal scale, for any chunking. It is causal: output
``k`` needs input up to index ``(k * down + half_len) // up`` and leaves as soon as that sample
has arrived, i.e. ``half_len / up`` input samples of latency (10 at 250 → 360 Hz). It is numpy
only: resampling runs once per chunk, not per sample.
"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import ConfigError, InvalidInputError, ShapeError
from ..state import pack, rebuild, unpack
from .design import check_fs

#: Relative difference below which two sample rates are the same.
FS_RELATIVE_TOLERANCE = 1e-6
#: Largest ``up`` or ``down`` accepted for a resampling ratio.
MAX_RATIO_TERM = 1000


def _hz(fs: float) -> str:
    return f"{fs:g} Hz"


def check_sample_rate(
    stream_fs: float, model_fs: float | None, resample: bool = False
) -> tuple[int, int] | None:
    """Check a stream's sample rate against the rate a model was trained at.

    Parameters
    ----------
    stream_fs : float
        Rate of the incoming samples in Hz, > 0.
    model_fs : float or None
        Rate the model was trained at (``model.fs``); None when the model does not record one,
        in which case nothing is checked.
    resample : bool
        When True, a difference is not an error: the ratio to resample by is returned.

    Returns
    -------
    None when the rates agree (within 1e-6 relative) or the model records no rate; otherwise,
    with ``resample=True``, ``(up, down)`` in lowest terms with
    ``stream_fs * up / down == model_fs`` (within the tolerance), each at most 1000.

    Raises
    ------
    ConfigError
        The rates differ and ``resample`` is False; or no ratio with small terms exists.
    """
    stream_fs = check_fs(stream_fs)
    if model_fs is None:
        return None
    model_fs = check_fs(model_fs)
    if math.isclose(stream_fs, model_fs, rel_tol=FS_RELATIVE_TOLERANCE, abs_tol=0.0):
        return None
    if not resample:
        raise ConfigError(
            f"fs: stream fs {_hz(stream_fs)} differs from the {_hz(model_fs)} the model was "
            f"trained at; feed the model {_hz(model_fs)} samples, or resample the stream "
            "(resample = true)"
        )
    ratio = Fraction(model_fs / stream_fs).limit_denominator(MAX_RATIO_TERM)
    achieved = stream_fs * ratio.numerator / ratio.denominator
    if ratio.numerator > MAX_RATIO_TERM or not math.isclose(
        achieved, model_fs, rel_tol=FS_RELATIVE_TOLERANCE, abs_tol=0.0
    ):
        raise ConfigError(
            f"fs: cannot resample {_hz(stream_fs)} to {_hz(model_fs)} by a ratio up/down with "
            f"terms up to {MAX_RATIO_TERM}"
        )
    return ratio.numerator, ratio.denominator


_SAMPLE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_START_MODES = ("steady", "zero")


def _positive_int(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{field}: expected an integer >= 1, got {value!r}")
    return int(value)


class StreamResampler:
    """Resample a (T, C) stream by ``up / down``, chunk by chunk, like ``resample_poly``.

    Parameters
    ----------
    up, down : int
        The ratio, each in 1..1000 (reduced to lowest terms); output rate = input rate * up / down.
    n_channels : int
        Channels resampled in parallel, >= 1.
    start : {"steady", "zero"}
        Samples before the first are taken equal to it (no start-up transient; matches
        ``resample_poly(..., padtype="edge")``) or zero (``padtype="constant"``).

    Attributes
    ----------
    taps : (2 * half_len + 1,) float64, read-only: the FIR, already multiplied by ``up``
    latency : float, input samples between an input instant and the output that represents it
    """

    def __init__(self, up: int, down: int, n_channels: int = 1, start: str = "steady") -> None:
        up, down = _positive_int("up", up), _positive_int("down", down)
        if max(up, down) > MAX_RATIO_TERM:
            raise ConfigError(f"up / down: expected terms up to {MAX_RATIO_TERM}, got {up}/{down}")
        if start not in _START_MODES:
            raise ConfigError(f"start: expected one of {_START_MODES}, got {start!r}")
        g = math.gcd(up, down)
        self._up, self._down = up // g, down // g
        self._n_channels = _positive_int("n_channels", n_channels)
        self._start = start
        max_rate = max(self._up, self._down)
        if max_rate == 1:  # 1/1: a pass-through, as resample_poly returns a copy
            self._half_len = 0
            taps = np.ones(1)
        else:
            self._half_len = 10 * max_rate
            import scipy.signal  # here: about 0.5 s to import, and most streams never resample

            taps = scipy.signal.firwin(
                2 * self._half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)
            )
            taps = np.asarray(taps, dtype=np.float64) * self._up
        taps.setflags(write=False)
        self._taps = taps
        # polyphase[p, j] = taps[p + j * up]: the taps meeting input i_last - j at phase p
        self._n_hist = -(-taps.size // self._up)
        padded = np.zeros(self._n_hist * self._up)
        padded[: taps.size] = taps
        self._polyphase = padded.reshape(self._n_hist, self._up).T.copy()
        self.reset()

    @classmethod
    def from_rates(
        cls, stream_fs: float, model_fs: float, n_channels: int = 1, start: str = "steady"
    ) -> StreamResampler:
        """The resampler taking ``stream_fs`` to ``model_fs`` (see :func:`check_sample_rate`)."""
        ratio = check_sample_rate(stream_fs, model_fs, resample=True) or (1, 1)
        return cls(*ratio, n_channels=n_channels, start=start)

    @property
    def up(self) -> int:
        return self._up

    @property
    def down(self) -> int:
        return self._down

    @property
    def n_channels(self) -> int:
        return self._n_channels

    @property
    def taps(self) -> np.ndarray:
        return self._taps

    @property
    def n_in(self) -> int:
        """Input samples taken since the start (or the last :meth:`reset`)."""
        return self._n_in

    @property
    def n_out(self) -> int:
        """Outputs given since the start (or the last :meth:`reset`)."""
        return self._n_out

    def completing_input(self, k: Any) -> Any:
        """For output(s) ``k`` (counted like :attr:`n_out`), the input sample (counted like
        :attr:`n_in`) whose arrival completes it: ``(k * down + half_len) // up``.

        Output ``k`` stands for input position ``k * down / up``; it leaves :meth:`process`
        in the call that takes this input sample. Works on ints and integer arrays.
        """
        return (k * self._down + self._half_len) // self._up

    @property
    def latency(self) -> float:
        """Input samples from an input instant to the emission of its output (half_len / up)."""
        return self._half_len / self._up

    def reset(self) -> None:
        """Forget the stream: the next sample starts it again."""
        self._history = np.zeros((self._n_hist, self._n_channels))
        self._n_in = 0
        self._n_out = 0
        self._started = False

    def process(self, X: Any) -> np.ndarray:
        """Resample a block, continuing the stream.

        Parameters
        ----------
        X : (T, n_channels) array_like, or (T,) when n_channels == 1; not modified.

        Returns
        -------
        (n_out, n_channels) or (n_out,): the outputs whose inputs have all arrived, float32 for
        float32 input and float64 otherwise. Over a stream, n_out sums to the outputs of
        ``resample_poly`` minus the latency's worth.

        Raises
        ------
        ShapeError, InvalidInputError
            Wrong shape; a NaN/Inf (sample and channel named, state unchanged).
        """
        arr = np.asarray(X)
        C = self._n_channels
        if arr.dtype.kind not in "fiub":
            raise ShapeError(f"resample: expected real numbers, got dtype {arr.dtype}")
        if arr.ndim == 2 and arr.shape[1] == C:
            block = arr
        elif arr.ndim == 1 and C == 1:
            block = arr.reshape(-1, 1)
        else:
            also = " or (T,)" if C == 1 else ""
            raise ShapeError(f"resample: expected shape (T, {C}){also}, got {arr.shape}")
        dtype = arr.dtype if arr.dtype in _SAMPLE_DTYPES else np.dtype(np.float64)
        block = block.astype(np.float64)
        bad = ~np.isfinite(block)
        if bad.any():
            t, c = np.argwhere(bad)[0]
            raise InvalidInputError(
                f"resample: sample {t}, channel {c}: expected a finite value, got "
                f"{block[t, c]}; the resampler state was left unchanged"
            )
        T = block.shape[0]
        if T == 0:
            return np.zeros((0, *arr.shape[1:]), dtype=dtype)
        if not self._started:
            self._history[...] = block[0] if self._start == "steady" else 0.0
            self._started = True
        ext = np.concatenate([self._history, block])  # ext[e] is input e + n_in - n_hist
        up, down, half_len = self._up, self._down, self._half_len
        n_in = self._n_in + T
        # outputs k with (k * down + half_len) // up <= n_in - 1 are complete
        k_end = max(self._n_out, ((n_in * up - 1 - half_len) // down) + 1)
        k = np.arange(self._n_out, k_end, dtype=np.int64)
        when = k * down + half_len
        last = when // up - (self._n_in - self._n_hist)  # ext index of the newest input used
        phase = when % up
        out = np.zeros((k.size, C))
        for j in range(self._n_hist):
            out += self._polyphase[phase, j][:, None] * ext[last - j]
        self._history = ext[-self._n_hist :].copy()
        self._n_in = n_in
        self._n_out = int(k_end)
        out = out.astype(dtype, copy=False)
        return out if arr.ndim == 2 else out[:, 0]

    def snapshot(self) -> bytes:
        """The running state as a :mod:`streamgru.state` envelope, kind ``"StreamResampler"``,
        dtype float64: array ``history`` (n_hist, n_channels), meta ``n_in``, ``n_out``,
        ``started``; digest ``ratio`` ("up/down"), for :meth:`restore` on a resampler with the
        same ratio and channel count."""
        return pack(
            "StreamResampler",
            np.float64,
            self._state_digest(),
            {"history": self._history},
            meta={"n_in": self._n_in, "n_out": self._n_out, "started": int(self._started)},
        )

    def _state_digest(self) -> dict[str, str]:
        return {"ratio": f"{self._up}/{self._down}"}

    def restore(self, blob: bytes) -> None:
        """Set the running state from :meth:`snapshot` bytes.

        Raises
        ------
        SnapshotError : a :mod:`streamgru.state` subclass (another ratio: SnapshotMismatchError,
            another channel count: SnapshotShapeError, ...); the state is unchanged then.
        """
        env = unpack(blob, "StreamResampler", np.float64, self._state_digest())
        history = env.array("history", self._history.shape)
        n_in, n_out = env.meta_int("n_in"), env.meta_int("n_out")
        started = env.meta_int("started", 0, 1)
        self._history = history
        self._n_in, self._n_out, self._started = n_in, n_out, bool(started)

    def __reduce__(self) -> tuple:
        """Pickle / deepcopy as settings (up, down, n_channels, start) + :meth:`snapshot`."""
        settings = {"n_channels": self._n_channels, "start": self._start}
        return (rebuild, (type(self), (self._up, self._down), settings, self.snapshot()))

    def __repr__(self) -> str:
        return (
            f"StreamResampler(up={self._up}, down={self._down}, n_channels={self._n_channels}, "
            f"start={self._start!r}, latency={self.latency:g} samples)"
        )
