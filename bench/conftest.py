"""Shared fixtures of the pytest-benchmark suites in ``bench/`` (generic: no suite's specifics).

* ``bench_*.py`` files are collected when the directory is given (``pytest bench``), not only
  when named; the test run never sees them (``testpaths = ["tests"]``).
* BLAS/OpenMP pools and torch's intra-op pool run on one thread for the whole session.
* ``make_model(I, H, L)``: seeded random models (PyTorch-like init, Linear head to 1 output),
  cached per size; ``sample_pool``: seeded float32 inputs.
* ``medians``, ``record_median`` and ``bench_summary``: a suite may keep the medians of its
  benchmarks under names and add summary lines (ratios) printed at the end of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from streamgru.bench.models import random_model
from streamgru.bench.timing import pinned_threads
from streamgru.model.core import GRUModel

_SUMMARY = pytest.StashKey[list]()


def pytest_collect_file(file_path, parent):
    """Collect ``bench_*.py`` under this directory (pytest only collects ``test_*.py``)."""
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        if not parent.session.isinitpath(file_path):  # named files are collected already
            return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> Iterator[None]:
    """Pin BLAS/OpenMP (threadpoolctl) and torch (when imported) to one thread."""
    try:  # import torch first (when installed) so its pool is pinned too
        import torch  # noqa: F401
    except ImportError:
        pass
    with pinned_threads(1):
        yield


@pytest.fixture(scope="session")
def make_model() -> Callable[..., GRUModel]:
    """``make_model(input_size, hidden_size, num_layers=1, reset_after=True)``, cached."""
    cache: dict[tuple, GRUModel] = {}

    def make(
        input_size: int, hidden_size: int, num_layers: int = 1, reset_after: bool = True
    ) -> GRUModel:
        key = (input_size, hidden_size, num_layers, reset_after)
        if key not in cache:
            cache[key] = random_model(input_size, hidden_size, num_layers, reset_after=reset_after)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def sample_pool() -> Callable[..., np.ndarray]:
    """``sample_pool(*shape)``: standard-normal float32 inputs from a fixed seed."""

    def pool(*shape: int) -> np.ndarray:
        return np.random.default_rng(1234).standard_normal(shape).astype(np.float32)

    return pool


@pytest.fixture(scope="session")
def medians() -> dict[str, float]:
    """Median seconds per call of finished benchmarks, by name (filled by the suites)."""
    return {}


@pytest.fixture(scope="session")
def bench_summary(request: pytest.FixtureRequest) -> list[str]:
    """Lines printed after the benchmark tables (e.g. ratios computed from ``medians``)."""
    return request.config.stash.setdefault(_SUMMARY, [])


@pytest.fixture
def record_median(medians: dict[str, float]) -> Callable[[Any, str], None]:
    """``record_median(benchmark, name)``: keep a finished benchmark's median (seconds) in
    ``medians`` (nothing when benchmarks are disabled)."""

    def record(benchmark: Any, name: str) -> None:
        stats = getattr(benchmark, "stats", None)
        if stats is not None and getattr(stats, "stats", None) is not None:
            medians[name] = float(stats.stats.median)

    return record


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    lines = config.stash.get(_SUMMARY, [])
    if lines:
        terminalreporter.section("streamgru ratios (one run; noisy machines: rerun and compare)")
        for line in lines:
            terminalreporter.write_line(line)
