"""CudaBatchStepper: many streams on an NVIDIA GPU through numba.cuda, with the CPU's numbers.

``model.stepper(n_streams=B, device="cuda")`` builds one (through
:func:`choose_batch_stepper`, which :class:`streamgru.engine.BatchStepper` calls for
``device="cuda"`` and ``device="auto"``). It has the API of the CPU
:class:`~streamgru.engine.BatchStepper` and is a subclass of it:
``step``, ``step_chunk``, ``reset``, ``hidden``, ``snapshot`` / ``restore`` (envelopes of
:mod:`streamgru.state` that the CPU stepper reads too, so state moves between CPU and GPU
steppers of one model), pickling, ``n_streams``, ``n_steps``, and ``device == "cuda"``.
Detection and the launch shape live in :mod:`streamgru.cuda_device`.

Residency: the packed weights (:func:`streamgru.kernels.layout.pack_model`) are copied to the
device once; the hidden states (and the filter state) live on the device; only inputs and
outputs cross the bus, and not even those when the caller passes device arrays (objects with
``__cuda_array_interface__``: numba device arrays, CuPy, PyTorch CUDA tensors), in which case
the result is a device array too. ``step_chunk`` advances all streams through all T samples in
one kernel launch (see :mod:`streamgru.kernels.cuda` for the grid and shared-memory layout).

Numbers: float32 (the default) and float64 compute, as on the CPU; outputs match the CPU
BatchStepper within about 1e-6 in float32 (the gate functions differ in the last bits: libdevice
``tanhf``/``expf`` here, a rational tanh on the CPU).

Packaging: ``numba-cuda`` is the ``cuda`` extra and is imported here lazily, at construction,
never at package import. ``NUMBA_ENABLE_CUDASIM=1`` (numba's CUDA simulator, slow but exact
Python) counts as a GPU for ``device="cuda"``, so the tests run without one; it never counts
for ``device="auto"``, which picks CUDA only past a crossover measured on that GPU
(:mod:`streamgru.cuda_auto`) and says why in ``.device_reason``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .cuda_auto import auto_choice, log_choice
from .cuda_device import (
    FIX,
    SHARED_LIMIT,
    STREAMS_PER_THREAD,
    THREADS_PER_BLOCK,
    gpu_present,
    host_output,
    is_device_array,
    plan_launch,
    require_cuda,
    simulator_enabled,
)
from .engine import (
    BatchStepper,
    _resolve_dtype,
    checked_hidden,
    pack_batch_state,
    unpack_batch_state,
)
from .errors import BackendUnavailableError, ConfigError, InvalidInputError, ShapeError
from .kernels.layout import pack_model
from .signal.chain import sos_digest
from .state import SnapshotMismatchError, rebuild

__all__ = [
    "FIX",
    "SHARED_LIMIT",
    "STREAMS_PER_THREAD",
    "THREADS_PER_BLOCK",
    "CudaBatchStepper",
    "auto_choice",
    "choose_batch_stepper",
    "gpu_present",
    "plan_launch",
    "require_cuda",
    "simulator_enabled",
]


def choose_batch_stepper(
    model, n_streams: Any, dtype: Any = "float32", device: str = "auto", **options
):
    """The stepper :class:`streamgru.engine.BatchStepper` hands out for ``device`` != "cpu".

    Parameters
    ----------
    model : GRUModel
    n_streams : int, B
    dtype : "float32" or "float64"
    device : "cuda" (always a :class:`CudaBatchStepper`, or BackendUnavailableError) or
        "auto": a CudaBatchStepper only where a CPU/GPU crossover measured on this GPU is
        recorded and B reaches it (:mod:`streamgru.cuda_auto`), else the CPU BatchStepper;
        either way ``.device_reason`` says why, and the choice is logged
    **options : passed to :class:`CudaBatchStepper` (``filter``, launch shape)

    Returns
    -------
    CudaBatchStepper, a CPU BatchStepper not yet initialised (``BatchStepper.__new__`` returns
    it and Python runs its ``__init__`` once, with the caller's arguments), or None for a
    device other than "cuda" / "auto".
    """
    if device == "cuda":
        return CudaBatchStepper(model, n_streams, dtype=dtype, device="cuda", **options)
    if device != "auto":
        return None
    choice = auto_choice(n_streams, dtype)
    chosen: BatchStepper
    if choice.device == "cuda":
        chosen = CudaBatchStepper(model, int(n_streams), dtype=dtype, device="cuda", **options)
    else:
        chosen = object.__new__(BatchStepper)  # initialised by the caller, as asked
    chosen.device_reason = choice.reason  # type: ignore[attr-defined]  # set by "auto" only
    log_choice(choice, n_streams)
    return chosen


# --------------------------------------------------------------------------- the stepper
class CudaBatchStepper(BatchStepper):
    """B independent streams sharing one model, advanced together on a CUDA GPU.

    Build with ``model.stepper(n_streams=B, device="cuda")`` (or directly, for the options).
    Same API and numbers as the CPU :class:`~streamgru.engine.BatchStepper`.

    Parameters
    ----------
    model : GRUModel
    n_streams : int, B >= 1
    dtype : "float32" (default) or "float64" (slow on most GPUs)
    device : "cuda"
    filter : FilterChain, optional
        A filter run on the device before the GRU, one state per stream and channel (its
        ``n_channels`` must equal ``model.input_size``). The chain is the design (sections and
        start mode); its own state is not used: every stream starts from its first sample.
        Anything with ``.sos`` (n_sections, 6) and ``.n_channels`` also works (steady start).
    streams_per_thread, threads_per_block : int
        Launch shape (see :mod:`streamgru.kernels.cuda`): accumulators per thread (lowered
        when shared memory runs short) and the most threads per block. The defaults (4, 128)
        are untuned: no GPU was available to measure them (``bench/bench_cuda.py`` can).

    Raises
    ------
    BackendUnavailableError : numba-cuda or a GPU is missing (message ends with the fix).
    ShapeError : bad n_streams, dtype, filter channels, or a model too large for the kernel.
    """

    def __new__(cls, *args: Any, **kwargs: Any):
        return object.__new__(cls)

    def __init__(
        self,
        model,
        n_streams: int,
        dtype: Any = "float32",
        device: str = "cuda",
        filter: Any = None,
        streams_per_thread: int = STREAMS_PER_THREAD,
        threads_per_block: int = THREADS_PER_BLOCK,
        threads: int = 1,
    ) -> None:
        if getattr(self, "_built", False):
            # BatchStepper.__new__ returned this object already built; Python calls __init__
            # again (with the caller's arguments, ``threads=`` included) because it is a
            # BatchStepper: nothing to do.
            return
        if threads != 1:
            raise ConfigError(f"threads= is an option of device='cpu', got threads={threads!r}")
        if device not in ("cuda", "auto"):
            raise BackendUnavailableError(f"CudaBatchStepper runs on device='cuda', got {device!r}")
        if (
            isinstance(n_streams, bool)
            or not isinstance(n_streams, (int, np.integer))
            or n_streams < 1
        ):
            raise ShapeError(f"n_streams must be a positive integer, got {n_streams!r}")
        cuda = require_cuda()
        from .kernels import cuda as kc

        self._cuda = cuda
        self._kc = kc
        self.model = model
        self.device = "cuda"
        self.n_streams = int(n_streams)
        self.dtype = _resolve_dtype(dtype)
        self._digest = bytes.fromhex(model.checksum())
        params, meta = pack_model(model.layers, model.head, model.reset_after, self.dtype)
        self._meta = meta
        self._in_shape = (self.n_streams, model.input_size)
        spt, threads, blocks, shared = plan_launch(
            meta, self.n_streams, self.dtype.itemsize, streams_per_thread, threads_per_block
        )
        self.launch = {
            "streams_per_thread": spt,
            "threads": threads,
            "blocks": blocks,
            "shared_bytes": shared,
        }
        self._kernel = kc.get_chunk_kernel(spt, self.dtype.name)
        self._launch_request = (int(streams_per_thread), int(threads_per_block))
        self._config = (blocks, threads, 0, shared)

        self._d_params = cuda.to_device(np.ascontiguousarray(params))
        self._d_meta = cuda.to_device(np.ascontiguousarray(meta))
        n_hidden = model.num_layers * self.n_streams * model.hidden_size
        self._d_hid = cuda.to_device(np.zeros(n_hidden, dtype=self.dtype))
        self._set_filter(filter)
        # staging buffers for host inputs/outputs, grown on demand (flat, sliced per call)
        self._d_in = cuda.device_array(0, dtype=self.dtype)
        self._d_out = cuda.device_array(0, dtype=self.dtype)
        self.n_steps = 0
        if not simulator_enabled():
            # compile now, not on the first sample (the simulator has nothing to compile)
            self._kernel.compile(kc.kernel_signature(self.dtype))
        self._built = True

    # ----------------------------------------------------------------- filter
    def _set_filter(self, chain: Any) -> None:
        cuda = self._cuda
        self.filter = chain
        if chain is None:
            self._filter_sos = None
            self._d_fparams = cuda.to_device(np.zeros(0, dtype=np.float64))
            self._d_fstate = cuda.to_device(np.zeros(0, dtype=np.float64))
            return
        if not hasattr(chain, "sos") or not hasattr(chain, "n_channels"):
            raise ShapeError(f"filter: expected a FilterChain, got {type(chain).__name__}")
        if int(chain.n_channels) != self.model.input_size:
            raise ShapeError(
                f"filter: expected {self.model.input_size} channel(s) (the model's input_size), "
                f"got a chain of {chain.n_channels}"
            )
        if hasattr(chain, "kernel_state"):
            state = chain.kernel_state()
            sos, zi_unit = np.asarray(state.sos), np.asarray(state.zi_unit)
        else:
            from scipy.signal import sosfilt_zi

            sos = np.asarray(chain.sos, dtype=np.float64)
            zi_unit = sosfilt_zi(sos)
        sos = np.ascontiguousarray(sos, dtype=np.float64)
        if sos.ndim != 2 or sos.shape[1] != 6 or sos.shape[0] < 1:
            raise ShapeError(f"filter: expected sos of shape (n_sections, 6), got {sos.shape}")
        self._filter_sos = sos
        fparams = np.concatenate([sos.ravel(), np.ascontiguousarray(zi_unit, np.float64).ravel()])
        self._d_fparams = cuda.to_device(fparams)
        self._d_fstate = cuda.to_device(np.zeros(self._fstate_size(), dtype=np.float64))

    def _fstate_size(self) -> int:
        if self._filter_sos is None:
            return 0
        return 2 * self._filter_sos.shape[0] * self.n_streams * self.input_size + self.n_streams

    # ------------------------------------------------------------------- step
    def _launch(self, d_x, d_y) -> None:
        # configured per launch: the simulator's kernel object keeps one configuration, shared
        # by every stepper using it
        self._kernel[self._config](
            self._d_params, self._d_meta, self._d_hid, d_x, d_y, self._d_fparams, self._d_fstate
        )

    def _device_input(self, X: Any, ndim: int):
        """A device array X as a C-contiguous (B, T, I) device array of the stepper's dtype."""
        d_x = self._as_device(X)
        expected = (
            (self.n_streams, self.input_size)
            if ndim == 2
            else (self.n_streams, "T", self.input_size)
        )
        if d_x.dtype != self.dtype:
            raise ShapeError(f"X: expected a {self.dtype.name} device array, got {d_x.dtype}")
        if not d_x.is_c_contiguous():
            raise ShapeError("X: a device array must be C-contiguous")
        shape = tuple(d_x.shape)
        if self.input_size == 1 and len(shape) == ndim - 1 and shape[:1] == (self.n_streams,):
            shape = (*shape, 1)
        if len(shape) != ndim or shape[0] != self.n_streams or shape[-1] != self.input_size:
            raise ShapeError(f"X: expected shape {expected}, got {tuple(d_x.shape)}")
        if ndim == 2:
            shape = (self.n_streams, 1, self.input_size)
        return d_x.reshape(shape)

    def _as_device(self, obj: Any):
        """A numba device array viewing ``obj`` (zero-copy)."""
        if getattr(obj, "__cuda_ndarray__", False):
            return obj
        return self._cuda.as_cuda_array(obj)

    def _device_output(self, out: Any, shape: tuple[int, ...]):
        cuda = self._cuda
        if out is None:
            return cuda.device_array(shape, dtype=self.dtype)
        d_out = self._as_device(out) if is_device_array(out) else None
        if (
            d_out is None
            or d_out.dtype != self.dtype
            or tuple(d_out.shape) != shape
            or not d_out.is_c_contiguous()
        ):
            raise ShapeError(
                f"out: expected a C-contiguous {self.dtype.name} device array of shape {shape}, "
                f"got {getattr(out, 'shape', type(out).__name__)}"
            )
        return d_out

    def _staging(self, name: str, n: int):
        buf = getattr(self, name)
        if buf.shape[0] < n:
            buf = self._cuda.device_array(max(n, 2 * buf.shape[0]), dtype=self.dtype)
            setattr(self, name, buf)
        return buf[:n]

    def _run_host(self, X: np.ndarray, out: np.ndarray) -> None:
        """X (B, T, I) host, finite, C-contiguous -> out (B, T, O) host."""
        n_samples = X.shape[1]
        d_x = self._staging("_d_in", X.size).reshape(X.shape)
        d_y = self._staging("_d_out", out.size).reshape(
            (self.n_streams, n_samples, self.output_size)
        )
        d_x.copy_to_device(X)
        self._launch(d_x, d_y)
        d_y.copy_to_host(out.reshape(d_y.shape))

    def _check_finite(self, X: np.ndarray) -> None:
        finite = np.isfinite(X)
        if finite.all():
            return
        flat = int(np.argmin(finite.ravel()))
        if X.ndim == 2:
            b, i = divmod(flat, self.input_size)
            raise InvalidInputError(
                f"X has a non-finite value at stream {b}, feature {i}; no stream was advanced"
            )
        b, rest = divmod(flat, X.shape[1] * self.input_size)
        t, i = divmod(rest, self.input_size)
        raise InvalidInputError(
            f"X has a non-finite value at stream {b}, sample {t}, feature {i}; "
            "no stream was advanced"
        )

    def step(self, X: Any, out: Any = None) -> Any:
        """Advance every stream by one sample.

        Parameters
        ----------
        X : (B, input_size) array-like (or (B,) when input_size == 1), or a device array of
            the stepper's dtype, C-contiguous
        out : optional (B, output_size) array to write into: a host ndarray for host X, a
            device array for device X

        Returns
        -------
        (B, output_size): an ndarray for host X, a numba device array for device X (no copy
        back). NaN/Inf in host X raise InvalidInputError (nothing advanced); device X is not
        checked (a NaN there poisons its stream's state until reset or restore).
        """
        if is_device_array(X):
            d_x = self._device_input(X, 2)
            d_y = self._device_output(out, (self.n_streams, self.output_size))
            self._launch(d_x, d_y.reshape((self.n_streams, 1, self.output_size)))
            self.n_steps += 1
            return d_y
        X = self._coerce(X, 2)
        self._check_finite(X)
        out = host_output(out, self.dtype, (self.n_streams, self.output_size))
        self._run_host(X.reshape(self.n_streams, 1, self.input_size), out)
        self.n_steps += 1
        return out

    def step_chunk(self, X: Any, out: Any = None) -> Any:
        """Advance every stream by T samples in one kernel launch.

        Parameters
        ----------
        X : (B, T, input_size) array-like (or (B, T) when input_size == 1), or a device array
            of the stepper's dtype, C-contiguous
        out : optional (B, T, output_size) array to write into (host for host X, device for
            device X)

        Returns
        -------
        (B, T, output_size): an ndarray for host X, a device array for device X. Same
        checks as :meth:`step`.
        """
        if is_device_array(X):
            d_x = self._device_input(X, 3)
            d_y = self._device_output(out, (self.n_streams, d_x.shape[1], self.output_size))
            if d_x.shape[1]:
                self._launch(d_x, d_y)
            self.n_steps += d_x.shape[1]
            return d_y
        X = self._coerce(X, 3)
        self._check_finite(X)
        out = host_output(out, self.dtype, (self.n_streams, X.shape[1], self.output_size))
        if X.shape[1]:
            self._run_host(X, out)
        self.n_steps += X.shape[1]
        return out

    # ------------------------------------------------------------------ state
    def reset(self, streams: Any = None) -> None:
        """Zero the hidden state (and restart the filter) of every stream, or of the given
        stream indices (negative indices count from the end)."""
        mask = np.zeros(self.n_streams, dtype=np.uint8)
        if streams is None:
            mask[:] = 1
            self.n_steps = 0
        else:
            idx = np.asarray(streams)
            if idx.dtype.kind not in "iu" and idx.size:
                raise ShapeError(f"streams: expected stream indices, got dtype {idx.dtype}")
            idx = idx.astype(np.int64).ravel()
            bad = idx[(idx < -self.n_streams) | (idx >= self.n_streams)]
            if bad.size:
                raise ShapeError(
                    f"streams: index {int(bad[0])} is out of range for {self.n_streams} streams"
                )
            mask[idx] = 1
        total = max(self._d_hid.shape[0], self._d_fstate.shape[0], 1)
        threads = 128
        blocks = min(-(-total // threads), 1024)
        self._kc.reset_streams[blocks, threads](
            self._d_meta, self._d_hid, self._d_fstate, self._cuda.to_device(mask)
        )

    @property
    def hidden(self) -> np.ndarray:
        """A host copy of all hidden states, shape (n_streams, num_layers, hidden_size)."""
        hid = self._d_hid.copy_to_host().reshape(
            self.model.num_layers, self.n_streams, self.model.hidden_size
        )
        return np.ascontiguousarray(hid.transpose(1, 0, 2))

    @hidden.setter
    def hidden(self, value: Any) -> None:
        arr = checked_hidden(value, (self.n_streams, self.model.num_layers, self.model.hidden_size))
        self._d_hid.copy_to_device(
            np.ascontiguousarray(arr.transpose(1, 0, 2), dtype=self.dtype).ravel()
        )

    def snapshot(self) -> bytes:
        """All streams' state as a :mod:`streamgru.state` envelope, kind
        ``"CudaBatchStepper"``: the CPU BatchStepper's ``hidden`` and ``n_steps`` (so either
        restores the other's) and, with a filter, array ``filter_state`` (the per-stream filter
        state, float64) and digest ``filter`` (SHA-256 of the sections, first 8 bytes)."""
        if self._filter_sos is None:
            return pack_batch_state(self, self._d_hid.copy_to_host())
        return pack_batch_state(
            self,
            self._d_hid.copy_to_host(),
            {"filter_state": self._d_fstate.copy_to_host()},
            {"filter": sos_digest(self._filter_sos).hex()},
        )

    def restore(self, blob: bytes) -> None:
        """Restore a :meth:`snapshot` (of a CPU or CUDA BatchStepper of the same model, dtype and
        stream count). With a filter: a blob without filter state (from the CPU) restarts every
        stream's filter at its next sample; a blob with another filter's state is refused."""
        hidden, n_steps, env = unpack_batch_state(self, blob)
        fstate = None
        if self._filter_sos is not None:
            mine = sos_digest(self._filter_sos).hex()
            theirs = env.digest.get("filter")
            if theirs is None:
                fstate = np.zeros(self._fstate_size(), dtype=np.float64)
            elif theirs != mine:
                raise SnapshotMismatchError(
                    f"CudaBatchStepper snapshot was taken with a different filter: expected "
                    f"filter {mine}, got {theirs}; refusing to restore"
                )
            else:
                fstate = env.array("filter_state", (self._fstate_size(),))
        self._d_hid.copy_to_device(np.ascontiguousarray(hidden, dtype=self.dtype))
        if fstate is not None:
            self._d_fstate.copy_to_device(fstate)
        self.n_steps = n_steps

    def __reduce__(self) -> tuple:
        """Pickle / deepcopy as settings (model, n_streams, dtype, filter, launch request) +
        :meth:`snapshot`; the copy gets its own device buffers."""
        settings = {
            "dtype": self.dtype.name,
            "device": "cuda",
            "filter": self.filter,
            "streams_per_thread": self._launch_request[0],
            "threads_per_block": self._launch_request[1],
        }
        return (rebuild, (type(self), (self.model, self.n_streams), settings, self.snapshot()))

    def __repr__(self) -> str:
        return (
            f"CudaBatchStepper({self.model!r}, n_streams={self.n_streams}, "
            f"dtype={self.dtype.name}, "
            f"device=cuda, launch={self.launch})"
        )
