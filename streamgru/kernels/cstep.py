"""C-callable per-sample steps, for the compiled fast path of :meth:`streamgru.Stepper.step`.

numba ``cfunc`` wrappers around the entry points of :mod:`.step`: they take raw pointers and
lengths, view them (:func:`.views.from_pointer`) as arrays of exactly the entry points' declared types (so the kernel
compiled for the Python path is linked, not compiled again), and return its status. The
extension module ``streamgru._stepcall`` calls them with the stepper's buffers.

Signature (``T`` is float or double)::

    int64 step(const T *params, int64 n_params, const int64 *meta, int64 n_meta,
               T *state, int64 n_state, double *fbuf, int64 n_fbuf,
               const T *x, int64 n_x)

``fbuf`` is the packed conditioning (:mod:`.fused`) for the conditioned step and ignored
(may be NULL, length 0) otherwise. Status as :func:`.step.gru_step`.
"""

from __future__ import annotations

from numba import cfunc, float32, float64, int64, types

from . import step as _step
from .views import from_pointer

gru_step = _step.gru_step
gru_step_conditioned = _step.gru_step_conditioned

_OPTS = {"nopython": True, "_nrt": False, "error_model": "numpy", "boundscheck": False}


def _signature(scalar):
    """The C signature of the module docstring for ``scalar`` (numba float32 or float64)."""
    ptr = types.CPointer(scalar)
    return int64(
        ptr,
        int64,
        types.CPointer(int64),
        int64,
        ptr,
        int64,
        types.CPointer(float64),
        int64,
        ptr,
        int64,
    )


def step_plain(params_p, n_params, meta_p, n_meta, state_p, n_state, fbuf_p, n_fbuf, x_p, n_x):
    """:func:`.step.gru_step` on raw pointers (``fbuf`` unused)."""
    return gru_step(
        from_pointer(params_p, n_params, True, False),
        from_pointer(meta_p, n_meta, True, False),
        from_pointer(state_p, n_state, False, False),
        from_pointer(x_p, n_x, True, True),
    )


def step_conditioned(
    params_p, n_params, meta_p, n_meta, state_p, n_state, fbuf_p, n_fbuf, x_p, n_x
):
    """:func:`.step.gru_step_conditioned` on raw pointers."""
    return gru_step_conditioned(
        from_pointer(params_p, n_params, True, False),
        from_pointer(meta_p, n_meta, True, False),
        from_pointer(state_p, n_state, False, False),
        from_pointer(fbuf_p, n_fbuf, False, False),
        from_pointer(x_p, n_x, True, True),
    )


_SCALARS = {"float32": float32, "float64": float64}
_COMPILED: dict[tuple[str, bool], object] = {}


def step_address(dtype_name: str, conditioned: bool) -> int:
    """Address of the C step for ``dtype_name`` ("float32"/"float64"), compiled on first use
    (or loaded from numba's cache)."""
    key = (dtype_name, conditioned)
    compiled = _COMPILED.get(key)
    if compiled is None:
        func = step_conditioned if conditioned else step_plain
        compiled = cfunc(_signature(_SCALARS[dtype_name]), cache=True, **_OPTS)(func)
        _COMPILED[key] = compiled
    return compiled.address
