"""Recorded signals: load ``.npy``, ``.csv`` and WFDB records, and replay them as a source.

``file://PATH?speed=1&loop=0&chunk=N&fs=...``

EDF/BDF and XDF recordings (rate, labels, units and annotations from the file):
:mod:`streamgru.io.recordings`.

* ``.npy``: (T, C) or (T,) array, physical units; needs ``fs``.
* ``.csv``: one row per sample, ``,`` ``;`` tab or space separated, optional header row of
  labels, ``#`` comments; needs ``fs``.
* WFDB (``.hea``, or the record name with a ``.dat``/``.hea`` beside it): needs the optional
  ``wfdb`` package; fs, labels, units, gain and baseline come from the header and samples arrive
  in physical units, ``(digital - baseline) / gain``, exactly as ``wfdb.rdrecord`` computes them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, SourceError, require
from .chunk import StreamInfo
from .paced import PacedSource, looping_block
from .uri import URI, Options, parse_uri


@dataclass
class Recording:
    """A loaded record.

    Attributes
    ----------
    values : (T, C) float64, physical units (NaN where the record marks a sample invalid)
    info : StreamInfo (gain and baseline as in the file; 1 and 0 for npy/csv)
    """

    values: np.ndarray
    info: StreamInfo


def load_recording(path: str | os.PathLike, fs: float | None = None) -> Recording:
    """Load ``path`` (.npy, .csv or WFDB); ``fs`` is required for .npy and .csv.

    Raises
    ------
    ConfigError
        Unknown extension, missing ``fs``.
    SourceError
        The file cannot be read or parsed.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".hea", ".dat") or (not suffix and p.with_suffix(".hea").exists()):
        return _load_wfdb(p.with_suffix(""))
    if suffix in (".edf", ".bdf", ".xdf", ".xdfz"):  # annotations: open_file_source keeps them
        from .recordings import load_annotated

        return load_annotated(p)[0]
    if suffix not in (".npy", ".csv", ".txt"):
        raise ConfigError(
            f"{path}: expected a .npy, .csv, WFDB (.hea), EDF/BDF (.edf/.bdf) or XDF (.xdf) file"
        )
    if fs is None or fs <= 0:
        raise ConfigError(f"{path}: a {suffix} file carries no sample rate: give fs=<Hz>")
    try:
        if suffix == ".npy":
            values = np.load(p, allow_pickle=False)
            labels: tuple[str, ...] = ()
        else:
            values, labels = _read_csv(p)
    except (OSError, ValueError) as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from exc
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise SourceError(f"{path}: expected (samples, channels) values, got {values.shape}")
    info = StreamInfo(
        fs=float(fs),
        n_channels=values.shape[1],
        labels=labels,
        units=(),
        device_id=p.name,
        sample_format="float64",
    )
    return Recording(values, info)


def _read_csv(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    lines = [
        ln.strip()
        for ln in path.read_text(encoding="utf-8").splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    if not lines:
        raise ValueError("no rows")
    split = re.compile(r"[,;\t ]+")
    first = split.split(lines[0])
    labels: tuple[str, ...] = ()
    try:
        [float(x) for x in first]
    except ValueError:
        labels = tuple(first)
        lines = lines[1:]
    rows = [[float(x) for x in split.split(ln)] for ln in lines]
    width = {len(r) for r in rows}
    if len(width) != 1 or (labels and width != {len(labels)}):
        raise ValueError(f"rows have different lengths {sorted(width)} (header: {len(labels)})")
    return np.array(rows, dtype=np.float64), labels


def _load_wfdb(record: Path) -> Recording:
    wfdb = require("wfdb", "wfdb", "replaying a WFDB record")
    try:
        rec = wfdb.rdrecord(str(record), physical=True, return_res=64)
    except Exception as exc:  # wfdb raises many kinds
        raise SourceError(f"{record}: cannot read the WFDB record: {exc}") from exc
    values = np.asarray(rec.p_signal, dtype=np.float64)
    n = values.shape[1]
    info = StreamInfo(
        fs=float(rec.fs),
        n_channels=n,
        labels=tuple(rec.sig_name),
        units=tuple(rec.units),
        gain=tuple(float(g) for g in rec.adc_gain),
        baseline=tuple(float(b) for b in rec.baseline),
        device_id=record.name,
        sample_format="wfdb-" + str(rec.fmt[0]),
    )
    return Recording(values, info)


def open_file_source(uri: URI, opts: Options) -> PacedSource:
    """A :class:`PacedSource` replaying ``uri.path`` (EDF/BDF/XDF: :mod:`.recordings`)."""
    from .recordings import is_annotated_recording, open_annotated_file

    if is_annotated_recording(uri.path):
        return open_annotated_file(uri, opts)
    fs = opts.number("fs", None, positive=True)
    speed = opts.number("speed", 1.0, minimum=0.0)
    loop = opts.flag("loop", False)
    chunk = opts.integer("chunk", None, minimum=1)
    opts.finish()
    if not uri.path:
        raise ConfigError(f"{uri.text}: expected file://PATH (.npy, .csv, .hea, .edf, .bdf, .xdf)")
    rec = load_recording(uri.path, fs)
    if chunk is None:
        chunk = max(1, round(rec.info.fs / 50))
    block, total = looping_block(rec.values, loop)
    return PacedSource(uri.text, rec.info, block, total, speed, chunk)


def recorded_rate(source: str) -> float | None:
    """The sample rate a ``file://`` source will announce, when the file itself records one.

    A WFDB header's rate, or the URI's ``fs=`` option; None for other sources, for files without
    a rate, and for anything that cannot be read here (opening the source reports that).
    """
    if not isinstance(source, str) or not source.lower().startswith("file://"):
        return None
    try:
        uri = parse_uri(source, "file://PATH")
        given = uri.query.get("fs")
        if given is not None:
            return float(given)
        path = Path(uri.path)
        from .recordings import annotated_rate, is_annotated_recording

        if is_annotated_recording(uri.path):
            return annotated_rate(uri.path, uri.query)
        header = path if path.suffix.lower() == ".hea" else path.with_suffix(".hea")
        if path.suffix.lower() not in (".hea", ".dat", "") or not header.is_file():
            return None
        with header.open(encoding="ascii", errors="replace") as handle:
            for line in handle:
                fields = line.split("#", 1)[0].split()
                if fields:  # "name nsig fs[/counter][(base)] nsamp ..."
                    rate = float(re.split(r"[/(]", fields[2])[0]) if len(fields) > 2 else None
                    return rate if rate and rate > 0 else None
    except (OSError, ValueError, ConfigError):
        return None
    return None
