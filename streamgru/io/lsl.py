"""Lab Streaming Layer: ``lsl://?type=ECG`` as a source, ``lsl://?name=...`` as a sink.

Needs the optional ``pylsl`` package and its native ``liblsl`` (the pylsl wheels bundle it on the
common platforms). Both are imported only when an LSL URI is opened; without them the call raises
:class:`MissingDependencyError` / :class:`BackendUnavailableError` with the fix.

Times: LSL's ``local_clock()`` is the same monotonic clock as ``time.monotonic()`` on Linux, so
the sink forwards each prediction's ``t_host`` as its LSL timestamp.
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import (
    BackendUnavailableError,
    ConfigError,
    MissingDependencyError,
    SinkError,
    SourceError,
    require,
)
from .base import Source
from .chunk import Chunk, PredictionBlock, StreamInfo
from .uri import URI, Options


def import_pylsl():
    """Import pylsl, or raise the error that says how to get it."""
    try:
        return require("pylsl", "lsl", "an LSL stream")
    except MissingDependencyError:
        raise
    except RuntimeError as exc:  # pylsl raises RuntimeError when liblsl cannot be loaded
        raise BackendUnavailableError(
            f"pylsl is installed but its native liblsl could not be loaded ({exc}); "
            "install liblsl (e.g. conda install -c conda-forge liblsl) or set PYLSL_LIB to it"
        ) from exc


def _channel_labels(info, n: int) -> tuple[str, ...]:
    labels = []
    ch = info.desc().child("channels").child("channel")
    for _ in range(n):
        if ch.empty():
            break
        labels.append(ch.child_value("label"))
        ch = ch.next_sibling()
    return tuple(labels) if len(labels) == n and all(labels) else ()


class LslSource(Source):
    """Chunks pulled from an LSL inlet (the first stream matching ``prop == value``).

    The inlet keeps at most ``buffer`` seconds and is flushed once open, so the first chunk is
    fresh. ``first_index`` counts samples received; LSL does not report loss.
    """

    def __init__(
        self,
        uri: str,
        prop: str,
        value: str,
        timeout: float,
        buffer: float,
        fs: float | None,
    ) -> None:
        super().__init__(uri)
        pylsl = import_pylsl()
        found = pylsl.resolve_byprop(prop, value, 1, timeout)
        if not found:
            raise SourceError(f"{uri}: no LSL stream with {prop}={value!r} within {timeout:g} s")
        self._inlet = pylsl.StreamInlet(
            found[0],
            max_buflen=max(1, round(buffer)),
            recover=True,
            processing_flags=pylsl.proc_clocksync,
        )
        full = self._inlet.info(timeout)
        n = full.channel_count()
        rate = full.nominal_srate() or (fs or 0.0)
        if rate <= 0:
            raise ConfigError(f"{uri}: the LSL stream has an irregular rate: give fs=<Hz>")
        self.info = StreamInfo(
            fs=float(rate),
            n_channels=n,
            labels=_channel_labels(full, n),
            units=(),
            device_id=full.source_id() or full.name(),
            sample_format="lsl",
        )
        self._inlet.open_stream(timeout)
        self._inlet.flush()
        self._next = 0
        self._buf = np.empty((1024, n), dtype=np.float32)

    def _fill(self, deadline: float | None) -> None:
        wait = 0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic()))
        try:
            _, stamps = self._inlet.pull_chunk(timeout=wait, max_samples=1024, dest_obj=self._buf)
        except Exception as exc:  # pylsl raises LostError, TimeoutError, RuntimeError
            raise SourceError(f"{self.uri}: {exc}") from exc
        if stamps:
            n = len(stamps)
            self._pending.append(Chunk(self._buf[:n].copy(), self._next, time.monotonic()))
            self._next += n

    def _close(self) -> None:
        self._inlet.close_stream()


def open_lsl_source(uri: URI, opts: Options) -> LslSource:
    """``lsl://?type=ECG`` (or ``name=``, ``source_id=``), ``timeout``, ``buffer``, ``fs``."""
    props = [k for k in ("type", "name", "source_id") if k in opts]
    if len(props) != 1:
        raise ConfigError(f"{uri.text}: expected exactly one of type=, name= or source_id=")
    value = opts.text(props[0])
    timeout = opts.number("timeout", 5.0, positive=True)
    buffer = opts.number("buffer", 2.0, positive=True)
    fs = opts.number("fs", None, positive=True)
    opts.finish()
    return LslSource(uri.text, props[0], value or "", timeout, buffer, fs)


class LslOutlet:
    """The LSL half of :class:`streamgru.io.sinks.LslSink`: one outlet, made at the first block
    (when the output count is known)."""

    def __init__(self, name: str, stype: str, fs: float) -> None:
        self._pylsl = import_pylsl()
        self.name = name
        self.stype = stype
        self.fs = fs
        self._outlet = None
        self._width = 0

    def push(self, block: PredictionBlock) -> None:
        pylsl = self._pylsl
        width = block.outputs.shape[1]
        if self._outlet is None:
            info = pylsl.StreamInfo(
                self.name, self.stype, width, self.fs, pylsl.cf_float32, f"streamgru-{self.name}"
            )
            chans = info.desc().append_child("channels")
            labels = block.labels if len(block.labels) == width else [f"y{i}" for i in range(width)]
            for label in labels:
                chans.append_child("channel").append_child_value("label", label)
            self._outlet = pylsl.StreamOutlet(info)
            self._width = width
        if width != self._width:
            raise SinkError(f"LSL outlet {self.name!r} has {self._width} channels, got {width}")
        outlet = self._outlet
        assert outlet is not None  # opened above
        outlet.push_chunk(block.outputs, [float(t) for t in block.times()])

    def close(self) -> None:
        self._outlet = None
