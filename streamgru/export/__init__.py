"""``streamgru export c``: a GRUModel as a dependency-free C99 library (float32, int16, int8).

:func:`generate_c` returns the header and source text; :func:`export_c` writes them after
reporting, for fixed-point builds, the error against the float stepper on calibration data.
:mod:`.fixed_reference` is the numpy/numba model of the generated integer arithmetic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import lazy_attribute

if TYPE_CHECKING:  # pragma: no cover - imported lazily below (the command line stays light)
    from .api import DTYPES, ExportReport, export_c, generate_c
    from .spec import ExportSpec, export_spec

_LAZY = {
    "DTYPES": ".api",
    "ExportReport": ".api",
    "export_c": ".api",
    "generate_c": ".api",
    "ExportSpec": ".spec",
    "export_spec": ".spec",
}

__all__ = ["DTYPES", "ExportReport", "ExportSpec", "export_c", "export_spec", "generate_c"]


def __getattr__(name: str) -> Any:
    """The names of ``__all__``, imported on first use (they compile numba kernels)."""
    return lazy_attribute(__name__, _LAZY, globals(), name)
