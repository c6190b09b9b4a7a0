"""A one-line progress display on stderr for long benchmark runs.

Disabled (every call a no-op) when the stream is not a terminal or when asked to be quiet, so
logs and pipes never see carriage returns.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``[ 3/12 0:04] step latency: torch GRUCell`` rewritten in place.

    Parameters
    ----------
    total : the number of tasks announced (the counter shows ``done/total``)
    enabled : None to enable only when ``stream`` is a TTY
    stream : where to write (stderr by default)
    """

    def __init__(
        self, total: int, enabled: bool | None = None, stream: TextIO | None = None
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.total = max(1, int(total))
        self.done = 0
        self._t0 = time.monotonic()
        self._width = 0

    def task(self, label: str) -> None:
        """Announce the next task (counts the previous one as done)."""
        self.done = min(self.done + 1, self.total)
        if not self.enabled:
            return
        elapsed = int(time.monotonic() - self._t0)
        line = f"[{self.done:>2}/{self.total} {elapsed // 60}:{elapsed % 60:02d}] {label}"
        pad = max(0, self._width - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self._width = len(line)

    def close(self) -> None:
        """Clear the line."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
        self._width = 0
