"""Statistics of timings for ``streamgru bench``: percentiles, jitter, deadline misses, rates.

Pure numpy, no timing here (see :mod:`streamgru.bench.timing`). Percentiles use the
nearest-rank definition: p99 is a latency that was actually observed, the smallest one with at
least 99 % of the calls at or below it.

>>> import numpy as np
>>> s = latency_stats(np.arange(1, 1001), deadline_ns=990)
>>> s["p50_ns"], s["p99_ns"], s["max_ns"], s["deadline_misses"]
(500, 990, 1000, 10)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

#: The percentiles reported for every latency distribution, with their JSON key names.
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50_ns", 50.0),
    ("p90_ns", 90.0),
    ("p99_ns", 99.0),
    ("p999_ns", 99.9),
)


def percentile_ns(samples_ns: np.ndarray, q: float) -> int:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of integer nanosecond timings.

    The value of rank ``ceil(q / 100 * n)`` in ascending order (rank rounded to 1e-9 first, so
    that 99.9 % of 1000 is rank 999 despite binary floating point).
    """
    values = np.asarray(samples_ns)
    n = values.size
    if n == 0:
        raise ValueError("percentile of an empty set of timings")
    if not 0 < q <= 100:
        raise ValueError(f"q must be in (0, 100], got {q}")
    rank = min(n, max(1, math.ceil(round(q * n / 100.0, 9))))
    return int(np.partition(values, rank - 1)[rank - 1])


def latency_stats(samples_ns: np.ndarray, deadline_ns: int | None = None) -> dict[str, Any]:
    """Summarise per-call latencies.

    Parameters
    ----------
    samples_ns : (n,) integer array of per-call times in nanoseconds, n >= 1
    deadline_ns : the time budget of one sample (1/fs), or None

    Returns
    -------
    dict with ``n_samples``, ``p50_ns``, ``p90_ns``, ``p99_ns``, ``p999_ns``, ``max_ns``,
    ``min_ns``, ``mean_ns``, ``std_ns`` (population), ``jitter_ns`` (p99 − p50),
    ``deadline_ns``, ``deadline_misses`` (calls strictly longer than the deadline) and
    ``deadline_miss_fraction`` (the last three None without a deadline).
    """
    values = np.asarray(samples_ns, dtype=np.int64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"expected a non-empty 1-D array of timings, got shape {values.shape}")
    out: dict[str, Any] = {"n_samples": int(values.size)}
    for key, q in PERCENTILES:
        out[key] = percentile_ns(values, q)
    out["max_ns"] = int(values.max())
    out["min_ns"] = int(values.min())
    out["mean_ns"] = float(values.mean())
    out["std_ns"] = float(values.std())
    out["jitter_ns"] = out["p99_ns"] - out["p50_ns"]
    if deadline_ns is None:
        out.update(deadline_ns=None, deadline_misses=None, deadline_miss_fraction=None)
    else:
        misses = int(np.count_nonzero(values > deadline_ns))
        out.update(
            deadline_ns=int(deadline_ns),
            deadline_misses=misses,
            deadline_miss_fraction=misses / values.size,
        )
    return out


def deadline_ns_for(fs: float | None) -> int | None:
    """The per-sample budget 1/fs in nanoseconds (rounded down), or None without a rate."""
    if fs is None:
        return None
    if not fs > 0:
        raise ValueError(f"fs must be positive, got {fs}")
    return int(1e9 / fs)


def cdf_points(samples_ns: np.ndarray, n_points: int = 200) -> tuple[list[int], list[float]]:
    """A compact empirical CDF for plotting: (latencies in ns, cumulative fractions).

    Keeps ``n_points`` quantiles spread evenly in log(1 − F), so the tail (p99, p99.9, max)
    is as well drawn as the body.
    """
    values = np.sort(np.asarray(samples_ns, dtype=np.int64))
    n = values.size
    if n == 0:
        return [], []
    # fractions from 0 to 1 - 1/n, denser towards the tail
    tail = np.geomspace(1.0, 1.0 / n, num=max(2, n_points))
    frac = np.unique(np.clip(1.0 - tail, 0.0, 1.0))
    idx = np.minimum((frac * n).astype(np.int64), n - 1)
    xs = values[idx].tolist()
    fs = ((idx + 1) / n).tolist()
    if xs[-1] != int(values[-1]) or fs[-1] != 1.0:
        xs.append(int(values[-1]))
        fs.append(1.0)
    return [int(x) for x in xs], [float(f) for f in fs]


def rate_per_s(count: float, per_call_ns: float) -> float:
    """Items per second when ``count`` items take ``per_call_ns`` nanoseconds."""
    if per_call_ns <= 0:
        raise ValueError(f"a call time must be positive, got {per_call_ns} ns")
    return count * 1e9 / per_call_ns


def gru_flops_per_step(
    input_size: int, hidden_size: int, num_layers: int, n_streams: int = 1
) -> int:
    """Multiply-add FLOPs (2 per MAC) of the GRU matrix products of one step of ``n_streams``.

    Per layer and stream: (3H x I_l) @ x and (3H x H) @ h, with I_l = input_size for the first
    layer and hidden_size above it. Gates, biases and the head are left out: this is the work a
    single-thread sgemm of the same shapes does, the reference of the "fraction of sgemm" figure.
    """
    total = 0
    for layer in range(num_layers):
        in_size = input_size if layer == 0 else hidden_size
        total += 2 * 3 * hidden_size * (in_size + hidden_size)
    return total * n_streams


def gru_sgemm_reference(
    input_size: int, hidden_size: int, num_layers: int, n_streams: int, seed: int = 0
) -> Callable[[], None]:
    """A call doing :func:`gru_flops_per_step`'s work as single float32 matmuls: per layer l,
    (B, I_l + H) @ (I_l + H, 3H) into preallocated outputs (random operands, seeded)."""
    rng = np.random.default_rng(seed)
    mats = []
    for layer in range(num_layers):
        k = (input_size if layer == 0 else hidden_size) + hidden_size
        mats.append(
            (
                rng.standard_normal((n_streams, k)).astype(np.float32),
                rng.standard_normal((k, 3 * hidden_size)).astype(np.float32),
                np.empty((n_streams, 3 * hidden_size), dtype=np.float32),
            )
        )

    def gemms() -> None:
        for a, b, c in mats:
            np.matmul(a, b, out=c)

    return gemms
