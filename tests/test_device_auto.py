"""``device="auto"``: CUDA only past a crossover measured on that GPU, else the CPU, and why.

No GPU is needed: the GPU's name is replaced by a test double (``streamgru.cuda_auto.gpu_name``)
and the thresholds file lives in ``tmp_path``. Building the CUDA stepper itself is checked under
the simulator (``tests/test_cuda_sim.py``, ``test_dev_auto_takes_cuda_from_the_recorded_crossover``).
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from factories import random_model

import streamgru as sg
import streamgru.cuda_auto as ca
from streamgru.bench.cuda_threshold import crossover, record_crossovers
from streamgru.cuda_auto import (
    ENV,
    FORMAT,
    choose_device,
    read_thresholds,
    record_threshold,
    thresholds_path,
)
from streamgru.errors import ConfigError

GPU = "Test GPU 80GB HBM3"


@pytest.fixture()
def thresholds(tmp_path, monkeypatch):
    """The thresholds file of this test (absent until written)."""
    path = tmp_path / "cache" / "cuda_thresholds.json"
    monkeypatch.setenv(ENV, str(path))
    return path


@pytest.fixture()
def on_gpu(monkeypatch):
    """Pretend a real GPU named GPU is present."""
    monkeypatch.setattr(ca, "gpu_name", lambda: GPU)


def test_no_threshold_chooses_the_cpu_and_says_why(thresholds, on_gpu, caplog):
    caplog.set_level(logging.INFO, logger="streamgru.device")
    model = random_model(input_size=2, hidden_size=4, head=())
    st = model.stepper(n_streams=10_000, device="auto")
    assert type(st) is sg.BatchStepper and st.device == "cpu"
    assert f"no measured CPU/GPU crossover for GPU {GPU!r}" in st.device_reason
    assert str(thresholds) in st.device_reason
    assert st.step_chunk(np.zeros((10_000, 3, 2), np.float32)).shape == (10_000, 3, 4)
    messages = [r.getMessage() for r in caplog.records if r.name == "streamgru.device"]
    assert messages == [f"device='auto' chose cpu for 10000 streams: {st.device_reason}"]


def test_a_threshold_for_this_gpu_chooses_cuda_from_it_on(thresholds, on_gpu, monkeypatch):
    import streamgru.cuda_engine as ce

    record_threshold(GPU, 2048, {"model": "I=8 H=64 L=1"})
    below = ca.auto_choice(2047)
    assert below.device == "cpu" and below.reason.startswith("2047 streams < 2048")
    at = ca.auto_choice(2048)
    assert at.device == "cuda" and at.reason.startswith("2048 streams >= 2048")
    assert ca.auto_choice(10**6, "float64").device == "cpu"  # float64: never the GPU
    # past the threshold the CUDA stepper is built (a double here: with or without a GPU)
    built: list = []

    class Cuda:
        def __init__(self, model, n_streams, **options) -> None:
            built.append((n_streams, options["device"]))

    monkeypatch.setattr(ce, "CudaBatchStepper", Cuda)
    st = random_model().stepper(n_streams=4096, device="auto")
    assert type(st) is Cuda and built == [(4096, "cuda")]
    assert st.device_reason.startswith("4096 streams >= 2048")


def test_a_threshold_for_another_gpu_does_not_count(thresholds, on_gpu):
    record_threshold("Some Other GPU", 1)
    choice = ca.auto_choice(10**6)
    assert choice.device == "cpu" and "no measured CPU/GPU crossover" in choice.reason


def test_no_gpu_chooses_the_cpu(thresholds, monkeypatch):
    monkeypatch.setattr(ca, "gpu_name", lambda: None)
    record_threshold(GPU, 1)
    st = random_model().stepper(n_streams=8, device="auto")
    assert st.device == "cpu" and "no CUDA GPU" in st.device_reason


def test_an_unreadable_file_chooses_the_cpu_and_names_it(thresholds, on_gpu):
    thresholds.parent.mkdir(parents=True)
    thresholds.write_text("{not json", encoding="utf-8")
    choice = ca.auto_choice(10**6)
    assert (
        choice.device == "cpu" and "unusable" in choice.reason and str(thresholds) in choice.reason
    )
    with pytest.raises(ConfigError, match="cannot read the CUDA thresholds"):
        read_thresholds()
    thresholds.write_text(json.dumps({"format": FORMAT, "version": 1, "gpus": {GPU: {}}}))
    with pytest.raises(ConfigError, match=r"min_streams: expected an integer >= 1, got None"):
        read_thresholds()


def test_record_threshold_keeps_other_gpus_and_checks_its_input(thresholds):
    record_threshold("A", 100)
    record_threshold("B", 200, {"note": "x"})
    record_threshold("A", 300)
    assert thresholds_path() == thresholds
    got = read_thresholds()
    assert got == {"A": {"min_streams": 300}, "B": {"min_streams": 200, "note": "x"}}
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="min_streams"):
            record_threshold("A", bad)  # type: ignore[arg-type]
    assert choose_device(250, True, "A", thresholds).device == "cpu"
    assert choose_device(300, True, "A", thresholds).device == "cuda"


def test_default_path_is_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert thresholds_path() == tmp_path / "streamgru" / "cuda_thresholds.json"


def test_crossover_from_measured_medians(thresholds):
    cpu = {256: 1.0, 1024: 4.0, 4096: 16.0, 16384: 64.0}
    gpu = {256: 2.0, 1024: 3.0, 4096: 17.0, 16384: 20.0}  # wins at 1024, loses at 4096
    assert crossover(cpu, gpu) == 16384  # from where it wins at every larger B
    assert crossover(cpu, {b: s / 2 for b, s in cpu.items()}) == 256
    assert crossover(cpu, {b: s * 2 for b, s in cpu.items()}) is None
    found, path = record_crossovers(GPU, cpu, gpu, {"samples_per_call": 16})
    assert (found, path) == (16384, thresholds)
    record = read_thresholds()[GPU]
    assert record["min_streams"] == 16384 and record["samples_per_call"] == 16
    assert record["gpu_over_cpu_speed"]["16384"] == 3.2
    assert record_crossovers("Slow GPU", cpu, {b: s * 2 for b, s in cpu.items()}) == (None, None)
    assert "Slow GPU" not in read_thresholds()
