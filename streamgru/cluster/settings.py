"""Worker settings: :class:`ClusterConfig`, the server and KV names, and ``[cluster]`` TOML files.

See :mod:`streamgru.cluster` for the layout on the NATS server.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..daemon.config_schema import GAP_POLICIES, NAN_POLICIES
from ..daemon.logs import get_logger
from ..errors import ConfigError
from ..io.nats_io import (
    OUTPUT_FORMATS,
)

IN_STREAM = "SG_IN"


OUT_STREAM = "SG_OUT"


OWNERS_BUCKET = "sg_owners"


STATE_BUCKET = "sg_state"


PARTITION_MODES = ("server", "publisher")


SERVER_SCHEMES = ("nats", "tls", "ws", "wss")


EXIT_CONFIG = 78


_LOG = get_logger("cluster")


# ------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class ClusterConfig:
    """Settings of one worker (every worker of a cluster uses the same partitions and model)."""

    nats: str
    partitions: int
    model: str
    filter: str = "model"  # "model", "none" or a preset name (with fs)
    fs: float | None = None
    mains: int = 50
    worker_id: str = ""
    lease_ttl_s: float = 10.0
    snapshot_interval_s: float = 5.0
    partition_mode: str = "server"
    replay_window_s: float = 24 * 3600.0
    keep_outputs_s: float = 0.0
    output_format: str = "sgp1"
    gap_policy: str = "hold"
    gap_fill_max_s: float = 0.0
    nan_policy: str = "hold"
    fetch_batch: int = 256

    def __post_init__(self) -> None:
        _check_server_url(self.nats)
        if self.partitions < 1:
            raise ConfigError(f"partitions: expected an integer >= 1, got {self.partitions}")
        if not self.worker_id:
            object.__setattr__(self, "worker_id", f"{socket.gethostname()}-{os.getpid()}")
        if not re.match(r"^[A-Za-z0-9_-]{1,64}$", self.worker_id):
            raise ConfigError(f"worker_id: expected 1-64 of [A-Za-z0-9_-], got {self.worker_id!r}")
        if self.lease_ttl_s < 1.0:
            raise ConfigError(f"lease_ttl_s: expected >= 1 s, got {self.lease_ttl_s}")
        if not 0 < self.snapshot_interval_s:
            raise ConfigError(f"snapshot_interval_s: expected > 0, got {self.snapshot_interval_s}")
        for name, value, choices in (
            ("partition_mode", self.partition_mode, PARTITION_MODES),
            ("output_format", self.output_format, OUTPUT_FORMATS),
            ("gap_policy", self.gap_policy, GAP_POLICIES),
            ("nan_policy", self.nan_policy, NAN_POLICIES),
        ):
            if value not in choices:
                raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")


def _check_server_url(url: str) -> None:
    """A NATS server URL: ``nats://host[:port]`` (``tls``, ``ws``, ``wss`` too), no subject."""
    parts = urlsplit(url) if isinstance(url, str) else None
    try:
        ok = (
            parts is not None
            and parts.scheme in SERVER_SCHEMES
            and bool(parts.hostname)
            and parts.path.strip("/") == ""
            and parts.port != 0
        )
    except ValueError:  # a port that is not a number
        ok = False
    if not ok:
        raise ConfigError(f"nats: expected a server URL like nats://host:4222, got {url!r}")


_TYPES: dict[str, tuple[type, ...]] = {
    "nats": (str,),
    "model": (str,),
    "filter": (str,),
    "worker_id": (str,),
    "partition_mode": (str,),
    "output_format": (str,),
    "gap_policy": (str,),
    "nan_policy": (str,),
    "partitions": (int,),
    "mains": (int,),
    "fetch_batch": (int,),
    "fs": (int, float),
    "lease_ttl_s": (int, float),
    "snapshot_interval_s": (int, float),
    "replay_window_s": (int, float),
    "keep_outputs_s": (int, float),
    "gap_fill_max_s": (int, float),
}


def cluster_config_from_table(table: Any, base: str | os.PathLike = ".") -> ClusterConfig:
    """Validate a ``[cluster]`` TOML table (keys = :class:`ClusterConfig` fields).

    ``model`` is resolved against ``base`` (the config file's folder). Errors are
    :class:`ConfigError` starting with the field's path, e.g. ``cluster.partitions: ...``.
    """
    if not isinstance(table, dict):
        raise ConfigError(f"cluster: expected a table, got {type(table).__name__}")
    for key, value in table.items():
        if key not in _TYPES:
            raise ConfigError(f"cluster.{key}: unknown key (known: {', '.join(sorted(_TYPES))})")
        if isinstance(value, bool) or not isinstance(value, _TYPES[key]):
            want = " or ".join(t.__name__ for t in _TYPES[key])
            raise ConfigError(f"cluster.{key}: expected {want}, got {value!r}")
    for key in ("nats", "partitions", "model"):
        if key not in table:
            raise ConfigError(f"cluster.{key}: missing (needed: nats, partitions, model)")
    values = dict(table)
    values["model"] = os.path.join(os.fspath(base), os.path.expanduser(values["model"]))
    try:
        return ClusterConfig(**values)
    except ConfigError as exc:
        raise ConfigError(f"cluster.{exc}") from None


def _read_toml(path: str | os.PathLike) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config: cannot read {os.fspath(path)!r}: {exc}") from exc


def is_cluster_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TOML file with a ``[cluster]`` table.

    False for a file that cannot be read or parsed: the daemon's loader reports that.
    """
    try:
        return "cluster" in _read_toml(path)
    except ConfigError:
        return False


def load_cluster_file(path: str | os.PathLike) -> tuple[ClusterConfig, dict[str, str]] | None:
    """``(config, logging table)`` from a TOML file with a ``[cluster]`` table, else None."""
    doc = _read_toml(path)
    if "cluster" not in doc:
        return None
    extra = set(doc) - {"cluster", "logging"}
    if extra:
        raise ConfigError(
            f"{sorted(extra)[0]}: a [cluster] file takes only [cluster] and [logging] tables "
            "(the streams come from NATS)"
        )
    base = os.path.dirname(os.path.abspath(path))
    logging_table = doc.get("logging", {})
    if not isinstance(logging_table, dict) or set(logging_table) - {"level", "format"}:
        raise ConfigError("logging: expected a table with level and/or format")
    return cluster_config_from_table(doc["cluster"], base), logging_table
