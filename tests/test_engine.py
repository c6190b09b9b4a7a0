"""The compiled Stepper and BatchStepper against the float64 numpy oracle, and their contracts."""

from __future__ import annotations

import numpy as np
import pytest
from factories import ENGINE_MODELS, random_model
from hypothesis import given, settings
from hypothesis import strategies as st

import streamgru as sg

TOL = {"float32": 5e-5, "float64": 1e-11}

MODELS = ENGINE_MODELS


#: A fixed seed per model (``hash(str)`` differs in every process: PYTHONHASHSEED).
SEEDS = {name: 101 + i for i, name in enumerate(sorted(MODELS))}


@pytest.fixture(params=sorted(MODELS), scope="module")
def model(request):
    return random_model(seed=SEEDS[request.param], **MODELS[request.param])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_step_matches_oracle(model, dtype):
    x = np.random.default_rng(1).normal(size=(120, model.input_size))
    expected = model.forward(x)
    stepper = model.stepper(dtype=dtype)
    got = np.array([stepper.step(row) for row in x])
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, expected, atol=TOL[dtype], rtol=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_chunk_and_batch_match_oracle(model, dtype):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 90, model.input_size))
    expected = np.stack([model.forward(x[b]) for b in range(3)])
    single = model.stepper(dtype=dtype)
    np.testing.assert_allclose(single.step_chunk(x[1]), expected[1], atol=TOL[dtype], rtol=0)
    batch = model.stepper(dtype=dtype, n_streams=3)
    np.testing.assert_allclose(
        batch.step_chunk(x[:, :40]), expected[:, :40], atol=TOL[dtype], rtol=0
    )
    steps = np.stack([batch.step(x[:, t]) for t in range(40, 90)], axis=1)
    np.testing.assert_allclose(steps, expected[:, 40:], atol=TOL[dtype], rtol=0)


def test_nonzero_initial_state(model):
    rng = np.random.default_rng(3)
    h0 = rng.normal(scale=0.5, size=(model.num_layers, model.hidden_size))
    x = rng.normal(size=(50, model.input_size))
    stepper = model.stepper(dtype="float64")
    stepper.hidden = h0
    np.testing.assert_allclose(stepper.step_chunk(x), model.forward(x, h0), atol=1e-11, rtol=0)


@settings(max_examples=25, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=64), max_size=6), seed=st.integers(0, 2**16)
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reset_after", [True, False])
def test_any_chunking_equals_per_sample_stepping(cuts, seed, dtype, reset_after):
    """Bit for bit: short blocks, long blocks and single steps take the same arithmetic."""
    model = random_model(
        input_size=2,
        hidden_size=6,
        num_layers=2,
        head=((4, "relu"), (3, "tanh")),
        reset_after=reset_after,
        seed=7,
    )
    x = np.random.default_rng(seed).normal(size=(64, 2))
    per_sample = model.stepper(dtype=dtype)
    expected = np.array([per_sample.step(row) for row in x])
    chunked = model.stepper(dtype=dtype)
    bounds = sorted({0, 64, *cuts})
    got = np.concatenate([chunked.step_chunk(x[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(chunked.hidden, per_sample.hidden)


@settings(max_examples=20, deadline=None)
@given(split=st.integers(0, 80), seed=st.integers(0, 2**16), reset_after=st.booleans())
def test_snapshot_restore_continues_identically(split, seed, reset_after):
    model = random_model(
        input_size=3, hidden_size=5, num_layers=2, reset_after=reset_after, seed=11
    )
    x = np.random.default_rng(seed).normal(size=(80, 3)).astype(np.float32)
    uninterrupted = model.stepper().step_chunk(x)
    first = model.stepper()
    first.step_chunk(x[:split])
    blob = first.snapshot()
    second = model.stepper()
    second.restore(blob)
    assert second.n_steps == split
    np.testing.assert_array_equal(second.step_chunk(x[split:]), uninterrupted[split:])


def test_reset_then_replay_reproduces(model):
    x = np.random.default_rng(4).normal(size=(40, model.input_size))
    stepper = model.stepper()
    first = stepper.step_chunk(x)
    stepper.reset()
    assert not stepper.hidden.any()
    np.testing.assert_array_equal(stepper.step_chunk(x), first)


# ---------------------------------------------------------------------------- generic contract
def _steppers():
    model = random_model(input_size=2, hidden_size=4, num_layers=2, seed=5)
    return [
        ("Stepper-f32", model, model.stepper()),
        ("Stepper-f64", model, model.stepper(dtype="float64")),
        ("Batch-f32", model, model.stepper(n_streams=3)),
        ("Batch-f64", model, model.stepper(n_streams=3, dtype="float64")),
    ]


@pytest.mark.parametrize(
    "name,model,stepper", _steppers(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_stateful_contract(name, model, stepper):
    batch = isinstance(stepper, sg.BatchStepper)
    shape = (3, model.input_size) if batch else (model.input_size,)
    x = np.ones(shape)
    y = stepper.step(x)
    assert y.dtype == stepper.dtype
    assert y.shape == ((3, model.output_size) if batch else (model.output_size,))
    hidden = stepper.hidden
    assert hidden.shape == ((3, 2, 4) if batch else (2, 4))
    assert hidden.dtype == stepper.dtype and hidden.any()
    hidden[...] = 0  # a copy: the stepper is untouched
    assert stepper.hidden.any()
    blob = stepper.snapshot()
    after = stepper.step(x)
    stepper.restore(blob)
    np.testing.assert_array_equal(stepper.step(x), after)
    stepper.reset()
    assert not stepper.hidden.any()
    with pytest.raises(sg.ShapeError, match="expected shape"):
        stepper.step(np.ones((7, 7, 7)))
    with pytest.raises(sg.ShapeError, match="expected shape"):
        stepper.hidden = np.zeros((9, 9))
    with pytest.raises(sg.ShapeError):
        stepper.hidden = np.zeros(hidden.shape, dtype=np.int64)
    with pytest.raises(sg.InvalidInputError):
        stepper.hidden = np.full(hidden.shape, np.nan)


def test_step_accepts_scalars_lists_and_views():
    model = random_model(input_size=1, hidden_size=4, seed=2)
    a, b = model.stepper(), model.stepper()
    x = np.arange(10, dtype=np.float64)[::2]  # strided float64 view
    ya = [a.step(v) for v in x]
    yb = [b.step([float(v)]) for v in x]
    np.testing.assert_array_equal(ya, yb)
    c = model.stepper()
    np.testing.assert_allclose(c.step_chunk(x), np.array(ya), atol=1e-6)
    wide = random_model(input_size=3, seed=2).stepper()
    with pytest.raises(sg.ShapeError, match="scalar"):
        wide.step(1.0)
    with pytest.raises(sg.ShapeError, match="real numbers"):
        wide.step(np.array(["a", "b", "c"]))


def test_nan_input_is_refused_and_state_unchanged():
    model = random_model(input_size=3, hidden_size=4, seed=3)
    stepper = model.stepper()
    stepper.step(np.ones(3))
    before = stepper.hidden
    with pytest.raises(sg.InvalidInputError, match="feature 1"):
        stepper.step(np.array([0.0, np.nan, 0.0]))
    np.testing.assert_array_equal(stepper.hidden, before)
    chunk = np.ones((5, 3))
    chunk[3, 2] = np.inf
    with pytest.raises(sg.InvalidInputError, match="sample 3, feature 2"):
        stepper.step_chunk(chunk)
    np.testing.assert_array_equal(stepper.hidden, before)
    batch = model.stepper(n_streams=2)
    xb = np.ones((2, 3))
    xb[1, 0] = np.nan
    with pytest.raises(sg.InvalidInputError, match="stream 1, feature 0"):
        batch.step(xb)
    assert not batch.hidden.any()


def test_snapshot_refuses_other_model_and_corruption():
    a = random_model(seed=1).stepper()
    b = random_model(seed=2).stepper()
    blob = a.snapshot()
    with pytest.raises(sg.SnapshotError, match="different model"):
        b.restore(blob)
    with pytest.raises(sg.SnapshotError, match="corrupt"):
        a.restore(blob[:-5] + bytes([blob[-5] ^ 1]) + blob[-4:])
    with pytest.raises(sg.SnapshotError, match="too short"):
        a.restore(b"SGST")
    with pytest.raises(sg.SnapshotError, match="older streamgru"):
        a.restore(b"SGS1" + bytes(80))  # the format before the streamgru.state envelope
    with pytest.raises(sg.SnapshotError, match="magic"):
        a.restore(b"X" * 80)
    with pytest.raises(sg.SnapshotError, match="float32"):
        random_model(seed=1).stepper(dtype="float64").restore(blob)
    with pytest.raises(sg.SnapshotError, match="BatchStepper"):
        random_model(seed=1).stepper(n_streams=1).restore(blob)


def test_bad_constructor_arguments():
    model = random_model()
    with pytest.raises(sg.ShapeError, match="dtype"):
        model.stepper(dtype="float16")
    with pytest.raises(sg.ShapeError, match="n_streams"):
        model.stepper(n_streams=0)
    with pytest.raises(sg.BackendUnavailableError, match="device"):
        model.stepper(n_streams=2, device="tpu")


def test_step_chunk_out_argument():
    model = random_model(input_size=2, seed=9)
    stepper = model.stepper()
    x = np.random.default_rng(0).normal(size=(10, 2))
    out = np.empty((10, model.output_size), dtype=np.float32)
    assert stepper.step_chunk(x, out=out) is out
    with pytest.raises(sg.ShapeError, match="out"):
        stepper.step_chunk(x, out=np.empty((10, 9), dtype=np.float32))
    assert stepper.step_chunk(np.empty((0, 2))).shape == (0, model.output_size)
