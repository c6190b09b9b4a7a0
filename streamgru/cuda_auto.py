"""What ``device="auto"`` runs on: the GPU only past a crossover measured on that very GPU.

A CUDA GPU beats the CPU :class:`~streamgru.engine.BatchStepper` only from some number of
streams on, and where that is depends on the GPU, the CPU and the model. So ``device="auto"``
never guesses: it picks CUDA only when a *measured* crossover is recorded for the GPU's name
(``numba.cuda`` device name, e.g. ``"NVIDIA H100 80GB HBM3"``) and ``n_streams`` reaches it;
otherwise the CPU. Every choice is logged (logger ``streamgru.device``) and kept on the
stepper as ``.device`` and ``.device_reason``.

The record is a small JSON file::

    {"format": "streamgru.cuda-thresholds", "version": 1,
     "gpus": {"NVIDIA H100 80GB HBM3": {"min_streams": 2048, "measured_utc": "...",
                                        "model": "I=8 H=64 L=1", "samples_per_call": 16,
                                        "ratios": {"1024": 0.8, "2048": 1.3}, ...}}}

at ``$STREAMGRU_CUDA_THRESHOLDS`` if set, else ``$XDG_CACHE_HOME/streamgru/cuda_thresholds.json``
(``~/.cache/...``). :func:`record_threshold` writes it; ``bench/bench_cuda.py`` calls it with the
crossover it measured (:func:`streamgru.bench.cuda_threshold.record_crossovers`). Float64 always
runs on the CPU under ``"auto"``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cuda_device import gpu_name
from .errors import ConfigError

#: The environment variable naming the thresholds file.
ENV = "STREAMGRU_CUDA_THRESHOLDS"
FORMAT = "streamgru.cuda-thresholds"
VERSION = 1

logger = logging.getLogger("streamgru.device")


@dataclass(frozen=True)
class DeviceChoice:
    """``device`` ("cpu" or "cuda") and ``reason``: one sentence saying why."""

    device: str
    reason: str


def thresholds_path() -> Path:
    """Where the measured crossovers live (``$STREAMGRU_CUDA_THRESHOLDS``, else the user cache)."""
    given = os.environ.get(ENV)
    if given:
        return Path(given).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "streamgru" / "cuda_thresholds.json"


def read_thresholds(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """GPU name -> its record (``min_streams`` int >= 1, and details); {} when no file exists.

    Raises ConfigError naming the file for one that cannot be read or has the wrong layout.
    """
    path = thresholds_path() if path is None else Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the CUDA thresholds: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ConfigError(
            f"{path}: expected a {FORMAT!r} version {VERSION} document, got "
            f"format={doc.get('format') if isinstance(doc, dict) else type(doc).__name__!r}"
        )
    gpus = doc.get("gpus")
    if not isinstance(gpus, dict):
        raise ConfigError(f"{path}: 'gpus' must be an object of GPU name -> record")
    for name, record in gpus.items():
        value = record.get("min_streams") if isinstance(record, dict) else None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"{path}: gpus[{name!r}].min_streams: expected an integer >= 1, got {value!r}"
            )
    return gpus


def record_threshold(
    gpu_name: str, min_streams: int, details: dict[str, Any] | None = None, path: Path | None = None
) -> Path:
    """Record (or replace) the measured crossover of ``gpu_name``; other GPUs' records are kept.

    The file is replaced atomically. Returns its path.
    """
    if isinstance(min_streams, bool) or not isinstance(min_streams, int) or min_streams < 1:
        raise ConfigError(f"min_streams: expected an integer >= 1, got {min_streams!r}")
    if not gpu_name:
        raise ConfigError("gpu_name: expected the CUDA device name, got an empty string")
    path = thresholds_path() if path is None else Path(path)
    gpus = read_thresholds(path)
    gpus[gpu_name] = {"min_streams": int(min_streams), **(details or {})}
    doc = {"format": FORMAT, "version": VERSION, "gpus": gpus}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def choose_device(
    n_streams: int, float32: bool, gpu: str | None, path: Path | None = None
) -> DeviceChoice:
    """The choice of ``device="auto"`` for ``n_streams`` streams.

    ``float32``: the compute dtype is float32 (float64 stays on the CPU); ``gpu``: the name of
    the CUDA GPU present, None when there is none (the simulator does not count).
    """
    if not float32:
        return DeviceChoice("cpu", "float64 runs on the CPU under device='auto'")
    if gpu is None:
        return DeviceChoice("cpu", "no CUDA GPU here (numba-cuda and an NVIDIA driver)")
    path = thresholds_path() if path is None else Path(path)
    try:
        record = read_thresholds(path).get(gpu)
    except ConfigError as exc:
        return DeviceChoice("cpu", f"the measured CPU/GPU crossovers are unusable ({exc})")
    if record is None:
        return DeviceChoice(
            "cpu",
            f"no measured CPU/GPU crossover for GPU {gpu!r} in {path} (run bench/bench_cuda.py "
            "on this machine to record one)",
        )
    threshold = int(record["min_streams"])
    if n_streams < threshold:
        return DeviceChoice(
            "cpu", f"{n_streams} streams < {threshold}, the crossover measured on {gpu!r}"
        )
    return DeviceChoice(
        "cuda", f"{n_streams} streams >= {threshold}, the crossover measured on {gpu!r}"
    )


def auto_choice(n_streams: Any, dtype: Any = "float32") -> DeviceChoice:
    """What ``device="auto"`` picks here for ``n_streams`` streams of ``dtype``, and why.

    Bad ``n_streams`` or ``dtype`` choose the CPU, whose stepper then reports them.
    """
    import numpy as np

    from .engine import _resolve_dtype
    from .errors import ShapeError

    try:
        float32 = _resolve_dtype(dtype) == np.float32
    except ShapeError:
        return DeviceChoice("cpu", f"dtype {dtype!r} is not float32 or float64")
    if isinstance(n_streams, bool) or not isinstance(n_streams, (int, np.integer)):
        return DeviceChoice("cpu", f"n_streams {n_streams!r} is not an integer")
    return choose_device(int(n_streams), float32, gpu_name())


def log_choice(choice: DeviceChoice, n_streams: int) -> None:
    """One INFO line on the ``streamgru.device`` logger."""
    logger.info(
        "device='auto' chose %s for %s streams: %s", choice.device, n_streams, choice.reason
    )
