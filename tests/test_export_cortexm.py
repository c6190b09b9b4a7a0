"""The exported model on a Cortex-M4F: cross-compiled with arm-none-eabi-gcc, run under
qemu-system-arm (mps2-an386, semihosting), outputs compared with the Python stepper (float32)
and the fixed-point reference (int16 / int8, bit for bit).

The toolchain comes from `make install-test`; where it is missing these tests fail, saying so.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from factories import random_model
from test_export_c import signal, with_conditioning

import streamgru as sg
from streamgru.export import cortexm as cm
from streamgru.export import export_c, export_spec
from streamgru.export.api import quantize_for
from streamgru.export.calibration import builtin_segment
from streamgru.export.fixed_reference import run_fixed

ECG = Path(sg.__file__).parent / "data" / "weights" / "ecg_beats.safetensors"
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm", "qemu-system-arm")
N = 300


@pytest.fixture(scope="module", autouse=True)
def toolchain():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: run `make install-test`", pytrace=False)


def _on_device(model, tmp_path, dtype, X, calibration=None, no_libm=False):
    out = tmp_path / dtype
    cal = None
    if calibration is not None:
        cal = tmp_path / "cal.npy"
        np.save(cal, calibration)
    export_c(model, out, dtype, "m", cal, no_libm=no_libm, log=lambda _l: None)
    elf = cm.build_firmware(out, "m", X, out / "fw.elf")
    return cm.run_firmware(elf, model.output_size), out


@pytest.mark.parametrize("dtype", ["float32", "int16", "int8"])
def test_shipped_model_on_cortex_m4(tmp_path, dtype):
    model = sg.load_model(ECG)
    X = builtin_segment()[5000 : 5000 + N]
    y, out = _on_device(model, tmp_path, dtype, X)
    assert y.shape == (N, 1)
    if dtype == "float32":
        assert np.abs(y - model.stepper().step_chunk(X)).max() <= 1e-5
    else:
        spec = export_spec(model, "m", fixed=True)
        qm = quantize_for(model, spec, dtype, builtin_segment())
        np.testing.assert_array_equal(y, run_fixed(qm, spec.conditioning, True, X))
    fp = cm.footprint(out, "m")
    assert fp.static_ram == 0  # weights in flash, state in the caller's struct
    assert fp.state > 0 and fp.flash > model.n_params  # at least a byte per weight


@pytest.mark.parametrize(
    "dtype,reset_after,no_libm",
    [("float32", False, True), ("int16", False, True), ("int8", True, True)],
)
def test_random_model_on_cortex_m4(tmp_path, dtype, reset_after, no_libm):
    model = with_conditioning(
        random_model(
            3,
            16,
            2,
            head=((4, "relu"), (1, "sigmoid")),
            reset_after=reset_after,
            seed=5,
            scale=0.25,
        )
    )
    X = signal(200, 3, seed=8)
    calibration = signal(2000, 3, seed=1)
    y, _ = _on_device(model, tmp_path, dtype, X, calibration, no_libm)
    if dtype == "float32":
        assert np.abs(y - model.stepper().step_chunk(X)).max() <= 1e-5
    else:
        spec = export_spec(model, "m", fixed=True)
        qm = quantize_for(model, spec, dtype, calibration)
        np.testing.assert_array_equal(y, run_fixed(qm, spec.conditioning, reset_after, X))


def test_instruction_count_grows_with_samples(tmp_path):
    model = random_model(1, 8, 1, head=((1, "sigmoid"),), seed=2)
    export_c(model, tmp_path / "m", "int8", "m", calibration_file(tmp_path), log=lambda _l: None)
    X = signal(40, 1)
    n10 = cm.count_instructions(
        cm.build_firmware(tmp_path / "m", "m", X[:10], tmp_path / "a.elf", True)
    )
    n20 = cm.count_instructions(
        cm.build_firmware(tmp_path / "m", "m", X[:20], tmp_path / "b.elf", True)
    )
    per_sample = (n20 - n10) / 10
    # a GRU step of H=8 has 3*8*(1+8) multiply-adds: at least one instruction each
    assert 216 < per_sample < 100_000


def calibration_file(tmp_path: Path) -> Path:
    path = tmp_path / "cal1.npy"
    np.save(path, signal(1000, 1))
    return path
