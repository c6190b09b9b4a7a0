"""First-call latency: a fresh Python process imports streamgru, loads a model, builds a stepper
and steps once; timed with a cold numba cache and with a warm one.

* ``cold``: ``NUMBA_CACHE_DIR`` points at a new empty directory, so every kernel compiles;
* ``warm``: the normal cache (populated by the benchmark process itself, which has already run
  the kernels), so kernels load from disk.

The child reports its own phases (``import``, ``load``, ``construct``, ``first_step``,
``second_step``) measured with ``time.perf_counter`` from its first line; the parent adds the
whole process wall time (interpreter start-up included).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import StreamgruError

#: Environment that pins BLAS/OpenMP pools to one thread in child processes.
ONE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}

_CHILD = r"""
import time
t0 = time.perf_counter()
import json, sys
import numpy as np
import streamgru
t1 = time.perf_counter()
model = streamgru.load_model(sys.argv[1])
t2 = time.perf_counter()
st = model.stepper(dtype="float32")
t3 = time.perf_counter()
x = np.full(model.input_size, 0.5, dtype=np.float32)
st.step(x)
t4 = time.perf_counter()
st.step(x)
t5 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "construct_s": t3 - t2,
                  "first_step_s": t4 - t3, "second_step_s": t5 - t4, "total_s": t4 - t0}))
"""


class FirstCallError(StreamgruError, RuntimeError):
    """The first-call child process failed."""


def _package_root() -> str:
    import streamgru

    return str(Path(streamgru.__file__).resolve().parent.parent)


def run_first_call(
    model_path: str | os.PathLike, cache: str, timeout_s: float = 300.0
) -> dict[str, Any]:
    """Time one fresh process's import + load + construct + first step.

    Parameters
    ----------
    model_path : a weights file the child loads
    cache : ``"cold"`` (empty ``NUMBA_CACHE_DIR``) or ``"warm"`` (the normal cache)

    Returns
    -------
    dict: ``cache``, the child's phases in seconds, ``process_s`` (wall time of the whole child
    process as the parent saw it), ``numba_cache_dir`` (``"<empty temp dir>"`` or the inherited
    value or None).
    """
    if cache not in ("cold", "warm"):
        raise ValueError(f"cache must be 'cold' or 'warm', got {cache!r}")
    env = dict(os.environ)
    env.update(ONE_THREAD_ENV)
    root = _package_root()
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with tempfile.TemporaryDirectory(prefix="streamgru-bench-cache-") as tmp:
        if cache == "cold":
            env["NUMBA_CACHE_DIR"] = tmp
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, os.fspath(model_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise FirstCallError(
            f"first-call child ({cache} cache) exited with {proc.returncode}: " + " | ".join(tail)
        )
    try:
        phases = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError) as exc:
        raise FirstCallError(
            f"first-call child ({cache} cache) printed no result: {proc.stdout!r}"
        ) from exc
    phases = {k: float(v) for k, v in phases.items()}
    return {
        "cache": cache,
        **phases,
        "process_s": wall,
        "numba_cache_dir": "<empty temp dir>"
        if cache == "cold"
        else os.environ.get("NUMBA_CACHE_DIR"),
    }
