"""The synthetic ECG behind the beat detector's training and held-out data (weights/ecg_*.py):
its beat labels sit on the QRS complexes, rhythms have the properties their names promise,
everything is deterministic, and the held-out WFDB files round-trip."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
if str(WEIGHTS_DIR) not in sys.path:
    sys.path.insert(0, str(WEIGHTS_DIR))

import ecg_dataset  # noqa: E402
import ecg_synth  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index")


def _is_local_abs_max(x: np.ndarray, idx: np.ndarray, half: int, tol: int = 0) -> np.ndarray:
    """For each index: is the maximum of |x| within +-half samples at most ``tol`` away?"""
    out = []
    for i in idx.tolist():
        lo, hi = max(i - half, 0), min(i + half + 1, x.size)
        out.append(abs(lo + int(np.argmax(np.abs(x[lo:hi]))) - i) <= tol)
    return np.array(out)


@pytest.mark.parametrize("fs", [250.0, 1000.0])
@pytest.mark.parametrize("conduction", ecg_synth.CONDUCTIONS)
def test_labels_sit_on_the_qrs_peak(fs, conduction):
    rng = np.random.default_rng(7)
    rec = ecg_synth.synth_ecg(rng, fs, 40.0, 80.0, conduction=conduction, ectopy="mixed")
    x = rec.signal
    assert rec.beats.dtype == np.int64 and np.all(np.diff(rec.beats) > 0.25 * fs)
    assert len(rec.symbols) == rec.beats.size
    assert set(rec.symbols) <= {ecg_synth.CONDUCTED_SYMBOL[conduction], "V"}
    assert "V" in rec.symbols and rec.symbols.count("V") < rec.beats.size / 2
    # the largest deflection within +-25 ms (the pacing spike lies 35-50 ms before the QRS); the
    # label is the peak of the beat's own QRS waves, which the previous beat's T wave may shift
    # in the sum by a sample (2 ms)
    tol = max(1, round(0.002 * fs))
    assert _is_local_abs_max(x, rec.beats, round(0.025 * fs), tol).all()
    # and nothing between the beats of a record without ectopy is QRS-like: every local |max|
    # above 60 % of the beats' median height lies within the labelled QRS (T waves are lower;
    # pacing spikes are not beats and are left out)
    if conduction != "paced":
        import scipy.signal

        plain = ecg_synth.synth_ecg(rng, fs, 40.0, 80.0, conduction=conduction)
        heights = np.abs(plain.signal[plain.beats])
        peaks, _ = scipy.signal.find_peaks(np.abs(plain.signal), height=0.6 * np.median(heights))
        near = np.min(np.abs(peaks[:, None] - plain.beats[None, :]), axis=1)
        assert np.all(near <= 0.08 * fs)  # a notch of the same wide QRS may come 60 ms early


def test_rhythm_properties():
    rng = np.random.default_rng(3)
    nsr = ecg_synth.synth_ecg(rng, 360.0, 120.0, 72.0)
    rr = np.diff(nsr.beats) / 360.0
    assert abs(60.0 / rr.mean() - 72.0) < 4.0 and rr.std() / rr.mean() < 0.1
    assert set(nsr.symbols) == {"N"}
    bigem = ecg_synth.synth_ecg(rng, 360.0, 120.0, 70.0, ectopy="bigeminy")
    frac = bigem.symbols.count("V") / len(bigem.symbols)
    assert 0.4 < frac < 0.6
    af = ecg_synth.synth_ecg(rng, 360.0, 120.0, 100.0, irregular=True)
    rr_af = np.diff(af.beats) / 360.0
    assert rr_af.std() / rr_af.mean() > 0.1  # irregular
    # compensatory pause: an isolated PVC's two RR intervals add up to about two normal ones
    iso = ecg_synth.synth_ecg(np.random.default_rng(4), 360.0, 200.0, 60.0, ectopy="isolated")
    sym = np.array(iso.symbols)
    b = iso.beats / 360.0
    nn = [b[i] - b[i - 1] for i in range(1, len(sym)) if sym[i] == sym[i - 1] == "N"]
    spans = []
    for i in range(2, len(sym) - 2):
        if sym[i] == "V" and sym[i - 1] == sym[i + 1] == sym[i - 2] == "N":
            assert b[i] - b[i - 1] < 0.8 * (b[i - 1] - b[i - 2])  # premature
            spans.append((b[i + 1] - b[i - 1]) / (2 * np.median(nn)))
    assert len(spans) >= 3
    assert abs(np.mean(spans) - 1.0) < 0.05  # a reset (as after an APC) would give about 0.85


def test_amplitude_and_inversion():
    a = ecg_synth.synth_ecg(np.random.default_rng(1), 500.0, 20.0, r_amp_mv=0.3)
    b = ecg_synth.synth_ecg(np.random.default_rng(1), 500.0, 20.0, r_amp_mv=3.0, inverted=True)
    np.testing.assert_array_equal(a.beats, b.beats)
    np.testing.assert_allclose(b.signal, -10.0 * a.signal, atol=1e-12)
    assert 0.25 < np.median(a.signal[a.beats]) < 0.35


def test_deterministic_from_the_seed():
    r1 = ecg_synth.random_synth(np.random.default_rng([1, 5]), 250.0, 20.0)
    r2 = ecg_synth.random_synth(np.random.default_rng([1, 5]), 250.0, 20.0)
    np.testing.assert_array_equal(r1.signal, r2.signal)
    np.testing.assert_array_equal(r1.beats, r2.beats)


def test_ecgsyn_r_peaks_are_located():
    pytest.importorskip("neurokit2")
    rec = ecg_synth.ecgsyn_ecg(seed=123, fs=360.0, duration_s=30.0, hr_bpm=75.0, hr_std=3.0)
    expected = 30.0 * 75.0 / 60.0
    assert abs(rec.beats.size - expected) <= 3
    assert _is_local_abs_max(rec.signal, rec.beats, round(0.1 * 360)).all()
    rr = np.diff(rec.beats) / 360.0
    assert rr.min() > 0.5 * rr.mean() and rr.max() < 1.5 * rr.mean()
    assert np.all(rec.signal[rec.beats] > 0.6 * rec.signal.max())


def test_pool_windows_reach_360_hz_with_their_labels():
    rec = ecg_synth.synth_ecg(np.random.default_rng(2), 1000.0, 20.0, 70.0)
    seg = ecg_dataset.to_model_rate(rec.signal, rec.fs)
    assert seg.size == 20 * 360
    at360 = np.round(rec.beats * 0.36).astype(np.int64)
    assert _is_local_abs_max(seg, at360, 5, tol=1).all()  # rounded to the 2.8 ms grid


def test_heldout_records_round_trip(tmp_path):
    wfdb = pytest.importorskip("wfdb")
    import make_heldout_ecg as mh

    rec = mh.condition_record("pvc", 250)
    again = mh.condition_record("pvc", 250)
    np.testing.assert_array_equal(rec.signal, again.signal)
    mh.write_record("pvc_250", rec, "ECG", tmp_path)
    back = wfdb.rdrecord(str(tmp_path / "pvc_250"))
    ann = wfdb.rdann(str(tmp_path / "pvc_250"), "atr")
    assert back.fs == 250 and back.units == ["mV"]
    np.testing.assert_allclose(back.p_signal[:, 0], rec.signal, atol=6e-4)
    np.testing.assert_array_equal(ann.sample, rec.beats)
    assert list(ann.symbol) == rec.symbols and "V" in ann.symbol
