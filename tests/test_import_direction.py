"""Dependencies point one way: kernels <- model <- engine <- daemon <- cluster/bench/demo <- cli.

io knows no numba; none of the packages imports cli.

Read from the source (ast), so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "streamgru"

# The packages that know threads, sockets and processes (docs/design.md, "Layers").
SERVICE_LAYERS = ("daemon", "cluster", "bench", "demo")
# For each layer: the streamgru subpackages it must never import.
FORBIDDEN = {
    # the snapshot envelope sits at the bottom, beside errors: numpy and errors only
    "state": {"kernels", "model", "engine", "cuda_engine", "signal", "io", "cli", *SERVICE_LAYERS},
    "kernels": {"model", "engine", "io", "cli", "signal.chain", "cuda_engine", *SERVICE_LAYERS},
    "model": {"engine", "io", "cli", *SERVICE_LAYERS},
    "signal": {"engine", "io", "cli", "model", *SERVICE_LAYERS},
    "io": {"engine", "cli", "kernels", *SERVICE_LAYERS},
    # the live view is a transport beside io (a sink with a web server): io and errors only
    "view": {"engine", "cli", "kernels", "model", "signal", "cuda_engine", *SERVICE_LAYERS},
    "engine": {"io", "cli", *SERVICE_LAYERS},
    # the daemon stands alone; cluster, bench and demo build on it and not on one another
    "daemon": {"cli", "cluster", "bench", "demo"},
    "cluster": {"cli", "bench", "demo"},
    "bench": {"cli", "cluster", "demo"},
    "demo": {"cli", "cluster", "bench"},
    # the C exporter builds on model, engine, signal and kernels only
    "export": {"evaluation", "cli", "io", "daemon", "cluster", "bench", "demo", "cuda_engine"},
    # scoring runs the model's pipeline (engine, signal) on files; no threads, no sockets
    "evaluation": {"export", "cli", "io", "cuda_engine", *SERVICE_LAYERS},
}
# The one sanctioned exception: docs/design.md's public API builds steppers from the model
# (``model.stepper(...)``), a lazy import inside that factory method.
ALLOWED = {("model/core.py", "streamgru.engine")}
THIRD_PARTY_FORBIDDEN = {"io": {"numba"}, "kernels": {"torch", "onnx", "h5py", "keras"}}


def _imports(path: Path) -> set[str]:
    """Absolute module names imported by ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package_parts = ["streamgru", *path.relative_to(PACKAGE).with_suffix("").parts[:-1]]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_one_way(path):
    layer = _layer(path)
    imported = _imports(path)
    for target in FORBIDDEN.get(layer, ()):
        bad = sorted(
            name
            for name in imported
            if (name == f"streamgru.{target}" or name.startswith(f"streamgru.{target}."))
            and (str(path.relative_to(PACKAGE)), f"streamgru.{target}") not in ALLOWED
        )
        assert not bad, f"{path.relative_to(PACKAGE)} ({layer}) imports {bad}"
    for target in THIRD_PARTY_FORBIDDEN.get(layer, ()):
        bad = sorted(name for name in imported if name == target or name.startswith(f"{target}."))
        assert not bad, f"{path.relative_to(PACKAGE)} ({layer}) imports {bad}"


def test_package_import_is_light():
    import subprocess
    import sys

    code = "import sys, streamgru; print(sorted(m for m in ('numba', 'torch', 'onnx', 'h5py', 'scipy') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout
