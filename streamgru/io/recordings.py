"""``file://`` replays of recordings that carry their own rate, labels, units and annotations:
EDF / BDF (+) (:mod:`streamgru.io.edf`, extra ``edf``) and XDF (:mod:`streamgru.io.xdf`, extra
``xdf``).

``file://X.edf?speed=1&loop=0&chunk=N&signals=A,B`` and
``file://X.xdf?speed=1&loop=0&chunk=N&stream=NAME&markers=NAME``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .annotated import AnnotatedSource, Annotation
from .paced import looping_block
from .replay import Recording
from .uri import URI, Options

#: File suffixes this module replays.
SUFFIXES = (".edf", ".bdf", ".xdf", ".xdfz")


def is_annotated_recording(path: str) -> bool:
    """True for the suffixes of :data:`SUFFIXES` (case-insensitive)."""
    return Path(path).suffix.lower() in SUFFIXES


def load_annotated(
    path: str | Path, choose: dict[str, str | None] | None = None
) -> tuple[Recording, tuple[Annotation, ...]]:
    """Load an EDF/BDF/XDF recording: ``choose`` holds ``signals`` (EDF) or ``stream`` and
    ``markers`` (XDF); values (T, C) float64 physical, annotations sorted by sample index."""
    choose = choose or {}
    if Path(path).suffix.lower() in (".edf", ".bdf"):
        from .edf import load_edf

        return load_edf(path, choose.get("signals"))
    from .xdf import load_xdf

    return load_xdf(path, choose.get("stream"), choose.get("markers"))


def open_annotated_file(uri: URI, opts: Options) -> AnnotatedSource:
    """An :class:`AnnotatedSource` replaying the EDF/BDF/XDF file ``uri.path``."""
    speed = opts.number("speed", 1.0, minimum=0.0)
    loop = opts.flag("loop", False)
    chunk = opts.integer("chunk", None, minimum=1)
    edf = Path(uri.path).suffix.lower() in (".edf", ".bdf")
    names = ("signals",) if edf else ("stream", "markers")
    choose = {name: opts.text(name) for name in names}
    if "fs" in opts:
        raise ConfigError(
            f"{uri.text}: fs= is for .npy and .csv files; an EDF/BDF/XDF file carries its rate"
        )
    opts.finish()
    rec, notes = load_annotated(uri.path, choose)
    if chunk is None:
        chunk = max(1, round(rec.info.fs / 50))
    block, total = looping_block(rec.values, loop)
    length = rec.values.shape[0]
    return AnnotatedSource(uri.text, rec.info, block, total, speed, chunk, notes, length)


def annotated_rate(path: str, query: dict[str, str]) -> float | None:
    """The rate a ``file://`` EDF/BDF/XDF replay will announce, or None when unreadable here."""
    try:
        if Path(path).suffix.lower() in (".edf", ".bdf"):
            from .edf import edf_rate

            return edf_rate(path, query.get("signals"))
        return load_annotated(path, dict(query))[0].info.fs
    except Exception:  # opening the source reports what is wrong
        return None
