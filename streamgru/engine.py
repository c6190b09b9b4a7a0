"""Stepper and BatchStepper: the owners of streaming state, thin wrappers over the kernels.

A stepper holds the packed weights (cast once to its dtype), the hidden state, the outputs and
all scratch memory, allocated at construction; ``step`` and ``step_chunk`` validate their input
and hand the buffers to one compiled call. Where the install built the C extension
``streamgru._stepcall``, each Stepper's ``step`` is a C object doing the checks, the call and
the output array (about 0.9 us a sample instead of 1.35 at I=8, H=64); inputs it does not
take as they are go to the Python method.

Thread safety: a model is immutable and may be shared by any number of threads; a stepper is
not thread-safe — use one stepper per thread (the kernels release the GIL, so steppers on
different threads run in parallel).
"""

from __future__ import annotations

import functools
import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np

from . import state as _state
from .errors import (
    BackendUnavailableError,
    ConfigError,
    InvalidInputError,
    ShapeError,
)
from .kernels import cstep as _cstep
from .kernels import fused as _fused
from .kernels import gru as _k
from .kernels import step as _step
from .kernels.layout import (
    aligned_zeros,
    chunk_work_size,
    many_work_size,
    pack_model,
    state_size,
)
from .kernels.nonrt import entry_point

try:  # the C fast path of Stepper.step, built when the install had a C compiler
    from ._stepcall import StepCall as _StepCall
except ImportError:  # pragma: no cover - exercised by installs without a compiler
    _StepCall = None

if TYPE_CHECKING:  # pragma: no cover
    from .model.core import GRUModel

_ndarray = np.ndarray  # one global lookup in the per-sample path instead of two

# Blocks shorter than this run sample by sample in one call (``kernels.step.gru_steps``): the
# batched input projection of ``gru_chunk`` pays only from about this length on.
SHORT_CHUNK = 8

_DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
#: The envelope kinds a BatchStepper restores: CPU and CUDA steppers read each other's blobs.
BATCH_KINDS = ("BatchStepper", "CudaBatchStepper")


def checked_hidden(value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as an array if it is a finite float array of ``shape``; raises otherwise."""
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        raise ShapeError(f"hidden: expected a float array of shape {shape}, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ShapeError(f"hidden: expected shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError("hidden: values must be finite")
    return arr


def _resolve_dtype(dtype: Any) -> np.dtype:
    key = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if key not in _DTYPES:
        raise ShapeError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return _DTYPES[key]


def pack_batch_state(
    stepper: Any,
    hidden: np.ndarray,
    arrays: dict[str, np.ndarray] | None = None,
    digest: dict[str, str] | None = None,
) -> bytes:
    """A BatchStepper-family envelope (:mod:`streamgru.state`): ``hidden`` is the flat
    (num_layers * n_streams * hidden_size,) state, stored as (num_layers, n_streams,
    hidden_size); ``arrays`` / ``digest`` add what a subclass carries (a CUDA filter)."""
    model = stepper.model
    shape = (model.num_layers, stepper.n_streams, model.hidden_size)
    return _state.pack(
        type(stepper).__name__ if type(stepper).__name__ in BATCH_KINDS else BATCH_KINDS[0],
        stepper.dtype,
        {"model": model.checksum(), **(digest or {})},
        {"hidden": np.asarray(hidden).reshape(shape), **(arrays or {})},
        meta={"n_steps": int(stepper.n_steps)},
    )


def unpack_batch_state(stepper: Any, blob: Any) -> tuple[np.ndarray, int, _state.Envelope]:
    """Check a BatchStepper-family envelope against ``stepper`` (model, dtype, stream count).

    Returns (hidden (num_layers * n_streams * hidden_size,) of the stepper's dtype, n_steps,
    the envelope); raises a :class:`~streamgru.errors.SnapshotError` subclass.
    """
    model = stepper.model
    env = _state.unpack(blob, BATCH_KINDS, stepper.dtype, {"model": model.checksum()})
    shape = (model.num_layers, stepper.n_streams, model.hidden_size)
    hidden = env.array("hidden", shape, stepper.dtype).ravel()
    return hidden, env.meta_int("n_steps"), env


def resolve_filter(model: GRUModel, filter: Any):
    """The FilterChain a stepper runs: ``"model"`` (the chain in the model's metadata, if any),
    ``None`` / ``"none"`` (no filter) or a ``FilterChain`` (copied, reset). Returns a chain or None.
    """
    from .signal.chain import FilterChain

    if filter is None or (isinstance(filter, str) and filter == "none"):
        return None
    if isinstance(filter, str) and filter == "model":
        spec = model.meta_json("filter")
        if not spec:
            return None
        try:
            chain = FilterChain.from_dict(spec)
        except ConfigError as exc:
            raise ConfigError(
                f"the model's metadata 'filter' is not a valid filter chain: {exc}"
            ) from exc
    elif isinstance(filter, FilterChain):
        chain = filter.copy()
        chain.reset()
    else:
        raise ConfigError(
            f"filter: expected 'model', None, 'none' or a FilterChain, got {filter!r}"
        )
    if chain.n_channels != model.input_size:
        raise ShapeError(
            f"filter has {chain.n_channels} channel(s) but the model takes input_size={model.input_size}"
        )
    return chain


class Stepper:
    """One stream: moves the hidden state one sample (or one chunk) at a time.

    Build with ``model.stepper(dtype="float32")``. After sample t, :meth:`step` returns the head
    applied to the top layer's hidden state h_t: the same as running the whole model over
    x[0..t] and taking the last time step, at O(1) cost per sample.

    Input conditioning runs in the same compiled call: the filter chain (``filter="model"``, the
    default, uses the chain stored in the model's metadata, if any) and then the per-channel
    normalisation ``(x - input_mean) / input_std`` from the metadata (``normalize=True``).

    Parameters
    ----------
    model : GRUModel
    dtype : "float32" (default) or "float64": the compute and state precision.
    filter : "model" (default), None / "none", or a :class:`streamgru.FilterChain` (copied).
    normalize : apply the model's ``input_mean`` / ``input_std`` metadata when present.
    """

    def __init__(
        self, model: GRUModel, dtype: Any = "float32", filter: Any = "model", normalize: bool = True
    ) -> None:
        self.model = model
        self.dtype = _resolve_dtype(dtype)
        self._chain = resolve_filter(model, filter)
        self._normalize = bool(normalize)
        self._fbuf = self._build_conditioning(model, self._chain, normalize)
        self._params, self._meta = pack_model(
            model.layers, model.head, model.reset_after, self.dtype
        )
        self._digest = bytes.fromhex(model.checksum())
        self._state = aligned_zeros(state_size(self._meta), self.dtype)
        n_hidden = model.num_layers * model.hidden_size
        self._hidden_view = self._state[:n_hidden]
        self._y = self._state[n_hidden : n_hidden + model.output_size]
        self._x = np.zeros(model.input_size, dtype=self.dtype)
        self._in_shape = (model.input_size,)
        self._input_size = model.input_size
        self._work = aligned_zeros(0, self.dtype)
        self._work_per_sample = chunk_work_size(self._meta, 1) + model.input_size
        self._n_steps = 0
        self._fast_step = None
        self._bind_kernels()

    def _bind_kernels(self) -> None:
        """Bind this stepper's buffers into its kernels' raw entry points, once.

        ``self._step_call(x)``, ``self._steps_call(X, Y)`` and ``self._chunk_call(X, Y, work)``
        return the kernels' status. The raw entry points check no types (they skip numba's
        dispatch): :meth:`step` and :meth:`step_chunk` hand them only ndarrays of exactly
        ``self.dtype`` with the right dimensions, sizes and layout.
        """
        conditioned = self._fbuf is not None
        # the conditioned kernels take the packed filter state right after the GRU state
        bound = (self._params, self._meta, self._state) + ((self._fbuf,) if conditioned else ())
        step, steps, chunk = (
            (_step.gru_step_conditioned, _step.gru_steps_conditioned, _fused.gru_chunk_conditioned)
            if conditioned
            else (_step.gru_step, _step.gru_steps, _k.gru_chunk)
        )
        self._step_call = functools.partial(entry_point(step, self.dtype), *bound)
        self._steps_call = functools.partial(entry_point(steps, self.dtype), *bound)
        self._chunk_call = functools.partial(entry_point(chunk, self.dtype), *bound)
        if _StepCall is not None and type(self).step is Stepper.step:
            # ``self.step`` becomes the C object: it does the checks, the call and the output
            # array itself and hands anything unusual to the Python method below, which
            # converts, validates and raises. A subclass overriding ``step`` keeps its own.
            self._fast_step = _StepCall(
                _cstep.step_address(self.dtype.name, conditioned),  # compiled on first use
                self._params,
                self._meta,
                self._state,
                self._fbuf,
                self.model.num_layers * self.model.hidden_size,
                self.model.output_size,
                self.model.input_size,
                self._step_python,
            )
            self.step = self._fast_step

    @property
    def n_steps(self) -> int:
        """Samples stepped since construction, the last :meth:`reset` or :meth:`restore`."""
        fast = self._fast_step
        return self._n_steps + (fast.count if fast is not None else 0)

    @n_steps.setter
    def n_steps(self, value: int) -> None:
        if self._fast_step is not None:
            self._fast_step.count = 0
        self._n_steps = int(value)

    @property
    def compiled_step(self) -> bool:
        """True when :meth:`step` runs the C fast path (``streamgru._stepcall``); False when the
        package was installed without a C compiler and the Python method does it all."""
        return self._fast_step is not None

    @staticmethod
    def _build_conditioning(model: GRUModel, chain, normalize: bool) -> np.ndarray | None:
        from .signal.normalize import Normalizer

        norm = Normalizer.from_metadata(model.metadata) if normalize else None
        if norm is not None and norm.mean.size not in (1, model.input_size):
            raise ShapeError(
                f"input_mean/input_std have {norm.mean.size} values, expected {model.input_size} (input_size)"
            )
        has_norm = norm is not None and not norm.is_identity
        if chain is None and not has_norm:
            return None
        if chain is None:
            sos, zi_unit = np.zeros((0, 6)), np.zeros((0, 2))
        else:
            state = chain.kernel_state()
            sos, zi_unit = state.sos, state.zi_unit
        mean = norm.mean if has_norm else 0.0
        std = norm.std if has_norm else 1.0
        return _fused.pack_conditioning(sos, zi_unit, mean, std, model.input_size)

    @property
    def filter(self):
        """A copy of the stepper's filter chain with its current state, or None."""
        if self._chain is None:
            return None
        chain = self._chain.copy()
        if self._fbuf[2]:
            chain.zi = _fused.fbuf_views(self._fbuf)["zi"]
        return chain

    # ----------------------------------------------------------------- sizes
    @property
    def input_size(self) -> int:
        return self.model.input_size

    @property
    def output_size(self) -> int:
        return self.model.output_size

    # ------------------------------------------------------------------ step
    def step(self, x: Any) -> np.ndarray:
        """Advance by one sample.

        On installs with the compiled fast path this method is replaced, per stepper, by an
        object doing the same in C (:attr:`compiled_step`); the results are the same.

        Parameters
        ----------
        x : float (when input_size == 1) or array-like of shape (input_size,)

        Returns
        -------
        (output_size,) ndarray of the stepper's dtype (a new array).

        Raises
        ------
        ShapeError : x is not of shape (input_size,)
        InvalidInputError : x holds NaN or Inf; the state is left unchanged.
        """
        # The raw entry point trusts its arguments: hand it only a 1-D ndarray of the dtype
        # (it checks the length itself and answers WRONG_SIZE).
        if x.__class__ is not _ndarray or x.dtype is not self.dtype or x.ndim != 1:
            x = self._coerce_sample(x)
        status = self._step_call(x)
        if status:
            self._raise_for_status(status, x)
        self._n_steps += 1
        return self._y.copy()

    # the C fast path's fallback: the class's method, whatever ``self.step`` is bound to
    _step_python = step

    def _raise_for_status(self, status: int, x: np.ndarray) -> None:
        if status == _step.WRONG_SIZE:
            self._coerce_sample(x)  # raises the ShapeError
            raise AssertionError(f"step kernel refused a sample of shape {x.shape}")
        raise InvalidInputError(
            f"sample has a non-finite value {x[status - 1]!r} at feature {status - 1}; state left unchanged"
        )

    def _coerce_sample(self, x: Any) -> np.ndarray:
        if isinstance(x, (float, int, np.floating, np.integer)) and not isinstance(x, bool):
            if self._in_shape != (1,):
                raise ShapeError(
                    f"x: expected an array of shape {self._in_shape}, got a scalar "
                    f"(a scalar is accepted only when input_size == 1)"
                )
            self._x[0] = x
            return self._x
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise ShapeError(
                f"x: expected a number or an array of shape {self._in_shape}, got {type(x).__name__}"
            ) from exc
        if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
            raise ShapeError(f"x: expected real numbers, got dtype {arr.dtype}")
        if arr.shape != self._in_shape:
            if arr.size == self.input_size and arr.ndim <= 1:
                arr = arr.reshape(self._in_shape)
            else:
                raise ShapeError(f"x: expected shape {self._in_shape}, got {arr.shape}")
        self._x[:] = arr
        return self._x

    def step_chunk(self, X: Any, out: np.ndarray | None = None) -> np.ndarray:
        """Advance by T samples in one compiled call; equals looping :meth:`step`.

        Parameters
        ----------
        X : (T, input_size) array-like, or (T,) when input_size == 1
        out : optional (T, output_size) C-contiguous array of the stepper's dtype to write into

        Returns
        -------
        (T, output_size) ndarray: the output after each sample.

        Raises
        ------
        ShapeError : wrong shape or dtype
        InvalidInputError : a NaN or Inf anywhere in X; nothing was advanced.
        """
        if (
            X.__class__ is not _ndarray
            or X.dtype is not self.dtype
            or X.ndim != 2
            or X.shape[1] != self._input_size
            or not X.flags.c_contiguous
        ):
            X = self._coerce_chunk(X)
        n_samples = X.shape[0]
        if out is None:
            out = np.empty((n_samples, self.output_size), dtype=self.dtype)
        else:
            self._check_out(out, n_samples)
        if n_samples < SHORT_CHUNK:
            status = self._steps_call(X, out)
        else:
            need = self._work_per_sample * n_samples
            if self._work.shape[0] < need:
                self._work = aligned_zeros(max(need, 2 * self._work.shape[0]), self.dtype)
            status = self._chunk_call(X, out, self._work)
        if status:
            t, i = divmod(int(status) - 1, self.input_size)
            raise InvalidInputError(
                f"chunk has a non-finite value {X[t, i]!r} at sample {t}, feature {i}; nothing was advanced"
            )
        self._n_steps += n_samples
        return out

    def _check_out(self, out: Any, n_samples: int) -> None:
        if (
            not isinstance(out, np.ndarray)
            or out.dtype != self.dtype
            or out.shape != (n_samples, self.output_size)
            or not out.flags.c_contiguous
            or not out.flags.writeable
        ):
            raise ShapeError(
                f"out: expected a writeable C-contiguous {self.dtype.name} array of shape "
                f"{(n_samples, self.output_size)}, got {getattr(out, 'shape', type(out).__name__)}"
            )

    def _coerce_chunk(self, X: Any) -> np.ndarray:
        try:
            arr = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise ShapeError(
                f"X: expected an array of shape (T, {self.input_size}), got {type(X).__name__}"
            ) from exc
        if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
            raise ShapeError(f"X: expected real numbers, got dtype {arr.dtype}")
        if arr.ndim == 1 and self.input_size == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != self.input_size:
            raise ShapeError(f"X: expected shape (T, {self.input_size}), got {arr.shape}")
        return np.ascontiguousarray(arr, dtype=self.dtype)

    # ----------------------------------------------------------------- state
    def reset(self) -> None:
        """Zero the hidden state and the last output; the filter waits for its first sample again."""
        self._state[:] = 0
        self.n_steps = 0
        if self._fbuf is not None:
            self._fbuf[2] = 0.0
            _fused.fbuf_views(self._fbuf)["zi"][:] = 0.0

    @property
    def hidden(self) -> np.ndarray:
        """A copy of the hidden state, shape (num_layers, hidden_size), the stepper's dtype."""
        return self._hidden_view.reshape(self.model.num_layers, self.model.hidden_size).copy()

    @hidden.setter
    def hidden(self, value: Any) -> None:
        arr = checked_hidden(value, (self.model.num_layers, self.model.hidden_size))
        self._hidden_view[:] = arr.ravel()

    @property
    def output(self) -> np.ndarray:
        """A copy of the last output, shape (output_size,)."""
        return self._y.copy()

    def snapshot(self) -> bytes:
        """The stepper's state as a :mod:`streamgru.state` envelope, kind ``"Stepper"``.

        Arrays: ``hidden`` (num_layers, hidden_size) and ``output`` (output_size,) of the
        stepper's dtype; with conditioning, ``filter_zi`` (n_sections, 2, input_size) float64
        and meta ``filter_started``; meta ``n_steps``. Digest: the model checksum and the
        conditioning setup (sections, start, normalisation), so another model or filter is
        refused.
        """
        arrays = {"hidden": self.hidden, "output": self._y}
        meta = {"n_steps": int(self.n_steps)}
        if self._fbuf is not None:
            arrays["filter_zi"] = _fused.fbuf_views(self._fbuf)["zi"]
            meta["filter_started"] = int(self._fbuf[2])
        return _state.pack("Stepper", self.dtype, self._state_digest(), arrays, meta=meta)

    def _state_digest(self) -> dict[str, str]:
        if self._fbuf is None:
            setup = "none"
        else:  # the conditioning setup without its running state (started flag, zi)
            fixed = self._fbuf.copy()
            fixed[2] = 0.0
            _fused.fbuf_views(fixed)["zi"][:] = 0.0
            setup = hashlib.sha256(fixed.astype("<f8").tobytes()).hexdigest()
        return {"model": self.model.checksum(), "filter and normalisation": setup}

    def restore(self, blob: bytes) -> None:
        """Restore a :meth:`snapshot`; refuses (with a :class:`~streamgru.errors.SnapshotError`
        subclass, the state unchanged) a blob of another kind, model, conditioning, dtype,
        shape or envelope version, truncated or corrupted."""
        env = _state.unpack(blob, "Stepper", self.dtype, self._state_digest())
        model = self.model
        hidden = env.array("hidden", (model.num_layers, model.hidden_size), self.dtype)
        output = env.array("output", (model.output_size,), self.dtype)
        n_steps = env.meta_int("n_steps")
        if self._fbuf is not None:
            zi_view = _fused.fbuf_views(self._fbuf)["zi"]
            zi = env.array("filter_zi", zi_view.shape)
            started = env.meta_int("filter_started", 0, 1)
            zi_view[:] = zi
            self._fbuf[2] = float(started)
        self._hidden_view[:] = hidden.ravel()
        self._y[:] = output
        self.n_steps = n_steps

    def __reduce__(self) -> tuple:
        """Pickle / deepcopy as settings (model, dtype, filter, normalize) + :meth:`snapshot`:
        the copy is a new stepper (its own buffers and C fast path) continuing bit-identically."""
        settings = {"dtype": self.dtype.name, "filter": self._chain, "normalize": self._normalize}
        return (_state.rebuild, (type(self), (self.model,), settings, self.snapshot()))

    def __repr__(self) -> str:
        return f"Stepper({self.model!r}, dtype={self.dtype.name}, n_steps={self.n_steps})"


class BatchStepper:
    """B independent streams sharing one model, advanced together.

    Build with ``model.stepper(n_streams=B, device="cpu")``. The recurrent products of all
    streams run as one (B, H) x (H, 3H) matrix product per layer and sample.

    Parameters
    ----------
    model : GRUModel
    n_streams : int, B >= 1
    dtype : "float32" or "float64"
    device : "cpu", "cuda" (numba.cuda) or "auto" (the GPU only above the measured
        crossover in streams, when one is present)
    **options : backend options; ``filter=`` (a FilterChain run per stream on the device) is
        supported by device="cuda". On the CPU, condition each stream with its own Stepper.
    """

    def __new__(
        cls, model: GRUModel, n_streams: int, dtype: Any = "float32", device: str = "cpu", **options
    ):
        if device not in ("cpu", "cuda", "auto"):
            raise BackendUnavailableError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
        if cls is BatchStepper and device != "cpu":
            from .cuda_engine import choose_batch_stepper

            chosen = choose_batch_stepper(model, n_streams, dtype, device, **options)
            if chosen is not None:
                return chosen
        return super().__new__(cls)

    def __init__(
        self,
        model: GRUModel,
        n_streams: int,
        dtype: Any = "float32",
        device: str = "cpu",
        **options,
    ) -> None:
        unsupported = {
            k: v for k, v in options.items() if not (k == "filter" and v in (None, "none"))
        }
        if unsupported:
            raise ConfigError(
                f"the CPU BatchStepper takes no options {sorted(unsupported)}; filtering batched "
                "streams runs on device='cuda' (or give each stream its own model.stepper(filter=...))"
            )
        if "filter" not in options and (
            model.meta_json("filter")
            or "input_mean" in model.metadata
            or "input_std" in model.metadata
        ):
            raise ConfigError(
                "this model carries an input filter or normalisation in its metadata, which the CPU "
                "BatchStepper does not run; pass filter=None to step the bare GRU, or use one "
                "model.stepper() per stream"
            )
        if (
            isinstance(n_streams, bool)
            or not isinstance(n_streams, (int, np.integer))
            or n_streams < 1
        ):
            raise ShapeError(f"n_streams must be a positive integer, got {n_streams!r}")
        self.model = model
        self.device = "cpu"
        self.n_streams = int(n_streams)
        self.dtype = _resolve_dtype(dtype)
        self._params, self._meta = pack_model(
            model.layers, model.head, model.reset_after, self.dtype
        )
        self._digest = bytes.fromhex(model.checksum())
        layers, hidden = model.num_layers, model.hidden_size
        self._hid = aligned_zeros(layers * self.n_streams * hidden, self.dtype)
        self._work = aligned_zeros(many_work_size(self._meta, self.n_streams), self.dtype)
        self._in_shape = (self.n_streams, model.input_size)
        self.n_steps = 0

    @property
    def input_size(self) -> int:
        return self.model.input_size

    @property
    def output_size(self) -> int:
        return self.model.output_size

    def step(self, X: Any, out: np.ndarray | None = None) -> np.ndarray:
        """Advance every stream by one sample: X (B, input_size) -> (B, output_size)."""
        X = self._coerce(X, 2)
        if out is None:
            out = np.empty((self.n_streams, self.output_size), dtype=self.dtype)
        status = _k.gru_step_many(self._params, self._meta, self._hid, X, out, self._work)
        if status:
            b, i = divmod(int(status) - 1, self.input_size)
            raise InvalidInputError(
                f"X has a non-finite value at stream {b}, feature {i}; no stream was advanced"
            )
        self.n_steps += 1
        return out

    def step_chunk(self, X: Any) -> np.ndarray:
        """Advance every stream by T samples: X (B, T, input_size) -> (B, T, output_size)."""
        X = self._coerce(X, 3)
        out = np.empty((self.n_streams, X.shape[1], self.output_size), dtype=self.dtype)
        status = _k.gru_chunk_many(self._params, self._meta, self._hid, X, out, self._work)
        if status:
            flat = int(status) - 1
            b, rest = divmod(flat, X.shape[1] * self.input_size)
            t, i = divmod(rest, self.input_size)
            raise InvalidInputError(
                f"X has a non-finite value at stream {b}, sample {t}, feature {i}; no stream was advanced"
            )
        self.n_steps += X.shape[1]
        return out

    def _coerce(self, X: Any, ndim: int) -> np.ndarray:
        try:
            arr = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise ShapeError(f"X: expected a numeric array, got {type(X).__name__}") from exc
        if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
            raise ShapeError(f"X: expected real numbers, got dtype {arr.dtype}")
        if ndim == 2 and arr.ndim == 1 and self.input_size == 1 and arr.shape[0] == self.n_streams:
            arr = arr[:, None]
        if ndim == 3 and arr.ndim == 2 and self.input_size == 1 and arr.shape[0] == self.n_streams:
            arr = arr[:, :, None]
        expected = "(B, input_size)" if ndim == 2 else "(B, T, input_size)"
        if arr.ndim != ndim or arr.shape[0] != self.n_streams or arr.shape[-1] != self.input_size:
            raise ShapeError(
                f"X: expected shape {expected} = "
                f"{(self.n_streams, self.input_size) if ndim == 2 else (self.n_streams, 'T', self.input_size)}, "
                f"got {arr.shape}"
            )
        return np.ascontiguousarray(arr, dtype=self.dtype)

    def reset(self, streams: Any = None) -> None:
        """Zero the hidden state of every stream, or only of the given stream indices."""
        hid = self._hid.reshape(self.model.num_layers, self.n_streams, self.model.hidden_size)
        if streams is None:
            hid[:] = 0
            self.n_steps = 0
        else:
            hid[:, np.asarray(streams, dtype=np.int64)] = 0

    @property
    def hidden(self) -> np.ndarray:
        """A copy of all hidden states, shape (n_streams, num_layers, hidden_size)."""
        hid = self._hid.reshape(self.model.num_layers, self.n_streams, self.model.hidden_size)
        return np.ascontiguousarray(hid.transpose(1, 0, 2))

    @hidden.setter
    def hidden(self, value: Any) -> None:
        arr = checked_hidden(value, (self.n_streams, self.model.num_layers, self.model.hidden_size))
        hid = self._hid.reshape(self.model.num_layers, self.n_streams, self.model.hidden_size)
        hid[:] = arr.transpose(1, 0, 2)

    def snapshot(self) -> bytes:
        """All streams' state as a :mod:`streamgru.state` envelope, kind ``"BatchStepper"``:
        array ``hidden`` (num_layers, n_streams, hidden_size) of the dtype, meta ``n_steps``,
        digest the model checksum. A CudaBatchStepper of the same model restores it."""
        return pack_batch_state(self, self._hid)

    def restore(self, blob: bytes) -> None:
        """Restore a :meth:`snapshot` of a CPU or CUDA BatchStepper with the same model, dtype
        and stream count (a CUDA stepper's filter state is not used: this stepper runs no
        filter); anything else raises a :class:`~streamgru.errors.SnapshotError` subclass and
        leaves the state unchanged."""
        hidden, n_steps, _ = unpack_batch_state(self, blob)
        self._hid[:] = hidden
        self.n_steps = n_steps

    def __reduce__(self) -> tuple:
        """Pickle / deepcopy as settings (model, n_streams, dtype) + :meth:`snapshot`."""
        args = (self.model, self.n_streams)
        settings = {"dtype": self.dtype.name, "device": "cpu", "filter": None}
        return (_state.rebuild, (type(self), args, settings, self.snapshot()))

    def __repr__(self) -> str:
        return (
            f"BatchStepper({self.model!r}, n_streams={self.n_streams}, dtype={self.dtype.name}, "
            f"device={self.device})"
        )
