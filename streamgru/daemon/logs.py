"""Logging for the daemon: one JSON object per line on stderr (or plain text).

Every record has ``ts`` (UTC, ISO 8601), ``level``, ``logger`` and ``msg``; fields given with
``extra={"fields": {...}}`` (or through :func:`log`) are merged in, so a line looks like::

    {"ts": "2026-01-02T03:04:05.678Z", "level": "warning", "logger": "streamgru.daemon",
     "msg": "gap", "stream": "bed1", "lost": 12, "policy": "reset"}

(on one line). Values that JSON cannot hold are written as their ``str``.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from typing import Any, TextIO

ROOT = "streamgru"
_HANDLER_FLAG = "_streamgru_handler"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object (no newline inside)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        obj: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            obj.update(fields)
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        for key, value in obj.items():
            if isinstance(value, float) and not math.isfinite(value):
                obj[key] = str(value)  # strict JSON has no NaN / Infinity
        return json.dumps(obj, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: msg key=value ...`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record)} {record.levelname.lower():7s} {record.name}: "
        text = base + record.getMessage()
        fields = getattr(record, "fields", None)
        if fields:
            text += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
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
