"""Daemon configuration: TOML in, frozen dataclasses out, everything validated up front.

A site file has one ``[[stream]]`` table per input stream and optional ``[daemon]``,
``[metrics]`` and ``[logging]`` tables::

    [daemon]
    state_dir = "/var/lib/streamgru"   # snapshots; relative paths are relative to this file
    snapshot_interval_s = 60           # also at shutdown; 0: only at shutdown

    [metrics]
    port = 9108                        # /metrics, /healthz, /readyz on 127.0.0.1

    [[stream]]
    id = "bed1-ecg"
    source = "serial:///dev/ttyUSB0"
    model = "weights/ecg_beats.safetensors"
    filter = "model"                   # "model", "none", a preset name, or a table
    sinks = ["jsonl:///var/log/streamgru/bed1.jsonl"]

Every key is checked: unknown keys, wrong types and impossible values raise
:class:`~streamgru.errors.ConfigError` whose message starts with the field's path, e.g.
``stream[1].source: expected a URI like serial:///dev/ttyUSB0 or tcp://host:port, got 'foo'``.
:func:`load_config` checks the file alone; :func:`check_models` also loads each model and checks
the stream's rate, channels and filter against it (``streamgru config check`` runs both).
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Source URI schemes the daemon accepts (see :func:`streamgru.io.sources.open_source`).
SOURCE_SCHEMES = (
    "serial",
    "tcp",
    "udp",
    "file",
    "synthetic",
    "lsl",
    "loop",
    "socket",
    "rfc2217",
    "spy",  # pyserial URLs, handed to pyserial as they are
    "nats",  # a core NATS subject (extra nats), e.g. nats://host:4222/sg.in.bed1
)
#: Sink URI schemes the daemon accepts (see :func:`streamgru.io.sinks.open_sink`).
SINK_SCHEMES = ("stdout", "jsonl", "csv", "tcp", "lsl", "null", "nats")
#: Gap policies: reset the state, hold it across the gap, or fill the gap (up to a limit).
GAP_POLICIES = ("reset", "hold", "fill")
#: NaN/Inf policies: hold the last finite value, put zero, or reset the state.
NAN_POLICIES = ("hold", "zero", "reset")
#: Filter choices other than a preset name or a table.
FILTER_WORDS = ("model", "none")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "text")
DEFAULT_METRICS_PORT = 9108

_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SOURCE_HINT = "expected a URI like serial:///dev/ttyUSB0 or tcp://host:port"
_SINK_HINT = "expected a URI like stdout://, jsonl:///path/out.jsonl or tcp://host:port"


# ----------------------------------------------------------------- dataclasses
@dataclass(frozen=True)
class FilterSpec:
    """What filter runs before the model.

    kind : "model" (the filter the model was trained behind, from its metadata), "none",
        "preset" (``preset`` with ``mains``) or "design" (explicit Butterworth + notches).
    """

    kind: str = "model"
    preset: str | None = None
    highpass: float | None = None
    lowpass: float | None = None
    notch: tuple[float, ...] = ()
    order: int = 4
    notch_q: float = 30.0
    mains: int = 50


@dataclass(frozen=True)
class StreamConfig:
    """One ``[[stream]]`` table.

    Attributes
    ----------
    id : stream name, ``[A-Za-z0-9_.-]{1,64}``, unique; keys state, metrics and snapshots
    source : source URI (scheme in :data:`SOURCE_SCHEMES`)
    model : path of the weights file (absolute, resolved against the config file's folder)
    fs, channels : expected sample rate and channel count of the source (None: from the model)
    pick : channels fed to the model, by label or index (empty: the model's channel labels
        when its metadata names them and the source has more channels, else all, in order)
    filter : :class:`FilterSpec`
    gap_policy, gap_fill_max_s : see :mod:`streamgru.runtime.policies`
    nan_policy : see :mod:`streamgru.runtime.policies`
    sinks : sink URIs the predictions go to
    events : run a :class:`~streamgru.signal.beats.BeatDetector` on output 0 and log beats
    threshold, refractory_s : detector settings (None: the model's ``threshold`` /
        ``refractory_s`` metadata, else 0.5 / 0.25 s)
    dtype : "float32" or "float64"
    resample : a source at another rate than the model's is resampled to the model's rate
        (:class:`~streamgru.signal.resample.StreamResampler`) before filter and model; output
        rows are then numbered at the model's rate. False: another rate is refused.
    """

    id: str
    source: str
    model: Path
    fs: float | None = None
    channels: int | None = None
    pick: tuple[str | int, ...] = ()
    filter: FilterSpec = field(default_factory=FilterSpec)
    gap_policy: str = "reset"
    gap_fill_max_s: float = 0.5
    nan_policy: str = "hold"
    sinks: tuple[str, ...] = ()
    events: bool = False
    threshold: float | None = None
    refractory_s: float | None = None
    dtype: str = "float32"
    resample: bool = False


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``: the HTTP endpoint serving /metrics, /healthz and /readyz."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = DEFAULT_METRICS_PORT


@dataclass(frozen=True)
class LoggingConfig:
    """``[logging]``: level and format (JSON lines on stderr, or text)."""

    level: str = "info"
    format: str = "json"


@dataclass(frozen=True)
class DaemonConfig:
    """``[daemon]``: state, snapshots, watchdog, queues and reconnection.

    Attributes
    ----------
    state_dir : folder for snapshots (None: $STATE_DIRECTORY when systemd sets it, else none)
    snapshot_interval_s : periodic snapshots (0: only at shutdown)
    watchdog : send WATCHDOG=1 when systemd asks for it (WATCHDOG_USEC)
    resume : continue from the snapshots in state_dir at start
    queue_chunks : reader → processor capacity per stream, in chunks
    queue_blocks : processor → sink capacity per sink, in blocks
    reconnect_initial_s, reconnect_max_s : jittered exponential backoff of a lost source
    read_timeout_s : how long a reader waits on its source before checking for stop
    """

    state_dir: Path | None = None
    snapshot_interval_s: float = 60.0
    watchdog: bool = True
    resume: bool = False
    queue_chunks: int = 1024
    queue_blocks: int = 4096
    reconnect_initial_s: float = 0.2
    reconnect_max_s: float = 10.0
    read_timeout_s: float = 0.1


@dataclass(frozen=True)
class Config:
    """A whole daemon configuration (``path`` is None for an ad hoc one)."""

    streams: tuple[StreamConfig, ...]
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    path: Path | None = None

    def stream(self, stream_id: str) -> StreamConfig:
        """The stream with this id (KeyError when absent)."""
        for s in self.streams:
            if s.id == stream_id:
                return s
        raise KeyError(stream_id)


# ------------------------------------------------------------------- checkers
class _Table:
    """A TOML table being read: takes known keys, then refuses whatever is left."""

    def __init__(self, where: str, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a table, got {_show(data)}")
        self.where = where
        self.data = dict(data)
        self.known: list[str] = []

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def take(self, key: str, default: Any = None) -> Any:
        self.known.append(key)
        return self.data.pop(key, default)

    def has(self, key: str) -> bool:
        return key in self.data

    def done(self) -> None:
        for key in self.data:
            hint = difflib.get_close_matches(key, self.known, n=1)
            also = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ConfigError(
                f"{self.path(key)}: unknown key (known: {', '.join(sorted(self.known))}){also}"
            )


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {_show(value)}")
    return value


def _number(where: str, value: Any, low: float = -math.inf, *, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {_show(value)}")
    if value < low or (strict and value == low):
        op = ">" if strict else ">="
        raise ConfigError(f"{where}: expected a number {op} {low:g}, got {value!r}")
    return float(value)


def _integer(where: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: expected an integer, got {_show(value)}")
    if value < low or (high is not None and value > high):
        span = f">= {low}" if high is None else f"in {low}..{high}"
        raise ConfigError(f"{where}: expected an integer {span}, got {value}")
    return value


def _choice(where: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        raise ConfigError(f"{where}: expected one of {', '.join(choices)}, got {_show(value)}")
    return value.lower()


def _string(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a non-empty string, got {_show(value)}")
    return value


def _path(where: str, value: Any, base: Path) -> Path:
    text = _string(where, value)
    path = Path(os.path.expandvars(os.path.expanduser(text)))
    return path if path.is_absolute() else (base / path)


def check_uri(
    where: str, value: Any, schemes: Sequence[str], hint: str, need_host: bool = True
) -> str:
    """A URI with a known scheme and what that scheme needs (host:port, a path).

    ``need_host=False`` accepts ``tcp://:port`` (a sink that listens on every address).
    """
    if not isinstance(value, str) or "://" not in value:
        raise ConfigError(f"{where}: {hint}, got {_show(value)}")
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise ConfigError(
            f"{where}: unknown scheme {scheme + '://'!r} in {value!r}; "
            f"expected one of {', '.join(s + '://' for s in schemes)}"
        )
    if scheme in ("tcp", "udp"):
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is None or (not parts.hostname and need_host and scheme == "tcp"):
            raise ConfigError(f"{where}: expected {scheme}://host:port, got {value!r}")
    if scheme == "nats":
        try:
            ok = bool(parts.hostname and parts.path.strip("/")) and parts.port != 0
        except ValueError:  # a port that is not a number
            ok = False
        if not ok:
            raise ConfigError(f"{where}: expected nats://host:port/SUBJECT, got {value!r}")
    if scheme in ("serial", "file", "jsonl", "csv") and not (parts.path or parts.netloc):
        raise ConfigError(
            f"{where}: {scheme}:// needs a path, e.g. {scheme}:///path, got {value!r}"
        )
    return value


# ------------------------------------------------------------------ sections
def _filter_spec(where: str, value: Any, mains: int) -> FilterSpec:
    from ..signal.design import PRESETS

    if isinstance(value, str):
        word = value.lower()
        if word in FILTER_WORDS:
            return FilterSpec(kind=word, mains=mains)
        if word in PRESETS:
            return FilterSpec(kind="preset", preset=word, mains=mains)
        raise ConfigError(
            f"{where}: expected 'model', 'none', a preset ({', '.join(PRESETS)}) or a table "
            f"with highpass/lowpass/notch/order, got {value!r}"
        )
    table = _Table(where, value)
    preset = table.take("preset")
    table_mains = table.take("mains")
    if table_mains is not None:
        mains = _integer(table.path("mains"), table_mains, 50, 60)
        if mains not in (50, 60):
            raise ConfigError(f"{table.path('mains')}: expected 50 or 60, got {mains}")
    highpass, lowpass = table.take("highpass"), table.take("lowpass")
    notch, order, notch_q = table.take("notch"), table.take("order", 4), table.take("notch_q", 30.0)
    table.done()
    if preset is not None:
        if any(v is not None for v in (highpass, lowpass, notch)):
            raise ConfigError(f"{where}: give either preset or highpass/lowpass/notch, not both")
        return FilterSpec(
            kind="preset", preset=_choice(table.path("preset"), preset, PRESETS), mains=mains
        )
    if highpass is None and lowpass is None and notch is None:
        raise ConfigError(f"{where}: a filter table needs preset, highpass, lowpass or notch")
    hp = None if highpass is None else _number(table.path("highpass"), highpass, 0, strict=True)
    lp = None if lowpass is None else _number(table.path("lowpass"), lowpass, 0, strict=True)
    if hp is not None and lp is not None and hp >= lp:
        raise ConfigError(f"{table.path('lowpass')}: expected above highpass {hp:g} Hz, got {lp:g}")
    if notch is None:
        notches: tuple[float, ...] = ()
    elif isinstance(notch, list):
        notches = tuple(
            _number(f"{table.path('notch')}[{k}]", f, 0, strict=True) for k, f in enumerate(notch)
        )
    else:
        notches = (_number(table.path("notch"), notch, 0, strict=True),)
    return FilterSpec(
        kind="design",
        highpass=hp,
        lowpass=lp,
        notch=notches,
        order=_integer(table.path("order"), order, 1, 12),
        notch_q=_number(table.path("notch_q"), notch_q, 0, strict=True),
        mains=mains,
    )


def _stream(where: str, data: Any, base: Path) -> StreamConfig:
    t = _Table(where, data)
    sid = t.take("id")
    if not isinstance(sid, str) or not _ID_RE.match(sid):
        raise ConfigError(
            f"{t.path('id')}: expected a name of 1-64 letters, digits, '_', '.', '-', "
            f"got {_show(sid)}"
        )
    if not t.has("source"):
        raise ConfigError(f"{t.path('source')}: missing ({_SOURCE_HINT})")
    source = check_uri(t.path("source"), t.take("source"), SOURCE_SCHEMES, _SOURCE_HINT)
    if not t.has("model"):
        raise ConfigError(f"{t.path('model')}: missing (path of a weights file)")
    model = _path(t.path("model"), t.take("model"), base)
    if not model.is_file():
        raise ConfigError(f"{t.path('model')}: no such file: {str(model)!r}")
    fs = t.take("fs")
    channels = t.take("channels")
    pick = t.take("pick", [])
    if not isinstance(pick, list) or not all(
        isinstance(p, str) or (isinstance(p, int) and not isinstance(p, bool) and p >= 0)
        for p in pick
    ):
        raise ConfigError(
            f"{t.path('pick')}: expected a list of channel labels or indices, got {_show(pick)}"
        )
    mains = _integer(t.path("mains"), t.take("mains", 50), 50, 60)
    if mains not in (50, 60):
        raise ConfigError(f"{t.path('mains')}: expected 50 or 60, got {mains}")
    sinks = t.take("sinks", [])
    if isinstance(sinks, str):
        sinks = [sinks]
    if not isinstance(sinks, list):
        raise ConfigError(f"{t.path('sinks')}: expected a list of sink URIs, got {_show(sinks)}")
    sink_uris = tuple(
        check_uri(f"{t.path('sinks')}[{k}]", s, SINK_SCHEMES, _SINK_HINT, need_host=False)
        for k, s in enumerate(sinks)
    )
    threshold = t.take("threshold")
    refractory = t.take("refractory_s")
    cfg = StreamConfig(
        id=sid,
        source=source,
        model=model,
        fs=None if fs is None else _number(t.path("fs"), fs, 0, strict=True),
        channels=None if channels is None else _integer(t.path("channels"), channels, 1, 1024),
        pick=tuple(pick),
        filter=_filter_spec(t.path("filter"), t.take("filter", "model"), mains),
        gap_policy=_choice(t.path("gap_policy"), t.take("gap_policy", "reset"), GAP_POLICIES),
        gap_fill_max_s=_number(t.path("gap_fill_max_s"), t.take("gap_fill_max_s", 0.5), 0),
        nan_policy=_choice(t.path("nan_policy"), t.take("nan_policy", "hold"), NAN_POLICIES),
        sinks=sink_uris,
        events=_bool(t.path("events"), t.take("events", False)),
        threshold=None if threshold is None else _number(t.path("threshold"), threshold),
        refractory_s=None if refractory is None else _number(t.path("refractory_s"), refractory, 0),
        dtype=_choice(t.path("dtype"), t.take("dtype", "float32"), ("float32", "float64")),
        resample=_bool(t.path("resample"), t.take("resample", False)),
    )
    t.done()
    return cfg


def _daemon(data: Any, base: Path) -> DaemonConfig:
    t = _Table("daemon", data)
    state_dir = t.take("state_dir")
    if state_dir is None and os.environ.get("STATE_DIRECTORY"):
        state_dir = os.environ["STATE_DIRECTORY"].split(":")[0]
    initial = _number(
        t.path("reconnect_initial_s"), t.take("reconnect_initial_s", 0.2), 0, strict=True
    )
    cfg = DaemonConfig(
        state_dir=None if state_dir is None else _path(t.path("state_dir"), state_dir, base),
        snapshot_interval_s=_number(
            t.path("snapshot_interval_s"), t.take("snapshot_interval_s", 60.0), 0
        ),
        watchdog=_bool(t.path("watchdog"), t.take("watchdog", True)),
        resume=_bool(t.path("resume"), t.take("resume", False)),
        queue_chunks=_integer(t.path("queue_chunks"), t.take("queue_chunks", 1024), 1),
        queue_blocks=_integer(t.path("queue_blocks"), t.take("queue_blocks", 4096), 1),
        reconnect_initial_s=initial,
        reconnect_max_s=_number(
            t.path("reconnect_max_s"), t.take("reconnect_max_s", 10.0), initial
        ),
        read_timeout_s=_number(
            t.path("read_timeout_s"), t.take("read_timeout_s", 0.1), 0, strict=True
        ),
    )
    t.done()
    if cfg.resume and cfg.state_dir is None:
        raise ConfigError("daemon.resume: needs daemon.state_dir (where the snapshots are)")
    return cfg


def _metrics(data: Any) -> MetricsConfig:
    t = _Table("metrics", data)
    cfg = MetricsConfig(
        enabled=_bool(t.path("enabled"), t.take("enabled", True)),
        host=_string(t.path("host"), t.take("host", "127.0.0.1")),
        port=_integer(t.path("port"), t.take("port", DEFAULT_METRICS_PORT), 0, 65535),
    )
    t.done()
    return cfg


def _logging(data: Any) -> LoggingConfig:
    t = _Table("logging", data)
    cfg = LoggingConfig(
        level=_choice(t.path("level"), t.take("level", "info"), LOG_LEVELS),
        format=_choice(t.path("format"), t.take("format", "json"), LOG_FORMATS),
    )
    t.done()
    return cfg


# ---------------------------------------------------------------- public API
def parse_config(
    data: Mapping[str, Any], base: Path | str = ".", path: Path | None = None
) -> Config:
    """Validate a decoded TOML document (a dict) into a :class:`Config`.

    Parameters
    ----------
    data : the document, as ``tomllib.load`` gives it
    base : folder that relative paths (models, state_dir) are resolved against
    path : the file it came from, recorded for reloads

    Raises
    ------
    ConfigError : the first problem found, its message starting with the field's path.
    """
    base = Path(base)
    top = _Table("", data)
    streams_raw = top.take("stream")
    daemon_raw, metrics_raw, logging_raw = (
        top.take("daemon", {}),
        top.take("metrics", {}),
        top.take("logging", {}),
    )
    top.done()
    if streams_raw is None:
        raise ConfigError("stream: no [[stream]] table; a config needs at least one stream")
    if not isinstance(streams_raw, list):
        raise ConfigError("stream: expected [[stream]] tables (an array of tables)")
    if not streams_raw:
        raise ConfigError("stream: no [[stream]] table; a config needs at least one stream")
    streams = tuple(_stream(f"stream[{k}]", s, base) for k, s in enumerate(streams_raw))
    seen_ids: dict[str, int] = {}
    seen_sources: dict[str, int] = {}
    for k, s in enumerate(streams):
        if s.id in seen_ids:
            raise ConfigError(
                f"stream[{k}].id: {s.id!r} is already used by stream[{seen_ids[s.id]}]"
            )
        seen_ids[s.id] = k
        if not s.source.startswith("synthetic:") and s.source in seen_sources:
            raise ConfigError(
                f"stream[{k}].source: {s.source!r} is already read by "
                f"stream[{seen_sources[s.source]}]"
            )
        seen_sources[s.source] = k
    return Config(
        streams=streams,
        daemon=_daemon(daemon_raw, base),
        metrics=_metrics(metrics_raw),
        logging=_logging(logging_raw),
        path=path,
    )


def load_config(path: Path | str) -> Config:
    """Read and validate a TOML file (relative paths inside resolve against its folder)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config: no such file: {str(path)!r}") from exc
    except OSError as exc:
        raise ConfigError(f"config: cannot read {str(path)!r}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config: {str(path)!r} is not valid TOML: {exc}") from exc
    return parse_config(data, base=path.resolve().parent, path=path.resolve())


def adhoc_config(
    source: str,
    model: str,
    *,
    stream_id: str = "stream0",
    sinks: Sequence[str] = ("stdout://",),
    filter: str | None = None,
    fs: float | None = None,
    channels: int | None = None,
    pick: Sequence[str | int] = (),
    gap_policy: str | None = None,
    nan_policy: str | None = None,
    events: bool = False,
    resample: bool = False,
    state_dir: str | None = None,
    resume: bool = False,
    snapshot_interval_s: float | None = None,
    metrics_port: int | None = None,
    metrics: bool = True,
    log_level: str = "info",
    log_format: str = "json",
) -> Config:
    """The :class:`Config` of ``streamgru run --source URI --model PATH ...`` (one stream).

    Errors name the command-line option (``--source: ...``) rather than the TOML field.
    """
    stream: dict[str, Any] = {
        "id": stream_id,
        "source": source,
        "model": model,
        "sinks": list(sinks),
        "events": events,
        "resample": resample,
    }
    optional = {
        "filter": filter,
        "fs": fs,
        "channels": channels,
        "gap_policy": gap_policy,
        "nan_policy": nan_policy,
    }
    stream.update({k: v for k, v in optional.items() if v is not None})
    if pick:
        stream["pick"] = [int(p) if isinstance(p, str) and p.isdigit() else p for p in pick]
    daemon: dict[str, Any] = {"resume": resume}
    if state_dir is not None:
        daemon["state_dir"] = state_dir
    if snapshot_interval_s is not None:
        daemon["snapshot_interval_s"] = snapshot_interval_s
    doc = {
        "stream": [stream],
        "daemon": daemon,
        "metrics": {"enabled": metrics, **({} if metrics_port is None else {"port": metrics_port})},
        "logging": {"level": log_level, "format": log_format},
    }
    try:
        return parse_config(doc, base=Path.cwd())
    except ConfigError as exc:
        raise ConfigError(_option_names(str(exc))) from None


_OPTION_FIELDS = {"id": "id", "sinks": "sink", "state_dir": "state-dir", "resume": "resume"}


def _option_names(message: str) -> str:
    """``stream[0].gap_policy: ...`` → ``--gap-policy: ...`` for ad hoc runs."""
    match = re.match(r"^(?:stream\[0\]|daemon|metrics|logging)\.([a-z_]+)(\[\d+\])?", message)
    if not match:
        return message
    name = _OPTION_FIELDS.get(match.group(1), match.group(1).replace("_", "-"))
    if match.group(1) == "port":
        name = "metrics-port"
    return f"--{name}{match.group(2) or ''}" + message[match.end() :]


def with_overrides(config: Config, **daemon_fields: Any) -> Config:
    """A copy with some ``[daemon]`` fields replaced (``--resume``, ``--state-dir`` on the CLI)."""
    daemon = replace(config.daemon, **daemon_fields)
    if daemon.resume and daemon.state_dir is None:
        raise ConfigError("--resume: needs a state directory (--state-dir or daemon.state_dir)")
    return replace(config, daemon=daemon)
