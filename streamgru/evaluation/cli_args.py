"""``streamgru score`` on the command line: its arguments (see :mod:`streamgru.evaluation`)."""

from __future__ import annotations

import argparse


def add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="beat-by-beat Se / +P of a model's detections against reference annotations",
        description=(
            "Run WFDB records through the daemon's pipeline (resampler, the model's filter "
            "chain, the GRU, BeatDetector) and compare the beats with the reference annotations "
            "as WFDB bxb / ANSI/AAMI EC57 do (150 ms window, first 5 minutes excluded on long "
            "records). Or score any detector: --detections DET.csv --reference REF.csv --fs HZ."
        ),
    )
    p.add_argument("model", nargs="?", help="weights file (omit with --detections)")
    p.add_argument("records", nargs="*", help="WFDB records (X.hea)")
    p.add_argument("--channel", help="signal name (e.g. MLII) or index (default: the model's)")
    p.add_argument("--ann", default="atr", help="annotation file extension (default atr)")
    p.add_argument("--ann-csv", help="reference beats from a CSV of sample indices instead")
    p.add_argument("--detections", help="detections-only mode: a CSV of detected sample indices")
    p.add_argument("--reference", help="detections-only mode: the reference CSV")
    p.add_argument("--fs", type=float, help="detections-only mode: the sample rate in Hz")
    p.add_argument("--from", dest="first", type=int, help="first sample scored (record clock)")
    p.add_argument("--to", dest="last", type=int, help="end sample, exclusive")
    p.add_argument("--window-ms", type=float, default=150.0, help="match window (default 150)")
    p.add_argument(
        "--skip-first",
        choices=("auto", "yes", "no"),
        default="auto",
        help="exclude the first 5 minutes (EC57): auto = on records of 10 minutes or more",
    )
    p.add_argument(
        "--settle-s",
        type=float,
        default=1.0,
        help="seconds left out at the start when the 5-minute rule does not apply (default 1)",
    )
    p.add_argument("--json", dest="json_path", help="also write the results as JSON here")
    p.set_defaults(func=lambda args: _run(p, args))


def _run(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from ..errors import InvalidInputError
    from .bxb import ScoreSettings
    from .command import ScoreRequest, detections_only_ready, score_command

    if args.detections:
        problem = detections_only_ready({"reference": args.reference, "fs": args.fs})
        if problem or args.model or args.records:
            p.error(problem or "--detections takes no MODEL or records")
    elif not args.model or not args.records:
        p.error("expected MODEL and at least one record (or --detections)")
    try:
        settings = ScoreSettings(args.window_ms / 1e3, args.skip_first, args.settle_s)
    except InvalidInputError as exc:
        p.error(str(exc))
    request = ScoreRequest(
        model=args.model,
        records=tuple(args.records),
        settings=settings,
        channel=args.channel,
        annotation=args.ann,
        reference_csv=args.reference if args.detections else args.ann_csv,
        detections_csv=args.detections,
        fs=args.fs,
        span=(args.first, args.last),
        json_path=args.json_path,
    )
    return score_command(request)
