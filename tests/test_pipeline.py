"""StreamPipeline without threads: chunking, gaps, NaNs, snapshots, per-row index and time."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_daemon_helpers import offline_outputs, stream_plan, tiny_model, two_channel_signal

from streamgru.daemon.policies import GapPolicy, NanPolicy
from streamgru.daemon.snapshots import SnapshotStore, StreamSnapshot
from streamgru.io.chunk import Chunk

FS = 250.0


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("pipe") / "m.safetensors", fs=FS, channels=2)


def make_plan(model_path, **stream):
    return stream_plan(model_path, **stream)


def signal(n, seed=0):
    return two_channel_signal(n, FS, seed)


def chunks_of(X, sizes, first=0, t0=100.0):
    out, pos = [], 0
    for k, n in enumerate(sizes):
        out.append(Chunk(X[pos : pos + n], first + pos, t0 + k))
        pos += n
    return out


def collect(result):
    if not result.blocks:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 1), dtype=np.float32)
    idx = np.concatenate([b.first_index + np.arange(b.n_samples) for b in result.blocks])
    Y = np.concatenate([b.outputs for b in result.blocks])
    return idx, Y


def test_any_chunking_equals_the_offline_stepper(model_path):
    plan = make_plan(model_path)
    X = signal(600)
    ref = offline_outputs(model_path, X, plan.filter_spec)
    for sizes in ([600], [1] * 50 + [550], [7, 13, 200, 380]):
        pipe = plan.pipeline()
        # several process() calls, each with several chunks (concatenated into one call)
        cs = chunks_of(X, sizes)
        result_idx, result_y = [], []
        for part in (cs[: len(cs) // 2], cs[len(cs) // 2 :]):
            idx, Y = collect(pipe.process(part))
            result_idx.append(idx)
            result_y.append(Y)
        np.testing.assert_array_equal(np.concatenate(result_idx), np.arange(600))
        np.testing.assert_allclose(np.concatenate(result_y), ref, rtol=1e-5, atol=1e-6)
        assert pipe.counters.samples_in == 600 and pipe.counters.gaps == 0


def test_rows_carry_index_and_arrival_time(model_path):
    pipe = make_plan(model_path).pipeline()
    X = signal(30)
    result = pipe.process(chunks_of(X, [10, 20], first=1000, t0=5.0))
    (block,) = result.blocks
    assert block.first_index == 1000 and block.n_samples == 30
    np.testing.assert_array_equal(block.times(), [5.0] * 10 + [6.0] * 20)
    assert block.labels == ("y0",)


def test_gap_reset_restarts_from_fresh_state(model_path):
    plan = make_plan(model_path, gap_policy="reset")
    X = signal(400)
    pipe = plan.pipeline()
    pipe.process([Chunk(X[:200], 0, 0.0)])
    result = pipe.process([Chunk(X[250:], 250, 1.0)])
    assert result.notes == [{"what": "gap", "at_index": 250, "lost": 50, "action": "reset"}]
    assert (pipe.counters.gaps, pipe.counters.samples_lost, pipe.counters.resets) == (1, 50, 1)
    np.testing.assert_allclose(
        result.blocks[0].outputs,
        offline_outputs(model_path, X[250:], plan.filter_spec),
        rtol=1e-5,
        atol=1e-6,
    )


def test_gap_hold_keeps_the_state(model_path):
    plan = make_plan(model_path, gap_policy="hold")
    X = signal(400)
    pipe = plan.pipeline()
    pipe.process([Chunk(X[:200], 0, 0.0)])
    result = pipe.process([Chunk(X[250:], 250, 1.0)])
    joined = np.concatenate([X[:200], X[250:]])
    ref = offline_outputs(model_path, joined, plan.filter_spec)[200:]
    np.testing.assert_allclose(result.blocks[0].outputs, ref, rtol=1e-5, atol=1e-6)
    assert pipe.counters.resets == 0 and pipe.counters.samples_lost == 50


def test_gap_fill_up_to_the_limit_then_reset(model_path):
    plan = make_plan(model_path, gap_policy="fill", gap_fill_max_s=0.2)  # 50 samples
    X = signal(500)
    pipe = plan.pipeline()
    pipe.process([Chunk(X[:200], 0, 0.0)])
    result = pipe.process([Chunk(X[240:300], 240, 1.0)])  # 40 lost: filled with X[199]
    filled = np.concatenate([X[:200], np.repeat(X[199:200], 40, axis=0), X[240:300]])
    ref = offline_outputs(model_path, filled, plan.filter_spec)[240:]
    np.testing.assert_allclose(result.blocks[0].outputs, ref, rtol=1e-5, atol=1e-6)
    assert pipe.counters.samples_filled == 40 and pipe.counters.resets == 0
    result = pipe.process([Chunk(X[400:], 400, 2.0)])  # 100 lost > 50: reset
    assert result.notes[0]["action"] == "reset" and pipe.counters.resets == 1
    np.testing.assert_allclose(
        result.blocks[0].outputs,
        offline_outputs(model_path, X[400:], plan.filter_spec),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("policy", ["hold", "zero"])
def test_nan_hold_and_zero_never_reach_the_state(model_path, policy):
    plan = make_plan(model_path, nan_policy=policy)
    X = signal(300)
    bad = X.copy()
    bad[100:103, 0] = np.nan
    bad[150, 1] = np.inf
    pipe = plan.pipeline()
    idx, Y = collect(pipe.process(chunks_of(bad, [120, 180])))
    clean = X.copy()
    if policy == "zero":
        clean[100:103, 0] = 0.0
        clean[150, 1] = 0.0
    else:
        clean[100:103, 0] = X[99, 0]
        clean[150, 1] = X[149, 1]
    np.testing.assert_array_equal(idx, np.arange(300))
    np.testing.assert_allclose(
        Y, offline_outputs(model_path, clean, plan.filter_spec), rtol=1e-5, atol=1e-6
    )
    assert pipe.counters.nonfinite == 4 and np.isfinite(Y).all()


def test_nan_reset_drops_the_rows_and_restarts(model_path):
    plan = make_plan(model_path, nan_policy="reset")
    X = signal(300)
    bad = X.copy()
    bad[100:110] = np.nan
    pipe = plan.pipeline()
    idx, Y = collect(pipe.process(chunks_of(bad, [105, 195])))
    np.testing.assert_array_equal(idx, np.r_[0:100, 110:300])
    np.testing.assert_allclose(
        Y[100:], offline_outputs(model_path, X[110:], plan.filter_spec), rtol=1e-5, atol=1e-6
    )
    assert pipe.counters.nonfinite == 10 and pipe.counters.resets == 1
    # NaNs at the very end of a call: the reset happens at the next finite sample
    pipe = plan.pipeline()
    bad = X.copy()
    bad[95:100] = np.nan
    pipe.process([Chunk(bad[:100], 0, 0.0)])
    result = pipe.process([Chunk(X[100:], 100, 1.0)])
    np.testing.assert_allclose(
        result.blocks[0].outputs,
        offline_outputs(model_path, X[100:], plan.filter_spec),
        rtol=1e-5,
        atol=1e-6,
    )


def test_snapshot_restore_continues_exactly(tmp_path, model_path):
    plan = make_plan(model_path, events=True, threshold=0.5)
    X = signal(1000, seed=4)
    whole = plan.pipeline()
    _, ref = collect(whole.process(chunks_of(X, [300, 700])))
    first = plan.pipeline()
    first.process(chunks_of(X[:437], [200, 237]))
    store = SnapshotStore(tmp_path / "state")
    store.save(first.snapshot())
    snap = store.load("s")
    assert snap.next_index == 437 and snap.model_checksum == plan.model.checksum()
    second = plan.pipeline()
    second.restore(snap)
    # the source replays from 0: everything before 437 is skipped
    idx, Y = collect(second.process(chunks_of(X, [100, 400, 500])))
    np.testing.assert_array_equal(idx, np.arange(437, 1000))
    np.testing.assert_allclose(Y, ref[437:], rtol=1e-6, atol=1e-7)
    assert second.counters.skipped == 437 and second.counters.gaps == 0


def test_snapshot_from_another_model_or_filter_is_refused(tmp_path, model_path):
    from streamgru.errors import SnapshotError

    plan = make_plan(model_path)
    pipe = plan.pipeline()
    pipe.process([Chunk(signal(50), 0, 0.0)])
    snap = pipe.snapshot()
    other = make_plan(model_path, filter="none").pipeline()
    with pytest.raises(SnapshotError, match="another filter"):
        other.restore(snap)
    foreign = dataclasses.replace(snap, model_checksum="0" * 64).to_bytes()
    with pytest.raises(SnapshotError, match="another model"):
        plan.pipeline().restore(StreamSnapshot.from_bytes(foreign))
    with pytest.raises(SnapshotError, match="different model"):
        StreamSnapshot.from_bytes(foreign, model_checksum=snap.model_checksum)


def test_overlapping_chunks_are_trimmed(model_path):
    plan = make_plan(model_path)
    X = signal(200)
    pipe = plan.pipeline()
    pipe.process([Chunk(X[:100], 0, 0.0)])
    idx, Y = collect(pipe.process([Chunk(X[80:200], 80, 1.0)]))
    np.testing.assert_array_equal(idx, np.arange(100, 200))
    np.testing.assert_allclose(
        Y, offline_outputs(model_path, X, plan.filter_spec)[100:], rtol=1e-5, atol=1e-6
    )
    assert pipe.counters.skipped == 20


def test_policies_directly():
    gp = GapPolicy("fill", fill_max=10)
    assert gp.decide(0).action == "none" and gp.decide(5).fill == 5
    assert gp.decide(11).action == "reset" and gp.decide(0, restarted=True).action == "reset"
    assert GapPolicy("hold").decide(0, restarted=True).action == "hold"
    np_ = NanPolicy("hold", 2)
    X = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, np.nan]], dtype=np.float32)
    ((_, Y),) = np_.sanitize(X)[0]
    np.testing.assert_array_equal(Y, [[0.0, 1.0], [2.0, 1.0], [2.0, 1.0]])
    assert np_.snapshot() == [2.0, 1.0]


def test_beat_events_equal_the_offline_detector(model_path):
    from streamgru.signal.beats import BeatDetector

    plan = make_plan(model_path, events=True, threshold=0.7, refractory_s=0.05)
    X = signal(2000, seed=9)
    pipe = plan.pipeline()
    events = []
    for part in np.array_split(np.arange(2000), 7):
        chunk = Chunk(X[part[0] : part[-1] + 1], int(part[0]), 0.0)
        events += pipe.process([chunk]).events
    scores = offline_outputs(model_path, X, plan.filter_spec)[:, 0]
    offline = BeatDetector(FS, threshold=0.7, refractory_s=0.05).update(scores, 0)
    assert len(offline) > 5
    assert [e.index for e in events] == [e.index for e in offline]
    assert pipe.counters.beats == len(events)
