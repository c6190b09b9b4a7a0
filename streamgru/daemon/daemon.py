"""``streamgru run``: the daemon. ``Daemon(config).run()`` is startup → main loop → shutdown.

* **startup**: load and check every stream's model, compile and warm the kernels on throwaway
  state, restore snapshots (``resume``), open the sinks, serve metrics, start one reader thread
  per source, then report ready (``READY=1`` when systemd's ``NOTIFY_SOCKET`` is set).
* **main loop** (the main thread): wait until any stream has samples (a running socket source
  is read right here, from one selector: :mod:`streamgru.daemon.mux`; the others by their
  reader threads), take everything that has arrived, run each stream's pending chunks through
  its pipeline in one compiled call, fan the predictions out to the sinks (a sink whose writes
  never wait is written right here); ``WATCHDOG=1``, periodic snapshots and reloads from this
  loop. When every source has ended (files), the daemon stops by itself.
* **shutdown** (SIGTERM, SIGINT, or the end of every source): stop reading, drain the inbox
  through the pipelines, drain and flush the sinks, write one snapshot per stream, exit 0.
  A second SIGINT forces the exit at once. A stream that cannot run on its configuration (see
  :mod:`streamgru.daemon.reader`) ends; with none left, exit 78 and stderr says what to change.
* **reload** (SIGHUP): re-read the config and weights; streams whose model, filter or input
  changed start afresh, the others keep their state; chunks that arrive meanwhile wait in the
  inbox, so no sample is lost.

Threads, queues and bounds: :mod:`~streamgru.daemon.reader`, :mod:`~streamgru.daemon.writer`.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import SnapshotError, StreamgruError
from ..io.chunk import Chunk, PredictionBlock, StreamInfo
from .config_schema import Config
from .device_beats import DeviceBeatMonitor
from .emit import emit_result
from .health import misconfigured, start_metrics
from .inbox import Inbox, SourceEvent
from .logs import get_logger, log, setup_logging
from .metrics import LatencyRecorder, MetricsServer, StreamCounters
from .mux import SourceMux
from .notify import Notifier
from .plan import StreamPlan, check_stream_info, plan_stream, warm_up
from .reader import ReaderSettings, SourceReader
from .reload import reload_daemon
from .round import RoundBatch
from .snapshots import SnapshotStore
from .streams import DEAD_STATES, StreamRuntime
from .writer import Item, SinkWriter

_log = get_logger("daemon")

#: Signals the daemon handles while it runs (previous handlers are restored afterwards).
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Longest wait of the main loop, seconds (bounds the reaction to signals and timers).
LOOP_TICK_S = 0.05
#: Exit code when the daemon stops because a source URI was refused (sysexits EX_CONFIG).
EXIT_CONFIG = 78


class Daemon:
    """The streaming daemon (see the module docstring).

    Parameters
    ----------
    config : a validated :class:`~streamgru.daemon.config.Config`
    open_source, open_sink : factories (``streamgru.io``'s by default; injectable for tests)
    on_block : called on the processing thread with every PredictionBlock (the demo's display)
    on_event : called on the processing thread with ``(stream_id, BeatEvent)``
    environ : where ``NOTIFY_SOCKET`` / ``WATCHDOG_USEC`` are read (``os.environ``)
    configure_logging : install the JSON-lines handler from ``config.logging``
    """

    def __init__(
        self,
        config: Config,
        *,
        open_source: Callable[[str], Any] | None = None,
        open_sink: Callable[[str], Any] | None = None,
        on_block: Callable[[PredictionBlock], None] | None = None,
        on_event: Callable[[str, Any], None] | None = None,
        environ: dict[str, str] | None = None,
        configure_logging: bool = True,
    ) -> None:
        self.config = config
        self._open_source = open_source
        self._open_sink = open_sink
        self.on_block = on_block
        self.on_event = on_event
        self.notifier = Notifier(environ)
        self.configure_logging = configure_logging
        self.streams: dict[str, StreamRuntime] = {}
        self.inbox = Inbox(config.daemon.queue_chunks)
        #: running socket sources are read on the processing thread (streamgru.daemon.mux)
        self.mux = SourceMux(self.inbox)
        self.inbox.set_waker(self.mux.wake)
        d = config.daemon
        self.writer = SinkWriter(  # started by startup(), after the streams' sinks are added
            self._sink_factory(), d.queue_blocks, (d.reconnect_initial_s, d.reconnect_max_s)
        )
        self.store = None if d.state_dir is None else SnapshotStore(d.state_dir, d.state_dir_mode)
        self.metrics_server: MetricsServer | None = None
        self.ready = False
        self.should_exit = False
        self.reload_requested = False
        self.exit_code = 0
        self.exit_reasons: list[str] = []  # why the exit code is 78, one line per stream
        self.device_beats = DeviceBeatMonitor()  # device EVENTs: logged, counted, compared
        self.started_at = time.monotonic()
        self._tick = time.monotonic()
        self._next_watchdog = 0.0
        self._next_snapshot = float("inf")
        self._next_end_check = 0.0
        self._sigint_count = 0
        self._outbox: list[Item] = []  # blocks of the current round, for the sink writer
        self.round = RoundBatch()  # the model calls of a round: one per model
        self._results: list[tuple[StreamRuntime, Any]] = []  # pipelines' results, to emit

    # ================================================================ lifecycle
    def run(self) -> int:
        """Start, serve until stopped, shut down; returns the exit code (0 on a clean stop)."""
        with self.capture_signals():
            self.startup()
            try:
                self.main_loop()
            finally:
                self.shutdown()
        for line in self.exit_reasons:  # plain text too: the log may be JSON lines
            print(f"streamgru run: configuration error: {line}", file=sys.stderr, flush=True)
        return self.exit_code

    def startup(self) -> None:
        """Everything before ready. Raises ConfigError when a stream cannot be set up."""
        cfg = self.config
        if self.configure_logging:
            setup_logging(cfg.logging.level, cfg.logging.format)
        t0 = time.monotonic()
        plans = [plan_stream(s, k) for k, s in enumerate(cfg.streams)]
        n_models = warm_up(plans)
        log(
            _log,
            logging.INFO,
            "kernels warm",
            models=n_models,
            streams=len(plans),
            seconds=round(time.monotonic() - t0, 3),
        )
        d = cfg.daemon
        for plan in plans:
            self._add_stream(plan, resume=d.resume)
        if cfg.metrics.enabled:
            self.metrics_server = start_metrics(self)
        self.writer.start()
        for rt in self.streams.values():
            self._start_reader(rt)
        interval = self.notifier.watchdog_interval() if cfg.daemon.watchdog else None
        self._watchdog_interval = interval
        self._next_watchdog = time.monotonic()
        if self.store is not None and cfg.daemon.snapshot_interval_s > 0:
            self._next_snapshot = time.monotonic() + cfg.daemon.snapshot_interval_s
        gc.collect()  # startup's garbage, then the rest out of the collector's sight (a full
        gc.freeze()  # collection later scans only what the daemon made since: shorter pauses)
        self.ready = True
        self.notifier.ready(status=f"{len(self.streams)} stream(s)")
        log(
            _log,
            logging.INFO,
            "ready",
            streams=list(self.streams),
            metrics_port=None if self.metrics_server is None else self.metrics_server.port,
            watchdog_s=interval,
            startup_s=round(time.monotonic() - self.started_at, 3),
            pid=os.getpid(),
        )

    def main_loop(self) -> None:
        """Process what arrives until asked to stop (or until every source has ended)."""
        while not self.should_exit:
            self.mux.pump(self.mux.wait(self._wait_time()))
            batch = self.inbox.take_all(0.0)
            for sid, items in batch.items():
                rt = self.streams.get(sid)
                if rt is not None:
                    self._handle(rt, items)
            self._finish_round()
            self._send()
            now = time.monotonic()
            self._tick = now
            if self._watchdog_interval is not None and now >= self._next_watchdog:
                self.notifier.watchdog()
                self._next_watchdog = now + self._watchdog_interval
            if self.reload_requested:
                self.reload_requested = False
                self.reload()
            if now >= self._next_snapshot:
                self.write_snapshots()
                self._next_snapshot = now + self.config.daemon.snapshot_interval_s
            if now >= self._next_end_check and self._nothing_left():
                self.exit_reasons = misconfigured(self.streams)
                self.exit_code = EXIT_CONFIG if self.exit_reasons else self.exit_code
                log(_log, logging.INFO, "no stream is left running (sources ended or failed)")
                break

    def _nothing_left(self) -> bool:
        """No stream is left running (looked at every loop tick, not every round)."""
        self._next_end_check = time.monotonic() + LOOP_TICK_S
        streams = self.streams.values()
        return bool(streams) and all(rt.ended or rt.state in DEAD_STATES for rt in streams)

    def shutdown(self) -> None:
        """Stop reading, drain, flush the sinks, snapshot every stream."""
        self.ready = False
        self.notifier.stopping()
        log(_log, logging.INFO, "stopping")
        readers = [rt.reader for rt in self.streams.values() if rt.reader is not None]
        for reader in readers:
            reader.stop()
        self.mux.close()
        for reader in readers:
            reader.join(timeout=5.0)
            if reader.is_alive():
                log(_log, logging.WARNING, "reader did not stop in time", stream=reader.stream_id)
        self._drain()
        self.device_beats.finish_all(self.streams)
        self.writer.close(timeout=self.config.daemon.sink_shutdown_s)
        self.write_snapshots()
        if self.metrics_server is not None:
            self.metrics_server.close()
        for rt in self.streams.values():
            lat = rt.latency.percentiles((50, 99))
            log(
                _log,
                logging.INFO,
                "stream totals",
                stream=rt.id,
                **rt.counters.to_dict(),
                latency_p50_ms=_ms(lat["p50"]),
                latency_p99_ms=_ms(lat["p99"]),
            )
        log(_log, logging.INFO, "stopped", exit_code=self.exit_code)
        self.notifier.close()
        gc.unfreeze()

    # ================================================================== signals
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Handle SIGINT/SIGTERM/SIGHUP while inside; the previous handlers come back after."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_signal) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_signal(self, sig: int, frame: Any = None) -> None:
        """SIGHUP: reload. SIGINT/SIGTERM: stop; a second SIGINT: exit at once."""
        if sig == signal.SIGHUP:
            self.reload_requested = True
            return
        if sig == signal.SIGINT:
            self._sigint_count += 1
            if self._sigint_count > 1:
                log(_log, logging.ERROR, "second SIGINT: forced exit without draining")
                sys.stderr.flush()
                os._exit(130)
        self.should_exit = True

    def request_stop(self) -> None:
        """Ask the main loop to stop (from any thread)."""
        self.should_exit = True
        self.inbox.wake()

    # ================================================================ streams
    def _add_stream(
        self,
        plan: StreamPlan,
        resume: bool,
        counters: StreamCounters | None = None,
        latency: LatencyRecorder | None = None,
    ) -> StreamRuntime:
        counters = counters if counters is not None else StreamCounters()
        rt = StreamRuntime(
            plan=plan,
            pipeline=plan.pipeline(counters),
            counters=counters,
            latency=latency if latency is not None else LatencyRecorder(),
            sinks=list(plan.config.sinks),
        )
        if resume:
            self._resume(rt)
        rt.pipeline.use_round(self.round)  # its state joins its model's stack now, not later
        self.streams[plan.id] = rt
        self.inbox.add_stream(plan.id)
        for uri in rt.sinks:
            self.writer.add(uri)
        return rt

    def _resume(self, rt: StreamRuntime) -> None:
        if self.store is None:
            return
        try:
            snap = self.store.load(rt.id)
            if snap is None:
                log(_log, logging.INFO, "no snapshot: starting fresh", stream=rt.id)
                return
            rt.pipeline.restore(snap)
        except SnapshotError as exc:
            log(
                _log,
                logging.ERROR,
                "snapshot not usable: starting fresh",
                stream=rt.id,
                error=str(exc),
            )
            rt.pipeline = rt.plan.pipeline(rt.counters)
            return
        rt.resumed_from = (snap.source_session, snap.source_device)
        log(_log, logging.INFO, "resumed", stream=rt.id, next_index=snap.next_index)

    def _start_reader(self, rt: StreamRuntime) -> None:
        d = self.config.daemon

        def set_state(state: str, rt: StreamRuntime = rt) -> None:
            if rt.state not in DEAD_STATES:  # a failed stream stays failed until reloaded
                rt.state = state

        def check(info: StreamInfo, plan: StreamPlan = rt.plan) -> Any:
            return check_stream_info(plan, info)

        rt.reader = SourceReader(
            rt.id,
            rt.plan.config.source,
            self.inbox,
            check,
            rt.counters,
            set_state,
            ReaderSettings(
                self._source_factory(),
                backoff=(d.reconnect_initial_s, d.reconnect_max_s),
                read_timeout=d.read_timeout_s,
                exit_on_refused=d.exit_on_refused,
                mux=self.mux,
            ),
        )
        rt.ended = False
        rt.reader.start()

    def _stop_reader(self, rt: StreamRuntime) -> None:
        if rt.reader is not None:
            rt.reader.stop()
            rt.reader.join(timeout=5.0)
            rt.reader = None

    def _source_factory(self) -> Callable[[str], Any]:
        if self._open_source is None:  # imported when needed: io.sources pulls the openers in
            self._open_source = importlib.import_module("streamgru.io.sources").open_source
        return self._open_source

    def _sink_factory(self) -> Callable[[str], Any]:
        if self._open_sink is None:
            self._open_sink = importlib.import_module("streamgru.io.sinks").open_sink
        return self._open_sink

    # ============================================================= processing
    def _handle(self, rt: StreamRuntime, items: list[Any]) -> None:
        """Run one stream's arrivals: chunks in order, with source events between them."""
        chunks: list[Chunk] = []
        for item in items:
            if isinstance(item, SourceEvent):
                if chunks:
                    self._process(rt, chunks)
                    chunks = []
                self._finish_round()  # what came before the event is out before it
                self._on_source_event(rt, item)
            else:
                chunks.append(item)
        if chunks:
            self._process(rt, chunks)

    def _on_source_event(self, rt: StreamRuntime, event: SourceEvent) -> None:
        if event.kind == "opened":
            info = event.info
            if rt.resumed_from is not None and info is not None:
                session, device = rt.resumed_from
                if (session, device) != (info.session, info.device_id):
                    log(
                        _log,
                        logging.WARNING,
                        "device restarted since the snapshot: its indices start anew",
                        stream=rt.id,
                        snapshot_session=session,
                        session=info.session,
                    )
                    rt.pipeline.forget_position()
                rt.resumed_from = None
            rt.info = info
            self.device_beats.finish(rt.id, rt.counters)  # a new source: judged afresh
        elif event.kind == "device" and event.device is not None:
            self.device_beats.device(rt.id, event.device, rt.counters, rt.plan)
        elif event.kind == "ended":
            rt.ended = True
            self.device_beats.finish(rt.id, rt.counters)

    def _process(self, rt: StreamRuntime, chunks: list[Chunk]) -> None:
        """Run ``chunks`` through the stream's pipeline; the model calls wait in the round
        (:mod:`streamgru.daemon.round`), the results until :meth:`_finish_round`."""
        if rt.state == "failed":
            return
        rt.pipeline.use_round(self.round)
        try:
            result = rt.pipeline.process(chunks)
        except StreamgruError as exc:
            self._fail(rt, exc)
            return
        self._results.append((rt, result))

    def _fail(self, rt: StreamRuntime, exc: StreamgruError) -> None:
        rt.state = "failed"
        log(_log, logging.ERROR, "stream failed", stream=rt.id, error=str(exc))
        if rt.reader is not None:
            rt.reader.stop()

    def _finish_round(self) -> None:
        """One model call per model for every stream of the round, then their results out."""
        self.round.flush()
        results, self._results = self._results, []
        for rt, result in results:
            if result.error is not None:
                self._fail(rt, result.error)
            else:
                self._emit(rt, result)

    def _emit(self, rt: StreamRuntime, result: Any) -> None:
        emit_result(rt, result, self._outbox, self.on_block, self.on_event, self.device_beats)

    def _drain(self) -> None:
        """Process whatever the readers left in the inbox."""
        while True:
            batch = self.inbox.take_all(0.0)
            if not batch:
                return
            for sid, items in batch.items():
                rt = self.streams.get(sid)
                if rt is not None:
                    self._handle(rt, items)
            self._finish_round()
            self._send()

    def _send(self) -> None:
        """Hand the blocks of this round to the sink writer (one queue entry, one wake-up)."""
        if self._outbox:
            self.writer.put_many(self._outbox)
            self._outbox = []

    def _wait_time(self) -> float:
        due = self._next_watchdog - time.monotonic()
        return LOOP_TICK_S if self._watchdog_interval is None else min(LOOP_TICK_S, max(0.0, due))

    # ============================================================== snapshots
    def write_snapshots(self) -> int:
        """Write one snapshot per stream that has processed samples; returns how many."""
        if self.store is None:
            return 0
        written = 0
        for rt in self.streams.values():
            snap = rt.pipeline.snapshot(rt.info)
            if snap is None:
                continue
            try:
                path = self.store.save(snap)
            except OSError as exc:
                log(_log, logging.ERROR, "snapshot failed", stream=rt.id, error=str(exc))
                continue
            written += 1
            log(
                _log,
                logging.DEBUG,
                "snapshot",
                stream=rt.id,
                path=str(path),
                next_index=snap.next_index,
            )
        return written

    # ================================================================ reload
    def reload(self) -> bool:
        """New config and weights (SIGHUP; :func:`.reload.reload_daemon`); False if it is bad."""
        return reload_daemon(self)


def _ms(seconds: float) -> float | None:
    return None if seconds != seconds else round(seconds * 1e3, 3)
