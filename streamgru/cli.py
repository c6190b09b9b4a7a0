"""The ``streamgru`` command: the parser, made of the packages' own argument definitions.

Each package defines its commands' arguments beside its code and sets ``func`` to the callable
that does the work and returns the exit code:

* :mod:`streamgru.daemon.cli_args`: ``info``, ``convert``, ``run``, ``config check``;
* :mod:`streamgru.demo.cli_args`: ``demo``; :mod:`streamgru.bench.cli_args`: ``bench``;
* :mod:`streamgru.io.emulator_cli`: ``simulate``; :mod:`streamgru.export.cli_args`: ``export``;
* :mod:`streamgru.evaluation.cli_args`: ``score``; :mod:`streamgru.daemon.warm`: ``warm``.

This module only joins them, and routes ``run`` / ``config check`` of a ``[cluster]`` file to
:mod:`streamgru.cluster` (the daemon does not know the cluster). ``streamgru.cli:main`` is the
entry point.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .bench.cli_args import add_bench
from .daemon.cli_args import add_config_check_parser, add_convert, add_info, add_run_parser
from .daemon.warm import add_warm
from .demo.cli_args import add_demo
from .errors import StreamgruError
from .evaluation.cli_args import add_score
from .export.cli_args import add_export
from .io.emulator_cli import add_simulate

#: Exit code for a bad configuration (sysexits.h EX_CONFIG), used by systemd conventions.
EXIT_CONFIG = 78


def _config_error(command: str, exc: Exception) -> int:
    """Print a configuration error and return :data:`EXIT_CONFIG` (78)."""
    print(f"streamgru {command}: configuration error: {exc}", file=sys.stderr)
    return EXIT_CONFIG


def _add_run(sub: argparse._SubParsersAction) -> None:
    add_run_parser(sub).set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    """``run``: the daemon, or one NATS worker for a file with a ``[cluster]`` table."""
    from .daemon.cli_args import run_config
    from .daemon.commands import run_command
    from .errors import ConfigError

    try:
        if args.config and not (args.source or args.model) and _is_cluster_file(args.config):
            return _run_worker(args)
        return run_command(run_config(args))
    except ConfigError as exc:
        return _config_error("run", exc)


def _is_cluster_file(path: str) -> bool:
    from .cluster.settings import is_cluster_file

    return is_cluster_file(path)


def _run_worker(args: argparse.Namespace) -> int:
    """``run --config FILE`` where FILE has a ``[cluster]`` table: one NATS worker."""
    from .cluster.command import cluster_command
    from .errors import ConfigError

    kv = "a [cluster] worker keeps its state in NATS KV and resumes from it"
    for option, given, hint in (
        ("--state-dir", args.state_dir is not None, kv),
        ("--resume", args.resume, kv),
        (
            "--snapshot-interval",
            args.snapshot_interval is not None,
            "set snapshot_interval_s in [cluster]",
        ),
    ):
        if given:
            raise ConfigError(f"{option}: not used with a [cluster] config ({hint})")
    return cluster_command(args.config)


def _add_config(sub: argparse._SubParsersAction) -> None:
    add_config_check_parser(sub).set_defaults(func=_config_check)


def _config_check(args: argparse.Namespace) -> int:
    """``config check FILE``: a site config, or a worker's ``[cluster]`` file."""
    from .daemon.commands import config_check_command
    from .errors import ConfigError

    try:
        if _is_cluster_file(args.file):
            from .cluster.command import cluster_check_command

            return cluster_check_command(args.file, models=not args.no_models, quiet=args.quiet)
        return config_check_command(args.file, models=not args.no_models, quiet=args.quiet)
    except ConfigError as exc:
        return _config_error("config check", exc)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamgru",
        description="Numba-accelerated streaming GRU engine for real-time signals.",
    )
    parser.add_argument("--version", action="version", version=f"streamgru {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_info,
    add_convert,
    _add_run,
    _add_config,
    add_demo,
    add_bench,
    add_simulate,
    add_export,
    add_score,
    add_warm,
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except StreamgruError as exc:
        print(f"streamgru {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
