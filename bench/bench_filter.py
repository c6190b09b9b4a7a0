"""Filter benchmarks: FilterChain and the numba kernels against scipy.signal.sosfilt.

Not collected by the test run (testpaths is ``tests``); run explicitly::

    python -m pytest bench/bench_filter.py --benchmark-columns=min,median,mean,rounds

The filter is a 4-section Butterworth band-pass (0.5-40 Hz, order 4, fs 360 Hz), one channel.
Groups: ``filter-sample`` (one sample per call) and ``filter-chunk256`` (a 256-sample block per
call). Compilation and warm-up happen before timing; BLAS is pinned to one thread.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from threadpoolctl import threadpool_limits

from streamgru.kernels.sos import (
    sos_filter_chunk,
    sos_filter_chunk_with_start,
    sos_filter_sample,
    sos_filter_sample_with_start,
)
from streamgru.signal import FilterChain

FS = 360.0
CHUNK = 256


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    with threadpool_limits(limits=1):
        yield


@pytest.fixture
def chain():
    chain = FilterChain.design(FS, highpass=0.5, lowpass=40.0, order=4)
    assert chain.n_sections == 4
    chain.process(np.zeros(8))  # compile/load, start the state
    return chain


@pytest.fixture
def block():
    return np.random.default_rng(0).standard_normal((CHUNK, 1))


# ---------------------------------------------------------------- one sample
@pytest.mark.benchmark(group="filter-sample")
def test_chain_step(benchmark, chain):
    benchmark(chain.step, 0.25)


@pytest.mark.benchmark(group="filter-sample")
def test_kernel_sample(benchmark, chain):
    sos, zi, _, _ = chain.kernel_state()
    x = np.empty(1)

    def kernel_step():  # x is overwritten by the kernel: refill it (part of the timing)
        x[0] = 0.25
        sos_filter_sample(sos, zi, x)

    benchmark(kernel_step)


@pytest.mark.benchmark(group="filter-sample")
def test_kernel_sample_with_start(benchmark, chain):
    sos, zi, zi_unit, started = chain.kernel_state()
    x = np.empty(1)

    def kernel_step():
        x[0] = 0.25
        return sos_filter_sample_with_start(sos, zi, zi_unit, started, x)

    benchmark(kernel_step)


@pytest.mark.benchmark(group="filter-sample")
def test_scipy_sosfilt_sample(benchmark, chain):
    sos = chain.sos  # a writable copy: scipy refuses read-only sections
    state = {"zi": np.zeros((chain.n_sections, 2))}
    x = np.array([0.25])

    def scipy_step():
        y, state["zi"] = scipy.signal.sosfilt(sos, x, zi=state["zi"])
        return y

    benchmark(scipy_step)


# ------------------------------------------------------------- 256 samples
@pytest.mark.benchmark(group="filter-chunk256")
def test_chain_process_chunk(benchmark, chain, block):
    benchmark(chain.process, block)


@pytest.mark.benchmark(group="filter-chunk256")
def test_kernel_chunk(benchmark, chain, block):
    sos, zi, _, _ = chain.kernel_state()
    work = np.empty_like(block)

    def kernel_chunk():  # the block is filtered in place: refill it (part of the timing)
        np.copyto(work, block)
        sos_filter_chunk(sos, zi, work)

    benchmark(kernel_chunk)


@pytest.mark.benchmark(group="filter-chunk256")
def test_kernel_chunk_with_start(benchmark, chain, block):
    sos, zi, zi_unit, started = chain.kernel_state()
    work = np.empty_like(block)

    def kernel_chunk():
        np.copyto(work, block)
        return sos_filter_chunk_with_start(sos, zi, zi_unit, started, work)

    benchmark(kernel_chunk)


@pytest.mark.benchmark(group="filter-chunk256")
def test_scipy_sosfilt_chunk(benchmark, chain, block):
    sos = chain.sos
    state = {"zi": np.zeros((chain.n_sections, 2, 1))}

    def scipy_chunk():
        y, state["zi"] = scipy.signal.sosfilt(sos, block, axis=0, zi=state["zi"])
        return y

    benchmark(scipy_chunk)
