"""``streamgru bench`` on the command line: its arguments (see :mod:`streamgru.bench.command`)."""

from __future__ import annotations

import argparse


def add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="per-sample latency, chunk and many-stream throughput, beside PyTorch and ONNX "
        "Runtime",
        description="Benchmark the engine (see bench/README.md). Alternatives run on the same "
        "weights and must match streamgru's outputs before they are timed.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", metavar="PATH", help="benchmark a weights file")
    src.add_argument(
        "--size",
        metavar="I,H,L",
        action="append",
        help="a seeded random model of these sizes (repeatable; default 8,64,1)",
    )
    _add_measurement_arguments(p)
    _add_output_arguments(p)
    p.set_defaults(func=_run)


def _add_measurement_arguments(p: argparse.ArgumentParser) -> None:
    """What is measured, and how long."""
    p.add_argument(
        "--modes",
        default="step,chunk,many,filter,pipeline,daemon",
        help="comma-separated: step,chunk,many,filter,pipeline,daemon (default: all)",
    )
    p.add_argument(
        "--compare",
        default="torch,onnxruntime",
        help="alternatives to time: torch,onnxruntime or none (default: both)",
    )
    p.add_argument(
        "--fs",
        type=float,
        metavar="HZ",
        help="sample rate: the deadline is 1/fs (default: the model's fs, else 1000)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds per latency distribution; throughput points get S/8 (default 2)",
    )
    p.add_argument("--chunks", metavar="T,...", help="chunk lengths (default 1,16,64,256,1024)")
    p.add_argument("--streams", metavar="B,...", help="stream counts (default 1,16,256,1024,4096)")
    p.add_argument(
        "--first-call",
        choices=("both", "cold", "warm", "none"),
        help="first-call latency in a fresh process (default both; warm with --quick)",
    )
    p.add_argument(
        "--filter",
        metavar="PRESET",
        dest="filter_preset",
        help="filter preset for filter/pipeline modes (default: 4-section band-pass)",
    )
    p.add_argument(
        "--daemon-streams",
        type=int,
        default=8,
        metavar="N",
        help="emulated devices in the daemon mode (default 8)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random model and inputs")


def _add_output_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--json", metavar="OUT", help="write the report as JSON (bench_schema.json); - for stdout"
    )
    p.add_argument(
        "--plot", metavar="OUT.png", help="write a PNG (needs matplotlib: the bench extra)"
    )
    p.add_argument("--quick", action="store_true", help="a tiny run: few samples, small sizes")
    p.add_argument("--quiet", action="store_true", help="no progress line and no text summary")


def _run(args: argparse.Namespace) -> int:
    from .command import BenchOptions, bench_command, parse_ints, parse_list
    from .models import parse_size

    options = BenchOptions(
        model_path=args.model,
        sizes=[parse_size(s) for s in args.size or []],
        modes=parse_list(args.modes, "--modes"),
        compare=parse_list(args.compare, "--compare"),
        fs=args.fs,
        duration_s=args.duration,
        quick=args.quick,
        first_call=args.first_call,
        chunk_lengths=parse_ints(args.chunks, "--chunks"),
        stream_counts=parse_ints(args.streams, "--streams"),
        filter_preset=args.filter_preset,
        daemon_streams=args.daemon_streams,
        seed=args.seed,
    )
    return bench_command(options, json_out=args.json, plot_out=args.plot, quiet=args.quiet)
