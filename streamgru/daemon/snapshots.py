"""Per-stream snapshots in the daemon's state directory, written atomically.

One file per stream, ``<state_dir>/<stream id>.snapshot``: a :mod:`streamgru.state` envelope of
kind ``"StreamSnapshot"`` (digest: the model checksum) whose meta holds the stream's place (the
index of the next sample to process), the filter settings, the NaN policy's last values and
where the samples came from, and whose parts nest the running state: ``stepper`` (the
Stepper's own envelope: filter and GRU), ``resampler`` (the StreamResampler's envelope, for a
resampled stream) and ``detector`` (the beat detector's bytes).
A file is written to a temporary name in the same folder, flushed to disk and renamed over the
old one, so a crash at any moment leaves either the old snapshot or the new one, never a torn
file. Files written by an older streamgru (``<stream id>.snapshot.json``) are refused with a
:class:`~streamgru.state.SnapshotVersionError` saying so: the stream starts fresh.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SnapshotError
from ..state import SnapshotFormatError, SnapshotVersionError, pack, unpack

KIND = "StreamSnapshot"
SUFFIX = ".snapshot"
#: The JSON files of streamgru before the envelope (refused on resume).
LEGACY_SUFFIX = ".snapshot.json"
_META_KEYS = (
    "stream_id",
    "next_index",
    "model_checksum",
    "filter",
    "nan_last",
    "source_uri",
    "source_session",
    "source_device",
    "written_at",
)


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

    def to_bytes(self) -> bytes:
        """The snapshot as a :mod:`streamgru.state` envelope (see the module docstring)."""
        meta: dict[str, Any] = {key: getattr(self, key) for key in _META_KEYS}
        meta["nan_last"] = [float(v) for v in self.nan_last]
        parts = {"stepper": self.stepper_state}
        if self.detector_state is not None:
            parts["detector"] = self.detector_state
        if self.resampler is not None:
            rs = dict(self.resampler)
            state = rs.pop("state", None)
            if state is not None:
                parts["resampler"] = base64.b64decode(state, validate=True)
            meta["resampler"] = rs
        return pack(KIND, None, {"model": self.model_checksum}, parts=parts, meta=meta)

    @classmethod
    def from_bytes(
        cls, blob: bytes, where: str = "snapshot", model_checksum: str | None = None
    ) -> StreamSnapshot:
        """Parse :meth:`to_bytes` output; with ``model_checksum``, refuse another model's.

        Raises
        ------
        SnapshotError : a :mod:`streamgru.state` subclass, the message starting with ``where``.
        """
        digest = None if model_checksum is None else {"model": model_checksum}
        try:
            env = unpack(blob, KIND, None, digest)
            meta = env.meta
            missing = [key for key in _META_KEYS if key not in meta]
            if missing:
                raise SnapshotFormatError(f"expected meta fields {missing}, got {sorted(meta)}")
            resampler = meta.get("resampler")
            if resampler is not None:
                if not isinstance(resampler, dict):
                    raise SnapshotFormatError("resampler must be an object or absent")
                blob_rs = env.parts.get("resampler")
                encoded = None if blob_rs is None else base64.b64encode(blob_rs).decode("ascii")
                resampler = {**resampler, "state": encoded}
            snap = cls(
                **{key: meta[key] for key in _META_KEYS if key != "nan_last"},
                nan_last=tuple(float(v) for v in meta["nan_last"]),
                stepper_state=env.part("stepper"),
                detector_state=env.parts.get("detector"),
                resampler=resampler,
            )
        except SnapshotError as exc:
            raise type(exc)(f"{where}: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise SnapshotFormatError(f"{where}: bad or missing field: {exc}") from exc
        if isinstance(snap.next_index, bool) or not isinstance(snap.next_index, int):
            raise SnapshotFormatError(f"{where}: next_index must be an integer >= 0")
        if snap.next_index < 0:
            raise SnapshotFormatError(f"{where}: next_index must be an integer >= 0")
        return snap


#: Permission bits of snapshot files (the folder's are the store's ``mode``).
FILE_MODE = 0o640


class SnapshotStore:
    """Reads and writes :class:`StreamSnapshot` files in one folder (created on first write).

    A folder the store creates (and any missing parent) gets ``mode`` (default 0750), snapshot
    files get :data:`FILE_MODE`, whatever the process's umask.
    """

    def __init__(self, state_dir: Path | str, mode: int = 0o750) -> None:
        self.state_dir = Path(state_dir)
        self.mode = mode

    def _make_dir(self) -> None:
        missing = []
        folder = self.state_dir
        while not folder.exists() and folder.parent != folder:
            missing.append(folder)
            folder = folder.parent
        for folder in reversed(missing):
            try:
                folder.mkdir(self.mode)
            except FileExistsError:  # made meanwhile by someone else: theirs to keep
                continue
            os.chmod(folder, self.mode)  # mkdir's mode passes through the umask

    def path(self, stream_id: str) -> Path:
        return self.state_dir / f"{stream_id}{SUFFIX}"

    def save(self, snap: StreamSnapshot) -> Path:
        """Write atomically (temporary file, fsync, rename, fsync of the folder)."""
        self._make_dir()
        final = self.path(snap.stream_id)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        data = snap.to_bytes()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
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
        """The stream's snapshot, or None when there is none.

        Raises
        ------
        SnapshotError : unreadable or foreign bytes; ``SnapshotVersionError`` for a file
            written by an older streamgru (``<stream id>.snapshot.json``).
        """
        path = self.path(stream_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            legacy = self.state_dir / f"{stream_id}{LEGACY_SUFFIX}"
            if legacy.exists():
                raise SnapshotVersionError(
                    f"{legacy}: written by an older streamgru (JSON stream snapshot); this "
                    f"version reads {path.name} envelopes only: the stream starts fresh "
                    "(delete the old file to silence this)"
                ) from None
            return None
        except OSError as exc:
            raise SnapshotError(f"{path}: cannot read: {exc}") from exc
        snap = StreamSnapshot.from_bytes(data, where=str(path))
        if snap.stream_id != stream_id:
            raise SnapshotError(f"{path}: holds stream {snap.stream_id!r}, expected {stream_id!r}")
        return snap
