"""`streamgru export c`, float32 build: the generated C equals Stepper.step (gcc, ASan/UBSan).

Every model here is compiled with -std=c99 -Wall -Wextra -Werror -pedantic and the sanitizers,
driven by templates/harness.c over 10^4 samples. gcc is part of `make install-test`'s
toolchain: a missing compiler fails these tests rather than skipping them.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from factories import random_model

import streamgru as sg
from streamgru.errors import ConfigError, UnsupportedModelError
from streamgru.export import export_c, generate_c
from streamgru.export.gen_float import NO_LIBM_TANH_MAX_ERROR
from streamgru.export.toolchain import build_host, run_harness

ECG = Path(sg.__file__).parent / "data" / "weights" / "ecg_beats.safetensors"
N_SAMPLES = 10_000


def with_conditioning(model: sg.GRUModel, fs: float = 250.0) -> sg.GRUModel:
    """``model`` behind a band-pass + notch chain and a per-channel normalisation."""
    chain = sg.FilterChain.design(
        fs, highpass=0.5, lowpass=40.0, notch=50.0, n_channels=model.input_size
    )
    meta = dict(model.metadata)
    meta["filter"] = json.dumps(chain.to_dict())
    meta["input_mean"] = json.dumps([0.1 * (c + 1) for c in range(model.input_size)])
    meta["input_std"] = json.dumps([0.5 + 0.25 * c for c in range(model.input_size)])
    return dataclasses.replace(model, metadata=meta)


def signal(n: int, channels: int, seed: int = 1) -> np.ndarray:
    """A wandering multi-tone test signal with noise, (n, channels) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None] / 250.0
    base = (
        1.5
        + np.sin(2 * np.pi * 0.2 * t)
        + 0.8 * np.sin(2 * np.pi * (7.0 + np.arange(channels)) * t)
    )
    return (base + 0.3 * rng.normal(size=(n, channels))).astype(np.float32)


def build(model: sg.GRUModel, tmp_path: Path, prefix: str = "m", **kwargs) -> Path:
    out = tmp_path / prefix
    export_c(model, out, prefix=prefix, log=lambda _line: None, **kwargs)
    return build_host(out, prefix, out / "harness", act_test=True, libm=not kwargs.get("no_libm"))


def stepper_outputs(model: sg.GRUModel, X: np.ndarray) -> np.ndarray:
    st = model.stepper(dtype="float32")
    return np.stack([st.step(x) for x in X])


def test_shipped_model_float32_equals_stepper(tmp_path):
    model = sg.load_model(ECG)
    X = np.load(Path(sg.__file__).parent / "export" / "data" / "ecg_calibration.npy")
    X = X[:N_SAMPLES].reshape(-1, 1).astype(np.float32)
    exe = build(model, tmp_path, "ecg")
    y = run_harness(exe, "run", X, len(X)).reshape(len(X), -1)
    assert np.abs(y - stepper_outputs(model, X)).max() <= 1e-5


CASES = [
    # (input_size, hidden_size, num_layers, reset_after, conditioned, head)
    (1, 8, 1, True, False, ((1, "sigmoid"),)),
    (1, 16, 2, False, True, ((1, "sigmoid"),)),
    (3, 32, 1, False, False, ((4, "relu"), (2, "identity"))),
    (4, 24, 2, True, True, ((3, "softmax"),)),
    (8, 64, 1, True, True, ((2, "tanh"),)),
    (8, 64, 2, False, True, ()),
]


@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"I{c[0]}-H{c[1]}-L{c[2]}-ra{int(c[3])}-f{int(c[4])}"
)
def test_random_models_float32_equal_stepper(tmp_path, case):
    n_in, hidden, layers, reset_after, conditioned, head = case
    # PyTorch-like weight scale: larger random recurrences are chaotic, and then any two
    # float32 orders of summation part ways whatever the code
    model = random_model(
        n_in,
        hidden,
        layers,
        head=head,
        reset_after=reset_after,
        seed=hidden,
        scale=1.0 / np.sqrt(hidden),
    )
    if conditioned:
        model = with_conditioning(model)
    X = signal(N_SAMPLES, n_in)
    exe = build(model, tmp_path)
    y = run_harness(exe, "run", X, len(X)).reshape(len(X), -1)
    ref = stepper_outputs(model, X)
    assert y.shape == ref.shape
    assert np.abs(y - ref).max() <= 1e-5


@pytest.mark.parametrize("no_libm", [False, True])
def test_no_libm_build_equals_stepper(tmp_path, no_libm):
    model = with_conditioning(random_model(2, 16, 1, head=((1, "sigmoid"),), seed=3))
    X = signal(N_SAMPLES, 2, seed=5)
    exe = build(model, tmp_path, no_libm=no_libm)
    y = run_harness(exe, "run", X, len(X)).reshape(len(X), -1)
    assert np.abs(y - stepper_outputs(model, X)).max() <= 1e-5


def test_no_libm_activations_within_stated_bound(tmp_path):
    model = random_model(1, 8, 1, head=((1, "sigmoid"),))
    exe = build(model, tmp_path, no_libm=True)
    grid = np.concatenate(
        [np.linspace(-12, 12, 400_001), [0.0, 1e-30, -1e-30, 3e-4, -3e-4, 4e-4, 7.9, -7.9, 50, -50]]
    ).astype(np.float32)
    out = run_harness(exe, "act", grid, len(grid)).reshape(-1, 2).astype(np.float64)
    x = grid.astype(np.float64)
    assert np.abs(out[:, 0] - np.tanh(x)).max() <= NO_LIBM_TANH_MAX_ERROR
    assert np.abs(out[:, 1] - 0.5 * (1 + np.tanh(0.5 * x))).max() <= NO_LIBM_TANH_MAX_ERROR
    assert np.all(np.abs(out[:, 0]) <= 1.0) and np.all((out[:, 1] >= 0) & (out[:, 1] <= 1))


@pytest.mark.parametrize("reset_after", [True, False])
def test_snapshot_restore_round_trip(tmp_path, reset_after):
    model = with_conditioning(random_model(2, 16, 2, reset_after=reset_after, seed=7))
    X = signal(2000, 2, seed=9)
    exe = build(model, tmp_path)
    n, k = len(X), 700
    y = run_harness(exe, "snap", X, n, k).reshape(-1, model.output_size)
    first, again = y[:n], y[n:]
    assert again.shape == (n - k, model.output_size)
    np.testing.assert_array_equal(again, first[k:])  # restored state continues bit for bit
    assert np.abs(first - stepper_outputs(model, X)).max() <= 1e-5


def test_reset_restarts_the_stream(tmp_path):
    model = with_conditioning(random_model(1, 8, 1, seed=11))
    X = signal(1500, 1, seed=2)
    exe = build(model, tmp_path)
    y = run_harness(exe, "reset", X, len(X), 500).reshape(-1, model.output_size)
    np.testing.assert_array_equal(y[len(X) :], y[:500])
    assert not np.array_equal(y[500:1000], y[:500])


def test_generated_code_uses_no_malloc_and_only_allowed_headers():
    model = with_conditioning(random_model(2, 8, 2, head=((1, "sigmoid"),)))
    calibration = signal(3000, 2)
    for dtype, no_libm in (("float32", False), ("float32", True), ("int16", True), ("int8", True)):
        files, _ = generate_c(model, dtype, "m", calibration=calibration, no_libm=no_libm)
        src = re.sub(r"/\*.*?\*/", "", files["m.c"] + files["m.h"], flags=re.S)
        includes = {line.split()[1] for line in src.splitlines() if line.startswith("#include")}
        allowed = {'"m.h"', "<stdint.h>", "<string.h>"} | (set() if no_libm else {"<math.h>"})
        assert includes <= allowed, includes
        assert "malloc" not in src and "free(" not in src and "printf" not in src


def test_header_sizes_and_state_size_constant():
    model = random_model(3, 12, 2, head=((5, "identity"),))
    files, _ = generate_c(model, "float32", "abc")
    header = files["abc.h"]
    for text in (
        "#define abc_INPUT_SIZE 3",
        "#define abc_HIDDEN_SIZE 12",
        "#define abc_NUM_LAYERS 2",
        "#define abc_OUTPUT_SIZE 5",
        "#define abc_STATE_SIZE (8u + sizeof(abc_state))",
    ):
        assert text in header


def test_bad_arguments_are_refused_with_clear_errors(tmp_path):
    model = random_model(1, 8, 1, head=((3, "softmax"),))
    with pytest.raises(ConfigError, match="prefix"):
        generate_c(model, "float32", "1bad")
    with pytest.raises(ConfigError, match="dtype"):
        generate_c(model, "float16", "m")
    with pytest.raises(UnsupportedModelError, match="softmax"):
        generate_c(model, "int8", "m", calibration=np.zeros((200, 1), np.float32))
    with pytest.raises(UnsupportedModelError, match="expf"):
        generate_c(model, "float32", "m", no_libm=True)
