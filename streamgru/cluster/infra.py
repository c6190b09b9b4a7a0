"""Server-side set-up: the JetStream streams and KV buckets, the cluster key, the subject mapping probe."""

from __future__ import annotations

import json
from typing import Any

from ..errors import ConfigError
from ..io.nats_io import (
    IN_PREFIX,
    PART_PREFIX,
    partition_mapping,
    partition_of,
)
from .settings import IN_STREAM, OUT_STREAM, OWNERS_BUCKET, STATE_BUCKET, ClusterConfig

_PROBES = 8


# ------------------------------------------------------------------------------- server objects
async def ensure_infrastructure(js: Any, cfg: ClusterConfig) -> tuple[Any, Any, float]:
    """Create (or find) SG_IN, the two KV buckets and optionally SG_OUT.

    Returns ``(owners_kv, state_kv, lease_ttl_s)``; the TTL is the bucket's own when it exists.
    """
    from nats.js import api
    from nats.js.errors import BucketNotFoundError, NotFoundError

    async def stream(name: str, subjects: list[str], max_age: float) -> None:
        try:
            await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(
                name=name,
                subjects=subjects,
                retention=api.RetentionPolicy.LIMITS,
                storage=api.StorageType.FILE,
                discard=api.DiscardPolicy.OLD,
                max_age=max_age,
            )

    async def bucket(name: str, ttl: float | None) -> Any:
        try:
            return await js.key_value(name)
        except BucketNotFoundError:
            return await js.create_key_value(bucket=name, history=1, ttl=ttl)

    await stream(IN_STREAM, [f"{PART_PREFIX}.*.*"], cfg.replay_window_s)
    if cfg.keep_outputs_s > 0:
        await stream(OUT_STREAM, ["sg.out.>"], cfg.keep_outputs_s)
    owners = await bucket(OWNERS_BUCKET, cfg.lease_ttl_s)
    state = await bucket(STATE_BUCKET, None)
    ttl = (await owners.status()).ttl or cfg.lease_ttl_s
    return owners, state, float(ttl)


async def check_cluster_key(state_kv: Any, cfg: ClusterConfig) -> None:
    """Refuse to join a cluster that was set up with another partition count."""
    from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

    want = {"partitions": cfg.partitions}
    try:
        await state_kv.create("cluster", json.dumps(want).encode())
        return
    except KeyWrongLastSequenceError:
        pass
    try:
        have = json.loads((await state_kv.get("cluster")).value)
    except KeyNotFoundError:
        return
    if have.get("partitions") != cfg.partitions:
        raise ConfigError(
            f"partitions: this cluster was set up with {have.get('partitions')} partitions "
            f"(sg_state 'cluster'), this worker has {cfg.partitions}; changing the count needs "
            "a drained cluster (docs/scale-out.md)"
        )


async def probe_mapping(nc: Any, js: Any, n_partitions: int, timeout: float = 3.0) -> None:
    """Check that the server maps ``sg.in.*`` with ``partition(n, 1)``, by publishing probes.

    Probe ids start with ``_`` (reserved: workers skip them); the empty probes stay in SG_IN
    until the replay window ages them out (purging them would look like lost messages).
    """
    ids = [f"_probe{k}" for k in range(_PROBES)]
    subs = [await nc.subscribe(f"{PART_PREFIX}.*.{sid}") for sid in ids]
    try:
        for sid in ids:
            await js.publish(f"{IN_PREFIX}.{sid}", b"", timeout=timeout)
        for sid, sub in zip(ids, subs):
            msg = await sub.next_msg(timeout=timeout)
            got = int(msg.subject.split(".")[2])
            if got != partition_of(sid, n_partitions):
                raise ConfigError(
                    f"partitions: the server maps {IN_PREFIX}.{sid} to partition {got}, but "
                    f"partition({n_partitions},1) gives {partition_of(sid, n_partitions)}: the "
                    "server's mapping uses another partition count"
                )
    except ConfigError:
        raise
    except Exception as exc:  # no mapping: a timeout or no responders
        mapping = partition_mapping(n_partitions)
        raise ConfigError(
            f"partition_mode server: no partition mapping seen on the server ({exc!r}); add "
            f"`mappings = {json.dumps(mapping)}` to the nats-server config, or run with "
            "--partition-mode publisher"
        ) from exc
    finally:
        for sub in subs:
            await sub.unsubscribe()
