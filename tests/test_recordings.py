"""EDF/BDF and XDF recordings in (``file://X.edf|.bdf|.xdf``) and out (``edf://``): round trips
on files the tests write themselves (pyedflib writes EDF/BDF, tests/xdf_files.py writes XDF)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pyedflib
import pytest
from xdf_files import XdfStream, write_xdf

from streamgru.errors import ConfigError
from streamgru.io.annotated import ANNOTATION_CODE
from streamgru.io.chunk import PredictionBlock
from streamgru.io.sinks import open_sink
from streamgru.io.sources import open_source

FS = 256.0


def _read_all(src, limit_s: float = 10.0) -> np.ndarray:
    """Every chunk of a finite source, concatenated (checks the indices are contiguous)."""
    parts, nxt, deadline = [], 0, time.monotonic() + limit_s
    while time.monotonic() < deadline:
        chunk = src.read(1.0)
        if chunk is None:
            if src.finished:
                break
            continue
        assert chunk.first_index == nxt and chunk.gap_before == 0
        nxt = chunk.end_index
        parts.append(chunk.samples)
    assert src.finished, "the replay did not end in time"
    return np.concatenate(parts, axis=0)


def _write_edf(path: Path, X: np.ndarray, notes, bdf: bool = False, rates=None) -> None:
    """X (n, C) physical mV; notes: (onset_s, duration_s, text)."""
    n_ch = X.shape[1]
    kind = pyedflib.FILETYPE_BDFPLUS if bdf else pyedflib.FILETYPE_EDFPLUS
    dmax, dmin = (2**23 - 1, -(2**23)) if bdf else (32767, -32768)
    w = pyedflib.EdfWriter(str(path), n_ch, file_type=kind)
    rates = rates or [FS] * n_ch
    w.setSignalHeaders(
        [
            {
                "label": f"ECG{k + 1}",
                "dimension": "mV" if k == 0 else "uV",
                "sample_frequency": rates[k],
                "physical_max": 5.0 * (k + 1),
                "physical_min": -5.0 * (k + 1),
                "digital_max": dmax,
                "digital_min": dmin,
                "transducer": "",
                "prefilter": "",
            }
            for k in range(n_ch)
        ]
    )
    w.writeSamples([X[: int(len(X) * rates[k] / FS), k].copy() for k in range(n_ch)])
    for onset, duration, text in notes:
        w.writeAnnotation(onset, duration, text)
    w.close()


def _signal(n: int, n_ch: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    cols = [
        (k + 1) * np.sin(2 * np.pi * (1.0 + k) * t) + 0.1 * rng.standard_normal(n)
        for k in range(n_ch)
    ]
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("suffix", [".edf", ".bdf"])
def test_edf_and_bdf_replay_carry_labels_units_scaling_and_annotations(tmp_path, suffix):
    X = _signal(int(4 * FS))
    path = tmp_path / f"rec{suffix}"
    notes = [(0.5, 0.0, "start"), (1.25, 0.5, "artefact"), (3.0, 0.0, "stim")]
    _write_edf(path, X, notes, bdf=suffix == ".bdf")
    with open_source(f"file://{path}?speed=0&chunk=100") as src:
        info = src.info
        got = _read_all(src)
        events = list(src.events)
    assert info.fs == FS and info.n_channels == 2
    assert info.labels == ("ECG1", "ECG2") and info.units == ("mV", "uV")
    assert info.sample_format == ("bdf-int24" if suffix == ".bdf" else "edf-int16")
    bits = 24 if suffix == ".bdf" else 16
    for k in range(2):  # physical = (digital - baseline) / gain, gain = (dmax-dmin)/(pmax-pmin)
        assert info.gain[k] == pytest.approx((2**bits - 1) / (10.0 * (k + 1)))
        assert info.baseline[k] == pytest.approx(-(2 ** (bits - 1)) + 5.0 * (k + 1) * info.gain[k])
    with pyedflib.EdfReader(str(path)) as f:  # exactly what pyedflib reads, as float32
        ref = np.stack([f.readSignal(k) for k in range(2)], axis=1)
    np.testing.assert_array_equal(got, ref.astype(np.float32))
    step = 1.0 / np.array(info.gain)  # one digital step, in physical units
    assert np.all(np.abs(got - X) <= step + 1e-6)  # pyedflib truncates to a digital step
    assert [(e.sample_index, e.text, e.code) for e in events] == [
        (128, "start", ANNOTATION_CODE),
        (320, "artefact", ANNOTATION_CODE),
        (768, "stim", ANNOTATION_CODE),
    ]
    assert events[1].duration_s == pytest.approx(0.5)


def test_edf_signals_of_one_rate_are_chosen_by_label(tmp_path):
    X = _signal(int(2 * FS), n_ch=2)
    path = tmp_path / "mixed.edf"
    _write_edf(path, X, [], rates=[FS, FS / 2])
    with pytest.raises(ConfigError, match=r"different rates.*signals=LABEL"):
        open_source(f"file://{path}?speed=0")
    with open_source(f"file://{path}?speed=0&signals=ECG2") as src:
        assert src.info.fs == FS / 2 and src.info.labels == ("ECG2",)
        assert _read_all(src).shape == (int(FS), 1)
    with pytest.raises(ConfigError, match=r"no signal 'nope'"):
        open_source(f"file://{path}?signals=nope")
    with pytest.raises(ConfigError, match=r"fs= is for .npy"):
        open_source(f"file://{path}?fs=100")


def test_looping_edf_replay_repeats_its_annotations_each_pass(tmp_path):
    n = int(FS)
    path = tmp_path / "loop.edf"
    _write_edf(path, _signal(n), [(0.25, 0.0, "mark")])
    with open_source(f"file://{path}?speed=0&loop=1&chunk=64") as src:
        for _ in range(int(3 * n / 64)):
            assert src.read(1.0) is not None
        assert [e.sample_index for e in src.events] == [64, 64 + n, 64 + 2 * n]


def _xdf(tmp_path: Path, two_regular: bool = False) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(1)
    n, fs = 500, 250.0
    X = rng.standard_normal((n, 3)).astype(np.float32) * 50
    t0 = 1000.0
    streams = [
        XdfStream(
            "cap",
            "EEG",
            fs,
            "float32",
            X,
            t0 + np.arange(n) / fs,
            ["Fz", "Cz", "Pz"],
            ["microvolts"] * 3,
        ),
        XdfStream(
            "Markers", "Markers", 0.0, "string", ["go", "stop"], np.array([t0 + 0.4, t0 + 1.5])
        ),
    ]
    if two_regular:
        streams.append(
            XdfStream("acc", "ACC", 50.0, "double64", np.zeros((100, 1)), t0 + np.arange(100) / 50)
        )
    return write_xdf(tmp_path / "rec.xdf", streams), X


def test_xdf_replay_carries_labels_units_and_markers(tmp_path):
    path, X = _xdf(tmp_path)
    with open_source(f"file://{path}?speed=0") as src:
        info = src.info
        got = _read_all(src)
        events = list(src.events)
    assert (info.fs, info.labels, info.units) == (250.0, ("Fz", "Cz", "Pz"), ("microvolts",) * 3)
    assert info.sample_format == "xdf-float32" and info.device_id == "cap"
    np.testing.assert_array_equal(got, X)
    assert [(e.sample_index, e.text) for e in events] == [(100, "go"), (375, "stop")]


def test_xdf_with_two_regular_streams_needs_stream_option(tmp_path):
    path, X = _xdf(tmp_path, two_regular=True)
    with pytest.raises(ConfigError, match=r"stream=NAME.*got 2: 'cap'.*'acc'"):
        open_source(f"file://{path}?speed=0")
    with open_source(f"file://{path}?speed=0&stream=EEG") as src:
        np.testing.assert_array_equal(_read_all(src), X)
    with open_source(f"file://{path}?speed=0&stream=acc") as src:
        assert src.info.fs == 50.0 and _read_all(src).shape == (100, 1)
    with open_source(f"file://{path}?speed=0&stream=EEG&markers=Markers") as src:
        assert len(src.annotations) == 2
    with pytest.raises(ConfigError, match=r"markers='Markerz' names no marker.*'Markers'"):
        open_source(f"file://{path}?speed=0&stream=EEG&markers=Markerz")  # a typo: no silence


class _Beat:
    def __init__(self, index: int, hr: float | None = None) -> None:
        self.index, self.hr_bpm = index, hr


def _blocks(X: np.ndarray, Y: np.ndarray, first: int, sizes, beats=()) -> list[PredictionBlock]:
    out, a = [], 0
    for n in sizes:
        ev = tuple(_Beat(first + b) for b in beats if a <= b < a + n)
        out.append(
            PredictionBlock(
                "s",
                first + a,
                time.monotonic(),
                Y[a : a + n],
                labels=("beat",),
                inputs=X[a : a + n],
                events=ev,
                fs=FS,
                input_labels=("MLII", "V5"),
            )
        )
        a += n
    return out


@pytest.mark.parametrize("suffix", [".edf", ".bdf"])
def test_edf_sink_round_trip_inputs_outputs_beats_and_gap(tmp_path, suffix):
    n = int(5 * FS) + 37  # a partial last record
    X = _signal(n).astype(np.float32)
    Y = (0.5 + 0.5 * np.sin(np.arange(n) / 20.0)).astype(np.float32)[:, None]
    path = tmp_path / f"out{suffix}"
    beats = [100, 400, 900]
    blocks = _blocks(X, Y, 1000, [300, 300, 400, n - 1000], beats)
    gap = 50  # the third block arrives 50 samples late: a gap, held and annotated
    for b in blocks[2:]:
        b.first_index += gap
        b.events = tuple(_Beat(e.index + gap) for e in b.events)
    with open_sink(f"edf://{path}?input_range=-5,5&output_range=0,1&units=mV") as sink:
        for b in blocks:
            sink.write(b)
    assert sink.stats.written == n and sink.clipped == 0 and sink.annotations_dropped == 0
    with pyedflib.EdfReader(str(path)) as f:
        assert f.getSignalLabels() == ["MLII", "V5", "beat"]
        assert [f.getPhysicalDimension(k) for k in range(3)] == ["mV", "mV", ""]
        assert list(f.getSampleFrequencies()) == [FS] * 3
        got = np.stack([f.readSignal(k) for k in range(3)], axis=1)
        onsets, _, texts = f.readAnnotations()
    total = n + gap
    assert got.shape[0] == int(np.ceil(total / FS)) * int(FS)  # whole records, last one padded
    step = 10.0 / (2 ** (24 if suffix == ".bdf" else 16) - 1)
    expect = np.concatenate(
        [
            np.hstack([X, Y])[:600],
            np.repeat(np.hstack([X, Y])[599:600], gap, 0),
            np.hstack([X, Y])[600:],
        ]
    )
    assert np.abs(got[:total, :2] - expect[:, :2]).max() <= step
    assert np.abs(got[:total, 2] - expect[:, 2]).max() <= step / 10 + 1e-9
    notes = sorted(zip(np.round(np.asarray(onsets) * FS).astype(int).tolist(), texts))
    assert notes == [
        (100, "beat"),
        (400, "beat"),
        (600, f"gap {gap}"),
        (900 + gap, "beat"),
        (total, "end of data"),
    ]


def test_edf_sink_refuses_a_second_stream_and_bad_options(tmp_path):
    with pytest.raises(ConfigError, match="input_range: expected LO,HI"):
        open_sink(f"edf://{tmp_path}/x.edf?input_range=3")
    with pytest.raises(ConfigError, match="unknown option"):
        open_sink(f"edf://{tmp_path}/x.edf?colour=red")
    sink = open_sink(f"edf://{tmp_path}/x.edf")
    X = _signal(300).astype(np.float32)
    sink.write(_blocks(X, X[:, :1], 0, [300])[0])
    other = _blocks(X, X[:, :1], 300, [300])[0]
    other.stream_id = "t"
    with pytest.raises(Exception, match="one EDF file records one stream"):
        sink.write(other)
    sink.close()


def test_daemon_replays_an_edf_and_records_edf_with_beats(tmp_path):
    """MIT-BIH 100 (shipped) as an EDF+ with its beat annotations, through the daemon (the
    shipped beat model, events on) into an edf:// recording, read back by pyedflib (and mne)."""
    from streamgru.daemon.config import parse_config
    from streamgru.daemon.daemon import Daemon
    from streamgru.demo.command import default_model
    from streamgru.demo.record import read_beats, read_record
    from streamgru.demo.segment import RECORD

    rec = read_record(RECORD)
    fs, n = rec.fs, int(10 * rec.fs)
    X = rec.physical(n)
    ref = read_beats(RECORD)
    ref = ref[ref < n]
    src = tmp_path / "mitdb100.edf"
    w = pyedflib.EdfWriter(str(src), 2, file_type=pyedflib.FILETYPE_EDFPLUS)
    w.setSignalHeaders(
        [
            {
                "label": lab,
                "dimension": "mV",
                "sample_frequency": fs,
                "physical_max": 5.12,
                "physical_min": -5.12,
                "digital_max": 1024,
                "digital_min": -1024,
                "transducer": "",
                "prefilter": "",
            }
            for lab in rec.labels
        ]
    )
    w.set_number_of_annotation_signals(4)  # EDF+ holds this many annotations per record
    w.writeSamples([X[:, 0].copy(), X[:, 1].copy()])
    for b in ref:
        w.writeAnnotation(b / fs, 0, "N")
    w.close()
    out = tmp_path / "out.edf"
    stream = {
        "id": "ecg",
        "source": f"file://{src}?speed=0",
        "model": str(default_model()[0]),
        "filter": "model",
        "events": True,
        "sinks": [f"edf://{out}?output_range=0,1&units=mV"],
    }
    config = parse_config(
        {
            "stream": [stream],
            "metrics": {"enabled": False},
            "daemon": {"snapshot_interval_s": 0},
            "logging": {"level": "error"},
        }
    )
    daemon = Daemon(config, configure_logging=False)
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    deadline = time.monotonic() + 30
    while runner.is_alive() and time.monotonic() < deadline:
        rt = daemon.streams.get("ecg")
        if (
            rt is not None
            and rt.counters.samples_out >= n
            and rt.counters.device_events >= len(ref)
        ):
            break
        time.sleep(0.05)
    daemon.request_stop()
    runner.join(30)
    assert not runner.is_alive()
    c = daemon.streams["ecg"].counters
    assert c.samples_out == n and c.device_events == len(ref)  # annotations reached the daemon
    with pyedflib.EdfReader(str(out)) as f:
        assert f.getSignalLabels() == ["MLII", "beat"]
        mlii = f.readSignal(0)[:n]
        step = (f.getPhysicalMaximum(0) - f.getPhysicalMinimum(0)) / 65535
        onsets, _, texts = f.readAnnotations()
    with pyedflib.EdfReader(str(src)) as f:
        replayed = f.readSignal(0)  # what the replay delivered (the source file's quantisation)
    assert np.abs(mlii - replayed).max() <= step + 1e-6  # the input, recorded
    beats = np.round(onsets[texts == "beat"] * fs).astype(int)
    assert len(beats) >= len(ref) - 2
    near = [np.min(np.abs(ref - b)) for b in beats]
    assert np.median(near) <= 0.05 * fs
    import mne

    raw = mne.io.read_raw_edf(str(out), preload=True, verbose="error")
    assert raw.ch_names == ["MLII", "beat"] and raw.info["sfreq"] == fs
    assert int((raw.annotations.description == "beat").sum()) == len(beats)
    np.testing.assert_allclose(raw.get_data()[0, :n] * 1e3, mlii, atol=1e-6)  # mne: volts


def test_config_takes_the_recording_options_and_refuses_fs():
    """``signals=`` (EDF/BDF), ``stream=`` and ``markers=`` (XDF) pass the config's option
    check; ``fs=`` on a recording (which carries its rate) does not."""
    from streamgru.daemon.config import parse_config
    from streamgru.demo.command import default_model

    model = str(default_model()[0])
    for source in (
        "file:///data/a.edf?signals=ECG1&speed=0",
        "file:///data/a.BDF?signals=ECG1&loop=1",
        "file:///data/a.xdf?stream=EEG&markers=cues&chunk=8",
    ):
        stream = {"id": "a", "source": source, "model": model, "sinks": ["null://"]}
        assert parse_config({"stream": [stream]}).streams[0].source == source
    stream = {"id": "a", "source": "file:///data/a.edf?fs=250", "model": model}
    with pytest.raises(ConfigError, match=r"stream\[0\]\.source: unknown option\(s\) fs"):
        parse_config({"stream": [{**stream, "sinks": ["null://"]}]})


def test_edf_sink_files_are_private_under_umask_000(tmp_path):
    """Like jsonl:// and csv://, a new EDF file gets 0640 (or ``mode=``) whatever the umask."""
    import os

    X = _signal(300).astype(np.float32)
    old = os.umask(0)
    try:
        for name, query in (("a.edf", ""), ("b.bdf", "?mode=0600")):
            with open_sink(f"edf://{tmp_path / name}{query}") as sink:
                sink.write(_blocks(X, X[:, :1], 0, [300])[0])
    finally:
        os.umask(old)
    assert (tmp_path / "a.edf").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "b.bdf").stat().st_mode & 0o777 == 0o600
    with pyedflib.EdfReader(str(tmp_path / "a.edf")) as f:  # still a valid file
        assert f.getSignalLabels()[-1] == "beat" and f.signals_in_file == 3
    with pytest.raises(ConfigError, match="mode"):
        open_sink(f"edf://{tmp_path / 'c.edf'}?mode=999")


def test_edf_sink_never_overwrites_an_earlier_recording(tmp_path, caplog):
    """A restart (``--resume``, systemd ``Restart=``) or a reopened sink writes ``out.1.edf``,
    ``out.2.edf``... beside the earlier file; ``overwrite=1`` replaces it."""
    X = _signal(600).astype(np.float32)
    path = tmp_path / "out.edf"

    def record(first: int, query: str = ""):
        with open_sink(f"edf://{path}{query}") as sink:
            for b in _blocks(X, X[:, :1], first, [300, 300]):
                sink.write(b)
        return sink

    assert record(0).path == str(path)
    first = path.read_bytes()
    with caplog.at_level("WARNING", logger="streamgru.edf"):
        assert record(600).path == str(tmp_path / "out.1.edf")
    assert "edf file exists" in caplog.text
    assert record(1200).path == str(tmp_path / "out.2.edf")
    assert path.read_bytes() == first  # the earlier recording is intact
    (tmp_path / "out.3.edf").touch()  # an empty file (a crash before the header) is reused
    assert record(1800).path == str(tmp_path / "out.3.edf")
    for name in ("out.edf", "out.1.edf", "out.2.edf", "out.3.edf"):
        with pyedflib.EdfReader(str(tmp_path / name)) as f:
            assert f.getSignalLabels() == ["MLII", "V5", "beat"]
    assert record(0, "?overwrite=1").path == str(path)
    assert not (tmp_path / "out.4.edf").exists()


def test_edf_sink_keeps_beats_that_come_before_the_file_opens(tmp_path):
    """Sample-free blocks of beats during the first second (before the ranges are known and the
    file opens) are written, not dropped."""
    X = _signal(600).astype(np.float32)
    path = tmp_path / "early.edf"
    blocks = _blocks(X, X[:, :1], 0, [100, 500])
    empty = PredictionBlock(
        "s",
        100,
        time.monotonic(),
        np.zeros((0, 1), np.float32),
        labels=("beat",),
        inputs=np.zeros((0, 2), np.float32),
        events=(_Beat(50),),
        fs=FS,
        input_labels=("MLII", "V5"),
    )
    with open_sink(f"edf://{path}?input_range=-5,5&output_range=-5,5") as sink:
        for b in (blocks[0], empty, blocks[1]):
            sink.write(b)
    assert sink.annotations_dropped == 0
    with pyedflib.EdfReader(str(path)) as f:
        onsets, _, texts = f.readAnnotations()
    beats = np.round(np.asarray(onsets)[np.asarray(texts) == "beat"] * FS).astype(int)
    assert beats.tolist() == [50]


def test_edf_sink_caps_the_annotations_it_holds_and_counts_the_rest(tmp_path, caplog):
    """edflib takes annotations only at close: the sink holds at most ``max_annotations``, and
    drops (counts, logs once) what comes beyond; the end-of-data mark is always kept."""
    n = int(4 * FS)
    X = _signal(n).astype(np.float32)
    path = tmp_path / "cap.edf"
    beats = list(range(10, n, 20))  # 52 beats in 4 s
    with caplog.at_level("WARNING", logger="streamgru.edf"):
        with open_sink(f"edf://{path}?max_annotations=5&annotations_per_s=64") as sink:
            for b in _blocks(X, X[:, :1], 0, [n // 4] * 4, beats=beats):
                sink.write(b)
    assert sink.annotations_dropped == len(beats) - 5
    assert caplog.text.count("edf annotations dropped") == 1
    with pyedflib.EdfReader(str(path)) as f:
        _, _, texts = f.readAnnotations()
    assert list(texts).count("beat") == 5
    with pytest.raises(ConfigError, match="max_annotations"):
        open_sink(f"edf://{path}?max_annotations=0")
