"""The compiled fast path of ``Stepper.step`` (``streamgru._stepcall``): same numbers as the
Python method, every unusual input handed to it, and counting, resetting and freeing intact."""

from __future__ import annotations

import gc
import shutil
import sysconfig
import threading
import weakref

import numpy as np
import pytest
from factories import random_model

import streamgru as sg
from streamgru import engine

needs_stepcall = pytest.mark.skipif(
    engine._StepCall is None, reason="installed without a C compiler: no compiled step"
)


def test_the_extension_is_built_where_a_c_compiler_exists():
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}) on this machine")
    assert engine._StepCall is not None, (
        "a C compiler is present but streamgru._stepcall is missing"
    )
    assert random_model(input_size=2, hidden_size=3, seed=1).stepper().compiled_step


def _python_twin(stepper: sg.Stepper) -> sg.Stepper:
    twin = stepper.model.stepper(dtype=stepper.dtype.name, filter=stepper.filter)
    twin.step = twin._step_python
    return twin


@needs_stepcall
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("conditioned", [False, True])
def test_compiled_step_equals_the_python_method_bit_for_bit(dtype, conditioned):
    model = random_model(input_size=3, hidden_size=10, num_layers=2, seed=31)
    chain = (
        sg.FilterChain.design(fs=250.0, highpass=0.5, lowpass=40.0, order=2, n_channels=3)
        if conditioned
        else None
    )
    fast = model.stepper(dtype=dtype, filter=chain)
    slow = _python_twin(fast)
    assert fast.compiled_step and type(fast.step).__name__ == "StepCall"
    X = np.random.default_rng(2).standard_normal((200, 3)).astype(dtype)
    got = np.array([fast.step(x) for x in X])
    expected = np.array([slow.step(x) for x in X])
    np.testing.assert_array_equal(got, expected)
    assert fast.n_steps == slow.n_steps == 200
    # and the chunk path continues from the same state
    np.testing.assert_array_equal(fast.step_chunk(X[:20]), slow.step_chunk(X[:20]))
    assert fast.n_steps == 220


@needs_stepcall
def test_every_unusual_input_goes_to_the_python_method():
    model = random_model(input_size=4, hidden_size=8, seed=32)
    fast = model.stepper()
    slow = _python_twin(fast)
    row = np.array([0.5, -1.0, 0.25, 2.0])
    forms = [
        row.astype(np.float32),
        row,  # float64 for a float32 stepper
        list(row),
        np.repeat(row.astype(np.float32), 2)[::2],  # strided
        row.astype(">f4"),  # byte-swapped
        np.ma.masked_array(row.astype(np.float32)),  # an ndarray subclass
    ]
    for x in forms:
        np.testing.assert_array_equal(fast.step(x), slow.step(x), err_msg=repr(type(x)))
    assert fast.n_steps == slow.n_steps == len(forms)
    before = fast.hidden
    for bad in (np.zeros((1, 4), np.float32), np.zeros(5, np.float32), np.zeros(3, np.float32)):
        with pytest.raises(sg.ShapeError, match=r"expected shape \(4,\)"):
            fast.step(bad)
    with pytest.raises(sg.InvalidInputError, match="feature 2"):
        fast.step(np.array([0.0, 1.0, np.nan, 0.0], np.float32))
    with pytest.raises(TypeError):
        fast.step()  # wrong number of arguments: Python's own error
    np.testing.assert_array_equal(fast.hidden, before)
    assert fast.n_steps == len(forms)


@needs_stepcall
def test_outputs_are_new_arrays_and_counting_follows_reset_and_restore():
    stepper = random_model(input_size=2, hidden_size=5, seed=33).stepper()
    x = np.ones(2, np.float32)
    first, second = stepper.step(x), stepper.step(x)
    assert first is not second and not np.shares_memory(first, stepper._state)
    assert first.flags.owndata and first.flags.writeable and first.shape == (stepper.output_size,)
    blob = stepper.snapshot()
    stepper.step_chunk(np.ones((3, 2), np.float32))
    assert stepper.n_steps == 5
    stepper.reset()
    assert stepper.n_steps == 0
    stepper.step(x)
    assert stepper.n_steps == 1
    stepper.restore(blob)
    assert stepper.n_steps == 2
    np.testing.assert_array_equal(stepper.step(x), _after_three_steps(stepper.model, x))


def _after_three_steps(model, x):
    ref = model.stepper()
    ref.step = ref._step_python
    for _ in range(2):
        ref.step(x)
    return ref.step(x)


@needs_stepcall
def test_a_subclass_overriding_step_keeps_its_method():
    class Logged(sg.Stepper):
        def step(self, x):
            self.seen = True
            return super().step(x)

    stepper = Logged(random_model(input_size=2, hidden_size=3, seed=34))
    assert not stepper.compiled_step
    stepper.step(np.zeros(2, np.float32))
    assert stepper.seen and stepper.n_steps == 1


@needs_stepcall
def test_a_dropped_stepper_is_freed_despite_the_cycle_through_its_fallback():
    stepper = random_model(input_size=2, hidden_size=3, seed=35).stepper()
    stepper.step(np.zeros(2, np.float32))
    ref = weakref.ref(stepper)
    del stepper
    gc.collect()
    assert ref() is None


@needs_stepcall
def test_steppers_in_threads_match_one_thread():
    """The kernel runs with the GIL released: steppers of their own in two threads."""
    model = random_model(input_size=3, hidden_size=16, seed=36)
    X = np.random.default_rng(3).standard_normal((2, 500, 3)).astype(np.float32)
    expected = [_python_twin(model.stepper()).step_chunk(X[k]) for k in range(2)]
    results: list = [None, None]

    def run(k):
        stepper = model.stepper()
        results[k] = np.array([stepper.step(x) for x in X[k]])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for k in range(2):
        np.testing.assert_array_equal(results[k], expected[k])


@needs_stepcall
def test_stepcall_refuses_buffers_it_cannot_use():
    stepper = random_model(input_size=2, hidden_size=3, seed=37).stepper()
    good = dict(
        address=1,
        params=stepper._params,
        meta=stepper._meta,
        state=stepper._state,
        fbuf=None,
        out_offset=3,
        out_size=1,
        input_size=2,
        fallback=print,
    )
    engine._StepCall(**good)  # accepted (never called here)
    bad = {
        "address": (0, ValueError, "address"),
        "params": (np.zeros(4, np.int32), ValueError, "float32 or float64"),
        "meta": (stepper._meta.astype(np.int32), ValueError, "meta"),
        "state": (stepper._state.astype(np.float64), ValueError, "state"),
        "fbuf": (np.zeros(3, np.float32), ValueError, "fbuf"),
        "out_offset": (stepper._state.size, ValueError, "inside the state"),
        "fallback": (None, TypeError, "callable"),
    }
    for key, (value, error, message) in bad.items():
        with pytest.raises(error, match=message):
            engine._StepCall(**{**good, key: value})
    frozen = stepper._state.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        engine._StepCall(**{**good, "state": frozen})
