"""Signal conditioning: scipy designs, FilterChain behaviour, normalisation, rate checks."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal

import streamgru as sg
from streamgru.errors import ConfigError, InvalidInputError, ShapeError, SnapshotError
from streamgru.kernels.sos import sos_filter_chunk, sos_filter_sample, sos_init_steady
from streamgru.signal import FilterChain, Normalizer, StreamResampler, check_sample_rate
from streamgru.signal.design import (
    PRESETS,
    design_sos,
    preset_parameters,
    preset_sos,
    validate_sos,
)

SAMPLE_RATES = (250.0, 360.0, 500.0, 1000.0)


def scipy_steady(sos, X):
    """scipy's reference for start="steady": zi from the first sample."""
    X = np.asarray(X, dtype=np.float64)
    zi = scipy.signal.sosfilt_zi(sos)[:, :, None] * X[0]
    return scipy.signal.sosfilt(sos, X, axis=0, zi=zi)[0]


def signal(n_samples=500, n_channels=1, seed=0, dtype=np.float64):
    """A baseline offset plus a slow wave, mains hum and noise: (T, C)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples)[:, None] / 360.0
    X = (
        1.5
        + 0.8 * np.sin(2 * np.pi * 1.2 * t + rng.uniform(0, 6, n_channels))
        + 0.2 * np.sin(2 * np.pi * 50 * t)
        + 0.1 * rng.standard_normal((n_samples, n_channels))
    )
    return X.astype(dtype)


# ------------------------------------------------------------------ design
class TestDesign:
    def test_bandpass_is_scipy_butter(self):
        got = design_sos(360.0, highpass=0.5, lowpass=40.0, order=4)
        want = scipy.signal.butter(4, [0.5, 40.0], "bandpass", output="sos", fs=360.0)
        np.testing.assert_array_equal(got, want)
        assert got.dtype == np.float64 and got.flags.c_contiguous

    @pytest.mark.parametrize(("kind", "edge"), [("highpass", 0.7), ("lowpass", 35.0)])
    def test_single_edge_is_scipy_butter(self, kind, edge):
        got = design_sos(250.0, **{kind: edge}, order=3)
        want = scipy.signal.butter(3, edge, kind, output="sos", fs=250.0)
        np.testing.assert_array_equal(got, want)

    def test_notches_are_scipy_iirnotch_sections(self):
        got = design_sos(500.0, highpass=1.0, notch=[50.0, 100.0], order=2, notch_q=25.0)
        parts = [scipy.signal.butter(2, 1.0, "highpass", output="sos", fs=500.0)]
        for f0 in (50.0, 100.0):
            parts.append(scipy.signal.tf2sos(*scipy.signal.iirnotch(f0, 25.0, fs=500.0)))
        np.testing.assert_array_equal(got, np.concatenate(parts))

    def test_notch_alone(self):
        got = design_sos(360.0, notch=60)
        want = scipy.signal.tf2sos(*scipy.signal.iirnotch(60.0, 30.0, fs=360.0))
        np.testing.assert_array_equal(got, want)

    @pytest.mark.parametrize("fs", SAMPLE_RATES)
    @pytest.mark.parametrize("name", PRESETS)
    @pytest.mark.parametrize("mains", [50, 60])
    def test_presets(self, name, fs, mains):
        params = preset_parameters(name, fs, mains)
        sos = preset_sos(name, fs, mains)
        np.testing.assert_array_equal(sos, design_sos(**params))
        validate_sos(sos)  # stable, normalised
        nyquist = fs / 2
        assert params["lowpass"] < nyquist and params["highpass"] < params["lowpass"]
        freqs = [0.5 * (params["highpass"] + params["lowpass"])]
        if name.startswith("ecg") or name == "eeg":
            freqs = [10.0]
        _, h = scipy.signal.sosfreqz(sos, worN=freqs, fs=fs)
        assert np.all(np.abs(h) > 0.7), (name, fs, np.abs(h))
        if name == "ppg":
            assert params["notch"] == []
        else:
            assert params["notch"] == [float(mains)]
            _, h_mains = scipy.signal.sosfreqz(sos, worN=[float(mains)], fs=fs)
            assert abs(h_mains[0]) < 1e-6

    @pytest.mark.parametrize(
        ("name", "fs", "lowpass"),
        [
            ("emg", 250.0, 112.5),
            ("emg", 1000.0, 450.0),
            ("emg", 2000.0, 450.0),
            ("ecg-diagnostic", 250.0, 112.5),
            ("ecg-diagnostic", 360.0, 150.0),
        ],
    )
    def test_preset_lowpass_clamped_below_nyquist(self, name, fs, lowpass):
        assert preset_parameters(name, fs)["lowpass"] == pytest.approx(lowpass)

    def test_preset_skips_notch_at_nyquist(self):
        assert preset_parameters("ecg-diagnostic", 100.0, mains=50)["notch"] == []
        assert preset_parameters("ecg-monitor", 100.0, mains=50)["notch"] == []
        assert preset_parameters("ecg-monitor", 100.0, mains=60)["notch"] == []

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"fs": 0.0, "lowpass": 1.0}, "fs: must be > 0"),
            ({"fs": -250.0, "lowpass": 1.0}, "fs: must be > 0"),
            ({"fs": float("nan"), "lowpass": 1.0}, "fs: must be finite"),
            ({"fs": "250", "lowpass": 1.0}, "fs: expected a number"),
            (
                {"fs": 360.0, "lowpass": 200.0},
                "lowpass: must be below Nyquist (fs/2 = 180.0 Hz), got 200.0",
            ),
            ({"fs": 360.0, "lowpass": 180.0}, "lowpass: must be below Nyquist"),
            ({"fs": 360.0, "lowpass": 0.0}, "lowpass: must be > 0 Hz"),
            ({"fs": 360.0, "highpass": -1.0}, "highpass: must be > 0 Hz"),
            ({"fs": 360.0, "highpass": 190.0}, "highpass: must be below Nyquist"),
            ({"fs": 360.0, "highpass": 40.0, "lowpass": 40.0}, "highpass: must be below lowpass"),
            ({"fs": 360.0, "highpass": 50.0, "lowpass": 40.0}, "highpass: must be below lowpass"),
            ({"fs": 360.0, "lowpass": 40.0, "order": 0}, "order: must be in 1..12, got 0"),
            ({"fs": 360.0, "lowpass": 40.0, "order": 13}, "order: must be in 1..12, got 13"),
            ({"fs": 360.0, "lowpass": 40.0, "order": 2.5}, "order: expected an integer in 1..12"),
            ({"fs": 360.0, "lowpass": 40.0, "order": True}, "order: expected an integer"),
            ({"fs": 360.0, "notch": 180.0}, "notch: must be below Nyquist (fs/2 = 180.0 Hz)"),
            ({"fs": 100.0, "notch": 60.0}, "notch: must be below Nyquist (fs/2 = 50.0 Hz)"),
            ({"fs": 360.0, "notch": [50.0, 200.0]}, "notch[1]: must be below Nyquist"),
            ({"fs": 360.0, "notch": 0.0}, "notch: must be > 0"),
            ({"fs": 360.0, "notch": "50"}, "notch: expected a frequency"),
            ({"fs": 360.0, "notch": 50.0, "notch_q": 0.0}, "notch_q: must be > 0"),
            ({"fs": 360.0}, "filter: give at least one of highpass, lowpass or notch"),
        ],
    )
    def test_invalid_design_names_the_field(self, kwargs, message):
        with pytest.raises(ConfigError) as info:
            design_sos(**kwargs)
        assert message in str(info.value)

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (("nope", 360.0), "preset: expected one of ecg-monitor, ecg-diagnostic, eeg, emg, ppg"),
            (("eeg", 360.0, 55), "mains: must be 50 or 60 (Hz), got 55"),
            (("eeg", 360.0, True), "mains: must be 50 or 60"),
            (("ecg-monitor", 80.0), "fs: preset 'ecg-monitor' needs fs above 80.0 Hz"),
            (("emg", 40.0), "fs: preset 'emg' needs fs above"),
            (("eeg", 0.0), "fs: must be > 0"),
        ],
    )
    def test_invalid_preset(self, args, message):
        with pytest.raises(ConfigError) as info:
            preset_sos(*args)
        assert message in str(info.value)

    @pytest.mark.parametrize(
        ("sos", "message"),
        [
            (np.ones(6), "sos: expected shape (n_sections, 6)"),
            (np.ones((2, 5)), "sos: expected shape (n_sections, 6)"),
            (np.ones((0, 6)), "sos: expected shape (n_sections, 6)"),
            ([[1, 0, 0, 2, 0, 0]], "sos: section 0 must have a0 == 1"),
            ([[1, 0, 0, 1, 0, 0], [1, 0, 0, 1, -2.0, 1.0]], "sos: section 1 is unstable"),
            ([[1, 0, 0, 1, 0, 1.0]], "sos: section 0 is unstable"),
            ([[1, 0, 0, 1, -1.5, 0.5]], "|p| = 1"),
            ([[1, 0, np.nan, 1, 0, 0]], "sos: section 0 has a non-finite coefficient"),
            ([["a"] * 6], "sos: expected an (n_sections, 6) array of numbers"),
        ],
    )
    def test_invalid_sos(self, sos, message):
        with pytest.raises(ConfigError) as info:
            FilterChain.from_sos(sos)
        assert message in str(info.value)

    def test_stable_hand_made_sos_accepted(self):
        sos = [[0.5, 0.2, 0.1, 1.0, -1.2, 0.5]]
        np.testing.assert_array_equal(FilterChain.from_sos(sos).sos, np.array(sos, float))


# ------------------------------------------------------------- FilterChain
class TestFilterChain:
    def test_constructors_and_properties(self):
        chain = FilterChain.design(360.0, highpass=0.5, lowpass=40.0, notch=50, n_channels=3)
        assert chain.fs == 360.0 and chain.n_channels == 3 and chain.n_sections == 5
        assert chain.start == "steady" and not chain.started
        assert sg.FilterChain is FilterChain
        chain.sos[0, 0] = 123.0  # a copy: the chain keeps its own, read-only
        assert chain.sos[0, 0] != 123.0 and not chain.kernel_state().sos.flags.writeable
        assert chain.zi.shape == (5, 2, 3) and chain.zi.dtype == np.float64
        assert "preset='eeg'" in repr(FilterChain.preset("eeg", 250.0))
        assert "highpass=0.5" in repr(chain) and "n_channels=3" in repr(chain)
        assert "sos=<1 sections>" in repr(FilterChain.from_sos([[1, 0, 0, 1, 0, 0]]))

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"n_channels": 0}, "n_channels: must be >= 1"),
            ({"n_channels": 1.5}, "n_channels: expected an integer"),
            ({"start": "cold"}, "start: expected one of ('steady', 'zero')"),
            ({"fs": -1.0}, "fs: must be > 0"),
        ],
    )
    def test_invalid_chain_settings(self, kwargs, message):
        with pytest.raises(ConfigError) as info:
            FilterChain.from_sos(preset_sos("eeg", 250.0), **kwargs)
        assert message in str(info.value)

    @pytest.mark.parametrize("name", PRESETS)
    @pytest.mark.parametrize("n_channels", [1, 3])
    def test_process_equals_scipy_steady_start(self, name, n_channels):
        chain = FilterChain.preset(name, 360.0, n_channels=n_channels)
        X = signal(700, n_channels, seed=1)
        np.testing.assert_allclose(chain.process(X), scipy_steady(chain.sos, X), rtol=0, atol=1e-12)

    def test_zero_start_equals_scipy_without_zi(self):
        chain = FilterChain.preset("ecg-monitor", 500.0, n_channels=2, start="zero")
        X = signal(600, 2, seed=2)
        Y = np.concatenate([chain.process(X[:17]), chain.process(X[17:])])
        want = scipy.signal.sosfilt(chain.sos, X, axis=0)
        np.testing.assert_allclose(Y, want, rtol=0, atol=1e-12)
        # the steady start does not ring at the baseline; the zero start does
        steady = FilterChain.preset("ecg-monitor", 500.0, n_channels=2).process(X)
        assert np.abs(steady[:50]).max() < np.abs(Y[:50]).max()

    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    @pytest.mark.parametrize("n_channels", [1, 4])
    def test_step_equals_process(self, dtype, n_channels):
        X = signal(200, n_channels, seed=3, dtype=dtype)
        by_block = FilterChain.preset("eeg", 250.0, n_channels=n_channels).process(X)
        chain = FilterChain.preset("eeg", 250.0, n_channels=n_channels)
        by_sample = np.stack([chain.step(x) for x in X])
        assert by_sample.dtype == dtype
        np.testing.assert_array_equal(by_sample, by_block)

    def test_step_scalars(self):
        X = signal(50, 1, seed=4)[:, 0]
        want = FilterChain.preset("ppg", 250.0).process(X)
        chain = FilterChain.preset("ppg", 250.0)
        got = [chain.step(float(x)) for x in X[:20]] + [chain.step(np.float64(x)) for x in X[20:]]
        assert all(y.shape == (1,) and y.dtype == np.float64 for y in got)
        np.testing.assert_array_equal(np.concatenate(got), want)
        assert FilterChain.preset("ppg", 250.0).step(np.float32(1.0)).dtype == np.float32
        assert FilterChain.preset("ppg", 250.0).step(3).dtype == np.float64

    def test_dtypes_and_shapes(self):
        chain = FilterChain.preset("ecg-monitor", 360.0)
        X32 = signal(64, 1, dtype=np.float32)
        keep = X32.copy()
        Y = chain.process(X32)
        assert Y.dtype == np.float32 and Y.shape == (64, 1)
        np.testing.assert_array_equal(X32, keep)  # the caller's array is untouched
        flat = FilterChain.preset("ecg-monitor", 360.0).process(X32[:, 0])
        assert flat.shape == (64,) and flat.dtype == np.float32
        np.testing.assert_array_equal(flat, Y[:, 0])
        ints = FilterChain.preset("ecg-monitor", 360.0).process(np.arange(10, dtype=np.int16))
        assert ints.dtype == np.float64
        fortran = np.asfortranarray(signal(30, 3))
        chain3 = FilterChain.preset("ecg-monitor", 360.0, n_channels=3)
        np.testing.assert_allclose(
            chain3.process(fortran), scipy_steady(chain3.sos, fortran), atol=1e-12, rtol=0
        )
        empty = chain3.copy()
        empty.reset()
        assert empty.process(np.zeros((0, 3))).shape == (0, 3) and not empty.started

    @pytest.mark.parametrize(
        ("call", "X", "message"),
        [
            ("process", np.zeros(10), "process: expected shape (T, 3), got (10,)"),
            ("process", np.zeros((10, 2)), "process: expected shape (T, 3), got (10, 2)"),
            ("process", np.zeros((2, 10, 3)), "process: expected shape (T, 3)"),
            (
                "process",
                np.zeros((4, 3), dtype=complex),
                "expected real numbers, got dtype complex128",
            ),
            ("step", np.zeros(2), "step: expected shape (3,), got (2,)"),
            ("step", 1.0, "step: expected shape (3,), got ()"),
            ("step", np.zeros((1, 3)), "step: expected shape (3,), got (1, 3)"),
        ],
    )
    def test_bad_shapes(self, call, X, message):
        chain = FilterChain.preset("eeg", 250.0, n_channels=3)
        with pytest.raises(ShapeError) as info:
            getattr(chain, call)(X)
        assert message in str(info.value)
        single = FilterChain.preset("eeg", 250.0)
        with pytest.raises(ShapeError, match=r"expected shape \(T, 1\) or \(T,\)"):
            single.process(np.zeros((5, 2)))
        with pytest.raises(ShapeError, match=r"expected shape \(1,\) or a number"):
            single.step(np.zeros(2))

    def test_reset_starts_again(self):
        X = signal(300, 2, seed=5)
        chain = FilterChain.preset("emg", 1000.0, n_channels=2)
        first = chain.process(X)
        chain.process(signal(100, 2, seed=6))
        chain.reset()
        assert not chain.started and not chain.zi.any()
        np.testing.assert_array_equal(chain.process(X), first)

    def test_copy_is_independent(self):
        X = signal(200, 2, seed=7)
        chain = FilterChain.preset("eeg", 500.0, n_channels=2)
        chain.process(X[:100])
        twin = chain.copy()
        np.testing.assert_array_equal(twin.process(X[100:]), chain.process(X[100:]))
        twin.reset()
        assert chain.started and not twin.started
        assert twin.to_dict() == chain.to_dict()

    def test_zi_property(self):
        chain = FilterChain.preset("ecg-monitor", 360.0, n_channels=2)
        X = signal(100, 2, seed=8)
        chain.process(X[:40])
        zi = chain.zi
        zi[...] = 123.0  # a copy
        assert not np.any(chain.zi == 123.0)
        # continuing from a state set by hand equals scipy continuing from it
        fresh = FilterChain.preset("ecg-monitor", 360.0, n_channels=2)
        fresh.zi = chain.zi
        assert fresh.started
        want = scipy.signal.sosfilt(chain.sos, X[40:], axis=0, zi=chain.zi)[0]
        np.testing.assert_allclose(fresh.process(X[40:]), want, rtol=0, atol=1e-12)
        with pytest.raises(ShapeError, match=r"zi: expected shape \(3, 2, 2\), got \(3, 2\)"):
            fresh.zi = np.zeros((3, 2))
        with pytest.raises(InvalidInputError):
            fresh.zi = np.full((3, 2, 2), np.nan)

    def test_scipy_zi_layout_is_shared(self):
        """The chain's zi after a block is scipy's zf for axis=0 on (T, C) data."""
        chain = FilterChain.preset("eeg", 250.0, n_channels=3)
        X = signal(120, 3, seed=9)
        chain.process(X)
        zi0 = scipy.signal.sosfilt_zi(chain.sos)[:, :, None] * X[0]
        _, zf = scipy.signal.sosfilt(chain.sos, X, axis=0, zi=zi0)
        np.testing.assert_allclose(chain.zi, zf, rtol=0, atol=1e-12)

    @pytest.mark.parametrize(
        "build",
        [
            lambda: FilterChain.preset("ecg-diagnostic", 500.0, mains=60, n_channels=2),
            lambda: FilterChain.design(
                360.0,
                highpass=0.5,
                lowpass=40.0,
                notch=[50, 100],
                order=3,
                notch_q=20.0,
                start="zero",
            ),
            lambda: FilterChain.design(250.0, lowpass=30.0),
            lambda: FilterChain.from_sos(preset_sos("eeg", 250.0), n_channels=4),
            lambda: FilterChain.from_sos([[0.5, 0.2, 0.1, 1.0, -1.2, 0.5]], fs=100.0),
        ],
    )
    def test_to_dict_round_trip(self, build):
        chain = build()
        chain.process(np.ones((3, chain.n_channels)))
        spec = chain.to_dict()
        text = json.dumps(spec)  # JSON-safe
        for source in (spec, text):
            again = FilterChain.from_dict(source)
            assert again.to_dict() == spec
            np.testing.assert_array_equal(again.sos, chain.sos)
            assert (again.n_channels, again.start, again.fs) == (
                chain.n_channels,
                chain.start,
                chain.fs,
            )
            assert not again.started  # the running state is not part of the settings

    def test_from_dict_runs_the_recorded_sections_not_a_redesign(self):
        """A model keeps the filter it was trained behind even if the preset changes later."""
        chain = FilterChain.preset("ecg-monitor", 360.0)
        spec = chain.to_dict()
        assert np.array_equal(np.array(spec["sos"]), chain.sos)
        altered = np.array(spec["sos"])
        altered[0, :3] *= 0.5  # as if the preset had been redefined since
        again = FilterChain.from_dict({**spec, "sos": altered.tolist()})
        np.testing.assert_array_equal(again.sos, altered)
        assert again.to_dict()["preset"] == "ecg-monitor"
        legacy = {k: v for k, v in spec.items() if k != "sos"}  # files written before sos
        np.testing.assert_array_equal(FilterChain.from_dict(legacy).sos, chain.sos)

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ("{", "filter: not valid JSON"),
            ([1, 2], "filter: expected a mapping"),
            ({"kind": "preset"}, "filter.format: expected 'streamgru.filter.v1'"),
            ({"format": "streamgru.filter.v1", "kind": "iir"}, "filter.kind: expected"),
            (
                {"format": "streamgru.filter.v1", "kind": "preset", "fs": 250},
                "filter.preset: missing",
            ),
            (
                {
                    "format": "streamgru.filter.v1",
                    "kind": "preset",
                    "preset": "eeg",
                    "fs": 250,
                    "mains": 55,
                },
                "mains: must be 50 or 60",
            ),
            (
                {"format": "streamgru.filter.v1", "kind": "sos", "sos": [[1, 0, 0, 1, 0, 2]]},
                "sos: section 0 is unstable",
            ),
        ],
    )
    def test_from_dict_rejects(self, spec, message):
        with pytest.raises(ConfigError) as info:
            FilterChain.from_dict(spec)
        assert message in str(info.value)

    def test_snapshot_restore_continuity(self):
        X = signal(400, 2, seed=10)
        whole = FilterChain.preset("eeg", 360.0, n_channels=2).process(X)
        chain = FilterChain.preset("eeg", 360.0, n_channels=2)
        head = chain.process(X[:150])
        blob = chain.snapshot()
        assert isinstance(blob, bytes) and blob[:4] == b"SGST"  # a streamgru.state envelope
        chain.process(signal(77, 2, seed=11))  # wander off
        chain.restore(blob)
        np.testing.assert_array_equal(np.concatenate([head, chain.process(X[150:])]), whole)
        other = FilterChain.preset("eeg", 360.0, n_channels=2)  # a new chain takes it too
        other.restore(blob)
        np.testing.assert_array_equal(other.process(X[150:]), whole[150:])

    def test_snapshot_before_start_keeps_waiting(self):
        chain = FilterChain.preset("ppg", 250.0)
        blob = chain.snapshot()
        chain.process(np.ones(5))
        chain.restore(blob)
        assert not chain.started

    def test_restore_refuses_foreign_or_corrupt(self):
        chain = FilterChain.preset("eeg", 360.0, n_channels=2)
        chain.process(signal(30, 2))
        blob = chain.snapshot()
        state = chain.zi
        nan_state = FilterChain.preset("eeg", 360.0, n_channels=2)
        nan_state._zi[0, 0, 0] = np.nan
        cases = {
            "at least 24 bytes": blob[:10],
            "expected magic": b"XXXX" + blob[4:],
            "newer than this streamgru": blob[:4] + (2).to_bytes(2, "little") + blob[6:],
            "expected shape (5, 2, 2), got (5, 2, 3)": FilterChain.preset(
                "eeg", 360.0, n_channels=3
            ).snapshot(),
            "different sections": FilterChain.preset("eeg", 250.0, n_channels=2).snapshot(),
            "header says": blob[:-8],
            "CRC-32": blob[:-12] + np.array([np.nan]).tobytes() + blob[-4:],
            "NaN or Inf": nan_state.snapshot(),
            "older streamgru": b"SGFZ" + blob[4:],
        }
        for message, bad in cases.items():
            with pytest.raises(SnapshotError) as info:
                chain.restore(bad)
            assert message in str(info.value)
            np.testing.assert_array_equal(chain.zi, state)

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    def test_nonfinite_block_names_sample_and_channel(self, bad):
        chain = FilterChain.preset("ecg-monitor", 360.0, n_channels=3)
        X = signal(20, 3, seed=12)
        chain.process(X[:5])
        before = chain.zi
        Y = X.copy()
        Y[7, 2] = bad
        with pytest.raises(InvalidInputError, match=r"sample 7, channel 2"):
            chain.process(Y)
        np.testing.assert_array_equal(chain.zi, before)
        want = FilterChain.preset("ecg-monitor", 360.0, n_channels=3).process(X)
        np.testing.assert_array_equal(chain.process(X[5:]), want[5:])

    def test_nonfinite_first_block_does_not_start(self):
        chain = FilterChain.preset("ecg-monitor", 360.0, n_channels=2)
        with pytest.raises(InvalidInputError, match=r"sample 0, channel 1"):
            chain.process(np.array([[1.0, np.nan]]))
        assert not chain.started
        with pytest.raises(InvalidInputError, match=r"step: channel 0"):
            chain.step(np.array([np.inf, 0.0], dtype=np.float32))
        assert not chain.started and not chain.zi.any()

    def test_nonfinite_step_leaves_state(self):
        chain = FilterChain.preset("eeg", 250.0)
        chain.step(0.5)
        before = chain.zi
        with pytest.raises(InvalidInputError, match="step: channel 0: expected a finite value"):
            chain.step(float("nan"))
        np.testing.assert_array_equal(chain.zi, before)

    def test_kernel_state_is_live(self):
        chain = FilterChain.preset("eeg", 250.0, n_channels=2)
        state = chain.kernel_state()
        assert state.sos.flags.c_contiguous and not state.sos.flags.writeable
        assert state.zi.shape == (5, 2, 2) and state.zi.flags.c_contiguous
        assert state.zi_unit.shape == (5, 2) and state.started.shape == (1,)
        np.testing.assert_array_equal(state.zi_unit, scipy.signal.sosfilt_zi(chain.sos))
        X = signal(60, 2, seed=13)
        want = chain.copy().process(X)
        # run the kernels on the live arrays, as a fused engine would
        Y = X.copy()
        sos_init_steady(state.zi_unit, Y[0], state.zi)
        state.started[0] = 1
        for t in range(30):
            sos_filter_sample(state.sos, state.zi, Y[t])
        sos_filter_chunk(state.sos, state.zi, Y[30:])
        np.testing.assert_array_equal(Y, want)
        assert chain.started
        np.testing.assert_array_equal(chain.zi, state.zi)
        # the chain writes in place: the references stay valid after reset / restore / zi=
        blob = chain.snapshot()
        chain.reset()
        assert state.started[0] == 0 and not state.zi.any()
        chain.restore(blob)
        assert state.started[0] == 1 and state.zi.any()
        chain.zi = np.zeros((5, 2, 2))
        assert chain.kernel_state().zi is state.zi and not state.zi.any()

    def test_zero_start_kernel_state(self):
        state = FilterChain.preset("eeg", 250.0, start="zero").kernel_state()
        assert not state.zi_unit.any()


# ------------------------------------------------------------ normalisation
class TestNormalizer:
    def test_apply(self):
        norm = Normalizer([1.0, 2.0], [2.0, 4.0])
        X = np.array([[3.0, 6.0], [1.0, 2.0]])
        np.testing.assert_array_equal(norm.apply(X), [[1.0, 1.0], [0.0, 0.0]])
        X32 = X.astype(np.float32)
        assert norm.apply(X32).dtype == np.float32
        np.testing.assert_array_equal(X32, X)  # untouched
        assert norm.apply(np.array([3.0, 6.0])).tolist() == [1.0, 1.0]
        scalar = Normalizer(1.0, 2.0)
        assert scalar.apply(np.full((4, 3), 5.0)).tolist() == [[2.0] * 3] * 4
        assert scalar.apply(5.0) == 2.0

    def test_from_metadata(self):
        meta = {"input_mean": "[0.5, -1.0]", "input_std": "[0.25, 2.0]", "fs": "360"}
        norm = Normalizer.from_metadata(meta)
        np.testing.assert_array_equal(norm.mean, [0.5, -1.0])
        np.testing.assert_array_equal(norm.std, [0.25, 2.0])
        plain = Normalizer.from_metadata({"input_mean": 0.1, "input_std": [2.0, 3.0]})
        np.testing.assert_array_equal(plain.mean, [0.1, 0.1])
        assert Normalizer.from_metadata({}).is_identity
        assert Normalizer.from_metadata(norm.to_dict()).to_dict() == norm.to_dict()
        assert "Normalizer(mean=[0.5, -1.0]" in repr(norm)

    @pytest.mark.parametrize(
        ("mean", "std", "message"),
        [
            (0.0, 0.0, "input_std: every value must be > 0"),
            (0.0, [1.0, -1.0], "input_std: every value must be > 0"),
            ([0.0, 1.0], [1.0, 1.0, 1.0], "expected the same number of channels, got 2 and 3"),
            ("nope", 1.0, "input_mean: expected a number or a JSON list"),
            ([np.nan], 1.0, "input_mean: expected finite values"),
            ([[1.0]], 1.0, "input_mean: expected a number or a non-empty flat list"),
            ([], 1.0, "input_mean: expected a number or a non-empty flat list"),
        ],
    )
    def test_invalid(self, mean, std, message):
        with pytest.raises(ConfigError) as info:
            Normalizer(mean, std)
        assert message in str(info.value)

    def test_partner_missing_and_bad_shape(self):
        with pytest.raises(ConfigError, match="input_std: missing"):
            Normalizer.from_metadata({"input_mean": "[1.0]"})
        with pytest.raises(ShapeError, match=r"expected shape \(\.\.\., 2\), got \(3, 3\)"):
            Normalizer([1.0, 2.0], [1.0, 1.0]).apply(np.zeros((3, 3)))


# ------------------------------------------------------------- sample rate
class TestSampleRate:
    def test_same_rate_passes(self):
        assert check_sample_rate(360.0, 360.0) is None
        assert check_sample_rate(360.0, 360.0 * (1 + 5e-7)) is None
        assert check_sample_rate(250, None) is None

    def test_different_rate_is_refused(self):
        with pytest.raises(ConfigError) as info:
            check_sample_rate(250.0, 360.0)
        assert "stream fs 250 Hz differs from the 360 Hz the model was trained at;" in str(
            info.value
        )
        with pytest.raises(ConfigError):
            check_sample_rate(360.0, 360.0 * (1 + 2e-6))
        with pytest.raises(ConfigError, match="fs: must be > 0"):
            check_sample_rate(0.0, 360.0)

    def test_resample_ratio(self):
        assert check_sample_rate(250.0, 360.0, resample=True) == (36, 25)
        assert check_sample_rate(1000.0, 250.0, resample=True) == (1, 4)
        up, down = check_sample_rate(44100.0, 48000.0, resample=True)
        assert 44100.0 * up / down == 48000.0
        with pytest.raises(ConfigError, match="cannot resample"):
            check_sample_rate(1000.0, 1000.1234567, resample=True)


# --------------------------------------------------------------- resampler
class TestStreamResampler:
    @pytest.mark.parametrize(("up", "down"), [(36, 25), (1, 4), (3, 1), (2, 3)])
    @pytest.mark.parametrize(("start", "padtype"), [("steady", "edge"), ("zero", "constant")])
    def test_equals_resample_poly(self, up, down, start, padtype):
        X = signal(400, 2, seed=20)
        res = StreamResampler(up, down, n_channels=2, start=start)
        Y = np.concatenate([res.process(X[:1]), res.process(X[1:150]), res.process(X[150:])])
        want = scipy.signal.resample_poly(X, up, down, axis=0, padtype=padtype)
        # all but the latency's worth of outputs have left
        assert len(want) - len(Y) == pytest.approx(res.latency * up / down, abs=1)
        np.testing.assert_allclose(Y, want[: len(Y)], rtol=0, atol=1e-12 * np.abs(X).max())

    @pytest.mark.parametrize(("up", "down"), [(36, 25), (1, 4), (3, 1), (1, 1)])
    def test_each_output_leaves_with_its_completing_input(self, up, down):
        X = signal(500, 1, seed=22)
        res = StreamResampler(up, down)
        rng = np.random.default_rng(23)
        pos = 0
        while pos < X.shape[0]:
            n = int(rng.integers(1, 40))
            n_in, n_out = res.n_in, res.n_out
            Y = res.process(X[pos : pos + n])
            assert (res.n_in, res.n_out) == (n_in + X[pos : pos + n].shape[0], n_out + len(Y))
            done = res.completing_input(np.arange(n_out, res.n_out))
            # the outputs that left are exactly those whose completing input came in this call
            assert np.all((done >= n_in) & (done < res.n_in))
            assert res.completing_input(res.n_out) >= res.n_in
            pos += n
        res.reset()
        assert (res.n_in, res.n_out) == (0, 0)

    def test_dtypes_shapes_and_pass_through(self):
        res = StreamResampler(36, 25)
        assert res.process(np.zeros(0, dtype=np.float32)).shape == (0,)
        out = res.process(signal(100, 1, dtype=np.float32)[:, 0])
        assert out.dtype == np.float32 and out.ndim == 1
        same = StreamResampler.from_rates(360.0, 360.0)
        X = signal(10, 1)
        np.testing.assert_array_equal(same.process(X), X)
        assert (same.up, same.down, same.latency) == (1, 1, 0.0)
        assert "up=36, down=25" in repr(StreamResampler.from_rates(250.0, 360.0))
        assert StreamResampler(72, 50).up == 36  # lowest terms
        with pytest.raises(ShapeError, match=r"expected shape \(T, 1\) or \(T,\)"):
            res.process(np.zeros((4, 2)))

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            ((0, 1), "up: expected an integer >= 1"),
            ((1, 2.5), "down: expected an integer >= 1"),
            ((1001, 1), "expected terms up to 1000"),
            ((2, 1, 0), "n_channels: expected an integer >= 1"),
            ((2, 1, 1, "warm"), "start: expected one of"),
        ],
    )
    def test_invalid(self, args, message):
        with pytest.raises(ConfigError) as info:
            StreamResampler(*args)
        assert message in str(info.value)

    def test_nonfinite_and_snapshot(self):
        X = signal(300, 2, seed=21)
        whole = StreamResampler(36, 25, n_channels=2).process(X)
        res = StreamResampler(36, 25, n_channels=2)
        head = res.process(X[:120])
        blob = res.snapshot()
        bad = X[120:].copy()
        bad[3, 1] = np.nan
        with pytest.raises(InvalidInputError, match="sample 3, channel 1"):
            res.process(bad)
        res.process(X[:50])  # wander off
        res.restore(blob)
        np.testing.assert_array_equal(np.concatenate([head, res.process(X[120:])]), whole)
        with pytest.raises(SnapshotError, match="different ratio: expected ratio 5/4, got 36/25"):
            StreamResampler(5, 4, n_channels=2).restore(blob)
        with pytest.raises(SnapshotError, match="truncated"):
            res.restore(blob[:-8])
        res.reset()
        np.testing.assert_array_equal(res.process(X), whole)


def test_importing_signal_compiles_nothing():
    code = (
        "import sys, streamgru.signal, streamgru.signal.design; "
        "assert 'numba' not in sys.modules, sorted(m for m in sys.modules if 'numba' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
