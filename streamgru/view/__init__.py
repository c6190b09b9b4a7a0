"""The live view: ``streamgru run --view`` (or ``[view]`` in the config) serves a small web page
from the daemon, a scrolling waveform per stream with the model's output and the detected beats,
heart rate, samples lost and latency, pushed over Server-Sent Events at a display rate decoupled
from the sample rate.

* :mod:`.hub`: display decimation (min/max per point) into bounded rings; no sockets;
* :mod:`.server`: the page (``static/``, no build step, works offline) and ``/events``;
* :mod:`.sink`: ``view://HOST:PORT`` as a daemon sink (``streamgru.io.sinks.open_sink``).

It sits beside io (a transport: threads and a socket) and imports io only.
"""
