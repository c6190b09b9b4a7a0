"""Edge cases of the many-stream kernel (``kernels/batch.py``): narrow products (fewer than 4
outputs, several streams per vector) and the finiteness check, each against the plain answer."""

from __future__ import annotations

import numpy as np
import pytest
from factories import random_model
from test_batch_engine import _per_stream

from streamgru.batch_engine import BLOCK
from streamgru.kernels import batch as kb
from streamgru.kernels.nonrt import entry_point

# Hidden sizes under 2 make every product of a layer narrow (3 H < 4 outputs): input and
# recurrent projections take the narrow path too, not only the head. Head inputs of 1..6
# features cover "fewer than one group of four" and leftovers after whole groups.
NARROW_MODELS = {
    "h1-after": dict(input_size=2, hidden_size=1, num_layers=2, head=((3, "identity"),)),
    "h1-before": dict(input_size=5, hidden_size=1, reset_after=False, head=((1, "sigmoid"),)),
    "h3-head2": dict(input_size=1, hidden_size=3, head=((2, "tanh"),)),
    "h6-head-6-1": dict(input_size=3, hidden_size=6, head=((6, "relu"), (1, "identity"))),
    "h9-before-head3": dict(input_size=4, hidden_size=9, reset_after=False, head=((3, "softmax"),)),
}


@pytest.mark.parametrize("name", sorted(NARROW_MODELS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_streams", [1, 3, 6, BLOCK + 7])
def test_narrow_products_equal_per_stream_steppers_bit_for_bit(name, dtype, n_streams):
    model = random_model(seed=11, **NARROW_MODELS[name])
    rng = np.random.default_rng(n_streams)
    X = rng.normal(size=(n_streams, 5, model.input_size)).astype(dtype)
    expected, hidden = _per_stream(model, X, dtype)
    batch = model.stepper(n_streams=n_streams, dtype=dtype)
    got = np.stack([batch.step(X[:, t]) for t in range(X.shape[1])], axis=1)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(batch.hidden, hidden)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_first_nonfinite_rows_finds_the_first_bad_value(dtype):
    first_bad = entry_point(kb.first_nonfinite_rows, np.dtype(dtype))
    info = np.finfo(dtype)
    X = np.random.default_rng(0).normal(size=(37, 5)).astype(dtype)
    X[0, 0], X[1, 1], X[2, 2], X[3, 3] = info.max, -info.max, -0.0, info.smallest_subnormal
    assert first_bad(X) == -1
    assert first_bad(X[:0]) == -1
    for bad in (np.nan, np.inf, -np.inf):
        for r, k in [(0, 0), (36, 4), (17, 2)]:
            Y = X.copy()
            Y[r, k] = bad
            assert first_bad(Y) == r * 5 + k
    Y = X.copy()
    Y[30, 1], Y[12, 3], Y[12, 4] = np.inf, np.nan, -np.inf
    assert first_bad(Y) == 12 * 5 + 3
