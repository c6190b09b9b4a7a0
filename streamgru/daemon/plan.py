"""From a stream's config to a checked :class:`StreamPlan`: the model loaded, rate, channels and filter resolved.

:func:`plan_stream` turns a :class:`~streamgru.daemon.config.StreamConfig` into a
:class:`StreamPlan` (the model loaded, the rate, channels and filter resolved and checked
against it); :meth:`StreamPlan.pipeline` builds a
:class:`~streamgru.daemon.pipeline.StreamPipeline`. :func:`check_stream_info` checks what a
source announces against the plan; :func:`warm_up` compiles the kernels before the first sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, StreamgruError
from ..io.chunk import StreamInfo
from .config_schema import StreamConfig
from .metrics import StreamCounters
from .pipeline import StreamPipeline

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
        with the GRU (one compiled call per chunk); its per-sample ``step``, which the daemon
        never calls, is not compiled."""
        return self.model.stepper(
            dtype=self.config.dtype, filter=self.make_filter(), normalize=True, compile_step=False
        )

    def pipeline(self, counters: StreamCounters | None = None) -> StreamPipeline:
        """A fresh :class:`StreamPipeline` for this plan."""
        return StreamPipeline(self, counters)

    def identity(self) -> tuple[str, Any, str, Any]:
        """What a reload compares: model weights, filter, dtype, resampling ratio (others apply
        without reset)."""
        return (self.model.checksum(), self.filter_spec, self.config.dtype, self.resample)


def _source_rate(cfg: StreamConfig, model_fs: float | None) -> float | None:
    """The stream's rate when ``fs`` is not set: a file's own rate when it is resampled (a
    WFDB header or ``fs=`` in the URI), else the model's."""
    from ..io.replay import recorded_rate

    recorded = recorded_rate(cfg.source) if cfg.resample else None
    return recorded if recorded is not None else model_fs


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

    where = _stream_where(index)
    try:
        model = load_model(cfg.model)
    except StreamgruError as exc:
        raise ConfigError(f"{where}.model: cannot load {str(cfg.model)!r}: {exc}") from exc
    fs, ratio = _plan_rate(cfg, model, where)
    model_fs = fs if ratio is None or model.fs is None else float(model.fs)
    channels, input_labels = _plan_channels(cfg, model, where)
    filter_spec = _filter_spec(cfg, model, model_fs, model.input_size, where)  # after resampling
    normalizer = _plan_normalizer(model, where)
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


def _plan_rate(cfg: StreamConfig, model: Any, where: str) -> tuple[float, tuple[int, int] | None]:
    """(the source rate fs, the resampling ratio to the model's rate or None); ConfigError."""
    from ..signal.resample import check_sample_rate

    fs = cfg.fs if cfg.fs is not None else _source_rate(cfg, model.fs)
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
    return float(fs), ratio


def _plan_channels(cfg: StreamConfig, model: Any, where: str) -> tuple[int | None, tuple[str, ...]]:
    """(the channel count the source must deliver or None, the model's channel labels)."""
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
        return cfg.channels, input_labels
    if input_labels:
        return cfg.channels, input_labels  # more channels are fine: picked by name
    if cfg.channels is not None and cfg.channels != n_in:
        raise ConfigError(
            f"{where}.channels: {cfg.channels} channel(s), but the model takes {n_in}; "
            "choose the model's channels with pick = [...]"
        )
    return n_in, input_labels


def _plan_normalizer(model: Any, where: str) -> Any:
    """The model's input normalisation (metadata), checked against its input size."""
    from ..signal.normalize import Normalizer

    try:
        normalizer = Normalizer.from_metadata(model.metadata)
    except ConfigError as exc:
        raise ConfigError(f"{where}.model: {exc}") from None
    if normalizer.mean.size not in (1, model.input_size):
        raise ConfigError(
            f"{where}.model: input_mean/input_std have {normalizer.mean.size} values for "
            f"{model.input_size} channels"
        )
    return normalizer


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
        if spec.kind == "preset" and spec.preset is not None:
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


#: What a channel mismatch's message suggests.
_CHANNEL_HINT = (
    "choose the model's channels with the stream's `pick` key (--pick, by label or index) "
    "and set the source's channel count with the `channels` key (--channels)"
)


def _rate_hint(plan: StreamPlan, announced: float) -> str:
    """What a rate mismatch's message suggests: resample from the source's rate."""
    if plan.resample is None:
        return (
            f"to run it, resample it to the model's rate: --fs {announced:g} --resample "
            f"(fs = {announced:g} and resample = true in the [[stream]] table)"
        )
    return (
        f"the stream resamples from {plan.fs:g} Hz: set --fs {announced:g} with --resample "
        f"(fs = {announced:g} in the [[stream]] table) to resample from the source's rate"
    )


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
            f"(the stream's fs, else the model's rate); {_rate_hint(plan, announced)}"
        )
    if plan.channels is not None and info.n_channels != plan.channels:
        raise ConfigError(
            f"channels: the source delivers {info.n_channels} channel(s), expected "
            f"{plan.channels}; {_CHANNEL_HINT}"
        )
    pick: tuple = plan.config.pick
    if not pick and info.n_channels != plan.model.input_size and plan.input_labels:
        if all(label in info.labels for label in plan.input_labels):
            pick = plan.input_labels  # the channels the model was trained on, by name
    if not pick:
        if info.n_channels != plan.model.input_size:
            raise ConfigError(
                f"channels: the source delivers {info.n_channels} channel(s), the model takes "
                f"{plan.model.input_size}; {_CHANNEL_HINT}"
            )
        return None
    indices = []
    for p in pick:
        if isinstance(p, int):
            if p >= info.n_channels:
                raise ConfigError(
                    f"pick: channel {p} does not exist (the source has {info.n_channels}); "
                    f"{_CHANNEL_HINT}"
                )
            indices.append(p)
        else:
            if p not in info.labels:
                raise ConfigError(
                    f"pick: no channel labelled {p!r} (the source has {list(info.labels)}); "
                    f"{_CHANNEL_HINT}"
                )
            indices.append(info.labels.index(p))
    if indices == list(range(info.n_channels)):
        return None
    return np.asarray(indices, dtype=np.int64)


def warm_up(plans: list[StreamPlan]) -> int:
    """Compile (or load from the cache) and run every kernel the plans use, on throwaway state:
    the round's many-stream call (:mod:`streamgru.daemon.round`) for a stream that is not
    resampled; the stepper's chunk kernels (a long block and a short one, both paths of
    ``step_chunk``) and the resampler for one that is. Nothing else is compiled.

    Returns the number of distinct (model, dtype, filter, resampling) setups warmed. Nothing
    of the streams' own state is touched.
    """
    seen: set[tuple[str, str, bool, Any]] = set()
    for plan in plans:
        key = (plan.model.checksum(), plan.config.dtype, plan.filter_spec is None, plan.resample)
        if key in seen:
            continue
        seen.add(key)
        st = plan.make_stepper()
        X = np.zeros((WARMUP_SAMPLES, plan.model.input_size), dtype=np.float32)
        resampler = plan.make_resampler()
        if resampler is not None:  # its model calls are the stepper's own, one by one
            st.step_chunk(X)
            st.step_chunk(X[:1])
            resampler.process(X)
        else:  # the round's call of every stream of the model (streamgru.daemon.round)
            from .round import RoundBatch

            batch = RoundBatch()
            for block in (X, X[:1]):
                batch.add(st, block, lambda Y: None, lambda error: None)
            batch.flush()
    return len(seen)
