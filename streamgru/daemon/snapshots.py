"""Per-stream snapshots in the daemon's state directory, written atomically.

One JSON file per stream, ``<state_dir>/<stream id>.snapshot.json``: the stream's place (the
index of the next sample to process), the model checksum, the filter settings, and the running
state of the stepper (filter and GRU), the NaN policy and the beat detector (binary blobs in
base64).
A file is written to a temporary name in the same folder, flushed to disk and renamed over the
old one, so a crash at any moment leaves either the old snapshot or the new one, never a torn
file.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SnapshotError

FORMAT = "streamgru.stream-snapshot.v1"
SUFFIX = ".snapshot.json"


@dataclass(frozen=True)
class StreamSnapshot:
    """Everything needed to continue a stream exactly where it stopped.

    Attributes
    ----------
    stream_id : the stream's id
    next_index : stream index of the next sample to process
    model_checksum : ``model.checksum()`` of the model that produced the state
    filter : the FilterChain's ``to_dict()`` (None: no filter)
    stepper_state : ``Stepper.snapshot()`` bytes: hidden state and filter state (the stepper
        runs the filter fused with the GRU)
    detector_state : ``BeatDetector.snapshot()`` bytes (None without a detector)
    nan_last : the NaN policy's last finite values
    source_uri, source_session, source_device : where the samples came from; a device whose
        session differs has restarted, and its indices no longer continue the snapshot's
    written_at : UNIX time of writing
    resampler : a resampled stream's resampler (``{"start": source index its run started at,
        "state": StreamResampler.snapshot() in base64, "model_last": [...]}``); None (and
        absent from the file) for a stream that is not resampled
    """

    stream_id: str
    next_index: int
    model_checksum: str
    filter: dict[str, Any] | None
    stepper_state: bytes
    detector_state: bytes | None = None
    nan_last: tuple[float, ...] = ()
    source_uri: str = ""
    source_session: int = 0
    source_device: str = ""
    written_at: float = field(default_factory=time.time)
    resampler: dict[str, Any] | None = None

    def to_json(self) -> str:
        obj = asdict(self)
        if obj["resampler"] is None:
            del obj["resampler"]
        for key in ("stepper_state", "detector_state"):
            if obj[key] is not None:
                obj[key] = base64.b64encode(obj[key]).decode("ascii")
        obj["nan_last"] = list(self.nan_last)
        return json.dumps({"format": FORMAT, **obj}, indent=1)

    @classmethod
    def from_json(cls, text: str, where: str = "snapshot") -> StreamSnapshot:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SnapshotError(f"{where}: not valid JSON: {exc}") from exc
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            got = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
            raise SnapshotError(f"{where}: expected format {FORMAT!r}, got {got!r}")
        obj.pop("format")
        try:
            for key in ("stepper_state", "detector_state"):
                if obj.get(key) is not None:
                    obj[key] = base64.b64decode(obj[key], validate=True)
            obj["nan_last"] = tuple(float(v) for v in obj.get("nan_last", ()))
            snap = cls(**obj)
        except (TypeError, ValueError) as exc:
            raise SnapshotError(f"{where}: bad or missing field: {exc}") from exc
        if not isinstance(snap.next_index, int) or snap.next_index < 0:
            raise SnapshotError(f"{where}: next_index must be an integer >= 0")
        if snap.resampler is not None and not isinstance(snap.resampler, dict):
            raise SnapshotError(f"{where}: resampler must be an object or absent")
        return snap


class SnapshotStore:
    """Reads and writes :class:`StreamSnapshot` files in one folder (created on first write)."""

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir)

    def path(self, stream_id: str) -> Path:
        return self.state_dir / f"{stream_id}{SUFFIX}"

    def save(self, snap: StreamSnapshot) -> Path:
        """Write atomically (temporary file, fsync, rename, fsync of the folder)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        final = self.path(snap.stream_id)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        data = snap.to_json().encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        try:
            dir_fd = os.open(self.state_dir, os.O_RDONLY)
        except OSError:  # pragma: no cover - folders that cannot be opened (some platforms)
            return final
        try:
            os.fsync(dir_fd)
        except OSError:  # pragma: no cover
            pass
        finally:
            os.close(dir_fd)
        return final

    def load(self, stream_id: str) -> StreamSnapshot | None:
        """The stream's snapshot, or None when there is none."""
        path = self.path(stream_id)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SnapshotError(f"{path}: cannot read: {exc}") from exc
        snap = StreamSnapshot.from_json(text, where=str(path))
        if snap.stream_id != stream_id:
            raise SnapshotError(f"{path}: holds stream {snap.stream_id!r}, expected {stream_id!r}")
        return snap
