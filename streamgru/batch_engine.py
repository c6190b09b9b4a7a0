"""BatchStepper: B independent streams sharing one model, advanced together on the CPU.

Re-exported by :mod:`streamgru.engine` (``streamgru.BatchStepper``). The streams run in
blocks of :data:`BLOCK` through one compiled call (:func:`streamgru.kernels.batch.gru_rows`):
register-tiled products over the streams of a block, the gates and the head, each stream
getting exactly the arithmetic of :meth:`streamgru.Stepper.step` (bit for bit). With
``threads=N`` the streams are cut into N contiguous ranges of whole blocks, each advanced by
its own thread (the kernel releases the GIL); outputs do not depend on N.

Also here, shared with :mod:`streamgru.engine` and :mod:`streamgru.cuda_engine`: the dtype
and hidden-state checks and the BatchStepper-family snapshot envelope.
"""

from __future__ import annotations

import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from . import state as _state
from .errors import BackendUnavailableError, ConfigError, InvalidInputError, ShapeError
from .kernels import batch as _batch
from .kernels.layout import aligned_zeros, pack_model
from .kernels.nonrt import entry_point

if TYPE_CHECKING:  # pragma: no cover
    from .model.core import GRUModel

#: Streams per block of the compiled call: its scratch (about 2.5 kB per stream at H = 64)
#: stays in the L1/L2 cache, and a block is the unit the ``threads=`` ranges are made of.
BLOCK = 32
_DTYPES: dict[str, np.dtype] = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
#: The envelope kinds a BatchStepper restores: CPU and CUDA steppers read each other's blobs.
BATCH_KINDS = ("BatchStepper", "CudaBatchStepper")


def resolve_dtype(dtype: Any) -> np.dtype:
    """np.float32 or np.float64 for ``dtype`` ("float32", "float64" or a numpy dtype)."""
    key = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if key not in _DTYPES:
        raise ShapeError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return _DTYPES[key]


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


def checked_stream_indices(streams: Any, n_streams: int) -> np.ndarray:
    """``streams`` (stream indices, any shape) as a flat int64 array; raises ShapeError for
    a non-integer dtype or an index outside [-n_streams, n_streams)."""
    idx = np.asarray(streams)
    if idx.dtype.kind not in "iu" and idx.size:
        raise ShapeError(f"streams: expected stream indices, got dtype {idx.dtype}")
    idx = idx.astype(np.int64).ravel()
    bad = idx[(idx < -n_streams) | (idx >= n_streams)]
    if bad.size:
        raise ShapeError(f"streams: index {int(bad[0])} is out of range for {n_streams} streams")
    return idx


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


def _describe_array(value: Any) -> str:
    """``value`` for an error message: dtype, shape and what it is not (an ndarray), or its type."""
    if not isinstance(value, np.ndarray):
        return type(value).__name__
    flags = [] if value.flags.c_contiguous else ["not C-contiguous"]
    flags += [] if value.flags.writeable else ["read-only"]
    return " ".join([f"a {value.dtype.name} array of shape {value.shape}", *flags])


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ShapeError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_cpu_options(model: GRUModel, options: dict[str, Any]) -> None:
    unsupported = {k: v for k, v in options.items() if not (k == "filter" and v in (None, "none"))}
    if unsupported:
        raise ConfigError(
            f"the CPU BatchStepper takes no options {sorted(unsupported)}; filtering batched "
            "streams runs on device='cuda' (or give each stream its own model.stepper(filter=...))"
        )
    if "filter" not in options and (
        model.meta_json("filter") or "input_mean" in model.metadata or "input_std" in model.metadata
    ):
        raise ConfigError(
            "this model carries an input filter or normalisation in its metadata, which the CPU "
            "BatchStepper does not run; pass filter=None to step the bare GRU, or use one "
            "model.stepper() per stream"
        )


class BatchStepper:
    """B independent streams sharing one model, advanced together.

    Build with ``model.stepper(n_streams=B, device="cpu")``. Stream b's outputs are bit for
    bit those of its own :class:`streamgru.Stepper` (no filter, no normalisation) fed the
    same samples, whatever B, ``threads`` and the chunking in time.

    Parameters
    ----------
    model : GRUModel
    n_streams : int, B >= 1
    dtype : "float32" or "float64"
    device : "cpu", "cuda" (numba.cuda) or "auto" (the GPU only above the measured
        crossover in streams, when one is present)
    threads : int >= 1 (CPU): threads advancing disjoint ranges of streams in each call;
        more than one pays from a few hundred streams (each thread takes whole blocks of
        :data:`BLOCK` streams, so B <= BLOCK always runs on the calling thread)
    **options : backend options; ``filter=`` (a FilterChain run per stream on the device) is
        supported by device="cuda". On the CPU, condition each stream with its own Stepper.
    """

    def __new__(
        cls,
        model: GRUModel,
        n_streams: int,
        dtype: Any = "float32",
        device: str = "cpu",
        threads: int = 1,
        **options,
    ):
        if device not in ("cpu", "cuda", "auto"):
            raise BackendUnavailableError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
        if cls is BatchStepper and device != "cpu":
            if threads != 1:
                raise ConfigError(f"threads= is an option of device='cpu', got device={device!r}")
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
        threads: int = 1,
        **options,
    ) -> None:
        _check_cpu_options(model, options)
        self.model = model
        self.device = "cpu"
        self.n_streams = _positive_int("n_streams", n_streams)
        self.threads = _positive_int("threads", threads)
        self.dtype = resolve_dtype(dtype)
        self._params, self._meta = pack_model(
            model.layers, model.head, model.reset_after, self.dtype
        )
        self._digest = bytes.fromhex(model.checksum())
        layers, hidden = model.num_layers, model.hidden_size
        self._hid = aligned_zeros(layers * self.n_streams * hidden, self.dtype)
        self._in_shape = (self.n_streams, model.input_size)
        self._rows = entry_point(_batch.gru_rows, self.dtype)
        self._first_bad = entry_point(_batch.first_nonfinite_rows, self.dtype)
        self._plans = self._split_ranges()
        work = _batch.rows_work_size(self._meta, BLOCK)
        self._works = [aligned_zeros(work, self.dtype) for _ in self._plans]
        self._work = self._works[0]  # the calling thread's scratch
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = os.getpid()
        self.n_steps = 0

    def _split_ranges(self) -> list[np.ndarray]:
        """One plan [B, T, start, stop, block] per thread: contiguous ranges of whole blocks."""
        n_blocks = -(-self.n_streams // BLOCK)
        per = -(-n_blocks // min(self.threads, n_blocks)) * BLOCK
        starts = range(0, self.n_streams, per)
        return [
            np.array([self.n_streams, 1, s, min(s + per, self.n_streams), BLOCK], np.int64)
            for s in starts
        ]

    @property
    def input_size(self) -> int:
        return self.model.input_size

    @property
    def output_size(self) -> int:
        return self.model.output_size

    def _run(self, X2: np.ndarray, Y2: np.ndarray, n_samples: int) -> None:
        """All ranges through the kernel: X2 (B * T, I), Y2 (B * T, O), both C-contiguous."""
        args = (self._params, self._meta, self._hid, X2, Y2)
        for plan in self._plans:
            plan[1] = n_samples
        if len(self._plans) == 1:
            self._rows(*args, self._works[0], self._plans[0])
            return
        if self._pool is None or self._pool_pid != os.getpid():
            # (re)made in a forked child too: it has none of the parent's worker threads, and
            # the inherited pool would queue the work forever
            self._pool = ThreadPoolExecutor(
                len(self._plans) - 1, thread_name_prefix="streamgru-batch"
            )
            self._pool_pid = os.getpid()
            weakref.finalize(self, self._pool.shutdown, wait=False)
        futures = [
            self._pool.submit(self._rows, *args, work, plan)
            for work, plan in zip(self._works[1:], self._plans[1:])
        ]
        try:
            self._rows(*args, self._works[0], self._plans[0])
        finally:
            for future in futures:
                future.result()

    def _output(self, out: Any, shape: tuple[int, ...]) -> np.ndarray:
        if out is None:
            return np.empty(shape, dtype=self.dtype)
        if (
            not isinstance(out, np.ndarray)
            or out.dtype != self.dtype
            or out.shape != shape
            or not out.flags.c_contiguous
            or not out.flags.writeable
        ):
            raise ShapeError(
                f"out: expected a writeable C-contiguous {self.dtype.name} array of shape "
                f"{shape}, got {_describe_array(out)}"
            )
        return out

    def step(self, X: Any, out: np.ndarray | None = None) -> np.ndarray:
        """Advance every stream by one sample.

        Parameters
        ----------
        X : (B, input_size) array-like (or (B,) when input_size == 1)
        out : optional (B, output_size) C-contiguous array of the dtype to write into

        Returns
        -------
        (B, output_size) ndarray of the stepper's dtype.

        Raises
        ------
        ShapeError : wrong shape or dtype; InvalidInputError : a NaN or Inf in X (no stream
        was advanced).
        """
        X = self._coerce(X, 2)
        out = self._output(out, (self.n_streams, self.output_size))
        bad = self._first_bad(X)
        if bad >= 0:
            b, i = divmod(int(bad), self.input_size)
            raise InvalidInputError(
                f"X has a non-finite value at stream {b}, feature {i}; no stream was advanced"
            )
        self._run(X, out, 1)
        self.n_steps += 1
        return out

    def step_chunk(self, X: Any, out: np.ndarray | None = None) -> np.ndarray:
        """Advance every stream by T samples in one call; equals T calls of :meth:`step`.

        Parameters
        ----------
        X : (B, T, input_size) array-like (or (B, T) when input_size == 1)
        out : optional (B, T, output_size) C-contiguous array of the dtype to write into

        Returns
        -------
        (B, T, output_size) ndarray: each stream's output after each of its samples.

        Raises
        ------
        ShapeError : wrong shape or dtype; InvalidInputError : a NaN or Inf in X (no stream
        was advanced).
        """
        X = self._coerce(X, 3)
        n_samples = X.shape[1]
        out = self._output(out, (self.n_streams, n_samples, self.output_size))
        if n_samples == 0:
            return out
        bad = self._first_bad(X.reshape(self.n_streams, n_samples * self.input_size))
        if bad >= 0:
            b, rest = divmod(int(bad), n_samples * self.input_size)
            t, i = divmod(rest, self.input_size)
            raise InvalidInputError(
                f"X has a non-finite value at stream {b}, sample {t}, feature {i}; "
                "no stream was advanced"
            )
        rows = self.n_streams * n_samples
        self._run(X.reshape(rows, self.input_size), out.reshape(rows, self.output_size), n_samples)
        self.n_steps += n_samples
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
        """Zero the hidden state of every stream, or only of the given stream indices
        (integers; negative ones count from the end, as on a CudaBatchStepper)."""
        hid = self._hid.reshape(self.model.num_layers, self.n_streams, self.model.hidden_size)
        if streams is None:
            hid[:] = 0
            self.n_steps = 0
        else:
            hid[:, checked_stream_indices(streams, self.n_streams)] = 0

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
        """Pickle / deepcopy as settings (model, n_streams, dtype, threads) + :meth:`snapshot`."""
        args = (self.model, self.n_streams)
        settings: dict[str, Any] = {"dtype": self.dtype.name, "device": "cpu", "filter": None}
        if self.threads != 1:
            settings["threads"] = self.threads
        return (_state.rebuild, (type(self), args, settings, self.snapshot()))

    def __repr__(self) -> str:
        return (
            f"BatchStepper({self.model!r}, n_streams={self.n_streams}, dtype={self.dtype.name}, "
            f"device={self.device}, threads={self.threads})"
        )
