"""EDF / BDF (and EDF+ / BDF+) recordings as replay sources, read with pyedflib (extra ``edf``).

``file://X.edf?signals=ECG1,ECG2`` (or ``.bdf``). What the stream carries from the file:

* the signals' **labels** and **physical dimensions** (units), one per channel;
* **physical scaling**: samples arrive in physical units, ``(digital - baseline) / gain`` with
  ``gain = (dmax - dmin) / (pmax - pmin)`` and ``baseline = dmin - pmin * gain``, exactly as
  pyedflib's ``readSignal`` computes them; ``StreamInfo.gain`` / ``baseline`` keep the header's
  calibration, ``sample_format`` says ``edf-int16`` or ``bdf-int24``;
* the **sample rate** (signals of one rate make one stream: pick them with ``signals=`` when the
  file mixes rates, by label or index);
* **annotations** (EDF+ / BDF+ TALs): onset, duration and text, delivered in order with the
  samples (:mod:`streamgru.io.annotated`).

Not carried: patient and recording identification, start date and time, transducer and
prefilter fields (``device_id`` is the file's name), signals at other rates than the ones
chosen, and EDF+D discontinuities (the records are replayed back to back).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, SourceError, require
from .annotated import Annotation, place_annotations
from .chunk import StreamInfo
from .replay import Recording


def _reader(path: Path) -> Any:
    pyedflib = require("pyedflib", "edf", f"{path}: reading an EDF/BDF file")
    try:
        return pyedflib.EdfReader(str(path))
    except OSError as exc:
        raise SourceError(f"{path}: cannot read the EDF/BDF file: {exc}") from exc


def _choose(labels: list[str], rates: list[float], signals: str | None, path: Path) -> list[int]:
    """Indices of the signals to stream (``signals``: comma-separated labels or indices)."""
    if signals:
        chosen = []
        for item in (s.strip() for s in signals.split(",")):
            if item in labels:
                chosen.append(labels.index(item))
            elif item.isdigit() and int(item) < len(labels):
                chosen.append(int(item))
            else:
                raise ConfigError(
                    f"{path}: signals: no signal {item!r}; the file has {labels} "
                    f"(give labels or indices 0..{len(labels) - 1})"
                )
    else:
        chosen = list(range(len(labels)))
    if not chosen:
        raise SourceError(f"{path}: the file has no signals")
    found = sorted({rates[k] for k in chosen})
    if len(found) > 1:
        by_rate = {r: [labels[k] for k in chosen if rates[k] == r] for r in found}
        raise ConfigError(
            f"{path}: the signals have different rates {by_rate}; one stream has one rate: "
            "choose signals of one rate with signals=LABEL,LABEL"
        )
    return chosen


def load_edf(
    path: str | Path, signals: str | None = None
) -> tuple[Recording, tuple[Annotation, ...]]:
    """Load an EDF/BDF(+) file.

    Parameters
    ----------
    path : the .edf or .bdf file
    signals : comma-separated labels or indices of the signals to keep (None: all; they must
        share one sample rate)

    Returns
    -------
    (Recording, annotations): values (T, C) float64 in physical units; annotations sorted by
    sample index

    Raises
    ------
    SourceError : the file cannot be read; ConfigError : a bad ``signals`` choice or mixed rates
    MissingDependencyError : pyedflib is not installed (extra ``edf``)
    """
    p = Path(path)
    f = _reader(p)
    try:
        labels = [str(x).strip() for x in f.getSignalLabels()]
        rates = [float(x) for x in f.getSampleFrequencies()]
        chosen = _choose(labels, rates, signals, p)
        columns = [np.asarray(f.readSignal(k), dtype=np.float64) for k in chosen]
        gains, bases = [], []
        for k in chosen:
            pmin, pmax = float(f.getPhysicalMinimum(k)), float(f.getPhysicalMaximum(k))
            dmin, dmax = float(f.getDigitalMinimum(k)), float(f.getDigitalMaximum(k))
            gain = (dmax - dmin) / (pmax - pmin) if pmax != pmin else 1.0
            gains.append(gain)
            bases.append(dmin - pmin * gain)
        units = [str(f.getPhysicalDimension(k)).strip() for k in chosen]
        onsets, durations, texts = f.readAnnotations()
        bdf = p.suffix.lower() == ".bdf" or "bdf" in str(getattr(f, "filetype", "")).lower()
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:
        raise SourceError(f"{p}: cannot read the EDF/BDF file: {exc}") from exc
    finally:
        _close(f)
    n = min(len(c) for c in columns)
    if n == 0:
        raise SourceError(f"{p}: the file holds no samples")
    values = np.stack([c[:n] for c in columns], axis=1)
    fs = rates[chosen[0]]
    info = StreamInfo(
        fs=fs,
        n_channels=len(chosen),
        labels=tuple(labels[k] for k in chosen),
        units=tuple(units),
        gain=tuple(gains),
        baseline=tuple(bases),
        device_id=p.name,
        sample_format="bdf-int24" if bdf else "edf-int16",
    )
    notes = place_annotations(onsets, durations, [str(t) for t in texts], fs)
    return Recording(values, info), notes


def edf_rate(path: str | Path, signals: str | None = None) -> float | None:
    """The rate a ``file://X.edf`` replay announces (None when the file cannot be read here)."""
    p = Path(path)
    try:
        f = _reader(p)
    except Exception:  # opening the source reports it
        return None
    try:
        labels = [str(x).strip() for x in f.getSignalLabels()]
        rates = [float(x) for x in f.getSampleFrequencies()]
        return rates[_choose(labels, rates, signals, p)[0]]
    except (ConfigError, SourceError, OSError, ValueError, IndexError):
        return None
    finally:
        _close(f)


def _close(f: Any) -> None:
    close = getattr(f, "close", None) or getattr(f, "_close", None)
    if close is not None:
        close()
