"""The daemon's commands on the ``streamgru`` command line: ``info``, ``convert``, ``run``,
``config check``: their arguments, and the daemon :class:`Config` a ``run`` asks for.

:mod:`streamgru.cli` registers them; a ``run`` or ``config check`` of a ``[cluster]`` file goes
to :mod:`streamgru.cluster` from there (the daemon does not know the cluster).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .config_schema import Config


def add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info", help="describe a weights file: sizes, layers, head, metadata, checksum"
    )
    p.add_argument("model", help="weights file (.safetensors, .npz, .pt, .onnx, .h5, .keras)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    def run(args: argparse.Namespace) -> int:
        from .tools import info_command

        return info_command(args.model, as_json=args.json)

    p.set_defaults(func=run)


def add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", help="convert any supported weights file to native safetensors, verified"
    )
    p.add_argument("src", help="input weights file")
    p.add_argument("dst", help="output .safetensors (or .npz)")
    p.add_argument(
        "--samples", type=int, default=512, help="random samples used to verify (default 512)"
    )
    p.add_argument(
        "--atol", type=float, default=1e-5, help="max allowed difference in float32 (default 1e-5)"
    )

    def run(args: argparse.Namespace) -> int:
        from .tools import convert_command

        return convert_command(args.src, args.dst, n_samples=args.samples, atol=args.atol)

    p.set_defaults(func=run)


def add_run_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The ``run`` subparser with all its arguments; the caller sets ``func``."""
    p = sub.add_parser(
        "run",
        help="run the streaming daemon (a site config, or one ad hoc stream)",
        description="Read sources, filter, step the GRU per sample, write predictions to sinks. "
        "Either --config FILE.toml, or --source URI --model PATH [...] for one stream. "
        "SIGTERM/SIGINT: drain, flush, snapshot, exit 0; SIGHUP: reload config and weights. "
        "A config file with a [cluster] table runs a NATS JetStream worker instead "
        "(docs/scale-out.md).",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="site configuration (TOML, [[stream]] tables) or a worker's ([cluster] table)",
    )
    _add_stream_arguments(p)
    _add_daemon_arguments(p)
    return p


def _add_stream_arguments(p: argparse.ArgumentParser) -> None:
    """``run``'s ad hoc stream: source, model, sinks and the stream's settings."""
    p.add_argument("--source", metavar="URI", help="ad hoc: the source, e.g. tcp://127.0.0.1:5555")
    p.add_argument("--model", metavar="PATH", help="ad hoc: the weights file")
    p.add_argument(
        "--sink",
        metavar="URI",
        action="append",
        help="ad hoc: a sink (repeatable; default stdout://)",
    )
    p.add_argument("--filter", help="ad hoc: 'model' (default), 'none' or a preset name")
    p.add_argument("--id", default="stream0", help="ad hoc: the stream id (default stream0)")
    p.add_argument("--fs", type=float, help="ad hoc: expected sample rate in Hz")
    p.add_argument("--channels", type=int, help="ad hoc: expected channel count")
    p.add_argument(
        "--pick",
        action="append",
        metavar="CH",
        help="ad hoc: a channel (label or index) fed to the model (repeatable)",
    )
    p.add_argument("--gap-policy", choices=("reset", "hold", "fill"), help="ad hoc (default reset)")
    p.add_argument("--nan-policy", choices=("hold", "zero", "reset"), help="ad hoc (default hold)")
    p.add_argument("--events", action="store_true", help="ad hoc: detect beats on output 0")
    p.add_argument(
        "--resample",
        action="store_true",
        help="ad hoc: resample a source at another rate to the model's rate",
    )


def _add_daemon_arguments(p: argparse.ArgumentParser) -> None:
    """``run``'s daemon-wide options: refused sources, metrics, logs, snapshots."""
    p.add_argument(
        "--exit-on-refused",
        action="store_true",
        help="a refused source (wrong rate or channels) ends its stream even when it is a live "
        "device (default: files and synthetic sources end, devices are retried); the daemon "
        "exits 78 once no stream is left running",
    )
    p.add_argument(
        "--view",
        action="store_true",
        help="serve the live view (waveform, model output, beats) on http://127.0.0.1:9109/ "
        "(or [view] in the config)",
    )
    p.add_argument("--view-port", type=int, metavar="PORT", help="the live view's port (0: free)")
    p.add_argument("--metrics-port", type=int, help="ad hoc: /metrics port (0: any free port)")
    p.add_argument("--no-metrics", action="store_true", help="ad hoc: no HTTP endpoint")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--log-format", default="json", choices=("json", "text"))
    p.add_argument("--state-dir", metavar="DIR", help="where snapshots are written and read")
    p.add_argument(
        "--snapshot-interval",
        type=float,
        metavar="S",
        help="seconds between periodic snapshots (0: only at shutdown)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue every stream from its snapshot in the state directory",
    )


def run_config(args: argparse.Namespace) -> Config:
    """The daemon :class:`Config` of a parsed ``run`` (a site file, or one ad hoc stream).

    Raises ConfigError naming the option or the file's field.
    """
    from ..errors import ConfigError
    from .config import AdhocSettings, adhoc_config, load_config, with_overrides

    if args.config:
        if args.source or args.model:
            raise ConfigError("--config: give either --config or --source/--model")
        config = load_config(args.config)
        overrides: dict = {}
        if args.state_dir is not None:
            overrides["state_dir"] = Path(args.state_dir).resolve()
        if args.resume:
            overrides["resume"] = True
        if args.snapshot_interval is not None:
            overrides["snapshot_interval_s"] = args.snapshot_interval
        config = with_overrides(config, **overrides) if overrides else config
    else:
        if not (args.source and args.model):
            raise ConfigError("--source and --model are needed without --config")
        settings = AdhocSettings(
            args.source,
            args.model,
            stream_id=args.id,
            sinks=args.sink or ["stdout://"],
            filter=args.filter,
            fs=args.fs,
            channels=args.channels,
            pick=args.pick or (),
            gap_policy=args.gap_policy,
            nan_policy=args.nan_policy,
            events=args.events,
            resample=args.resample,
            state_dir=args.state_dir,
            resume=args.resume,
            snapshot_interval_s=args.snapshot_interval,
            metrics_port=args.metrics_port,
            metrics=not args.no_metrics,
            log_level=args.log_level,
            log_format=args.log_format,
        )
        config = adhoc_config(settings)
    if args.exit_on_refused:
        config = with_overrides(config, exit_on_refused=True)
    if args.view or args.view_port is not None:  # the live view as a sink of every stream
        from .view_config import view_option, with_view

        config = with_view(config, view_option(args.view_port))
    return config


def add_config_check_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``config check FILE``; returns the ``check`` subparser (the caller sets ``func``)."""
    p = sub.add_parser("config", help="work with daemon configuration files")
    actions = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="validate a site or [cluster] worker config (and load its models) without running",
    )
    check.add_argument("file", help="the TOML file")
    check.add_argument("--no-models", action="store_true", help="do not load the models")
    check.add_argument("-q", "--quiet", action="store_true", help="print nothing when good")
    return check
