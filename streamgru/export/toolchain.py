"""Build and run an exported library with the host compiler (the checks the tests make).

:func:`build_host` compiles ``templates/harness.c`` with the generated source under
``-std=c99 -Wall -Wextra -Werror`` and the address/undefined sanitizers; :func:`run_harness`
feeds it float32 samples and reads its float32 outputs.
"""

from __future__ import annotations

import importlib.resources
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailableError, ConfigError

#: Warnings and sanitizers of the host build.
HOST_FLAGS = (
    "-std=c99",
    "-O1",
    "-g",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-ffp-contract=off",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
)


def template(name: str) -> Path:
    """Path of a file in ``streamgru/export/templates``."""
    return Path(str(importlib.resources.files("streamgru.export") / "templates" / name))


def find_tool(name: str, hint: str = "run `make install-test`") -> str:
    """Absolute path of the program ``name``; BackendUnavailableError saying how to get it."""
    path = shutil.which(name)
    if path is None:
        raise BackendUnavailableError(f"{name} not found on PATH: {hint}")
    return path


def build_host(
    src_dir: str | Path, prefix: str, out: str | Path, act_test: bool = False, libm: bool = True
) -> Path:
    """Compile the harness against ``src_dir/prefix.c``; returns the executable's path.

    Raises
    ------
    ConfigError
        The compiler refused the code (its messages included).
    """
    src_dir, out = Path(src_dir), Path(out)
    cmd = [find_tool("gcc"), *HOST_FLAGS, f"-DSG_PREFIX={prefix}", f'-DSG_HEADER="{prefix}.h"']
    if act_test:
        cmd.append("-DSG_ACT_TEST")
    cmd += ["-I", str(src_dir), str(template("harness.c")), str(src_dir / f"{prefix}.c")]
    cmd += ["-o", str(out)] + (["-lm"] if libm else [])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise ConfigError(f"gcc refused the exported code:\n{done.stderr[-4000:]}")
    return out


def run_harness(exe: str | Path, mode: str, values: np.ndarray, *counts: int) -> np.ndarray:
    """Run ``exe mode counts...`` with ``values`` (float32) on stdin; returns its float32 output.

    Raises
    ------
    ConfigError
        The harness exited with a non-zero status (stderr included).
    """
    data = np.ascontiguousarray(values, dtype=np.float32).tobytes()
    args = [str(exe), mode, *(str(c) for c in counts)]
    done = subprocess.run(args, input=data, capture_output=True, timeout=600, check=False)
    if done.returncode != 0:
        raise ConfigError(
            f"{' '.join(args)}: exit status {done.returncode}: {done.stderr.decode()[-2000:]}"
        )
    return np.frombuffer(done.stdout, dtype=np.float32)
