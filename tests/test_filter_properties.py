"""Property tests: the filter (and the resampler) equal scipy and a plain oracle for any chunking.

Tolerances
----------
float64 : 1e-12 times the signal scale (in practice the results are bit for bit scipy's).
float32 : the kernel keeps float64 state and arithmetic and rounds once on output, so against
    scipy on the same float32 input (which scipy computes in float64) every value is within
    half a float32 ulp: |error| <= 2**-24 |y|. Against the float64 signal before its rounding to
    float32, the input rounding passes through the filter: measured at most 7.2e-8 of the
    signal scale (max |x|) over every preset at 250-1000 Hz; the test allows 1e-6.
"""

from __future__ import annotations

import numpy as np
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from streamgru.kernels.sos import (
    sos_filter_chunk,
    sos_filter_chunk_with_start,
    sos_filter_sample,
    sos_init_steady,
)
from streamgru.signal import FilterChain, StreamResampler
from streamgru.signal.design import PRESETS

SETTINGS = settings(max_examples=40, deadline=None)
FLOAT32_HALF_ULP = 2.0**-24


def naive_sosfilt(sos, X, zi):
    """A plain-Python float64 DF2T biquad cascade, sample by sample, channel by channel.

    sos : (n_sections, 6); X : (T, C); zi : (n_sections, 2, C). Returns (Y, zf), new lists.
    """
    zi = [[[float(v) for v in row] for row in section] for section in np.asarray(zi)]
    Y = []
    for x in np.asarray(X, dtype=np.float64):
        out = []
        for c, value in enumerate(x.tolist()):
            for s, (b0, b1, b2, _a0, a1, a2) in enumerate(np.asarray(sos).tolist()):
                y = b0 * value + zi[s][0][c]
                zi[s][0][c] = b1 * value - a1 * y + zi[s][1][c]
                zi[s][1][c] = b2 * value - a2 * y
                value = y
            out.append(value)
        Y.append(out)
    return np.array(Y).reshape(np.shape(X)), np.array(zi)


def scipy_steady(sos, X):
    X = np.asarray(X, dtype=np.float64)
    zi = scipy.signal.sosfilt_zi(sos)[:, :, None] * X[0]
    return scipy.signal.sosfilt(sos, X, axis=0, zi=zi)[0]


def make_signal(seed, n_samples, n_channels, fs):
    """Baseline offset + slow wave + mains + noise, at a random scale: (T, C) float64."""
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.uniform(-3, 3)
    t = np.arange(n_samples)[:, None] / fs
    X = (
        rng.uniform(-2, 2, n_channels)
        + np.sin(2 * np.pi * rng.uniform(0.2, 20) * t)
        + 0.3 * np.sin(2 * np.pi * 50 * t)
        + 0.2 * rng.standard_normal((n_samples, n_channels))
    )
    return scale * X


def split_points(seed, n_samples, n_cuts):
    rng = np.random.default_rng(seed + 1)
    return sorted(rng.integers(0, n_samples + 1, n_cuts).tolist())


def run_chunked(chain, X, cuts, step_some=False):
    """Feed X to the chain in the pieces given by cuts; pieces of one sample go through step."""
    pieces = np.split(X, cuts)
    out = []
    for piece in pieces:
        if step_some and len(piece) == 1:
            out.append(chain.step(piece[0])[None, :])
        else:
            out.append(chain.process(piece))
    return np.concatenate(out)


def random_stable_sos(rng, n_sections):
    """Sections with poles of radius < 0.98 (real pairs or conjugates) and random zeros."""
    sos = np.empty((n_sections, 6))
    for s in range(n_sections):
        if rng.random() < 0.5:
            r, theta = rng.uniform(0, 0.98), rng.uniform(0, np.pi)
            a1, a2 = -2 * r * np.cos(theta), r * r
        else:
            p, q = rng.uniform(-0.98, 0.98, 2)
            a1, a2 = -(p + q), p * q
        sos[s] = [*rng.normal(size=3), 1.0, a1, a2]
    return sos


common = {
    "seed": st.integers(0, 2**32 - 1),
    "preset": st.sampled_from(PRESETS),
    "fs": st.sampled_from([250.0, 360.0, 500.0, 1000.0]),
    "n_channels": st.integers(1, 4),
    "n_samples": st.integers(1, 600),
    "n_cuts": st.integers(0, 12),
}


@SETTINGS
@given(**common, start=st.sampled_from(["steady", "zero"]))
def test_float64_equals_scipy_for_any_chunking(
    seed, preset, fs, n_channels, n_samples, n_cuts, start
):
    chain = FilterChain.preset(preset, fs, n_channels=n_channels, start=start)
    X = make_signal(seed, n_samples, n_channels, fs)
    Y = run_chunked(chain, X, split_points(seed, n_samples, n_cuts), step_some=True)
    if start == "steady":
        want = scipy_steady(chain.sos, X)
    else:
        want = scipy.signal.sosfilt(chain.sos, X, axis=0)
    assert Y.dtype == np.float64
    np.testing.assert_allclose(Y, want, rtol=0, atol=1e-12 * np.abs(X).max())


@SETTINGS
@given(**common)
def test_float32_is_scipy_rounded_once(seed, preset, fs, n_channels, n_samples, n_cuts):
    chain = FilterChain.preset(preset, fs, n_channels=n_channels)
    X64 = make_signal(seed, n_samples, n_channels, fs)
    X32 = X64.astype(np.float32)
    Y = run_chunked(chain, X32, split_points(seed, n_samples, n_cuts), step_some=True)
    assert Y.dtype == np.float32
    want = scipy_steady(chain.sos, X32)  # scipy widens float32 input to float64
    err = np.abs(Y.astype(np.float64) - want)
    assert np.all(err <= FLOAT32_HALF_ULP * np.abs(want) + 1e-45), err.max()
    # against the signal before it was rounded to float32
    truth = scipy_steady(chain.sos, X64)
    scale = np.abs(X64).max()
    assert np.abs(Y - truth).max() <= 1e-6 * scale


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n_sections=st.integers(1, 6),
    n_channels=st.integers(1, 4),
    n_samples=st.integers(0, 40),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_kernels_equal_the_naive_oracle(seed, n_sections, n_channels, n_samples, dtype):
    rng = np.random.default_rng(seed)
    sos = random_stable_sos(rng, n_sections)
    zi0 = rng.normal(size=(n_sections, 2, n_channels))
    X = rng.normal(size=(n_samples, n_channels)).astype(dtype)
    want, want_zf = naive_sosfilt(sos, X, zi0)

    by_chunk, zi_chunk = X.copy(), zi0.copy()
    sos_filter_chunk(sos, zi_chunk, by_chunk)
    by_sample, zi_sample = X.copy(), zi0.copy()
    for t in range(n_samples):
        sos_filter_sample(sos, zi_sample, by_sample[t])

    np.testing.assert_array_equal(by_sample, by_chunk)  # the same numbers, bit for bit
    np.testing.assert_array_equal(zi_sample, zi_chunk)
    np.testing.assert_allclose(zi_chunk, want_zf, rtol=1e-12, atol=1e-12)
    if dtype == np.float64:
        np.testing.assert_allclose(by_chunk, want, rtol=1e-12, atol=1e-12)
    else:  # float64 inside, one rounding on output
        np.testing.assert_array_equal(by_chunk, want.astype(np.float32))


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n_channels=st.integers(1, 4))
def test_steady_init_matches_scipy_zi(seed, n_channels):
    rng = np.random.default_rng(seed)
    sos = random_stable_sos(rng, 3)
    unit = scipy.signal.sosfilt_zi(sos)
    x0 = rng.normal(size=n_channels)
    zi = np.full((3, 2, n_channels), np.nan)
    sos_init_steady(unit, x0, zi)
    np.testing.assert_array_equal(zi, unit[:, :, None] * x0)


@SETTINGS
@given(**common)
def test_snapshot_restore_equals_uninterrupted(seed, preset, fs, n_channels, n_samples, n_cuts):
    X = make_signal(seed, n_samples, n_channels, fs)
    whole = FilterChain.preset(preset, fs, n_channels=n_channels).process(X)
    cut = split_points(seed, n_samples, 1)[0]
    first = FilterChain.preset(preset, fs, n_channels=n_channels)
    head = first.process(X[:cut])
    blob = first.snapshot()
    second = FilterChain.preset(preset, fs, n_channels=n_channels)
    second.restore(blob)
    tail = run_chunked(second, X[cut:], split_points(seed, n_samples - cut, n_cuts))
    np.testing.assert_array_equal(np.concatenate([head, tail]), whole)


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n_samples=st.integers(1, 50),
    n_channels=st.integers(1, 4),
)
def test_nonfinite_input_changes_nothing(seed, n_samples, n_channels):
    rng = np.random.default_rng(seed)
    chain = FilterChain.preset("eeg", 250.0, n_channels=n_channels)
    state = chain.kernel_state()
    if rng.random() < 0.5:
        chain.process(rng.normal(size=(5, n_channels)))
    before_zi, before_started = state.zi.copy(), state.started.copy()
    X = rng.normal(size=(n_samples, n_channels))
    t, c = rng.integers(n_samples), rng.integers(n_channels)
    X[t, c] = rng.choice([np.nan, np.inf, -np.inf])
    keep = X.copy()
    status = sos_filter_chunk_with_start(state.sos, state.zi, state.zi_unit, state.started, X)
    assert status == np.flatnonzero(~np.isfinite(keep))[0]
    np.testing.assert_array_equal(X, keep)
    np.testing.assert_array_equal(state.zi, before_zi)
    np.testing.assert_array_equal(state.started, before_started)


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    ratio=st.sampled_from([(36, 25), (25, 36), (1, 2), (2, 1), (5, 4), (1, 1)]),
    n_channels=st.integers(1, 3),
    n_samples=st.integers(1, 300),
    n_cuts=st.integers(0, 10),
    start=st.sampled_from(["steady", "zero"]),
)
def test_resampler_equals_resample_poly_for_any_chunking(
    seed, ratio, n_channels, n_samples, n_cuts, start
):
    up, down = ratio
    X = make_signal(seed, n_samples, n_channels, 360.0)
    res = StreamResampler(up, down, n_channels=n_channels, start=start)
    Y = np.concatenate([res.process(p) for p in np.split(X, split_points(seed, n_samples, n_cuts))])
    padtype = "edge" if start == "steady" else "constant"
    want = scipy.signal.resample_poly(X, up, down, axis=0, padtype=padtype)
    assert len(Y) <= len(want)
    np.testing.assert_allclose(Y, want[: len(Y)], rtol=0, atol=1e-12 * np.abs(X).max())
