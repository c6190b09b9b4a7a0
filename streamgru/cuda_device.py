"""CUDA detection and the chunk kernel's launch shape, for :mod:`streamgru.cuda_engine`.

``numba.cuda`` is imported here lazily, inside the functions, never at package import.
``NUMBA_ENABLE_CUDASIM=1`` (numba's CUDA simulator) counts as a GPU for :func:`require_cuda`
and never for :func:`gpu_present` (what ``device="auto"`` asks).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from .errors import BackendUnavailableError, ShapeError

#: The fix named by every "no GPU" error.
FIX = "install streamgru[cuda] and an NVIDIA driver, or use device='cpu'"

#: Default launch shape: streams per thread (register accumulators) and threads per block.
STREAMS_PER_THREAD = 4
THREADS_PER_BLOCK = 128
#: Dynamic shared memory a block may use without opting in (bytes; every CUDA GPU has it).
SHARED_LIMIT = 48 * 1024


# --------------------------------------------------------------------------- detection
def simulator_enabled() -> bool:
    """True when numba's CUDA simulator is on (``NUMBA_ENABLE_CUDASIM=1`` before numba import)."""
    import numba

    return bool(getattr(numba.config, "ENABLE_CUDASIM", 0))


def _import_cuda():
    """``numba.cuda``, or :class:`BackendUnavailableError` naming the fix."""
    try:
        from numba import cuda
    except ImportError as exc:
        raise BackendUnavailableError(
            f"device='cuda' needs the numba-cuda package (with the CUDA Python bindings), "
            f"which could not be imported ({exc}); {FIX}"
        ) from exc
    return cuda


@lru_cache(maxsize=1)
def gpu_present() -> bool:
    """True when numba-cuda is installed and a real CUDA GPU answers (not the simulator)."""
    if simulator_enabled():
        return False
    try:
        cuda = _import_cuda()
        return bool(cuda.is_available())
    except Exception:  # no package, no driver, a broken driver: no GPU for "auto"
        return False


def gpu_name() -> str | None:
    """The name of the current CUDA GPU (``numba.cuda`` device name, e.g. "NVIDIA H100 80GB
    HBM3"); None without a real GPU (the simulator does not count)."""
    if not gpu_present():
        return None
    try:
        name = _import_cuda().get_current_device().name
    except Exception:  # a driver that fails while probing: no GPU for "auto"
        return None
    return name.decode() if isinstance(name, bytes) else str(name)


def require_cuda():
    """``numba.cuda`` when ``device="cuda"`` can run here (a GPU, or the simulator).

    Raises
    ------
    BackendUnavailableError : numba-cuda is missing, or no GPU / driver is present; the message
        ends with the one-line fix.
    """
    cuda = _import_cuda()
    if simulator_enabled():
        return cuda
    try:
        available = bool(cuda.is_available())
    except Exception as exc:  # pragma: no cover - a driver that fails while probing
        raise BackendUnavailableError(
            f"device='cuda': the CUDA driver failed ({exc}); {FIX}"
        ) from exc
    if not available:
        raise BackendUnavailableError(f"device='cuda': no CUDA GPU or NVIDIA driver found; {FIX}")
    return cuda


# --------------------------------------------------------------------------- launch shape
def plan_launch(
    meta: np.ndarray, n_streams: int, itemsize: int, streams_per_thread: int, threads_per_block: int
) -> tuple[int, int, int, int]:
    """Choose the grid for the chunk kernel.

    Returns
    -------
    (spt, threads, blocks, shared_bytes): streams per thread (may be lowered from the request
    so that a block's shared memory fits in :data:`SHARED_LIMIT`), threads per block, blocks,
    dynamic shared memory per block in bytes.
    """
    from .kernels.cuda import shared_elements

    hidden = int(meta[3])
    spt = max(1, int(streams_per_thread))
    max_threads = max(1, min(int(threads_per_block), 1024))
    unit_lanes = min(hidden, max_threads)
    while True:
        groups = max(1, max_threads // unit_lanes)
        groups = min(groups, -(-n_streams // spt))
        while groups > 1 and shared_elements(meta, groups * spt) * itemsize > SHARED_LIMIT:
            groups -= 1
        per_block = groups * spt
        shared = shared_elements(meta, per_block) * itemsize
        if shared <= SHARED_LIMIT or spt == 1:
            break
        spt //= 2
    if shared > SHARED_LIMIT:
        raise ShapeError(
            f"the model is too large for the CUDA kernel: one stream needs {shared} bytes of "
            f"shared memory, the limit is {SHARED_LIMIT}; use device='cpu'"
        )
    return spt, unit_lanes * groups, -(-n_streams // per_block), shared


# --------------------------------------------------------------------------- arrays
def is_device_array(obj: Any) -> bool:
    """A numba device array (``__cuda_ndarray__``, also the simulator's) or any object with
    ``__cuda_array_interface__`` (CuPy, PyTorch CUDA tensors, ...)."""
    if isinstance(obj, np.ndarray):
        return False
    return bool(getattr(obj, "__cuda_ndarray__", False)) or hasattr(obj, "__cuda_array_interface__")


def host_output(out: Any, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """``out`` checked as a writeable C-contiguous host array of ``dtype`` and ``shape``, or a
    new one when ``out`` is None; ShapeError (expected vs got) otherwise."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if (
        not isinstance(out, np.ndarray)
        or out.dtype != dtype
        or out.shape != shape
        or not out.flags.c_contiguous
        or not out.flags.writeable
    ):
        raise ShapeError(
            f"out: expected a writeable C-contiguous {np.dtype(dtype).name} array of shape "
            f"{shape}, got {getattr(out, 'shape', type(out).__name__)}"
        )
    return out
