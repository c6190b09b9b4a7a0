"""The daemon's configuration as frozen dataclasses (:class:`Config` and its tables) and the
vocabularies they accept (source and sink schemes, gap and NaN policies, log levels).

Parsing and validation: :mod:`streamgru.daemon.config_checks` and :mod:`streamgru.daemon.config`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

#: Source URI schemes the daemon accepts (see :func:`streamgru.io.sources.open_source`).
SOURCE_SCHEMES = (
    "serial",
    "tcp",
    "udp",
    "file",
    "synthetic",
    "lsl",
    "loop",
    "socket",
    "rfc2217",
    "spy",  # pyserial URLs, handed to pyserial as they are
    "nats",  # a core NATS subject (extra nats), e.g. nats://host:4222/sg.in.bed1
    "brainflow",  # a board through BrainFlow's BoardShim (extra brainflow)
)


#: Sink URI schemes the daemon accepts (see :func:`streamgru.io.sinks.open_sink`).
SINK_SCHEMES = ("stdout", "jsonl", "csv", "tcp", "lsl", "null", "nats", "edf", "view")


#: Gap policies: reset the state, hold it across the gap, or fill the gap (up to a limit).
GAP_POLICIES = ("reset", "hold", "fill")


#: NaN/Inf policies: hold the last finite value, put zero, or reset the state.
NAN_POLICIES = ("hold", "zero", "reset")


#: Filter choices other than a preset name or a table.
FILTER_WORDS = ("model", "none")


LOG_LEVELS = ("debug", "info", "warning", "error")


LOG_FORMATS = ("json", "text")


DEFAULT_METRICS_PORT = 9108


_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


_SOURCE_HINT = "expected a URI like serial:///dev/ttyUSB0 or tcp://host:port"


_SINK_HINT = "expected a URI like stdout://, jsonl:///path/out.jsonl or tcp://host:port"


# ----------------------------------------------------------------- dataclasses
@dataclass(frozen=True)
class FilterSpec:
    """What filter runs before the model.

    kind : "model" (the filter the model was trained behind, from its metadata), "none",
        "preset" (``preset`` with ``mains``) or "design" (explicit Butterworth + notches).
    """

    kind: str = "model"
    preset: str | None = None
    highpass: float | None = None
    lowpass: float | None = None
    notch: tuple[float, ...] = ()
    order: int = 4
    notch_q: float = 30.0
    mains: int = 50


@dataclass(frozen=True)
class StreamConfig:
    """One ``[[stream]]`` table.

    Attributes
    ----------
    id : stream name, ``[A-Za-z0-9_.-]{1,64}``, unique; keys state, metrics and snapshots
    source : source URI (scheme in :data:`SOURCE_SCHEMES`)
    model : path of the weights file (absolute, resolved against the config file's folder)
    fs, channels : expected sample rate and channel count of the source (None: from the model)
    pick : channels fed to the model, by label or index (empty: the model's channel labels
        when its metadata names them and the source has more channels, else all, in order)
    filter : :class:`FilterSpec`
    gap_policy, gap_fill_max_s : see :mod:`streamgru.daemon.policies`
    nan_policy : see :mod:`streamgru.daemon.policies`
    sinks : sink URIs the predictions go to
    events : run a :class:`~streamgru.signal.beats.BeatDetector` on output 0 and log beats
    threshold, refractory_s : detector settings (None: the model's ``threshold`` /
        ``refractory_s`` metadata, else 0.5 / 0.25 s)
    dtype : "float32" or "float64"
    resample : a source at another rate than the model's is resampled to the model's rate
        (:class:`~streamgru.signal.resample.StreamResampler`) before filter and model; output
        rows are then numbered at the model's rate. False: another rate is refused.
    """

    id: str
    source: str
    model: Path
    fs: float | None = None
    channels: int | None = None
    pick: tuple[str | int, ...] = ()
    filter: FilterSpec = field(default_factory=FilterSpec)
    gap_policy: str = "reset"
    gap_fill_max_s: float = 0.5
    nan_policy: str = "hold"
    sinks: tuple[str, ...] = ()
    events: bool = False
    threshold: float | None = None
    refractory_s: float | None = None
    dtype: str = "float32"
    resample: bool = False


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``: the HTTP endpoint serving /metrics, /healthz and /readyz."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = DEFAULT_METRICS_PORT


@dataclass(frozen=True)
class LoggingConfig:
    """``[logging]``: level and format (JSON lines on stderr, or text)."""

    level: str = "info"
    format: str = "json"


@dataclass(frozen=True)
class DaemonConfig:
    """``[daemon]``: state, snapshots, watchdog, queues and reconnection.

    Attributes
    ----------
    state_dir : folder for snapshots (None: $STATE_DIRECTORY when systemd sets it, else none)
    snapshot_interval_s : periodic snapshots (0: only at shutdown)
    watchdog : send WATCHDOG=1 when systemd asks for it (WATCHDOG_USEC)
    resume : continue from the snapshots in state_dir at start
    queue_chunks : reader → processor capacity per stream, in chunks
    queue_blocks : processor → sink capacity per sink, in blocks
    reconnect_initial_s, reconnect_max_s : jittered exponential backoff of a lost source
    read_timeout_s : how long a reader waits on its source before checking for stop
    exit_on_refused : a refused source ends its stream (and the daemon exits 78 when none is
        left) even when it is a live device; by default only files and synthetic sources do
    sink_shutdown_s : at shutdown, how long the sinks get to write what is queued; a sink still
        stuck then is abandoned (its rows counted as dropped) so the snapshots are written
    state_dir_mode : permission bits of a state directory the daemon creates (whatever the umask)
    """

    state_dir: Path | None = None
    snapshot_interval_s: float = 60.0
    watchdog: bool = True
    resume: bool = False
    queue_chunks: int = 1024
    queue_blocks: int = 4096
    reconnect_initial_s: float = 0.2
    reconnect_max_s: float = 10.0
    read_timeout_s: float = 0.1
    exit_on_refused: bool = False
    sink_shutdown_s: float = 5.0
    state_dir_mode: int = 0o750


@dataclass(frozen=True)
class Config:
    """A whole daemon configuration (``path`` is None for an ad hoc one)."""

    streams: tuple[StreamConfig, ...]
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    path: Path | None = None

    def stream(self, stream_id: str) -> StreamConfig:
        """The stream with this id (KeyError when absent)."""
        for s in self.streams:
            if s.id == stream_id:
                return s
        raise KeyError(stream_id)
