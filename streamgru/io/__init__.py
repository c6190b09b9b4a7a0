"""Getting samples in and predictions out; no numba here.

This package owns the device and network transports: it opens serial ports and ptys, TCP and
UDP sockets (device links, the ``tcp://`` sink's server, the emulator's endpoints), LSL outlets
and inlets and NATS connections, and runs the threads those need (a writer per ``tcp://`` sink
client, the emulator's serving loop). The daemon does not touch these itself: it opens sources
and sinks by URI and owns the daemon's threads, bounded queues, signals, snapshots and metrics.
(docs/design.md section 3: the transports live here; the daemon opens them by URI.)

* :mod:`~streamgru.io.sources`: ``open_source(uri)``: serial ports, TCP, UDP, file replays,
  synthetic signals, LSL, NATS; :mod:`~streamgru.io.sinks`: ``open_sink(uri)``.
* :mod:`~streamgru.io.links`: the byte links (serial / any pyserial URL, TCP client, UDP);
  :mod:`~streamgru.io.device_source`: a device on a link, reconnecting with backoff.
* :mod:`~streamgru.io.chunk`: the records that flow (Chunk, StreamInfo, SourceStats,
  PredictionBlock).
* :mod:`~streamgru.io.framing`, :mod:`~streamgru.io.protocol`,
  :mod:`~streamgru.io.assembler`: the SGB1 wire protocol (``firmware_bridge/PROTOCOL.md``).
* :mod:`~streamgru.io.emulator`, :mod:`~streamgru.io.emulator_serve`: a device on the host
  (``streamgru simulate``) served over TCP, a pty or stdout.
* :mod:`~streamgru.io.lsl`, :mod:`~streamgru.io.nats_io`: Lab Streaming Layer and NATS.

Importing this package imports nothing else; each module is imported when used.
"""
