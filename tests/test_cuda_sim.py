"""CudaBatchStepper (numba.cuda, many streams) against the CPU BatchStepper and the oracle.

How these run
-------------
``NUMBA_ENABLE_CUDASIM`` must be set before ``numba.cuda`` is imported, so a plain
``pytest tests/`` cannot switch the simulator on for itself. The device tests (``test_dev_*``)
therefore run

* in this process, when it can run ``device="cuda"``: on a machine with a GPU (for real), or
  when the caller already set ``NUMBA_ENABLE_CUDASIM=1``;
* otherwise in a subprocess, by :func:`test_device_tests_under_simulator`, which runs this same
  file with ``NUMBA_ENABLE_CUDASIM=1`` and ``-k test_dev_`` (and fails if any of them fails or
  skips).

The device tests do not know about the simulator: the same code runs on a GPU. Sizes are tiny
because the simulator runs every thread in Python (about 0.1 s per block and sample).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from factories import random_model

import streamgru as sg
from streamgru.cuda_auto import ENV, auto_choice, record_threshold
from streamgru.cuda_engine import (
    CudaBatchStepper,
    require_cuda,
    simulator_enabled,
)
from streamgru.errors import ConfigError

ATOL32 = 1e-5
ROOT = Path(__file__).resolve().parents[1]


def _cuda_here() -> bool:
    """True when this process can run ``device="cuda"`` (a GPU, or the simulator is on)."""
    try:
        require_cuda()
    except sg.BackendUnavailableError:
        return False
    return True


CUDA_HERE = _cuda_here()
_no_cuda_here = pytest.mark.skipif(
    not CUDA_HERE, reason="no CUDA in this process: test_device_tests_under_simulator runs these"
)


def needs_cuda(test):
    """A device test: runs where CUDA is (a GPU, or the simulator in the runner's subprocess);
    its skip elsewhere is a documented GPU skip (``gpu`` marker, tests/conftest.py)."""
    return pytest.mark.gpu(_no_cuda_here(test))


def _oracle(model, X: np.ndarray, h0: np.ndarray | None = None) -> np.ndarray:
    """(B, T, I) -> (B, T, O) float64, stream by stream, by the numpy reference."""
    return np.stack([model.forward(X[b], None if h0 is None else h0[b]) for b in range(X.shape[0])])


def _x(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# --------------------------------------------------------------------------- runner (no GPU)
@pytest.mark.gpu  # steps aside where a GPU is present
@pytest.mark.skipif(CUDA_HERE, reason="the device tests run in this process")
def test_device_tests_under_simulator():
    for module in ("numba_cuda", "cuda.bindings"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            pytest.skip(f"{module} is not installed (the 'cuda' extra)")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        "test_dev_",
        str(Path(__file__).resolve()),
    ]
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"simulator run timed out after 240 s:\n{exc.stdout}\n{exc.stderr}")
    report = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, report
    summary = proc.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "skipped" not in summary, report


# --------------------------------------------------------------------------- without a GPU
@pytest.mark.gpu  # steps aside where a GPU is present
@pytest.mark.skipif(CUDA_HERE, reason="CUDA is available here")
def test_cuda_without_gpu_raises_with_the_fix():
    model = random_model()
    with pytest.raises(sg.BackendUnavailableError) as info:
        model.stepper(n_streams=3, device="cuda")
    message = str(info.value)
    assert "streamgru[cuda]" in message and "device='cpu'" in message
    assert "\n" not in message


def test_auto_chooses_cpu_for_few_streams():
    model = random_model()
    many = model.stepper(n_streams=4, device="auto")
    assert type(many) is sg.BatchStepper and many.device == "cpu" and many.device_reason
    assert auto_choice(10**6, "float64").device == "cpu"  # float64: the CPU


def test_import_does_not_import_numba_cuda():
    code = (
        "import sys, streamgru, streamgru.engine, streamgru.cuda_engine\n"
        "assert 'numba.cuda' not in sys.modules, 'numba.cuda imported at package import'\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.gpu  # needs the CUDA toolkit's NVRTC/NVVM, installed with a GPU, not by pip here
def test_kernels_compile_for_the_gpu():
    """Type and lower the kernels for a real GPU (sm_90) where the CUDA toolkit's NVRTC/NVVM
    are installed; the simulator runs Python and would not catch a typing error."""
    if simulator_enabled():
        pytest.skip("the simulator has no compiler")
    from numba import cuda, types  # the 'cuda' extra (make install-test): fails, not skips

    def probe(a):
        a[0] = 1.0

    try:
        cuda.compile_ptx(probe, types.void(types.float32[::1]), cc=(9, 0))
    except Exception as exc:  # no NVRTC / NVVM on this machine
        pytest.skip(f"no CUDA toolkit to compile with: {type(exc).__name__}")
    from streamgru.kernels import cuda as kc

    for spt, dtype in ((4, "float32"), (1, "float64")):
        ptx, _ = cuda.compile_ptx(
            kc.chunk_kernel_source(spt, dtype), kc.kernel_signature(dtype), cc=(9, 0)
        )
        assert ".shared" in ptx
    sig = types.void(types.int64[::1], types.float32[::1], types.float64[::1], types.uint8[::1])
    cuda.compile_ptx(kc.reset_streams.py_func, sig, cc=(9, 0))


# --------------------------------------------------------------------------- device tests
CASES = {
    # name: (model kwargs, n_streams, launch options)
    "after-1L-nohead-5blocks": (
        dict(input_size=2, hidden_size=4, num_layers=1, head=()),
        5,
        dict(streams_per_thread=1, threads_per_block=4),
    ),
    "after-2L-relu-softmax": (
        dict(input_size=3, hidden_size=6, num_layers=2, head=((3, "relu"), (2, "softmax"))),
        4,
        {},
    ),
    "before-1L-sigmoid-2units-per-thread": (
        dict(input_size=3, hidden_size=8, num_layers=1, reset_after=False, head=((2, "sigmoid"),)),
        3,
        dict(streams_per_thread=2, threads_per_block=4),
    ),
    "before-2L-tanh-identity-2blocks": (
        dict(
            input_size=1,
            hidden_size=5,
            num_layers=2,
            reset_after=False,
            head=((3, "tanh"), (2, "identity")),
        ),
        5,
        dict(streams_per_thread=2, threads_per_block=8),
    ),
}


@needs_cuda
@pytest.mark.parametrize("case", sorted(CASES))
def test_dev_matches_cpu_and_oracle(case):
    kwargs, n_streams, launch = CASES[case]
    model = random_model(seed=3, **kwargs)
    cpu = model.stepper(n_streams=n_streams, device="cpu")
    gpu = CudaBatchStepper(model, n_streams, **launch)
    X = _x((n_streams, 4, model.input_size), seed=1)

    Y = gpu.step_chunk(X[:, :3])
    assert Y.shape == (n_streams, 3, model.output_size) and Y.dtype == np.float32
    np.testing.assert_allclose(Y, cpu.step_chunk(X[:, :3]), atol=ATOL32, rtol=0)
    y = gpu.step(X[:, 3])
    np.testing.assert_allclose(y, cpu.step(X[:, 3]), atol=ATOL32, rtol=0)
    np.testing.assert_allclose(y, _oracle(model, X)[:, -1], atol=ATOL32, rtol=0)
    np.testing.assert_allclose(gpu.hidden, cpu.hidden, atol=ATOL32, rtol=0)
    assert gpu.n_steps == cpu.n_steps == 4


@needs_cuda
def test_dev_model_stepper_builds_a_cuda_batch_stepper():
    model = random_model(input_size=2, hidden_size=4)
    many = model.stepper(n_streams=3, device="cuda")
    assert isinstance(many, CudaBatchStepper) and isinstance(many, sg.BatchStepper)
    assert many.device == "cuda" and many.n_streams == 3 and many.n_steps == 0
    assert many.hidden.shape == (3, 1, 4) and not many.hidden.any()
    assert "CudaBatchStepper" in repr(many)


@needs_cuda
def test_dev_model_stepper_takes_threads_1_on_cuda():
    """``threads=`` belongs to the CPU stepper; ``threads=1`` (its default) is accepted on CUDA,
    through model.stepper and directly, and anything else is refused."""
    model = random_model(input_size=2, hidden_size=4)
    many = model.stepper(n_streams=4, device="cuda", threads=1)
    assert isinstance(many, CudaBatchStepper) and many.n_streams == 4
    assert CudaBatchStepper(model, 4, threads=1).n_streams == 4
    with pytest.raises(ConfigError, match="threads="):
        CudaBatchStepper(model, 4, threads=2)
    with pytest.raises(ConfigError, match="threads="):
        model.stepper(n_streams=4, device="cuda", threads=2)


@needs_cuda
def test_dev_auto_never_picks_the_simulator(tmp_path, monkeypatch):
    from streamgru.cuda_device import gpu_name

    model = random_model(input_size=2, hidden_size=4, head=())
    monkeypatch.setenv(ENV, str(tmp_path / "thresholds.json"))
    name = gpu_name()
    record_threshold(name or "any GPU", 1)
    chosen = model.stepper(n_streams=8, device="auto")
    if simulator_enabled():
        assert name is None
        assert type(chosen) is sg.BatchStepper and "no CUDA GPU" in chosen.device_reason
    else:
        assert isinstance(chosen, CudaBatchStepper) and chosen.device == "cuda"


@needs_cuda
def test_dev_auto_takes_cuda_from_the_recorded_crossover(tmp_path, monkeypatch, caplog):
    """A crossover recorded for this GPU's name: the CPU below it, CUDA from it on."""
    import streamgru.cuda_auto as ca

    model = random_model(input_size=2, hidden_size=4, head=())
    monkeypatch.setattr(ca, "gpu_name", lambda: "Test GPU 80GB")
    monkeypatch.setenv(ENV, str(tmp_path / "thresholds.json"))
    record_threshold("Test GPU 80GB", 6)
    caplog.set_level("INFO", logger="streamgru.device")
    below = model.stepper(n_streams=5, device="auto")
    assert type(below) is sg.BatchStepper and below.device == "cpu"
    assert "5 streams < 6" in below.device_reason and "Test GPU 80GB" in below.device_reason
    above = model.stepper(n_streams=6, device="auto")
    assert isinstance(above, CudaBatchStepper) and above.device == "cuda"
    assert "6 streams >= 6" in above.device_reason
    x = _x((6, 3, 2))
    np.testing.assert_allclose(
        above.step_chunk(x), model.stepper(n_streams=6).step_chunk(x), atol=ATOL32
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "streamgru.device"]
    assert any("chose cpu for 5 streams" in m for m in lines), lines
    assert any("chose cuda for 6 streams" in m for m in lines), lines


@needs_cuda
def test_dev_device_arrays_in_and_out():
    from numba import cuda

    model = random_model(input_size=2, hidden_size=4, num_layers=1, head=((3, "identity"),))
    host = CudaBatchStepper(model, 3)
    dev = CudaBatchStepper(model, 3)
    X = _x((3, 2, 2), seed=2)

    d_Y = dev.step_chunk(cuda.to_device(X))
    assert not isinstance(d_Y, np.ndarray) and tuple(d_Y.shape) == (3, 2, 3)
    np.testing.assert_array_equal(d_Y.copy_to_host(), host.step_chunk(X))

    x = _x((3, 2), seed=3)
    d_out = cuda.device_array((3, 3), dtype=np.float32)
    d_y = dev.step(cuda.to_device(x), out=d_out)
    assert d_y is d_out
    np.testing.assert_array_equal(d_out.copy_to_host(), host.step(x))
    assert dev.n_steps == host.n_steps == 3

    with pytest.raises(sg.ShapeError, match="float32"):
        dev.step(cuda.to_device(x.astype(np.float64)))
    with pytest.raises(sg.ShapeError, match="shape"):
        dev.step_chunk(cuda.to_device(X[:2]))
    with pytest.raises(sg.ShapeError, match="device array"):
        dev.step(cuda.to_device(x), out=np.empty((3, 3), np.float32))


@needs_cuda
def test_dev_snapshot_moves_between_cpu_and_cuda():
    model = random_model(input_size=2, hidden_size=4, num_layers=2, reset_after=False)
    cpu = model.stepper(n_streams=3, device="cpu")
    gpu = CudaBatchStepper(model, 3)
    X = _x((3, 4, 2), seed=4)

    cpu.step_chunk(X[:, :2])
    gpu.restore(cpu.snapshot())
    assert gpu.n_steps == 2
    np.testing.assert_array_equal(gpu.hidden, cpu.hidden)
    np.testing.assert_allclose(gpu.step_chunk(X[:, 2:]), cpu.step_chunk(X[:, 2:]), atol=ATOL32)

    other = model.stepper(n_streams=3, device="cpu")
    other.restore(gpu.snapshot())
    assert other.n_steps == 4
    np.testing.assert_array_equal(other.hidden, gpu.hidden)
    with pytest.raises(sg.SnapshotError):
        CudaBatchStepper(model, 2).restore(gpu.snapshot())


@needs_cuda
def test_dev_state_contract():
    model = random_model(input_size=2, hidden_size=4, num_layers=2, head=())
    gpu = CudaBatchStepper(model, 3)
    rng = np.random.default_rng(5)
    h = rng.normal(size=(3, 2, 4)).astype(np.float32)
    gpu.hidden = h
    np.testing.assert_array_equal(gpu.hidden, h)

    gpu.step_chunk(_x((3, 1, 2), seed=6))
    before = gpu.hidden
    gpu.reset(streams=[1])
    after = gpu.hidden
    assert not after[1].any()
    np.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])
    assert gpu.n_steps == 1

    bad = _x((3, 2, 2), seed=7)
    bad[2, 1, 0] = np.nan
    with pytest.raises(sg.InvalidInputError, match="stream 2, sample 1, feature 0"):
        gpu.step_chunk(bad)
    np.testing.assert_array_equal(gpu.hidden, after)
    assert gpu.n_steps == 1

    with pytest.raises(sg.ShapeError):
        gpu.step(np.zeros((2, 2), np.float32))
    with pytest.raises(sg.ShapeError):
        gpu.hidden = np.zeros((3, 4))
    with pytest.raises(sg.InvalidInputError):
        gpu.hidden = np.full((3, 2, 4), np.inf)
    with pytest.raises(sg.ShapeError):
        gpu.reset(streams=[3])

    gpu.reset()
    assert gpu.n_steps == 0 and not gpu.hidden.any()


@needs_cuda
def test_dev_float64_matches_cpu():
    model = random_model(input_size=2, hidden_size=4, num_layers=1, head=((2, "softmax"),))
    cpu = model.stepper(n_streams=3, dtype="float64", device="cpu")
    gpu = CudaBatchStepper(model, 3, dtype="float64")
    X = np.random.default_rng(8).normal(size=(3, 3, 2))
    Y = gpu.step_chunk(X)
    assert Y.dtype == np.float64
    np.testing.assert_allclose(Y, cpu.step_chunk(X), atol=1e-12, rtol=0)
    np.testing.assert_allclose(Y, _oracle(model, X), atol=1e-12, rtol=0)


@needs_cuda
def test_dev_filter_stage_matches_scipy():
    from scipy.signal import sosfilt

    model = random_model(input_size=2, hidden_size=4, num_layers=1, head=((2, "identity"),))
    chain = sg.FilterChain.design(fs=100.0, highpass=1.0, lowpass=20.0, order=2, n_channels=2)
    sos, unit = chain.sos, chain.kernel_state().zi_unit
    n_streams = 3
    gpu = CudaBatchStepper(model, n_streams, filter=chain)
    X = 1.5 + _x((n_streams, 5, 2), seed=9)

    # reference: scipy's filter per stream from its steady state at the first sample, rounded
    # to float32, then the CPU BatchStepper
    filtered = np.stack(
        [
            sosfilt(sos, X[b].astype(np.float64), axis=0, zi=unit[:, :, None] * X[b, 0])[0]
            for b in range(n_streams)
        ]
    ).astype(np.float32)
    cpu = model.stepper(n_streams=n_streams, device="cpu")
    expected = cpu.step_chunk(filtered)

    first = gpu.step_chunk(X[:, :3])  # two chunks: the filter state carries over
    blob = gpu.snapshot()
    second = gpu.step_chunk(X[:, 3:])
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), expected, atol=ATOL32)

    gpu.restore(blob)  # filter state restored with the hidden state
    np.testing.assert_array_equal(gpu.step_chunk(X[:, 3:]), second)

    gpu.reset(streams=[0])  # stream 0 starts again (filter too) from its next sample
    again = gpu.step_chunk(X[:1].repeat(n_streams, 0)[:, :2])
    fresh = CudaBatchStepper(model, n_streams, filter=chain)
    np.testing.assert_array_equal(again[0], fresh.step_chunk(X[:1].repeat(n_streams, 0)[:, :2])[0])

    with pytest.raises(sg.ShapeError, match="channel"):
        CudaBatchStepper(model, 2, filter=sg.FilterChain.design(fs=100.0, lowpass=20.0))
