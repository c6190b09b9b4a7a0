"""Worker mode: streams partitioned over workers on NATS JetStream, state handed over on failure.

Run one worker per core::

    python -m streamgru.runtime.cluster --nats nats://127.0.0.1:4222 --partitions 16 \\
        --model weights/model.safetensors --filter ecg-monitor --fs 250

Layout on the server (created by the first worker; see ``docs/scale-out.md``):

* stream ``SG_IN`` on ``sg.part.*.*``: devices publish on ``sg.in.<id>``, and the server's mapping
  ``sg.in.* -> sg.part.{{partition(N,1)}}.{{wildcard(1)}}`` puts each stream in a partition
  (``--partition-mode publisher``: devices publish on ``sg.part.<p>.<id>`` themselves, with the
  same FNV-1a hash, :func:`streamgru.io.nats_io.partition_of`). Limits retention, ``max_age`` =
  the replay window.
* KV ``sg_owners`` (TTL = lease TTL): ``w.<worker>`` presence and ``p.<p>`` partition leases,
  renewed by compare-and-set every TTL/4. A dead worker's leases expire after the TTL.
* KV ``sg_state``: ``cluster`` (the partition count, checked), ``m.<p>`` the partition's marker
  (the stream sequence up to which every stream's state is written), ``s.<id>`` each stream's
  state (:func:`pack_state`).

Owning partition p at lease revision e: bump ``m.<p>`` (compare-and-set: a stale owner's next
write fails), delete older consumers of p, create the durable pull consumer ``sg_p<p>_<e>``
starting at marker + 1, then process in stream order. A stream's state is loaded from ``s.<id>``
on its first message; a message at or below the state's own ``last_seq`` is already in it and is
skipped. Every ``--snapshot-interval`` seconds: flush outputs, write the dirty streams' states and
then the marker (both compare-and-set), then ack (AckAll) the last message: at least once, and a
repeated output carries the same index and the same values, since it comes from the same state
and the same messages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import re
import signal
import socket
import struct
import sys
import time
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from ..errors import ConfigError, ShapeError, SnapshotError, StreamgruError, WeightsError
from ..io.chunk import PredictionBlock
from ..io.nats_io import (
    IN_PREFIX,
    OUTPUT_FORMATS,
    PART_PREFIX,
    InputDecoder,
    check_stream_id,
    connect,
    encode_predictions,
    output_subject,
    partition_mapping,
    partition_of,
)
from .config import GAP_POLICIES, NAN_POLICIES
from .logs import get_logger, log, setup_logging
from .policies import GapPolicy, NanPolicy

IN_STREAM = "SG_IN"
OUT_STREAM = "SG_OUT"
OWNERS_BUCKET = "sg_owners"
STATE_BUCKET = "sg_state"
PARTITION_MODES = ("server", "publisher")
SERVER_SCHEMES = ("nats", "tls", "ws", "wss")
EXIT_CONFIG = 78

_LOG = get_logger("cluster")
_STATE = struct.Struct("<4sHHQIII")
_STATE_MAGIC = b"SGC1"
_STATE_VERSION = 1
_PROBES = 8


# ------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class ClusterConfig:
    """Settings of one worker (every worker of a cluster uses the same partitions and model)."""

    nats: str
    partitions: int
    model: str
    filter: str = "model"  # "model", "none" or a preset name (with fs)
    fs: float | None = None
    mains: int = 50
    worker_id: str = ""
    lease_ttl_s: float = 10.0
    snapshot_interval_s: float = 5.0
    partition_mode: str = "server"
    replay_window_s: float = 24 * 3600.0
    keep_outputs_s: float = 0.0
    output_format: str = "sgp1"
    gap_policy: str = "hold"
    gap_fill_max_s: float = 0.0
    nan_policy: str = "hold"
    fetch_batch: int = 256

    def __post_init__(self) -> None:
        _check_server_url(self.nats)
        if self.partitions < 1:
            raise ConfigError(f"partitions: expected an integer >= 1, got {self.partitions}")
        if not self.worker_id:
            object.__setattr__(self, "worker_id", f"{socket.gethostname()}-{os.getpid()}")
        if not re.match(r"^[A-Za-z0-9_-]{1,64}$", self.worker_id):
            raise ConfigError(f"worker_id: expected 1-64 of [A-Za-z0-9_-], got {self.worker_id!r}")
        if self.lease_ttl_s < 1.0:
            raise ConfigError(f"lease_ttl_s: expected >= 1 s, got {self.lease_ttl_s}")
        if not 0 < self.snapshot_interval_s:
            raise ConfigError(f"snapshot_interval_s: expected > 0, got {self.snapshot_interval_s}")
        for name, value, choices in (
            ("partition_mode", self.partition_mode, PARTITION_MODES),
            ("output_format", self.output_format, OUTPUT_FORMATS),
            ("gap_policy", self.gap_policy, GAP_POLICIES),
            ("nan_policy", self.nan_policy, NAN_POLICIES),
        ):
            if value not in choices:
                raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")


def _check_server_url(url: str) -> None:
    """A NATS server URL: ``nats://host[:port]`` (``tls``, ``ws``, ``wss`` too), no subject."""
    parts = urlsplit(url) if isinstance(url, str) else None
    try:
        ok = (
            parts is not None
            and parts.scheme in SERVER_SCHEMES
            and bool(parts.hostname)
            and parts.path.strip("/") == ""
            and parts.port != 0
        )
    except ValueError:  # a port that is not a number
        ok = False
    if not ok:
        raise ConfigError(f"nats: expected a server URL like nats://host:4222, got {url!r}")


# ------------------------------------------------------------------------------- state record
def pack_state(
    last_seq: int, meta: dict[str, Any], filter_blob: bytes, stepper_blob: bytes
) -> bytes:
    """One stream's state as bytes (the value of ``s.<id>`` in ``sg_state``).

    Layout (little-endian)::

        0   4s   magic b"SGC1"
        4   u16  version (1)
        6   u16  reserved (0)
        8   u64  last_seq: SG_IN sequence of the last message in this state
        16  u32  len(meta), u32 len(filter), u32 len(stepper)
        28  meta JSON (decoder, policies, counters), filter snapshot (may be empty),
            Stepper.snapshot(), then u32 CRC-32 of everything before it
    """
    meta_raw = json.dumps(meta, separators=(",", ":")).encode()
    body = (
        _STATE.pack(_STATE_MAGIC, _STATE_VERSION, 0, last_seq, len(meta_raw), len(filter_blob),
                    len(stepper_blob))
        + meta_raw + filter_blob + stepper_blob
    )
    return body + struct.pack("<I", zlib.crc32(body))


def unpack_state(blob: bytes) -> tuple[int, dict[str, Any], bytes, bytes]:
    """Check and split :func:`pack_state` bytes: ``(last_seq, meta, filter, stepper)``."""
    blob = bytes(blob)
    if len(blob) < _STATE.size + 4:
        raise SnapshotError(f"stream state: {len(blob)} bytes, expected at least {_STATE.size + 4}")
    magic, version, _, last_seq, n_meta, n_filter, n_step = _STATE.unpack_from(blob)
    if magic != _STATE_MAGIC or version != _STATE_VERSION:
        raise SnapshotError(
            f"stream state: expected {_STATE_MAGIC!r} v{_STATE_VERSION}, got {magic!r} v{version}"
        )
    end = _STATE.size + n_meta + n_filter + n_step
    if len(blob) != end + 4 or struct.unpack_from("<I", blob, end)[0] != zlib.crc32(blob[:end]):
        raise SnapshotError(f"stream state: length or CRC mismatch ({len(blob)} bytes)")
    a = _STATE.size
    meta = json.loads(blob[a : a + n_meta])
    a += n_meta
    return last_seq, meta, blob[a : a + n_filter], blob[a + n_filter : end]


# ------------------------------------------------------------------------------- one stream
class StreamProcessor:
    """One stream's whole path: message bytes → decoder → gap/NaN policy → filter → GRU → blocks.

    Pure (no NATS): :meth:`process` takes a message and its SG_IN sequence, :meth:`snapshot` /
    :meth:`restore` carry everything (decoder index and calibration, filter ``zi``, GRU hidden
    state, NaN hold values, ``last_seq``) so that a restored processor continues bit for bit.
    """

    def __init__(
        self, stream_id: str, model: Any, filter_template: Any, cfg: ClusterConfig
    ) -> None:
        self.stream_id = stream_id
        self.stepper = model.stepper()
        self.filter = None if filter_template is None else filter_template.copy()
        self.decoder = InputDecoder()
        fs = filter_template.fs if filter_template is not None and filter_template.fs else None
        fs = fs or model.fs or 0.0
        self.gaps = GapPolicy.from_seconds(cfg.gap_policy, cfg.gap_fill_max_s, fs)
        self.nans = NanPolicy(cfg.nan_policy, model.input_size)
        self.last_seq = 0
        self.revision = 0  # KV revision of s.<id> this state was read from / written as
        self.bad_chunks = 0
        self.nan_samples = 0

    def reset_state(self) -> None:
        """Start the filter and the GRU afresh (gap or NaN policy ``reset``)."""
        self.stepper.reset()
        if self.filter is not None:
            self.filter.reset()

    def _run(self, X: np.ndarray) -> np.ndarray:
        if self.filter is not None:
            X = self.filter.process(X)
        return self.stepper.step_chunk(X)

    def process(self, payload: bytes, seq: int, t_host: float = 0.0) -> list[PredictionBlock]:
        """Run one input message (SG_IN sequence ``seq``); returns its prediction blocks."""
        blocks = []
        for chunk in self.decoder.feed(payload, t_host):
            if chunk.samples.shape[1] != self.stepper.input_size:
                self.bad_chunks += 1
                continue
            decision = self.gaps.decide(chunk.gap_before, chunk.restarted)
            if decision.action == "reset":
                self.reset_state()
            elif decision.action == "fill":
                self._run(np.tile(self.nans.last, (decision.fill, 1)))
            runs, bad = self.nans.sanitize(chunk.samples)
            self.nan_samples += bad
            for k, (offset, X) in enumerate(runs):
                if self.nans.name == "reset" and (k > 0 or offset > 0):
                    self.reset_state()
                try:
                    Y = self._run(X)
                except (ShapeError, ValueError):
                    self.bad_chunks += 1
                    continue
                first = chunk.first_index + offset
                blocks.append(PredictionBlock(self.stream_id, first, t_host, Y))
        self.last_seq = seq
        return blocks

    def snapshot(self) -> bytes:
        meta = {
            "stream": self.stream_id,
            "decoder": self.decoder.to_dict(),
            "nan_last": self.nans.snapshot(),
            "bad_chunks": self.bad_chunks,
            "nan_samples": self.nan_samples,
        }
        fblob = b"" if self.filter is None else self.filter.snapshot()
        return pack_state(self.last_seq, meta, fblob, self.stepper.snapshot())

    def restore(self, blob: bytes) -> None:
        """Restore :meth:`snapshot` bytes (the decoder first: a new model keeps the index)."""
        last_seq, meta, fblob, sblob = unpack_state(blob)
        self.decoder = InputDecoder.from_dict(meta["decoder"])
        self.last_seq = last_seq
        self.bad_chunks = int(meta.get("bad_chunks", 0))
        self.nan_samples = int(meta.get("nan_samples", 0))
        self.nans.restore(meta["nan_last"])
        if self.filter is not None and fblob:
            self.filter.restore(fblob)
        self.stepper.restore(sblob)


# ------------------------------------------------------------------------------- server objects
async def ensure_infrastructure(js: Any, cfg: ClusterConfig) -> tuple[Any, Any, float]:
    """Create (or find) SG_IN, the two KV buckets and optionally SG_OUT.

    Returns ``(owners_kv, state_kv, lease_ttl_s)``; the TTL is the bucket's own when it exists.
    """
    from nats.js import api
    from nats.js.errors import BucketNotFoundError, NotFoundError

    async def stream(name: str, subjects: list[str], max_age: float) -> None:
        try:
            await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(
                name=name, subjects=subjects, retention=api.RetentionPolicy.LIMITS,
                storage=api.StorageType.FILE, discard=api.DiscardPolicy.OLD, max_age=max_age,
            )

    async def bucket(name: str, ttl: float | None) -> Any:
        try:
            return await js.key_value(name)
        except BucketNotFoundError:
            return await js.create_key_value(bucket=name, history=1, ttl=ttl)

    await stream(IN_STREAM, [f"{PART_PREFIX}.*.*"], cfg.replay_window_s)
    if cfg.keep_outputs_s > 0:
        await stream(OUT_STREAM, ["sg.out.>"], cfg.keep_outputs_s)
    owners = await bucket(OWNERS_BUCKET, cfg.lease_ttl_s)
    state = await bucket(STATE_BUCKET, None)
    ttl = (await owners.status()).ttl or cfg.lease_ttl_s
    return owners, state, float(ttl)


async def check_cluster_key(state_kv: Any, cfg: ClusterConfig) -> None:
    """Refuse to join a cluster that was set up with another partition count."""
    from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

    want = {"partitions": cfg.partitions}
    try:
        await state_kv.create("cluster", json.dumps(want).encode())
        return
    except KeyWrongLastSequenceError:
        pass
    try:
        have = json.loads((await state_kv.get("cluster")).value)
    except KeyNotFoundError:
        return
    if have.get("partitions") != cfg.partitions:
        raise ConfigError(
            f"partitions: this cluster was set up with {have.get('partitions')} partitions "
            f"(sg_state 'cluster'), this worker has {cfg.partitions}; changing the count needs "
            "a drained cluster (docs/scale-out.md)"
        )


async def probe_mapping(nc: Any, js: Any, n_partitions: int, timeout: float = 3.0) -> None:
    """Check that the server maps ``sg.in.*`` with ``partition(n, 1)``, by publishing probes.

    Probe ids start with ``_`` (reserved: workers skip them); the empty probes stay in SG_IN
    until the replay window ages them out (purging them would look like lost messages).
    """
    ids = [f"_probe{k}" for k in range(_PROBES)]
    subs = [await nc.subscribe(f"{PART_PREFIX}.*.{sid}") for sid in ids]
    try:
        for sid in ids:
            await js.publish(f"{IN_PREFIX}.{sid}", b"", timeout=timeout)
        for sid, sub in zip(ids, subs):
            msg = await sub.next_msg(timeout=timeout)
            got = int(msg.subject.split(".")[2])
            if got != partition_of(sid, n_partitions):
                raise ConfigError(
                    f"partitions: the server maps {IN_PREFIX}.{sid} to partition {got}, but "
                    f"partition({n_partitions},1) gives {partition_of(sid, n_partitions)}: the "
                    "server's mapping uses another partition count"
                )
    except ConfigError:
        raise
    except Exception as exc:  # no mapping: a timeout or no responders
        mapping = partition_mapping(n_partitions)
        raise ConfigError(
            f"partition_mode server: no partition mapping seen on the server ({exc!r}); add "
            f"`mappings = {json.dumps(mapping)}` to the nats-server config, or run with "
            "--partition-mode publisher"
        ) from exc
    finally:
        for sub in subs:
            await sub.unsubscribe()


# ------------------------------------------------------------------------------- one partition
class PartitionLost(StreamgruError):
    """This worker no longer owns a partition (lease gone or a state write was fenced off)."""


class PartitionRunner:
    """Owns one partition for one lease epoch: takeover, processing, snapshots, release."""

    def __init__(self, worker: Worker, partition: int, epoch: int) -> None:
        self.w = worker
        self.p = partition
        self.epoch = epoch
        self.consumer = f"sg_p{partition}_{epoch}"
        self.streams: dict[str, StreamProcessor] = {}
        self.dirty: set[str] = set()
        self.last_seq = 0
        self.marker_rev = 0
        self._to_ack: Any = None
        self._stop = asyncio.Event()
        self.task: asyncio.Task | None = None

    # --------------------------------------------------------------- takeover
    async def _takeover(self) -> Any:
        from nats.js import api
        from nats.js.errors import KeyNotFoundError

        w = self.w
        key = f"m.{self.p}"
        try:
            entry = await w.state_kv.get(key)
            start, rev = int(json.loads(entry.value)["seq"]), entry.revision
        except KeyNotFoundError:
            start, rev = 0, 0
        self.last_seq = start
        self.marker_rev = await w.state_kv.update(key, self._marker(), last=rev)
        for info in await w.js.consumers_info(IN_STREAM):
            name = info.name or ""
            if name.startswith(f"sg_p{self.p}_") and name != self.consumer:
                await w.js.delete_consumer(IN_STREAM, name)
        first = (await w.js.stream_info(IN_STREAM)).state.first_seq
        if start and start + 1 < first:
            log(_LOG, logging.ERROR, "replay window exceeded", partition=self.p,
                marker=start, first_available=first)
        config = api.ConsumerConfig(
            name=self.consumer, durable_name=self.consumer,
            filter_subject=f"{PART_PREFIX}.{self.p}.*",
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE if start else api.DeliverPolicy.ALL,
            opt_start_seq=start + 1 if start else None,
            ack_policy=api.AckPolicy.ALL,
            ack_wait=max(30.0, 4 * w.cfg.snapshot_interval_s),
            max_ack_pending=-1, max_deliver=-1,
            inactive_threshold=max(60.0, 10 * w.lease_ttl),
        )
        await w.js.add_consumer(IN_STREAM, config=config)
        log(_LOG, logging.INFO, "partition taken", partition=self.p, epoch=self.epoch,
            start_seq=start + 1, worker=w.cfg.worker_id)
        return await w.js.pull_subscribe_bind(durable=self.consumer, stream=IN_STREAM)

    def _marker(self) -> bytes:
        return json.dumps(
            {"seq": self.last_seq, "epoch": self.epoch, "worker": self.w.cfg.worker_id}
        ).encode()

    # --------------------------------------------------------------- processing
    async def run(self) -> None:
        """Take the partition over and process it until stopped; flushes on a graceful stop."""
        sub = await self._takeover()
        next_flush = time.monotonic() + self.w.cfg.snapshot_interval_s
        while not self._stop.is_set():
            try:
                msgs = await sub.fetch(self.w.cfg.fetch_batch, timeout=0.25)
            except asyncio.TimeoutError:
                msgs = []
            for msg in msgs:
                await self._handle(msg)
            if msgs:
                self._to_ack = msgs[-1]
            if time.monotonic() >= next_flush:
                await self.flush()
                next_flush = time.monotonic() + self.w.cfg.snapshot_interval_s
        await self.flush()
        await sub.unsubscribe()
        await self.w.js.delete_consumer(IN_STREAM, self.consumer)

    async def _handle(self, msg: Any) -> None:
        sid = msg.subject.rsplit(".", 1)[-1]
        seq = msg.metadata.sequence.stream
        self.last_seq = max(self.last_seq, seq)
        if sid.startswith("_"):
            return
        proc = self.streams.get(sid)
        if proc is None:
            try:
                check_stream_id(sid)
            except ConfigError:
                self.w.counts["bad_ids"] += 1
                return
            proc = self.streams[sid] = await self._load(sid)
        if seq <= proc.last_seq:
            self.w.counts["skipped"] += 1
            return
        blocks = proc.process(msg.data, seq, time.monotonic())
        subject = output_subject(sid)
        fmt = self.w.cfg.output_format
        for block in blocks:
            await self.w.nc.publish(subject, encode_predictions(block, fmt))
            self.w.counts["samples"] += block.n_samples
        self.w.counts["messages"] += 1
        self.dirty.add(sid)

    async def _load(self, sid: str) -> StreamProcessor:
        from nats.js.errors import KeyNotFoundError

        proc = self.w.new_processor(sid)
        try:
            entry = await self.w.state_kv.get(f"s.{sid}")
        except KeyNotFoundError:
            return proc
        proc.revision = entry.revision
        try:
            proc.restore(entry.value)
        except (SnapshotError, KeyError, ValueError) as exc:
            log(_LOG, logging.WARNING, "stream state not usable, starting afresh", stream=sid,
                error=str(exc))
            fresh = self.w.new_processor(sid)
            fresh.revision, fresh.last_seq = entry.revision, proc.last_seq
            fresh.decoder = proc.decoder  # restored first: the index survives a model change
            return fresh
        return proc

    # --------------------------------------------------------------- snapshots
    async def flush(self) -> None:
        """Outputs to the server, dirty states, marker (all fenced), then ack: in this order."""
        from nats.js.errors import KeyWrongLastSequenceError

        if not self.dirty and self._to_ack is None:
            return
        if not self.w.lease_valid(self.p):
            return  # the renewal decides; nothing is acked meanwhile
        w = self.w
        await w.nc.flush(timeout=10)
        names = sorted(self.dirty)
        try:
            for k in range(0, len(names), 128):
                part = [self.streams[n] for n in names[k : k + 128]]
                revs = await asyncio.gather(*(
                    w.state_kv.update(f"s.{p.stream_id}", p.snapshot(), last=p.revision)
                    for p in part
                ))
                for proc, rev in zip(part, revs):
                    proc.revision = rev
            self.marker_rev = await w.state_kv.update(
                f"m.{self.p}", self._marker(), last=self.marker_rev
            )
        except KeyWrongLastSequenceError as exc:
            raise PartitionLost(f"partition {self.p}: a state write was fenced off") from exc
        self.dirty.clear()
        if self._to_ack is not None:
            await self._to_ack.ack()
            self._to_ack = None
        w.counts["snapshots"] += 1

    def stop(self) -> None:
        """Ask for a graceful stop (final flush, consumer deleted)."""
        self._stop.set()


# ------------------------------------------------------------------------------- the worker
class Worker:
    """Keeps leases, runs a :class:`PartitionRunner` per owned partition, balances by count."""

    def __init__(self, cfg: ClusterConfig, model: Any, filter_template: Any) -> None:
        self.cfg = cfg
        self.model = model
        self.filter_template = filter_template
        self.nc: Any = None
        self.js: Any = None
        self.owners_kv: Any = None
        self.state_kv: Any = None
        self.lease_ttl = cfg.lease_ttl_s
        self.runners: dict[int, PartitionRunner] = {}
        self.releases: dict[int, asyncio.Task] = {}  # partitions being handed back
        self.leases: dict[int, tuple[int, float]] = {}  # p -> (revision, valid-until monotonic)
        self.counts = dict.fromkeys(
            ("messages", "samples", "skipped", "bad_ids", "snapshots", "taken", "lost"), 0
        )
        self.stopping = asyncio.Event()

    def new_processor(self, stream_id: str) -> StreamProcessor:
        return StreamProcessor(stream_id, self.model, self.filter_template, self.cfg)

    def lease_valid(self, p: int) -> bool:
        lease = self.leases.get(p)
        return lease is not None and time.monotonic() < lease[1]

    # --------------------------------------------------------------- start / stop
    async def start(self) -> None:
        cfg = self.cfg
        self.nc = await connect(cfg.nats, name=f"streamgru-worker-{cfg.worker_id}")
        self.js = self.nc.jetstream()
        self.owners_kv, self.state_kv, self.lease_ttl = await ensure_infrastructure(self.js, cfg)
        await check_cluster_key(self.state_kv, cfg)
        if cfg.partition_mode == "server":
            await probe_mapping(self.nc, self.js, cfg.partitions)
        await self._heartbeat_presence()
        log(_LOG, logging.INFO, "worker ready", worker=cfg.worker_id, partitions=cfg.partitions,
            lease_ttl_s=self.lease_ttl)

    async def _heartbeat_presence(self) -> None:
        await self.owners_kv.put(f"w.{self.cfg.worker_id}", str(os.getpid()).encode())

    async def run(self) -> None:
        """Balance and renew until :attr:`stopping` is set, then stop gracefully."""
        period = self.lease_ttl / 4
        await asyncio.sleep(period)  # let workers started together see each other first
        next_report = time.monotonic() + 30.0
        while not self.stopping.is_set():
            try:
                await self._round()
            except Exception as exc:  # a lost round is retried next period
                log(_LOG, logging.WARNING, "coordination round failed", error=repr(exc))
            if time.monotonic() >= next_report:
                log(_LOG, logging.INFO, "stats", worker=self.cfg.worker_id,
                    owned=sorted(self.runners), **self.counts)
                next_report = time.monotonic() + 30.0
            try:
                await asyncio.wait_for(self.stopping.wait(), period)
            except asyncio.TimeoutError:
                pass
        await self.shutdown()

    async def shutdown(self) -> None:
        """Renew once, release every partition together (final snapshots), leave."""
        await self._renew()
        for p in list(self.runners):
            self._start_release(p)
        await asyncio.gather(*list(self.releases.values()), return_exceptions=True)
        try:
            await self.owners_kv.delete(f"w.{self.cfg.worker_id}")
        finally:
            await self.nc.drain()
        log(_LOG, logging.INFO, "worker stopped", worker=self.cfg.worker_id, **self.counts)

    # --------------------------------------------------------------- leases
    async def _renew(self) -> None:
        """Compare-and-set every owned lease (and the presence key); a failed one is abandoned."""
        from nats.js.errors import KeyWrongLastSequenceError

        await self._heartbeat_presence()
        for p in list(self.runners):
            runner = self.runners[p]
            if p not in self.releases and runner.task is not None and runner.task.done():
                self._drop(p, runner)
                continue
            sent = time.monotonic()
            try:
                rev = await self.owners_kv.update(
                    f"p.{p}", self.cfg.worker_id.encode(), last=self.leases[p][0]
                )
                self.leases[p] = (rev, sent + 0.75 * self.lease_ttl)
            except KeyWrongLastSequenceError:
                log(_LOG, logging.WARNING, "lease lost", partition=p)
                if runner.task is not None:
                    runner.task.cancel()
                self._drop(p, runner)
                self.counts["lost"] += 1

    async def _round(self) -> None:
        """Renew, then release or acquire partitions towards ceil(N / live workers)."""
        from nats.js.errors import NoKeysError

        await self._renew()
        try:
            keys = await self.owners_kv.keys()
        except NoKeysError:
            keys = []
        workers = sum(1 for k in keys if k.startswith("w.")) or 1
        leased = {int(k[2:]) for k in keys if k.startswith("p.")}
        target = math.ceil(self.cfg.partitions / workers)
        active = sorted(p for p in self.runners if p not in self.releases)
        for p in active[target:]:
            self._start_release(p)
        owned = min(len(active), target)
        offset = zlib.crc32(self.cfg.worker_id.encode()) % self.cfg.partitions
        for k in range(self.cfg.partitions):
            if owned >= target:
                break
            p = (offset + k) % self.cfg.partitions
            if p not in leased and p not in self.runners and await self._acquire(p):
                owned += 1

    async def _acquire(self, p: int) -> bool:
        from nats.js.errors import KeyWrongLastSequenceError

        sent = time.monotonic()
        try:
            rev = await self.owners_kv.create(f"p.{p}", self.cfg.worker_id.encode())
        except KeyWrongLastSequenceError:
            return False
        self.leases[p] = (rev, sent + 0.75 * self.lease_ttl)
        runner = self.runners[p] = PartitionRunner(self, p, rev)
        runner.task = asyncio.create_task(self._guard(runner))
        self.counts["taken"] += 1
        return True

    async def _guard(self, runner: PartitionRunner) -> None:
        """Run a partition; any failure abandons it (state dropped, lease given back)."""
        try:
            await runner.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the partition is rebuilt from KV by its next owner
            log(_LOG, logging.WARNING, "partition abandoned", partition=runner.p, error=repr(exc))
            self.counts["lost"] += 1
            if runner.p not in self.releases:
                await self._give_back(runner.p, runner)

    def _drop(self, p: int, runner: PartitionRunner) -> tuple[int, float] | None:
        """Forget a partition (if ``runner`` still owns it); returns its lease."""
        if self.runners.get(p) is not runner:
            return None
        del self.runners[p]
        return self.leases.pop(p, None)

    async def _give_back(self, p: int, runner: PartitionRunner) -> None:
        lease = self._drop(p, runner)
        if lease is not None:
            try:
                await self.owners_kv.delete(f"p.{p}", last=lease[0])
            except Exception:  # it expires anyway
                pass

    def _start_release(self, p: int) -> None:
        """Begin handing a partition back; its lease is renewed until the final snapshot."""
        runner = self.runners.get(p)
        if runner is None or p in self.releases:
            return
        runner.stop()
        self.releases[p] = asyncio.create_task(self._finish_release(p, runner))

    async def _finish_release(self, p: int, runner: PartitionRunner) -> None:
        try:
            if runner.task is not None:
                await asyncio.wait_for(asyncio.shield(runner.task), 30.0)
        except Exception as exc:  # the next owner replays from the marker
            log(_LOG, logging.WARNING, "release incomplete", partition=p, error=repr(exc))
            if runner.task is not None:
                runner.task.cancel()
        finally:
            await self._give_back(p, runner)
            self.releases.pop(p, None)
        log(_LOG, logging.INFO, "partition released", partition=p)


# ------------------------------------------------------------------------------- entry points
def build_filter(cfg: ClusterConfig, model: Any) -> Any:
    """The FilterChain template for every stream (None for no filter)."""
    from ..signal.chain import FilterChain

    if cfg.filter == "none":
        return None
    if cfg.filter == "model":
        spec = model.meta_json("filter")
        return None if not spec else FilterChain.from_dict(spec)
    fs = cfg.fs or model.fs
    if not fs:
        raise ConfigError(f"fs: filter preset {cfg.filter!r} needs --fs (the model has no fs)")
    return FilterChain.preset(cfg.filter, fs=fs, mains=cfg.mains, n_channels=model.input_size)


async def run_worker(cfg: ClusterConfig) -> int:
    """Load, warm, join, work until SIGTERM/SIGINT; returns the exit code."""
    from ..model import load_model

    model = load_model(cfg.model)
    template = build_filter(cfg, model)
    warm = StreamProcessor("_warm", model, template, cfg)
    warm._run(np.zeros((4, model.input_size), dtype=np.float32))
    worker = Worker(cfg, model, template)
    loop = asyncio.get_running_loop()
    starting = asyncio.create_task(worker.start())
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            os._exit(1)  # a second signal: no more waiting
        if not starting.done():
            starting.cancel()  # e.g. still connecting: nothing is owned yet
        worker.stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        await starting
    except asyncio.CancelledError:
        log(_LOG, logging.INFO, "stopped before ready", worker=cfg.worker_id)
        return 0
    await worker.run()
    return 0


_TYPES: dict[str, tuple[type, ...]] = {
    "nats": (str,), "model": (str,), "filter": (str,), "worker_id": (str,),
    "partition_mode": (str,), "output_format": (str,), "gap_policy": (str,),
    "nan_policy": (str,), "partitions": (int,), "mains": (int,), "fetch_batch": (int,),
    "fs": (int, float), "lease_ttl_s": (int, float), "snapshot_interval_s": (int, float),
    "replay_window_s": (int, float), "keep_outputs_s": (int, float),
    "gap_fill_max_s": (int, float),
}


def cluster_config_from_table(table: Any, base: str | os.PathLike = ".") -> ClusterConfig:
    """Validate a ``[cluster]`` TOML table (keys = :class:`ClusterConfig` fields).

    ``model`` is resolved against ``base`` (the config file's folder). Errors are
    :class:`ConfigError` starting with the field's path, e.g. ``cluster.partitions: ...``.
    """
    if not isinstance(table, dict):
        raise ConfigError(f"cluster: expected a table, got {type(table).__name__}")
    for key, value in table.items():
        if key not in _TYPES:
            raise ConfigError(f"cluster.{key}: unknown key (known: {', '.join(sorted(_TYPES))})")
        if isinstance(value, bool) or not isinstance(value, _TYPES[key]):
            want = " or ".join(t.__name__ for t in _TYPES[key])
            raise ConfigError(f"cluster.{key}: expected {want}, got {value!r}")
    for key in ("nats", "partitions", "model"):
        if key not in table:
            raise ConfigError(f"cluster.{key}: missing (needed: nats, partitions, model)")
    values = dict(table)
    values["model"] = os.path.join(os.fspath(base), os.path.expanduser(values["model"]))
    try:
        return ClusterConfig(**values)
    except ConfigError as exc:
        raise ConfigError(f"cluster.{exc}") from None


def _read_toml(path: str | os.PathLike) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config: cannot read {os.fspath(path)!r}: {exc}") from exc


def is_cluster_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TOML file with a ``[cluster]`` table.

    False for a file that cannot be read or parsed: the daemon's loader reports that.
    """
    try:
        return "cluster" in _read_toml(path)
    except ConfigError:
        return False


def load_cluster_file(path: str | os.PathLike) -> tuple[ClusterConfig, dict[str, str]] | None:
    """``(config, logging table)`` from a TOML file with a ``[cluster]`` table, else None."""
    doc = _read_toml(path)
    if "cluster" not in doc:
        return None
    extra = set(doc) - {"cluster", "logging"}
    if extra:
        raise ConfigError(
            f"{sorted(extra)[0]}: a [cluster] file takes only [cluster] and [logging] tables "
            "(the streams come from NATS)"
        )
    base = os.path.dirname(os.path.abspath(path))
    logging_table = doc.get("logging", {})
    if not isinstance(logging_table, dict) or set(logging_table) - {"level", "format"}:
        raise ConfigError("logging: expected a table with level and/or format")
    return cluster_config_from_table(doc["cluster"], base), logging_table


def cluster_command(path: str | os.PathLike) -> int:
    """``streamgru run --config FILE`` for a file with ``[cluster]``: run one worker."""
    try:
        loaded = load_cluster_file(path)
        if loaded is None:
            raise ConfigError(f"cluster: no [cluster] table in {os.fspath(path)!r}")
        cfg, log_table = loaded
        setup_logging(log_table.get("level", "info"), log_table.get("format", "json"))
        return asyncio.run(run_worker(cfg))
    except (ConfigError, WeightsError) as exc:
        print(f"streamgru run: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception:
        _LOG.exception("worker failed")
        return 1


def cluster_check_command(
    path: str | os.PathLike, models: bool = True, quiet: bool = False
) -> int:
    """``streamgru config check FILE`` for a ``[cluster]`` file: 0 when good.

    Validates the tables and, with ``models``, loads the model and builds the filter (a preset
    without a sample rate is refused). Raises :class:`ConfigError` naming the field, e.g.
    ``cluster.partitions: ...`` (the CLI turns it into exit code 78).
    """
    loaded = load_cluster_file(path)
    if loaded is None:
        raise ConfigError(f"cluster: no [cluster] table in {os.fspath(path)!r}")
    cfg, _ = loaded
    detail = ""
    if models:
        from ..model import load_model

        try:
            model = load_model(cfg.model)
        except StreamgruError as exc:
            raise ConfigError(f"cluster.model: cannot load {cfg.model!r}: {exc}") from exc
        try:
            template = build_filter(cfg, model)
        except ConfigError as exc:
            raise ConfigError(f"cluster.{exc}") from None
        detail = (
            f" | model {os.path.basename(cfg.model)}, filter "
            f"{'none' if template is None else cfg.filter}"
        )
    if not quiet:
        print(
            f"{os.fspath(path)}: ok, cluster worker on {cfg.nats}, "
            f"{cfg.partitions} partition(s){detail}"
        )
    return 0


def parse_args(argv: list[str] | None = None) -> ClusterConfig:
    """``python -m streamgru.runtime.cluster`` options → :class:`ClusterConfig`."""
    ap = argparse.ArgumentParser(
        prog="python -m streamgru.runtime.cluster",
        description="streamgru worker: partitions of sg.in.* from NATS JetStream, state in KV.",
    )
    ap.add_argument("--nats", required=True, help="server URL, e.g. nats://127.0.0.1:4222")
    ap.add_argument("--partitions", type=int, required=True, help="N, the same for all workers")
    ap.add_argument("--model", required=True, help="weights file (sg.load_model)")
    ap.add_argument("--filter", default="model", help="model | none | a preset name (with --fs)")
    ap.add_argument("--fs", type=float, default=None, help="sample rate for a filter preset")
    ap.add_argument("--mains", type=int, default=50, choices=(50, 60))
    ap.add_argument("--worker-id", default="", help="default: hostname-pid")
    ap.add_argument("--lease-ttl", type=float, default=10.0, help="seconds (bucket creation)")
    ap.add_argument("--snapshot-interval", type=float, default=5.0, help="seconds")
    ap.add_argument("--partition-mode", default="server", choices=PARTITION_MODES)
    ap.add_argument("--replay-window", type=float, default=24 * 3600.0,
                    help="SG_IN max_age in seconds (stream creation)")
    ap.add_argument("--keep-outputs", type=float, default=0.0,
                    help="if > 0, create stream SG_OUT on sg.out.> with this max_age (seconds)")
    ap.add_argument("--output-format", default="sgp1", choices=OUTPUT_FORMATS)
    ap.add_argument("--gap-policy", default="hold", choices=GAP_POLICIES)
    ap.add_argument("--gap-fill-max", type=float, default=0.0, help="seconds (gap policy fill)")
    ap.add_argument("--nan-policy", default="hold", choices=NAN_POLICIES)
    ap.add_argument("--fetch-batch", type=int, default=256)
    ap.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    ap.add_argument("--log-format", default="json", choices=("json", "text"))
    a = ap.parse_args(argv)
    setup_logging(a.log_level, a.log_format)
    return ClusterConfig(
        nats=a.nats, partitions=a.partitions, model=a.model, filter=a.filter, fs=a.fs,
        mains=a.mains, worker_id=a.worker_id, lease_ttl_s=a.lease_ttl,
        snapshot_interval_s=a.snapshot_interval, partition_mode=a.partition_mode,
        replay_window_s=a.replay_window, keep_outputs_s=a.keep_outputs,
        output_format=a.output_format, gap_policy=a.gap_policy, gap_fill_max_s=a.gap_fill_max,
        nan_policy=a.nan_policy, fetch_batch=a.fetch_batch,
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exit 78 on a bad configuration."""
    try:
        cfg = parse_args(argv)
        return asyncio.run(run_worker(cfg))
    except (ConfigError, WeightsError) as exc:
        print(f"streamgru cluster: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception:
        _LOG.exception("worker failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
