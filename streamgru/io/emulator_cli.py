"""``streamgru simulate``: the device emulator on the command line (its arguments, and the run).

The signal and fault options build an :class:`~streamgru.io.emulator.EmulatorConfig`; where the
bytes go (``--serve``, ``--pty``, stdout) and ``--report`` are a :class:`SimulateOutput`.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover - imported when a simulation runs (the parser stays light)
    from .emulator import EmulatorConfig


@dataclass(frozen=True)
class SimulateOutput:
    """Where a simulated device is served: ``serve`` (tcp://HOST:PORT), a new pty (``pty``,
    ``pty_link``: a symlink kept at the current pty), else raw bytes on stdout; ``report``: a
    file that also gets the JSON report."""

    serve: str | None = None
    pty: bool = False
    pty_link: str | None = None
    report: str | None = None


def simulate_command(config: EmulatorConfig, output: SimulateOutput) -> int:
    """Run the emulator as ``streamgru simulate`` does; returns the exit code.

    Prints the address to connect to (``tcp://127.0.0.1:PORT`` or the pty path) as the first
    line of stdout; raw mode writes the byte stream itself to stdout. At exit, the report goes
    to stderr as one JSON line and to ``output.report`` (a file) when given.
    """
    from .emulator import Emulator

    emu = Emulator(config)

    def announce(where) -> None:
        text = f"tcp://{where[0]}:{where[1]}" if isinstance(where, tuple) else str(where)
        print(text, flush=True)

    previous = None
    if threading.current_thread() is threading.main_thread():
        import signal

        previous = signal.signal(signal.SIGTERM, lambda *_: emu.stop_event.set())
    try:
        if output.serve:
            from .uri import parse_uri

            u = parse_uri(output.serve, "tcp://127.0.0.1:PORT")
            if u.scheme != "tcp" or u.port is None:
                raise ConfigError(f"--serve expects tcp://HOST:PORT, got {output.serve!r}")
            emu.serve_tcp(u.host or "127.0.0.1", u.port, announce)
        elif output.pty or output.pty_link:
            emu.serve_pty(output.pty_link, announce)
        else:
            emu.serve_stdout()
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            import signal

            signal.signal(signal.SIGTERM, previous)
        text = json.dumps(emu.report.to_dict())
        print(text, file=sys.stderr, flush=True)
        if output.report:
            Path(output.report).write_text(text + "\n", encoding="utf-8")
    return 0


def add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="emulate an SGB1 device (synthetic or recorded signal) on TCP, a pty or stdout",
        description="Behave like the firmware on the host: send HELLO and DATA frames, answer "
        "START/STOP/GET_INFO/PING/TIME_SYNC, inject faults on request. With --serve or --pty "
        "the first line on stdout is where to connect; without, the raw byte stream goes to "
        "stdout. At exit a JSON report of everything sent and injected goes to stderr "
        "(and to --report).",
    )
    _add_signal_arguments(p)
    _add_link_arguments(p)
    _add_fault_arguments(p)
    p.add_argument("--report", metavar="FILE", help="also write the JSON report to FILE")
    p.set_defaults(func=_run)


def _add_signal_arguments(p: argparse.ArgumentParser) -> None:
    """What the device samples, and how it puts it on the wire."""
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


def _add_link_arguments(p: argparse.ArgumentParser) -> None:
    """When the device starts, and where it is served."""
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


def _add_fault_arguments(p: argparse.ArgumentParser) -> None:
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


def _run(args: argparse.Namespace) -> int:
    from .emulator import EmulatorConfig, Faults, parse_at

    faults = Faults(
        args.drop_every,
        args.flip_every,
        args.garbage_every,
        parse_at(args.pause_at, "--pause-at"),
        parse_at(args.disconnect_at, "--disconnect-at"),
    )
    config = EmulatorConfig(
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
        autostart=not args.wait_start,
        start_index=args.start_index,
        faults=faults,
        loop=args.loop,
    )
    output = SimulateOutput(args.serve, args.pty, args.pty_link, args.report)
    return simulate_command(config, output)
