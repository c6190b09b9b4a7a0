"""Many Steppers of one model advanced in one compiled call, each by its own number of samples.

:class:`StackedSteppers` keeps the states of the Steppers attached to it (their hidden state,
last output and, with conditioning, filter state) in the rows of one array: each Stepper goes
on working on its own (``step``, ``step_chunk``, ``reset``, ``snapshot``, ``restore``, pickling
all act on its row), and :meth:`StackedSteppers.step_chunks` advances any of them, each by a
block of its own length, in one call of :mod:`streamgru.kernels.ragged`, which runs the very
kernel ``Stepper.step_chunk`` runs: outputs and states are bit for bit those of the Steppers
called one by one. The daemon uses it to run every stream of a processing round that shares a
model in one call (:mod:`streamgru.daemon.round`).

>>> bank = StackedSteppers(a)                       # doctest: +SKIP
>>> bank.attach(b)                                  # doctest: +SKIP
>>> ya, yb = bank.step_chunks([(a, Xa), (b, Xb)])   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable, Sequence

import numpy as np

from .engine import Stepper
from .errors import ConfigError, InvalidInputError, ShapeError
from .kernels import ragged as _ragged
from .kernels.layout import ALIGN, aligned_zeros, chunk_work_size
from .kernels.nonrt import entry_point


def stack_key(stepper: Stepper) -> tuple:
    """Steppers with equal keys can share a :class:`StackedSteppers`: same dtype, same packed
    weights and layout, same conditioning buffer size (the filter itself is per row)."""
    fbuf = stepper._fbuf
    return (
        stepper.dtype.name,
        hashlib.sha256(stepper._params.tobytes()).hexdigest(),
        stepper._meta.tobytes(),
        stepper._state.size,
        None if fbuf is None else fbuf.size,
    )


def _move_into(stepper: Stepper, state: np.ndarray, fbuf: np.ndarray | None) -> None:
    """Make ``state`` (and ``fbuf``) the stepper's buffers, with their current contents; its
    kernels are bound to them again on their next call."""
    state[:] = stepper._state
    model = stepper.model
    n_hidden = model.num_layers * model.hidden_size
    stepper._state = state
    stepper._hidden_view = state[:n_hidden]
    stepper._y = state[n_hidden : n_hidden + model.output_size]
    if fbuf is not None and stepper._fbuf is not None:
        fbuf[:] = stepper._fbuf
        stepper._fbuf = fbuf
    fast = stepper._fast_step
    if fast is not None:  # the C fast path holds the old buffers: fold its count, drop it
        stepper._n_steps += fast.count
        stepper._fast_step = None
    stepper._bind_kernels()


class StackedSteppers:
    """Steppers of one model whose states are rows of one array (see the module docstring).

    Parameters
    ----------
    first : a Stepper; the others attached must have its :func:`stack_key`
    """

    def __init__(self, first: Stepper) -> None:
        self.key = stack_key(first)
        self.dtype = first.dtype
        self._params, self._meta = first._params, first._meta
        self._conditioned = first._fbuf is not None
        self._n_state = first._state.size
        self._stride = -(-self._n_state // ALIGN) * ALIGN  # rows start 64-byte aligned
        self._n_fbuf = 0 if first._fbuf is None else first._fbuf.size
        self._input_size = first.input_size
        self._output_size = first.output_size
        # scratch a sample of the longest block needs (the GRU's, then the filtered input)
        self._work_per_sample = chunk_work_size(self._meta, 1) + self._input_size
        self._members: list[weakref.ref[Stepper] | None] = []
        self._row: dict[int, int] = {}  # id(stepper) -> row
        self._states = aligned_zeros(0, self.dtype).reshape(0, self._stride)
        self._fbufs = np.zeros((0, self._n_fbuf), np.float64)
        self._work = aligned_zeros(0, self.dtype)
        name = "gru_chunks_conditioned" if self._conditioned else "gru_chunks"
        self._kernel = getattr(_ragged, name)
        self._call: Callable[..., int] | None = None
        self.attach(first)

    def __len__(self) -> int:
        return sum(1 for ref in self._members if ref is not None and ref() is not None)

    def attach(self, stepper: Stepper) -> None:
        """Move ``stepper``'s state into a row (its state and outputs go on unchanged)."""
        if id(stepper) in self._row and self._member(self._row[id(stepper)]) is stepper:
            return
        if stack_key(stepper) != self.key:
            raise ConfigError(
                "this Stepper cannot join the stack: another model, dtype or conditioning"
            )
        row = next((r for r in range(len(self._members)) if self._member(r) is None), None)
        if row is None:
            row = len(self._members)
            self._members.append(None)
            if row >= self._states.shape[0]:
                self._grow(max(4, 2 * row))
        self._members[row] = weakref.ref(stepper)
        self._row[id(stepper)] = row
        _move_into(stepper, self._states[row, : self._n_state], self._fbuf_row(row))

    def step_chunks(self, entries: Sequence[tuple[Stepper, np.ndarray]]) -> list[np.ndarray]:
        """Advance each entry's stepper by its (T_k, input_size) block, in order, in one call.

        Returns the (T_k, output_size) outputs of each entry, of the stack's dtype.

        Raises
        ------
        ShapeError : a stepper not attached, or a block of the wrong shape
        InvalidInputError : a non-finite value; nothing was advanced (``entry`` attribute: k)
        """
        if not entries:
            return []
        rows: list[int] = []
        offsets = [0]
        blocks = []
        for k, (stepper, X) in enumerate(entries):
            row = self._row.get(id(stepper))
            if row is None or self._member(row) is not stepper:
                raise ShapeError(f"entry {k}: the stepper is not attached to this stack")
            if X.ndim != 2 or X.shape[1] != self._input_size:
                raise ShapeError(f"entry {k}: expected (T, {self._input_size}), got {X.shape}")
            rows.append(row)
            offsets.append(offsets[-1] + X.shape[0])
            blocks.append(X)
        # plain Python and few numpy calls: this runs once a round, often for a single block
        X = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        if X.dtype != self.dtype or not X.flags.c_contiguous:
            X = np.ascontiguousarray(X, dtype=self.dtype)
        Y = np.empty((X.shape[0], self._output_size), self.dtype)
        need = self._work_per_sample * max(b - a for a, b in zip(offsets, offsets[1:]))
        if self._work.shape[0] < need:
            self._work = aligned_zeros(max(need, 2 * self._work.shape[0]), self.dtype)
        status = self._run(rows, offsets, X, Y)
        if status:
            error = InvalidInputError(
                f"entry {status - 1}: the block has a non-finite value; nothing was advanced"
            )
            error.entry = int(status - 1)  # type: ignore[attr-defined]
            raise error
        for stepper, X_k in entries:
            stepper._n_steps += X_k.shape[0]
        return [Y[a:b] for a, b in zip(offsets, offsets[1:])]

    # ---------------------------------------------------------------- inside
    def _run(self, rows: list[int], offsets: list[int], X, Y) -> int:
        if self._call is None:
            self._call = entry_point(self._kernel, self.dtype)
        plan = np.array([len(rows), *rows, *offsets], dtype=np.int64)  # kernels/ragged.py
        head: tuple[np.ndarray, ...] = (self._params, self._meta, self._states)
        if self._conditioned:
            head += (self._fbufs,)
        return int(self._call(*head, plan, X, Y, self._work))

    def _member(self, row: int) -> Stepper | None:
        ref = self._members[row]
        return None if ref is None else ref()

    def _fbuf_row(self, row: int) -> np.ndarray | None:
        return self._fbufs[row] if self._conditioned else None

    def _grow(self, capacity: int) -> None:
        """New arrays of ``capacity`` rows; every live member moves to its row there."""
        states = aligned_zeros(capacity * self._stride, self.dtype).reshape(capacity, self._stride)
        self._states = states
        self._fbufs = np.zeros((capacity, self._n_fbuf), np.float64)
        for row in range(len(self._members)):
            stepper = self._member(row)
            if stepper is not None:
                _move_into(stepper, states[row, : self._n_state], self._fbuf_row(row))
