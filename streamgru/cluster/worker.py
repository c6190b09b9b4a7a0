"""The worker process: presence, partition leases, one :class:`~streamgru.cluster.partition.PartitionRunner` per owned partition."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import time
import zlib
from typing import Any

import numpy as np

from ..daemon.logs import log
from ..io.nats_io import (
    connect,
)
from .infra import check_cluster_key, ensure_infrastructure, probe_mapping
from .partition import PartitionRunner
from .settings import _LOG, ClusterConfig
from .state import StreamProcessor, build_filter


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
        log(
            _LOG,
            logging.INFO,
            "worker ready",
            worker=cfg.worker_id,
            partitions=cfg.partitions,
            lease_ttl_s=self.lease_ttl,
        )

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
                log(
                    _LOG,
                    logging.INFO,
                    "stats",
                    worker=self.cfg.worker_id,
                    owned=sorted(self.runners),
                    **self.counts,
                )
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
