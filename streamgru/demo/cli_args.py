"""``streamgru demo`` on the command line: its arguments (see :mod:`streamgru.demo.command`)."""

from __future__ import annotations

import argparse


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="replay a real ECG through an emulated device into the daemon and detect beats",
        description="The device emulator replays MIT-BIH record 100 (MLII) as SGB1 frames over "
        "a pty (TCP loopback where no pty exists); the daemon pipeline filters it, runs the "
        "shipped beat detector and prints live detections, then a summary against the "
        "reference annotations. By default it replays the model's held-out segment (samples "
        "the model never trained on, from its metadata).",
    )
    p.add_argument("--duration", type=float, default=30.0, help="seconds of wall time (default 30)")
    p.add_argument(
        "--speed",
        type=float,
        default=4.0,
        help="replay speed, x real time (default 4: 30 s show 2 min of ECG)",
    )
    p.add_argument(
        "--transport",
        choices=("auto", "pty", "tcp"),
        default="auto",
        help="how the emulated device is reached (default: pty, else tcp)",
    )
    p.add_argument("--model", metavar="PATH", help="weights (default: weights/ecg_beats)")
    p.add_argument("--quiet", action="store_true", help="no live lines, only the summary")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument(
        "--segment",
        choices=("held-out", "training"),
        default="held-out",
        help="the model's range of record 100 to replay, from its metadata (default held-out: "
        "ECG the model never trained on)",
    )
    p.add_argument("--from", dest="start", type=int, metavar="N", help="first record sample")
    p.add_argument("--to", dest="stop", type=int, metavar="N", help="record sample to stop at")
    p.add_argument("--view", action="store_true", help="show it live in the browser (URL printed)")
    p.add_argument("--view-port", type=int, metavar="PORT", help="the live view's port")
    p.add_argument(
        "--linger",
        type=float,
        metavar="S",
        help="with --view: seconds the page stays up after the replay (default 30; inf: Ctrl-C)",
    )

    def run(args: argparse.Namespace) -> int:
        from .command import DemoOptions, demo_command

        options = DemoOptions(
            duration=args.duration,
            speed=args.speed,
            transport=args.transport,
            model=args.model,
            quiet=args.quiet,
            as_json=args.json,
            segment=args.segment,
            start=args.start,
            stop=args.stop,
            view=args.view or args.view_port is not None,
            view_port=args.view_port,
            linger=args.linger,
        )
        return demo_command(options)

    p.set_defaults(func=run)
