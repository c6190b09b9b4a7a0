"""FilterChain: a scipy-designed SOS filter with per-channel state, run by the numba kernels.

>>> import numpy as np
>>> from streamgru import FilterChain
>>> chain = FilterChain.preset("ecg-monitor", fs=360.0, mains=50)
>>> y = chain.step(0.25)                      # one sample → (1,) float64
>>> Y = chain.process(np.zeros(256))          # a block → the same shape and dtype
>>> blob = chain.snapshot(); chain.restore(blob)  # a streamgru.state envelope

Start-up without transient (``start="steady"``, the default): on the first sample ``x0`` the
state becomes ``sosfilt_zi(sos)[:, :, None] * x0``, so a signal sitting at a baseline does not
ring. The output then equals, for any chunking, within 1e-12 in float64::

    scipy.signal.sosfilt(sos, X, axis=0, zi=scipy.signal.sosfilt_zi(sos)[:, :, None] * X[0])[0]

``start="zero"`` starts from a zero state (``sosfilt(sos, X, axis=0)``), to reproduce pipelines
that used it.

Float32 samples are filtered with float64 state and arithmetic and rounded once on output: the
result is scipy's float64 result on the same float32 input, rounded to float32.

A chain is not thread-safe: one chain per stream, used from one thread at a time.
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from ..errors import ConfigError, InvalidInputError, ShapeError
from ..kernels.sos import sos_filter_chunk_with_start, sos_filter_sample_with_start
from ..state import pack, rebuild, unpack
from .chain_dict import chain_from_dict, chain_to_dict
from .design import (
    check_fs,
    design_sos,
    notch_list,
    preset_parameters,
    steady_state_unit,
    validate_sos,
)

#: Start modes: steady state from the first sample, or zero state.
START_MODES = ("steady", "zero")
_FLOAT_KINDS = "fiub"
_SAMPLE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class FilterKernelState(NamedTuple):
    """The live arrays a compiled caller needs to run a chain's filter (see ``kernel_state``).

    Attributes
    ----------
    sos : (n_sections, 6) float64, C-contiguous, read-only
    zi : (n_sections, 2, n_channels) float64, C-contiguous, writable: the chain's own state
    zi_unit : (n_sections, 2) float64, C-contiguous, read-only: ``sosfilt_zi(sos)``, or zeros
        for ``start="zero"``
    started : (1,) uint8, writable: 0 until the first sample has set ``zi``
    """

    sos: np.ndarray
    zi: np.ndarray
    zi_unit: np.ndarray
    started: np.ndarray


def _sample_dtype(arr: np.ndarray, what: str) -> np.dtype:
    """float32 and float64 are kept; other real dtypes become float64."""
    if arr.dtype in _SAMPLE_DTYPES:
        return arr.dtype
    if arr.dtype.kind not in _FLOAT_KINDS:
        raise ShapeError(f"{what}: expected real numbers, got dtype {arr.dtype}")
    return np.dtype(np.float64)


def sos_digest(sos: np.ndarray) -> bytes:
    """First 8 bytes of SHA-256 over the sections as float64 little-endian: what snapshots carry
    to refuse filter state from other sections."""
    return hashlib.sha256(np.ascontiguousarray(sos, dtype="<f8").tobytes()).digest()[:8]


class FilterChain:
    """A causal IIR filter in second-order sections with state per channel.

    Build one with :meth:`design`, :meth:`preset` or :meth:`from_sos` (the constructor takes
    the same arguments as :meth:`from_sos`).

    Parameters
    ----------
    sos : array_like, (n_sections, 6)
        Rows ``[b0, b1, b2, 1, a1, a2]``, stable; checked by
        :func:`streamgru.signal.design.validate_sos`.
    n_channels : int
        Channels filtered in parallel, each with its own state, >= 1.
    fs : float, optional
        Sample rate in Hz the sections were designed for (recorded, not used by the maths).
    start : {"steady", "zero"}
        State set from the first sample (steady state, no transient) or zero.
    """

    _fs: float | None
    _n_channels: int
    _start: str
    _spec: dict[str, Any]
    _sos: np.ndarray
    _zi_unit: np.ndarray
    _zi: np.ndarray
    _started: np.ndarray

    def __init__(
        self,
        sos: Any,
        n_channels: int = 1,
        fs: float | None = None,
        start: str = "steady",
    ) -> None:
        if isinstance(n_channels, bool) or not isinstance(n_channels, numbers.Integral):
            raise ConfigError(f"n_channels: expected an integer >= 1, got {n_channels!r}")
        if n_channels < 1:
            raise ConfigError(f"n_channels: must be >= 1, got {n_channels}")
        if start not in START_MODES:
            raise ConfigError(f"start: expected one of {START_MODES}, got {start!r}")
        sos = validate_sos(sos)
        self._fs = None if fs is None else check_fs(fs)
        self._n_channels = int(n_channels)
        self._start = start
        self._spec = {"kind": "sos"}
        sos.setflags(write=False)
        self._sos = sos
        unit = steady_state_unit(sos) if start == "steady" else np.zeros((sos.shape[0], 2))
        unit = np.ascontiguousarray(unit, dtype=np.float64)
        unit.setflags(write=False)
        self._zi_unit = unit
        # Live state: never rebound, only written in place (kernel_state() hands these out).
        self._zi = np.zeros((sos.shape[0], 2, self._n_channels), dtype=np.float64)
        self._started = np.zeros(1, dtype=np.uint8)

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_sos(
        cls, sos: Any, n_channels: int = 1, fs: float | None = None, start: str = "steady"
    ) -> FilterChain:
        """A chain running hand-made (or externally designed) second-order sections."""
        return cls(sos, n_channels=n_channels, fs=fs, start=start)

    @classmethod
    def design(
        cls,
        fs: float,
        highpass: float | None = None,
        lowpass: float | None = None,
        notch: Any = None,
        order: int = 4,
        n_channels: int = 1,
        notch_q: float = 30.0,
        start: str = "steady",
    ) -> FilterChain:
        """A chain designed by :func:`streamgru.signal.design.design_sos` (same arguments)."""
        sos = design_sos(fs, highpass, lowpass, notch, order, notch_q)
        chain = cls(sos, n_channels=n_channels, fs=fs, start=start)
        chain._spec = {
            "kind": "design",
            "highpass": None if highpass is None else float(highpass),
            "lowpass": None if lowpass is None else float(lowpass),
            "notch": notch_list(notch),
            "order": int(order),
            "notch_q": float(notch_q),
        }
        return chain

    @classmethod
    def preset(
        cls,
        name: str,
        fs: float,
        mains: int = 50,
        n_channels: int = 1,
        start: str = "steady",
    ) -> FilterChain:
        """A chain from a named preset (``ecg-monitor``, ``ecg-diagnostic``, ``eeg``, ``emg``,
        ``ppg``; see :mod:`streamgru.signal.design`) at sample rate ``fs`` with ``mains`` 50/60 Hz.
        """
        params = preset_parameters(name, fs, mains)
        chain = cls(design_sos(**params), n_channels=n_channels, fs=fs, start=start)
        chain._spec = {"kind": "preset", "preset": name, "mains": int(mains)}
        return chain

    # -------------------------------------------------------------- properties
    @property
    def sos(self) -> np.ndarray:
        """A copy of the sections, (n_sections, 6) float64.

        A copy rather than a read-only view because ``scipy.signal.sosfilt`` (1.17) refuses
        read-only float64 sections ("buffer source array is read-only"); the chain's own
        array, read-only, is in :meth:`kernel_state`.
        """
        return self._sos.copy()

    @property
    def fs(self) -> float | None:
        """Sample rate in Hz the filter was designed for (None for raw sections without one)."""
        return self._fs

    @property
    def n_channels(self) -> int:
        """Channels filtered in parallel, C."""
        return self._n_channels

    @property
    def n_sections(self) -> int:
        """Second-order sections in the cascade."""
        return int(self._sos.shape[0])

    @property
    def start(self) -> str:
        """``"steady"`` or ``"zero"``."""
        return self._start

    @property
    def started(self) -> bool:
        """False until the first sample (after construction or :meth:`reset`) has set ``zi``."""
        return bool(self._started[0])

    @property
    def zi(self) -> np.ndarray:
        """A copy of the state, (n_sections, 2, n_channels) float64 (scipy's ``zi`` layout for
        ``axis=0``). Zeros while not :attr:`started`.

        Setting it copies the given array in (shape checked, finite) and marks the chain
        started, so the next sample continues from it instead of the steady-state start.
        """
        return self._zi.copy()

    @zi.setter
    def zi(self, value: Any) -> None:
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != self._zi.shape:
            raise ShapeError(f"zi: expected shape {self._zi.shape}, got {arr.shape}")
        if not np.isfinite(arr).all():
            raise InvalidInputError("zi: expected finite values, got NaN or Inf")
        self._zi[...] = arr
        self._started[0] = 1

    # ---------------------------------------------------------------- filtering
    def process(self, X: Any) -> np.ndarray:
        """Filter a block of samples, continuing from the current state.

        Parameters
        ----------
        X : (T, n_channels) array_like, or (T,) when n_channels == 1
            float32 and float64 are kept; other real dtypes are converted to float64.
            Not modified.

        Returns
        -------
        ndarray, the shape of ``X``, dtype float32 or float64: the filtered samples.

        Raises
        ------
        ShapeError
            Wrong shape or a non-real dtype.
        InvalidInputError
            A NaN or Inf in ``X`` (the message names sample and channel); the state is unchanged.
        """
        arr = np.asarray(X)
        dtype = _sample_dtype(arr, "process")
        C = self._n_channels
        if arr.ndim == 2 and arr.shape[1] == C:
            block = np.array(arr, dtype=dtype, order="C", copy=True)
        elif arr.ndim == 1 and C == 1:
            block = np.array(arr, dtype=dtype, order="C", copy=True).reshape(-1, 1)
        else:
            also = " or (T,)" if C == 1 else ""
            raise ShapeError(f"process: expected shape (T, {C}){also}, got {arr.shape}")
        status = sos_filter_chunk_with_start(
            self._sos, self._zi, self._zi_unit, self._started, block
        )
        if status >= 0:
            t, c = divmod(int(status), C)
            raise InvalidInputError(
                f"process: sample {t}, channel {c}: expected a finite value, got "
                f"{block[t, c]}; the filter state was left unchanged"
            )
        return block.reshape(arr.shape)

    def step(self, x: Any) -> np.ndarray:
        """Filter one sample of all channels, continuing from the current state.

        Parameters
        ----------
        x : (n_channels,) array_like, or a number when n_channels == 1
            float32 is kept (a float32 array or numpy scalar); anything else gives float64.

        Returns
        -------
        (n_channels,) ndarray, float32 or float64, a new array.

        Raises
        ------
        ShapeError, InvalidInputError
            As :meth:`process`; on a NaN/Inf the state is unchanged.
        """
        if type(x) is float:  # the common scalar case, kept cheap
            out = np.array((x,))
        else:
            arr = np.asarray(x)
            out = np.array(arr, dtype=_sample_dtype(arr, "step"), copy=True, ndmin=1)
        if out.shape != (self._n_channels,):
            raise ShapeError(
                f"step: expected shape ({self._n_channels},)"
                + (" or a number" if self._n_channels == 1 else "")
                + f", got {np.shape(x)}"
            )
        status = sos_filter_sample_with_start(
            self._sos, self._zi, self._zi_unit, self._started, out
        )
        if status >= 0:
            raise InvalidInputError(
                f"step: channel {status}: expected a finite value, got {out[status]}; "
                "the filter state was left unchanged"
            )
        return out

    def reset(self) -> None:
        """Forget the state: the next sample starts the filter again (steady or zero)."""
        self._zi[...] = 0.0
        self._started[0] = 0

    # ------------------------------------------------------------------ copies
    def copy(self) -> FilterChain:
        """An independent chain with the same sections, settings and current state."""
        other = FilterChain.__new__(FilterChain)
        other._fs = self._fs
        other._n_channels = self._n_channels
        other._start = self._start
        other._spec = dict(self._spec)
        other._sos = self._sos  # read-only, shared
        other._zi_unit = self._zi_unit  # read-only, shared
        other._zi = self._zi.copy()
        other._started = self._started.copy()
        return other

    def kernel_state(self) -> FilterKernelState:
        """The live arrays for running this chain's filter inside another compiled kernel.

        Returns
        -------
        FilterKernelState(sos, zi, zi_unit, started)
            sos : (n_sections, 6) float64, C-contiguous, read-only
            zi : (n_sections, 2, n_channels) float64, C-contiguous: the chain's own state array
            zi_unit : (n_sections, 2) float64, C-contiguous, read-only
            started : (1,) uint8: the chain's own started flag

        ``zi`` and ``started`` are the arrays the chain itself uses, not copies: a kernel that
        runs :func:`streamgru.kernels.sos.sos_filter_sample_with_start` (or, having checked the
        input and handled ``started``, :func:`~streamgru.kernels.sos.sos_init_steady` then
        :func:`~streamgru.kernels.sos.sos_filter_sample`) on them leaves the chain exactly as if
        :meth:`step` had been called. The chain never rebinds them: :meth:`reset`,
        :meth:`restore` and the ``zi`` setter write in place, so references stay valid for the
        chain's lifetime. Use from one thread at a time, as the chain itself.
        """
        return FilterKernelState(self._sos, self._zi, self._zi_unit, self._started)

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """The chain's settings as a JSON-safe dict (not its running state).

        A designed chain records its design (preset name, fs and mains, or the explicit
        highpass/lowpass/notch/order/notch_q); every chain records its sections (``sos``),
        ``n_channels`` and ``start``. ``json.dumps(chain.to_dict())`` is what a model file
        carries under ``filter``; :meth:`from_dict` rebuilds the chain from the recorded
        sections, so a model keeps the exact filter it was trained behind even if a preset's
        definition or scipy's design changes later (:mod:`streamgru.signal.chain_dict`).
        """
        return chain_to_dict(self)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any] | str) -> FilterChain:
        """Rebuild a chain from :meth:`to_dict` output (a dict or its JSON string)."""
        return chain_from_dict(cls, spec)

    def snapshot(self) -> bytes:
        """The running state as a :mod:`streamgru.state` envelope, kind ``"FilterChain"``,
        dtype float64: array ``zi`` (n_sections, 2, n_channels), meta ``started``, digest
        ``sections`` (SHA-256 of the sos as float64 little-endian), for :meth:`restore` on a
        chain with the same sections and channel count."""
        return pack(
            "FilterChain",
            np.float64,
            self._state_digest(),
            {"zi": self._zi},
            meta={"started": int(self._started[0])},
        )

    def _state_digest(self) -> dict[str, str]:
        sections = np.ascontiguousarray(self._sos, dtype="<f8").tobytes()
        return {"sections": hashlib.sha256(sections).hexdigest()}

    def restore(self, blob: bytes) -> None:
        """Set the running state from :meth:`snapshot` bytes.

        Raises
        ------
        SnapshotError
            A :mod:`streamgru.state` subclass: truncated or corrupt bytes, another envelope
            version or kind, other sections (``SnapshotMismatchError``), another channel count
            (``SnapshotShapeError``), NaN/Inf in the state. The state is unchanged then.
        """
        env = unpack(blob, "FilterChain", np.float64, self._state_digest())
        zi = env.array("zi", self._zi.shape)
        started = env.meta_int("started", 0, 1)
        self._zi[...] = zi
        self._started[0] = started

    def __reduce__(self) -> tuple:
        """Pickle / deepcopy as settings (:meth:`to_dict`) + :meth:`snapshot`."""
        return (rebuild, (type(self).from_dict, (self.to_dict(),), {}, self.snapshot()))

    def __repr__(self) -> str:
        kind = self._spec["kind"]
        if kind == "preset":
            what = f"preset={self._spec['preset']!r}, fs={self._fs}, mains={self._spec['mains']}"
        elif kind == "design":
            parts = [f"fs={self._fs}"]
            for key in ("highpass", "lowpass"):
                if self._spec[key] is not None:
                    parts.append(f"{key}={self._spec[key]}")
            if self._spec["notch"]:
                parts.append(f"notch={self._spec['notch']}")
            parts.append(f"order={self._spec['order']}")
            what = ", ".join(parts)
        else:
            what = f"sos=<{self.n_sections} sections>, fs={self._fs}"
        return (
            f"FilterChain({what}, n_channels={self._n_channels}, n_sections={self.n_sections}, "
            f"start={self._start!r}, started={self.started})"
        )
