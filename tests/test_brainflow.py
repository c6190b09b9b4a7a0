"""``brainflow://BOARD``: BrainFlow's own BoardShim, on its SYNTHETIC_BOARD and its
PLAYBACK_FILE_BOARD (a file the test writes with BrainFlow's DataFilter)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from brainflow.board_shim import BoardIds, BoardShim
from brainflow.data_filter import DataFilter

from streamgru.errors import ConfigError
from streamgru.io.sources import open_source

SYNTH = BoardIds.SYNTHETIC_BOARD.value


def _take(src, seconds: float, limit: int = 10_000) -> list:
    """Chunks read for ``seconds`` (bounded in time and count)."""
    chunks, t0 = [], time.monotonic()
    while time.monotonic() - t0 < seconds and len(chunks) < limit:
        chunk = src.read(0.2)
        if chunk is not None:
            chunks.append(chunk)
    return chunks


def test_synthetic_board_streams_labelled_microvolts_without_gaps():
    with open_source("brainflow://synthetic?kind=eeg") as src:
        info = src.info
        chunks, t0 = [], time.monotonic()  # 100 samples, however slow a loaded machine is
        while sum(c.n_samples for c in chunks) < 100 and time.monotonic() - t0 < 20:
            chunks.extend(_take(src, 0.2))
    assert info.fs == BoardShim.get_sampling_rate(SYNTH) == 250.0
    assert info.labels == tuple(BoardShim.get_eeg_names(SYNTH))
    assert info.n_channels == len(BoardShim.get_eeg_channels(SYNTH)) and set(info.units) == {"uV"}
    nxt = 0
    for c in chunks:
        assert c.first_index == nxt and c.gap_before == 0
        nxt = c.end_index
    assert nxt >= 100
    X = np.concatenate([c.samples for c in chunks])
    assert np.isfinite(X).all() and X.std() > 0
    with open_source("brainflow://SYNTHETIC_BOARD?kind=ecg") as again:  # released: reopens
        assert again.info.labels[0] == "ecg0"


def test_playback_board_replays_a_file_exactly_and_counts_a_gap(tmp_path):
    rows, n = BoardShim.get_num_rows(SYNTH), 400
    counter_row = BoardShim.get_package_num_channel(SYNTH)
    eeg = BoardShim.get_eeg_channels(SYNTH)
    rng = np.random.default_rng(0)
    data = np.zeros((rows, n))
    data[counter_row] = np.arange(n) % 256  # the package counter wraps at 256
    data[eeg] = np.round(rng.standard_normal((len(eeg), n)) * 20, 3)
    data[BoardShim.get_timestamp_channel(SYNTH)] = 1e9 + np.arange(n) / 250.0
    lost = list(range(300, 312))  # 12 packages never arrived (after the counter wrapped)
    data = np.ascontiguousarray(np.delete(data, lost, axis=1))
    path = tmp_path / "session.csv"
    DataFilter.write_file(data, str(path), "w")
    uri = f"brainflow://playback_file?file={path}&master_board=synthetic&kind=eeg"
    with open_source(uri) as src:
        assert src.info.fs == 250.0 and src.info.labels[0] == BoardShim.get_eeg_names(SYNTH)[0]
        chunks, t0 = [], time.monotonic()
        while sum(c.n_samples for c in chunks) < n - len(lost) and time.monotonic() - t0 < 5:
            chunks.extend(_take(src, 0.2))
        stats = src.stats
    X = np.concatenate([c.samples for c in chunks])
    np.testing.assert_allclose(X, data[eeg].T, atol=1e-3)
    index = np.concatenate([np.arange(c.first_index, c.end_index) for c in chunks])
    np.testing.assert_array_equal(index, np.delete(np.arange(n), lost))
    assert [(c.first_index, c.gap_before) for c in chunks if c.gap_before] == [(312, 12)]
    assert (stats.gaps, stats.samples_lost) == (1, 12)


def test_a_board_whose_counter_is_not_known_reports_no_phantom_gaps(tmp_path):
    """Cyton-Daisy's package counter steps by 2: by default (a board not in KNOWN_COUNTERS) the
    counter is ignored, and ``counter=256,2`` counts the one real gap exactly; ``counter=256``
    (the step wrong) would see a gap at nearly every sample."""
    daisy = BoardIds.CYTON_DAISY_BOARD.value
    rows, n = BoardShim.get_num_rows(daisy), 200
    data = np.zeros((rows, n))
    data[BoardShim.get_package_num_channel(daisy)] = (2 * np.arange(n)) % 256
    exg = BoardShim.get_exg_channels(daisy)
    data[exg] = np.round(np.random.default_rng(1).standard_normal((len(exg), n)) * 20, 3)
    lost = list(range(150, 155))  # 5 packages lost, after the counter wrapped
    data = np.ascontiguousarray(np.delete(data, lost, axis=1))
    results, held = {}, []
    for query in ("", "&counter=256,2", "&counter=256"):
        path = tmp_path / f"daisy{len(held)}.csv"  # its own file: BrainFlow keys boards by params
        DataFilter.write_file(data, str(path), "w")
        src = open_source(f"brainflow://playback_file?file={path}&master_board=cyton_daisy{query}")
        held.append(src)
        with src:
            chunks, t0 = [], time.monotonic()
            while sum(c.n_samples for c in chunks) < n - len(lost) and time.monotonic() - t0 < 8:
                chunks.extend(_take(src, 0.2))
            results[query] = (sum(c.n_samples for c in chunks), src.stats.gaps)
            stats = src.stats
        if query == "&counter=256,2":
            assert stats.samples_lost == len(lost)
            assert [c.gap_before for c in chunks if c.gap_before] == [len(lost)]
    assert results[""] == (n - len(lost), 0)
    assert results["&counter=256,2"] == (n - len(lost), 1)
    assert results["&counter=256"][1] > 100  # the phantom gaps the old default reported
    for bad in ("256,3", "x", "256,0", "-1"):
        with pytest.raises(ConfigError, match="counter="):
            open_source(f"brainflow://synthetic?counter={bad}")


def test_bad_board_kind_and_option_are_refused():
    with pytest.raises(ConfigError, match="unknown BrainFlow board 'nosuch'"):
        open_source("brainflow://nosuch")
    with pytest.raises(ConfigError, match="unknown option"):
        open_source("brainflow://synthetic?colour=red")
    with pytest.raises(ConfigError, match="kind='nope'"):
        open_source("brainflow://synthetic?kind=nope")


def test_daemon_runs_a_model_on_a_brainflow_board(tmp_path):
    from test_daemon_helpers import tiny_model

    from streamgru.daemon.config import parse_config
    from streamgru.daemon.daemon import Daemon

    model = tiny_model(tmp_path / "m.safetensors", fs=250.0, channels=1)
    stream = {
        "id": "eeg",
        "source": "brainflow://synthetic?kind=eeg",
        "model": str(model),
        "filter": "none",
        "pick": ["Cz"],
        "sinks": ["null://"],
    }
    doc = {"stream": [stream], "metrics": {"enabled": False}, "logging": {"level": "error"}}
    daemon = Daemon(parse_config(doc), configure_logging=False)
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rt = daemon.streams.get("eeg")
            if rt is not None and rt.counters.samples_out >= 125:
                break
            time.sleep(0.05)
    finally:
        daemon.request_stop()
        runner.join(20)
    assert not runner.is_alive()
    c = daemon.streams["eeg"].counters
    assert c.samples_out >= 125 and c.samples_lost == 0 and c.gaps == 0


def test_a_board_that_cannot_stream_is_released(monkeypatch):
    """start_stream refused (a buffer BrainFlow will not allocate): the prepared session is
    released, not left holding the board while the daemon retries."""
    import brainflow.board_shim as shim_module

    from streamgru.errors import SourceError

    made: list = []

    class Shim(shim_module.BoardShim):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(shim_module, "BoardShim", Shim)
    with pytest.raises(SourceError, match="INVALID_BUFFER_SIZE"):
        open_source("brainflow://synthetic?kind=eeg&buffer=1000000000")
    assert len(made) == 1 and not made[0].is_prepared()
