"""streamgru: a Numba-accelerated streaming GRU engine for edge and real-time signals.

>>> import streamgru as sg
>>> model = sg.load_model("weights/example_tiny.safetensors")   # doctest: +SKIP
>>> st = model.stepper()                                          # doctest: +SKIP
>>> y = st.step(0.25)                                             # doctest: +SKIP

Public names are re-exported lazily: importing the package compiles nothing and imports no
optional dependency; the first use of a name imports its module.
"""

from __future__ import annotations

from typing import Any

from ._lazy import lazy_attribute
from .errors import (
    BackendUnavailableError,
    ConfigError,
    InvalidInputError,
    MissingDependencyError,
    ProtocolError,
    ShapeError,
    SinkError,
    SnapshotError,
    SourceError,
    StreamgruError,
    UnsupportedModelError,
    WeightsError,
)

__version__ = "0.1.0"

_LAZY = {
    "GRUModel": "streamgru.model.core",
    "GRULayer": "streamgru.model.core",
    "DenseLayer": "streamgru.model.core",
    "load_model": "streamgru.model.formats",
    "Stepper": "streamgru.engine",
    "BatchStepper": "streamgru.engine",
    "FilterChain": "streamgru.signal.chain",
    "Chunk": "streamgru.io.chunk",
    "open_source": "streamgru.io.sources",
    "open_sink": "streamgru.io.sinks",
}

__all__ = [
    "BackendUnavailableError",
    "BatchStepper",
    "Chunk",
    "ConfigError",
    "DenseLayer",
    "FilterChain",
    "GRULayer",
    "GRUModel",
    "InvalidInputError",
    "MissingDependencyError",
    "ProtocolError",
    "ShapeError",
    "SinkError",
    "SnapshotError",
    "SourceError",
    "Stepper",
    "StreamgruError",
    "UnsupportedModelError",
    "WeightsError",
    "__version__",
    "load_model",
    "open_sink",
    "open_source",
]


def __getattr__(name: str) -> Any:
    """The names of ``__all__``, imported on first use."""
    return lazy_attribute(__name__, _LAZY, globals(), name)


def __dir__() -> list[str]:
    return sorted(__all__)
