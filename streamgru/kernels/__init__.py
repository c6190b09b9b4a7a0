"""Numba kernels (numpy arrays in, numpy arrays out; no Python objects inside).

numba's on-disk cache (``cache=True``) checks only the file that defines each jitted function,
not the files its helpers come from: after an update that changed ``gru.py`` but not
``step.py`` (a ``git pull`` into an editable install does exactly that), the cached entry
points of ``step.py`` would go on running the old helpers, with old numbers or an old buffer
layout. So on import the kernel sources are hashed, and when the hash differs from the one
stored beside the cache, this folder's cache files are deleted and compile afresh once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_SOURCE_DIR = Path(__file__).resolve().parent
_MARKER = "streamgru-kernels.sources"


def _probe() -> None:  # pragma: no cover - never called; numba locates its cache from it
    pass


def kernel_sources_digest() -> str:
    """SHA-256 over the names and contents of this folder's ``.py`` files."""
    digest = hashlib.sha256()
    for path in sorted(_SOURCE_DIR.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def kernel_cache_dir() -> Path | None:
    """The folder numba caches this folder's kernels in, or None if it cannot say."""
    try:
        from numba.core.caching import FunctionCache

        return Path(FunctionCache(_probe).cache_path)
    except Exception:  # numba moved its internals, or no cache locator applies
        return None


def purge_stale_cache(cache_dir: Path | None = None) -> bool:
    """Delete the cached kernels if they were compiled from other sources; True if it did."""
    cache_dir = kernel_cache_dir() if cache_dir is None else cache_dir
    if cache_dir is None:
        return False
    digest = kernel_sources_digest()
    marker = cache_dir / _MARKER
    try:
        if marker.read_text() == digest:
            return False
    except OSError:
        pass
    for cached in list(cache_dir.glob("*.nbi")) + list(cache_dir.glob("*.nbc")):
        try:
            cached.unlink()
        except OSError:
            pass
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(digest)
    except OSError:  # a read-only install: numba will not cache there either
        pass
    return True


purge_stale_cache()
