"""Cold start: the kernels compile on first use, only the dtype a caller asks for, and a model's
recorded filter starts without ``scipy.signal`` (whose import alone costs about 0.5 s).

The checks that look at what a process compiled or imported run in a fresh interpreter: in
this one, earlier tests have compiled every variant already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal

import streamgru
from streamgru.errors import ConfigError
from streamgru.signal.design import PRESETS, preset_sos, steady_state_unit

PACKAGE_ROOT = Path(streamgru.__file__).resolve().parents[1]  # the package under test
ECG = (
    Path(__file__).resolve().parents[1] / "streamgru" / "data" / "weights" / "ecg_beats.safetensors"
)
TINY = ECG.with_name("example_tiny.safetensors")
MODULES = ("gru", "fused", "sos", "step", "batch")
FLOAT32_CONDITIONED_CHUNK = [  # argument types, as the declared float32 signature
    "readonly array(float32, 1d, C)",
    "readonly array(int64, 1d, C)",
    "array(float32, 1d, C)",
    "array(float64, 1d, C)",
    "readonly array(float32, 2d, C)",
    "array(float32, 2d, C)",
    "array(float32, 1d, C)",
]

# {module.qualname: [argument types of each compiled signature]} for every numba dispatcher of
# the kernel modules (module attributes, and the clone dictionaries of step.py and batch.py,
# whose qualified names end in ``__nonrt``).
_LIST_COMPILED = f"""
import importlib, json
def compiled():
    out = {{}}
    for name in {MODULES!r}:
        mod = importlib.import_module("streamgru.kernels." + name)
        for attr, obj in list(vars(mod).items()):
            items = obj.items() if isinstance(obj, dict) else [("", obj)]
            for d in (d for _, d in items if hasattr(d, "overloads") and hasattr(d, "py_func")):
                where = d.py_func.__module__.rsplit(".", 1)[1] + "." + d.py_func.__qualname__
                out[where] = sorted([str(a) for a in sig] for sig in d.overloads)
    return out
"""


def _python(code: str, cache_dir: Path | None = None) -> dict:
    """Run ``code`` in a fresh interpreter (the package this test imported; numba's cache in
    ``cache_dir`` if given); its last stdout line is JSON."""
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    done = subprocess.run(
        [sys.executable, "-c", _LIST_COMPILED + code],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=str(PACKAGE_ROOT),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_kernels_compiles_nothing():
    got = _python("print(json.dumps(compiled()))")
    assert "fused.gru_chunk_conditioned" in got and "sos.sos_filter_chunk" in got
    assert "gru.gru_chunk" in got and "step.gru_step__nonrt" in got
    assert {name: sigs for name, sigs in got.items() if sigs} == {}


def test_a_float32_model_with_its_filter_compiles_only_float32_and_imports_no_scipy_signal(
    tmp_path,
):
    """On an empty cache (what a fresh install compiles; about 10 s)."""
    got = _python(
        cache_dir=tmp_path,
        code=f"""
import sys
import numpy as np
from streamgru.model.formats import load_model
model = load_model({str(ECG)!r})
stepper = model.stepper(dtype="float32", filter="model", normalize=True, compile_step=False)
stepper.step_chunk(np.zeros((40, model.input_size), dtype=np.float32))
print(json.dumps({{"compiled": compiled(), "scipy.signal": "scipy.signal" in sys.modules}}))
""",
    )
    assert got["scipy.signal"] is False
    compiled = {name: sigs for name, sigs in got["compiled"].items() if sigs}
    assert compiled["fused.gru_chunk_conditioned"] == [FLOAT32_CONDITIONED_CHUNK]
    # the callees compiled with it (the cache was empty) have float32 samples and weights only:
    # float64 is the filter's state and coefficients, and the packed filter (fbuf, 1-D)
    assert compiled["gru.gru_chunk"] and compiled["sos.sos_filter_chunk"]
    for name, sigs in compiled.items():
        for args in sigs:
            if name.startswith("sos."):
                assert [a for a in args if "float32" in a], (name, args)
            else:
                wide = [a for a in args if "float64" in a and a != "array(float64, 1d, C)"]
                assert not wide, (name, args)
    # no per-sample step, no many-stream kernel (their NRT-free clones; step.py and batch.py also
    # import the NRT helpers of the chunk kernel)
    assert not [name for name in compiled if name.endswith("__nonrt")]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_filter_chain_compiles_exactly_its_declared_signature(dtype):
    got = _python(
        f"""
import numpy as np
from streamgru.signal.chain import FilterChain
from streamgru.kernels import sos
chain = FilterChain.preset("ecg-monitor", fs=360.0, mains=50, n_channels=2)
chain.process(np.ones((16, 2), dtype="{dtype}"))
chain.step(np.ones(2, dtype="{dtype}"))
declared = {{
    name: [[str(a) for a in s.args] for s in getattr(sos, name).declared_signatures]
    for name in ("sos_filter_chunk_with_start", "sos_filter_sample_with_start")
}}
print(json.dumps({{"compiled": compiled(), "declared": declared}}))
"""
    )
    for name, declared in got["declared"].items():
        compiled = got["compiled"][f"sos.{name}"]
        assert len(compiled) == 1 and compiled[0] in declared, (name, compiled, declared)
        assert compiled[0][-1].startswith(f"array({dtype},")  # the samples


def test_steady_state_unit_equals_scipy_bit_for_bit():
    rng = np.random.default_rng(16)
    cases = [
        preset_sos(name, fs, mains)
        for name in PRESETS
        for fs in (100.0, 250.0, 360.0, 1000.0)
        for mains in (50, 60)
    ]
    for order in range(1, 9):
        low = rng.uniform(0.001, 0.2)
        high = rng.uniform(1.5 * low, 0.49)
        cases.append(scipy.signal.butter(order, [low, high], "bandpass", output="sos"))
        cases.append(scipy.signal.cheby1(order, 1.0, low, "highpass", output="sos"))
    for sos in cases:
        got = steady_state_unit(sos)
        assert got.dtype == np.float64 and got.flags.c_contiguous and got.shape == (len(sos), 2)
        np.testing.assert_array_equal(got, scipy.signal.sosfilt_zi(sos))


def test_steady_state_unit_hands_an_unnormalised_section_to_scipy():
    sos = scipy.signal.butter(2, 0.1, output="sos") * 2.0  # a0 == 2 in every row
    np.testing.assert_array_equal(steady_state_unit(sos), scipy.signal.sosfilt_zi(sos))


def test_a_design_still_runs_scipy_after_the_lazy_import():
    from streamgru.signal.design import design_sos

    np.testing.assert_array_equal(
        design_sos(360.0, highpass=0.5, lowpass=40.0, order=2),
        scipy.signal.butter(2, [0.5, 40.0], "bandpass", output="sos", fs=360.0),
    )
    with pytest.raises(ConfigError, match="lowpass"):
        design_sos(360.0, lowpass=200.0)


def test_two_threads_compiling_the_same_kernel_at_once_get_one_overload_and_the_same_bits(
    tmp_path,
):
    """On an empty cache, two threads build a BatchStepper (``nonrt.entry_point``) and step it
    at the same moment: one compiled signature, and the numbers of a later, sequential run."""
    got = _python(
        cache_dir=tmp_path,
        code=f"""
import threading
import numpy as np
from streamgru.model.formats import load_model
model = load_model({str(TINY)!r})
X = np.random.default_rng(3).normal(size=(5, 4, model.input_size)).astype(np.float32)
barrier, results, errors = threading.Barrier(2), [None, None], []
def work(k):
    try:
        barrier.wait(60)
        results[k] = model.stepper(n_streams=5, filter=None).step_chunk(X)
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join(300)
again = model.stepper(n_streams=5, filter=None).step_chunk(X)
print(json.dumps({{"compiled": compiled(), "errors": errors,
                  "same": [bool(np.array_equal(r, again)) for r in results]}}))
""",
    )
    assert got["errors"] == [] and got["same"] == [True, True]
    for name in ("batch.gru_rows__nonrt", "batch.first_nonfinite_rows__nonrt"):
        assert len(got["compiled"][name]) == 1, (name, got["compiled"][name])
