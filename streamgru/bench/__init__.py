"""The latency harness behind ``streamgru bench`` (docs/design.md sections 1.3 and 10).

:mod:`.command` (options, the report), :mod:`.run` (one model's measurements), :mod:`.runners`,
:mod:`.torch`, :mod:`.onnx`, :mod:`.signal` (what is timed), :mod:`.timing`, :mod:`.stats`,
:mod:`.daemon` (socket-to-sink probe), :mod:`.firstcall`, :mod:`.machine`, :mod:`.models`,
:mod:`.report` with ``schema.json``, :mod:`.plot`, :mod:`.progress`. The pytest-benchmark suites
are the repository's top-level ``bench/`` folder, a different thing.
"""
