"""Filter and pipeline runners for ``streamgru bench``.

* :class:`FilterChainStep`: ``FilterChain.step`` per sample (the numba biquad kernel);
* :class:`ScipySosfiltStep`: ``scipy.signal.sosfilt`` per sample, carrying ``zi``, started at
  steady state from the first sample like the chain;
* :class:`PipelineStep`: filter + GRU per sample, through ``model.stepper(filter=chain)`` when
  the engine accepts a filter, else ``stepper.step(chain.step(x))``.

The filter benchmarked by default is a 4-section Butterworth band-pass (0.5-40 Hz, order 4),
``C = input_size`` channels, as in docs/design.md section 10 ("filter (4 sections) + GRU").
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from ..model.core import GRUModel
from .runners import Runner, bare_stepper

#: Band-pass edges and order of the default benchmark filter (4 second-order sections).
DEFAULT_FILTER = {"highpass": 0.5, "lowpass": 40.0, "order": 4}


def filter_available() -> bool:
    """True when this build has :class:`streamgru.signal.chain.FilterChain`."""
    try:
        return importlib.util.find_spec("streamgru.signal.chain") is not None
    except ImportError:
        return False


def make_chain_factory(
    fs: float, n_channels: int, preset: str | None = None, mains: int = 50
) -> Callable[[], Any]:
    """A function returning a fresh FilterChain: ``preset`` at ``fs``, or the default band-pass.

    The default's lowpass edge is kept below 0.45 fs so any sample rate above 2.3 Hz works.
    """
    from ..signal.chain import FilterChain

    if preset is not None:
        FilterChain.preset(preset, fs=fs, mains=mains, n_channels=n_channels)  # fail early

        def make() -> Any:
            return FilterChain.preset(preset, fs=fs, mains=mains, n_channels=n_channels)

        return make
    highpass = DEFAULT_FILTER["highpass"]
    lowpass = min(DEFAULT_FILTER["lowpass"], 0.45 * fs)
    order = int(DEFAULT_FILTER["order"])

    def make_default() -> Any:
        return FilterChain.design(
            fs, highpass=highpass, lowpass=lowpass, order=order, n_channels=n_channels
        )

    make_default()  # fail early on a bad fs
    return make_default


def describe_chain(chain: Any) -> dict[str, Any]:
    """Sections, channels, rate and spec of a chain, for the report."""
    spec = chain.to_dict() if hasattr(chain, "to_dict") else {}
    return {
        "n_sections": int(chain.n_sections),
        "n_channels": int(chain.n_channels),
        "fs": chain.fs,
        "spec": {k: v for k, v in spec.items() if k not in ("sos", "zi")},
    }


class FilterChainStep(Runner):
    """``FilterChain.step(x)`` with x (C,) float32."""

    name = "streamgru FilterChain.step"
    kind = "sample"

    def __init__(self, make_chain: Callable[[], Any]) -> None:
        self._make = make_chain
        self.reset()

    def reset(self, n_streams: int = 1) -> None:
        self.chain = self._make()
        self.call = self.chain.step

    def prepare(self, X: np.ndarray) -> list[np.ndarray]:
        return list(np.ascontiguousarray(X, dtype=np.float32))


class ScipySosfiltStep(Runner):
    """``scipy.signal.sosfilt(sos, x[None], axis=0, zi=zi)`` per sample, ``zi`` carried."""

    name = "scipy sosfilt"
    framework = "scipy"
    kind = "sample"

    def __init__(self, sos: np.ndarray, steady: bool = True) -> None:
        import scipy.signal

        self._sosfilt = scipy.signal.sosfilt
        self.sos = np.array(sos, dtype=np.float64, copy=True)  # scipy refuses read-only sections
        self._unit = (
            scipy.signal.sosfilt_zi(self.sos) if steady else np.zeros((self.sos.shape[0], 2))
        )
        self.reset()

    def reset(self, n_streams: int = 1) -> None:
        self.zi: np.ndarray | None = None

    def prepare(self, X: np.ndarray) -> list[np.ndarray]:
        X = np.ascontiguousarray(X, dtype=np.float32)
        return [X[i : i + 1] for i in range(X.shape[0])]

    def call(self, x: np.ndarray) -> np.ndarray:  # type: ignore[override]
        if self.zi is None:
            self.zi = self._unit[:, :, None] * x[0]
        y, self.zi = self._sosfilt(self.sos, x, axis=0, zi=self.zi)
        return y


class PipelineStep(Runner):
    """Filter + GRU per sample: ``x (C,) -> filter -> Stepper.step -> (O,)``.

    ``composition`` says which path ran: ``"stepper(filter=)"`` (the engine runs both) or
    ``"chain.step + stepper.step"`` (two calls, when the engine takes no filter).
    """

    name = "streamgru filter+GRU step"
    kind = "sample"

    def __init__(self, model: GRUModel, make_chain: Callable[[], Any]) -> None:
        self.model = model
        self._make = make_chain
        self.composition = ""
        self.reset()

    def reset(self, n_streams: int = 1) -> None:
        self.chain = self._make()
        try:
            self.stepper = self.model.stepper(dtype="float32", filter=self.chain, normalize=False)
        except TypeError:  # this build's Stepper takes no filter
            self.stepper = bare_stepper(self.model)
            self.composition = "chain.step + stepper.step"
            self.call = self._two_calls
        else:
            self.composition = "stepper(filter=)"
            self.call = self.stepper.step

    def _two_calls(self, x: np.ndarray) -> np.ndarray:
        return self.stepper.step(self.chain.step(x))

    def prepare(self, X: np.ndarray) -> list[np.ndarray]:
        return list(np.ascontiguousarray(X, dtype=np.float32))


def pipeline_reference(model: GRUModel, make_chain: Callable[[], Any], X: np.ndarray) -> np.ndarray:
    """Filter then GRU on a block, the two parts run separately: the pipeline's expected output."""
    filtered = make_chain().process(np.ascontiguousarray(X, dtype=np.float32))
    return bare_stepper(model).step_chunk(filtered).astype(np.float64)
