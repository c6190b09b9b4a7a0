"""BeatDetector (streaming beat post-processing) and match_beats (beat-by-beat scoring)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamgru.errors import InvalidInputError, ShapeError, SnapshotError
from streamgru.signal.beats import BeatDetector, detect_beats, match_beats, pair_beats

FS = 360.0


def bump_train(n: int, centres, width: int = 9, height: float = 0.9) -> np.ndarray:
    """Scores: a triangular bump of ``width`` samples peaking at each centre."""
    s = np.zeros(n)
    half = width // 2
    for c in centres:
        for k in range(-half, half + 1):
            if 0 <= c + k < n:
                s[c + k] = max(s[c + k], height * (1.0 - abs(k) / (half + 1)))
    return s


def naive_events(scores, fs, threshold, refractory_s, index_mode, max_wait_s):
    """Per-sample reference: (index, emitted_index) of every accepted beat."""
    refr = math.ceil(refractory_s * fs - 1e-9)
    mw = max(1, math.ceil(max_wait_s * fs - 1e-9))
    out = []
    last = None
    in_run = done = False
    start = peak_i = 0
    peak_s = 0.0

    def emit(idx, at):
        nonlocal last
        if last is None or idx - last >= refr:
            out.append((idx, at))
            last = idx

    for i, v in enumerate(scores):
        above = bool(v >= threshold)
        if above and not in_run:
            in_run, done, start, peak_i, peak_s = True, i == 0, i, i, v  # no edge at sample 0
            if index_mode == "crossing" and not done:
                emit(i, i)
                done = True
        elif above and in_run and not done and v > peak_s:
            peak_i, peak_s = i, v
        if above and in_run and not done and index_mode == "peak" and i - start + 1 >= mw:
            emit(peak_i, i)
            done = True
        if not above and in_run:
            if not done:
                emit(peak_i, i)
            in_run = False
    if in_run and not done:
        emit(peak_i, len(scores))
    return out


def run_chunked(det: BeatDetector, scores: np.ndarray, cuts) -> list:
    bounds = [0, *sorted(set(cuts)), scores.size]
    events = []
    for a, b in itertools.pairwise(bounds):
        events += det.update(scores[a:b], first_index=a)
    return events + det.flush()


# --------------------------------------------------------------------- detector
def test_regular_train_gives_beats_at_peaks_and_heart_rate():
    rr = 288  # 0.8 s at 360 Hz: 75 bpm
    centres = list(range(100, 100 + 12 * rr, rr))
    scores = bump_train(centres[-1] + 200, centres)
    det = BeatDetector(FS, threshold=0.5)
    events = det.update(scores, first_index=1000) + det.flush()
    assert [e.index for e in events] == [c + 1000 for c in centres]
    assert events[0].rr_s is None and events[0].hr_bpm is None
    assert events[0].hr_smoothed_bpm is None
    for e in events[1:]:
        assert e.rr_s == pytest.approx(0.8)
        assert e.hr_bpm == pytest.approx(75.0)
        assert e.hr_smoothed_bpm == pytest.approx(75.0)
        assert e.t == pytest.approx(e.index / FS)
        assert e.score == pytest.approx(0.9)
        # the run ends 3 samples after the peak (triangle of width 9, threshold 0.5)
        assert e.emitted_index == e.index + 3
    assert det.n_beats == len(centres)


def test_smoothed_heart_rate_is_median_of_recent_rr():
    centres = [100, 388, 676, 1000, 1288, 1576]  # one long interval (324) among 288s
    det = BeatDetector(FS, threshold=0.5, hr_window=4)
    events = det.update(bump_train(2000, centres)) + det.flush()
    rr = np.diff(centres) / FS
    for k, e in enumerate(events[1:], start=1):
        window = rr[max(0, k - 4) : k]
        assert e.hr_smoothed_bpm == pytest.approx(60.0 / np.median(window))
        assert e.hr_bpm == pytest.approx(60.0 / rr[k - 1])


def test_refractory_drops_close_candidates():
    # second bump 0.1 s after the first: dropped; third 0.3 s after the first: kept
    scores = bump_train(1000, [100, 136, 208])
    det = BeatDetector(FS, threshold=0.5, refractory_s=0.25)
    events = det.update(scores) + det.flush()
    assert [e.index for e in events] == [100, 208]
    assert det.n_suppressed == 1
    det0 = BeatDetector(FS, threshold=0.5, refractory_s=0.0)
    assert [e.index for e in det0.update(scores) + det0.flush()] == [100, 136, 208]


def test_peak_mode_waits_at_most_max_wait():
    scores = np.zeros(600)
    scores[100:400] = 0.6
    scores[150] = 0.95  # inside the first max_wait samples
    scores[300] = 0.99  # after the deadline: ignored
    det = BeatDetector(FS, threshold=0.5, max_wait_s=0.2)
    events = det.update(scores) + det.flush()
    assert len(events) == 1
    assert events[0].index == 150
    assert events[0].emitted_index == 100 + 72 - 1


def test_crossing_mode_emits_at_the_crossing():
    scores = bump_train(1000, [100, 500])
    det = BeatDetector(FS, threshold=0.5, index_mode="crossing")
    events = det.update(scores)
    assert [(e.index, e.emitted_index) for e in events] == [(98, 98), (498, 498)]


def test_nan_counts_as_below_threshold():
    scores = bump_train(400, [100, 300])
    scores[100] = np.nan  # splits the first bump into two runs (second one refractory)
    det = BeatDetector(FS, threshold=0.5)
    events = det.update(scores) + det.flush()
    assert [e.index for e in events] == [99, 300]


def test_gap_closes_run_and_forgets_rr():
    scores = bump_train(1000, [100, 388, 676])
    det = BeatDetector(FS, threshold=0.5)
    ev = det.update(scores[:390], first_index=0)  # ends inside the second bump
    assert [e.index for e in ev] == [100]
    ev = det.update(scores[395:], first_index=5000)  # a gap: the open run is closed at 390
    assert next((e.index, e.emitted_index) for e in ev) == (388, 390)
    assert ev[0].rr_s == pytest.approx(288 / FS)
    assert ev[1].index == 5000 + 676 - 395
    assert ev[1].rr_s is None and ev[1].hr_smoothed_bpm is None


def test_backwards_raises_and_keeps_state():
    scores = bump_train(1000, [100, 388])
    det = BeatDetector(FS, threshold=0.5)
    det.update(scores[:200], first_index=0)
    before = det.snapshot()
    with pytest.raises(InvalidInputError, match="expected 200"):
        det.update(scores[200:], first_index=150)
    assert det.snapshot() == before
    assert [e.index for e in det.update(scores[200:], first_index=200)] == [388]


def test_shapes():
    det = BeatDetector(FS)
    assert det.update(np.zeros((10, 1))) == []
    assert det.next_index == 10
    with pytest.raises(ShapeError, match=r"\(T,\)"):
        det.update(np.zeros((10, 2)))
    assert det.update(np.zeros(0)) == []


def test_bad_settings():
    with pytest.raises(ValueError, match="fs"):
        BeatDetector(0.0)
    with pytest.raises(ValueError, match="index_mode"):
        BeatDetector(FS, index_mode="middle")
    with pytest.raises(ValueError, match="refractory_s"):
        BeatDetector(FS, refractory_s=-1.0)


def test_reset_forgets_everything():
    scores = bump_train(1000, [100, 388])
    det = BeatDetector(FS, threshold=0.5)
    first = det.update(scores) + det.flush()
    det.reset()
    assert det.next_index is None and det.n_beats == 0
    assert det.update(scores) + det.flush() == first


def test_snapshot_restore_continues_exactly():
    scores = bump_train(3000, list(range(100, 2900, 250)))
    ref = BeatDetector(FS, threshold=0.5)
    expected = ref.update(scores) + ref.flush()
    for cut in (50, 101, 352, 1000, 2999):  # 101 and 352 fall inside a bump
        a = BeatDetector(FS, threshold=0.5)
        got = a.update(scores[:cut])
        blob = a.snapshot()
        assert isinstance(blob, bytes)
        b = BeatDetector(FS, threshold=0.5)
        b.restore(blob)
        got += b.update(scores[cut:]) + b.flush()
        assert got == expected
        c = BeatDetector(FS, threshold=0.5)
        c.restore(__import__("json").loads(blob))  # a dict works too
        assert c.snapshot() == blob


def test_restore_refuses_other_settings_and_garbage():
    blob = BeatDetector(FS, threshold=0.5).snapshot()
    with pytest.raises(SnapshotError, match="settings"):
        BeatDetector(FS, threshold=0.6).restore(blob)
    with pytest.raises(SnapshotError):
        BeatDetector(FS).restore(b"\x00\x01 not json")
    with pytest.raises(SnapshotError):
        BeatDetector(FS).restore(b'{"kind": "something else"}')


def test_detect_beats_helper():
    centres = [50, 400, 800]
    idx = detect_beats(bump_train(900, centres), FS, threshold=0.5)
    assert idx.dtype == np.int64 and idx.tolist() == centres


@st.composite
def score_streams(draw):
    n = draw(st.integers(1, 600))
    n_runs = draw(st.integers(0, 12))
    scores = np.zeros(n)
    for _ in range(n_runs):
        a = draw(st.integers(0, n - 1))
        length = draw(st.integers(1, 80))
        values = draw(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=length).map(np.array))
        scores[a : a + values.size] = values[: n - a]
    cuts = draw(st.lists(st.integers(1, max(1, n - 1)), max_size=10))
    return scores, [c for c in cuts if 0 < c < n]


@settings(max_examples=150, deadline=None)
@given(
    stream=score_streams(),
    index_mode=st.sampled_from(["peak", "crossing"]),
    refractory_s=st.sampled_from([0.0, 0.02, 0.1, 0.25]),
    max_wait_s=st.sampled_from([0.001, 0.03, 0.2]),
    threshold=st.sampled_from([0.3, 0.5, 0.8]),
)
def test_any_chunking_gives_the_same_events(
    stream, index_mode, refractory_s, max_wait_s, threshold
):
    scores, cuts = stream
    kw = dict(
        threshold=threshold, refractory_s=refractory_s, index_mode=index_mode, max_wait_s=max_wait_s
    )
    whole = BeatDetector(FS, **kw)
    expected = whole.update(scores, first_index=0) + whole.flush()
    chunked = run_chunked(BeatDetector(FS, **kw), scores, cuts)
    assert chunked == expected
    naive = naive_events(scores, FS, threshold, refractory_s, index_mode, max_wait_s)
    assert [(e.index, e.emitted_index) for e in expected] == naive
    # snapshot at every cut, restored into a fresh detector, gives the same events again
    det = BeatDetector(FS, **kw)
    bounds = [0, *sorted(set(cuts)), scores.size]
    got = []
    for a, b in itertools.pairwise(bounds):
        got += det.update(scores[a:b], first_index=a)
        fresh = BeatDetector(FS, **kw)
        fresh.restore(det.snapshot())
        det = fresh
    assert got + det.flush() == expected


# ------------------------------------------------------------------ match_beats
def test_match_counts():
    ref = [100, 400, 700, 1000]
    det = [110, 395, 460, 1200]  # tolerance at 360 Hz is 54 samples
    tp, fp, fn, sens, ppv = match_beats(det, ref, FS)
    assert (tp, fp, fn) == (2, 2, 2)
    assert sens == pytest.approx(0.5) and ppv == pytest.approx(0.5)


def test_match_is_one_to_one_and_inclusive():
    tp, fp, fn, _, _ = match_beats([100, 101], [100], FS)
    assert (tp, fp, fn) == (1, 1, 0)
    tp, fp, fn, _, _ = match_beats([154], [100], FS)  # exactly 150 ms: matched
    assert (tp, fp, fn) == (1, 0, 0)
    tp, fp, fn, _, _ = match_beats([155], [100], FS)
    assert (tp, fp, fn) == (0, 1, 1)
    tp, fp, fn, _, _ = match_beats([140], [100, 160], FS)  # one detection, two candidates
    assert (tp, fp, fn) == (1, 0, 1)


def test_match_unsorted_and_empty():
    r = match_beats([700, 100, 400], [400, 700, 100], FS)
    assert r == (3, 0, 0, 1.0, 1.0)
    r = match_beats([], [], FS)
    assert r.tp == r.fp == r.fn == 0 and math.isnan(r.sensitivity) and math.isnan(r.ppv)
    r = match_beats([], [5], FS)
    assert (r.fn, r.sensitivity) == (1, 0.0) and math.isnan(r.ppv)
    with pytest.raises(ShapeError):
        match_beats(np.zeros((2, 2)), [1], FS)
    with pytest.raises(ShapeError):
        match_beats([1.5], [1], FS)


def test_pair_beats_returns_pairs():
    d, r = pair_beats([12, 30, 400], [10, 390], FS, tolerance_s=0.05)
    assert d.tolist() == [12, 400] and r.tolist() == [10, 390]


@settings(max_examples=150, deadline=None)
@given(
    det=st.lists(st.integers(0, 300), max_size=25),
    ref=st.lists(st.integers(0, 300), max_size=25),
)
def test_match_is_a_maximum_matching(det, ref):
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    tol = 0.05 * FS  # 18 samples: windows overlap often
    tp, fp, fn, _, _ = match_beats(det, ref, FS, tolerance_s=0.05)
    assert tp + fp == len(det) and tp + fn == len(ref)
    if det and ref:
        adj = np.abs(np.subtract.outer(np.array(ref), np.array(det))) <= tol
        best = int((maximum_bipartite_matching(csr_matrix(adj), perm_type="column") >= 0).sum())
    else:
        best = 0
    assert tp == best


@pytest.mark.parametrize("mode", ["peak", "crossing"])
def test_a_run_above_threshold_from_the_first_sample_is_no_beat(mode):
    """A model's output from its zero state can start above threshold; with no rising edge seen
    it is not a beat, and it must not hold a real beat off by the refractory period."""
    s = np.zeros(400)
    s[:3] = [0.4, 0.2, 0.1]  # cold-start artefact, above threshold 0.15 at sample 0
    s[40:50] = 0.9  # a real beat 40 samples later: inside the 90-sample refractory of sample 0
    det = BeatDetector(360.0, threshold=0.15, refractory_s=0.25, index_mode=mode)
    beats = det.update(s, first_index=1000) + det.flush()
    assert [b.index for b in beats] == [1040]
    assert det.n_unstarted == 1 and det.n_suppressed == 0


def test_after_a_gap_a_run_already_above_threshold_is_no_beat():
    det = BeatDetector(360.0, threshold=0.5, refractory_s=0.0)
    s = np.zeros(50)
    s[10:20] = 1.0
    first = det.update(s, first_index=0)
    after_gap = det.update(np.r_[np.ones(5), np.zeros(20), np.ones(5), np.zeros(5)], 500)
    assert [b.index for b in first] == [10]
    assert [b.index for b in after_gap] == [525]
    assert det.n_unstarted == 1


def test_the_unstarted_run_survives_a_snapshot_and_chunking():
    s = np.r_[np.full(5, 0.9), np.zeros(30), np.full(5, 0.9), np.zeros(30)]
    whole = BeatDetector(360.0, threshold=0.5, refractory_s=0.0)
    expected = [b.index for b in whole.update(s)]
    det = BeatDetector(360.0, threshold=0.5, refractory_s=0.0)
    got = [b.index for b in det.update(s[:2])]
    again = BeatDetector(360.0, threshold=0.5, refractory_s=0.0)
    again.restore(det.snapshot())
    got += [b.index for b in again.update(s[2:])]
    assert got == expected == [35]
    assert again.n_unstarted == 1


def test_the_shipped_model_gives_no_beat_at_a_cold_start():
    """The shipped ECG model's first output is about 0.31 (above its 0.15 threshold) whatever the
    signal; a stream (re)start must not report a beat there."""
    import streamgru as sg
    from streamgru.demo.record import read_record

    model = sg.load_model("weights/ecg_beats.safetensors")
    ecg = read_record().physical()[:, 0].astype(np.float32)
    for start in (0, 300_000):
        scores = model.stepper().step_chunk(ecg[start : start + 1800, None])[:, 0]
        assert scores[0] >= float(model.metadata["threshold"])
        det = BeatDetector(360.0, threshold=float(model.metadata["threshold"]), refractory_s=0.25)
        beats = det.update(scores, first_index=start)
        assert beats and beats[0].index >= start + 18, [b.index for b in beats]
        assert det.n_unstarted == 1
