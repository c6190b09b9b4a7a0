"""``streamgru score``: bxb / EC57 matching on hand-counted cases, readers, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamgru.evaluation import (
    AnnotationError,
    ScoreSettings,
    match_nearest,
    read_csv_beats,
    read_wfdb_beats,
    score_beats,
    totals,
)
from streamgru.evaluation.run import RecordSignal, detect_record

NO_SETTLE = ScoreSettings(settle_s=0.0)
FS = 1000.0  # 1 sample = 1 ms: windows in samples read as milliseconds


def _score(ref, det, n=100_000, settings=NO_SETTLE, fs=FS):
    return score_beats(np.array(ref), np.array(det), fs, n, settings)


def test_exact_hits():
    s = _score([1000, 2000, 3000], [1000, 2000, 3000])
    assert (s.tp, s.fn, s.fp) == (3, 0, 0)
    assert s.sensitivity == s.ppv == s.f1 == 1.0
    assert s.delay_ms_median == 0.0


@pytest.mark.parametrize(("offset", "matched"), [(149, True), (150, True), (151, False)])
def test_window_boundary(offset, matched):
    s = _score([1000], [1000 + offset])
    assert (s.tp, s.fn, s.fp) == ((1, 0, 0) if matched else (0, 1, 1))


def test_double_detection_is_one_tp_and_one_fp():
    s = _score([1000], [990, 1020])
    assert (s.tp, s.fn, s.fp) == (1, 0, 1)
    assert s.delay_ms_median == -10.0  # the nearer one is the match


def test_detection_between_two_beats():
    # beats 1000 and 1400, a detection at 1200: 200 ms from each, outside both windows
    s = _score([1000, 1400], [1000, 1200, 1400])
    assert (s.tp, s.fn, s.fp) == (2, 0, 1)
    # one detection at 1140, within the window of both: it goes to the nearer (1000 is 140 ms
    # away, 1270 is 130 ms away), the other beat is missed
    s = _score([1000, 1270], [1140])
    assert (s.tp, s.fn, s.fp) == (1, 1, 0)
    assert s.delay_ms_median == -130.0


def test_nearest_first_not_earliest_first():
    # one detection between two beats: it goes to the nearer beat, the earlier on a tie
    ref_match, det_match = match_nearest(np.array([1000, 1200]), np.array([1100]), 150)
    assert ref_match.tolist() == [0, -1] and det_match.tolist() == [0]  # tie: earlier reference
    ref_match, _ = match_nearest(np.array([1000, 1180]), np.array([1100]), 150)
    assert ref_match.tolist() == [-1, 0]  # 80 ms beats 100 ms


def test_empty_inputs():
    s = _score([], [])
    assert (s.tp, s.fn, s.fp) == (0, 0, 0)
    assert np.isnan(s.sensitivity) and np.isnan(s.ppv)
    s = _score([1000, 2000], [])
    assert (s.tp, s.fn, s.fp, s.sensitivity) == (0, 2, 0, 0.0) and np.isnan(s.ppv)
    s = _score([], [1000])
    assert (s.tp, s.fn, s.fp, s.ppv) == (0, 0, 1, 0.0)


def test_five_minute_exclusion_on_long_records():
    fs = 10.0
    n = int(700 * fs)  # 700 s: the EC57 rule applies under "auto"
    ref = np.arange(10, n, 10)  # a beat per second
    det = ref.copy()
    det[:100] += 5  # 0.5 s late in the first 100 s: all would be misses with 150 ms
    s = score_beats(ref, det, fs, n, ScoreSettings())
    assert s.ec57_skip and s.skipped_s == 300.0
    assert (s.tp, s.fn, s.fp) == (int(np.count_nonzero(ref >= 3000)), 0, 0)
    s = score_beats(ref, det, fs, n, ScoreSettings(skip_first="no", settle_s=0.0))
    assert not s.ec57_skip and (s.fn, s.fp) == (100, 100)
    short = score_beats(ref[:100], det[:100], fs, 1100, ScoreSettings())  # 110 s: settle only
    assert not short.ec57_skip and short.skipped_s == 1.0
    forced = score_beats(ref[:100], det[:100], fs, 1100, ScoreSettings(skip_first="yes"))
    assert forced.ec57_skip and (forced.tp, forced.fn, forced.fp) == (0, 0, 0)


def test_edges_of_the_scored_interval():
    settings = ScoreSettings(skip_first="no", settle_s=1.0)  # start at sample 1000
    # a detection at 1050 paired with a beat at 950 (outside): neither TP nor FP
    s = score_beats(np.array([950, 2000]), np.array([1050, 2000]), FS, 10_000, settings)
    assert (s.tp, s.fn, s.fp) == (1, 0, 0)
    # an unmatched beat and detection within one window of the end are not counted
    s = score_beats(np.array([5000, 9900]), np.array([5000, 9700]), FS, 10_000, settings)
    assert (s.tp, s.fn, s.fp) == (1, 0, 1)  # 9700 is 300 ms from the end: an FP
    s = score_beats(np.array([5000, 9900]), np.array([5000, 9880]), FS, 10_000, settings)
    assert (s.tp, s.fn, s.fp) == (2, 0, 0)
    s = score_beats(np.array([5000, 9900]), np.array([5000, 9870]), FS, 10_000, settings)
    assert (s.tp, s.fn, s.fp) == (2, 0, 0)
    s = score_beats(np.array([5000, 9900]), np.array([5000]), FS, 10_000, settings)
    assert (s.tp, s.fn, s.fp) == (1, 0, 0)  # 9900: 100 ms from the end, its beat may follow


def test_gross_versus_average():
    a = _score(list(range(1000, 11000, 1000)), list(range(1000, 11000, 1000)))  # 10/10
    b = _score([1000, 2000], [1000, 5000])  # TP 1, FN 1, FP 1
    t = totals([a, b])
    assert (t.tp, t.fn, t.fp) == (11, 1, 1)
    assert t.gross_sensitivity == pytest.approx(11 / 12)
    assert t.gross_ppv == pytest.approx(11 / 12)
    assert t.average_sensitivity == pytest.approx((1.0 + 0.5) / 2)
    assert t.average_ppv == pytest.approx((1.0 + 0.5) / 2)
    assert t.average_f1 == pytest.approx((1.0 + 0.5) / 2)


def _naive_nearest(ref: list[int], det: list[int], window: float) -> tuple[int, int, int]:
    """Obviously correct and slow: repeatedly take the closest free pair in the window."""
    free_r, free_d, tp = set(range(len(ref))), set(range(len(det))), 0
    while True:
        best = None
        for i in sorted(free_r):
            for j in sorted(free_d):
                dist = abs(det[j] - ref[i])
                if dist <= window and (best is None or (dist, ref[i]) < best[0]):
                    best = ((dist, ref[i]), i, j)
        if best is None:
            return tp, len(free_r), len(free_d)
        free_r.discard(best[1])
        free_d.discard(best[2])
        tp += 1


@pytest.mark.parametrize("seed", range(25))
def test_against_a_naive_matcher(seed):
    rng = np.random.default_rng(seed)
    ref = np.sort(rng.choice(20_000, size=int(rng.integers(0, 40)), replace=False))
    det = np.sort(rng.choice(20_000, size=int(rng.integers(0, 40)), replace=False))
    window = float(rng.choice([50, 150, 400]))
    ref_match, det_match = match_nearest(ref, det, window)
    tp, fn, fp = _naive_nearest(ref.tolist(), det.tolist(), window)
    assert int((ref_match >= 0).sum()) == tp
    assert (int((ref_match < 0).sum()), int((det_match < 0).sum())) == (fn, fp)
    for i, j in enumerate(ref_match.tolist()):
        if j >= 0:
            assert det_match[j] == i and abs(det[j] - ref[i]) <= window


def test_bad_settings_and_inputs():
    from streamgru.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="window"):
        ScoreSettings(window_s=0.0)
    with pytest.raises(InvalidInputError, match="skip_first"):
        ScoreSettings(skip_first="sometimes")
    with pytest.raises(InvalidInputError, match="1-D"):
        score_beats(np.zeros((2, 2)), np.zeros(2), FS, 10)
    with pytest.raises(InvalidInputError, match="integer"):
        score_beats(np.array([1.5]), np.zeros(1), FS, 10)
    with pytest.raises(InvalidInputError, match="sample rate"):
        score_beats(np.zeros(1), np.zeros(1), float("nan"), 10)


# ------------------------------------------------------------------------------ readers
def test_csv_with_and_without_header(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("300\n100\n\n# a comment\n200\n", encoding="utf-8")
    samples, symbols = read_csv_beats(plain)
    assert samples.tolist() == [100, 200, 300] and symbols == ["N", "N", "N"]
    named = tmp_path / "named.csv"
    named.write_text("time_s,sample,symbol\n0.1,36,N\n0.5,180,+\n0.9,324,V\n", encoding="utf-8")
    samples, symbols = read_csv_beats(named)
    assert samples.tolist() == [36, 324] and symbols == ["N", "V"]  # '+' is not a beat


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("sample\n100\nabc\n", r"bad.csv:3: expected a sample index"),
        ("100\n-5\n", r"bad.csv:2: expected a sample index"),
        ("100\n1.5\n", r"bad.csv:2"),
        ("100\nnan\n", r"bad.csv:2"),
        ("symbol,sample\nN\n", r"bad.csv:2: expected a value in column 2"),
    ],
)
def test_malformed_csv(tmp_path, text, match):
    bad = tmp_path / "bad.csv"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(AnnotationError, match=match):
        read_csv_beats(bad)


def test_binary_and_missing_files(tmp_path):
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(AnnotationError, match="UTF-8"):
        read_csv_beats(binary)
    with pytest.raises(AnnotationError, match="cannot open"):
        read_csv_beats(tmp_path / "absent.csv")
    with pytest.raises(AnnotationError, match="no such annotation file"):
        read_wfdb_beats(tmp_path / "absent.hea")
    (tmp_path / "junk.atr").write_bytes(bytes(range(256)) * 3)
    try:
        samples, symbols = read_wfdb_beats(tmp_path / "junk.hea")
    except AnnotationError as exc:
        assert "junk.atr" in str(exc)
    else:  # junk that happens to parse must still give sorted beats with beat symbols only
        assert np.all(np.diff(samples) >= 0) and len(symbols) == samples.size


def test_wfdb_annotations_keep_only_beats(tmp_path):
    wfdb = pytest.importorskip("wfdb")
    wfdb.wrann(
        "rec",
        "atr",
        np.array([10, 20, 30, 40, 50]),
        ["N", "+", "V", "~", "/"],
        write_dir=str(tmp_path),
        fs=360,
    )
    samples, symbols = read_wfdb_beats(tmp_path / "rec.hea")
    assert samples.tolist() == [10, 30, 50] and symbols == ["N", "V", "/"]


# ------------------------------------------------------------- a record through the pipeline
def _write_250hz_record(folder: Path, seconds: int = 60) -> Path:
    """``seconds`` of MIT-BIH 100 MLII resampled to 250 Hz, with its beat annotations."""
    import scipy.signal
    import wfdb

    from streamgru.demo.record import read_beats, read_record

    rec = read_record()
    n = int(seconds * rec.fs)
    x = scipy.signal.resample_poly(rec.physical(n)[:, 0], 25, 36)
    beats = read_beats()
    beats = beats[beats < n]
    wfdb.wrsamp(
        "r250", fs=250, units=["mV"], sig_name=["MLII"], p_signal=x[:, None],
        fmt=["16"], adc_gain=[200.0], baseline=[0], write_dir=str(folder),
    )  # fmt: skip
    wfdb.wrann(
        "r250", "atr", np.round(beats * 250 / 360).astype(np.int64), ["N"] * beats.size,
        write_dir=str(folder), fs=250,
    )  # fmt: skip
    return folder / "r250.hea"


@pytest.fixture(scope="module")
def record_250(tmp_path_factory):
    return _write_250hz_record(tmp_path_factory.mktemp("score"))


def test_detect_record_maps_beats_to_the_record_clock():
    import streamgru as sg
    from streamgru.demo.record import read_beats, read_record

    model = sg.load_model(Path(sg.__file__).parent / "data/weights/ecg_beats.safetensors")
    rec = read_record()
    first, n = 542_000, 30 * 360
    signal = RecordSignal("100", rec.fs, rec.physical(first + n)[first:, 0].copy(), first, "MLII")
    detected = detect_record(model, signal)
    ref = read_beats()
    ref = ref[(ref >= first) & (ref < first + n)]
    s = score_beats(ref - first, detected - first, rec.fs, n, ScoreSettings())
    assert detected.min() >= first  # on the record's clock, not the segment's
    assert s.sensitivity >= 0.95 and s.ppv >= 0.95


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streamgru.cli", "score", *args],
        capture_output=True, text=True, timeout=300, cwd=cwd,
    )  # fmt: skip


def test_cli_scores_a_resampled_record(record_250, tmp_path):
    import streamgru as sg

    model = Path(sg.__file__).parent / "data/weights/ecg_beats.safetensors"
    out = tmp_path / "score.json"
    done = _cli(str(model), str(record_250), "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "r250" in done.stdout and "gross" in done.stdout and "average" in done.stdout
    doc = json.loads(out.read_text(encoding="utf-8"))
    (row,) = doc["records"]
    assert row["fs"] == 250 and doc["settings"]["model_fs"] == 360
    assert doc["settings"]["channels"] == ["MLII"] and doc["settings"]["window_ms"] == 150
    assert not row["ec57_skip"]  # 60 s: only the settle time is left out
    assert row["tp"] + row["fn"] == row["n_reference"] > 60
    assert row["sensitivity"] >= 0.9 and row["ppv"] >= 0.9
    assert doc["totals"]["tp"] == row["tp"]
    assert f"{100 * row['sensitivity']:6.2f}%" in done.stdout


def test_cli_detections_only(tmp_path):
    (tmp_path / "ref.csv").write_text("sample\n360\n720\n1080\n1440\n", encoding="utf-8")
    (tmp_path / "det.csv").write_text("sample\n370\n720\n1300\n", encoding="utf-8")
    out = tmp_path / "d.json"
    done = _cli(
        "--detections", str(tmp_path / "det.csv"), "--reference", str(tmp_path / "ref.csv"),
        "--fs", "1000", "--settle-s", "0", "--to", "4000", "--json", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    totals_doc = json.loads(out.read_text(encoding="utf-8"))["totals"]
    # at 1 kHz: 370~360 and 720 match; 1300 is 220 ms from 1080 and 140 ms from 1440
    assert (totals_doc["tp"], totals_doc["fn"], totals_doc["fp"]) == (3, 1, 0)


def test_cli_exit_codes(tmp_path, record_250):
    assert _cli().returncode == 2  # no model, no records
    assert _cli("--detections", "x.csv").returncode == 2  # no --reference / --fs
    assert _cli("m.safetensors", "r.hea", "--window-ms", "0").returncode == 2
    (tmp_path / "bad.csv").write_text("sample\nnot-a-number\n", encoding="utf-8")
    done = _cli(
        "--detections", str(tmp_path / "bad.csv"), "--reference", str(tmp_path / "bad.csv"),
        "--fs", "360",
    )  # fmt: skip
    assert done.returncode == 65 and "bad.csv:2" in done.stderr
    import streamgru as sg

    model = Path(sg.__file__).parent / "data/weights/ecg_beats.safetensors"
    done = _cli(str(model), str(record_250), "--channel", "V5")
    assert done.returncode == 65 and "no channel named 'V5'" in done.stderr
