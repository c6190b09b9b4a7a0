"""What ``config check`` can know before the daemon runs, beyond each field's type: the options
of every source and sink URI, the state directory, and, for sources that need no device
(``file://``, ``synthetic://``), that the stream's ``pick``, channels and rate fit what the
source will announce.

Every error is a :class:`~streamgru.errors.ConfigError` whose message starts with the field's
path (``stream[0].sinks[1]: ...``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ConfigError, StreamgruError

if TYPE_CHECKING:
    from .config_schema import Config
    from .plan import StreamPlan

#: Sources whose stream can be known without a device (opened by ``config check``).
OFFLINE_SCHEMES = ("file", "synthetic")


def check_source_options(where: str, uri: str) -> None:
    """Refuse a source option that the source would refuse when it opens."""
    from ..io.sources import check_source_options as check

    try:
        check(uri)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def check_sink_options(where: str, uri: str) -> None:
    """Refuse a sink option (the sink's or the writer's) that would fail when it opens."""
    from ..io.sinks import check_sink

    try:
        check_sink(uri)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_mode(where: str, value: Any) -> int:
    """Permission bits from TOML: an integer (``0o750``) or an octal string (``"0750"``)."""
    if isinstance(value, str):
        try:
            value = int(value.removeprefix("0o"), 8)
        except ValueError:
            value = -1
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        raise ConfigError(f'{where}: expected permission bits like 0o750 or "0750", got {value!r}')
    return value


def check_state_dir(where: str, path: Path) -> None:
    """The state directory must be a writable folder, or creatable in a writable one."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe == path and not path.is_dir():
        raise ConfigError(f"{where}: {str(path)!r} exists and is not a directory")
    if not probe.is_dir():
        raise ConfigError(
            f"{where}: {str(path)!r} cannot be created: {str(probe)!r} is not a directory"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "is not writable" if probe == path else f"cannot be created in {str(probe)!r}"
        raise ConfigError(f"{where}: {str(path)!r} {what} (no write permission)")


def check_offline_sources(config: Config, plans: Sequence[StreamPlan]) -> None:
    """Open each ``file://`` / ``synthetic://`` source and check what it announces against its
    stream's plan (rate, channels, ``pick``), as the reader would at run time."""
    from ..io.sources import open_source
    from .plan import check_stream_info

    for k, (cfg, plan) in enumerate(zip(config.streams, plans)):
        if urlsplit(cfg.source).scheme.lower() not in OFFLINE_SCHEMES:
            continue
        try:
            source = open_source(cfg.source)
        except StreamgruError as exc:
            raise ConfigError(f"stream[{k}].source: cannot open {cfg.source}: {exc}") from None
        try:
            if source.info is not None:
                check_stream_info(plan, source.info)
        except ConfigError as exc:  # "pick: ...", "channels: ...", "fs: ..."
            raise ConfigError(f"stream[{k}].{exc} (the source is {cfg.source})") from None
        finally:
            source.close()
