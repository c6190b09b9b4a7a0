"""Logging for the daemon: one JSON object per line on stderr (or plain text).

Every record has ``ts`` (UTC, ISO 8601), ``level``, ``logger`` and ``msg``; fields given with
``extra={"fields": {...}}`` (or through :func:`log`) are merged in, so a line looks like::

    {"ts": "2026-01-02T03:04:05.678Z", "level": "warning", "logger": "streamgru.daemon",
     "msg": "gap", "stream": "bed1", "lost": 12, "policy": "reset"}

(on one line). Values that JSON cannot hold are written as their ``str``.

Logged values may come from a device (HELLO labels, units, ids, EVENT texts, URIs, error messages
quoting them): in both formats every string is bounded (:data:`MAX_FIELD_CHARS`, lists to
:data:`MAX_FIELD_ITEMS` items) and no control character (C0, DEL, C1, ESC, CR, LF, the Unicode
line separators and bidi overrides) reaches the output raw, so no value can end a line, forge
another record or drive a terminal: JSON lines are ASCII (``\\u001b``, ``\\n``: the value
decodes back as it was), the text format writes them as ``\\x1b``, ``\\n`` and double-quotes
values with spaces, ``=`` or quotes. No URI password reaches a log line either (a source or sink
URI, or an error quoting one: ``nats://user:pw@h`` is logged as ``nats://user@h``).
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import re
import sys
import time
from typing import Any, TextIO

from ..io.uri import redact_uri

ROOT = "streamgru"
_HANDLER_FLAG = "_streamgru_handler"
#: Longest logged string (characters); a longer one is cut and says by how much.
MAX_FIELD_CHARS = 512
#: Most items of a logged list (e.g. channel labels); the rest are counted, not written.
MAX_FIELD_ITEMS = 64
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    ch = match.group()
    code = ord(ch)
    return _NAMED.get(ch) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def clean_text(text: str, limit: int = MAX_FIELD_CHARS, escape: bool = True) -> str:
    """``text`` bounded to ``limit`` characters, with every control character escaped unless
    ``escape`` is false (JSON escapes them itself), and no URI password in it
    (:func:`~streamgru.io.uri.redact_uri`: a sink or source URI, or an error quoting one)."""
    text = redact_uri(text)
    if len(text) > limit:
        text = f"{text[:limit]}...(+{len(text) - limit} chars)"
    return _UNSAFE.sub(_escape, text) if escape else text


def clean_value(value: Any, escape: bool = True, depth: int = 0) -> Any:
    """A log field made safe: strings cleaned (:func:`clean_text`), lists and dicts bounded,
    recursively."""
    if value is None or isinstance(value, numbers.Number):
        return value
    if isinstance(value, str):
        return clean_text(value, escape=escape)
    if depth < 4 and isinstance(value, (list, tuple)):
        out = [clean_value(v, escape, depth + 1) for v in value[:MAX_FIELD_ITEMS]]
        if len(value) > MAX_FIELD_ITEMS:
            out.append(f"...(+{len(value) - MAX_FIELD_ITEMS} items)")
        return out
    if depth < 4 and isinstance(value, dict):
        items = list(value.items())[:MAX_FIELD_ITEMS]
        return {clean_text(str(k), 64, escape): clean_value(v, escape, depth + 1) for k, v in items}
    return clean_text(str(value), escape=escape)


def _text_value(value: Any) -> str:
    """One field's value for the text format: cleaned, quoted when it holds spaces, = or quotes."""
    value = clean_value(value)
    text = (
        value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    )
    if text == "" or any(c in text for c in ' ="\\'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object (no newline inside)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        obj: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": clean_text(record.getMessage(), 4 * MAX_FIELD_CHARS, escape=False),
        }
        fields = getattr(record, "fields", None)
        if fields:  # bounded here; json.dumps (ASCII) escapes every control character
            obj.update({clean_text(str(k), 64): clean_value(v, False) for k, v in fields.items()})
        if record.exc_info:
            exc = self.formatException(record.exc_info)
            obj["exc"] = clean_text(exc, 16 * MAX_FIELD_CHARS, escape=False)
        for key, value in obj.items():
            if isinstance(value, float) and not math.isfinite(value):
                obj[key] = str(value)  # strict JSON has no NaN / Infinity
        return json.dumps(obj, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: msg key=value ...`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record)} {record.levelname.lower():7s} {record.name}: "
        text = base + clean_text(record.getMessage(), 4 * MAX_FIELD_CHARS)
        fields = getattr(record, "fields", None)
        if fields:
            text += " " + " ".join(
                f"{clean_text(str(k), 64)}={_text_value(v)}" for k, v in fields.items()
            )
        if record.exc_info:  # one line too: a traceback quotes untrusted messages
            exc = self.formatException(record.exc_info)
            text += " exc=" + _text_value(clean_text(exc, 16 * MAX_FIELD_CHARS))
        return text


def setup_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Send the ``streamgru`` loggers to ``stream`` (stderr) in ``fmt`` at ``level``.

    Calling it again (a reload) replaces the handler it installed, not others.
    """
    root = logging.getLogger(ROOT)
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_FLAG, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    setattr(handler, _HANDLER_FLAG, True)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    root.propagate = False


def log(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    """``logger.log(level, msg)`` with structured ``fields`` (cheap when the level is off)."""
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})


def get_logger(name: str) -> logging.Logger:
    """A logger under ``streamgru`` (``get_logger("daemon")`` → ``streamgru.daemon``)."""
    return logging.getLogger(f"{ROOT}.{name}")
