"""Worker mode: streams partitioned over workers on NATS JetStream, state handed over on failure.

Run one worker per core::

    python -m streamgru.cluster --nats nats://127.0.0.1:4222 --partitions 16 \\
        --model weights/model.safetensors --filter ecg-monitor --fs 250

Layout on the server (created by the first worker; see ``docs/scale-out.md``):

* stream ``SG_IN`` on ``sg.part.*.*``: devices publish on ``sg.in.<id>``, and the server's mapping
  ``sg.in.* -> sg.part.{{partition(N,1)}}.{{wildcard(1)}}`` puts each stream in a partition
  (``--partition-mode publisher``: devices publish on ``sg.part.<p>.<id>`` themselves, with the
  same FNV-1a hash, :func:`streamgru.io.nats_io.partition_of`). Limits retention, ``max_age`` =
  the replay window.
* KV ``sg_owners`` (TTL = lease TTL): ``w.<worker>`` presence and ``p.<p>`` partition leases,
  renewed by compare-and-set every TTL/4. A dead worker's leases expire after the TTL.
* KV ``sg_state``: ``cluster`` (the partition count, checked), ``m.<p>`` the partition's marker
  (the stream sequence up to which every stream's state is written), ``s.<id>`` each stream's
  state (:func:`streamgru.cluster.state.pack_state`).

Owning partition p at lease revision e: bump ``m.<p>`` (compare-and-set: a stale owner's next
write fails), delete older consumers of p, create the durable pull consumer ``sg_p<p>_<e>``
starting at marker + 1, then process in stream order. A stream's state is loaded from ``s.<id>``
on its first message; a message at or below the state's own ``last_seq`` is already in it and is
skipped. Every ``--snapshot-interval`` seconds: flush outputs, write the dirty streams' states and
then the marker (both compare-and-set), then ack (AckAll) the last message: at least once, and a
repeated output carries the same index and the same values, since it comes from the same state
and the same messages.

Modules: :mod:`.settings` (ClusterConfig, TOML files), :mod:`.state` (SGC1 state blob,
StreamProcessor), :mod:`.infra` (streams, buckets, mapping probe), :mod:`.partition` (one owned
partition), :mod:`.worker` (the worker process), :mod:`.command` (command line).
"""
