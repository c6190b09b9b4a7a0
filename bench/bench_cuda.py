"""GPU benchmarks: CudaBatchStepper (numba.cuda) against the CPU BatchStepper, in one run.

Not collected by the test run (testpaths is ``tests``); needs a CUDA GPU, numba-cuda and an
NVIDIA driver, and skips cleanly without them (the CUDA simulator does not count)::

    python -m pytest bench/bench_cuda.py --benchmark-only --benchmark-columns=median,rounds
    STREAMGRU_BENCH_STREAMS=1024,4096 STREAMGRU_BENCH_SAMPLES=16 python -m pytest bench/bench_cuda.py

Model: I=8, H=64, L=1, a Linear head to one output (the docs/design.md section 10 size), float32.
For every stream count B (256 ... 65536) and samples per call T (1, 16, 256), groups
``cuda B=<B> T=<T>`` hold:

* ``gpu-kernel``: ``step_chunk(X_dev, out=Y_dev)`` on device arrays and a synchronize: the
  kernel (one launch for all B streams and T samples) plus the launch overhead, no copies;
* ``gpu-host``: ``step_chunk(X, out=Y)`` on host arrays: what a caller with numpy data pays
  (finite check, host-to-device copy, kernel, device-to-host copy);
* ``transfers``: the two copies alone (same sizes); CUDA-event timings of each direction are
  in ``extra_info`` (``h2d_ms``, ``d2h_ms``);
* ``cpu``: the CPU BatchStepper (one thread, as bench/conftest.py pins it) on the same input,
  for T in (1, 16) only (T=256 at 65536 streams takes minutes on one core).

``extra_info["stream_steps_per_s"]`` = B * T / median. At the end ("streamgru ratios"), per T,
the crossover: the smallest B from which ``gpu-host`` beats ``cpu`` in stream-steps per second.
The crossover at the largest T measured on the CPU is recorded for this GPU's name
(:func:`streamgru.bench.cuda_threshold.record_crossovers`, in the file
:func:`streamgru.cuda_auto.thresholds_path` names): from then on ``device="auto"`` runs on this
GPU from that many streams up, and on the CPU below it (and on GPUs never measured).
Compilation and the first launch happen before timing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from streamgru.bench.cuda_threshold import record_crossovers
from streamgru.cuda_auto import thresholds_path
from streamgru.cuda_device import gpu_name
from streamgru.cuda_engine import CudaBatchStepper, gpu_present

if not gpu_present():
    pytest.skip(
        "no CUDA GPU here (needs numba-cuda and an NVIDIA driver; the simulator does not count)",
        allow_module_level=True,
    )

# imported after the skip: importing it needs the package
from numba import cuda


def _sizes(name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    value = os.environ.get(name)
    return tuple(int(v) for v in value.split(",")) if value else default


INPUT, HIDDEN, LAYERS = 8, 64, 1
STREAMS = _sizes("STREAMGRU_BENCH_STREAMS", (256, 1024, 4096, 16384, 65536))
SAMPLES = _sizes("STREAMGRU_BENCH_SAMPLES", (1, 16, 256))
CPU_SAMPLES = tuple(t for t in SAMPLES if t <= 16)
EVENT_REPEATS = 10


@pytest.fixture(scope="module")
def model(make_model: Callable[..., Any]) -> Any:
    return make_model(INPUT, HIDDEN, LAYERS)


@pytest.fixture(scope="module")
def steppers(model: Any) -> Iterator[Callable[[str, int], Any]]:
    """``steppers(device, B)``: one stepper per device and stream count, built once (compiled)."""
    cache: dict[tuple[str, int], Any] = {}

    def get(device: str, n_streams: int) -> Any:
        key = (device, n_streams)
        if key not in cache:
            if device == "cuda":
                cache[key] = CudaBatchStepper(model, n_streams)
            else:
                cache[key] = model.stepper(n_streams=n_streams, device="cpu")
        return cache[key]

    yield get
    cache.clear()


def _inputs(n_streams: int, n_samples: int) -> np.ndarray:
    rng = np.random.default_rng(n_streams * 1000 + n_samples)
    return rng.standard_normal((n_streams, n_samples, INPUT)).astype(np.float32)


def _note(benchmark: Any, n_streams: int, n_samples: int) -> None:
    benchmark.group = f"cuda B={n_streams} T={n_samples}"
    benchmark.extra_info["streams"] = n_streams
    benchmark.extra_info["samples_per_call"] = n_samples


def _throughput(benchmark: Any, n_streams: int, n_samples: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        benchmark.extra_info["stream_steps_per_s"] = n_streams * n_samples / stats.stats.median


@pytest.mark.parametrize("n_samples", SAMPLES)
@pytest.mark.parametrize("n_streams", STREAMS)
def test_gpu_kernel(benchmark, steppers, record_median, n_streams, n_samples):
    st = steppers("cuda", n_streams)
    d_x = cuda.to_device(_inputs(n_streams, n_samples))
    d_y = cuda.device_array((n_streams, n_samples, st.output_size), dtype=np.float32)

    def run() -> None:
        st.step_chunk(d_x, out=d_y)
        cuda.synchronize()

    run()
    _note(benchmark, n_streams, n_samples)
    benchmark(run)
    _throughput(benchmark, n_streams, n_samples)
    record_median(benchmark, f"cuda gpu-kernel {n_streams} {n_samples}")


@pytest.mark.parametrize("n_samples", SAMPLES)
@pytest.mark.parametrize("n_streams", STREAMS)
def test_gpu_host(benchmark, steppers, record_median, n_streams, n_samples):
    st = steppers("cuda", n_streams)
    x = _inputs(n_streams, n_samples)
    y = np.empty((n_streams, n_samples, st.output_size), dtype=np.float32)
    st.step_chunk(x, out=y)
    _note(benchmark, n_streams, n_samples)
    benchmark(st.step_chunk, x, out=y)
    _throughput(benchmark, n_streams, n_samples)
    record_median(benchmark, f"cuda gpu-host {n_streams} {n_samples}")


@pytest.mark.parametrize("n_samples", SAMPLES)
@pytest.mark.parametrize("n_streams", STREAMS)
def test_transfers(benchmark, n_streams, n_samples):
    x = _inputs(n_streams, n_samples)
    y = np.empty((n_streams, n_samples, 1), dtype=np.float32)
    d_x = cuda.device_array_like(x)
    d_y = cuda.to_device(y)

    def copies() -> None:
        d_x.copy_to_device(x)
        d_y.copy_to_host(y)

    copies()
    start, middle, stop = cuda.event(), cuda.event(), cuda.event()
    h2d = d2h = 0.0
    for _ in range(EVENT_REPEATS):
        start.record()
        d_x.copy_to_device(x)
        middle.record()
        d_y.copy_to_host(y)
        stop.record()
        stop.synchronize()
        h2d += start.elapsed_time(middle)
        d2h += middle.elapsed_time(stop)
    _note(benchmark, n_streams, n_samples)
    benchmark.extra_info["h2d_ms"] = h2d / EVENT_REPEATS
    benchmark.extra_info["d2h_ms"] = d2h / EVENT_REPEATS
    benchmark.extra_info["bytes"] = x.nbytes + y.nbytes
    benchmark(copies)


@pytest.mark.parametrize("n_samples", CPU_SAMPLES)
@pytest.mark.parametrize("n_streams", STREAMS)
def test_cpu(benchmark, steppers, record_median, n_streams, n_samples):
    st = steppers("cpu", n_streams)
    x = _inputs(n_streams, n_samples)
    st.step_chunk(x)
    _note(benchmark, n_streams, n_samples)
    benchmark.pedantic(st.step_chunk, args=(x,), rounds=3 if n_streams * n_samples > 10**5 else 10)
    _throughput(benchmark, n_streams, n_samples)
    record_median(benchmark, f"cuda cpu {n_streams} {n_samples}")


@pytest.fixture(scope="module", autouse=True)
def crossover(medians: dict[str, float], bench_summary: list[str]) -> Iterator[None]:
    """After the module: per T, the smallest B from which the GPU (with copies) beats the CPU;
    the one at the largest T is recorded for ``device="auto"``."""
    yield
    for n_samples in CPU_SAMPLES:
        cpu = {
            b: medians[f"cuda cpu {b} {n_samples}"]
            for b in STREAMS
            if f"cuda cpu {b} {n_samples}" in medians
        }
        gpu = {
            b: medians[f"cuda gpu-host {b} {n_samples}"]
            for b in STREAMS
            if f"cuda gpu-host {b} {n_samples}" in medians
        }
        for b in sorted(set(cpu) & set(gpu)):
            bench_summary.append(
                f"cuda T={n_samples} B={b}: GPU (with copies) / CPU speed = {cpu[b] / gpu[b]:.2f}"
            )
        if n_samples != max(CPU_SAMPLES):
            continue
        details = {"model": f"I={INPUT} H={HIDDEN} L={LAYERS}", "samples_per_call": n_samples}
        found, path = record_crossovers(gpu_name() or "unknown GPU", cpu, gpu, details)
        if found is None:
            bench_summary.append(
                f"cuda T={n_samples}: no crossover among B = {STREAMS}; nothing recorded, "
                f"device='auto' stays on the CPU ({thresholds_path()})"
            )
        else:
            bench_summary.append(
                f"cuda T={n_samples}: crossover at B = {found} streams, recorded in {path}"
            )
