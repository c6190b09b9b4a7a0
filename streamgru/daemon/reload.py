"""SIGHUP: apply a new config and new weights to a running :class:`~streamgru.daemon.daemon.Daemon`.

Streams whose model, filter or input changed start afresh; streams whose source or input
changed get a new reader (what the old reader delivered goes through the old pipeline first);
streams that changed only in policies, sinks or detector settings keep their state; the others
are untouched. Chunks that arrive meanwhile wait in the inbox, so no sample is lost. A bad new
config is refused and the running one kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..errors import StreamgruError
from .config import load_config
from .logs import get_logger, log, setup_logging
from .pipeline import StreamPipeline
from .plan import StreamPlan, plan_stream, warm_up
from .streams import DEAD_STATES

if TYPE_CHECKING:
    from .daemon import Daemon

_log = get_logger("daemon")


@dataclass
class ReloadReport:
    """What a reload did, per stream id (logged as one ``reloaded`` line)."""

    kept: list[str] = field(default_factory=list)
    fresh: dict[str, int | None] = field(
        default_factory=dict
    )  # id → index the fresh state starts at
    restarted: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)


def reload_daemon(d: Daemon) -> bool:
    """Apply ``d.config.path`` anew (SIGHUP); False (running config kept) when it is bad."""
    if d.config.path is None:
        log(_log, logging.WARNING, "reload: no config file (ad hoc run); nothing to do")
        return False
    d.notifier.reloading()
    try:
        new = load_config(d.config.path)
        plans = {s.id: plan_stream(s, k) for k, s in enumerate(new.streams)}
        warm_up(list(plans.values()))
    except StreamgruError as exc:
        log(_log, logging.ERROR, "reload refused: keeping the running config", error=str(exc))
        d.notifier.ready()
        return False
    report = ReloadReport()
    for sid in [s for s in d.streams if s not in plans]:
        _remove_stream(d, sid)
        report.removed.append(sid)
    for sid, plan in plans.items():
        _apply_plan(d, sid, plan, report)
    d._send()
    d.writer.retire({uri for rt in d.streams.values() for uri in rt.sinks})
    if new.logging != d.config.logging and d.configure_logging:
        setup_logging(new.logging.level, new.logging.format)
    if new.metrics != d.config.metrics:
        log(_log, logging.WARNING, "reload: [metrics] changes take effect at the next start")
    d.config = replace(
        new,
        metrics=d.config.metrics,
        daemon=replace(new.daemon, state_dir=d.config.daemon.state_dir),
    )
    d.notifier.ready()
    log(
        _log,
        logging.INFO,
        "reloaded",
        fresh=report.fresh,
        kept=report.kept,
        reader_restarted=report.restarted,
        added=report.added,
        removed=report.removed,
    )
    return True


def _apply_plan(d: Daemon, sid: str, plan: StreamPlan, report: ReloadReport) -> None:
    """Bring stream ``sid`` to ``plan``: add it, keep it, carry its state or start it afresh."""
    rt = d.streams.get(sid)
    if rt is None:
        rt = d._add_stream(plan, resume=False)
        d._start_reader(rt)
        report.added.append(sid)
        return
    old = rt.plan
    if plan.config == old.config and plan.identity() == old.identity():
        report.kept.append(sid)  # untouched: same reader, pipeline, state and sinks
        return
    source_changed = plan.config.source != old.config.source
    input_changed = (plan.config.pick, plan.fs, plan.channels) != (
        old.config.pick,
        old.fs,
        old.channels,
    )
    restart_reader = source_changed or input_changed or rt.state in DEAD_STATES
    if restart_reader:  # what the old reader delivered goes through the old pipeline
        d._stop_reader(rt)
        d._handle(rt, d.inbox.remove_stream(sid))
        d._finish_round()
        d.inbox.add_stream(sid)
    if plan.identity() != old.identity() or restart_reader:
        report.fresh[sid] = rt.pipeline.next_index
        new_pipe = plan.pipeline(rt.counters)
        if not source_changed:
            new_pipe.next_index = rt.pipeline.next_index  # same samples, new state
        rt.pipeline = new_pipe
        rt.counters.resets += 1
    else:  # policies, sinks or detector settings: the state carries over
        rt.pipeline = carry_state(rt.pipeline, plan)
        report.kept.append(sid)
    rt.plan = plan
    for uri in plan.config.sinks:
        d.writer.add(uri)
    rt.sinks = list(plan.config.sinks)
    if restart_reader:
        rt.state = "starting"
        d._start_reader(rt)
        report.restarted.append(sid)


def _remove_stream(d: Daemon, sid: str) -> None:
    """Stop stream ``sid``'s reader, run what it delivered, snapshot it, forget it."""
    rt = d.streams[sid]
    d._stop_reader(rt)
    d._handle(rt, d.inbox.remove_stream(sid))
    d._finish_round()
    d._send()
    snap = rt.pipeline.snapshot(rt.info)
    if d.store is not None and snap is not None:
        d.store.save(snap)
    del d.streams[sid]
    from ..view.sink import forget_streams  # a live view, if open, drops it from its page

    forget_streams([sid])


def carry_state(old: StreamPipeline, plan: StreamPlan) -> StreamPipeline:
    """A pipeline for a plan that changed only in policies, sinks or detector settings, with
    the old one's filter, hidden state, resampler and place."""
    new = plan.pipeline(old.counters)
    new.adopt_state(old)
    return new
