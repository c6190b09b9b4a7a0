"""One compiled call per model per round (streamgru.stacked, streamgru.daemon.round): every
stream's outputs, beats, counters and state bit for bit those of its pipeline run alone,
through gaps, NaN policies, restarts, snapshots and resume."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from factories import random_model
from test_daemon_helpers import stream_plan, tiny_model, two_channel_signal

from streamgru.daemon.round import RoundBatch
from streamgru.errors import ConfigError, InvalidInputError
from streamgru.io.chunk import Chunk
from streamgru.signal.chain import FilterChain
from streamgru.stacked import StackedSteppers

FS = 250.0


# ------------------------------------------------------------ StackedSteppers
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("conditioned", [False, True])
@pytest.mark.parametrize("reset_after", [True, False])
def test_stacked_steppers_equal_their_steppers_one_by_one(dtype, conditioned, reset_after):
    model = random_model(
        input_size=3,
        hidden_size=12,
        num_layers=2,
        head=((2, "sigmoid"),),
        seed=5,
        reset_after=reset_after,
    )
    chain = FilterChain.preset("ecg-monitor", FS, n_channels=3) if conditioned else None
    rng = np.random.default_rng(1)
    alone = [model.stepper(dtype, filter=chain, compile_step=False) for _ in range(9)]
    stacked = [model.stepper(dtype, filter=chain, compile_step=False) for _ in range(9)]
    stack = StackedSteppers(stacked[0])
    for st in stacked[1:]:
        stack.attach(st)  # grows past its first capacity: every member moves rows
    assert len(stack) == 9
    for rnd in range(12):
        entries, expected = [], []
        for k in rng.permutation(9)[: rng.integers(1, 10)]:
            X = rng.standard_normal((int(rng.integers(0, 40)), 3)).astype(np.float32)
            expected.append(alone[k].step_chunk(X))
            entries.append((stacked[k], X))
        for got, want in zip(stack.step_chunks(entries), expected):
            np.testing.assert_array_equal(got, want)
        if rnd == 4:  # a reset, a per-sample step and a restore act on a member's row
            alone[2].reset()
            stacked[2].reset()
            x = rng.standard_normal(3).astype(np.float32)
            np.testing.assert_array_equal(alone[3].step(x), stacked[3].step(x))
            stacked[5].restore(alone[5].snapshot())
    for a, b in zip(alone, stacked):
        np.testing.assert_array_equal(a.hidden, b.hidden)
        assert a.snapshot() == b.snapshot() and a.n_steps == b.n_steps


def test_a_dead_member_frees_its_row_and_another_model_is_refused():
    model = random_model(input_size=2, hidden_size=8, seed=1)
    keep = model.stepper(compile_step=False)
    stack = StackedSteppers(keep)
    gone = model.stepper(compile_step=False)
    stack.attach(gone)
    del gone
    gc.collect()
    again = model.stepper(compile_step=False)
    stack.attach(again)  # takes the freed row
    assert len(stack) == 2
    other = random_model(input_size=2, hidden_size=8, seed=2).stepper(compile_step=False)
    with pytest.raises(ConfigError, match="cannot join"):
        stack.attach(other)


def test_the_round_forgets_a_collected_stepper():
    """Steppers replaced by reloads and restarts leave no entry behind in the round."""
    model = random_model(input_size=2, hidden_size=8, seed=1)
    batch = RoundBatch()
    keep = model.stepper(compile_step=False)
    batch.join(keep)
    for _ in range(3):
        gone = model.stepper(compile_step=False)
        batch.join(gone)
        assert batch.joined == 2
        del gone
        gc.collect()
        assert batch.joined == 1
    batch.join(keep)  # still known: a no-op
    assert batch.joined == 1


def test_a_non_finite_block_is_refused_and_nothing_advances():
    model = random_model(input_size=2, hidden_size=8, seed=1)
    a, b = model.stepper(compile_step=False), model.stepper(compile_step=False)
    stack = StackedSteppers(a)
    stack.attach(b)
    good = np.ones((5, 2), np.float32)
    bad = good.copy()
    bad[3, 1] = np.nan
    before = (a.snapshot(), b.snapshot())
    with pytest.raises(InvalidInputError, match="entry 1") as info:
        stack.step_chunks([(a, good), (b, bad)])
    assert info.value.entry == 1
    assert (a.snapshot(), b.snapshot()) == before


# ------------------------------------------------------------------ the round
@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("round") / "m.safetensors", fs=FS, channels=2)


STREAMS = [  # (stream settings, seed): different policies, one model
    ({"gap_policy": "reset", "nan_policy": "hold"}, 0),
    ({"gap_policy": "hold", "nan_policy": "zero"}, 1),
    ({"gap_policy": "fill", "gap_fill_max_s": 0.2, "nan_policy": "reset"}, 2),
    ({"gap_policy": "reset", "nan_policy": "reset", "events": True, "threshold": 0.5}, 3),
    ({"gap_policy": "hold", "nan_policy": "hold", "filter": "none"}, 4),
]


def _arrivals(seed: int, n_rounds: int) -> list[list[Chunk]]:
    """Per round, the chunks of one stream: random lengths, gaps, NaN runs, a restart."""
    rng = np.random.default_rng(seed)
    X = two_channel_signal(n_rounds * 80, FS, seed)
    rounds, index, pos = [], 0, 0
    for r in range(n_rounds):
        chunks = []
        for _ in range(int(rng.integers(0, 3))):
            n = int(rng.integers(1, 40))
            block = X[pos : pos + n].copy()
            if rng.random() < 0.15:
                block[rng.integers(0, n)] = np.nan
            jump = int(rng.integers(1, 30)) if rng.random() < 0.1 else 0
            restarted = r == n_rounds // 2 and not chunks
            chunks.append(Chunk(block, index + jump, 100.0 + r, restarted=restarted))
            index += jump + n
            pos += n
        rounds.append(chunks)
    return rounds


def _rows(results) -> tuple[np.ndarray, np.ndarray, list[int]]:
    blocks = [b for res in results for b in res.blocks]
    idx = np.concatenate([b.first_index + np.arange(b.n_samples) for b in blocks])
    Y = np.concatenate([b.outputs for b in blocks])
    return idx, Y, [e.index for res in results for e in res.events]


def test_pipelines_in_one_round_equal_pipelines_alone_through_gaps_nans_and_resume(model_path):
    plans = [stream_plan(model_path, **settings) for settings, _ in STREAMS]
    arrivals = [_arrivals(seed, 40) for _, seed in STREAMS]
    alone = [plan.pipeline() for plan in plans]
    batch = RoundBatch()
    together = [plan.pipeline() for plan in plans]
    for pipe in together:
        pipe.use_round(batch)
    got: list[list] = [[] for _ in plans]
    want: list[list] = [[] for _ in plans]
    for r in range(40):
        if r == 25:  # resume: each stream continues from its snapshot, still in the round
            snaps = [p.snapshot() for p in together]
            together = [plan.pipeline(p.counters) for plan, p in zip(plans, together)]
            for pipe, snap in zip(together, snaps):
                pipe.restore(snap)
                pipe.use_round(batch)
        for k in range(len(plans)):
            want[k].append(alone[k].process(arrivals[k][r]))
            got[k].append(together[k].process(arrivals[k][r]))
        batch.flush()
    assert batch.calls >= 30 and batch.blocks > batch.calls  # many streams per call
    for k in range(len(plans)):
        idx_a, Y_a, beats_a = _rows(want[k])
        idx_b, Y_b, beats_b = _rows(got[k])
        np.testing.assert_array_equal(idx_b, idx_a)
        np.testing.assert_array_equal(Y_b, Y_a)
        assert beats_b == beats_a
        assert together[k].snapshot().stepper_state == alone[k].snapshot().stepper_state
        assert together[k].counters.gaps == alone[k].counters.gaps > 0
        assert together[k].counters.nonfinite == alone[k].counters.nonfinite > 0
