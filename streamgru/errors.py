"""The exceptions streamgru raises.

Every error is a :class:`StreamgruError`; each concern has its own subclass so callers can catch
what they can handle (a daemon retries a :class:`SourceError`, refuses a :class:`ConfigError`).
Messages name what was expected and what came; for bytes, the offset.
"""

from __future__ import annotations


class StreamgruError(Exception):
    """Base class of every error raised by streamgru."""


class WeightsError(StreamgruError, ValueError):
    """A weights file or mapping is malformed, inconsistent, hostile or unsupported."""


class UnsupportedModelError(WeightsError):
    """The model is well formed but cannot stream (bidirectional, unknown activation, ...)."""


class ShapeError(StreamgruError, ValueError):
    """An array given to a stepper or filter has the wrong shape, dtype or size."""


class InvalidInputError(StreamgruError, ValueError):
    """An input sample is not usable (NaN or Inf); the state was left unchanged."""


class SnapshotError(StreamgruError, ValueError):
    """A snapshot blob is corrupt, of another version, or from a different model."""


class ConfigError(StreamgruError, ValueError):
    """A configuration value or filter design is invalid; the message names the field."""


class ProtocolError(StreamgruError):
    """Bytes on the wire do not follow the SGB1 protocol."""


class SourceError(StreamgruError, OSError):
    """A source could not be opened or was lost (unplugged device, refused connection, ...)."""


class SinkError(StreamgruError, OSError):
    """A sink could not be opened or written."""


class BackendUnavailableError(StreamgruError, RuntimeError):
    """An optional backend (torch, onnx, h5py, numba-cuda, a GPU) is not installed or present."""


class MissingDependencyError(BackendUnavailableError, ImportError):
    """An optional Python package needed for this call is not installed."""


def require(module: str, extra: str, purpose: str):
    """Import an optional module or raise :class:`MissingDependencyError` naming the extra.

    Parameters
    ----------
    module : str
        Importable module name, e.g. ``"torch"``.
    extra : str
        The streamgru extra that installs it, e.g. ``"torch"``.
    purpose : str
        What the caller wanted to do, for the message.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the optional package {module!r}, which is not installed; "
            f"install it with: pip install 'streamgru[{extra}]'"
        ) from exc
