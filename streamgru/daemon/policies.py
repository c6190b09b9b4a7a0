"""What the pipeline does about gaps and about NaN/Inf samples.

Gap policies (``gap_policy``), applied when samples were lost before a chunk:

* ``reset``: the filter and GRU state start afresh at the first sample after the gap.
* ``hold``: the state is kept as if the samples were contiguous (no output for the lost ones).
* ``fill``: up to ``gap_fill_max_s`` of lost samples are filled with the last sample seen and run
  through filter and GRU (their outputs are not written: they are not data), which keeps the
  filter's and the model's sense of time; a longer gap resets as ``reset`` does.

A device restart (a discontinuity of unknown length) resets under ``reset`` and ``fill`` and
is held under ``hold``.

NaN policies (``nan_policy``), applied to every sample with a NaN or Inf before it can reach the
filter or the hidden state (the Stepper refuses them; these policies decide instead):

* ``hold``: the channel's last finite value is used (0 before any).
* ``zero``: 0 is used.
* ``reset``: the sample is dropped (no output row) and the state starts afresh at the next
  finite sample.

Both policies are small objects with their own state (the last finite sample), which
:meth:`NanPolicy.snapshot` / :meth:`NanPolicy.restore` carry across restarts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, SnapshotError
from .config_schema import GAP_POLICIES, NAN_POLICIES


@dataclass(frozen=True)
class GapDecision:
    """What to do before a chunk that follows a gap.

    action : "none" (contiguous), "reset", "hold" or "fill"
    fill : samples to synthesise (``action == "fill"``), else 0
    """

    action: str
    fill: int = 0


NO_GAP = GapDecision("none")


class GapPolicy:
    """Decides, per gap, between reset, hold and fill (see the module docstring).

    Parameters
    ----------
    name : one of :data:`~streamgru.daemon.config.GAP_POLICIES`
    fill_max : largest gap in samples that ``fill`` fills (longer ones reset)
    """

    def __init__(self, name: str, fill_max: int = 0) -> None:
        if name not in GAP_POLICIES:
            raise ConfigError(
                f"gap_policy: expected one of {', '.join(GAP_POLICIES)}, got {name!r}"
            )
        self.name = name
        self.fill_max = int(fill_max)

    @classmethod
    def from_seconds(cls, name: str, fill_max_s: float, fs: float) -> GapPolicy:
        """``fill_max`` given in seconds at sample rate ``fs``."""
        return cls(name, math.floor(fill_max_s * fs + 1e-9))

    def decide(self, lost: int, restarted: bool = False) -> GapDecision:
        """The decision for ``lost`` missing samples (and/or a device restart)."""
        if restarted:
            return GapDecision("hold") if self.name == "hold" else GapDecision("reset")
        if lost <= 0:
            return NO_GAP
        if self.name == "fill" and lost <= self.fill_max:
            return GapDecision("fill", lost)
        if self.name == "hold":
            return GapDecision("hold")
        return GapDecision("reset")


class NanPolicy:
    """Replaces or drops non-finite samples before they reach the filter (see module docstring).

    Parameters
    ----------
    name : one of :data:`~streamgru.daemon.config.NAN_POLICIES`
    n_channels : channels per sample
    """

    def __init__(self, name: str, n_channels: int) -> None:
        if name not in NAN_POLICIES:
            raise ConfigError(
                f"nan_policy: expected one of {', '.join(NAN_POLICIES)}, got {name!r}"
            )
        self.name = name
        #: (C,) float32: the last finite value of each channel (0 before any); used by ``hold``
        #: and by gap filling.
        self.last = np.zeros(n_channels, dtype=np.float32)

    def remember(self, X: np.ndarray) -> None:
        """Record the last row of a block known to be finite."""
        if X.shape[0]:
            self.last[:] = X[-1]

    def sanitize(self, X: np.ndarray) -> tuple[list[tuple[int, np.ndarray]], int]:
        """Split a block into finite runs to feed.

        Parameters
        ----------
        X : (T, C) float32 (not modified)

        Returns
        -------
        runs : list of ``(offset, block)``: finite (T_k, C) blocks starting at row ``offset`` of
            X; with ``reset``, every run after the first follows dropped rows, and the caller
            resets its state before it (the first run follows dropped rows when ``offset > 0``).
        bad : number of samples (rows) that held a NaN or Inf
        """
        finite_rows = np.isfinite(X).all(axis=1)
        if finite_rows.all():
            self.remember(X)
            return [(0, X)], 0
        bad = int(X.shape[0] - np.count_nonzero(finite_rows))
        if self.name == "reset":
            runs = _finite_runs(finite_rows)
            out = [(a, X[a:b]) for a, b in runs]
            if out:
                self.remember(out[-1][1])
            return out, bad
        Y = X.copy()
        mask = ~np.isfinite(Y)
        if self.name == "zero":
            Y[mask] = 0.0
        else:  # hold: carry the last finite value of each channel forward
            for c in range(Y.shape[1]):
                col, bad_c = Y[:, c], mask[:, c]
                if not bad_c.any():
                    continue
                idx = np.where(~bad_c, np.arange(col.shape[0]), -1)
                np.maximum.accumulate(idx, out=idx)
                filled = np.where(idx >= 0, col[np.maximum(idx, 0)], self.last[c])
                Y[:, c] = filled
        self.remember(Y)
        return [(0, Y)], bad

    def snapshot(self) -> list[float]:
        """JSON-safe state: the last finite values."""
        return [float(v) for v in self.last]

    def restore(self, state: list[float]) -> None:
        """Restore :meth:`snapshot` output."""
        arr = np.asarray(state, dtype=np.float32)
        if arr.shape != self.last.shape or not np.isfinite(arr).all():
            raise SnapshotError(
                f"nan policy state: expected {self.last.shape[0]} finite values, got {state!r}"
            )
        self.last[:] = arr


def _finite_runs(finite_rows: np.ndarray) -> list[tuple[int, int]]:
    """[(start, stop)] of the maximal runs of True in a boolean vector."""
    padded = np.concatenate(([False], finite_rows, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]
