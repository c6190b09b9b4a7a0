"""Signal conditioning: scipy-designed SOS filters run by numba, normalisation, rate checks.

Names are imported lazily: ``import streamgru.signal`` compiles nothing; the first use of
:class:`FilterChain` loads the numba kernels.

- :func:`design_sos`, :func:`preset_sos`, :func:`preset_parameters`, :data:`PRESETS`,
  :func:`validate_sos` (:mod:`.design`)
- :class:`FilterChain` (:mod:`.chain`)
- :class:`Normalizer` (:mod:`.normalize`)
- :func:`check_sample_rate`, :class:`StreamResampler` (:mod:`.resample`)
"""

from __future__ import annotations

from typing import Any

from .._lazy import lazy_attribute

_LAZY = {
    "PRESETS": "streamgru.signal.design",
    "design_sos": "streamgru.signal.design",
    "preset_parameters": "streamgru.signal.design",
    "preset_sos": "streamgru.signal.design",
    "validate_sos": "streamgru.signal.design",
    "FilterChain": "streamgru.signal.chain",
    "FilterKernelState": "streamgru.signal.chain",
    "Normalizer": "streamgru.signal.normalize",
    "StreamResampler": "streamgru.signal.resample",
    "check_sample_rate": "streamgru.signal.resample",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """The names of ``__all__``, imported on first use."""
    return lazy_attribute(__name__, _LAZY, globals(), name)


def __dir__() -> list[str]:
    return sorted(__all__)
