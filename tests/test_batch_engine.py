"""The CPU BatchStepper is B Steppers at once: bit for bit, whatever the blocks, threads, chunks."""

from __future__ import annotations

import copy
import multiprocessing
import pickle

import numpy as np
import pytest
from factories import ENGINE_MODELS, random_model
from hypothesis import given, settings
from hypothesis import strategies as st

import streamgru as sg
from streamgru.batch_engine import BLOCK

MODELS = {
    **ENGINE_MODELS,
    "wide-before": dict(
        input_size=9,
        hidden_size=40,
        num_layers=2,
        reset_after=False,
        head=((20, "relu"), (1, "identity")),
        scale=0.2,
    ),
}
# Streams across a block boundary, not a multiple of the 4-stream register tile.
N_STREAMS = BLOCK + 5


@pytest.fixture(params=sorted(MODELS), scope="module")
def model(request):
    return random_model(seed=7 + sorted(MODELS).index(request.param), **MODELS[request.param])


def _inputs(model, n_streams, n_samples, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_streams, n_samples, model.input_size)).astype(dtype)


def _per_stream(model, X, dtype):
    """Each stream through its own Stepper (no filter, no normalisation), sample by sample."""
    outs, hidden = [], []
    for stream in X:
        stepper = model.stepper(dtype=dtype, filter=None, normalize=False)
        outs.append(np.array([stepper.step(x) for x in stream]))
        hidden.append(stepper.hidden)
    return np.array(outs), np.array(hidden)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_step_and_chunk_equal_per_stream_steppers_bit_for_bit(model, dtype):
    X = _inputs(model, N_STREAMS, 9, seed=1, dtype=dtype)
    expected, hidden = _per_stream(model, X, dtype)
    stepped = model.stepper(n_streams=N_STREAMS, dtype=dtype)
    got = np.stack([stepped.step(X[:, t]) for t in range(X.shape[1])], axis=1)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(stepped.hidden, hidden)
    chunked = model.stepper(n_streams=N_STREAMS, dtype=dtype)
    np.testing.assert_array_equal(chunked.step_chunk(X), expected)
    np.testing.assert_array_equal(chunked.hidden, hidden)
    assert chunked.n_steps == stepped.n_steps == X.shape[1]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_threads_are_bit_identical_to_one_thread(dtype):
    model = random_model(seed=3, **MODELS["wide"])
    X = _inputs(model, 4 * BLOCK + 3, 6, seed=2, dtype=dtype)
    results = []
    for threads in (1, 2, 3):
        stepper = model.stepper(n_streams=X.shape[0], dtype=dtype, threads=threads)
        assert stepper.threads == threads
        first = stepper.step_chunk(X[:, :4])
        rest = [stepper.step(X[:, t]) for t in range(4, X.shape[1])]
        results.append((np.concatenate([first, np.stack(rest, axis=1)], axis=1), stepper.hidden))
    for out, hidden in results[1:]:
        np.testing.assert_array_equal(out, results[0][0])
        np.testing.assert_array_equal(hidden, results[0][1])


@settings(max_examples=15, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 12), min_size=1, max_size=5),
    reset_after=st.booleans(),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_any_chunking_is_bit_identical(cuts, reset_after, dtype):
    model = random_model(seed=5, input_size=4, hidden_size=9, num_layers=2, reset_after=reset_after)
    X = _inputs(model, 6, sum(cuts), seed=3, dtype=dtype)
    whole = model.stepper(n_streams=6, dtype=dtype)
    expected = whole.step_chunk(X)
    parts = model.stepper(n_streams=6, dtype=dtype)
    pieces, start = [], 0
    for n in cuts:
        pieces.append(parts.step_chunk(X[:, start : start + n]))
        start += n
    np.testing.assert_array_equal(np.concatenate(pieces, axis=1), expected)
    np.testing.assert_array_equal(parts.hidden, whole.hidden)


def test_nonfinite_input_is_refused_and_nothing_advances():
    model = random_model(seed=2, **MODELS["after-1L"])
    stepper = model.stepper(n_streams=N_STREAMS, threads=2)
    stepper.step(_inputs(model, N_STREAMS, 1, seed=4)[:, 0])
    before = stepper.hidden
    X = _inputs(model, N_STREAMS, 5, seed=5)
    X[N_STREAMS - 1, 3, 2] = np.nan
    with pytest.raises(sg.InvalidInputError, match=f"stream {N_STREAMS - 1}, sample 3, feature 2"):
        stepper.step_chunk(X)
    x = X[:, 0].copy()
    x[BLOCK, 1] = np.inf
    with pytest.raises(sg.InvalidInputError, match=f"stream {BLOCK}, feature 1"):
        stepper.step(x)
    np.testing.assert_array_equal(stepper.hidden, before)
    assert stepper.n_steps == 1


def test_out_arguments_and_empty_chunks():
    model = random_model(seed=2, **MODELS["after-3L-relu-sigmoid"])
    stepper = model.stepper(n_streams=3)
    X = _inputs(model, 3, 4, seed=6)
    out = np.empty((3, 4, model.output_size), np.float32)
    assert stepper.step_chunk(X, out=out) is out
    assert stepper.step_chunk(X[:, :0]).shape == (3, 0, model.output_size)
    step_out = np.empty((3, model.output_size), np.float32)
    assert stepper.step(X[:, 0], out=step_out) is step_out
    with pytest.raises(sg.ShapeError, match=r"out: expected .* shape \(3, 2\), got a float64"):
        stepper.step(X[:, 0], out=np.empty((3, 2), np.float64))
    with pytest.raises(sg.ShapeError, match=r"got a float32 array of shape \(3, 2\) read-only"):
        stepper.step(X[:, 0], out=np.frombuffer(bytes(24), np.float32).reshape(3, 2))
    with pytest.raises(sg.ShapeError, match=r"of shape \(3, 2\) not C-contiguous"):
        stepper.step(X[:, 0], out=np.empty((2, 3), np.float32).T)
    with pytest.raises(sg.ShapeError, match=r"X: expected shape"):
        stepper.step_chunk(X[:2])


def test_threads_option_is_checked_and_survives_pickling():
    model = random_model(seed=2, **MODELS["after-1L"])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(sg.ShapeError, match="threads must be a positive integer"):
            model.stepper(n_streams=4, threads=bad)
    with pytest.raises(sg.ConfigError, match="threads= is an option of device='cpu'"):
        model.stepper(n_streams=4, threads=2, device="auto")
    stepper = model.stepper(n_streams=2 * BLOCK, threads=2)
    X = _inputs(model, 2 * BLOCK, 3, seed=8)
    stepper.step_chunk(X)
    clones = [pickle.loads(pickle.dumps(stepper)), copy.deepcopy(stepper)]
    expected = stepper.step_chunk(X)
    for clone in clones:
        assert clone.threads == 2
        np.testing.assert_array_equal(clone.step_chunk(X), expected)


def test_reset_of_some_streams_checks_the_indices():
    model = random_model(seed=2, **MODELS["after-1L"])
    X = _inputs(model, 5, 3, seed=9)
    stepper = model.stepper(n_streams=5)
    stepper.step_chunk(X)
    before = stepper.hidden
    for bad, message in (
        ([0.5], "got dtype float64"),
        ([5], "index 5 is out of range"),
        ([-6], "index -6 is out of range"),
        (["1"], "got dtype <U1"),
    ):
        with pytest.raises(sg.ShapeError, match=message):
            stepper.reset(bad)
    np.testing.assert_array_equal(stepper.hidden, before)
    stepper.reset([1, -1])  # negative indices count from the end, as on a CudaBatchStepper
    expected = before.copy()
    expected[[1, 4]] = 0
    np.testing.assert_array_equal(stepper.hidden, expected)
    stepper.reset([])
    np.testing.assert_array_equal(stepper.hidden, expected)
    assert stepper.n_steps == 3


def _step_in_child(stepper, X, queue):
    queue.put(stepper.step(X))


def test_a_forked_child_steps_an_inherited_threaded_stepper():
    """The parent's worker threads do not exist in a fork's child: the child makes its own pool
    instead of queueing work that no thread would ever run."""
    model = random_model(seed=2, **MODELS["after-1L"])
    stepper = model.stepper(n_streams=2 * BLOCK, threads=2)
    X = _inputs(model, 2 * BLOCK, 2, seed=10)
    stepper.step(X[:, 0])  # the pool exists in the parent
    expected = copy.deepcopy(stepper).step(X[:, 1])
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_step_in_child, args=(stepper, X[:, 1], queue))
    child.start()
    try:
        got = queue.get(timeout=60)
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    np.testing.assert_array_equal(got, expected)
