"""``streamgru demo --view``: the demo's stream on the live view (:mod:`streamgru.view`).

The demo picks the port (``--view-port``, else a free one) so it can print the URL before the
first sample; it opens a browser when the machine has a display (``DISPLAY`` /
``WAYLAND_DISPLAY``, macOS, Windows), and keeps the page served ``--linger`` seconds after the
replay ends (default 30 s with ``--view``; ``inf``: until Ctrl-C).
"""

from __future__ import annotations

import math
import os
import socket
import sys
import threading
from collections.abc import Callable
from typing import TextIO

#: Seconds the view stays up after the replay when ``--linger`` is not given.
DEFAULT_LINGER_S = 30.0


def view_address(port: int | None) -> tuple[str, str]:
    """``(sink URI, page URL)`` on 127.0.0.1: ``port``, or a port that was free a moment ago."""
    if not port:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
    return f"view://127.0.0.1:{port}?window_s=8", f"http://127.0.0.1:{port}/"


def announce(url: str, linger: float, out: TextIO) -> None:
    """Print where the live view is (and open a browser where there is a display)."""
    until = "until Ctrl-C" if math.isinf(linger) else f"{linger:g} s after the replay ends"
    print(f"  live view    {url}  (served {until})", file=out, flush=True)
    gui = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if gui or sys.platform in ("darwin", "win32"):
        import webbrowser

        try:
            webbrowser.open(url, new=2)
        except Exception:  # no browser: the URL is printed
            pass


def schedule_stop(
    duration: float, linger: float, stop_replay: Callable[[], None], stop: Callable[[], None]
) -> list[threading.Timer]:
    """Timers that end the replay after ``duration`` s and the demo ``linger`` s later (none
    for an infinite linger: Ctrl-C ends it). Started, daemonic; cancel them when done."""
    timers = []
    if linger > 0:
        timers.append(threading.Timer(duration, stop_replay))
    if not math.isinf(linger):
        timers.append(threading.Timer(duration + max(0.0, linger), stop))
    for t in timers:
        t.daemon = True
        t.start()
    return timers
