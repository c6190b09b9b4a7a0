"""``open_source(uri, **options)``: every input streamgru reads, behind one URI.

=================================================  =============================================
URI                                                what
=================================================  =============================================
``serial:///dev/ttyUSB0?baud=921600``              a serial port (pyserial)
``loop://``, ``socket://h:p``, ``rfc2217://h:p``,  any pyserial URL (its own query options are
``spy://...``                                      passed on to pyserial)
``tcp://host:port``                                a device that serves its stream over TCP
``udp://:port`` (``udp://127.0.0.1:port``)         one SGB1 frame per datagram (binds 127.0.0.1)
``file://PATH``                                    replay of .npy, .csv, a WFDB record (.hea),
                                                   EDF/BDF (extra edf) or XDF (extra xdf)
``synthetic://ecg`` / ``sine`` / ``noise``         generated signals
``lsl://?type=ECG``                                a Lab Streaming Layer stream (pylsl)
``brainflow://synthetic`` (``cyton?serial_port=``)  a board through BrainFlow's BoardShim
                                                   (extra brainflow; :mod:`.brainflow_source`)
``nats://host:port/SUBJECT`` (``tls://...``)       SGB1 frames or SGN1 batches published on a
                                                   core NATS subject, e.g. ``sg.in.bed1`` (nats-py)
=================================================  =============================================

Device links (serial, pyserial URLs, tcp, udp) take: ``protocol`` (``sgb1``, the default, or
``ascii`` for text lines, which needs ``fs`` and accepts ``channels``, ``units``, ``labels``),
``hello_timeout`` (3 s), ``reconnect`` (1), ``backoff`` (0.05 s), ``backoff_max`` (2 s), ``stall``
(5 s; 0 disables), ``start`` (1: send START), and for serial ``baud`` (115200); ``tcp`` takes
``connect_timeout`` (2 s). Keyword arguments override the query; ``port=`` (keyword only) hands an
already open pyserial-like port to a serial source.

Replays and synthetic signals take ``speed`` (1 real time, 10 ten times faster, 0 as fast as
possible) and ``chunk`` (samples per chunk, default fs/50); files take ``loop`` and, for .npy and
.csv, ``fs``; synthetic signals take ``fs`` (250), ``channels`` (1), ``seed`` (0), ``duration``
(seconds; endless if absent) and per kind ``hr``, ``hrv``, ``noise``, ``wander`` (ecg), ``freq``,
``amplitude`` (sine), ``std`` (noise).

NATS sources (:mod:`streamgru.io.nats_io`, extra ``nats``) take ``fs`` and ``channels`` (describe
an SGN1 stream until an SGB1 HELLO does), ``queue`` (10000 messages) and ``connect_timeout`` (5 s).

A malformed URI or option raises :class:`ConfigError` saying what was expected; a source that
cannot be opened raises :class:`SourceError` naming the URI.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from ..errors import ConfigError, require
from .base import Source
from .chunk import Chunk, SourceStats, StreamInfo
from .uri import URI, Options, parse_uri

__all__ = ["Chunk", "Source", "SourceStats", "StreamInfo", "open_source"]

EXPECTED = (
    "serial:///dev/ttyUSB0, loop://, socket://host:port, tcp://host:port, udp://:port, "
    "file://PATH, synthetic://ecg|sine|noise, lsl://?type=ECG, brainflow://BOARD or "
    "nats://host:port/SUBJECT"
)

#: pyserial URL schemes, handed to serial.serial_for_url as they are.
PYSERIAL_SCHEMES = ("loop", "socket", "rfc2217", "spy", "hwgrep", "alt", "cp2110")


_DEVICE = ("protocol", "hello_timeout", "reconnect", "backoff", "backoff_max", "stall", "start")
_ASCII = ("fs", "channels", "units", "labels")
_REPLAY = ("speed", "chunk")
#: What a ``file://`` recording chooses with (streamgru.io.recordings), by suffix.
_RECORDING = {
    ".edf": ("signals",),
    ".bdf": ("signals",),
    ".xdf": ("stream", "markers"),
    ".xdfz": ("stream", "markers"),
}
#: The options of each synthetic signal kind, beyond the common ones.
SYNTHETIC_OPTIONS = {
    "ecg": ("hr", "hrv", "noise", "wander"),
    "sine": ("freq", "amplitude"),
    "noise": ("std",),
}

#: Options each source scheme reads (the openers below and the modules they call); keep in
#: step with them: ``config check`` refuses what is not listed. pyserial URLs
#: (``loop://``, ``socket://``, ...) hand unknown options to pyserial and are not checked.
SOURCE_OPTIONS: dict[str, tuple[str, ...]] = {
    "serial": (*_DEVICE, "baud"),
    "tcp": (*_DEVICE, "connect_timeout"),
    "udp": _DEVICE,
    "file": (*_REPLAY, "fs", "loop"),
    "synthetic": (*_REPLAY, "fs", "channels", "seed", "duration"),
    "lsl": ("type", "name", "source_id", "timeout", "buffer", "fs"),
    "nats": ("fs", "channels", "queue", "connect_timeout"),
}


def check_source_options(uri: str) -> None:
    """Refuse, without opening anything, a source option that the source would refuse when
    it opens (:class:`ConfigError` naming the option and what the scheme accepts)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    known = SOURCE_OPTIONS.get(scheme)
    if known is None:
        return
    given = [k for k, _ in parse_qsl(parts.query, keep_blank_values=True)]
    if scheme == "synthetic":
        known = (*known, *SYNTHETIC_OPTIONS.get((parts.hostname or "").lower(), ()))
    suffix = PurePosixPath(parts.netloc + parts.path).suffix.lower()
    if scheme == "file" and suffix in _RECORDING:  # EDF/BDF/XDF: io.recordings, no fs=
        known = (*_REPLAY, "loop", *_RECORDING[suffix])
    if scheme in ("serial", "tcp", "udp") and dict(parse_qsl(parts.query)).get(
        "protocol", ""
    ).lower() == ("ascii"):
        known = (*known, *_ASCII)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} in {uri!r}; "
            f"{scheme}:// accepts {', '.join(sorted(known))}"
        )


def open_source(uri: str, **options: Any) -> Source:
    """Open the source at ``uri`` (see the module docstring for schemes and options).

    Returns
    -------
    Source
        Context manager and iterator of :class:`Chunk`; ``.info``, ``.stats``,
        ``.read(timeout)``, ``.close()``.
    """
    u = parse_uri(uri, EXPECTED)
    opts = Options(u, options)
    scheme = u.scheme
    if scheme == "file":
        from .replay import open_file_source

        return open_file_source(u, opts)
    if scheme == "synthetic":
        return _open_synthetic(u, opts)
    if scheme == "lsl":
        from .lsl import open_lsl_source

        return open_lsl_source(u, opts)
    if scheme == "brainflow":
        from .brainflow_source import open_brainflow_source

        return open_brainflow_source(u, opts)
    if scheme in ("serial", "tcp", "udp", *PYSERIAL_SCHEMES):
        return _open_device(u, opts)
    if scheme in ("nats", "tls"):
        return _open_nats(u, opts, options)
    raise ConfigError(f"unknown source scheme {scheme!r} in {uri!r}; expected {EXPECTED}")


def _open_device(u: URI, opts: Options) -> Source:
    from .device_source import DeviceSource, Sgb1Reader, ascii_reader_from
    from .links import SerialLink, TcpLink, UdpLink

    protocol = (opts.text("protocol", "sgb1") or "").lower()
    if protocol == "ascii":
        reader: Any = ascii_reader_from(opts, u.text)
    elif protocol == "sgb1":
        reader = Sgb1Reader()
    else:
        raise ConfigError(f"{u.text}: protocol must be sgb1 or ascii, got {protocol!r}")
    common: dict[str, Any] = dict(
        hello_timeout=opts.number("hello_timeout", 3.0, positive=True),
        reconnect=opts.flag("reconnect", True),
        backoff=opts.number("backoff", 0.05, positive=True),
        backoff_max=opts.number("backoff_max", 2.0, positive=True),
        stall=opts.number("stall", 5.0, minimum=0.0),
        start=opts.flag("start", True),
    )
    if u.scheme == "tcp":
        timeout = opts.number("connect_timeout", 2.0, positive=True)
        opts.finish()
        if not u.host or not u.port:
            raise ConfigError(f"{u.text}: expected tcp://host:port")
        host, port = u.host, u.port

        def make_link():
            return TcpLink(host, port, timeout)

    elif u.scheme == "udp":
        opts.finish()
        if u.port is None:
            raise ConfigError(f"{u.text}: expected udp://:port or udp://127.0.0.1:port")
        link = UdpLink(u.host or "127.0.0.1", u.port)

        def make_link():
            return link

        common["reconnect"] = False
        common["stall"] = 0.0
    else:
        baud = opts.integer("baud", 115200, minimum=1)
        port_obj = opts.raw("port", None)
        if u.scheme == "serial":
            opts.finish()
            parts = urlsplit(u.text)
            url = (parts.netloc + parts.path) or ""
            if not url:
                raise ConfigError(f"{u.text}: expected serial:///dev/ttyUSB0 (or serial://COM3)")
        else:
            extra = opts.unread()
            url = u.text.split("?", 1)[0] + (("?" + urlencode(extra)) if extra else "")

        def make_link():
            return SerialLink(url, baud, port_obj)

        if port_obj is not None:
            common["reconnect"] = False
    return DeviceSource(u.text, make_link, reader, **common)


def _open_nats(u: URI, opts: Options, options: dict[str, Any]) -> Source:
    """``nats://host:port/SUBJECT``: URI and options checked here, then opened by nats_io."""
    from .nats_io import open_nats_source, parse_nats_uri

    parse_nats_uri(u.text)  # ConfigError without a host or a subject
    opts.number("fs", None, minimum=0.0)
    opts.integer("channels", None, minimum=1)
    opts.integer("queue", None, minimum=1)
    opts.number("connect_timeout", None, positive=True)
    opts.finish()
    require("nats", "nats", f"{u.text}: the nats:// source")
    return open_nats_source(u.text, **options)


def _open_synthetic(u: URI, opts: Options) -> Source:
    from .paced import PacedSource
    from .synthetic import KINDS, make_generator

    kind = u.host
    if kind not in KINDS:
        raise ConfigError(
            f"{u.text}: expected synthetic://ecg, synthetic://sine or synthetic://noise"
        )
    fs = opts.number("fs", 250.0, positive=True)
    channels = opts.integer("channels", 1, minimum=1)
    seed = opts.integer("seed", 0)
    speed = opts.number("speed", 1.0, minimum=0.0)
    duration = opts.number("duration", None, positive=True)
    chunk = opts.integer("chunk", max(1, round(fs / 50)), minimum=1)
    names = SYNTHETIC_OPTIONS[kind]
    params: dict[str, Any] = {n: opts.number(n) for n in names if n in opts}
    opts.finish()
    if "hr" in params:
        params["heart_rate"] = params.pop("hr")
    gen = make_generator(kind, fs, channels, seed, **params)
    info = StreamInfo(
        fs=fs,
        n_channels=channels,
        labels=gen.labels,
        units=(gen.units,) * channels,
        device_id=f"synthetic-{kind}",
        sample_format="float64",
    )
    total = None if duration is None else round(duration * fs)
    return PacedSource(u.text, info, gen.generate, total, speed, chunk)
