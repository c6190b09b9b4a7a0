"""Field validation for the daemon's TOML: typed readers that name the field's path in every
:class:`~streamgru.errors.ConfigError`, and one reader per table (``[[stream]]``, ``[daemon]``,
``[metrics]``, ``[logging]``) that returns the frozen dataclasses of
:mod:`streamgru.daemon.config_schema`.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from .config_schema import (
    _ID_RE,
    _SINK_HINT,
    _SOURCE_HINT,
    DEFAULT_METRICS_PORT,
    FILTER_WORDS,
    GAP_POLICIES,
    LOG_FORMATS,
    LOG_LEVELS,
    NAN_POLICIES,
    SINK_SCHEMES,
    SOURCE_SCHEMES,
    DaemonConfig,
    FilterSpec,
    LoggingConfig,
    MetricsConfig,
    StreamConfig,
)
from .uri_checks import check_sink_options, check_source_options, check_state_dir, parse_mode


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
    check_source_options(t.path("source"), source)
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
    for k, uri in enumerate(sink_uris):
        check_sink_options(f"{t.path('sinks')}[{k}]", uri)
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
        exit_on_refused=_bool(t.path("exit_on_refused"), t.take("exit_on_refused", False)),
        sink_shutdown_s=_number(
            t.path("sink_shutdown_s"), t.take("sink_shutdown_s", 5.0), 0, strict=True
        ),
        state_dir_mode=parse_mode(t.path("state_dir_mode"), t.take("state_dir_mode", 0o750)),
    )
    t.done()
    if cfg.state_dir is not None:
        check_state_dir(t.path("state_dir"), cfg.state_dir)
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
