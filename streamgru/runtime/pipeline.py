"""One stream's signal path, without threads: chunks in, prediction blocks (and beats) out.

:func:`plan_stream` turns a :class:`~streamgru.runtime.config.StreamConfig` into a
:class:`StreamPlan` (the model loaded, the rate, channels and filter resolved and checked
against it); :meth:`StreamPlan.pipeline` builds a :class:`StreamPipeline`, the per-stream state
owner. :meth:`StreamPipeline.process` takes every chunk that has arrived and runs each
contiguous stretch as one block: the NaN policy, then one compiled call for filter,
normalisation and GRU (the Stepper's fused conditioning, ``model.stepper(filter=chain)``), with
the gap policy applied between stretches. Every output row carries its sample index and the
host time its input arrived.

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
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, SnapshotError, StreamgruError
from ..io.chunk import Chunk, PredictionBlock, StreamInfo
from .config import StreamConfig
from .metrics import StreamCounters
from .policies import GapPolicy, NanPolicy
from .snapshots import StreamSnapshot

#: Samples run through a throwaway stepper and filter to compile and warm the kernels.
WARMUP_SAMPLES = 64


# ------------------------------------------------------------------- the plan
@dataclass
class StreamPlan:
    """A stream's configuration resolved against its model (immutable in practice).

    Attributes
    ----------
    config : the ``[[stream]]`` table
    model : the loaded GRUModel
    fs : sample rate in Hz the source must deliver
    channels : channel count the source must deliver (None: any, as long as ``pick`` resolves)
    filter_spec : ``FilterChain.to_dict()`` of the filter, or None for no filter
    normalizer : the model's input normalisation
    threshold : beat threshold (used when ``config.events``)
    detector : the remaining BeatDetector settings (refractory_s, and from the model's
        ``postprocessing`` metadata index_mode and max_wait_s when present)
    output_labels : names of the model's outputs
    input_labels : the model's channel labels when its metadata names them (for picking)
    resample : ``(up, down)`` taking ``fs`` to the model's rate (``resample = true`` and the
        rates differ), else None
    """

    config: StreamConfig
    model: Any
    fs: float
    channels: int | None
    filter_spec: dict[str, Any] | None
    normalizer: Any
    threshold: float
    detector: dict[str, Any] = field(default_factory=dict)
    output_labels: tuple[str, ...] = ()
    input_labels: tuple[str, ...] = ()
    resample: tuple[int, int] | None = None

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def model_fs(self) -> float:
        """The rate filter, model and beat detector run at: ``fs``, or the model's when
        resampling."""
        return self.fs if self.resample is None else float(self.model.fs)

    def make_resampler(self):
        """A fresh StreamResampler (None when the stream is not resampled)."""
        if self.resample is None:
            return None
        from ..signal.resample import StreamResampler

        return StreamResampler(*self.resample, n_channels=self.model.input_size, start="steady")

    def make_filter(self):
        """A fresh FilterChain (None when the stream runs unfiltered)."""
        from ..signal.chain import FilterChain

        return None if self.filter_spec is None else FilterChain.from_dict(self.filter_spec)

    def make_stepper(self):
        """A fresh Stepper running this stream's filter and the model's normalisation fused
        with the GRU (one compiled call per chunk)."""
        return self.model.stepper(
            dtype=self.config.dtype, filter=self.make_filter(), normalize=True
        )

    def pipeline(self, counters: StreamCounters | None = None) -> StreamPipeline:
        """A fresh :class:`StreamPipeline` for this plan."""
        return StreamPipeline(self, counters)

    def identity(self) -> tuple[str, Any, str, Any]:
        """What a reload compares: model weights, filter, dtype, resampling ratio (others apply
        without reset)."""
        return (self.model.checksum(), self.filter_spec, self.config.dtype, self.resample)


def _stream_where(index: int | None) -> str:
    return "stream" if index is None else f"stream[{index}]"


def plan_stream(cfg: StreamConfig, index: int | None = None) -> StreamPlan:
    """Load the stream's model and check rate, channels and filter against it.

    Parameters
    ----------
    cfg : the stream's configuration
    index : its position in the file, for error messages (``stream[1].fs: ...``)

    Raises
    ------
    ConfigError : naming the field; a model that cannot be loaded is reported on ``model``.
    """
    from ..model.formats import load_model
    from ..signal.normalize import Normalizer
    from ..signal.resample import check_sample_rate

    where = _stream_where(index)
    try:
        model = load_model(cfg.model)
    except StreamgruError as exc:
        raise ConfigError(f"{where}.model: cannot load {str(cfg.model)!r}: {exc}") from exc
    # --- rate
    fs = cfg.fs if cfg.fs is not None else model.fs
    if fs is None:
        raise ConfigError(f"{where}.fs: the model records no sample rate; set fs = <Hz>")
    if cfg.resample and model.fs is None:
        raise ConfigError(
            f"{where}.resample: the model records no sample rate to resample to; "
            "remove resample, or use a model with fs metadata"
        )
    try:
        ratio = check_sample_rate(fs, model.fs, resample=cfg.resample)
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from None
    model_fs = fs if ratio is None else float(model.fs)
    # --- channels
    n_in = model.input_size
    if model.channels is not None and model.channels != n_in:
        raise ConfigError(
            f"{where}.model: metadata says {model.channels} channels, the weights take {n_in}"
        )
    named = model.meta_json("channels")
    input_labels = tuple(str(x) for x in named) if isinstance(named, list) else ()
    if cfg.pick:
        if len(cfg.pick) != n_in:
            raise ConfigError(
                f"{where}.pick: the model takes {n_in} channel(s), pick names {len(cfg.pick)}"
            )
        for k, p in enumerate(cfg.pick):
            if isinstance(p, int) and cfg.channels is not None and p >= cfg.channels:
                raise ConfigError(
                    f"{where}.pick[{k}]: channel {p} does not exist in {cfg.channels} channels"
                )
        channels = cfg.channels
    elif input_labels:
        channels = cfg.channels  # more channels are fine: the model's are picked by name
    else:
        if cfg.channels is not None and cfg.channels != n_in:
            raise ConfigError(
                f"{where}.channels: {cfg.channels} channel(s), but the model takes {n_in}; "
                "choose the model's channels with pick = [...]"
            )
        channels = n_in
    # --- filter
    filter_spec = _filter_spec(cfg, model, model_fs, n_in, where)  # runs after resampling
    # --- normalisation, threshold, labels
    try:
        normalizer = Normalizer.from_metadata(model.metadata)
    except ConfigError as exc:
        raise ConfigError(f"{where}.model: {exc}") from None
    if normalizer.mean.size not in (1, n_in):
        raise ConfigError(
            f"{where}.model: input_mean/input_std have {normalizer.mean.size} values for "
            f"{n_in} channels"
        )
    threshold, detector = _detector_settings(cfg, model)
    labels = model.meta_json("outputs")
    if not (isinstance(labels, list) and len(labels) == model.output_size):
        labels = [f"y{k}" for k in range(model.output_size)]
    return StreamPlan(
        config=cfg,
        model=model,
        fs=float(fs),
        channels=channels,
        filter_spec=filter_spec,
        normalizer=normalizer,
        threshold=float(threshold),
        detector=detector,
        output_labels=tuple(str(x) for x in labels),
        input_labels=input_labels,
        resample=ratio,
    )


def _detector_settings(cfg: StreamConfig, model: Any) -> tuple[float, dict[str, Any]]:
    """Beat threshold and BeatDetector keywords: the config's, else the model's metadata."""

    def number(value: Any) -> float | None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return None

    post = model.meta_json("postprocessing")
    post = post if isinstance(post, dict) else {}
    threshold = cfg.threshold
    if threshold is None:
        threshold = number(model.meta_json("threshold")) or number(post.get("threshold")) or 0.5
    refractory = cfg.refractory_s
    if refractory is None:
        refractory = number(model.meta_json("refractory_s"))
        refractory = number(post.get("refractory_s")) if refractory is None else refractory
    detector: dict[str, Any] = {"refractory_s": 0.25 if refractory is None else refractory}
    if post.get("index_mode") in ("peak", "crossing"):
        detector["index_mode"] = post["index_mode"]
    if number(post.get("max_wait_s")):
        detector["max_wait_s"] = number(post["max_wait_s"])
    return threshold, detector


def _filter_spec(
    cfg: StreamConfig, model: Any, fs: float, n_in: int, where: str
) -> dict[str, Any] | None:
    """The FilterChain dict of the stream's filter (None: none), checked by building it once."""
    from ..signal.chain import FilterChain

    spec = cfg.filter
    field_name = f"{where}.filter"
    try:
        if spec.kind == "none":
            return None
        if spec.kind == "model":
            raw = model.meta_json("filter")
            if raw in (None, "", "none"):
                return None
            chain = FilterChain.from_dict(raw)
            if chain.fs is not None and not math.isclose(chain.fs, fs, rel_tol=1e-6):
                raise ConfigError(
                    f"the model's filter was designed for {chain.fs:g} Hz, the stream runs "
                    f"at {fs:g} Hz"
                )
            d = chain.to_dict()
            d["n_channels"] = n_in
            return FilterChain.from_dict(d).to_dict()
        if spec.kind == "preset":
            chain = FilterChain.preset(spec.preset, fs, mains=spec.mains, n_channels=n_in)
        else:
            chain = FilterChain.design(
                fs,
                highpass=spec.highpass,
                lowpass=spec.lowpass,
                notch=list(spec.notch) or None,
                order=spec.order,
                n_channels=n_in,
                notch_q=spec.notch_q,
            )
        return chain.to_dict()
    except ConfigError as exc:
        raise ConfigError(f"{field_name}: {exc}") from None


def check_stream_info(plan: StreamPlan, info: StreamInfo) -> np.ndarray | None:
    """Check what a source announces (its HELLO) against the plan.

    Returns
    -------
    None when every channel goes to the model in order, else the (n,) int64 channel indices
    to pick.

    Raises
    ------
    ConfigError : another sample rate or channel count, or a ``pick`` label the device lacks.
    """
    from ..signal.design import check_fs
    from ..signal.resample import FS_RELATIVE_TOLERANCE

    announced = check_fs(info.fs)
    if not math.isclose(announced, plan.fs, rel_tol=FS_RELATIVE_TOLERANCE, abs_tol=0.0):
        raise ConfigError(
            f"fs: the source announces {announced:g} Hz, the stream expects {plan.fs:g} Hz "
            "(the stream's fs, else the model's rate)"
        )
    if plan.channels is not None and info.n_channels != plan.channels:
        raise ConfigError(
            f"channels: the source delivers {info.n_channels} channel(s), expected {plan.channels}"
        )
    pick: tuple = plan.config.pick
    if not pick and info.n_channels != plan.model.input_size and plan.input_labels:
        if all(label in info.labels for label in plan.input_labels):
            pick = plan.input_labels  # the channels the model was trained on, by name
    if not pick:
        if info.n_channels != plan.model.input_size:
            raise ConfigError(
                f"channels: the source delivers {info.n_channels} channel(s), the model takes "
                f"{plan.model.input_size}"
            )
        return None
    indices = []
    for p in pick:
        if isinstance(p, int):
            if p >= info.n_channels:
                raise ConfigError(
                    f"pick: channel {p} does not exist (the source has {info.n_channels})"
                )
            indices.append(p)
        else:
            if p not in info.labels:
                raise ConfigError(
                    f"pick: no channel labelled {p!r} (the source has {list(info.labels)})"
                )
            indices.append(info.labels.index(p))
    if indices == list(range(info.n_channels)):
        return None
    return np.asarray(indices, dtype=np.int64)


def warm_up(plans: list[StreamPlan]) -> int:
    """Compile (or load from the cache) and run every kernel the plans use, on throwaway state.

    Returns the number of distinct (model, dtype) pairs warmed. Nothing of the streams' own
    state is touched.
    """
    seen: set[tuple[str, str, bool]] = set()
    for plan in plans:
        key = (plan.model.checksum(), plan.config.dtype, plan.filter_spec is None)
        if key in seen:
            continue
        seen.add(key)
        st = plan.make_stepper()
        X = np.zeros((WARMUP_SAMPLES, plan.model.input_size), dtype=np.float32)
        st.step_chunk(X)
        st.step_chunk(X[:1])
        st.step(X[0])
    return len(seen)


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
            self._fill(decision.fill, chunk.first_index)
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
            Y, out_first, came = self._feed(block, first_index + offset)
            if came is not None:  # resampled: each row's time is that of its completing input
                if not Y.shape[0]:
                    continue
                t = times if np.isscalar(times) else times[offset + came]
            else:
                t = times if np.isscalar(times) else times[offset : offset + block.shape[0]]
            pb = PredictionBlock(self.id, out_first, t, Y, labels=self.plan.output_labels)
            result.blocks.append(pb)
            if self.detector is not None:
                events = self.detector.update(Y[:, 0], out_first)
                if events:
                    self.counters.beats += len(events)
                    result.events.extend(events)
        if bad and self.nan_policy.name == "reset":
            last_end = runs[-1][0] + runs[-1][1].shape[0] if runs else 0
            self._nan_reset_pending = last_end < n
        self.next_index = first_index + n

    def _run_model(self, X: np.ndarray) -> np.ndarray:
        """filter → normalise → GRU (one call) over a finite (T, C) block; (T, O) float32."""
        Y = self.stepper.step_chunk(X)
        return Y if Y.dtype == np.float32 else Y.astype(np.float32)

    def _feed(self, X: np.ndarray, first: int) -> tuple[np.ndarray, int, np.ndarray | None]:
        """A finite (T, C) block of source samples starting at source index ``first``, through
        the resampler (if any) and the model.

        Returns ``(Y, out_first, came)``: the (n, O) outputs, the index of their first row, and
        (resampled streams only, else None) for each row the position in X of the source
        sample that completed it.
        """
        rs = self.resampler
        if rs is None:
            return self._run_model(X), first, None
        if self._rs_start is None:  # a new run of the resampler: its output grid anchors here
            rs.reset()
            self._rs_start = first
            self._rs_base = -((-first * rs.up) // rs.down)  # ceil(first * up / down)
        n_in, k0 = rs.n_in, rs.n_out
        Z = rs.process(X)
        came = rs.completing_input(np.arange(k0, k0 + Z.shape[0], dtype=np.int64)) - n_in
        if not Z.shape[0]:
            return np.zeros((0, self.plan.model.output_size), np.float32), self._rs_base + k0, came
        self._model_last = Z[-1].copy()
        return self._run_model(Z), self._rs_base + k0, came

    def _fill(self, n: int, resume_at: int) -> None:
        """The ``fill`` gap policy: ``n`` lost source samples, before the chunk at source index
        ``resume_at``, filled with the last value; their outputs are not data (not written)."""
        rs = self.resampler
        if rs is None:
            self._run_model(np.repeat(self.nan_policy.last[None, :], n, axis=0))
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
        self.stepper.reset()
        self._rs_start = None
        self.counters.resets += 1

    def adopt_state(self, old: StreamPipeline) -> None:
        """Continue the state of ``old`` (a reload that changed only policies, sinks or detector
        settings): filter, hidden state, resampler, place, NaN and detector state."""
        self.stepper = old.stepper
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
        if self.detector is None:
            return []
        events = self.detector.flush()
        self.counters.beats += len(events)
        return events

    def snapshot(self, info: StreamInfo | None = None) -> StreamSnapshot | None:
        """The state as a :class:`StreamSnapshot` (None before any sample was processed)."""
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
        if rs is None:
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
