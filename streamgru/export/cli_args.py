"""``streamgru export c`` on the command line: its arguments (see :func:`streamgru.export.export_c`)."""

from __future__ import annotations

import argparse


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model as a dependency-free C99 library")
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    c = targets.add_parser("c", help="C99 source and header (float32, int16 or int8)")
    c.add_argument("model", help="weights file (any format streamgru loads)")
    c.add_argument("-o", "--output", required=True, help="directory to write NAME.h, NAME.c")
    c.add_argument("--dtype", choices=("float32", "int16", "int8"), default="float32")
    c.add_argument("--prefix", default="sgmodel", help="C name prefix (default sgmodel)")
    c.add_argument(
        "--calibrate", help="raw samples (.npy or .csv) for fixed point (default: built-in ECG)"
    )
    c.add_argument("--no-libm", action="store_true", help="float32 without <math.h>")

    def run(args: argparse.Namespace) -> int:
        from ..model.formats import load_model
        from . import export_c

        model = load_model(args.model)
        export_c(model, args.output, args.dtype, args.prefix, args.calibrate, args.no_libm)
        return 0

    c.set_defaults(func=run)
