"""The daemon behind ``streamgru run`` (docs/design.md sections 3 and 9).

Configuration (:mod:`.config_schema`, :mod:`.config_checks`, :mod:`.config`), one stream's signal
path (:mod:`.plan`, :mod:`.pipeline`, :mod:`.policies`, :mod:`.snapshots`), the threads
(:mod:`.reader`, :mod:`.writer`), :mod:`.daemon` itself with :mod:`.streams` and :mod:`.reload`,
:mod:`.commands` (``run``, ``config check``), :mod:`.metrics` with :mod:`.health`, :mod:`.notify`, :mod:`.logs`, and
:mod:`.tools` (``streamgru info`` / ``convert``).
"""
