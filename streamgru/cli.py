"""The ``streamgru`` command: argument parsing only; the work happens in the packages
(:mod:`streamgru.daemon`, :mod:`streamgru.cluster`, :mod:`streamgru.bench`, :mod:`streamgru.demo`).

Each subcommand has one ``_add_<name>`` function that defines its arguments and sets ``func``
to the package callable that does the work and returns the exit code.
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
    p = sub.add_parser(
        "info", help="describe a weights file: sizes, layers, head, metadata, checksum"
    )
    p.add_argument("model", help="weights file (.safetensors, .npz, .pt, .onnx, .h5, .keras)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    def run(args: argparse.Namespace) -> int:
        from .daemon.tools import info_command

        return info_command(args.model, as_json=args.json)

    p.set_defaults(func=run)


def _add_convert(sub: argparse._SubParsersAction) -> None:
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
        from .daemon.tools import convert_command

        return convert_command(args.src, args.dst, n_samples=args.samples, atol=args.atol)

    p.set_defaults(func=run)


def _config_error(command: str, exc: Exception) -> int:
    """Print a configuration error and return :data:`EXIT_CONFIG` (78)."""
    print(f"streamgru {command}: configuration error: {exc}", file=sys.stderr)
    return EXIT_CONFIG


def _add_run(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument(
        "--exit-on-refused",
        action="store_true",
        help="a refused source (wrong rate or channels) ends its stream even when it is a live "
        "device (default: files and synthetic sources end, devices are retried); the daemon "
        "exits 78 once no stream is left running",
    )
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

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        from .daemon.commands import run_command
        from .daemon.config import adhoc_config, load_config, with_overrides
        from .errors import ConfigError

        try:
            if args.config:
                if args.source or args.model:
                    raise ConfigError("--config: give either --config or --source/--model")
                if _is_cluster_file(args.config):
                    return _run_worker(args)
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
                config = adhoc_config(
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
            if args.exit_on_refused:
                config = with_overrides(config, exit_on_refused=True)
            return run_command(config)
        except ConfigError as exc:
            return _config_error("run", exc)

    p.set_defaults(func=run)


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
    p = sub.add_parser("config", help="work with daemon configuration files")
    actions = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="validate a site or [cluster] worker config (and load its models) without running",
    )
    check.add_argument("file", help="the TOML file")
    check.add_argument("--no-models", action="store_true", help="do not load the models")
    check.add_argument("-q", "--quiet", action="store_true", help="print nothing when good")

    def run(args: argparse.Namespace) -> int:
        from .daemon.commands import config_check_command
        from .errors import ConfigError

        try:
            if _is_cluster_file(args.file):
                from .cluster.command import cluster_check_command

                return cluster_check_command(args.file, models=not args.no_models, quiet=args.quiet)
            return config_check_command(args.file, models=not args.no_models, quiet=args.quiet)
        except ConfigError as exc:
            return _config_error("config check", exc)

    check.set_defaults(func=run)


def _add_demo(sub: argparse._SubParsersAction) -> None:
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

    def run(args: argparse.Namespace) -> int:
        from .demo.command import demo_command

        return demo_command(
            duration=args.duration,
            speed=args.speed,
            transport=args.transport,
            model=args.model,
            quiet=args.quiet,
            as_json=args.json,
            segment=args.segment,
            start=args.start,
            stop=args.stop,
        )

    p.set_defaults(func=run)


def _add_bench(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument(
        "--json", metavar="OUT", help="write the report as JSON (bench_schema.json); - for stdout"
    )
    p.add_argument(
        "--plot", metavar="OUT.png", help="write a PNG (needs matplotlib: the bench extra)"
    )
    p.add_argument("--quick", action="store_true", help="a tiny run: few samples, small sizes")
    p.add_argument("--quiet", action="store_true", help="no progress line and no text summary")

    def run(args: argparse.Namespace) -> int:
        from .bench.command import BenchOptions, bench_command, parse_ints, parse_list
        from .bench.models import parse_size

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

    p.set_defaults(func=run)


def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="emulate an SGB1 device (synthetic or recorded signal) on TCP, a pty or stdout",
        description="Behave like the firmware on the host: send HELLO and DATA frames, answer "
        "START/STOP/GET_INFO/PING/TIME_SYNC, inject faults on request. With --serve or --pty "
        "the first line on stdout is where to connect; without, the raw byte stream goes to "
        "stdout. At exit a JSON report of everything sent and injected goes to stderr "
        "(and to --report).",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--kind",
        choices=("ecg", "sine", "noise"),
        default="ecg",
        help="synthetic signal (default ecg)",
    )
    what.add_argument("--record", metavar="FILE", help="play a .npy, .csv or WFDB .hea record")
    p.add_argument("--loop", action="store_true", help="repeat the record")
    p.add_argument("--fs", type=float, help="sample rate in Hz (default 250; .hea: its own)")
    p.add_argument("--channels", type=int, default=1, help="channels of a synthetic signal")
    p.add_argument(
        "--format",
        dest="sample_format",
        choices=("int16", "int24", "float32"),
        default="int16",
        help="wire sample format (default int16)",
    )
    p.add_argument(
        "--gain", type=float, help="counts per unit (default: the record's, else 1000 / 100000 / 1)"
    )
    p.add_argument("--baseline", type=float, default=0.0, help="counts at 0 (default 0)")
    p.add_argument("--seed", type=int, default=0, help="signal and fault seed (default 0)")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="1 real time (default), 10 ten times faster, 0 as fast as possible",
    )
    p.add_argument("--duration", type=float, metavar="S", help="seconds of signal, then exit")
    p.add_argument("--frame-samples", type=int, metavar="N", help="samples per DATA frame")
    p.add_argument(
        "--start-index",
        type=int,
        default=0,
        metavar="I",
        help="device index of the first sample (e.g. 4294967000 to test wrap-around)",
    )
    p.add_argument(
        "--wait-start",
        action="store_true",
        help="send DATA only after the host's START (default: stream from boot)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--serve",
        metavar="tcp://127.0.0.1:PORT",
        help="serve one host at a time on TCP (PORT 0: any free port)",
    )
    where.add_argument(
        "--pty", action="store_true", help="serve on a new pseudo-terminal (prints its path)"
    )
    p.add_argument(
        "--pty-link", metavar="PATH", help="with --pty: keep a symlink at PATH to the current pty"
    )
    faults = p.add_argument_group("faults (all counted in the report)")
    faults.add_argument(
        "--drop-every", type=int, default=0, metavar="N", help="do not send every N-th DATA frame"
    )
    faults.add_argument(
        "--flip-every",
        type=int,
        default=0,
        metavar="N",
        help="change one byte of every N-th DATA frame",
    )
    faults.add_argument(
        "--garbage-every",
        type=int,
        default=0,
        metavar="N",
        help="send random bytes and a 0x00 before every N-th DATA frame",
    )
    faults.add_argument(
        "--pause-at",
        metavar="SAMPLE:SECONDS",
        help="stall the output at SAMPLE for SECONDS (nothing lost)",
    )
    faults.add_argument(
        "--disconnect-at",
        metavar="SAMPLE:SECONDS",
        help="close the link at SAMPLE, come back after SECONDS (samples lost)",
    )
    p.add_argument("--report", metavar="FILE", help="also write the JSON report to FILE")

    def run(args: argparse.Namespace) -> int:
        from .io.emulator import simulate_command

        return simulate_command(
            kind=args.kind,
            record=args.record,
            fs=args.fs,
            channels=args.channels,
            sample_format=args.sample_format,
            gain=args.gain,
            baseline=args.baseline,
            seed=args.seed,
            speed=args.speed,
            duration=args.duration,
            frame_samples=args.frame_samples,
            serve=args.serve,
            pty=args.pty,
            pty_link=args.pty_link,
            wait_start=args.wait_start,
            start_index=args.start_index,
            drop_every=args.drop_every,
            flip_every=args.flip_every,
            garbage_every=args.garbage_every,
            pause_at=args.pause_at,
            disconnect_at=args.disconnect_at,
            report=args.report,
            loop=args.loop,
        )

    p.set_defaults(func=run)


def _add_export(sub: argparse._SubParsersAction) -> None:
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
        from . import load_model
        from .export import export_c

        model = load_model(args.model)
        export_c(model, args.output, args.dtype, args.prefix, args.calibrate, args.no_libm)
        return 0

    c.set_defaults(func=run)


def _add_score(sub: argparse._SubParsersAction) -> None:
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

    def run(args: argparse.Namespace) -> int:
        from .errors import InvalidInputError
        from .evaluation.bxb import ScoreSettings
        from .evaluation.command import ScoreRequest, detections_only_ready, score_command

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


_SUBCOMMANDS = [
    _add_info,
    _add_convert,
    _add_run,
    _add_config,
    _add_demo,
    _add_bench,
    _add_simulate,
    _add_export,
    _add_score,
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
