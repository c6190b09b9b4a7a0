"""``resample = true``: a source at another rate than the model's is resampled to the model's
rate before filter and GRU; rows are numbered on the model's rate and carry the arrival time of
the source sample that completed them. Checked against resample_poly + the offline stepper."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.signal
from test_daemon_helpers import (
    offline_outputs,
    read_jsonl,
    stream_plan,
    tiny_model,
    two_channel_signal,
    wait_until,
)

from streamgru.daemon.config import parse_config
from streamgru.daemon.plan import check_stream_info
from streamgru.daemon.snapshots import SnapshotStore, StreamSnapshot
from streamgru.errors import ConfigError, SnapshotError
from streamgru.io.chunk import Chunk, StreamInfo

SRC_FS, MODEL_FS = 250.0, 360.0
UP, DOWN = 36, 25


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("rs") / "m.safetensors", fs=MODEL_FS, channels=2)


def make_plan(model_path, **stream):
    return stream_plan(model_path, **{"fs": SRC_FS, "resample": True, **stream})


def signal(n, seed=0):
    return two_channel_signal(n, SRC_FS, seed)


def resampled(X):
    """What the model must be fed for contiguous source samples X (a fresh, steady start)."""
    return scipy.signal.resample_poly(X.astype(np.float64), UP, DOWN, axis=0, padtype="edge")


def collect(blocks):
    if not blocks:
        return np.zeros(0, np.int64), np.zeros((0, 1), np.float32), np.zeros(0)
    idx = np.concatenate([b.first_index + np.arange(b.n_samples) for b in blocks])
    return (
        idx,
        np.concatenate([b.outputs for b in blocks]),
        np.concatenate([b.times() for b in blocks]),
    )


def run(pipe, X, sizes, first=0, together=False):
    """Chunks of these sizes (chunk k arrived at 100 + k), one process() call each, or all in
    one call (``together``: one contiguous group with per-row times)."""
    chunks, pos = [], 0
    for k, n in enumerate(sizes):
        chunks.append(Chunk(X[pos : pos + n], first + pos, 100.0 + k))
        pos += n
    if together:
        return collect(pipe.process(chunks).blocks)
    return collect([b for c in chunks for b in pipe.process([c]).blocks])


def ceil_ratio(i):
    return -((-i * UP) // DOWN)


def test_plan_resamples_only_when_asked(model_path):
    plan = make_plan(model_path)
    assert plan.resample == (UP, DOWN) and plan.fs == SRC_FS and plan.model_fs == MODEL_FS
    assert plan.filter_spec["fs"] == MODEL_FS  # the filter runs after the resampler
    with pytest.raises(ConfigError, match=r"^stream\[0\]\.fs: stream fs 250 Hz differs .*resample"):
        make_plan(model_path, resample=False)
    assert make_plan(model_path, fs=MODEL_FS).resample is None  # same rate: nothing to do
    with pytest.raises(ConfigError, match=r"^stream\[0\]\.resample: expected true or false"):
        make_plan(model_path, resample="yes")
    with pytest.raises(ConfigError, match=r"^stream\[0\]\.fs: cannot resample"):
        make_plan(model_path, fs=359.9)


def test_a_model_without_a_rate_cannot_be_resampled_to(tmp_path):
    bare = tiny_model(tmp_path / "bare.safetensors", fs=MODEL_FS, channels=2)
    import streamgru as sg

    model = sg.load_model(bare)
    meta = {k: v for k, v in model.metadata.items() if k != "fs"}
    sg.GRUModel.from_state_dict(model.state_dict(), metadata=meta).save(bare)
    with pytest.raises(ConfigError, match=r"^stream\[0\]\.resample: the model records no"):
        make_plan(bare, filter="none")


def test_any_chunking_equals_resample_poly_then_the_stepper(model_path):
    plan = make_plan(model_path)
    X = signal(900)
    Z = resampled(X)
    cases = [([900], False), ([1] * 40 + [860], False), ([7, 13, 200, 380, 300], False)]
    cases += [([1] * 40 + [860], True), ([7, 13, 200, 380, 300], True)]
    for sizes, together in cases:
        idx, Y, t = run(plan.pipeline(), X, sizes, together=together)
        m = idx.size
        assert Z.shape[0] - 20 <= m <= Z.shape[0]  # all but the resampler's latency
        np.testing.assert_array_equal(idx, np.arange(m))
        ref = offline_outputs(model_path, Z[:m], plan.filter_spec)
        np.testing.assert_allclose(Y, ref, rtol=1e-5, atol=1e-6)
        # each row carries the arrival time of the source sample that completed it
        rs = plan.make_resampler()
        came = rs.completing_input(np.arange(m))
        chunk_of = np.searchsorted(np.cumsum(sizes), came, side="right")
        np.testing.assert_array_equal(t, 100.0 + chunk_of)


def test_gap_reset_and_hold_reanchor_the_output_grid(model_path):
    X = signal(800)
    for policy in ("reset", "hold"):
        plan = make_plan(model_path, gap_policy=policy)
        pipe = plan.pipeline()
        i1, _, _ = run(pipe, X[:300], [300])
        i2, Y2, _ = run(pipe, X[350:], [450], first=350)  # 50 source samples lost
        np.testing.assert_array_equal(i1, np.arange(i1.size))
        np.testing.assert_array_equal(i2, ceil_ratio(350) + np.arange(i2.size))
        Z2 = resampled(X[350:])[: i2.size]
        if policy == "reset":
            ref = offline_outputs(model_path, Z2, plan.filter_spec)
        else:  # the filter and hidden state go on; the resampler starts anew
            ref = offline_outputs(
                model_path, np.concatenate([resampled(X[:300])[: i1.size], Z2]), plan.filter_spec
            )[i1.size :]
        np.testing.assert_allclose(Y2, ref, rtol=1e-5, atol=1e-6)
        assert pipe.counters.samples_lost == 50 and pipe.counters.gaps == 1


def test_gap_fill_feeds_the_model_at_its_own_rate(model_path):
    plan = make_plan(model_path, gap_policy="fill", gap_fill_max_s=0.2)
    X = signal(800)
    pipe = plan.pipeline()
    i1, _, _ = run(pipe, X[:300], [300])
    i2, Y2, _ = run(pipe, X[340:], [460], first=340)  # 40 lost (<= 50): filled
    assert pipe.counters.samples_filled == 40 and pipe.counters.resets == 0
    start = ceil_ratio(340)
    np.testing.assert_array_equal(i2, start + np.arange(i2.size))
    Z1 = resampled(X[:300])[: i1.size]
    fed = np.concatenate(
        [Z1, np.repeat(Z1[-1:], start - i1.size, axis=0), resampled(X[340:])[: i2.size]]
    )
    ref = offline_outputs(model_path, fed, plan.filter_spec)[start:]
    np.testing.assert_allclose(Y2, ref, rtol=1e-5, atol=1e-6)


def test_nonfinite_samples_never_reach_the_resampler(model_path):
    plan = make_plan(model_path, nan_policy="reset")
    X = signal(600)
    bad = X.copy()
    bad[200:205] = np.nan
    idx, Y, _ = run(plan.pipeline(), bad, [150, 450])
    tail = idx >= ceil_ratio(205)
    assert tail.any() and np.isfinite(Y).all()
    Z = resampled(X[205:])[: int(tail.sum())]
    np.testing.assert_allclose(
        Y[tail], offline_outputs(model_path, Z, plan.filter_spec), rtol=1e-5, atol=1e-6
    )


def test_snapshot_restore_continues_exactly(tmp_path, model_path):
    plan = make_plan(model_path, events=True, threshold=0.5)
    X = signal(1200, seed=4)
    first_index = 1000
    whole_idx, whole_Y, _ = run(plan.pipeline(), X, [500, 700], first=first_index)
    first = plan.pipeline()
    run(first, X[:437], [200, 237], first=first_index)
    store = SnapshotStore(tmp_path / "state")
    store.save(first.snapshot())
    snap = store.load("s")
    assert snap.next_index == first_index + 437 and snap.resampler["start"] == first_index
    second = plan.pipeline()
    second.restore(snap)
    idx, Y, _ = run(second, X, [100, 400, 700], first=first_index)  # replayed from the start
    keep = whole_idx >= idx[0]
    np.testing.assert_array_equal(idx, whole_idx[keep])
    np.testing.assert_allclose(Y, whole_Y[keep], rtol=1e-6, atol=1e-7)
    # a snapshot of a resampled stream does not fit one that is not, and the other way round
    with pytest.raises(SnapshotError, match="taken with resampling"):
        make_plan(model_path, fs=MODEL_FS).pipeline().restore(snap)
    plain = make_plan(model_path, fs=MODEL_FS).pipeline()
    plain.process([Chunk(X[:50], 0, 0.0)])
    plain_snap = plain.snapshot()
    assert plain_snap.resampler is None
    with pytest.raises(SnapshotError, match="taken without resampling"):
        plan.pipeline().restore(StreamSnapshot.from_bytes(plain_snap.to_bytes()))


def test_a_device_announcing_another_rate_is_refused_with_both_rates(model_path):
    plan = make_plan(model_path)
    info = StreamInfo(fs=SRC_FS, n_channels=2, labels=("a", "b"), units=("mV", "mV"))
    assert check_stream_info(plan, info) is None
    other = StreamInfo(fs=500.0, n_channels=2, labels=("a", "b"), units=("mV", "mV"))
    with pytest.raises(
        ConfigError, match="fs: the source announces 500 Hz, the stream expects 250"
    ):
        check_stream_info(plan, other)


def test_the_daemon_runs_a_resampled_stream(tmp_path):
    from streamgru.daemon.daemon import Daemon
    from streamgru.io.sources import open_source

    model = tiny_model(tmp_path / "m.safetensors", fs=MODEL_FS)
    n = int(8 * SRC_FS)
    uri = f"synthetic://ecg?fs={SRC_FS:g}&speed=0&seed=5&duration={n / SRC_FS:g}"
    out = tmp_path / "out.jsonl"
    config = parse_config(
        {
            "stream": [
                {
                    "id": "r",
                    "source": uri,
                    "model": str(model),
                    "fs": SRC_FS,
                    "resample": True,
                    "filter": "ecg-monitor",
                    "sinks": [f"jsonl://{out}"],
                }
            ],
            "metrics": {"enabled": False},
            "logging": {"level": "error"},
        }
    )
    daemon = Daemon(config, configure_logging=False)
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        wait_until(lambda: daemon.ready, 60, "the daemon to be ready")
        runner.join(60)  # the synthetic source ends: the daemon stops by itself
        assert not runner.is_alive()
    finally:
        daemon.request_stop()
        runner.join(30)
    with open_source(uri) as src:
        X = np.concatenate([c.samples for c in src])[:n]
    rows = read_jsonl(out)
    idx = np.array([r["index"] for r in rows])
    Y = np.array([r["y"] for r in rows], dtype=np.float32)
    m = idx.size
    Z = resampled(X)
    assert Z.shape[0] - 20 <= m <= Z.shape[0]  # all but the resampler's latency
    np.testing.assert_array_equal(idx, np.arange(m))
    spec = daemon.streams["r"].plan.filter_spec
    np.testing.assert_allclose(Y, offline_outputs(model, Z[:m], spec), rtol=1e-5, atol=1e-6)
    c = daemon.streams["r"].counters
    assert c.samples_in == n and c.samples_out == m and c.samples_lost == 0


@pytest.mark.parametrize("fs", [SRC_FS, MODEL_FS])  # resampled, and not
def test_a_reload_that_changes_only_policies_carries_the_state(model_path, fs):
    # what Daemon.reload does for a stream whose model, filter and input are unchanged
    from streamgru.daemon.reload import carry_state as _carry_state

    plan = make_plan(model_path, fs=fs, events=True)
    X = signal(900, seed=6)
    whole_idx, whole_Y, _ = run(plan.pipeline(), X, [300, 600])
    old = plan.pipeline()
    run(old, X[:300], [300])
    changed = make_plan(model_path, fs=fs, events=True, gap_policy="hold", nan_policy="zero")
    assert changed.identity() == plan.identity()
    new = _carry_state(old, changed)
    assert new.stepper is old.stepper and new.next_index == 300
    idx, Y, _ = run(new, X[300:], [600], first=300)
    keep = whole_idx >= idx[0]
    np.testing.assert_array_equal(idx, whole_idx[keep])
    np.testing.assert_allclose(Y, whole_Y[keep], rtol=1e-6, atol=1e-7)
    assert new.counters.resets == 0


def test_the_ad_hoc_command_line_passes_resample(monkeypatch, model_path):
    import streamgru.daemon.commands as daemon
    from streamgru.cli import main

    seen = []
    monkeypatch.setattr(daemon, "run_command", lambda config: seen.append(config) or 0)
    base = [
        "run",
        "--source",
        "synthetic://sine?fs=500",
        "--model",
        str(model_path),
        "--no-metrics",
    ]
    assert main([*base, "--resample"]) == 0
    assert main(base) == 0
    assert [cfg.streams[0].resample for cfg in seen] == [True, False]
