"""Source and sink URIs: ``scheme://host:port/path?key=value&...`` split into typed options.

Options come from the query string and from keyword arguments (which win). Every source and sink
reads the options it knows through :class:`Options`, then calls :meth:`Options.finish`, which
refuses any option nobody read, naming the accepted ones (a typo never passes silently).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, overload
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import ConfigError


@dataclass(frozen=True)
class URI:
    """A parsed URI.

    Attributes
    ----------
    text : the URI as given
    scheme : lower-case scheme (``"serial"``, ``"tcp"``, ...)
    host, port : network location (``""`` / ``None`` when absent)
    path : ``netloc + path`` for file-like schemes (``file://data/x.npy`` → ``data/x.npy``)
    query : raw query options
    """

    text: str
    scheme: str
    host: str
    port: int | None
    path: str
    query: dict[str, str]


#: Schemes whose netloc is part of a path (``file://data/x.npy``).
FILE_SCHEMES = ("file", "jsonl", "csv", "edf")


def parse_uri(text: str, expected: str) -> URI:
    """Split ``text``; ``expected`` describes the accepted forms for the error message."""
    if not isinstance(text, str) or "://" not in text:
        raise ConfigError(f"expected a URI like {expected}, got {text!r}")
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{text!r}: bad port ({exc}); expected {expected}") from None
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    netloc = parts.netloc if parts.netloc not in ("localhost",) else ""
    path = unquote(netloc + parts.path) if parts.scheme in FILE_SCHEMES else unquote(parts.path)
    return URI(text, parts.scheme.lower(), parts.hostname or "", port, path, query)


#: ``scheme://USERINFO@`` anywhere in a text (USERINFO runs to the netloc's last ``@``, as
#: ``urlsplit`` reads it).
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#\s]*)@")


def _userinfo(match: re.Match) -> str:
    if match.group(1)[:-3].lower() in FILE_SCHEMES:  # a path: no userinfo there
        return match.group(0)
    user, colon, _ = match.group(2).partition(":")
    return f"{match.group(1)}{user if colon else '***'}@"


def redact_uri(text: str) -> str:
    """``text`` with the secret of every ``scheme://userinfo@host`` in it removed: the password
    of ``user:password`` (``nats://user:pw@h:4222`` → ``nats://user@h:4222``), and a userinfo
    without one, which may be a token (``nats://TOKEN@h`` → ``nats://***@h``). Used wherever a
    URI, or a message quoting one, becomes a metric label or a log field."""
    if "@" not in text:  # the common case: nothing to look for
        return text
    return _USERINFO.sub(_userinfo, text)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Options:
    """Typed access to a URI's options plus keyword overrides, with unknown-key detection."""

    def __init__(self, uri: URI, overrides: dict[str, Any] | None = None) -> None:
        self.uri = uri
        self._values: dict[str, Any] = dict(uri.query)
        self._values.update(overrides or {})
        self._read: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def raw(self, name: str, default: Any = None) -> Any:
        self._read.add(name)
        return self._values.get(name, default)

    def _bad(self, name: str, value: Any, what: str) -> ConfigError:
        return ConfigError(f"{self.uri.text}: option {name}={value!r}: expected {what}")

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.raw(name, default)
        return None if value is None else str(value)

    @overload
    def number(
        self, name: str, default: float, *, minimum: float | None = ..., positive: bool = ...
    ) -> float: ...
    @overload
    def number(
        self,
        name: str,
        default: None = ...,
        *,
        minimum: float | None = ...,
        positive: bool = ...,
    ) -> float | None: ...
    def number(
        self,
        name: str,
        default: float | None = None,
        *,
        minimum: float | None = None,
        positive: bool = False,
    ) -> float | None:
        value = self.raw(name, default)
        if value is None:
            return None
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise self._bad(name, value, "a number") from None
        if out != out or (positive and out <= 0) or (minimum is not None and out < minimum):
            what = "a number > 0" if positive else f"a number >= {minimum}"
            raise self._bad(name, value, what)
        return out

    @overload
    def integer(self, name: str, default: int, *, minimum: int | None = ...) -> int: ...
    @overload
    def integer(
        self, name: str, default: None = ..., *, minimum: int | None = ...
    ) -> int | None: ...
    def integer(
        self, name: str, default: int | None = None, *, minimum: int | None = None
    ) -> int | None:
        value = self.raw(name, default)
        if value is None:
            return None
        try:
            out = int(value)
        except (TypeError, ValueError):
            raise self._bad(name, value, "an integer") from None
        if minimum is not None and out < minimum:
            raise self._bad(name, value, f"an integer >= {minimum}")
        return out

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.raw(name, default)
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise self._bad(name, value, "0/1, true/false, yes/no or on/off")

    def unread(self) -> dict[str, Any]:
        """The options nothing has read yet (e.g. to pass on to pyserial)."""
        return {k: v for k, v in self._values.items() if k not in self._read}

    def finish(self) -> None:
        """Raise :class:`ConfigError` if an option was given that nothing read."""
        unknown = sorted(set(self._values) - self._read)
        if unknown:
            known = ", ".join(sorted(self._read)) or "none"
            raise ConfigError(
                f"{self.uri.text}: unknown option(s) {', '.join(unknown)}; accepted: {known}"
            )
