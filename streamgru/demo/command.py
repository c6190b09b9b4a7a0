"""``streamgru demo``: a real ECG through an emulated device into the daemon, beats out.

The device emulator replays a segment of MIT-BIH record 100 (shipped in the package) as SGB1
frames over a pty (TCP loopback where there is no pty or no pyserial), faster than real time;
the daemon's own pipeline (reader thread, filter + GRU in one compiled call per chunk, sink
writer) reads it, runs the shipped beat detector and prints each beat as it is decided. At the
end it scores the detections against the record's reference annotations (sensitivity and
positive predictivity with a 150 ms tolerance) and reports the latency from a sample's arrival
to its prediction being written, and how many samples were lost (none, on a healthy link).

By default the segment is the part of record 100 the model never trained on (its metadata's
``held_out_samples``, see :mod:`streamgru.demo.segment`); the summary names the segment and its
sample range, so a score on training data (``--segment training``) is never mistaken for one on
unseen ECG.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..daemon.config import parse_config
from ..daemon.daemon import Daemon
from ..errors import StreamgruError
from .record import read_beats, read_record
from .segment import RECORD, Segment, choose_segment, clock
from .view import DEFAULT_LINGER_S, announce, schedule_stop, view_address

#: Beats are matched to the reference annotations within this tolerance (AAMI EC57 practice).
TOLERANCE_S = 0.150
#: Margins left out of the scoring: the first second (the filter and the GRU settle) and the
#: last half second (a beat there may not be decided yet).
HEAD_S, TAIL_S = 1.0, 0.5
STREAM_ID = "ecg"


def default_model() -> tuple[Path, bool]:
    """``(path, trained)``: the shipped beat detector, else the untrained example.

    Both live in the package (``streamgru/data/weights``; ``weights/`` at the repository root
    links to them), so the demo runs from an installed package as from a clone.
    """
    weights = Path(__file__).resolve().parents[1] / "data" / "weights"
    trained = weights / "ecg_beats.safetensors"
    if trained.is_file():
        return trained, True
    return weights / "example_tiny.safetensors", False


def choose_transport(transport: str) -> str:
    """ "pty" when a pty and pyserial are available (or asked for), else "tcp"."""
    if transport != "auto":
        return transport
    try:
        import serial  # noqa: F401  (pyserial opens the pty's serial:// side)
    except ImportError:
        return "tcp"
    if not hasattr(os, "openpty"):
        return "tcp"
    try:
        master, slave = os.openpty()
    except OSError:
        return "tcp"
    os.close(master)
    os.close(slave)
    return "pty"


@dataclass
class Live:
    """What the demo shows while it runs (updated on the processing thread)."""

    fs: float
    reference: np.ndarray  # (n,) int64 beat indices, relative to the segment's start
    out: TextIO
    quiet: bool
    tty: bool
    duration: float
    offset: int = 0  # record index of the segment's first sample (for the times shown)
    started: float = field(default_factory=time.monotonic)
    first_index: int | None = None
    next_index: int = 0
    beats: list[int] = field(default_factory=list)
    last_progress: float = 0.0

    @property
    def progress_every(self) -> float:
        """Seconds between plain progress lines when the output is not a terminal."""
        return max(1.0, self.duration / 10.0)

    def on_block(self, block) -> None:
        if self.first_index is None:
            self.first_index = block.first_index
        self.next_index = block.first_index + block.n_samples
        now = time.monotonic()
        if self.quiet:
            return
        if self.tty and now - self.last_progress > 0.2:
            self.last_progress = now
            self._progress(now)
        elif not self.tty and now - self.last_progress >= self.progress_every:
            # not a terminal (a pipe, a log): a plain progress line now and then
            self.last_progress = now
            seconds = (self.next_index - (self.first_index or 0)) / self.fs
            print(
                f"  progress: {now - self.started:5.1f} s of {self.duration:g} s, "
                f"{seconds:.1f} s of ECG, {len(self.beats)} beats",
                file=self.out,
                flush=True,
            )

    def on_event(self, stream_id: str, event) -> None:
        self.beats.append(int(event.index))
        if self.quiet:
            return
        ref = self.reference
        k = int(np.searchsorted(ref, event.index))
        near = [ref[j] for j in (k - 1, k) if 0 <= j < ref.size]
        ok = any(abs(int(r) - event.index) <= TOLERANCE_S * self.fs for r in near)
        t = (event.index + self.offset) / self.fs  # time in the record
        hr = "" if event.hr_bpm is None else f"{event.hr_bpm:5.0f} bpm"
        mark = "matches an annotated beat" if ok else "no annotated beat within 150 ms"
        line = (
            f"  beat {len(self.beats):4d}  at {int(t // 60):02d}:{t % 60:06.3f}  {hr:>9s}  {mark}"
        )
        if self.tty:
            line = "\r\033[K" + line
        print(line, file=self.out, flush=True)
        if self.tty:
            self._progress(time.monotonic())

    def _progress(self, now: float) -> None:
        done = min(1.0, (now - self.started) / self.duration)
        bar = "#" * int(done * 30) + "." * (30 - int(done * 30))
        seconds = (self.next_index - (self.first_index or 0)) / self.fs
        print(
            f"\r\033[K  [{bar}] {seconds:6.1f} s of ECG, {len(self.beats)} beats",
            end="",
            file=self.out,
            flush=True,
        )


@dataclass(frozen=True)
class DemoRun:
    """What one demo run replays, and how.

    Attributes
    ----------
    record : the whole record (:class:`~streamgru.demo.record.Record`)
    reference : (n,) int64 annotated beats of the segment, relative to its start
    segment : the record range replayed (:class:`~streamgru.demo.segment.Segment`)
    n_needed : samples written for the emulator (from the segment's start)
    loop : whether the emulator loops them (a run longer than the segment)
    """

    record: Any
    reference: np.ndarray
    segment: Segment
    n_needed: int
    loop: bool
    model_path: Path
    trained: bool
    transport: str
    duration: float
    speed: float
    view: tuple[str, str] | None = None  # (sink URI, page URL) with --view
    linger: float = 0.0  # seconds the view stays up after the replay


@dataclass(frozen=True)
class DemoOptions:
    """The settings of ``streamgru demo`` (its command-line options).

    ``segment`` ("held-out", the default, or "training") picks the model's range of record 100
    from its metadata; ``start``/``stop`` (record sample indices) choose a range instead.
    ``model`` None: the shipped beat detector. ``as_json``: the summary as one JSON object.
    """

    duration: float = 30.0
    speed: float = 4.0
    transport: str = "auto"
    model: str | None = None
    quiet: bool = False
    as_json: bool = False
    segment: str = "held-out"
    start: int | None = None
    stop: int | None = None
    view: bool = False  # serve the live view (streamgru.demo.view)
    view_port: int | None = None
    linger: float | None = None  # seconds the view stays up after the replay (None: 30)


def demo_command(options: DemoOptions | None = None, out: TextIO | None = None) -> int:
    """Run the demo (see the module docstring) with ``options``, printing to ``out`` (default
    stdout); returns the exit code."""
    o = options if options is not None else DemoOptions()
    out = sys.stdout if out is None else out
    duration, speed = o.duration, o.speed
    if not (duration > 0 and math.isfinite(duration)) or not (speed > 0 and math.isfinite(speed)):
        raise StreamgruError(f"--duration and --speed must be > 0, got {duration} and {speed}")
    if o.model is None:
        model_path, trained = default_model()
    else:
        model_path, trained = Path(o.model), True
    if not model_path.is_file():
        raise StreamgruError(f"model not found: {model_path}")
    transport = choose_transport(o.transport)
    record = read_record(RECORD)
    seg = choose_segment(model_path, record.digital.shape[0], o.segment, o.start, o.stop)
    beats = read_beats(RECORD)
    reference = beats[(beats >= seg.start) & (beats < seg.stop)] - seg.start
    fs = record.fs
    length = seg.stop - seg.start
    n_needed = min(length, int((duration * speed + 10.0) * fs))
    run = DemoRun(
        record,
        reference,
        seg,
        n_needed,
        duration * speed + 10.0 > length / fs,
        model_path,
        trained,
        transport,
        duration,
        speed,
        view_address(o.view_port) if o.view else None,
        (DEFAULT_LINGER_S if o.linger is None else o.linger) if o.view else 0.0,
    )
    if not o.as_json:
        _print_header(run, out)
    work = Path(tempfile.mkdtemp(prefix="streamgru-demo-"))
    try:
        return _run(work, run, o.quiet, o.as_json, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _print_header(run: DemoRun, out: TextIO) -> None:
    record, seg, fs = run.record, run.segment, run.record.fs
    print(
        f"streamgru demo: MIT-BIH record {RECORD} ({', '.join(record.labels)}, {fs:g} Hz), "
        f"{seg.describe(fs)}, replayed at {run.speed:g}x for {run.duration:g} s over "
        f"{run.transport}",
        file=out,
    )
    if seg.note:
        print(f"  segment: {seg.note}", file=out)
    note = "" if run.trained else "  (the UNTRAINED example: expect poor beat scores)"
    print(f"  model {run.model_path}{note}", file=out, flush=True)


def _emulator(work: Path, run: DemoRun):
    """The emulated device replaying the segment (written to a CSV in ``work``)."""
    from ..io.emulator import Emulator

    record, seg = run.record, run.segment
    csv = work / "100.csv"
    values = record.physical(seg.start + run.n_needed)[seg.start :]
    with open(csv, "w") as fh:  # the emulator quantises back to the exact ADC values
        fh.write(",".join(record.labels) + "\n")
        fh.write("\n".join(",".join(repr(float(v)) for v in row) for row in values) + "\n")
    return Emulator(
        record=str(csv),
        fs=record.fs,
        sample_format="int16",
        gain=float(record.gain[0]),
        baseline=float(record.baseline[0]),
        speed=run.speed,
        loop=run.loop,
        device_id="mitdb-100-emulator",
    )


def _daemon_config(source: str, run: DemoRun):
    """The daemon's configuration: one stream from ``source``, beats on, sinks discarded."""
    return parse_config(
        {
            "stream": [
                {
                    "id": STREAM_ID,
                    "source": source,
                    "model": str(run.model_path),
                    "filter": "model",
                    "events": True,
                    "sinks": ["null://", *([run.view[0]] if run.view else [])],
                }
            ],
            "daemon": {
                "reconnect_initial_s": 0.02,
                "reconnect_max_s": 0.2,
                "snapshot_interval_s": 0,
            },
            "metrics": {"enabled": False},
            "logging": {"level": "error"},  # the demo's own lines are its interface
        }
    )


def _run(work: Path, run: DemoRun, quiet: bool, as_json: bool, out: TextIO) -> int:
    seg, transport, duration = run.segment, run.transport, run.duration
    emu = _emulator(work, run)
    # The device's clock runs from boot: it starts once the daemon is ready, and the daemon's
    # reader retries until the pty (a symlink made by the emulator) or the port is there.
    link, port = work / "ttyECG", _free_port()
    source = f"serial://{link}" if transport == "pty" else f"tcp://127.0.0.1:{port}"
    config = _daemon_config(source, run)
    live = Live(
        fs=run.record.fs,
        reference=run.reference,
        out=out,
        quiet=quiet or as_json,
        tty=bool(getattr(out, "isatty", lambda: False)()),
        duration=duration,
        offset=seg.start,
    )
    daemon = Daemon(config, on_block=live.on_block, on_event=live.on_event)
    t0 = time.monotonic()
    with daemon.capture_signals():
        daemon.startup()
        if transport == "pty":
            emu.start_pty(str(link))
        else:
            emu.start_tcp("127.0.0.1", port)
        live.started = live.last_progress = time.monotonic()
        if run.view is not None:
            announce(run.view[1], run.linger, out)
        timers = schedule_stop(duration, run.linger, emu.stop, daemon.request_stop)
        try:
            daemon.main_loop()
        finally:
            for timer in timers:
                timer.cancel()
            daemon.shutdown()
            emu.stop()
    wall = time.monotonic() - t0
    summary = _summary(daemon, live, run, wall)
    if as_json:
        print(json.dumps(summary), file=out)
    else:
        if live.tty and not live.quiet:
            print("\r\033[K", end="", file=out)
        _print_summary(summary, out)
    return 0 if summary["samples_in"] > 0 else 1


def _summary(daemon: Daemon, live: Live, run: DemoRun, wall: float) -> dict[str, Any]:
    """The run's figures. Stream indices count from the segment's start (the emulated device's
    sample 0); ``first_index``/``end_index`` are record indices. Only the first pass through
    the segment is scored (a longer run loops it, and its reference is that of the first pass)."""
    rt = daemon.streams[STREAM_ID]
    c = rt.counters
    seg, fs, reference = run.segment, run.record.fs, run.reference
    first = live.first_index if live.first_index is not None else 0
    end = min(live.next_index, seg.stop - seg.start)
    lo, hi = first + round(HEAD_S * fs), end - round(TAIL_S * fs)
    match = score_beats(np.array(live.beats, dtype=np.int64), reference, fs, lo, hi)
    det = np.array([b for b in live.beats if lo <= b < hi], dtype=np.int64)
    ref = reference[(reference >= lo) & (reference < hi)]
    lat = rt.latency.percentiles((50, 99))
    return {
        "record": f"mitdb/{RECORD}",
        "segment": seg.kind,
        "segment_label": seg.label,
        "segment_samples": [seg.start, seg.stop],
        "segment_note": seg.note,
        "scored_samples": [seg.start + lo, seg.start + max(lo, hi)],
        "model": str(run.model_path),
        "trained_model": run.trained,
        "transport": run.transport,
        "speed": run.speed,
        "wall_s": round(wall, 2),
        "ecg_s": round((live.next_index - first) / fs, 2),
        "fs": fs,
        "first_index": seg.start + first,
        "end_index": seg.start + live.next_index,
        "beats_detected": int(det.size),
        "beats_annotated": int(ref.size),
        "tp": match.tp,
        "fp": match.fp,
        "fn": match.fn,
        "sensitivity": _nan_none(match.sensitivity),
        "ppv": _nan_none(match.ppv),
        "latency_p50_ms": _ms(lat["p50"]),
        "latency_p99_ms": _ms(lat["p99"]),
        "samples_in": c.samples_in,
        "samples_out": c.samples_out,
        "samples_lost": c.samples_lost,
        "dropped": c.dropped_output,
        "crc_errors": c.crc_errors,
    }


def score_beats(detected: np.ndarray, reference: np.ndarray, fs: float, lo: int, hi: int):
    """Beat-by-beat scores in the window [lo, hi) (a :class:`~streamgru.signal.beats.BeatMatch`).

    Detections and references are paired over the whole run first (150 ms tolerance), then
    counted inside the window: a reference beat inside is matched or missed, a detection inside
    that pairs with nothing is false. A pair that straddles the window's edge is thus never
    counted as an error.
    """
    from ..signal.beats import BeatMatch, pair_beats

    paired_det, paired_ref = pair_beats(detected, reference, fs, TOLERANCE_S)
    inside_ref = (reference >= lo) & (reference < hi)
    tp = int(((paired_ref >= lo) & (paired_ref < hi)).sum())
    fn = int(inside_ref.sum()) - tp
    unpaired = np.setdiff1d(detected, paired_det)
    fp = int(((unpaired >= lo) & (unpaired < hi)).sum())
    sens = tp / (tp + fn) if tp + fn else float("nan")
    ppv = tp / (tp + fp) if tp + fp else float("nan")
    return BeatMatch(tp, fp, fn, sens, ppv)


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _nan_none(x: float) -> float | None:
    return None if x != x else x


def _ms(seconds: float) -> float | None:
    return None if seconds != seconds else round(seconds * 1e3, 3)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f} %"


#: What the scores of each kind of segment are.
_SEGMENT_MEANS = {
    "held-out": "the model never trained on it",
    "training": "the model trained on it: these are training-set scores",
    "other": "outside the ranges the model's metadata names",
}


def _print_summary(s: dict[str, Any], out: TextIO) -> None:
    lat50 = "n/a" if s["latency_p50_ms"] is None else f"{s['latency_p50_ms']:.3f} ms"
    lat99 = "n/a" if s["latency_p99_ms"] is None else f"{s['latency_p99_ms']:.3f} ms"
    fs, (a, b), label = s["fs"], s["segment_samples"], s["segment_label"]
    lines = [
        "",
        f"summary: {s['ecg_s']:.1f} s of ECG (samples {s['first_index']}..{s['end_index']}) "
        f"in {s['wall_s']:.1f} s at {s['speed']:g}x over {s['transport']}",
        f"  segment      {label} of MIT-BIH record {s['record'].split('/')[-1]}: samples "
        f"{a}..{b} ({clock(a / fs)}-{clock(b / fs)}); {_SEGMENT_MEANS[s['segment']]}",
        f"  beats        {s['beats_detected']} detected, {s['beats_annotated']} annotated "
        f"(scored from {HEAD_S:g} s after the start to {TAIL_S:g} s before the end)",
        f"  sensitivity  {_pct(s['sensitivity'])}   PPV {_pct(s['ppv'])}   on the {label} "
        f"(tolerance {TOLERANCE_S * 1e3:.0f} ms: {s['tp']} matched, {s['fp']} false, "
        f"{s['fn']} missed)",
        f"  latency      p50 {lat50}   p99 {lat99}   (sample arrival to prediction written)",
        f"  samples      {s['samples_in']} in, {s['samples_out']} out, "
        f"{s['samples_lost']} lost, {s['dropped']} dropped, {s['crc_errors']} CRC errors",
    ]
    if not s["trained_model"]:
        lines.append("  note         untrained example weights: the beat scores mean nothing")
    print("\n".join(lines), file=out, flush=True)
