"""``[view]`` in the config and ``streamgru run --view``: the live view as a sink of every stream.

::

    [view]
    enabled = true        # default true when the table is present
    host = "127.0.0.1"    # loopback by default: the page is not authenticated
    port = 9109           # 0: the OS picks a free port (logged as "live view", field url)
    window_s = 10         # seconds of signal shown
    rate_hz = 20          # pushes per second to each browser (decoupled from the sample rate)
    points_per_s = 100    # display points per second of signal (min/max of their samples)

The table becomes one ``view://HOST:PORT?...`` sink URI appended to every stream's ``sinks``
(:func:`with_view`): one server, one page, every stream on it (:mod:`streamgru.view`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlencode, urlsplit

from ..errors import ConfigError
from .config_checks import _bool, _integer, _number, _string, _Table
from .config_schema import Config

#: The live view's port when none is given.
DEFAULT_VIEW_PORT = 9109


def view_uri(data: Any) -> str | None:
    """The sink URI of a ``[view]`` table (None when ``enabled = false``).

    Raises
    ------
    ConfigError : an unknown key or a bad value, naming ``view.<key>``.
    """
    t = _Table("view", data)
    enabled = _bool(t.path("enabled"), t.take("enabled", True))
    host = _string(t.path("host"), t.take("host", "127.0.0.1"))
    port = _integer(t.path("port"), t.take("port", DEFAULT_VIEW_PORT), 0, 65535)
    options = {}
    for key, default, top in (
        ("window_s", 10.0, 3600.0),
        ("rate_hz", 20.0, 100.0),
        ("points_per_s", 100.0, 2000.0),
    ):
        value = _number(t.path(key), t.take(key, default), 0.0, strict=True)
        if value > top:
            raise ConfigError(f"{t.path(key)}: expected a number <= {top:g}, got {value:g}")
        if value != default:
            options[key] = f"{value:g}"
    t.done()
    if not enabled:
        return None
    netloc = f"[{host}]" if ":" in host else host
    return f"view://{netloc}:{port}" + (f"?{urlencode(options)}" if options else "")


def _view_address(uri: str) -> tuple[str, int | None] | None:
    """(host, port) of a ``view://`` URI (``localhost`` and an empty host read as 127.0.0.1),
    None for any other sink."""
    if not uri.lower().startswith("view://"):
        return None
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError:
        return None  # a bad port: ``config check`` names it
    host = (parts.hostname or "127.0.0.1").lower()
    return ("127.0.0.1" if host == "localhost" else host), port


def with_view(config: Config, uri: str | None) -> Config:
    """A copy whose every stream also writes to the view sink ``uri`` (unchanged when None, and
    for a stream that already has a view sink on the same host and port, whatever its options:
    a second server could never bind there, so ``run --config X --view`` with a ``[view]``
    table keeps the table's)."""
    if uri is None:
        return config
    where = _view_address(uri)

    def has_it(sinks: tuple[str, ...]) -> bool:
        return uri in sinks or any(_view_address(k) == where for k in sinks)

    streams = tuple(
        s if has_it(s.sinks) else replace(s, sinks=(*s.sinks, uri)) for s in config.streams
    )
    return replace(config, streams=streams)


def view_option(port: int | None = None, host: str = "127.0.0.1") -> str:
    """The view sink URI of ``--view`` (``--view-port``; 0 picks a free port)."""
    return view_uri({"host": host, "port": DEFAULT_VIEW_PORT if port is None else port}) or ""
