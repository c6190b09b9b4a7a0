"""The ``streamgru`` command: argument parsing only; the work happens in :mod:`streamgru.runtime`.

Each subcommand has one ``_add_<name>`` function that defines its arguments and sets ``func``
to the runtime callable that does the work and returns the exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .errors import StreamgruError

#: Exit code for a bad configuration (sysexits.h EX_CONFIG), used by systemd conventions.
EXIT_CONFIG = 78


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a weights file: sizes, layers, head, metadata, checksum")
    p.add_argument("model", help="weights file (.safetensors, .npz, .pt, .onnx, .h5, .keras)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    def run(args: argparse.Namespace) -> int:
        from .runtime.tools import info_command

        return info_command(args.model, as_json=args.json)

    p.set_defaults(func=run)


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert any supported weights file to native safetensors, verified")
    p.add_argument("src", help="input weights file")
    p.add_argument("dst", help="output .safetensors (or .npz)")
    p.add_argument("--samples", type=int, default=512, help="random samples used to verify (default 512)")
    p.add_argument("--atol", type=float, default=1e-5, help="max allowed difference in float32 (default 1e-5)")

    def run(args: argparse.Namespace) -> int:
        from .runtime.tools import convert_command

        return convert_command(args.src, args.dst, n_samples=args.samples, atol=args.atol)

    p.set_defaults(func=run)


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


_SUBCOMMANDS = [_add_info, _add_convert]


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
