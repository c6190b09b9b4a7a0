"""Cross-compile an exported model for a Cortex-M4F and run it under qemu-system-arm.

The firmware is ``templates/cortexm`` (vector table, start-up, semihosting, a main that steps
the model over embedded samples and prints each output's float bits) linked for QEMU's
``mps2-an386`` board. :func:`measure` reports flash and RAM of the model itself (its object
file and state struct, plus the stack of ``P_step`` from ``-fstack-usage``) and the
instructions executed per sample, counted by QEMU (one instruction per translation block,
``-d exec``; the difference of two runs of N and 2N samples, so start-up and exit cancel).

Everything needs ``gcc-arm-none-eabi``, ``libnewlib-arm-none-eabi`` and ``qemu-system-arm``
(``make install-test``); without them the functions raise BackendUnavailableError saying so.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailableError, ConfigError
from . import cwriter as cw
from .toolchain import find_tool, template

CPU_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
ARM_FLAGS = (
    *CPU_FLAGS,
    "-std=c99",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-ffp-contract=off",
    "-ffunction-sections",
    "-fdata-sections",
)
QEMU_ARGS: tuple[str, ...] = (
    "-M", "mps2-an386", "-cpu", "cortex-m4", "-display", "none", "-monitor", "none",
    "-serial", "none",
)  # fmt: skip
_HINT = (
    "run `make install-test` (installs gcc-arm-none-eabi, libnewlib-arm-none-eabi, qemu-system-arm)"
)


@dataclass(frozen=True)
class Footprint:
    """Sizes in bytes of one exported model on the Cortex-M4F (``-O2``)."""

    flash: int  # text + rodata + data of the model's object file
    static_ram: int  # data + bss of the object file (0: the model keeps no globals)
    state: int  # sizeof(P_state), the caller's
    stack: int  # P_step's stack frame plus the frames of the functions it calls


def _tool(name: str) -> str:
    return find_tool(name, _HINT)


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise ConfigError(
            f"{' '.join(cmd[:3])} ...: exit {done.returncode}:\n{done.stderr[-3000:]}"
        )
    return done


def _semihosting(path: Path) -> list[str]:
    """QEMU arguments sending the semihosting console to the file ``path``."""
    return [
        "-chardev",
        f"file,id=sgout,path={path}",
        "-semihosting-config",
        "enable=on,target=native,chardev=sgout",
    ]


def write_samples(path: Path, X: np.ndarray) -> None:
    """``sg_samples.h``: X (T, I) float32 as ``static const float sg_samples[T * I]``."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    body = cw.c_array("float", "sg_samples", (cw.c_float(v) for v in X.ravel()))
    path.write_text(f"#define SG_N_SAMPLES {X.shape[0]}L\n{body}", encoding="utf-8")


def build_firmware(
    src_dir: str | Path,
    prefix: str,
    X: np.ndarray,
    out: str | Path,
    quiet: bool = False,
    main: str | Path | None = None,
    extra: tuple[str | Path, ...] = (),
    defines: tuple[str, ...] = (),
) -> Path:
    """Link the exported model with the QEMU firmware over samples X (T, I); returns the ELF.

    ``main`` replaces ``templates/cortexm/main.c``; ``extra`` are more C sources (their folders
    go on the include path); ``defines`` are ``NAME=VALUE`` macros.
    """
    src_dir, out = Path(src_dir), Path(out)
    work = out.parent
    write_samples(work / "sg_samples.h", X)
    tdir = template("cortexm")
    cmd = [_tool("arm-none-eabi-gcc"), *ARM_FLAGS, f"-DSG_PREFIX={prefix}"]
    cmd += [f'-DSG_HEADER="{prefix}.h"', "-I", str(src_dir), "-I", str(tdir), "-I", str(work)]
    cmd += ["-DSG_QUIET"] if quiet else []
    cmd += [f"-D{d}" for d in defines]
    for source in extra:
        cmd += ["-I", str(Path(source).parent)]
    main_c = tdir / "main.c" if main is None else Path(main)
    cmd += [str(tdir / "startup.c"), str(main_c), str(src_dir / f"{prefix}.c")]
    cmd += [str(source) for source in extra]
    cmd += ["-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs"]
    cmd += ["-T", str(tdir / "mps2_an386.ld"), "-Wl,--gc-sections", "-o", str(out), "-lm"]
    _run(cmd, 300)
    return out


def run_firmware_lines(elf: str | Path, timeout: float = 120) -> list[str]:
    """Run ``elf`` under qemu-system-arm; returns what it printed, up to its "END" line."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "semihosting.txt"
        _run(
            [_tool("qemu-system-arm"), *QEMU_ARGS, *_semihosting(out), "-kernel", str(elf)], timeout
        )
        lines = out.read_text().splitlines()
    if not lines or lines[-1].strip() != "END":
        raise ConfigError(f"the firmware did not finish (last lines: {lines[-3:]!r})")
    return lines[:-1]


def run_firmware(elf: str | Path, n_outputs: int, timeout: float = 120) -> np.ndarray:
    """Run ``elf`` under qemu-system-arm; returns the printed outputs as (T, n_outputs) float32."""
    lines = run_firmware_lines(elf, timeout)
    bits = [[int(word, 16) for word in line.split()] for line in lines]
    arr = np.array(bits, dtype=np.uint32).reshape(-1, n_outputs)
    return arr.view(np.float32)


def count_instructions(elf: str | Path, timeout: float = 300) -> int:
    """Instructions ``elf`` executes from reset to exit (QEMU, one instruction per block)."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "exec.log"
        cmd = [_tool("qemu-system-arm"), *QEMU_ARGS, *_semihosting(Path(tmp) / "out.txt")]
        cmd += ["-singlestep", "-d", "exec,nochain"]
        cmd += ["-D", str(log), "-kernel", str(elf)]
        _run(cmd, timeout)
        count = 0
        with log.open("rb") as fh:
            for line in fh:
                count += line.startswith(b"Trace ")
    if count == 0:
        raise BackendUnavailableError("qemu-system-arm logged no executed blocks (-d exec)")
    return count


def footprint(src_dir: str | Path, prefix: str) -> Footprint:
    """Flash, static RAM, state and step stack of ``src_dir/prefix.c`` for the Cortex-M4F."""
    src_dir = Path(src_dir)
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / f"{prefix}.o"
        _run(
            [
                _tool("arm-none-eabi-gcc"),
                *ARM_FLAGS,
                "-fstack-usage",
                "-c",
                "-I",
                str(src_dir),
                str(src_dir / f"{prefix}.c"),
                "-o",
                str(obj),
            ],
            300,
        )
        sizes = _run([_tool("arm-none-eabi-size"), "-A", str(obj)], 60).stdout
        usage = (Path(tmp) / f"{prefix}.su").read_text()
        state_src = Path(tmp) / "state.c"
        state_src.write_text(
            f'#include "{prefix}.h"\nchar sg_state_probe[sizeof({prefix}_state)];\n'
        )
        state_obj = Path(tmp) / "state.o"
        _run(
            [
                _tool("arm-none-eabi-gcc"),
                *ARM_FLAGS,
                "-c",
                "-I",
                str(src_dir),
                str(state_src),
                "-o",
                str(state_obj),
            ],
            60,
        )
        state = _symbol_size(state_obj, "sg_state_probe")
    flash = ram = 0
    for name, size in re.findall(r"^(\.\S+)\s+(\d+)", sizes, flags=re.M):
        if name.startswith((".text", ".rodata")):
            flash += int(size)
        elif name.startswith(".data"):
            flash += int(size)
            ram += int(size)
        elif name.startswith(".bss"):
            ram += int(size)
    frames = {m[0]: int(m[1]) for m in re.findall(r":\d+:\d+:(\w+)\s+(\d+)", usage)}
    stack = sum(frames.values())  # an upper bound: every function's frame at once
    return Footprint(flash=flash, static_ram=ram, state=state, stack=stack)


def _symbol_size(obj: Path, symbol: str) -> int:
    """The size nm reports for ``symbol`` in ``obj``."""
    out = _run([_tool("arm-none-eabi-nm"), "-S", str(obj)], 60).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == symbol:
            return int(parts[1], 16)
    raise ConfigError(f"{obj}: symbol {symbol} not found")


def instructions_per_sample(src_dir: str | Path, prefix: str, X: np.ndarray) -> float:
    """Instructions per ``P_step`` on the Cortex-M4F: (count(2N) - count(N)) / N for X (2N, I)."""
    n = X.shape[0] // 2
    with tempfile.TemporaryDirectory() as tmp:
        one = build_firmware(src_dir, prefix, X[:n], Path(tmp) / "n.elf", quiet=True)
        two = build_firmware(src_dir, prefix, X[: 2 * n], Path(tmp) / "2n.elf", quiet=True)
        return (count_instructions(two) - count_instructions(one)) / n


def measure(model, X: np.ndarray, dtypes=("float32", "int16", "int8")) -> list[dict]:
    """Footprint and instructions per sample of ``model`` for each build, over X (2N, I) float32
    (fixed point calibrated on the default segment). One dict per dtype."""
    from .api import export_c

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in dtypes:
            out = Path(tmp) / dtype
            export_c(model, out, dtype, "m", log=lambda _line: None)
            fp = footprint(out, "m")
            rows.append(
                {
                    "dtype": dtype,
                    "flash": fp.flash,
                    "state": fp.state,
                    "stack": fp.stack,
                    "instructions_per_sample": instructions_per_sample(out, "m", X),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m streamgru.export.cortexm MODEL``: the README table for a model."""
    import sys

    from .. import load_model
    from .calibration import builtin_segment

    args = sys.argv[1:] if argv is None else argv
    model = load_model(args[0])
    X = (
        builtin_segment()[:40]
        if model.input_size == 1
        else np.zeros((40, model.input_size), np.float32)
    )
    print("| build | flash (B) | state (B) | stack (B, upper bound) | instructions / sample |")
    print("|---|---:|---:|---:|---:|")
    for row in measure(model, X):
        print(
            f"| {row['dtype']} | {row['flash']} | {row['state']} | {row['stack']} | "
            f"{row['instructions_per_sample']:.0f} |"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
