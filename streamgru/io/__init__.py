"""Getting samples in and predictions out; no numba here.

* :mod:`~streamgru.io.sources`: ``open_source(uri)``: serial ports, TCP, UDP, file replays,
  synthetic signals, LSL; :mod:`~streamgru.io.sinks`: ``open_sink(uri)``.
* :mod:`~streamgru.io.chunk`: the records that flow (Chunk, StreamInfo, SourceStats,
  PredictionBlock).
* :mod:`~streamgru.io.framing`, :mod:`~streamgru.io.protocol`,
  :mod:`~streamgru.io.assembler`: the SGB1 wire protocol (``firmware_bridge/PROTOCOL.md``).
* :mod:`~streamgru.io.emulator`: a device on the host (``streamgru simulate``).

Importing this package imports nothing else; each module is imported when used.
"""
