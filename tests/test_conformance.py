"""The compiled steppers reproduce the frameworks' own outputs (reference vectors in tests/data).

The vectors were written by ``tools/make_reference_vectors.py`` from PyTorch (and ONNX Runtime /
Keras for their files), seeded, with the framework version recorded in each ``*_io.npz``.
Tolerances per dtype: float64 1e-9, float32 1e-5 (absolute, on outputs of order one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import streamgru as sg

DATA = Path(__file__).parent / "data"
TOL = {"float64": 1e-9, "float32": 1e-5}
NATIVE_CASES = sorted(p.name[: -len("_io.npz")] for p in DATA.glob("ref_*_io.npz"))


def test_reference_vectors_are_present():
    # A regenerated data folder that lost its vectors must fail here, not skip silently.
    assert len(NATIVE_CASES) >= 12, NATIVE_CASES


@pytest.mark.parametrize("case", NATIVE_CASES)
def test_stepper_matches_pytorch(case):
    io = np.load(DATA / f"{case}_io.npz")
    dtype = str(io["dtype"])
    model = sg.load_model(DATA / f"{case}.npz")
    x, h0, y = io["x"], io["h0"], io["y"]
    per_sample = model.stepper(dtype=dtype)
    per_sample.hidden = h0
    got = np.array([per_sample.step(row) for row in x])
    np.testing.assert_allclose(got, y, atol=TOL[dtype], rtol=TOL[dtype])
    chunked = model.stepper(dtype=dtype)
    chunked.hidden = h0
    np.testing.assert_allclose(chunked.step_chunk(x), y, atol=TOL[dtype], rtol=TOL[dtype])
    batch = model.stepper(dtype=dtype, n_streams=2)
    batch.hidden = np.stack([h0, h0])
    np.testing.assert_allclose(
        batch.step_chunk(np.stack([x, x]))[1], y, atol=TOL[dtype], rtol=TOL[dtype]
    )


FRAMEWORK_FILES = {
    "onnx_lbr0.onnx": "onnx",
    "onnx_stack.onnx": "onnx",
    "torch_export.onnx": "onnx",
    "torch_export_hn.onnx": "onnx",
    "keras_reset_after.keras": "h5py",
    "keras_reset_before.keras": "h5py",
    "keras_legacy.h5": "h5py",
}


@pytest.mark.parametrize("name", sorted(FRAMEWORK_FILES))
def test_stepper_matches_onnx_and_keras(name):
    pytest.importorskip(FRAMEWORK_FILES[name])
    io = np.load(DATA / f"{Path(name).stem}_io.npz")
    model = sg.load_model(DATA / name)
    stepper = model.stepper()
    if "h0" in io.files:
        stepper.hidden = io["h0"].reshape(model.num_layers, model.hidden_size)
    got = stepper.step_chunk(io["x"])
    np.testing.assert_allclose(got, io["y"].reshape(got.shape), atol=2e-5, rtol=1e-5)
