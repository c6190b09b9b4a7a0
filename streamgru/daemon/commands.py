"""The daemon's commands: ``streamgru run`` and ``streamgru config check``."""

from __future__ import annotations

import os
import sys

from .config import load_config
from .config_schema import Config
from .daemon import Daemon
from .plan import plan_stream
from .uri_checks import check_offline_sources


def run_command(config: Config) -> int:
    """``streamgru run``: run the daemon on a validated config; returns the exit code.

    When a sink was abandoned at shutdown (stuck: see :mod:`streamgru.daemon.writer`) the
    process ends here with ``os._exit``: its writer thread may hold a lock (stdout's) that the
    interpreter's own exit would wait on for ever. Snapshots and logs are written by then.
    """
    daemon = Daemon(config)
    code = daemon.run()
    if daemon.writer is not None and daemon.writer.abandoned:
        sys.stderr.flush()
        os._exit(code)
    return code


def config_check_command(path: str, models: bool = True, quiet: bool = False) -> int:
    """``streamgru config check FILE``: validate (and load each model); 0 when good.

    Raises ConfigError on the first problem (the CLI turns it into exit code 78).
    """
    config = load_config(path)
    plans = [plan_stream(s, k) for k, s in enumerate(config.streams)] if models else []
    if plans:
        check_offline_sources(config, plans)  # file:// and synthetic:// need no device
    if not quiet:
        print(f"{path}: ok, {len(config.streams)} stream(s)")
        for k, s in enumerate(config.streams):
            line = f"  stream[{k}] {s.id}: {s.source} -> {', '.join(s.sinks) or '(no sink)'}"
            if plans:
                p = plans[k]
                filt = "none" if p.filter_spec is None else p.filter_spec.get("kind", "?")
                rate = f"{p.fs:g} Hz"
                if p.resample is not None:
                    rate += f" resampled to {p.model_fs:g} Hz"
                line += f" | model {s.model.name} at {rate}, filter {filt}"
            print(line)
    return 0
