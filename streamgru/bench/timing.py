"""Timing loops for ``streamgru bench``: per-call latencies and per-call medians.

Methods compared with each other are timed in turns (interleaved), so the slow periods of a
shared machine fall on all of them alike. Every loop runs with the garbage collector paused (as
:mod:`timeit` does) after a warm-up that is not timed, and reads ``time.perf_counter_ns`` around
each call. The timer itself costs a few tens of nanoseconds per reading;
:func:`timer_overhead_ns` measures it so a report can say so (nothing is subtracted: every
method carries the same overhead).
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np


@contextmanager
def gc_paused(collect: bool = False) -> Iterator[None]:
    """Pause the cyclic garbage collector inside the block (restored afterwards).

    ``collect=True`` runs a full collection first; with torch loaded that alone takes a large
    fraction of a second, so benchmarks collect once per run rather than per measurement.
    """
    was_enabled = gc.isenabled()
    if collect:
        gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def timer_overhead_ns(n: int = 20000) -> int:
    """Median cost of two back-to-back ``perf_counter_ns`` readings, in nanoseconds."""
    clock = time.perf_counter_ns
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        t0 = clock()
        out[i] = clock() - t0
    return int(np.median(out))


def _time_batch(
    fn: Callable[[Any], Any], items: Sequence[Any], start: int, out: np.ndarray
) -> None:
    clock = time.perf_counter_ns
    n_items = len(items)
    for i in range(out.shape[0]):
        x = items[(start + i) % n_items]
        t0 = clock()
        fn(x)
        out[i] = clock() - t0


def time_each_call_interleaved(
    calls: Sequence[tuple[Callable[[Any], Any], Sequence[Any]]],
    duration_s: float,
    min_calls: int = 1000,
    max_calls: int = 2_000_000,
    warmup_calls: int = 200,
    slice_s: float = 0.02,
) -> list[np.ndarray]:
    """Time every call of several methods, taking turns, about ``duration_s`` seconds each.

    The methods run in slices of about ``slice_s`` seconds, one after the other, round after
    round, so a noisy neighbour that slows the machine for a while slows all of them alike and
    their ratios stay meaningful.

    Parameters
    ----------
    calls : (fn, items) per method: ``fn(items[i % len(items)])`` is the timed call; indexing
        happens outside the timed region
    duration_s : wall-clock budget of each method's timed calls (a method stops at the first
        slice end past it, never before ``min_calls`` calls)
    min_calls, max_calls : bounds on each method's number of timed calls
    warmup_calls : untimed calls of each method first (dispatch, caches, branch predictors)

    Returns
    -------
    one (n,) int64 array of nanoseconds per method, in call order.
    """
    if not calls or any(not items for _, items in calls):
        raise ValueError("time_each_call_interleaved needs methods with at least one input each")
    batch_sizes = []
    for fn, items in calls:
        for i in range(warmup_calls):
            fn(items[i % len(items)])
        probe = np.empty(min(100, max_calls), dtype=np.int64)
        _time_batch(fn, items, 0, probe)
        per_call = max(float(np.median(probe)), 1.0)
        batch_sizes.append(int(min(65536, max(16, slice_s * 1e9 / per_call))))
    results: list[list[np.ndarray]] = [[] for _ in calls]
    counts = [0] * len(calls)
    spent = [0.0] * len(calls)
    active = list(range(len(calls)))
    with gc_paused():
        while active:
            for k in list(active):
                fn, items = calls[k]
                out = np.empty(min(batch_sizes[k], max_calls - counts[k]), dtype=np.int64)
                t0 = time.perf_counter()
                _time_batch(fn, items, counts[k], out)
                spent[k] += time.perf_counter() - t0
                results[k].append(out)
                counts[k] += out.shape[0]
                if counts[k] >= max_calls or (counts[k] >= min_calls and spent[k] >= duration_s):
                    active.remove(k)
    return [np.concatenate(r) for r in results]


def time_each_call(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    duration_s: float,
    min_calls: int = 1000,
    max_calls: int = 2_000_000,
    warmup_calls: int = 200,
) -> np.ndarray:
    """:func:`time_each_call_interleaved` for one method: (n,) int64 ns, one per call."""
    return time_each_call_interleaved(
        [(fn, items)], duration_s, min_calls, max_calls, warmup_calls
    )[0]


def median_call_ns_interleaved(
    fns: Sequence[Callable[[], Any]],
    budget_s: float,
    min_repeats: int = 5,
    max_repeats: int = 51,
    warmup_calls: int = 3,
    repeat_s: float = 0.01,
) -> list[tuple[float, int]]:
    """Median time of one call of each ``fn()``, from repeats taken in turns.

    Each repeat of a method runs ``inner`` back-to-back calls (chosen so a repeat takes about
    ``repeat_s``, at least 1) and records their mean. Rounds run one repeat of every method in
    turn, so slow periods of a shared machine hit all methods alike; each result is the median
    over its repeats, which shrugs off the repeats a neighbour interrupted. The number of rounds
    is ``budget_s`` divided by the slowest method's repeat time, within the bounds.

    Returns
    -------
    (median nanoseconds per call, total timed calls) per method.
    """
    clock = time.perf_counter_ns
    inners = []
    per_repeat = []
    for fn in fns:
        for _ in range(warmup_calls):
            fn()
        t0 = clock()
        fn()
        one = max(clock() - t0, 1)
        inner = max(1, int(repeat_s * 1e9 // one))
        inners.append(inner)
        per_repeat.append(one * inner)
    repeats = int(min(max_repeats, max(min_repeats, budget_s * 1e9 // max(max(per_repeat), 1))))
    means = np.empty((len(fns), repeats), dtype=np.float64)
    with gc_paused():
        for r in range(repeats):
            for k, fn in enumerate(fns):
                inner = inners[k]
                t0 = clock()
                for _ in range(inner):
                    fn()
                means[k, r] = (clock() - t0) / inner
    return [(float(np.median(means[k])), repeats * inners[k]) for k in range(len(fns))]


def median_call_ns(
    fn: Callable[[], Any],
    budget_s: float,
    min_repeats: int = 5,
    max_repeats: int = 51,
    warmup_calls: int = 3,
) -> tuple[float, int]:
    """:func:`median_call_ns_interleaved` for one method: (median ns per call, timed calls)."""
    return median_call_ns_interleaved([fn], budget_s, min_repeats, max_repeats, warmup_calls)[0]


def load_blas_libraries() -> None:
    """Load the BLAS libraries the kernels may call, so that limiting threads reaches them.

    threadpoolctl limits the pools loaded when it is called. numba's ``np.dot`` calls scipy's
    own OpenBLAS (``scipy.linalg.cython_blas``), which is otherwise loaded lazily at the first
    many-stream step: later than the limit, so it would keep all its threads.
    """
    try:
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:  # pragma: no cover - scipy is a dependency
        pass


@contextmanager
def pinned_threads(n_threads: int = 1) -> Iterator[list[str]]:
    """Limit BLAS/OpenMP pools (threadpoolctl) and torch's intra-op pool to ``n_threads``.

    Yields a list of notes (what could not be pinned). Everything is restored on exit.
    """
    notes: list[str] = []
    limiter = None
    load_blas_libraries()
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=n_threads)
    except ImportError:
        notes.append(
            "threadpoolctl is not installed: BLAS threads not pinned "
            "(set OMP_NUM_THREADS=1 / OPENBLAS_NUM_THREADS=1)"
        )
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n_threads)
    try:
        yield notes
    finally:
        if torch is not None and torch_threads is not None:
            torch.set_num_threads(torch_threads)
        if limiter is not None:
            limiter.restore_original_limits()
