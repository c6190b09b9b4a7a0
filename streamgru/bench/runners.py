"""Methods under test for ``streamgru bench``: one small interface, streamgru's own runners, and
the output check every alternative must pass before it is timed.

A runner is built on a model's weights and exposes:

* ``name`` (shown in reports), ``framework`` (``streamgru``, ``torch``, ``onnxruntime``, ``scipy``)
  and ``kind``: ``"sample"`` (one call per sample; for many streams, one call per step of all
  streams) or ``"block"`` (one call per block of samples);
* ``reset(n_streams=1)``: zero state (and size the batch);
* ``prepare(X)``: inputs converted once to the runner's own type, outside any timing. For a
  ``sample`` runner, X is (N, input_size) or (N, B, input_size) and the result a list of N
  per-call items; for a ``block`` runner, X is (T, input_size) and the result one item;
* ``call(item)``: the work being timed (an attribute, so a bound method is timed directly);
* ``to_numpy(out)``: a call's result as a float ndarray;
* ``active()``: a context the timed calls run inside (torch's inference mode, for instance).

Alternatives are measured in their best case: inputs already in their tensor type, outputs left
as they come.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, StreamgruError
from ..model.core import GRUModel

#: Largest allowed difference between an alternative's float32 outputs and streamgru's.
DEFAULT_ATOL = 1e-4


class BenchmarkMismatchError(StreamgruError, ValueError):
    """An alternative computes something other than streamgru on the same weights and inputs,
    so timing it against streamgru would report a meaningless speedup."""


class ComparisonUnavailableError(BackendUnavailableError):
    """A comparison cannot run here: its framework is missing or cannot express the model."""


class Runner:
    """Base of every method under test (see the module docstring for the interface)."""

    name = "runner"
    framework = "streamgru"
    kind = "sample"
    call: Callable[[Any], Any]

    def reset(self, n_streams: int = 1) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def prepare(self, X: np.ndarray) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def to_numpy(self, out: Any) -> np.ndarray:
        return np.array(out, dtype=np.float64, copy=True)

    def active(self) -> Any:
        return nullcontext()


def run_outputs(runner: Runner, X: np.ndarray, n_streams: int = 1) -> np.ndarray:
    """Run ``X`` through ``runner`` from a zero state and collect its outputs.

    Parameters
    ----------
    X : (T, input_size), or (T, B, input_size) for a sample runner over B streams

    Returns
    -------
    (T, output_size) or (T, B, output_size) float64
    """
    runner.reset(n_streams)
    with runner.active():
        if runner.kind == "block":
            return runner.to_numpy(runner.call(runner.prepare(X))).reshape(X.shape[0], -1)
        rows = [runner.to_numpy(runner.call(item)) for item in runner.prepare(X)]
    shape = (X.shape[0], -1) if X.ndim == 2 else (X.shape[0], X.shape[1], -1)
    return np.stack(rows).reshape(shape)


def verify_runner(
    runner: Runner,
    X: np.ndarray,
    reference: np.ndarray,
    atol: float = DEFAULT_ATOL,
    n_streams: int = 1,
    reference_name: str = "streamgru",
) -> float:
    """Check that ``runner`` gives ``reference`` on ``X``, within ``atol``.

    Returns
    -------
    the largest absolute difference found

    Raises
    ------
    BenchmarkMismatchError
        different shapes, a non-finite output, or a difference above ``atol``.
    """
    got = run_outputs(runner, X, n_streams)
    ref = np.asarray(reference, dtype=np.float64)
    if got.shape != ref.shape:
        raise BenchmarkMismatchError(
            f"{runner.name}: outputs of shape {got.shape} on the check input, expected {ref.shape} "
            f"as {reference_name}; not timing a comparison of different functions"
        )
    if not np.all(np.isfinite(got)):
        raise BenchmarkMismatchError(f"{runner.name}: non-finite outputs on the check input")
    diff = np.abs(got - ref)
    worst = float(diff.max()) if diff.size else 0.0
    if worst > atol:
        where = np.unravel_index(int(np.argmax(diff)), diff.shape)
        raise BenchmarkMismatchError(
            f"{runner.name}: outputs differ from {reference_name}'s by up to {worst:.3g} "
            f"(tolerance {atol:g}) at sample {int(where[0])}, "
            f"index {tuple(int(i) for i in where[1:])}"
            f"; it does not compute the same function on these weights, so no speedup is reported"
        )
    return worst


def check_input(
    model: GRUModel, n_samples: int = 300, seed: int = 1, n_streams: int | None = None
) -> np.ndarray:
    """The random float32 input used to check outputs: (T, I) or (T, B, I), standard normal."""
    rng = np.random.default_rng(seed)
    shape = (
        (n_samples, model.input_size)
        if n_streams is None
        else (n_samples, n_streams, model.input_size)
    )
    return rng.standard_normal(shape).astype(np.float32)


# --------------------------------------------------------------------------- streamgru's runners
def bare_stepper(model: GRUModel, n_streams: int | None = None) -> Any:
    """A float32 stepper running the GRU and its head only: no filter or normalisation from the
    model's metadata, so that it computes what torch and ONNX Runtime compute on the weights."""
    try:
        if n_streams is None:
            return model.stepper(dtype="float32", filter=None, normalize=False)
        return model.stepper(dtype="float32", n_streams=n_streams, device="cpu", filter=None)
    except TypeError:  # an engine without input conditioning
        if n_streams is None:
            return model.stepper(dtype="float32")
        return model.stepper(dtype="float32", n_streams=n_streams, device="cpu")


class StreamgruStep(Runner):
    """``Stepper.step`` on one sample: the per-sample path users call from Python (bare GRU +
    head, see :func:`bare_stepper`)."""

    name = "streamgru step"
    kind = "sample"

    def __init__(self, model: GRUModel) -> None:
        self.model = model
        self.reset()

    def reset(self, n_streams: int = 1) -> None:
        self.stepper = bare_stepper(self.model)
        self.call = self.stepper.step

    def prepare(self, X: np.ndarray) -> list[np.ndarray]:
        X = np.ascontiguousarray(X, dtype=np.float32)
        return list(X)


class StreamgruChunk(Runner):
    """``Stepper.step_chunk(X, out=buf)`` on a block: one compiled call per block."""

    name = "streamgru step_chunk"
    kind = "block"

    def __init__(self, model: GRUModel) -> None:
        self.model = model
        self.reset()

    def reset(self, n_streams: int = 1) -> None:
        self.stepper = bare_stepper(self.model)

    def prepare(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = np.ascontiguousarray(X, dtype=np.float32)
        return X, np.empty((X.shape[0], self.model.output_size), dtype=np.float32)

    def call(self, item: tuple[np.ndarray, np.ndarray]) -> np.ndarray:  # type: ignore[override]
        return self.stepper.step_chunk(item[0], out=item[1])


class StreamgruMany(Runner):
    """``BatchStepper.step(X, out=buf)``: one step of B streams per call."""

    name = "streamgru BatchStepper.step"
    kind = "sample"

    def __init__(self, model: GRUModel, n_streams: int = 1) -> None:
        self.model = model
        self.reset(n_streams)

    def reset(self, n_streams: int = 1) -> None:
        self.stepper = bare_stepper(self.model, n_streams)
        self._out = np.empty((n_streams, self.model.output_size), dtype=np.float32)

    def prepare(self, X: np.ndarray) -> list[np.ndarray]:
        X = np.ascontiguousarray(X, dtype=np.float32)
        return list(X)

    def call(self, item: np.ndarray) -> np.ndarray:  # type: ignore[override]
        return self.stepper.step(item, out=self._out)
