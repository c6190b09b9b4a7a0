"""``brainflow://BOARD?...``: any board BrainFlow drives, through its own ``BoardShim`` API
(extra ``brainflow``; the wheels bundle the native library).

``BOARD`` is a ``BoardIds`` name, case-insensitive, with or without ``_board``
(``synthetic``, ``cyton``, ``ganglion``, ``cyton_daisy``, ``muse_2``, ``playback_file``...) or
its number. The query sets ``BrainFlowInputParams`` fields by their names (``serial_port``,
``mac_address``, ``ip_address``, ``ip_port``, ``ip_protocol``, ``serial_number``, ``timeout``,
``other_info``, ``file``, ``master_board``...) and these of streamgru's own:

* ``kind`` (``exg``): which rows of BrainFlow's data become the channels: ``eeg``, ``exg``,
  ``emg``, ``ecg``, ``eog``, ``ppg``, ``eda``, ``accel``, ``gyro``...
  (``BoardShim.get_<kind>_channels``); EEG/ExG rows arrive in µV, as BrainFlow scales them;
* ``buffer`` (45000 samples: BrainFlow's ring buffer), ``poll`` (0.01 s between looks at it);
* ``counter`` (``N`` or ``N,STEP``): the board's package-number row counts modulo ``N`` in steps
  of ``STEP`` (1), and a jump in it becomes a counted gap (``Chunk.gap_before``); 0 ignores the
  counter. By default only boards whose counter is known (:data:`KNOWN_COUNTERS`: the synthetic
  board, and a playback whose master board is one of them) are checked; on every other board the
  counter is ignored unless ``counter=`` is given, since a wrong step or modulus (Cyton-Daisy
  steps by 2, Ganglion does not wrap at 256) would report a phantom gap, and reset the model,
  almost every sample;
* ``log`` (0): BrainFlow's own log lines on stderr.

A playback (``playback_file`` with ``file=PATH&master_board=synthetic``) replays a file
``DataFilter.write_file`` wrote, with the master board's rate, rows and names. Samples are
numbered from 0 at the session's start; a lost connection raises :class:`SourceError` (the
daemon reopens the source with backoff, and the indices start again from 0 as a restart).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..errors import ConfigError, SourceError, require
from .base import Source
from .chunk import Chunk, StreamInfo
from .uri import URI, Options

#: BrainFlowInputParams fields the query may set (the numeric ones are converted).
PARAMS = (
    "serial_port",
    "mac_address",
    "ip_address",
    "ip_address_aux",
    "ip_address_anc",
    "ip_port",
    "ip_port_aux",
    "ip_port_anc",
    "ip_protocol",
    "other_info",
    "timeout",
    "serial_number",
    "file",
    "file_aux",
    "file_anc",
    "master_board",
)
_INT_PARAMS = ("ip_port", "ip_port_aux", "ip_port_anc", "ip_protocol", "timeout", "master_board")
#: Boards whose package counter is known: ``BoardIds`` name → (modulus, step). BrainFlow's board
#: descriptions (``BoardShim.get_board_descr``) name the counter's row but not how it counts, so
#: only the synthetic board (BrainFlow's own, 0..255 in steps of 1) is listed; a playback takes its
#: master board's entry.
KNOWN_COUNTERS = {"SYNTHETIC_BOARD": (256, 1)}
#: ``kind`` values that are in µV.
_MICROVOLTS = ("eeg", "exg", "emg", "ecg", "eog")


def parse_counter(text: str | None, uri: str) -> tuple[int, int] | None:
    """``counter=N`` or ``N,STEP`` → (modulus, step); ``0`` → (0, 1) (off); None → None (the
    board's default, :data:`KNOWN_COUNTERS`)."""
    if text is None:
        return None
    try:
        parts = [int(v) for v in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts.append(1)
    ok = len(parts) == 2 and parts[0] >= 0 and parts[1] >= 1
    if not ok or (parts[0] and (parts[1] >= parts[0] or parts[0] % parts[1])):
        raise ConfigError(
            f"{uri}: option counter={text!r}: expected N or N,STEP (N >= 0 the modulus, "
            "0 for off; 1 <= STEP < N dividing N)"
        )
    return parts[0], parts[1]


def known_counter(board: int, bf: Any) -> tuple[int, int]:
    """(modulus, step) of ``board``'s package counter from :data:`KNOWN_COUNTERS`, (0, 1) when
    it is not known."""
    for name, value in KNOWN_COUNTERS.items():
        if int(bf.board_shim.BoardIds[name].value) == board:
            return value
    return 0, 1


def board_id(text: str, uri: str) -> int:
    """A ``BoardIds`` value from its name (``synthetic``, ``CYTON_BOARD``...) or number."""
    bf = require("brainflow", "brainflow", f"{uri}: the brainflow:// source")
    ids = bf.board_shim.BoardIds
    name = text.strip().upper().replace("-", "_")
    try:
        return int(name)
    except ValueError:
        pass
    for candidate in (name, name + "_BOARD"):
        if candidate in ids.__members__:
            return int(ids[candidate].value)
    raise ConfigError(
        f"{uri}: unknown BrainFlow board {text!r}; expected a BoardIds name such as synthetic, "
        "cyton, ganglion, playback_file (or its number)"
    )


class BrainFlowSource(Source):
    """Chunks from a BrainFlow board (see the module docstring).

    Parameters
    ----------
    uri : str
    board : the ``BoardIds`` value; params : a ``BrainFlowInputParams``
    settings : ``kind``, ``buffer``, ``poll``, ``counter`` ((modulus, step) or None for the
        board's default; the module docstring)
    """

    def __init__(self, uri: str, board: int, params: Any, settings: dict[str, Any]) -> None:
        super().__init__(uri)
        bf = require("brainflow", "brainflow", f"{uri}: the brainflow:// source")
        shim_cls = bf.board_shim.BoardShim
        self._error = bf.board_shim.BrainFlowError
        self._poll = float(settings["poll"])
        no_board = int(bf.board_shim.BoardIds.NO_BOARD.value)
        master = int(params.master_board)
        described = board if master == no_board else master  # playback: the master's rows
        counter = settings["counter"] or known_counter(described, bf)
        self._modulus, self._step = int(counter[0]), int(counter[1])
        try:
            descr = shim_cls.get_board_descr(described)
            kind = settings["kind"]
            rows = getattr(shim_cls, f"get_{kind}_channels", None)
            if rows is None:
                raise ConfigError(f"{uri}: kind={kind!r}: BrainFlow has no get_{kind}_channels")
            self._rows = list(rows(described))
            self._counter_row = descr.get("package_num_channel")
            self._shim = shim_cls(board, params)
            self._shim.prepare_session()
            try:
                self._shim.start_stream(int(settings["buffer"]))
            except self._error:
                self._close()  # the session holds the board (a serial port): let it go
                raise
        except self._error as exc:
            raise SourceError(f"{uri}: BrainFlow cannot open the board: {exc}") from exc
        names = str(descr.get("eeg_names", "")).split(",") if kind in ("eeg", "exg") else []
        n = len(self._rows)
        self.info = StreamInfo(
            fs=float(descr["sampling_rate"]),
            n_channels=n,
            labels=tuple(names) if len(names) == n else tuple(f"{kind}{k}" for k in range(n)),
            units=("uV" if kind in _MICROVOLTS else "",) * n,
            device_id=f"brainflow-{descr.get('name', board)}",
            sample_format="float64",
        )
        self._next = 0
        self._last_counter: int | None = None
        self.samples_lost = 0
        self.gaps = 0

    def _fill(self, deadline: float | None) -> None:
        while True:
            try:
                n = self._shim.get_board_data_count()
                data = self._shim.get_board_data(n) if n > 0 else None
            except self._error as exc:
                raise SourceError(f"{self.uri}: BrainFlow read failed: {exc}") from exc
            if data is not None and data.shape[1]:
                self._push(data)
                return
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            time.sleep(self._poll if deadline is None else min(self._poll, deadline - now))

    def _push(self, data: np.ndarray) -> None:
        """(rows, n) board data → chunks, split where the package counter jumps."""
        X = np.ascontiguousarray(data[self._rows].T, dtype=np.float32)
        now = time.monotonic()
        if self._modulus <= 0 or self._counter_row is None:
            self._pending.append(Chunk(X, self._next, now))
            self._next += X.shape[0]
            return
        counter = data[self._counter_row].astype(np.int64) % self._modulus
        step = self._step
        prev = counter[0] - step if self._last_counter is None else self._last_counter
        jumps = (np.diff(np.concatenate([[prev], counter])) - step) % self._modulus
        steps = jumps // step  # packages lost before each sample
        self._last_counter = int(counter[-1])
        cuts = np.flatnonzero(steps)
        starts = [0, *(int(c) for c in cuts if c > 0)]
        for a, b in zip(starts, [*starts[1:], X.shape[0]]):
            lost = int(steps[a])
            if lost:
                self.gaps += 1
                self.samples_lost += lost
            self._next += lost
            self._pending.append(Chunk(X[a:b], self._next, now, gap_before=lost))
            self._next += b - a

    def _extra_stats(self, stats: Any) -> None:
        stats.gaps = self.gaps
        stats.samples_lost = self.samples_lost

    def _close(self) -> None:
        for step in (self._shim.stop_stream, self._shim.release_session):
            try:
                step()
            except self._error:  # already stopped or released
                pass


def open_brainflow_source(uri: URI, opts: Options) -> BrainFlowSource:
    """``brainflow://BOARD?...`` (the module docstring)."""
    bf = require("brainflow", "brainflow", f"{uri.text}: the brainflow:// source")
    if not uri.host:
        raise ConfigError(f"{uri.text}: expected brainflow://BOARD (synthetic, cyton, ...)")
    board = board_id(uri.text.split("://", 1)[1].split("?", 1)[0].split("/", 1)[0], uri.text)
    params = bf.board_shim.BrainFlowInputParams()
    for name in PARAMS:
        value = opts.text(name)
        if value is None:
            continue
        if name == "master_board":
            params.master_board = board_id(value, uri.text)
        elif name in _INT_PARAMS:
            params.__setattr__(name, int(opts.integer(name) or 0))
        else:
            params.__setattr__(name, value)
    settings = {
        "kind": (opts.text("kind", "exg") or "exg").lower(),
        "buffer": opts.integer("buffer", 45000, minimum=1),
        "poll": opts.number("poll", 0.01, positive=True),
        "counter": parse_counter(opts.text("counter"), uri.text),
    }
    log = opts.flag("log", False)
    opts.finish()
    if not log:
        bf.board_shim.BoardShim.disable_board_logger()
    return BrainFlowSource(uri.text, board, params, settings)
