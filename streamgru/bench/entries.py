"""The report's building blocks: the docs/design.md section 10 targets and the status, latency and
ratio entries that :class:`~streamgru.bench.run.ModelRun` appends (shapes in ``schema.json``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .runners import (
    Runner,
)
from .stats import (
    cdf_points,
    deadline_ns_for,
    latency_stats,
)

#: Sample rate when neither --fs nor the model gives one (Hz).
DEFAULT_FS = 1000.0


#: Samples in the input pool the per-sample loops cycle through.
POOL_SAMPLES = 4096


#: docs/design.md section 10 targets, attached to ratios when the model is the size they name.
TARGET_SIZE = (8, 64, 1)


TARGETS = {
    "step vs torch GRUCell": (">=", 20.0),
    "step vs onnxruntime run": (">=", 8.0),
    "chunk256 vs onnxruntime fused block": (">=", 1.0),
    "many1024 sgemm": (">=", 0.5),
    "pipeline": ("<=", 2.0),
    "daemon p99 ms": ("<=", 1.0),
}


def status_entry(status: str, note: str | None = None, **extra: Any) -> dict[str, Any]:
    """A ``modes`` entry: status, note, and mode details."""
    return {"status": status, "note": note, **extra}


def latency_entry(runner: Runner, mode: str, samples_ns: np.ndarray, fs: float | None) -> dict:
    """A ``latency`` entry: the distribution's statistics and its CDF."""
    xs, fr = cdf_points(samples_ns)
    return {
        "method": runner.name,
        "framework": runner.framework,
        "mode": mode,
        **latency_stats(samples_ns, deadline_ns_for(fs)),
        "cdf": {"ns": xs, "fraction": fr},
    }


def ratio_entry(
    name: str,
    kind: str,
    numerator: str,
    denominator: str,
    value: float,
    target: tuple[str, float] | None,
    description: str,
) -> dict[str, Any]:
    """A ``ratios`` entry; ``met`` is None without a target."""
    met = None
    if target is not None:
        op, bound = target
        met = bool(value >= bound) if op == ">=" else bool(value <= bound)
    return {
        "name": name,
        "kind": kind,
        "numerator": numerator,
        "denominator": denominator,
        "value": float(value),
        "target": None if target is None else {"op": target[0], "value": target[1]},
        "met": met,
        "description": description,
    }
