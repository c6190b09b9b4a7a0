"""Reference beats: WFDB annotation files (the ``wfdb`` extra) or CSV files of sample indices.

Only beat annotations count: the AAMI / WFDB beat symbols in :data:`BEAT_SYMBOLS`. Rhythm
changes (``+``), noise and artefact marks (``~``, ``|``, ``x``...), comments and every other
non-beat code are ignored, as ``bxb`` ignores them.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError, StreamgruError

#: WFDB beat symbols (``wfdb``'s ``is_beat`` set; AAMI classes N, S, V, F, Q).
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")
#: Longest CSV accepted, in lines (a hostile file is refused, not read into memory).
MAX_CSV_LINES = 10_000_000


class AnnotationError(StreamgruError, ValueError):
    """A reference or detection file could not be read (names the file, line and problem)."""


def _wfdb():
    try:
        import wfdb
    except ImportError as exc:  # pragma: no cover - the test extras install wfdb
        raise MissingDependencyError(
            "reading WFDB files needs the wfdb package: pip install 'streamgru[wfdb]'"
        ) from exc
    return wfdb


def record_base(path: str | Path) -> Path:
    """``X.hea`` / ``X.dat`` / ``X`` -> ``X`` (the record name WFDB functions take)."""
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".hea", ".dat", ".atr") else p


def read_wfdb_beats(record: str | Path, extension: str = "atr") -> tuple[np.ndarray, list[str]]:
    """Beat annotations of a WFDB record.

    Returns ``(samples, symbols)``: ``samples`` (n,) int64 sorted sample indices of the beats,
    ``symbols`` their n annotation symbols. Non-beat annotations are dropped.
    """
    wfdb = _wfdb()
    base = record_base(record)
    path = base.with_name(f"{base.name}.{extension}")
    if not path.is_file():
        raise AnnotationError(
            f"{path}: no such annotation file (expected {extension!r} beside the record)"
        )
    try:
        ann = wfdb.rdann(str(base), extension)
    except Exception as exc:  # wfdb raises bare ValueError/IndexError on corrupt files
        raise AnnotationError(f"{path}: not a readable WFDB annotation file ({exc})") from exc
    samples = np.asarray(ann.sample, dtype=np.int64)
    symbols = list(ann.symbol)
    keep = [i for i, s in enumerate(symbols) if s in BEAT_SYMBOLS]
    order = np.argsort(samples[keep], kind="stable")
    return samples[keep][order], [symbols[keep[i]] for i in order]


def _parse_index(path: Path, line_no: int, text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(
            f"{path}:{line_no}: expected a sample index (a non-negative integer), got {text!r}"
        ) from None
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise AnnotationError(
            f"{path}:{line_no}: expected a sample index (a non-negative integer), got {text!r}"
        )
    return int(value)


def read_csv_beats(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Beats from a CSV: a ``sample`` column (or the first column) and an optional ``symbol``.

    A header line is optional: it is recognised when its first field is not a number. Rows whose
    ``symbol`` is present and not a beat symbol are dropped. Blank lines and lines starting with
    ``#`` are skipped. Returns ``(samples, symbols)`` as :func:`read_wfdb_beats` (symbol ``N``
    where the file has none).
    """
    p = Path(path)
    try:
        handle = p.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise AnnotationError(f"{p}: cannot open ({exc.strerror or exc})") from exc
    samples: list[int] = []
    symbols: list[str] = []
    sample_col, symbol_col = 0, None
    seen_row = False
    with handle:
        try:
            for line_no, row in enumerate(csv.reader(handle), start=1):
                if line_no > MAX_CSV_LINES:
                    raise AnnotationError(f"{p}: more than {MAX_CSV_LINES} lines; refused")
                if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                    continue
                fields = [f.strip() for f in row]
                first, seen_row = not seen_row, True
                if first and _is_header(fields):
                    names = [f.lower() for f in fields]
                    sample_col = names.index("sample") if "sample" in names else 0
                    symbol_col = names.index("symbol") if "symbol" in names else None
                    continue
                if sample_col >= len(fields):
                    raise AnnotationError(
                        f"{p}:{line_no}: expected a value in column {sample_col + 1}, "
                        f"got {len(fields)} field(s)"
                    )
                symbol = "N"
                if symbol_col is not None and symbol_col < len(fields) and fields[symbol_col]:
                    symbol = fields[symbol_col]
                    if symbol not in BEAT_SYMBOLS:
                        continue
                samples.append(_parse_index(p, line_no, fields[sample_col]))
                symbols.append(symbol)
        except UnicodeDecodeError as exc:
            raise AnnotationError(f"{p}: not UTF-8 text (byte offset {exc.start})") from exc
        except csv.Error as exc:
            raise AnnotationError(f"{p}: not a CSV file ({exc})") from exc
    arr = np.asarray(samples, dtype=np.int64)
    order = np.argsort(arr, kind="stable")
    return arr[order], [symbols[i] for i in order]


def _is_header(fields: list[str]) -> bool:
    try:
        float(fields[0])
    except ValueError:
        return True
    return False
