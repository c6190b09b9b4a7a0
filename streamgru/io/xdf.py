"""XDF recordings (what LSL's LabRecorder writes) as replay sources, read with pyxdf (extra
``xdf``).

``file://X.xdf?stream=NAME&markers=NAME``. An XDF file holds several streams; one regular
stream (nominal rate > 0, numeric) becomes the replayed stream: ``stream=`` names it (by name,
type or stream id), needed when the file has more than one. What the stream carries:

* the **channel labels and units** of the stream's ``<desc><channels>`` (``ch0``... when absent);
* the **nominal sample rate**; values as recorded (XDF stores what the outlet sent, so gain 1,
  baseline 0); ``sample_format`` is ``xdf-<channel_format>``;
* **markers**: every string-valued stream (or the one ``markers=`` names) becomes annotations,
  each placed at ``round((t_marker - t_first_sample) * fs)`` on pyxdf's synchronised, dejittered
  clock, delivered in order with the samples (:mod:`streamgru.io.annotated`).

Not carried: the other regular streams, timestamps themselves (the replay is paced by the
nominal rate, so gaps in the recording are closed up rather than reproduced), clock offsets
beyond pyxdf's synchronisation, and the rest of the stream's ``desc`` metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, SourceError, require
from .annotated import Annotation, place_annotations
from .chunk import StreamInfo
from .replay import Recording


def _first(d: Any, key: str, default: Any = None) -> Any:
    """``d[key][0]`` of pyxdf's XML-as-dict-of-lists (``default`` when absent or empty)."""
    if not isinstance(d, dict):
        return default
    value = d.get(key)
    if isinstance(value, list):
        return value[0] if value else default
    return default if value is None else value


def _describe(stream: dict) -> str:
    info = stream["info"]
    return f"{_first(info, 'name', '?')!r} (type {_first(info, 'type', '?')!r})"


def _is_regular(stream: dict) -> bool:
    info = stream["info"]
    fmt = str(_first(info, "channel_format", ""))
    return float(_first(info, "nominal_srate", 0) or 0) > 0 and fmt != "string"


def _matches(stream: dict, name: str) -> bool:
    info = stream["info"]
    return name in (
        str(_first(info, "name", "")),
        str(_first(info, "type", "")),
        str(_first(info, "stream_id", "")),
    )


def _pick_stream(streams: list[dict], name: str | None, path: Path) -> dict:
    regular = [s for s in streams if _is_regular(s)]
    if name:
        found = [s for s in regular if _matches(s, name)]
        if len(found) != 1:
            have = ", ".join(_describe(s) for s in regular) or "none"
            raise ConfigError(
                f"{path}: stream={name!r} names {len(found)} regular streams; expected one of "
                f"the file's regular streams: {have}"
            )
        return found[0]
    if len(regular) != 1:
        have = ", ".join(_describe(s) for s in regular) or "none"
        raise ConfigError(
            f"{path}: expected one regular (sampled, numeric) stream or stream=NAME to choose, "
            f"got {len(regular)}: {have}"
        )
    return regular[0]


def _channels(info: dict, n: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    group = _first(_first(info, "desc"), "channels")  # <desc><channels><channel>...
    chans = group.get("channel") if isinstance(group, dict) else None
    if not isinstance(chans, list) or len(chans) != n:
        return (), ()
    labels = tuple(str(_first(c, "label", f"ch{k}")) for k, c in enumerate(chans))
    units = tuple(str(_first(c, "unit", "") or "") for c in chans)
    return labels, units


def _markers(streams: list[dict], name: str | None, t0: float, fs: float, path: Path) -> tuple:
    onsets: list[float] = []
    texts: list[str] = []
    strings = [s for s in streams if str(_first(s["info"], "channel_format", "")) == "string"]
    if name and not any(_matches(s, name) for s in strings):
        have = ", ".join(_describe(s) for s in strings) or "none"
        raise ConfigError(
            f"{path}: markers={name!r} names no marker (string) stream; the file has: {have}"
        )
    for s in strings:
        if name and not _matches(s, name):
            continue
        for ts, row in zip(np.asarray(s["time_stamps"], dtype=np.float64), s["time_series"]):
            onsets.append(float(ts) - t0)
            texts.append(str(row[0]) if len(row) else "")
    return place_annotations(onsets, [0.0] * len(onsets), texts, fs)


def load_xdf(
    path: str | Path, stream: str | None = None, markers: str | None = None
) -> tuple[Recording, tuple[Annotation, ...]]:
    """Load one regular stream of an XDF file and the markers as annotations.

    Parameters
    ----------
    path : the .xdf (or .xdfz) file
    stream : name, type or id of the regular stream (None: the file's only one)
    markers : name, type or id of the marker stream (None: every string stream)

    Returns
    -------
    (Recording, annotations): values (T, C) float64 as recorded; annotations sorted by index

    Raises
    ------
    SourceError : unreadable file; ConfigError : no stream, or an ambiguous choice
    MissingDependencyError : pyxdf is not installed (extra ``xdf``)
    """
    p = Path(path)
    pyxdf = require("pyxdf", "xdf", f"{p}: reading an XDF file")
    try:
        streams, _header = pyxdf.load_xdf(str(p))
    except Exception as exc:  # pyxdf raises many kinds on a bad file
        raise SourceError(f"{p}: cannot read the XDF file: {exc}") from exc
    chosen = _pick_stream(list(streams), stream, p)
    info = chosen["info"]
    values = np.asarray(chosen["time_series"], dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] == 0:
        raise SourceError(f"{p}: stream {_describe(chosen)} holds no samples")
    fs = float(_first(info, "nominal_srate"))
    labels, units = _channels(info, values.shape[1])
    t0 = float(np.asarray(chosen["time_stamps"], dtype=np.float64)[0])
    out = StreamInfo(
        fs=fs,
        n_channels=values.shape[1],
        labels=labels,
        units=units,
        device_id=str(_first(info, "name", p.name)),
        sample_format="xdf-" + str(_first(info, "channel_format", "")),
    )
    return Recording(values, out), _markers(list(streams), markers, t0, fs, p)
