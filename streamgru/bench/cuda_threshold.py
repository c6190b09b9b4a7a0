"""The CPU/GPU crossover ``device="auto"`` needs, from measured throughputs.

``bench/bench_cuda.py`` times the CPU :class:`~streamgru.engine.BatchStepper` and the
:class:`~streamgru.cuda_engine.CudaBatchStepper` (host arrays, copies included) on the same
input for several stream counts B; :func:`record_crossovers` turns those medians into the
smallest B from which the GPU wins and records it for this GPU's name
(:func:`streamgru.cuda_auto.record_threshold`), where ``device="auto"`` looks it up.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..cuda_auto import record_threshold


def crossover(cpu_s: Mapping[int, float], gpu_s: Mapping[int, float]) -> int | None:
    """The smallest B from which the GPU is faster at B and at every larger B measured.

    ``cpu_s``, ``gpu_s`` : B -> median seconds of one call on the same (B, T, I) input; only
    the B measured on both count. None when the GPU is not faster at the largest B.
    """
    common = sorted(set(cpu_s) & set(gpu_s))
    found = None
    for b in reversed(common):
        if gpu_s[b] < cpu_s[b]:
            found = b
        else:
            break
    return found


def record_crossovers(
    gpu_name: str,
    cpu_s: Mapping[int, float],
    gpu_s: Mapping[int, float],
    details: Mapping[str, Any] | None = None,
    path: Path | None = None,
) -> tuple[int | None, Path | None]:
    """Record the crossover of ``gpu_name`` from its medians (see :func:`crossover`).

    Returns (the crossover, the file written), or (None, None) when the GPU never wins: then
    nothing is recorded and ``device="auto"`` keeps to the CPU on that GPU.
    """
    found = crossover(cpu_s, gpu_s)
    if found is None:
        return None, None
    common = sorted(set(cpu_s) & set(gpu_s))
    record = {
        "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "gpu_over_cpu_speed": {str(b): round(cpu_s[b] / gpu_s[b], 3) for b in common},
        **(details or {}),
    }
    return found, record_threshold(gpu_name, found, record, path)
