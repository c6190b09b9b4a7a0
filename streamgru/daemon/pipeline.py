"""One stream's signal path, without threads: chunks in, prediction blocks (and beats) out.

:func:`~streamgru.daemon.plan.plan_stream` turns a :class:`~streamgru.daemon.config.StreamConfig` into a
:class:`~streamgru.daemon.plan.StreamPlan` (the model loaded, the rate, channels and filter resolved and checked
against it); :meth:`~streamgru.daemon.plan.StreamPlan.pipeline` builds a :class:`StreamPipeline`, the per-stream state
owner. :meth:`StreamPipeline.process` takes every chunk that has arrived and runs each
contiguous stretch as one block: the NaN policy, then one compiled call for filter,
normalisation and GRU (the Stepper's fused conditioning, ``model.stepper(filter=chain)``), with
the gap policy applied between stretches. Every output row carries its sample index and the
host time its input arrived. In the daemon (:meth:`StreamPipeline.use_round`) the model calls
of a stream that is not resampled wait in the round and run with every other stream of the
model in one call (:mod:`streamgru.daemon.round`): the blocks come out at the round's flush.

A stream with ``resample = true`` whose source runs at another rate than the model's is
resampled (:class:`~streamgru.signal.resample.StreamResampler`, numpy, once per stretch) between
the NaN policy and the filter; its output rows are numbered on the model's rate (row ``i`` stands
for source time ``i / model_fs``, re-anchored at ``ceil(first * up / down)`` after each
discontinuity), each carrying the arrival time of the source sample that completed it.

The daemon owns the threads; this module is equally usable from a test or a notebook:

>>> plan = plan_stream(stream_config)                  # doctest: +SKIP
>>> pipe = plan.pipeline()                             # doctest: +SKIP
>>> result = pipe.process([chunk1, chunk2])            # doctest: +SKIP
>>> result.blocks[0].outputs.shape                     # doctest: +SKIP
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import SnapshotError, StreamgruError
from ..io.chunk import Chunk, PredictionBlock, StreamInfo
from .metrics import StreamCounters
from .policies import GapPolicy, NanPolicy
from .snapshots import StreamSnapshot

if TYPE_CHECKING:
    from .plan import StreamPlan
    from .round import RoundBatch


# --------------------------------------------------------------- the pipeline
@dataclass
class ProcessResult:
    """What one :meth:`StreamPipeline.process` call produced.

    blocks : prediction blocks, in stream order
    events : beat events decided in them (empty unless the stream has ``events = true``)
    notes : what happened on the way, for the log: gaps, restarts, non-finite samples
    """

    blocks: list[PredictionBlock] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    error: StreamgruError | None = None  # a block the round's model call refused


class StreamPipeline:
    """The state owner of one stream: filter, normaliser, stepper, policies, detector, index.

    Not thread-safe: the daemon's processing thread is its only user.

    Parameters
    ----------
    plan : the stream's :class:`StreamPlan`
    counters : where gaps, resets, NaNs and samples are counted (a fresh one when None)
    """

    def __init__(self, plan: StreamPlan, counters: StreamCounters | None = None) -> None:
        self.plan = plan
        self.id = plan.id
        self.counters = counters if counters is not None else StreamCounters()
        cfg = plan.config
        #: filter + normalisation + GRU, fused; owns the filter state and the hidden state
        self.stepper = plan.make_stepper()
        self.gap_policy = GapPolicy.from_seconds(cfg.gap_policy, cfg.gap_fill_max_s, plan.fs)
        self.nan_policy = NanPolicy(cfg.nan_policy, plan.model.input_size)
        self.detector = None
        if cfg.events:
            from ..signal.beats import BeatDetector

            self.detector = BeatDetector(plan.model_fs, threshold=plan.threshold, **plan.detector)
        #: index of the next sample expected (None before the first); samples below it are
        #: skipped, which is how a restored pipeline continues where its snapshot stopped
        self.next_index: int | None = None
        self._nan_reset_pending = False
        #: the source → model rate resampler (None: no resampling), and where its current run
        #: started: the source index of its input 0 (None: it starts afresh at the next sample
        #: fed) and the output index of its output 0
        self.resampler = plan.make_resampler()
        self._rs_start: int | None = None
        self._rs_base = 0
        #: (C,) the last sample the model was fed, at the model's rate (gap fill when resampled)
        self._model_last: np.ndarray | None = None
        #: the names of the columns of the blocks fed to the model (for sinks)
        picked = cfg.pick if all(isinstance(p, str) for p in cfg.pick) else ()
        self._input_labels = tuple(str(p) for p in picked) or plan.input_labels
        #: the daemon's round (:mod:`streamgru.daemon.round`): finite blocks of a stream that is
        #: not resampled wait there for one model call with the other streams (None: at once)
        self.round: RoundBatch | None = None
        self._deferred = 0  # blocks of this stream waiting in the round

    def use_round(self, round_batch: RoundBatch | None) -> None:
        """Defer this stream's model calls to ``round_batch`` (None: run them at once)."""
        if round_batch is not self.round:
            self._sync()
            self.round = round_batch
            if round_batch is not None:
                round_batch.join(self.stepper)

    def _sync(self) -> None:
        """Run this stream's blocks waiting in the round (before the stepper is used)."""
        if self._deferred and self.round is not None:
            self.round.flush()

    # ------------------------------------------------------------- processing
    def process(self, chunks: list[Chunk]) -> ProcessResult:
        """Run every chunk that has arrived; contiguous chunks go through as one block.

        Samples whose index was already processed (an overlap, or everything before the
        index a snapshot was restored at) are skipped and counted in ``counters.skipped``.

        Parameters
        ----------
        chunks : in arrival order, samples (T, input_size) (channels already picked)
        """
        result = ProcessResult()
        group: list[Chunk] = []
        for chunk in chunks:
            expected = group[-1].end_index if group else self.next_index
            if expected is not None and chunk.first_index < expected and not chunk.restarted:
                k = expected - chunk.first_index
                if k >= chunk.n_samples:
                    self.counters.skipped += chunk.n_samples
                    continue
                self.counters.skipped += k
                chunk = Chunk(chunk.samples[k:], expected, chunk.t_host)
            if group and (chunk.first_index != expected or chunk.restarted):
                self._run_group(group, result)
                group = []
            if not group:
                self._before(chunk, result)
            group.append(chunk)
        if group:
            self._run_group(group, result)
        return result

    def _before(self, chunk: Chunk, result: ProcessResult) -> None:
        """Apply the gap policy between the last sample processed and this chunk."""
        nxt = self.next_index
        self.next_index = chunk.first_index
        if nxt is None:
            return
        lost = max(chunk.first_index - nxt, 0)
        if chunk.restarted:
            self.counters.restarts += 1
        elif lost == 0:
            return
        if lost:
            self.counters.gaps += 1
            self.counters.samples_lost += lost
        decision = self.gap_policy.decide(lost, chunk.restarted)
        if decision.action == "reset":
            self.reset_state()
        elif decision.action == "fill":
            self._fill(decision.fill, chunk.first_index, result)
            self.counters.samples_filled += decision.fill
        elif self.resampler is not None:  # hold: the state goes on, the resampler starts anew
            self._rs_start = None
        result.notes.append(
            {
                "what": "restart" if chunk.restarted else "gap",
                "at_index": chunk.first_index,
                "lost": lost,
                "action": decision.action,
            }
        )

    def _run_group(self, group: list[Chunk], result: ProcessResult) -> None:
        """One contiguous stretch: NaN policy, then filter + GRU per finite run."""
        if len(group) == 1:
            X = group[0].samples
            times: float | np.ndarray = group[0].t_host
        else:
            X = np.concatenate([c.samples for c in group], axis=0)
            times = np.repeat(
                np.array([c.t_host for c in group], dtype=np.float64),
                [c.n_samples for c in group],
            )
        first_index = group[0].first_index
        n = X.shape[0]
        self.counters.samples_in += n
        runs, bad = self.nan_policy.sanitize(X)
        if bad:
            self.counters.nonfinite += bad
            result.notes.append(
                {
                    "what": "nonfinite",
                    "at_index": first_index,
                    "samples": bad,
                    "action": self.nan_policy.name,
                }
            )
        for offset, block in runs:
            if offset > 0 or self._nan_reset_pending:
                self.reset_state()
                self._nan_reset_pending = False
            if self.round is not None and self.resampler is None:
                span = slice(offset, offset + block.shape[0])
                t = times[span] if isinstance(times, np.ndarray) else times
                self._defer(
                    block,
                    result,
                    partial(
                        self._emit, out_first=first_index + offset, t=t, fed=block, result=result
                    ),
                )
                continue
            Y, out_first, came, fed = self._feed(block, first_index + offset)
            if came is not None:  # resampled: each row's time is that of its completing input
                if not Y.shape[0]:
                    continue
                t = times[offset + came] if isinstance(times, np.ndarray) else times
            else:
                span = slice(offset, offset + block.shape[0])
                t = times[span] if isinstance(times, np.ndarray) else times
            self._emit(Y, out_first=out_first, t=t, fed=fed, result=result)
        if bad and self.nan_policy.name == "reset":
            last_end = runs[-1][0] + runs[-1][1].shape[0] if runs else 0
            self._nan_reset_pending = last_end < n
        self.next_index = first_index + n

    def _defer(self, X: np.ndarray, result: ProcessResult, then: Any = None) -> None:
        """Queue a finite block for the round's model call; ``then(Y)`` gets its outputs."""
        assert self.round is not None

        def done(Y: np.ndarray) -> None:
            self._deferred -= 1
            if then is not None:
                then(Y if Y.dtype == np.float32 else Y.astype(np.float32))

        def failed(error: StreamgruError) -> None:
            self._deferred -= 1
            result.error = error

        self._deferred += 1
        self.round.add(self.stepper, X, done, failed)

    def _emit(
        self, Y: np.ndarray, *, out_first: int, t: Any, fed: np.ndarray, result: ProcessResult
    ) -> None:
        """The prediction block of outputs ``Y`` (n, O), and the beats decided in it."""
        pb = PredictionBlock(
            self.id,
            out_first,
            t,
            Y,
            labels=self.plan.output_labels,
            inputs=fed,  # what the model was fed (for edf:// and view:// sinks)
            fs=self.plan.model_fs,
            input_labels=self._input_labels,
        )
        result.blocks.append(pb)
        if self.detector is not None:
            events = self.detector.update(Y[:, 0], out_first)
            if events:
                self.counters.beats += len(events)
                result.events.extend(events)
                pb.events = tuple(events)

    def _run_model(self, X: np.ndarray) -> np.ndarray:
        """filter → normalise → GRU (one call) over a finite (T, C) block; (T, O) float32."""
        self._sync()
        Y = self.stepper.step_chunk(X)
        return Y if Y.dtype == np.float32 else Y.astype(np.float32)

    def _feed(
        self, X: np.ndarray, first: int
    ) -> tuple[np.ndarray, int, np.ndarray | None, np.ndarray]:
        """A finite (T, C) block of source samples starting at source index ``first``, through
        the resampler (if any) and the model.

        Returns ``(Y, out_first, came, fed)``: the (n, O) outputs, the index of their first row,
        (resampled streams only, else None) for each row the position in X of the source
        sample that completed it, and the (n, C) block the model was fed (X, or X resampled).
        """
        rs = self.resampler
        if rs is None:
            return self._run_model(X), first, None, X
        if self._rs_start is None:  # a new run of the resampler: its output grid anchors here
            rs.reset()
            self._rs_start = first
            self._rs_base = -((-first * rs.up) // rs.down)  # ceil(first * up / down)
        n_in, k0 = rs.n_in, rs.n_out
        Z = rs.process(X)
        came = rs.completing_input(np.arange(k0, k0 + Z.shape[0], dtype=np.int64)) - n_in
        if not Z.shape[0]:
            empty = np.zeros((0, self.plan.model.output_size), np.float32)
            return empty, self._rs_base + k0, came, Z
        self._model_last = Z[-1].copy()
        return self._run_model(Z), self._rs_base + k0, came, Z

    def _fill(self, n: int, resume_at: int, result: ProcessResult) -> None:
        """The ``fill`` gap policy: ``n`` lost source samples, before the chunk at source index
        ``resume_at``, filled with the last value; their outputs are not data (not written)."""
        rs = self.resampler
        if rs is None:
            X = np.repeat(self.nan_policy.last[None, :], n, axis=0)
            if self.round is not None:  # in the round too: not data, the outputs are dropped
                self._defer(X, result)
            else:
                self._run_model(X)
            return
        # Resampled: the resampler starts anew at resume_at; the model is fed the last value it
        # saw for every model-rate row from the last one given to the one before the new start.
        end = self._rs_base + rs.n_out if self._rs_start is not None else None
        self._rs_start = None
        start = -((-resume_at * rs.up) // rs.down)
        last = self._model_last if self._model_last is not None else self.nan_policy.last
        if end is not None and start > end:
            self._run_model(np.repeat(last[None, :].astype(np.float32), start - end, axis=0))

    # ------------------------------------------------------------------ state
    def reset_state(self) -> None:
        """Start afresh: filter and hidden state, and the resampler at the next sample fed (the
        detector sees the index jump itself)."""
        self._sync()
        self.stepper.reset()
        self._rs_start = None
        self.counters.resets += 1

    def adopt_state(self, old: StreamPipeline) -> None:
        """Continue the state of ``old`` (a reload that changed only policies, sinks or detector
        settings): filter, hidden state, resampler, place, NaN and detector state."""
        old._sync()
        self._sync()
        self.stepper = old.stepper
        if self.round is not None:
            self.round.join(self.stepper)
        self.next_index = old.next_index
        self._nan_reset_pending = old._nan_reset_pending
        self.nan_policy.last[:] = old.nan_policy.last
        if self.resampler is not None and old.resampler is not None:
            self.resampler = old.resampler
            self._rs_start, self._rs_base = old._rs_start, old._rs_base
            self._model_last = old._model_last
        if self.detector is not None and old.detector is not None:
            try:
                self.detector.restore(old.detector.snapshot())
            except SnapshotError:  # other detector settings: it starts afresh
                pass

    def flush_events(self) -> list[Any]:
        """End of stream: the beat of a run still open (none without a detector)."""
        self._sync()
        if self.detector is None:
            return []
        events = self.detector.flush()
        self.counters.beats += len(events)
        return events

    def snapshot(self, info: StreamInfo | None = None) -> StreamSnapshot | None:
        """The state as a :class:`StreamSnapshot` (None before any sample was processed)."""
        self._sync()
        nxt = self.next_index
        if nxt is None:
            return None
        return StreamSnapshot(
            stream_id=self.id,
            next_index=int(nxt),
            model_checksum=self.plan.model.checksum(),
            filter=self.plan.filter_spec,
            stepper_state=self.stepper.snapshot(),
            detector_state=None if self.detector is None else self.detector.snapshot(),
            nan_last=tuple(self.nan_policy.snapshot()),
            source_uri=self.plan.config.source,
            source_session=0 if info is None else int(info.session),
            source_device="" if info is None else str(info.device_id),
            resampler=self._resampler_snapshot(),
        )

    def _resampler_snapshot(self) -> dict[str, Any] | None:
        rs = self.resampler
        if rs is None:
            return None
        running = self._rs_start is not None
        last = self._model_last
        return {
            "start": self._rs_start,
            "state": base64.b64encode(rs.snapshot()).decode("ascii") if running else None,
            "model_last": None if last is None else [float(v) for v in last],
        }

    def _restore_resampler(self, state: dict[str, Any] | None) -> None:
        rs = self.resampler
        if (state is None) != (rs is None):
            taken = "without" if state is None else "with"
            raise SnapshotError(
                f"stream {self.id!r}: the snapshot was taken {taken} resampling, the stream now "
                f"runs {'with' if rs is not None else 'without'}"
            )
        if rs is None or state is None:
            return
        try:
            start, blob, last = state["start"], state["state"], state["model_last"]
            if start is not None:
                rs.restore(base64.b64decode(blob, validate=True))
                self._rs_base = -((-int(start) * rs.up) // rs.down)
            self._rs_start = None if start is None else int(start)
            if last is not None:
                arr = np.asarray(last, dtype=np.float32)
                if arr.shape != (self.plan.model.input_size,) or not np.isfinite(arr).all():
                    raise ValueError("model_last: wrong size or not finite")
                self._model_last = arr
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"stream {self.id!r}: bad resampler state: {exc}") from exc

    def restore(self, snap: StreamSnapshot) -> None:
        """Continue from a snapshot: samples before ``snap.next_index`` will be skipped.

        Raises
        ------
        SnapshotError : another model, another filter, or corrupt state.
        """
        self._sync()
        if snap.model_checksum != self.plan.model.checksum():
            raise SnapshotError(
                f"stream {self.id!r}: the snapshot was taken with another model "
                f"(checksum {snap.model_checksum[:12]}..., now {self.plan.model.checksum()[:12]}...)"
            )
        if snap.filter != self.plan.filter_spec:
            raise SnapshotError(f"stream {self.id!r}: the snapshot was taken with another filter")
        self._restore_resampler(snap.resampler)
        self.stepper.restore(snap.stepper_state)  # checks model, filter and normalisation too
        if snap.detector_state is not None and self.detector is not None:
            self.detector.restore(snap.detector_state)
        if snap.nan_last:
            self.nan_policy.restore(list(snap.nan_last))
        self.next_index = snap.next_index

    def forget_position(self) -> None:
        """Accept whatever index comes next as a fresh start (a device that restarted while
        the daemon was down numbers its samples anew): the state is reset."""
        self.next_index = None
        self.reset_state()
