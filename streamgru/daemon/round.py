"""The model calls of one processing round, run together: one compiled call per model.

In a round the daemon's loop runs every stream that received samples through its
:class:`~streamgru.daemon.pipeline.StreamPipeline`. A pipeline does its per-stream work at once
(gap and NaN policies, counting, the place in the stream) and hands each finite block to the
:class:`RoundBatch` instead of calling its Stepper; :meth:`RoundBatch.flush` then advances the
blocks of all streams sharing a model in one call (:class:`streamgru.stacked.StackedSteppers`,
the streams' states being rows of one array) and hands each block's outputs back to its
pipeline, in the order the blocks were added, which builds the prediction block and runs the
beat detector. Outputs and states are bit for bit those of each stream's Stepper alone.

Anything else a pipeline does with its Stepper (a reset between two runs, a gap filled, a
snapshot, a reload) first flushes the round, so the order of operations on each stream is
unchanged.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import Stepper
from ..errors import InvalidInputError, StreamgruError
from ..stacked import StackedSteppers, stack_key


@dataclass
class _Entry:
    stepper: Stepper
    X: np.ndarray
    done: Callable[[np.ndarray], None]
    failed: Callable[[StreamgruError], None]


class RoundBatch:
    """Blocks waiting for their model call, and the stacks their Steppers live in."""

    def __init__(self) -> None:
        self._stacks: dict[tuple, StackedSteppers] = {}
        # id(stepper) -> (the stepper, its stack); the reference tells a reused id apart
        self._stack_of: dict[int, tuple[weakref.ref[Stepper], StackedSteppers]] = {}
        self._pending: list[_Entry] = []
        #: compiled calls made and blocks they advanced (for tests and metrics)
        self.calls = 0
        self.blocks = 0

    def join(self, stepper: Stepper) -> None:
        """Put ``stepper``'s state into the stack of its model (made if new); idempotent."""
        known = self._stack_of.get(id(stepper))
        if known is not None and known[0]() is stepper:
            known[1].attach(stepper)  # a no-op while it is still the member of its row
            return
        key = stack_key(stepper)
        stack = self._stacks.get(key)
        if stack is None:
            stack = self._stacks[key] = StackedSteppers(stepper)
        else:
            stack.attach(stepper)
        member = id(stepper)
        self._stack_of[member] = (
            weakref.ref(stepper, lambda ref: self._forget(member, ref)),
            stack,
        )

    def _forget(self, key: int, ref: weakref.ref[Stepper]) -> None:
        """A joined Stepper was collected: drop its entry (unless its id was joined anew)."""
        entry = self._stack_of.get(key)
        if entry is not None and entry[0] is ref:
            del self._stack_of[key]

    def add(
        self,
        stepper: Stepper,
        X: np.ndarray,
        done: Callable[[np.ndarray], None],
        failed: Callable[[StreamgruError], None],
    ) -> None:
        """Queue a finite (T, input_size) block for ``stepper`` (joined before); ``done(Y)``
        gets its (T, output_size) outputs at :meth:`flush`, or ``failed(error)`` its error."""
        self.join(stepper)
        self._pending.append(_Entry(stepper, X, done, failed))

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def joined(self) -> int:
        """How many live Steppers have joined (a collected one is forgotten)."""
        return len(self._stack_of)

    def flush(self) -> None:
        """Run every queued block (one call per stack), then hand the outputs back in order."""
        entries, self._pending = self._pending, []
        if not entries:
            return
        outputs: list[Any] = [None] * len(entries)
        groups: dict[int, list[int]] = {}
        for k, e in enumerate(entries):
            groups.setdefault(id(self._stack_of[id(e.stepper)][1]), []).append(k)
        for ks in groups.values():
            self._run_group(entries, ks, outputs)
        for e, result in zip(entries, outputs):
            if isinstance(result, StreamgruError):
                e.failed(result)
            else:
                e.done(result)

    def _run_group(self, entries: list[_Entry], ks: list[int], outputs: list[Any]) -> None:
        """One stack's entries; an entry refused as non-finite is set aside and the rest run
        (at most one retry per entry)."""
        stack = self._stack_of[id(entries[ks[0]].stepper)][1]
        while ks:
            try:
                ys = stack.step_chunks([(entries[k].stepper, entries[k].X) for k in ks])
            except InvalidInputError as exc:
                bad = ks[int(getattr(exc, "entry", 0))]
                outputs[bad] = exc
                ks = [k for k in ks if k != bad]
                continue
            self.calls += 1
            self.blocks += len(ks)
            for k, y in zip(ks, ys):
                outputs[k] = y
            return
