"""Cluster mode on NATS JetStream: formats, per-stream handover, and two real workers, one killed.

The unit tests need neither NATS nor nats-py. The cluster tests start a real ``nats-server -js``
on a free 127.0.0.1 port (see ``tests/nats_server.py``) and skip when it or nats-py is missing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from factories import random_model
from nats_server import NatsServer, skip_reason

from streamgru.cluster.settings import ClusterConfig
from streamgru.cluster.state import StreamProcessor, pack_state, unpack_state
from streamgru.errors import ConfigError, SnapshotError
from streamgru.io.chunk import PredictionBlock
from streamgru.io.nats_io import (
    InputDecoder,
    decode_batch,
    decode_predictions,
    encode_batch,
    encode_predictions,
    fnv1a_32,
    input_subject,
    partition_of,
)
from streamgru.io.protocol import Data, Hello, SampleFormat, encode
from streamgru.signal.chain import FilterChain

FS = 250.0
BATCH = 25
N_SAMPLES = 3000
N_PARTITIONS = 4
#: The workers' snapshot interval (``--snapshot-interval``). After a kill, the survivor replays
#: from the dead worker's last snapshot: the repeated predictions of a stream must all come from
#: samples published within one interval plus REPLAY_SLACK_S (processing lag, the flush itself).
SNAPSHOT_INTERVAL_S = 0.5
#: Lease time-to-live of the test's workers, seconds: long enough that a worker slowed by a
#: loaded CI machine keeps renewing; the kill's takeover waits for it once.
LEASE_TTL_S = 4.0
REPLAY_SLACK_S = 2.0
ROOT = Path(__file__).resolve().parents[1]


def _model():
    return random_model(input_size=1, hidden_size=8, head=((2, "identity"),), seed=3)


def _signal(seed: int, n: int = N_SAMPLES) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    x = np.sin(2 * np.pi * 1.2 * t + seed) + 0.2 * rng.standard_normal(n) + 0.5
    return x.astype(np.float32)[:, None]


def _reference(model, x: np.ndarray) -> np.ndarray:
    """One uninterrupted filter + Stepper over the same batches."""
    chain = FilterChain.preset("ecg-monitor", fs=FS)
    st = model.stepper()
    return np.concatenate(
        [st.step_chunk(chain.process(x[a : a + BATCH])) for a in range(0, x.shape[0], BATCH)]
    )


# ------------------------------------------------------------------------------- formats
def test_batch_and_prediction_round_trip():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    first, back = decode_batch(encode_batch(2**40 + 3, x))
    assert first == 2**40 + 3 and np.array_equal(back, x)
    block = PredictionBlock("bed1", 77, 0.0, np.float32([[0.1, -2.5], [3e-8, 1.0]]))
    for fmt in ("sgp1", "json"):
        first, out = decode_predictions(encode_predictions(block, fmt))
        assert first == 77 and np.array_equal(out, block.outputs)


def test_partition_is_fnv1a_like_the_server():
    assert fnv1a_32(b"") == 0x811C9DC5 and fnv1a_32(b"a") == 0xE40C292C
    assert partition_of("a", 7) == 0xE40C292C % 7
    assert input_subject("bed-1_a") == "sg.in.bed-1_a"
    with pytest.raises(ConfigError):
        input_subject("bed.1")


def test_decoder_trims_overlap_drops_stale_counts_gaps():
    dec = InputDecoder()
    x = np.arange(40, dtype=np.float32)
    assert dec.feed(encode_batch(0, x[:10]))[0].first_index == 0
    (c,) = dec.feed(encode_batch(5, x[5:20]))  # overlaps 5..9: only 10..19 are new
    assert (c.first_index, c.n_samples, c.gap_before) == (10, 10, 0)
    assert dec.feed(encode_batch(0, x[:10])) == []  # a repeat
    (c,) = dec.feed(encode_batch(25, x[25:30]))
    assert (c.first_index, c.gap_before) == (25, 5)
    assert (dec.stats.ignored, dec.stats.gaps, dec.stats.samples_lost) == (1, 1, 5)
    assert dec.feed(b"garbage") == [] and dec.stats.malformed + dec.stats.bytes_discarded > 0


def test_decoder_sgb1_calibrates_unwraps_and_survives_handover():
    hello = Hello(1, 250, 1, SampleFormat.INT16, "dev", "fw", (2.0,), (10.0,), ("mV",), ("I",))
    dec = InputDecoder()
    start = 2**32 - 3
    msg = encode(hello) + encode(Data.from_values(start, 0, np.int32([[12], [14]]), "int16"))
    (c,) = dec.feed(msg)
    assert c.first_index == start and np.allclose(c.samples[:, 0], [1.0, 2.0])
    dec2 = InputDecoder.from_dict(json.loads(json.dumps(dec.to_dict())))
    (c,) = dec2.feed(encode(Data.from_values(start + 2, 0, np.int32([[16], [18]]), "int16")))
    assert c.first_index == 2**32 - 1 and c.gap_before == 0  # the 32-bit index wrapped
    assert np.allclose(c.samples[:, 0], [3.0, 4.0]) and dec2.info.units == ("mV",)


@pytest.mark.parametrize("back", [4097, 100_000, 2**31 - 1])
def test_decoder_drops_a_frame_from_far_back_and_restarts_only_on_a_new_session(back):
    """A DATA frame replayed from far behind is stale, not a restart: dropped and counted, and
    the next real frame continues with no phantom gap. A HELLO of a new session is a restart."""
    hello = Hello(1, 250, 1, SampleFormat.INT16, "dev", "fw", (1.0,), (0.0,), ("mV",), ("I",))

    def data(first: int) -> bytes:
        return encode(Data.from_values(first, 0, np.int32([[1], [2]]), "int16"))

    dec = InputDecoder()
    start = 200_000
    (c,) = dec.feed(encode(hello) + data(start))
    assert dec.feed(data((start + 2 - back) & 0xFFFFFFFF)) == []  # behind the next index
    (c,) = dec.feed(data(start + 2))
    assert (c.first_index, c.gap_before, c.restarted) == (start + 2, 0, False)
    assert (dec.stats.ignored, dec.stats.gaps, dec.stats.restarts) == (1, 0, 0)
    assert dec.stats.stale_frames == 1
    rebooted = dataclasses.replace(hello, session=2)
    (c,) = dec.feed(encode(rebooted) + data(0))
    assert (c.first_index, c.restarted) == (start + 4, True) and dec.stats.restarts == 1


# ------------------------------------------------------------------------------- handover
def _processor(model, cfg: ClusterConfig) -> StreamProcessor:
    return StreamProcessor("bed1", model, FilterChain.preset("ecg-monitor", fs=FS), cfg)


def test_processor_restored_mid_stream_repeats_exactly():
    """Snapshot at k, replay from k on a new processor: the same outputs, bit for bit."""
    model = _model()
    cfg = ClusterConfig(nats="nats://127.0.0.1:1", partitions=1, model="m", fs=FS)
    x = _signal(1, 400)
    msgs = [encode_batch(a, x[a : a + BATCH]) for a in range(0, 400, BATCH)]
    one = _processor(model, cfg)
    whole = [one.process(m, seq)[0].outputs for seq, m in enumerate(msgs, start=1)]
    assert np.allclose(np.concatenate(whole), _reference(model, x), atol=1e-5)
    first = _processor(model, cfg)
    for seq, m in enumerate(msgs[:7], start=1):
        first.process(m, seq)
    blob = first.snapshot()
    for seq, m in enumerate(msgs[7:10], start=8):  # processed, then lost with the worker
        first.process(m, seq)
    second = _processor(model, cfg)
    second.restore(blob)
    assert second.last_seq == 7
    for seq, m in enumerate(msgs[7:], start=8):
        (block,) = second.process(m, seq)
        assert block.first_index == (seq - 1) * BATCH
        assert np.array_equal(block.outputs, whole[seq - 1])


def test_state_record_rejects_corruption():
    blob = pack_state(9, {"a": 1}, b"F" * 8, b"S" * 16)
    assert unpack_state(blob) == (9, {"a": 1}, b"F" * 8, b"S" * 16)
    bad = bytearray(blob)
    bad[30] ^= 1
    with pytest.raises(SnapshotError):
        unpack_state(bytes(bad))


def test_cluster_config_names_the_bad_field():
    with pytest.raises(ConfigError, match="partitions"):
        ClusterConfig(nats="nats://x", partitions=0, model="m")
    with pytest.raises(ConfigError, match="partition_mode"):
        ClusterConfig(nats="nats://x", partitions=2, model="m", partition_mode="kafka")


def test_cluster_toml_table(tmp_path):
    from streamgru.cluster.settings import load_cluster_file

    path = tmp_path / "site.toml"
    path.write_text(
        '[cluster]\nnats = "nats://127.0.0.1:4222"\npartitions = 8\nmodel = "m.safetensors"\n'
        'filter = "ecg-monitor"\nfs = 250\nlease_ttl_s = 5\n[logging]\nlevel = "debug"\n'
    )
    cfg, log_table = load_cluster_file(path)
    assert (cfg.partitions, cfg.fs, cfg.lease_ttl_s, log_table) == (8, 250, 5, {"level": "debug"})
    assert cfg.model == str(tmp_path / "m.safetensors")
    path.write_text('[cluster]\nnats = "nats://h"\npartitions = "8"\nmodel = "m"\n')
    with pytest.raises(ConfigError, match=r"^cluster\.partitions: expected int"):
        load_cluster_file(path)
    path.write_text('[cluster]\nnats = "nats://h"\npartitions = 8\nmodel = "m"\nleese_ttl_s = 1\n')
    with pytest.raises(ConfigError, match=r"^cluster\.leese_ttl_s: unknown key"):
        load_cluster_file(path)
    path.write_text('[[stream]]\nid = "a"\n')
    assert load_cluster_file(path) is None


# ------------------------------------------------------------------------------- real cluster
@pytest.fixture()
def nats_server():
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with NatsServer(partitions=N_PARTITIONS) as server:
        yield server


def _start_worker(server, model_path: Path, worker_id: str, log_dir: Path, partitions: int):
    cmd = [
        sys.executable,
        "-m",
        "streamgru.cluster",
        "--nats",
        server.url,
        "--partitions",
        str(partitions),
        "--model",
        str(model_path),
        "--filter",
        "ecg-monitor",
        "--fs",
        str(FS),
        "--worker-id",
        worker_id,
        "--lease-ttl",
        str(LEASE_TTL_S),
        "--snapshot-interval",
        str(SNAPSHOT_INTERVAL_S),
        "--fetch-batch",
        "64",
    ]
    log = open(log_dir / f"{worker_id}.log", "wb")  # closed by _stop()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def _stop(proc, timeout: float = 20.0) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            return None
    proc.log.close()
    return proc.returncode


async def _owners(kv) -> dict[str, str]:
    from nats.js.errors import NoKeysError

    try:
        keys = await kv.keys()
    except NoKeysError:
        return {}
    out = {}
    for key in keys:
        try:
            out[key] = (await kv.get(key)).value.decode()
        except Exception:  # expired between keys() and get()
            pass
    return out


async def _wait_for(predicate, timeout: float, what: str, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _pick_streams(n: int) -> list[str]:
    """Stream ids spread over all partitions (at most one per partition)."""
    out, used = [], set()
    for k in range(1000):
        sid = f"bed{k}"
        if partition_of(sid, N_PARTITIONS) not in used:
            used.add(partition_of(sid, N_PARTITIONS))
            out.append(sid)
        if len(out) == n:
            return out
    raise AssertionError("no spread of stream ids")


async def _scenario(server, model, model_path: Path, log_dir: Path) -> dict:
    import nats

    streams = _pick_streams(4)
    signals = {sid: _signal(k) for k, sid in enumerate(streams)}
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await js.add_stream(name="SG_OUT", subjects=["sg.out.>"])
    a = _start_worker(server, model_path, "wa", log_dir, N_PARTITIONS)
    procs = [a]
    t0 = time.monotonic()
    timeline: list[tuple[str, float]] = []
    result: dict = {"timeline": timeline}

    def mark(what: str) -> None:
        timeline.append((what, round(time.monotonic() - t0, 2)))

    async def holding(counts: dict[str, int]):
        assert all(p.poll() is None for p in procs), "a worker exited"
        held = [v for k, v in (await _owners(owners_kv)).items() if k.startswith("p.")]
        return all(held.count(w) == n for w, n in counts.items())

    rounds = list(range(0, N_SAMPLES, BATCH))
    published_at: dict[int, float] = {}  # first index of a round -> when it was published
    result["published_at"] = published_at
    joined_at, killed_at = len(rounds) // 4, len(rounds) // 2
    try:
        owners_kv = await _wait_for(lambda: _bucket(js, "sg_owners"), 60, "the owners bucket")
        await _wait_for(lambda: holding({"wa": 4}), 60, "worker a holding all partitions")
        mark("a alone")
        for k, first in enumerate(rounds):
            if k == joined_at:  # b joins: a hands two partitions over, state and all
                procs.append(b := _start_worker(server, model_path, "wb", log_dir, N_PARTITIONS))
                await _wait_for(lambda: holding({"wa": 2, "wb": 2}), 60, "two partitions each")
                mark("balanced")
                # longer than the replay bound: a worker that never snapshotted would replay
                # samples published before this pause, and fail the bound
                await asyncio.sleep(SNAPSHOT_INTERVAL_S + REPLAY_SLACK_S + 0.5)
            if k == killed_at:
                held = await _owners(owners_kv)
                result["a_owned"] = sorted(p for p, v in held.items() if v == "wa")
                a.kill()  # SIGKILL: no final snapshot, leases left to expire
                a.wait(timeout=10)
                mark("killed")
            for sid in streams:
                await js.publish(
                    input_subject(sid), encode_batch(first, signals[sid][first:][:BATCH])
                )
            published_at[first] = time.monotonic()
            await asyncio.sleep(0.02)
        mark("published")

        sub = await js.pull_subscribe("sg.out.>", stream="SG_OUT")
        seen: dict[str, dict[int, np.ndarray]] = {sid: {} for sid in streams}
        result["repeats"] = 0
        result["repeated"] = repeated = {sid: [] for sid in streams}

        async def complete():
            try:
                msgs = await sub.fetch(500, timeout=0.5)
            except asyncio.TimeoutError:
                msgs = []
            for msg in msgs:
                sid = msg.subject.rsplit(".", 1)[1]
                first, out = decode_predictions(msg.data)
                for i, row in enumerate(out):
                    prev = seen[sid].get(first + i)
                    if prev is not None:
                        result["repeats"] += 1
                        repeated[sid].append(first + i)
                        assert np.array_equal(prev, row), f"{sid}[{first + i}] repeated differently"
                    seen[sid][first + i] = row
            return all(len(v) >= N_SAMPLES for v in seen.values())

        await _wait_for(complete, 45, "every sample's prediction", step=0.0)
        mark("complete")
        result["seen"] = seen
        result["signals"] = signals
        result["owners_after"] = await _owners(owners_kv)
        b_code = _stop(b)
        result["b_code"] = b_code
        mark("stopped")
        result["owners_stopped"] = await _owners(owners_kv)
        state = await js.key_value("sg_state")
        result["markers"] = {
            p: json.loads((await state.get(f"m.{p}")).value) for p in range(N_PARTITIONS)
        }
        info = await js.stream_info("SG_IN")
        result["last_in_seq"] = info.state.last_seq
    finally:
        for proc in procs:
            _stop(proc, timeout=5)
        await nc.close()
    return result


async def _bucket(js, name):
    try:
        return await js.key_value(name)
    except Exception:
        return None


def _tails(log_dir: Path) -> str:
    return "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in log_dir.glob("*.log")
    )


@pytest.fixture()
def plain_nats_server():
    """A server without the partition mapping (a single daemon reading sg.in.<id>)."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with NatsServer(partitions=None) as server:
        yield server


def test_nats_source_and_sink_round_trip(plain_nats_server):
    import nats

    from streamgru.io.nats_io import open_nats_sink, open_nats_source

    x = np.arange(50, dtype=np.float32)
    with (
        open_nats_source(f"{plain_nats_server.url}/sg.in.bed1?fs=250") as src,
        open_nats_sink(f"{plain_nats_server.url}/sg.out.>", format="json") as sink,
    ):

        async def exchange():
            nc = await nats.connect(plain_nats_server.url)
            sub = await nc.subscribe("sg.out.bed1")
            await nc.flush()
            await nc.publish("sg.in.bed1", encode_batch(100, x[:20]))
            await nc.publish("sg.in.bed1", encode_batch(130, x[30:]))
            await nc.flush()
            chunks = [src.read(timeout=5.0), src.read(timeout=5.0)]
            sink.write(PredictionBlock("bed1", 7, 0.0, np.float32([[1.5], [2.5]])))
            sink.flush()
            msg = await sub.next_msg(timeout=5.0)
            await nc.close()
            return chunks, msg

        (c1, c2), msg = asyncio.run(asyncio.wait_for(exchange(), 30))
    assert (c1.first_index, c1.n_samples, c2.first_index, c2.gap_before) == (100, 20, 130, 10)
    assert np.array_equal(c2.samples[:, 0], x[30:]) and src.info.fs == 250
    assert src.stats.gaps == 1 and src.stats.samples_lost == 10
    first, out = decode_predictions(msg.data)
    assert first == 7 and np.array_equal(out, np.float32([[1.5], [2.5]]))


@pytest.mark.slow
def test_two_workers_one_killed_every_prediction_emitted(nats_server, tmp_path):
    model = _model()
    model_path = tmp_path / "tiny.safetensors"
    model.save(model_path)
    _reference(model, _signal(0, 50))  # compile (and cache) the kernels before the workers start
    try:
        r = asyncio.run(asyncio.wait_for(_scenario(nats_server, model, model_path, tmp_path), 150))
    except BaseException:
        print(_tails(tmp_path))
        raise
    assert r["a_owned"], "the killed worker owned no partition"
    for sid, rows in r["seen"].items():
        assert sorted(rows) == list(range(N_SAMPLES)), f"{sid}: missing predictions"
        got = np.stack([rows[i] for i in range(N_SAMPLES)])
        np.testing.assert_allclose(got, _reference(model, r["signals"][sid]), rtol=1e-4, atol=1e-5)
    held = {k: v for k, v in r["owners_after"].items() if k.startswith("p.")}
    assert held == {f"p.{p}": "wb" for p in range(N_PARTITIONS)}, "survivor took all partitions"
    # SIGTERM on the survivor: exit 0, leases given back, every partition's marker at the end.
    assert r["b_code"] == 0, _tails(tmp_path)
    assert not r["owners_stopped"], f"leases left after a clean stop: {r['owners_stopped']}"
    assert all(m["worker"] == "wb" for m in r["markers"].values())
    assert max(m["seq"] for m in r["markers"].values()) == r["last_in_seq"]
    # Replays are bounded by the snapshot interval: per stream, the repeated samples were all
    # published within one interval (plus slack) of each other.
    spans = {
        sid: _published_span(r["published_at"], idx) for sid, idx in r["repeated"].items() if idx
    }
    bound = SNAPSHOT_INTERVAL_S + REPLAY_SLACK_S
    assert all(span <= bound for span in spans.values()), (
        f"replayed samples published over {spans} s after the kill; the snapshot interval "
        f"{SNAPSHOT_INTERVAL_S} s bounds them to {bound} s"
    )
    print(
        f"repeated predictions after the kill: {r['repeats']}, published over {spans} s "
        f"(bound {bound} s); timeline {r['timeline']}"
    )


def _published_span(published_at: dict[int, float], indices: list[int]) -> float:
    """Seconds between the publication of the first and the last of ``indices``."""
    start = published_at[min(indices) // BATCH * BATCH]
    end = published_at[max(indices) // BATCH * BATCH]
    return round(end - start, 3)


def test_worker_refuses_a_partition_count_the_server_does_not_map(nats_server, tmp_path):
    model = _model()
    model_path = tmp_path / "tiny.safetensors"
    model.save(model_path)
    proc = _start_worker(nats_server, model_path, "wx", tmp_path, N_PARTITIONS + 1)
    try:
        code = proc.wait(timeout=60)
    finally:
        _stop(proc, timeout=5)
    text = (tmp_path / "wx.log").read_text()
    assert code == 78, text
    assert "partition" in text
