"""Stepper and BatchStepper: the owners of streaming state, thin wrappers over the kernels.

BatchStepper lives in :mod:`streamgru.batch_engine` and is re-exported here.

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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from . import state as _state
from .batch_engine import (  # noqa: F401 - re-exported: the engine's public names
    BATCH_KINDS,
    BatchStepper,
    checked_hidden,
    pack_batch_state,
    unpack_batch_state,
)
from .batch_engine import resolve_dtype as _resolve_dtype
from .errors import ConfigError, InvalidInputError, ShapeError
from .kernels import cstep as _cstep
from .kernels import fused as _fused
from .kernels import gru as _k
from .kernels import step as _step
from .kernels.layout import aligned_zeros, chunk_work_size, pack_model, state_size
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
    compile_step : False compiles only the chunk kernel, for users of :meth:`step_chunk` only
        (the daemon): blocks of any length take it (the same bits; a fraction of a
        microsecond slower on blocks under ``SHORT_CHUNK`` samples) and the per-sample
        :meth:`step` (its kernel and C fast path) compiles on its first call.
    """

    # the kernels bound to this stepper's buffers (:meth:`_bind_kernels`): status = call(...)
    _step_call: Callable[..., int]
    _steps_call: Callable[..., int]
    _chunk_call: Callable[..., int]

    def __init__(
        self,
        model: GRUModel,
        dtype: Any = "float32",
        filter: Any = "model",
        normalize: bool = True,
        *,
        compile_step: bool = True,
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
        self._compile_step = bool(compile_step)
        # compile_step=False: every block takes the chunk kernel (bit-identical), so the
        # sample-by-sample kernel is never compiled
        self._short_chunk = SHORT_CHUNK if self._compile_step else 0
        self._bind_kernels()

    def _bind_kernels(self) -> None:
        """Bind this stepper's buffers into its kernels' raw entry points, each on first use.

        ``self._step_call(x)``, ``self._steps_call(X, Y)`` and ``self._chunk_call(X, Y, work)``
        return the kernels' status. The raw entry points check no types (they skip numba's
        dispatch): :meth:`step` and :meth:`step_chunk` hand them only ndarrays of exactly
        ``self.dtype`` with the right dimensions, sizes and layout. A kernel compiles (or
        loads from numba's cache) the first time it is called, so a process pays only for
        the paths it uses (the daemon never steps one sample).
        """
        conditioned = self._fbuf is not None
        # the conditioned kernels take the packed filter state right after the GRU state
        self._bound = (self._params, self._meta, self._state) + (
            (self._fbuf,) if conditioned else ()
        )
        step, steps, chunk = (
            (_step.gru_step_conditioned, _step.gru_steps_conditioned, _fused.gru_chunk_conditioned)
            if conditioned
            else (_step.gru_step, _step.gru_steps, _k.gru_chunk)
        )
        self._kernels = {"_step_call": step, "_steps_call": steps, "_chunk_call": chunk}
        for name in self._kernels:
            setattr(self, name, functools.partial(self._first_call, name))
        if _StepCall is not None and type(self).step is Stepper.step:
            # ``self.step`` becomes the C object: it does the checks, the call and the output
            # array itself and hands anything unusual to the Python method below, which
            # converts, validates and raises. A subclass overriding ``step`` keeps its own.
            if self._compile_step:
                self.step = self._make_fast_step()  # type: ignore[method-assign]
            else:
                self.step = self._first_step  # type: ignore[method-assign]

    def _first_call(self, name: str, *args: Any) -> int:
        """Bind the kernel behind attribute ``name`` (compiling it if needed), then call it."""
        call = functools.partial(entry_point(self._kernels[name], self.dtype), *self._bound)
        setattr(self, name, call)
        return call(*args)

    def _make_fast_step(self) -> Any:
        """The C fast path of :meth:`step` (compiles the per-sample kernel on first use)."""
        conditioned = self._fbuf is not None
        self._fast_step = _StepCall(
            _cstep.step_address(self.dtype.name, conditioned),
            self._params,
            self._meta,
            self._state,
            self._fbuf,
            self.model.num_layers * self.model.hidden_size,
            self.model.output_size,
            self.model.input_size,
            self._step_python,
        )
        return self._fast_step

    def _first_step(self, x: Any) -> np.ndarray:
        """``compile_step=False``: the first :meth:`step` builds the C fast path, then steps."""
        self.step = self._make_fast_step()  # type: ignore[method-assign]
        return self.step(x)

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
        return _StepCall is not None and type(self).step is Stepper.step

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
        mean = norm.mean if norm is not None and has_norm else 0.0
        std = norm.std if norm is not None and has_norm else 1.0
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
        if n_samples < self._short_chunk:
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
        if not self._compile_step:
            settings["compile_step"] = False
        return (_state.rebuild, (type(self), (self.model,), settings, self.snapshot()))

    def __repr__(self) -> str:
        return f"Stepper({self.model!r}, dtype={self.dtype.name}, n_steps={self.n_steps})"
