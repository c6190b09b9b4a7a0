"""Daemon configuration: TOML in, frozen dataclasses out, everything validated up front.

A site file has one ``[[stream]]`` table per input stream and optional ``[daemon]``,
``[metrics]``, ``[logging]`` and ``[view]`` (the live view: :mod:`.view_config`) tables::

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

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .config_checks import _daemon, _logging, _metrics, _stream, _Table
from .config_schema import Config
from .uri_checks import check_state_dir
from .view_config import view_uri, with_view

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


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
    view_raw = top.take("view")  # [view]: the live view, a sink of every stream
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
    config = Config(
        streams=streams,
        daemon=_daemon(daemon_raw, base),
        metrics=_metrics(metrics_raw),
        logging=_logging(logging_raw),
        path=path,
    )
    return config if view_raw is None else with_view(config, view_uri(view_raw))


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


@dataclass(frozen=True)
class AdhocSettings:
    """One stream given on the command line: ``streamgru run --source URI --model PATH ...``.

    Each field is the option of the same name (``stream_id``: ``--id``, ``sinks``: ``--sink``,
    ``metrics``: not ``--no-metrics``); None leaves the config's default.
    """

    source: str
    model: str
    stream_id: str = "stream0"
    sinks: Sequence[str] = ("stdout://",)
    filter: str | None = None
    fs: float | None = None
    channels: int | None = None
    pick: Sequence[str | int] = ()
    gap_policy: str | None = None
    nan_policy: str | None = None
    events: bool = False
    resample: bool = False
    state_dir: str | None = None
    resume: bool = False
    snapshot_interval_s: float | None = None
    metrics_port: int | None = None
    metrics: bool = True
    log_level: str = "info"
    log_format: str = "json"


def adhoc_config(settings: AdhocSettings) -> Config:
    """The :class:`Config` of ``streamgru run --source URI --model PATH ...`` (one stream).

    Errors name the command-line option (``--source: ...``) rather than the TOML field.
    """
    a = settings
    stream: dict[str, Any] = {
        "id": a.stream_id,
        "source": a.source,
        "model": a.model,
        "sinks": list(a.sinks),
        "events": a.events,
        "resample": a.resample,
    }
    optional = {
        "filter": a.filter,
        "fs": a.fs,
        "channels": a.channels,
        "gap_policy": a.gap_policy,
        "nan_policy": a.nan_policy,
    }
    stream.update({k: v for k, v in optional.items() if v is not None})
    if a.pick:
        stream["pick"] = [int(p) if isinstance(p, str) and p.isdigit() else p for p in a.pick]
    daemon: dict[str, Any] = {"resume": a.resume}
    if a.state_dir is not None:
        daemon["state_dir"] = a.state_dir
    if a.snapshot_interval_s is not None:
        daemon["snapshot_interval_s"] = a.snapshot_interval_s
    metrics = {"enabled": a.metrics, **({} if a.metrics_port is None else {"port": a.metrics_port})}
    doc = {
        "stream": [stream],
        "daemon": daemon,
        "metrics": metrics,
        "logging": {"level": a.log_level, "format": a.log_format},
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
    if daemon_fields.get("state_dir") is not None:
        check_state_dir("--state-dir", Path(daemon_fields["state_dir"]))
    return replace(config, daemon=daemon)
