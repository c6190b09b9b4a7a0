"""One owned partition: its lease, its durable consumer, ordered processing and snapshots."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from ..daemon.logs import log
from ..errors import ConfigError, SnapshotError, StreamgruError
from ..io.nats_io import (
    PART_PREFIX,
    check_stream_id,
    encode_predictions,
    output_subject,
)
from .settings import _LOG, IN_STREAM
from .state import StreamProcessor

if TYPE_CHECKING:
    from .worker import Worker


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
            log(
                _LOG,
                logging.ERROR,
                "replay window exceeded",
                partition=self.p,
                marker=start,
                first_available=first,
            )
        config = api.ConsumerConfig(
            name=self.consumer,
            durable_name=self.consumer,
            filter_subject=f"{PART_PREFIX}.{self.p}.*",
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE if start else api.DeliverPolicy.ALL,
            opt_start_seq=start + 1 if start else None,
            ack_policy=api.AckPolicy.ALL,
            ack_wait=max(30.0, 4 * w.cfg.snapshot_interval_s),
            max_ack_pending=-1,
            max_deliver=-1,
            inactive_threshold=max(60.0, 10 * w.lease_ttl),
        )
        await w.js.add_consumer(IN_STREAM, config=config)
        log(
            _LOG,
            logging.INFO,
            "partition taken",
            partition=self.p,
            epoch=self.epoch,
            start_seq=start + 1,
            worker=w.cfg.worker_id,
        )
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
            log(
                _LOG,
                logging.WARNING,
                "stream state not usable, starting afresh",
                stream=sid,
                error=str(exc),
            )
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
                revs = await asyncio.gather(
                    *(
                        w.state_kv.update(f"s.{p.stream_id}", p.snapshot(), last=p.revision)
                        for p in part
                    )
                )
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
