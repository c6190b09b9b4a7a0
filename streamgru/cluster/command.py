"""The worker's command line (``python -m streamgru.cluster``) and the ``streamgru run`` / ``config check`` entry points for ``[cluster]`` files."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from ..daemon.config_schema import GAP_POLICIES, NAN_POLICIES
from ..daemon.logs import setup_logging
from ..errors import ConfigError, StreamgruError, WeightsError
from ..io.nats_io import (
    OUTPUT_FORMATS,
)
from .settings import _LOG, EXIT_CONFIG, PARTITION_MODES, ClusterConfig, load_cluster_file
from .state import build_filter
from .worker import run_worker


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


def cluster_check_command(path: str | os.PathLike, models: bool = True, quiet: bool = False) -> int:
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
    """``python -m streamgru.cluster`` options → :class:`ClusterConfig`."""
    ap = argparse.ArgumentParser(
        prog="python -m streamgru.cluster",
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
    ap.add_argument(
        "--replay-window",
        type=float,
        default=24 * 3600.0,
        help="SG_IN max_age in seconds (stream creation)",
    )
    ap.add_argument(
        "--keep-outputs",
        type=float,
        default=0.0,
        help="if > 0, create stream SG_OUT on sg.out.> with this max_age (seconds)",
    )
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
        nats=a.nats,
        partitions=a.partitions,
        model=a.model,
        filter=a.filter,
        fs=a.fs,
        mains=a.mains,
        worker_id=a.worker_id,
        lease_ttl_s=a.lease_ttl,
        snapshot_interval_s=a.snapshot_interval,
        partition_mode=a.partition_mode,
        replay_window_s=a.replay_window,
        keep_outputs_s=a.keep_outputs,
        output_format=a.output_format,
        gap_policy=a.gap_policy,
        gap_fill_max_s=a.gap_fill_max,
        nan_policy=a.nan_policy,
        fetch_batch=a.fetch_batch,
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
