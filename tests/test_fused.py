"""Filter + normalisation + GRU in one call equals the separate stages, and keeps its state."""

from __future__ import annotations

import json

import numpy as np
import pytest
from factories import random_model
from hypothesis import given, settings
from hypothesis import strategies as st

import streamgru as sg
from streamgru.signal.chain import FilterChain
from streamgru.signal.normalize import Normalizer


def conditioned_model(n_channels=2, preset="ecg-monitor", fs=360.0, seed=3, norm=True):
    base = random_model(input_size=n_channels, hidden_size=6, num_layers=2, seed=seed)
    chain = FilterChain.preset(preset, fs=fs, mains=60, n_channels=n_channels)
    meta = dict(base.metadata)
    meta["filter"] = json.dumps(chain.to_dict())
    if norm:
        meta["input_mean"] = json.dumps([0.1 * (c + 1) for c in range(n_channels)])
        meta["input_std"] = json.dumps([0.5 + c for c in range(n_channels)])
    model = sg.GRUModel(layers=base.layers, head=base.head, reset_after=True, metadata=meta)
    return model, base


def separate(model, base, X):
    chain = FilterChain.from_dict(model.meta_json("filter"))
    conditioned = Normalizer.from_metadata(model.metadata).apply(chain.process(X))
    return base.stepper(dtype="float64", filter=None, normalize=False).step_chunk(conditioned)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("preset", ["ecg-monitor", "eeg", "ppg"])
def test_fused_equals_separate_stages(dtype, tol, preset):
    model, base = conditioned_model(preset=preset, fs=250.0)
    X = np.random.default_rng(0).normal(size=(400, 2)) + 3.0  # an offset: tests the steady start
    expected = separate(model, base, X)
    per_sample = model.stepper(dtype=dtype)
    np.testing.assert_allclose([per_sample.step(x) for x in X], expected, atol=tol, rtol=0)
    chunked = model.stepper(dtype=dtype)
    got = np.concatenate(
        [chunked.step_chunk(X[:123]), chunked.step_chunk(X[123:124]), chunked.step_chunk(X[124:])]
    )
    np.testing.assert_allclose(got, expected, atol=tol, rtol=0)


@settings(max_examples=20, deadline=None)
@given(cuts=st.lists(st.integers(0, 120), max_size=5), split=st.integers(0, 120))
def test_conditioned_chunking_and_snapshot(cuts, split):
    model, _ = conditioned_model(seed=5)
    X = np.random.default_rng(1).normal(size=(120, 2)).astype(np.float32)
    whole = model.stepper().step_chunk(X)
    chunked = model.stepper()
    bounds = sorted({0, 120, *cuts})
    got = np.concatenate([chunked.step_chunk(X[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])
    np.testing.assert_allclose(got, whole, atol=2e-6, rtol=0)
    first = model.stepper()
    first.step_chunk(X[:split])
    second = model.stepper()
    second.restore(first.snapshot())
    np.testing.assert_array_equal(second.step_chunk(X[split:]), whole[split:])


def test_filter_options():
    model, base = conditioned_model(norm=False)
    X = np.random.default_rng(2).normal(size=(50, 2))
    raw = base.stepper(dtype="float64").step_chunk(X)
    np.testing.assert_array_equal(model.stepper(dtype="float64", filter=None).step_chunk(X), raw)
    np.testing.assert_array_equal(model.stepper(dtype="float64", filter="none").step_chunk(X), raw)
    chain = FilterChain.preset("ecg-monitor", fs=360.0, mains=60, n_channels=2)
    explicit = base.stepper(dtype="float64", filter=chain).step_chunk(X)
    np.testing.assert_allclose(explicit, model.stepper(dtype="float64").step_chunk(X), atol=1e-12)
    assert not chain.started  # the caller's chain is copied, never advanced
    with pytest.raises(sg.ShapeError, match="channel"):
        base.stepper(filter=FilterChain.preset("eeg", fs=250.0, n_channels=3))
    with pytest.raises(sg.ConfigError, match="filter"):
        base.stepper(filter=42)


def test_reset_restarts_filter_and_filter_property():
    model, _ = conditioned_model()
    X = np.random.default_rng(3).normal(size=(60, 2))
    stepper = model.stepper(dtype="float64")
    first = stepper.step_chunk(X)
    assert stepper.filter.started
    stepper.reset()
    assert not stepper.filter.started
    np.testing.assert_array_equal(stepper.step_chunk(X), first)


def test_snapshot_refuses_other_conditioning():
    model, base = conditioned_model()
    blob = model.stepper().snapshot()
    with pytest.raises(sg.SnapshotError, match="filter"):
        base.stepper().restore(blob)
    other, _ = conditioned_model(preset="eeg", fs=250.0)
    with pytest.raises(sg.SnapshotError):
        other.stepper().restore(blob)


def test_nan_refused_before_filter_state_moves():
    model, _ = conditioned_model()
    stepper = model.stepper()
    stepper.step(np.array([1.0, 2.0]))
    before = stepper.snapshot()
    with pytest.raises(sg.InvalidInputError, match="feature 1"):
        stepper.step(np.array([1.0, np.nan]))
    X = np.ones((4, 2))
    X[2, 0] = np.inf
    with pytest.raises(sg.InvalidInputError, match="sample 2, feature 0"):
        stepper.step_chunk(X)
    assert stepper.snapshot() == before
