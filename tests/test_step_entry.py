"""The per-sample fast path: NRT-free clones, raw entry points and the inline matrix view."""

from __future__ import annotations

import numpy as np
import pytest
from factories import random_model
from numba import njit

import streamgru as sg
from streamgru.kernels import gru as kgru
from streamgru.kernels import step as kstep
from streamgru.kernels.nonrt import SUFFIX, clone_without_nrt, entry_point
from streamgru.kernels.simd import tiled_affine
from streamgru.kernels.views import as_matrix


def test_step_kernels_are_compiled_without_nrt_and_call_their_own_helpers():
    for name in ("gru_step", "gru_step_conditioned", "_step_core", "_affine"):
        clone = kstep._CLONES[name]
        assert clone.targetoptions.get("_nrt") is False, name
        assert clone.py_func.__qualname__.endswith(SUFFIX), name
    core = kstep._CLONES["_step_core"]
    assert core is not kgru._step_core
    assert core.py_func.__globals__["_affine"] is kstep._CLONES["_affine"]
    # the originals keep the NRT (the chunk kernels link them with np.dot)
    assert kgru._step_core.targetoptions.get("_nrt", True) is not False
    assert kgru._step_core.py_func.__globals__["_affine"] is kgru._affine


def test_clone_without_nrt_refuses_duplicate_names():
    def helper(x):
        return x

    with pytest.raises(ValueError, match="duplicate"):
        clone_without_nrt([helper, helper])


def test_entry_point_picks_the_overload_of_the_dtype_and_falls_back_to_the_dispatcher():
    f32 = entry_point(kstep.gru_step, np.float32)
    f64 = entry_point(kstep.gru_step, np.float64)
    assert f32 is not kstep.gru_step and f64 is not kstep.gru_step and f32 is not f64
    assert entry_point(kstep.gru_step, np.int16) is kstep.gru_step


def test_as_matrix_is_a_view_equal_to_reshape():
    @njit
    def view_and_write(vec, rows, cols):
        m = as_matrix(vec[2 : 2 + rows * cols], rows, cols)
        m[rows - 1, cols - 1] = -1.0
        return m.copy()

    vec = np.arange(20, dtype=np.float32)
    got = view_and_write(vec, 3, 5)
    expected = np.arange(20, dtype=np.float32)[2:17].reshape(3, 5)
    expected[2, 4] = -1.0
    np.testing.assert_array_equal(got, expected)
    assert vec[16] == -1.0  # written through the view


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_step_fast_path_takes_views_read_only_and_foreign_arrays_alike(dtype):
    model = random_model(input_size=4, hidden_size=8, num_layers=2, seed=11)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4))
    reference = model.stepper(dtype=dtype).step_chunk(X)
    forms = {
        "contiguous": lambda row: np.ascontiguousarray(row, dtype=dtype),
        "strided view": lambda row: np.repeat(row.astype(dtype), 2)[::2],
        "read-only": lambda row: _read_only(row.astype(dtype)),
        "other dtype": lambda row: row.astype(np.float16 if dtype == "float32" else np.float32),
        "big-endian": lambda row: row.astype(np.dtype(dtype).newbyteorder(">")),
        "list": lambda row: [float(v) for v in row],
    }
    for name, make in forms.items():
        stepper = model.stepper(dtype=dtype)
        got = np.array([stepper.step(make(row)) for row in X])
        tol = 5e-3 if name == "other dtype" else (5e-5 if dtype == "float32" else 1e-11)
        np.testing.assert_allclose(got, reference, atol=tol, err_msg=name)


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def test_step_never_hands_a_wrong_shape_to_the_raw_kernel():
    stepper = random_model(input_size=4, hidden_size=8, seed=12).stepper()
    before = stepper.hidden
    for bad in (
        np.zeros((1, 4), np.float32),
        np.zeros((2, 2), np.float32),
        np.zeros(5, np.float32),
    ):
        with pytest.raises(sg.ShapeError, match=r"expected shape \(4,\)"):
            stepper.step(bad)
    np.testing.assert_array_equal(stepper.hidden, before)


def test_conditioned_step_uses_the_raw_kernel_and_matches_the_chunk_path():
    model = random_model(input_size=2, hidden_size=6, seed=13)
    chain = sg.FilterChain.design(fs=250.0, highpass=0.5, lowpass=40.0, order=2, n_channels=2)
    X = np.random.default_rng(1).standard_normal((60, 2)).astype(np.float32)
    a = model.stepper(filter=chain)
    b = model.stepper(filter=chain)
    per_sample = np.array([a.step(row) for row in X])
    # a short block (sample-by-sample kernel), then long ones (the chunk kernel): bit-identical
    chunked = np.concatenate([b.step_chunk(X[:3]), b.step_chunk(X[3:40]), b.step_chunk(X[40:])])
    np.testing.assert_array_equal(per_sample, chunked)
    with pytest.raises(sg.InvalidInputError, match="feature 1"):
        a.step(np.array([0.0, np.inf], np.float32))


def test_stale_kernel_cache_is_purged_once_when_the_sources_change(tmp_path):
    from streamgru import kernels

    assert kernels.kernel_cache_dir() is not None  # numba's locator still answers
    stale = [tmp_path / "gru.gru_chunk-250.py311.nbi", tmp_path / "gru.gru_chunk-250.py311.1.nbc"]
    for path in stale:
        path.write_bytes(b"old")
    keep = tmp_path / "engine.cpython-311.pyc"
    keep.write_bytes(b"not numba's")
    assert kernels.purge_stale_cache(tmp_path) is True
    assert not any(path.exists() for path in stale) and keep.exists()
    fresh = tmp_path / "step.gru_step-40.py311.nbi"
    fresh.write_bytes(b"new")
    assert kernels.purge_stale_cache(tmp_path) is False  # same sources: the cache stays
    assert fresh.exists()
    (tmp_path / "streamgru-kernels.sources").write_text("another version")
    assert kernels.purge_stale_cache(tmp_path) is True
    assert not fresh.exists()


@pytest.mark.parametrize("reset_after", [True, False])
def test_weights_and_scratch_are_64_byte_aligned(reset_after):
    from streamgru.kernels.layout import ALIGN, META_HEADER, META_PER_HEAD, META_PER_LAYER

    model = random_model(
        input_size=3,
        hidden_size=5,
        num_layers=2,
        head=((3, "relu"), (1, "sigmoid")),
        reset_after=reset_after,
        seed=14,
    )
    for dtype in ("float32", "float64"):
        stepper = model.stepper(dtype=dtype)
        meta = stepper._meta
        assert stepper._params.ctypes.data % 64 == 0 and stepper._state.ctypes.data % 64 == 0
        offsets = [meta[META_HEADER + META_PER_LAYER * k + j] for k in range(2) for j in range(3)]
        offsets += [
            meta[META_HEADER + 2 * META_PER_LAYER + META_PER_HEAD * k + j]
            for k in range(2)
            for j in range(2)
        ]
        assert all(offset % ALIGN == 0 for offset in offsets), offsets
        batch = model.stepper(dtype=dtype, n_streams=3, filter=None)
        assert batch._hid.ctypes.data % 64 == 0 and batch._work.ctypes.data % 64 == 0
        # the padding changes nothing: the packed model still equals the float64 oracle
        x = np.random.default_rng(3).standard_normal((20, 3))
        np.testing.assert_allclose(
            stepper.step_chunk(x), model.forward(x), atol=5e-5 if dtype == "float32" else 1e-11
        )


def test_helpers_are_inlined_into_lazily_compiled_entry_points():
    for name in ("_affine", "_step_core", "_recurrent_update", "_gates_reset_after"):
        assert kstep._CLONES[name].targetoptions.get("forceinline") is True, name
    for name in ("gru_step", "gru_step_conditioned", "gru_steps", "gru_steps_conditioned"):
        entry = kstep._CLONES[name]
        assert not entry.targetoptions.get("forceinline"), name
        declared = [tuple(sig.args) for sig in entry.declared_signatures]
        assert len(declared) == 2 and {args[0].dtype.bitwidth for args in declared} == {32, 64}


def test_entry_point_compiles_exactly_the_declared_signature():
    """A stray call through the dispatcher (here with a C-contiguous sample) may compile another
    overload; the raw entry point must still be the declared one (a strided ``x``)."""
    stepper = random_model(input_size=3, hidden_size=4, seed=21).stepper(dtype="float64")
    x = np.ones(3)
    kstep.gru_step(stepper._params, stepper._meta, stepper._state.copy(), x)
    declared = next(
        tuple(sig.args)
        for sig in kstep.gru_step.declared_signatures
        if sig.args[0].dtype.bitwidth == 64
    )
    raw = entry_point(kstep.gru_step, np.float64)
    assert raw is kstep.gru_step.overloads[declared].entry_point
    assert declared[3].layout == "A"
    strided = np.repeat(np.array([0.5, -1.0, 2.0]), 2)[::2]
    state = stepper._state.copy()
    assert raw(stepper._params, stepper._meta, state, strided) == 0
    reference = random_model(input_size=3, hidden_size=4, seed=21).stepper(dtype="float64")
    np.testing.assert_array_equal(
        reference.step([0.5, -1.0, 2.0]), state[4 : 4 + reference.output_size]
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_raw_step_refuses_a_sample_of_the_wrong_length_and_changes_nothing(dtype):
    stepper = random_model(input_size=4, hidden_size=8, seed=22).stepper(dtype=dtype)
    stepper.step(np.ones(4, dtype))
    state = stepper._state.copy()
    raw = entry_point(kstep.gru_step, dtype)
    for wrong in (np.ones(3, dtype), np.ones(5, dtype), np.ones(0, dtype)):
        assert raw(stepper._params, stepper._meta, stepper._state, wrong) == kstep.WRONG_SIZE
    np.testing.assert_array_equal(stepper._state, state)


@njit(boundscheck=True)
def _scalar_affine(w_t, bias, inp, out):
    """The arithmetic tiled_affine must reproduce, written out one output at a time."""
    m, n = w_t.shape
    for j in range(n):
        acc = bias[j]
        i = 0
        while i + 4 <= m:
            acc += (inp[i] * w_t[i, j] + inp[i + 1] * w_t[i + 1, j]) + (
                inp[i + 2] * w_t[i + 2, j] + inp[i + 3] * w_t[i + 3, j]
            )
            i += 4
        while i < m:
            acc += inp[i] * w_t[i, j]
            i += 1
        out[j] = acc


@njit
def _tiled_then_scalar(w_t, bias, inp, out):
    return kgru._affine(w_t, bias, inp, out)


@njit
def _tiled_only(w_t, bias, inp, out):
    return tiled_affine(w_t, bias, inp, out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_register_tiled_product_equals_the_scalar_arithmetic_bit_for_bit(dtype):
    rng = np.random.default_rng(23)
    lanes = 64 // np.dtype(dtype).itemsize
    shapes = [
        (64, 192),
        (8, 192),
        (1, 64),
        (3, 100),
        (13, 40),
        (64, 17),
        (5, 4),
        (7, 4 * lanes + 3),
    ]
    for m, n in shapes:
        w_t = rng.standard_normal((m, n)).astype(dtype)
        bias = rng.standard_normal(n).astype(dtype)
        inp = rng.standard_normal(2 * m).astype(dtype)[::2]  # a strided input, as x may be
        expected = np.full(n, np.nan, dtype)
        _scalar_affine(w_t, bias, inp, expected)
        got = np.full(n, np.nan, dtype)
        _tiled_then_scalar(w_t, bias, inp, got)
        np.testing.assert_array_equal(got, expected, err_msg=f"{m}x{n}")
        partial = np.full(n, np.nan, dtype)
        done = _tiled_only(w_t, bias, inp, partial)
        assert done == n - n % lanes
        np.testing.assert_array_equal(partial[:done], expected[:done])
        assert np.isnan(partial[done:]).all()  # the columns left over are the caller's
