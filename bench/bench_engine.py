"""Engine benchmarks: Stepper.step, step_chunk(256) and BatchStepper(1024).step against PyTorch,
ONNX Runtime and a single-thread sgemm, on the same weights.

Not collected by the test run (testpaths is ``tests``); run explicitly::

    python -m pytest bench/bench_engine.py --benchmark-only
    python -m pytest bench/bench_engine.py --benchmark-only -k "I8-H64-L1"      # one size

Sizes: I=8 with H=64 (the docs/design.md section 10 size), 16, 128, 256, and H=64 with L=2; seeded
random weights (PyTorch-like init) and a Linear head to one output. Groups, per size:

* ``step <size>``: one sample per call: ``Stepper.step``, ``torch.nn.GRUCell`` (+ head), ONNX
  Runtime ``session.run`` on a GRU graph with ``initial_h`` (T = 1);
* ``chunk256 <size>``: a 256-sample block per call: ``Stepper.step_chunk(X, out=buf)``,
  ``torch.nn.GRU``, ONNX Runtime's fused GRU over the block (divide by 256 for per sample);
* ``many1024 <size>``: one step of 1024 streams: ``BatchStepper.step(X, out=buf)``, batched
  GRUCell, batched ONNX Runtime, and ``sgemm``: numpy float32 matmuls with the GRU's FLOPs,
  (1024, I_l + H) @ (I_l + H, 3H) per layer, on one thread.

Every alternative's outputs are checked against streamgru's (max abs diff <= 1e-4) before it is
timed; a mismatch fails that benchmark. Threads are pinned to one (bench/conftest.py). The
ratios against the docs/design.md targets are printed at the end ("streamgru ratios").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from streamgru.bench.runners import (
    BenchmarkMismatchError,
    Runner,
    StreamgruChunk,
    StreamgruMany,
    StreamgruStep,
    check_input,
    run_outputs,
    verify_runner,
)
from streamgru.bench.stats import gru_flops_per_step, gru_sgemm_reference

SIZES = {
    "I8-H64-L1": (8, 64, 1),
    "I8-H16-L1": (8, 16, 1),
    "I8-H128-L1": (8, 128, 1),
    "I8-H256-L1": (8, 256, 1),
    "I8-H64-L2": (8, 64, 2),
}
TARGET_SIZE = "I8-H64-L1"
CHUNK = 256
STREAMS = 1024
METHODS = ("streamgru", "torch", "onnxruntime")


def _alternative(method: str, kind: str, model: Any) -> Runner:
    """The runner of ``method`` for ``kind`` in sample / block / batch; skips a missing framework."""
    if method == "torch":
        pytest.importorskip("torch")
        from streamgru.bench.torch import TorchCellRunner, TorchGRURunner

        return TorchGRURunner(model) if kind == "block" else TorchCellRunner(model)
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from streamgru.bench.onnx import OrtFusedRunner, OrtRunRunner

    return OrtFusedRunner(model) if kind == "block" else OrtRunRunner(model)


@pytest.fixture(scope="module")
def runners(make_model: Callable[..., Any]) -> Callable[[str, str, str], Runner]:
    """``runners(size, method, kind)``: a checked runner, cached per module."""
    cache: dict[tuple[str, str, str], Runner] = {}

    def get(size: str, method: str, kind: str) -> Runner:
        key = (size, method, kind)
        if key in cache:
            return cache[key]
        model = make_model(*SIZES[size])
        if method == "streamgru":
            runner: Runner = {
                "sample": lambda: StreamgruStep(model),
                "block": lambda: StreamgruChunk(model),
                "batch": lambda: StreamgruMany(model, 4),
            }[kind]()
        else:
            runner = _alternative(method, kind, model)
            X = check_input(model, seed=11)
            try:
                verify_runner(runner, X, run_outputs(StreamgruStep(model), X))
                if kind == "batch":
                    Xb = check_input(model, 40, seed=12, n_streams=4)
                    verify_runner(
                        runner, Xb, run_outputs(StreamgruMany(model, 4), Xb, 4), n_streams=4
                    )
            except BenchmarkMismatchError as exc:
                pytest.fail(str(exc))
        cache[key] = runner
        return runner

    return get


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("size", list(SIZES))
def test_step(benchmark, runners, sample_pool, record_median, size, method):
    runner = runners(size, method, "sample")
    benchmark.group = f"step {size}"
    runner.reset(1)
    with runner.active():
        items = runner.prepare(sample_pool(64, SIZES[size][0]))
        for item in items:  # warm-up, state away from zero
            runner.call(item)
        benchmark(runner.call, items[0])
    record_median(benchmark, f"step {size} {method}")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("size", list(SIZES))
def test_chunk256(benchmark, runners, sample_pool, record_median, size, method):
    runner = runners(size, method, "block")
    benchmark.group = f"chunk{CHUNK} {size}"
    benchmark.extra_info["samples_per_call"] = CHUNK
    runner.reset(1)
    with runner.active():
        item = runner.prepare(sample_pool(CHUNK, SIZES[size][0]))
        runner.call(item)
        benchmark(runner.call, item)
    record_median(benchmark, f"chunk {size} {method}")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("size", list(SIZES))
def test_many1024(benchmark, runners, sample_pool, record_median, size, method):
    runner = runners(size, method, "batch")
    benchmark.group = f"many{STREAMS} {size}"
    benchmark.extra_info["streams_per_call"] = STREAMS
    runner.reset(STREAMS)
    with runner.active():
        item = runner.prepare(sample_pool(1, STREAMS, SIZES[size][0]))[0]
        runner.call(item)
        benchmark(runner.call, item)
    record_median(benchmark, f"many {size} {method}")


@pytest.mark.parametrize("size", list(SIZES))
def test_many1024_sgemm(benchmark, record_median, size):
    """The reference: single-thread float32 matmuls with the FLOPs of one 1024-stream step."""
    input_size, hidden, layers = SIZES[size]
    gemms = gru_sgemm_reference(input_size, hidden, layers, STREAMS, seed=5)
    benchmark.group = f"many{STREAMS} {size}"
    benchmark.extra_info["gflop_per_call"] = (
        gru_flops_per_step(input_size, hidden, layers, STREAMS) / 1e9
    )
    benchmark(gemms)
    record_median(benchmark, f"many {size} sgemm")


def _ratio_lines(medians: dict[str, float]) -> Iterator[str]:
    def ratio(num: str, den: str) -> float | None:
        if num in medians and den in medians and medians[den] > 0:
            return medians[num] / medians[den]
        return None

    for size in SIZES:
        target = size == TARGET_SIZE
        rows = [
            (
                "step: torch GRUCell / Stepper.step",
                ratio(f"step {size} torch", f"step {size} streamgru"),
                ">= 20" if target else "",
            ),
            (
                "step: ORT run() / Stepper.step",
                ratio(f"step {size} onnxruntime", f"step {size} streamgru"),
                ">= 8" if target else "",
            ),
            (
                f"chunk{CHUNK}: step_chunk / ORT fused",
                ratio(f"chunk {size} streamgru", f"chunk {size} onnxruntime"),
                "<= 1.0" if target else "",
            ),
            (
                f"chunk{CHUNK}: torch GRU / step_chunk",
                ratio(f"chunk {size} torch", f"chunk {size} streamgru"),
                "",
            ),
            (
                f"many{STREAMS}: BatchStepper fraction of sgemm",
                ratio(f"many {size} sgemm", f"many {size} streamgru"),
                ">= 0.5" if target else "",
            ),
            (
                f"many{STREAMS}: ORT run() / BatchStepper",
                ratio(f"many {size} onnxruntime", f"many {size} streamgru"),
                "",
            ),
        ]
        for name, value, goal in rows:
            if value is not None:
                suffix = f"   (DESIGN target {goal})" if goal else ""
                yield f"{size:<11} {name:<42} {value:7.2f}{suffix}"


@pytest.fixture(scope="module", autouse=True)
def ratios_at_end(medians: dict[str, float], bench_summary: list[str]) -> Iterator[None]:
    yield
    bench_summary.extend(_ratio_lines(medians))
