"""``streamgru bench``: latency and throughput of the engine, beside PyTorch and ONNX Runtime.

What is measured (docs/design.md sections 1.3 and 10), for one model or several sizes:

* ``step``: the per-sample latency distribution of ``Stepper.step`` called from Python (every
  call timed with ``perf_counter_ns``, after warm-up, garbage collector paused): p50, p90, p99,
  p99.9, max, jitter (p99 − p50, std), deadline misses at ``fs``; the first-call latency of a
  fresh process with a cold and a warm numba cache; the same distribution for the per-sample
  alternatives (``torch.nn.GRUCell``, ONNX Runtime ``run()``);
* ``chunk``: ``step_chunk`` throughput against the chunk length, beside ``torch.nn.GRU`` and ONNX
  Runtime's fused GRU on the same blocks;
* ``many``: ``BatchStepper.step`` throughput (stream-steps/s) against the number of streams,
  beside batched GRUCell / ONNX Runtime, and a single-thread sgemm of the same FLOPs;
* ``filter``: ``FilterChain.step`` against ``scipy.signal.sosfilt`` per sample;
* ``pipeline``: filter + GRU per sample against the GRU alone;
* ``daemon``: socket-to-sink latency of the daemon (:mod:`streamgru.bench.daemon`).

Every alternative runs on the same weights and must give streamgru's outputs (max abs
difference ≤ 1e-4, float32) on a random input before it is timed; otherwise its comparison
stops with :class:`~streamgru.bench.runners.BenchmarkMismatchError` and no ratio is
reported. BLAS, torch and ONNX Runtime run on one thread. Ratios are taken within one run.

The report is a dict following ``schema.json`` (see :mod:`streamgru.bench.report`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ConfigError, require
from ..model.core import GRUModel
from .machine import describe_machine
from .models import DEFAULT_SIZE, random_model
from .progress import Progress
from .run import ModelRun
from .runners import BenchmarkMismatchError
from .timing import load_blas_libraries, timer_overhead_ns

SCHEMA_VERSION = 1
MODES = ("step", "chunk", "many", "filter", "pipeline", "daemon")
FRAMEWORKS = ("torch", "onnxruntime")
FIRST_CALL = ("both", "cold", "warm", "none")
DEFAULT_CHUNKS = (1, 16, 64, 256, 1024)
DEFAULT_STREAMS = (1, 16, 256, 1024, 4096)
QUICK_CHUNKS = (1, 16, 64)
QUICK_STREAMS = (1, 16, 64)


@dataclass
class BenchOptions:
    """Everything ``streamgru bench`` can be asked; the CLI fills it from its arguments.

    ``sizes`` are (input_size, hidden_size, num_layers) of seeded random models (Linear head to
    one output); with neither ``model_path`` nor ``sizes`` the size is 8,64,1. ``duration_s``
    is the time spent collecting each per-sample latency distribution; every throughput point
    gets an eighth of it (at least five repeats).
    """

    model_path: str | None = None
    sizes: list[tuple[int, int, int]] = field(default_factory=list)
    modes: tuple[str, ...] = MODES
    compare: tuple[str, ...] = FRAMEWORKS
    fs: float | None = None
    duration_s: float = 2.0
    quick: bool = False
    first_call: str | None = None
    chunk_lengths: tuple[int, ...] | None = None
    stream_counts: tuple[int, ...] | None = None
    filter_preset: str | None = None
    mains: int = 50
    daemon_streams: int = 8
    seed: int = 0
    atol: float = 1e-4
    command: str | None = None

    def to_command(self) -> str:
        """The ``streamgru bench`` command line that asks for these options."""
        parts = ["streamgru", "bench"]
        if self.model_path is not None:
            parts += ["--model", str(self.model_path)]
        for size in self.sizes:
            parts += ["--size", ",".join(str(v) for v in size)]
        if tuple(self.modes) != MODES:
            parts += ["--modes", ",".join(self.modes)]
        if tuple(self.compare) != FRAMEWORKS:
            parts += ["--compare", ",".join(self.compare) or "none"]
        if self.fs is not None:
            parts += ["--fs", f"{self.fs:g}"]
        if self.quick:
            parts.append("--quick")
        else:
            parts += ["--duration", f"{self.duration_s:g}"]
        if self.first_call is not None:
            parts += ["--first-call", self.first_call]
        if self.chunk_lengths is not None:
            parts += ["--chunks", ",".join(str(v) for v in self.chunk_lengths)]
        if self.stream_counts is not None:
            parts += ["--streams", ",".join(str(v) for v in self.stream_counts)]
        if self.filter_preset is not None:
            parts += ["--filter", self.filter_preset]
        if self.daemon_streams != 8:
            parts += ["--daemon-streams", str(self.daemon_streams)]
        if self.seed:
            parts += ["--seed", str(self.seed)]
        return " ".join(parts)

    def resolved(self) -> BenchOptions:
        """A copy with the --quick defaults applied and every value checked."""
        opts = BenchOptions(**asdict(self))
        bad = [m for m in opts.modes if m not in MODES]
        if bad or not opts.modes:
            raise ConfigError(
                f"--modes: expected a comma-separated subset of {','.join(MODES)}, "
                f"got {bad or 'nothing'}"
            )
        bad = [c for c in opts.compare if c not in FRAMEWORKS]
        if bad:
            raise ConfigError(
                f"--compare: expected a subset of {','.join(FRAMEWORKS)} (or none), got {bad}"
            )
        if opts.model_path is not None and opts.sizes:
            raise ConfigError("give --model or --size, not both")
        if opts.fs is not None and not opts.fs > 0:
            raise ConfigError(f"--fs: must be > 0 Hz, got {opts.fs}")
        if not opts.duration_s > 0:
            raise ConfigError(f"--duration: must be > 0 s, got {opts.duration_s}")
        if opts.quick:
            opts.duration_s = min(opts.duration_s, 0.05)
            opts.chunk_lengths = opts.chunk_lengths or QUICK_CHUNKS
            opts.stream_counts = opts.stream_counts or QUICK_STREAMS
            opts.first_call = opts.first_call or "warm"
            opts.daemon_streams = min(opts.daemon_streams, 2)
        opts.chunk_lengths = tuple(opts.chunk_lengths or DEFAULT_CHUNKS)
        opts.stream_counts = tuple(opts.stream_counts or DEFAULT_STREAMS)
        opts.first_call = opts.first_call or "both"
        if opts.first_call not in FIRST_CALL:
            raise ConfigError(
                f"--first-call: expected one of {', '.join(FIRST_CALL)}, got {opts.first_call!r}"
            )
        if opts.daemon_streams < 1:
            raise ConfigError(f"--daemon-streams: must be >= 1, got {opts.daemon_streams}")
        for name, values in (("--chunks", opts.chunk_lengths), ("--streams", opts.stream_counts)):
            if not values or min(values) < 1:
                raise ConfigError(f"{name}: expected positive integers, got {values}")
        if not opts.sizes and opts.model_path is None:
            opts.sizes = [DEFAULT_SIZE]
        return opts


def _count_tasks(opts: BenchOptions, n_models: int) -> int:
    """The number of progress steps a run announces (see ModelRun's ``progress.task`` calls)."""
    per_model = 2 * len(opts.compare)  # output checks
    first_calls = {"both": 2, "cold": 1, "warm": 1, "none": 0}[opts.first_call or "both"]
    per_mode = {
        "step": 1 + first_calls,
        "chunk": len(opts.chunk_lengths or ()),
        "many": len(opts.stream_counts or ()),
        "filter": 1,
        "pipeline": 1,
        "daemon": 1,
    }
    per_model += sum(per_mode[m] for m in opts.modes)
    return per_model * n_models


@contextlib.contextmanager
def _model_file(model: GRUModel, path: str | None) -> Iterator[Path]:
    """The model's file: ``path``, or the model saved to a temporary .safetensors."""
    if path is not None:
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="streamgru-bench-") as tmp:
        file = Path(tmp) / "model.safetensors"
        model.save(file)
        yield file


def run_bench(options: BenchOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Run the benchmark and return its report (a dict following ``schema.json``).

    Raises
    ------
    ConfigError : bad options
    WeightsError : the model file cannot be read
    """
    command = options.command or options.to_command()
    opts = options.resolved()
    models: list[tuple[GRUModel, str]] = []
    if opts.model_path is not None:
        from ..model.formats import load_model

        models.append((load_model(opts.model_path), os.fspath(opts.model_path)))
    for size in opts.sizes:
        models.append(
            (
                random_model(*size, seed=opts.seed),
                f"random {size[0]},{size[1]},{size[2]} seed {opts.seed}",
            )
        )
    progress = progress or Progress(_count_tasks(opts, len(models)), enabled=False)
    load_blas_libraries()  # so that the machine description lists every BLAS pool
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": "streamgru bench",
        "streamgru_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc)
        .replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z"),
        "command": command,
        "settings": {
            "modes": list(opts.modes),
            "compare": list(opts.compare),
            "fs": opts.fs,
            "duration_s": opts.duration_s,
            "quick": opts.quick,
            "first_call": opts.first_call,
            "chunk_lengths": list(opts.chunk_lengths or ()),
            "stream_counts": list(opts.stream_counts or ()),
            "filter_preset": opts.filter_preset,
            "dtype": "float32",
            "threads": 1,
            "seed": opts.seed,
            "atol": opts.atol,
            "timer_overhead_ns": timer_overhead_ns(),
            "gc_paused": True,
        },
        "machine": describe_machine(),
        "runs": [],
    }
    try:
        for model, source in models:
            with _model_file(model, opts.model_path) as file:
                report["runs"].append(ModelRun(model, source, file, opts, progress).run())
    finally:
        progress.close()
    return report


def failures(report: dict[str, Any]) -> list[str]:
    """Messages of every comparison that mismatched or failed, and of every mode in error."""
    out = []
    for run in report.get("runs", []):
        for comp in run.get("comparisons", []):
            if comp["status"] in ("mismatch", "error"):
                out.append(f"{comp['method']}: {comp['note']}")
        for mode, info in run.get("modes", {}).items():
            if info.get("status") == "error":
                out.append(f"mode {mode}: {info.get('note')}")
    return out


def bench_command(
    options: BenchOptions,
    json_out: str | None = None,
    plot_out: str | None = None,
    quiet: bool = False,
    stdout: Any = None,
    stderr: Any = None,
) -> int:
    """``streamgru bench``: run, print a summary, write JSON / PNG.

    Returns the exit code: 1 when a comparison mismatched or failed, else 0.
    """
    from .report import render_text, validate_report, write_json

    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    if plot_out is not None:
        require("matplotlib", "bench", "--plot")
    opts = options.resolved()
    opts.command = options.command or options.to_command()
    n_models = len(opts.sizes) + (1 if opts.model_path else 0)
    progress = Progress(
        _count_tasks(opts, n_models), enabled=None if not quiet else False, stream=stderr
    )
    report = run_bench(opts, progress)
    validate_report(report)
    if json_out == "-":
        write_json(report, stdout)
    else:
        if not quiet:
            stdout.write(render_text(report))
        if json_out is not None:
            write_json(report, json_out)
    if plot_out is not None:
        from .plot import plot_report

        plot_report(report, plot_out)
    problems = failures(report)
    for message in problems:
        print(f"streamgru bench: error: {message}", file=stderr)
    return 1 if problems else 0


def parse_list(text: str | None, what: str) -> tuple[str, ...]:
    """Split a comma-separated option; ``none`` (or empty) gives ()."""
    if text is None:
        return ()
    items = tuple(p.strip() for p in text.split(",") if p.strip())
    return () if items in ((), ("none",)) else items


def parse_ints(text: str | None, what: str) -> tuple[int, ...] | None:
    """``"1,16,64"`` → (1, 16, 64); None stays None."""
    if text is None:
        return None
    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError as exc:
        raise ConfigError(f"{what}: expected comma-separated integers, got {text!r}") from exc


__all__: Sequence[str] = (
    "BenchOptions",
    "BenchmarkMismatchError",
    "bench_command",
    "failures",
    "run_bench",
)
