"""Throughput of one cluster worker: how many streams at 250 Hz and at 1 kHz one worker keeps up with.

Run: ``python bench/bench_cluster.py [--streams 200] [--seconds 10] [--hidden 64]``
(needs ``nats-server`` on PATH and nats-py). A real ``nats-server -js`` is started on a free
127.0.0.1 port; K streams x ``seconds`` of signal are published into SG_IN first (SGN1 batches
of 40 ms: 10 samples at 250 Hz, 40 at 1 kHz), then one worker (in this process: the whole
path of ``python -m streamgru.cluster``: fetch, decode, ecg-monitor filter, GRU, SGP1
encode, publish, KV snapshots every 5 s) drains them as fast as it can. Start-up and kernel
compilation are outside the timing, which runs from the first prediction to the last.

``streams_per_worker = samples_per_s / fs``. The server runs on the same cores, so the figure
includes its share, as it would on a small box; on a shared machine, treat it as a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from nats_server import NatsServer, skip_reason  # noqa: E402

import streamgru as sg  # noqa: E402
from streamgru.cluster.infra import ensure_infrastructure  # noqa: E402
from streamgru.cluster.settings import ClusterConfig  # noqa: E402
from streamgru.cluster.state import StreamProcessor, build_filter  # noqa: E402
from streamgru.cluster.worker import Worker  # noqa: E402
from streamgru.io.nats_io import encode_batch, input_subject  # noqa: E402


def make_model(path: Path, hidden: int, seed: int = 0) -> None:
    """A seeded I=1, L=1 GRU with a 1-output sigmoid head, saved as safetensors."""
    rng = np.random.default_rng(seed)
    sd = {
        "gru.weight_ih_l0": rng.normal(0, 0.3, (3 * hidden, 1)),
        "gru.weight_hh_l0": rng.normal(0, 0.3 / np.sqrt(hidden), (3 * hidden, hidden)),
        "gru.bias_ih_l0": rng.normal(0, 0.1, 3 * hidden),
        "gru.bias_hh_l0": rng.normal(0, 0.1, 3 * hidden),
        "fc.weight": rng.normal(0, 0.3, (1, hidden)),
        "fc.bias": np.zeros(1),
    }
    sg.GRUModel.from_state_dict(sd, metadata={"head_activation": "sigmoid"}).save(path)


async def _publish(js, nc, n_streams: int, n_samples: int, per_msg: int) -> int:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(n_samples).astype(np.float32)
    n_msgs = 0
    for first in range(0, n_samples, per_msg):
        block = x[first : first + per_msg]
        for k in range(n_streams):
            await nc.publish(input_subject(f"s{k}"), encode_batch(first, block))
            n_msgs += 1
        if first % (per_msg * 50) == 0:
            await nc.flush()
    await nc.flush()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (await js.stream_info("SG_IN")).state.messages >= n_msgs:
            return n_msgs
        await asyncio.sleep(0.1)
    raise RuntimeError("SG_IN did not receive every message in 120 s")


async def measure(url: str, model_path: Path, fs: float, n_streams: int, seconds: float) -> dict:
    """Publish, then time one worker draining SG_IN; returns the figures."""
    from streamgru.io.nats_io import connect

    per_msg = round(0.04 * fs)
    n_samples = int(seconds * fs) // per_msg * per_msg
    cfg = ClusterConfig(
        nats=url,
        partitions=1,
        model=str(model_path),
        filter="ecg-monitor",
        fs=fs,
        worker_id="bench",
        lease_ttl_s=10.0,
        snapshot_interval_s=5.0,
        partition_mode="server",
    )
    nc = await connect(url)
    js = nc.jetstream()
    await ensure_infrastructure(js, cfg)
    n_msgs = await _publish(js, nc, n_streams, n_samples, per_msg)
    await nc.close()

    model = sg.load_model(model_path)
    template = build_filter(cfg, model)
    StreamProcessor("_warm", model, template, cfg)._run(np.zeros((per_msg, 1), np.float32))
    worker = Worker(cfg, model, template)
    await worker.start()
    task = asyncio.create_task(worker.run())
    total = n_streams * n_samples
    deadline = time.monotonic() + 600
    while worker.counts["samples"] == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.002)
    t0, s0 = time.monotonic(), worker.counts["samples"]
    while worker.counts["samples"] < total and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    t1, s1 = time.monotonic(), worker.counts["samples"]
    worker.stopping.set()
    await asyncio.wait_for(task, 60)
    rate = (s1 - s0) / (t1 - t0)
    return {
        "fs": fs,
        "streams_published": n_streams,
        "samples_per_message": per_msg,
        "messages": n_msgs,
        "samples": s1,
        "seconds": round(t1 - t0, 3),
        "samples_per_s": round(rate),
        "messages_per_s": round(rate / per_msg),
        "streams_per_worker": round(rate / fs),
        "complete": s1 >= total,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0, help="signal per stream")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--rates", default="250,1000")
    ap.add_argument("--repeats", type=int, default=3, help="runs per rate (median reported)")
    args = ap.parse_args()
    reason = skip_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "bench.safetensors"
        make_model(model_path, args.hidden)
        for fs in (float(r) for r in args.rates.split(",")):
            runs = []
            for _ in range(args.repeats):
                with NatsServer(partitions=1) as server:
                    res = asyncio.run(
                        measure(server.url, model_path, fs, args.streams, args.seconds)
                    )
                res.update(
                    hidden_size=args.hidden,
                    cpus=os.cpu_count(),
                    load_avg_1m=round(os.getloadavg()[0], 2),
                )
                print(json.dumps(res))
                runs.append(res)
            results.append(runs)
    for runs in results:
        rates = sorted(r["samples_per_s"] for r in runs)
        fs, per = runs[0]["fs"], runs[0]["samples_per_message"]
        med = rates[len(rates) // 2]
        print(
            f"{fs:g} Hz, {per} samples/msg, H={args.hidden}: median {med:,} samples/s "
            f"(runs {', '.join(f'{r:,}' for r in rates)}) -> ~{round(med / fs)} streams per "
            f"worker (range {round(rates[0] / fs)}-{round(rates[-1] / fs)}); load "
            f"{', '.join(str(r['load_avg_1m']) for r in runs)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
