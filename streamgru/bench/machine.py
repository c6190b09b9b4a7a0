"""A description of the machine a benchmark ran on, for its report.

Everything here is read, never changed: CPU model and flags from ``/proc/cpuinfo`` (Linux), the
cores this process may use, the frequency governor when ``/sys`` exposes it, versions of the
Python stack (read from package metadata: nothing optional is imported), and the BLAS libraries
numpy loaded with their thread counts (``threadpoolctl`` when installed).
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: CPU flags worth knowing for vectorised kernels.
INTERESTING_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512vl",
    "avx512_bf16",
    "neon",
    "asimd",
)

#: Packages whose versions go into every report (None when not installed).
PACKAGES = (
    "streamgru",
    "numpy",
    "numba",
    "llvmlite",
    "scipy",
    "torch",
    "onnxruntime",
    "onnx",
    "threadpoolctl",
    "matplotlib",
)

GOVERNOR_PATH = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _cpuinfo(text: str | None) -> tuple[str | None, list[str]]:
    """(model name, interesting flags) from the text of /proc/cpuinfo."""
    if not text:
        return None, []
    model = None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and model is None:
            model = value.strip() or None
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model, [f for f in INTERESTING_FLAGS if f in flags]


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed distribution versions by name (None when not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def blas_info() -> list[dict[str, Any]]:
    """The thread pools numpy and friends loaded (BLAS, OpenMP), via threadpoolctl.

    Empty when threadpoolctl is not installed.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "version", "num_threads", "architecture", "prefix")
    return [{k: pool.get(k) for k in keep} for pool in threadpool_info()]


def describe_machine() -> dict[str, Any]:
    """The machine and software a benchmark ran on, as a JSON-ready dict."""
    model, flags = _cpuinfo(_read_text(Path("/proc/cpuinfo")))
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    return {
        "cpu_model": model or platform.processor() or None,
        "cpu_flags": flags,
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "frequency_governor": _read_text(GOVERNOR_PATH),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "packages": package_versions(),
        "blas": blas_info(),
    }
