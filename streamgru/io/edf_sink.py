"""``edf://PATH.edf`` (or ``.bdf``): record a stream as EDF+ / BDF+ with pyedflib (extra ``edf``).

One file per stream: the model's input channels (``PredictionBlock.inputs``, as the model was
fed them, before the filter) then its outputs, all at the rows' rate, and every detected beat
(``PredictionBlock.events``) as an EDF+ annotation ``beat`` at its sample. A ``.bdf`` path writes
24-bit BDF+, anything else 16-bit EDF+.

Options: ``fs`` (Hz; default the blocks' own rate), ``input_range`` / ``output_range``
(``LO,HI``: the physical range of the inputs / outputs; default from the first second,
``±10 × max|x|`` rounded up to 1, 2 or 5 × 10^k (at least ±1), so later values beyond it are
clipped and counted), ``units`` (the inputs' physical dimension, ``""``), ``annotations_per_s``
(4: annotation capacity; EDF+ stores a fixed number per data record, and what would not fit is
dropped and counted), ``max_gap_s`` (10: a gap in the sample index up to this long is written as
the last value held, with an annotation ``gap N``; a longer one is not written, and annotated
``discontinuity N``), ``mode`` (octal permission bits of a file the sink creates, ``0640``
whatever the umask; an existing file keeps its own), ``overwrite`` (0), ``max_annotations``
(1000000: annotations held for the file, see below).

An existing non-empty file is never overwritten unless ``overwrite=1``: the sink writes to the
next free name instead (``out.edf`` → ``out.1.edf``, ``out.2.edf``...; logged as ``edf file
exists``, field ``path``), so a daemon restart (``--resume``, systemd ``Restart=``) or the writer
lane reopening the sink after a write error starts a new file beside the earlier recording.

Data records last 1 s (pyedflib picks another length for a rate that is not a whole number of
samples per second); rows are buffered until a record is full, and at close the last partial
record is padded with its last row after an annotation ``end of data``. Each full record goes to
edflib at once, but edflib completes the header (the record count) and writes the annotations
only at close: a file is a valid EDF+ once the sink is closed (the daemon closes its sinks on
SIGTERM), and a crash leaves the records without the annotations. Because edflib takes the
annotations only at close, the sink holds them until then, compactly (about 12 bytes each); the
growth cannot be avoided with pyedflib, so it is capped at ``max_annotations``: later ones are
dropped, counted in ``annotations_dropped`` and logged once (``edf annotations dropped``). Beats
that arrive before the file is open (in sample-free blocks during the first second) are kept and
written with the rest.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from array import array
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ConfigError, SinkError, require
from .chunk import PredictionBlock
from .sinks import Sink, _file_mode
from .uri import URI, Options

_log = logging.getLogger("streamgru.edf")
#: Most numbered alternatives (``stem.N.edf``) tried before giving up.
MAX_ALTERNATIVES = 10000


def free_path(path: str, mode: int, overwrite: bool) -> str:
    """The path to write: ``path`` itself when absent, empty or ``overwrite``, else the first
    ``stem.N.suffix`` (N = 1, 2, ...) that is absent or empty. A file it creates gets ``mode``
    (``O_EXCL``: two sinks never pick the same new name); an existing empty one keeps its own.

    Raises
    ------
    OSError : the directory cannot be written, or no free name within MAX_ALTERNATIVES.
    """
    stem, suffix = os.path.splitext(path)
    for k in range(MAX_ALTERNATIVES + 1):
        candidate = path if k == 0 else f"{stem}.{k}{suffix}"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            if overwrite or os.path.getsize(candidate) == 0:
                return candidate
            continue
        os.fchmod(fd, mode)  # exactly ``mode`` whatever the umask (edflib's open follows it)
        os.close(fd)
        return candidate
    raise OSError(f"no free name for {path} (tried {stem}.1{suffix} to .{MAX_ALTERNATIVES})")


def _range(text: str | None, name: str) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{name}: expected LO,HI (two numbers), got {text!r}") from None
    if not lo < hi:
        raise ConfigError(f"{name}: expected LO < HI, got {text!r}")
    return lo, hi


def _auto_range(X: np.ndarray) -> tuple[float, float]:
    """``±10 × max|X|`` rounded up to 1, 2 or 5 × 10^k (at least ±1): a header-friendly range."""
    top = float(np.nanmax(np.abs(X))) if X.size else 0.0
    top = max(1.0, 10.0 * top) if np.isfinite(top) else 1.0
    scale = 10.0 ** np.floor(np.log10(top))
    nice = next(m for m in (1.0, 2.0, 5.0, 10.0) if m * scale >= top * (1 - 1e-12))
    return -nice * scale, nice * scale


class EdfSink(Sink):
    """Writes one stream's inputs, outputs and beats to an EDF+/BDF+ file (module docstring).

    Attributes
    ----------
    clipped : samples beyond the physical range (written clipped)
    annotations_dropped : annotations that did not fit the file's annotation capacity, or
        came beyond ``max_annotations``
    path : the file written (another than the URI's when that one already held a recording)
    """

    def __init__(self, uri: str, path: str, settings: dict[str, Any]) -> None:
        super().__init__(uri)
        self._pyedflib = require("pyedflib", "edf", f"{uri}: the edf:// sink")
        self.path = path
        self.bdf = path.lower().endswith(".bdf")
        self.settings = settings
        self.clipped = 0
        self.annotations_dropped = 0
        self._writer: Any = None
        self._stream: str | None = None
        self._fs = 0.0
        self._rows: list[np.ndarray] = []  # (n, S) float64 pieces of the open record
        self._held = 0
        self._per_record = 0
        self._records = 0
        self._next: int | None = None  # the stream index of the next row
        self._origin = 0  # stream index of the file's first row
        self._shift = 0  # samples of the stream not written (long discontinuities)
        self._onsets = array("d")  # seconds, one per annotation held for the close
        self._codes = array("I")  # index into _texts
        self._texts: dict[str, int] = {}
        self._warned = False
        self._lo = self._hi = np.zeros(0)
        self._last_row = np.zeros((1, 0))
        self._annot_per_record = 1
        # before the file is open: blocks and their rows (None: a sample-free block of events)
        self._early: list[tuple[PredictionBlock, np.ndarray | None]] = []

    # -------------------------------------------------------------- writing
    def write(self, block: PredictionBlock) -> None:
        if self.closed:
            raise SinkError(f"{self.uri}: write to a closed sink")
        if self._stream is None:
            self._stream = block.stream_id
        elif block.stream_id != self._stream:
            raise SinkError(
                f"{self.uri}: one EDF file records one stream ({self._stream!r}), "
                f"got a block of {block.stream_id!r}: give each stream its own edf:// path"
            )
        if block.n_samples == 0:
            if self._writer is not None:
                for event in block.events:
                    self._note(int(event.index), "beat")
            elif block.events:  # the file opens later: keep them, in order with the rows
                self._early.append((block, None))
            return
        rows = block.outputs if block.inputs is None else np.hstack([block.inputs, block.outputs])
        rows = np.asarray(rows, dtype=np.float64)
        self.stats.written += block.n_samples
        if self._writer is None:  # the ranges come from the first second: hold it until then
            self._early.append((block, rows))
            fs = float(self.settings["fs"] or block.fs or 0.0)
            if sum(r.shape[0] for _, r in self._early if r is not None) >= fs:
                self._start()
            return
        self._take(block, rows)

    def _start(self) -> None:
        """Open the file with ranges from the rows held so far, then write them."""
        early, self._early = self._early, []
        full = [(b, r) for b, r in early if r is not None]
        if not full:  # only events, no sample: there is no file to note them in
            self.annotations_dropped += sum(len(b.events) for b, _ in early)
            return
        widths = {r.shape[1] for _, r in full}
        if len(widths) > 1:
            raise SinkError(f"{self.uri}: blocks have different numbers of signals {widths}")
        self._open(full[0][0], np.concatenate([r for _, r in full], axis=0))
        for block, rows in early:
            if rows is None:
                for event in block.events:
                    self._note(int(event.index), "beat")
            else:
                self._take(block, rows)

    def _take(self, block: PredictionBlock, rows: np.ndarray) -> None:
        if rows.shape[1] != self._lo.shape[0]:
            raise SinkError(
                f"{self.uri}: rows have {self._lo.shape[0]} signals, got {rows.shape[1]}"
            )
        self._place(block)
        self._append(rows)
        for event in block.events:
            self._note(int(event.index), "beat")

    def _open(self, block: PredictionBlock, rows: np.ndarray) -> None:
        s = self.settings
        fs = float(s["fs"] or block.fs or 0.0)
        if fs <= 0:
            raise SinkError(f"{self.uri}: the blocks carry no sample rate: give fs=HZ")
        n_in = 0 if block.inputs is None else block.inputs.shape[1]
        n_out = block.outputs.shape[1]
        in_labels = list(block.input_labels) if len(block.input_labels) == n_in else []
        in_labels = in_labels or [f"in{k}" for k in range(n_in)]
        out_labels = list(block.labels) if len(block.labels) == n_out else []
        out_labels = out_labels or [f"y{k}" for k in range(n_out)]
        in_range = s["input_range"] or _auto_range(rows[:, :n_in])
        out_range = s["output_range"] or _auto_range(rows[:, n_in:])
        ranges = [in_range] * n_in + [out_range] * n_out
        units = [s["units"]] * n_in + [""] * n_out
        labels = _unique([str(x)[:16] for x in in_labels + out_labels])
        self._lo = np.array([r[0] for r in ranges])
        self._hi = np.array([r[1] for r in ranges])
        self._fs = fs
        self._writer = self._make_writer(labels, units, ranges, fs)
        self._origin = self._next = int(block.first_index)

    def _make_writer(self, labels: list[str], units: list[str], ranges: list, fs: float) -> Any:
        edf = self._pyedflib
        dmax, dmin = (2**23 - 1, -(2**23)) if self.bdf else (32767, -32768)
        kind = edf.FILETYPE_BDFPLUS if self.bdf else edf.FILETYPE_EDFPLUS
        try:
            parent = os.path.dirname(self.path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            wanted = self.path
            self.path = free_path(wanted, self.settings["mode"], self.settings["overwrite"])
            if self.path != wanted:
                fields = {"sink": self.uri, "exists": wanted, "path": self.path}
                _log.warning("edf file exists", extra={"fields": fields})
            w = edf.EdfWriter(self.path, len(labels), file_type=kind)
            w.setStartdatetime(_dt.datetime.now().replace(microsecond=0))
            w.setEquipment("streamgru")
            w.setSignalHeaders(
                [
                    {
                        "label": lab,
                        "dimension": unit[:8],
                        "sample_frequency": fs,
                        "physical_max": hi,
                        "physical_min": lo,
                        "digital_max": dmax,
                        "digital_min": dmin,
                        "transducer": "",
                        "prefilter": "",
                    }
                    for lab, unit, (lo, hi) in zip(labels, units, ranges)
                ]
            )
            per_s = float(self.settings["annotations_per_s"])
            record_s = float(w.record_duration)
            w.set_number_of_annotation_signals(int(min(64, max(1, np.ceil(per_s * record_s)))))
            self._per_record = int(w.get_smp_per_record(0))
        except (OSError, ValueError, AssertionError) as exc:
            raise SinkError(f"{self.uri}: cannot create {self.path}: {exc}") from exc
        self._annot_per_record = int(min(64, max(1, np.ceil(per_s * record_s))))
        return w

    def _place(self, block: PredictionBlock) -> None:
        """Handle a jump in the stream index before this block (gap fill or discontinuity)."""
        assert self._next is not None
        lost = int(block.first_index) - self._next
        if lost == 0:
            return
        if 0 < lost <= self.settings["max_gap_s"] * self._fs and self._held + self._records:
            last = self._rows[-1][-1:] if self._rows else self._last_row
            self._note(self._next, f"gap {lost}")
            self._append(np.repeat(last, lost, axis=0))
        else:  # too long (or backwards): not written, the file's time closes it up
            self._note(self._next, f"discontinuity {lost}")
            self._shift += lost
        self._next = int(block.first_index)

    def _append(self, rows: np.ndarray) -> None:
        clipped = np.clip(rows, self._lo, self._hi)
        bad = np.count_nonzero(clipped != rows)
        if bad:
            self.clipped += int(bad)
        self._rows.append(clipped)
        self._held += clipped.shape[0]
        self._next = (self._next or 0) + rows.shape[0]
        self._last_row = clipped[-1:]
        if self._held >= self._per_record:
            self._write_records(final=False)

    def _write_records(self, final: bool) -> None:
        data = np.concatenate(self._rows, axis=0) if len(self._rows) > 1 else self._rows[0]
        n = self._per_record
        full = data.shape[0] // n
        try:
            for r in range(full):
                rec = data[r * n : (r + 1) * n]
                self._writer.blockWritePhysicalSamples(np.ascontiguousarray(rec.T).ravel())
            rest = data[full * n :]
            if final and rest.shape[0]:
                pad = np.repeat(rest[-1:], n - rest.shape[0], axis=0)
                rec = np.concatenate([rest, pad], axis=0)
                self._writer.blockWritePhysicalSamples(np.ascontiguousarray(rec.T).ravel())
                full += 1
                rest = rest[:0]
        except OSError as exc:
            raise SinkError(f"{self.uri}: cannot write {self.path}: {exc}") from exc
        self._records += full
        self._rows = [rest] if rest.shape[0] else []
        self._held = rest.shape[0]

    def _note(self, index: int, text: str, always: bool = False) -> None:
        """Hold one annotation for the close (``always``: even beyond ``max_annotations``)."""
        if len(self._onsets) >= self.settings["max_annotations"] and not always:
            self.annotations_dropped += 1
            if not self._warned:
                self._warned = True
                fields = {"sink": self.uri, "path": self.path, "max_annotations": len(self._onsets)}
                _log.warning("edf annotations dropped", extra={"fields": fields})
            return
        onset = (index - self._origin - self._shift) / self._fs
        self._onsets.append(max(0.0, onset))
        self._codes.append(self._texts.setdefault(text, len(self._texts)))

    # --------------------------------------------------------------- closing
    def _close(self) -> None:
        if self._writer is None and self._early:  # less than a second came: open now
            self._start()
        if self._writer is None:
            return
        try:
            if self._held:
                end = self._next if self._next is not None else self._origin
                self._note(end, "end of data", always=True)
                self._write_records(final=True)
            room = self._records * self._annot_per_record
            onsets = np.frombuffer(self._onsets, dtype=np.float64)
            order = np.argsort(onsets, kind="stable")
            self.annotations_dropped += max(0, order.size - room)
            texts = list(self._texts)
            codes = self._codes
            for k in order[:room].tolist():
                self._writer.writeAnnotation(float(onsets[k]), -1, texts[codes[k]])
            if self.annotations_dropped:
                fields = {"sink": self.uri, "path": self.path, "dropped": self.annotations_dropped}
                _log.warning("edf annotations not written", extra={"fields": fields})
            self._writer.close()
        except OSError as exc:
            raise SinkError(f"{self.uri}: cannot finish {self.path}: {exc}") from exc
        finally:
            self._writer = None


def _unique(labels: list[str]) -> list[str]:
    """EDF labels must be unique: a repeated one gets ``~k``."""
    out: list[str] = []
    for lab in labels:
        name, k = lab, 1
        while name in out:
            name, k = f"{lab[:13]}~{k}", k + 1
        out.append(name)
    return out


def prepare_edf_sink(u: URI, opts: Options) -> Callable[[], Sink]:
    """``edf://PATH``: every option read and checked now; returns what opens the sink."""
    uri = u.text
    settings = {
        "fs": opts.number("fs", None, positive=True),
        "input_range": _range(opts.text("input_range"), f"{uri}: input_range"),
        "output_range": _range(opts.text("output_range"), f"{uri}: output_range"),
        "units": opts.text("units", "") or "",
        "annotations_per_s": opts.number("annotations_per_s", 4.0, positive=True),
        "max_gap_s": opts.number("max_gap_s", 10.0, minimum=0.0),
        "mode": _file_mode(opts),
        "overwrite": opts.flag("overwrite", False),
        "max_annotations": opts.integer("max_annotations", 1_000_000, minimum=1),
    }
    opts.finish()
    if not u.path:
        raise ConfigError(f"{uri}: expected edf://PATH.edf (or .bdf)")
    path = u.path
    return lambda: EdfSink(uri, path, settings)
