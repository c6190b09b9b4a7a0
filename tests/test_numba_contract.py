"""The numba internals streamgru relies on, checked loudly.

``streamgru.kernels`` uses a few numba APIs that are not public (LLVM-level intrinsics for the
register-tiled product and the zero-copy pointer views, the cache locator for stale-cache
purging). A numba release that moves or changes them must fail here, by name, rather than
somewhere deep in a kernel compile. ``pyproject.toml`` caps numba below the first untested
minor release; raise the cap only after this file and the suite pass on the new version.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
from pathlib import Path

import numba
import pytest

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

#: (module, attribute, parameters its callers pass by position, in order).
PRIVATE_API = [
    ("numba.core.cgutils", "alloca_once", ("builder", "ty")),
    ("numba.core.cgutils", "for_range", ("builder", "count")),
    ("numba.core.cgutils", "pack_array", ("builder", "values")),
    ("numba.core.cgutils", "unpack_tuple", ("builder", "tup")),
    ("numba.core.imputils", "impl_ret_borrowed", ("ctx", "builder", "retty", "ret")),
    ("numba.np.arrayobj", "make_array", ("array_type",)),
    ("numba.np.arrayobj", "populate_array", ("array", "data", "shape", "strides", "itemsize")),
    ("numba.extending", "intrinsic", ()),
    ("numba.extending", "overload", ()),
    ("numba.core.caching", "FunctionCache", ()),
]


def _version_tuple(text: str) -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", text).groups()  # type: ignore[union-attr]
    return int(major), int(minor)


def _numba_bounds() -> tuple[tuple[int, int], tuple[int, int]]:
    spec = re.search(r'"numba>=([\d.]+),<([\d.]+)"', PYPROJECT.read_text(encoding="utf-8"))
    assert spec, "pyproject.toml must pin numba as 'numba>=LOW,<HIGH'"
    return _version_tuple(spec.group(1)), _version_tuple(spec.group(2))


def test_installed_numba_is_within_the_tested_range():
    low, high = _numba_bounds()
    installed = _version_tuple(numba.__version__)
    assert low <= installed < high, (
        f"numba {numba.__version__} is outside the tested range >={low}, <{high}"
    )


@pytest.mark.parametrize(("module", "name", "params"), PRIVATE_API)
def test_private_numba_api_is_still_there(module, name, params):
    mod = __import__(module, fromlist=[name])
    obj = getattr(mod, name, None)
    assert obj is not None, f"numba {numba.__version__} no longer has {module}.{name}"
    if params:
        got = tuple(inspect.signature(obj).parameters)[: len(params)]
        assert got == params, f"{module}.{name} takes {got}, streamgru passes {params}"


def test_cache_locator_still_answers():
    from streamgru.kernels import kernel_cache_dir

    assert kernel_cache_dir() is not None, "numba's FunctionCache no longer gives a cache_path"


#: Modules of numba that are not its public API (``numba.extending`` and ``numba.types`` are).
PRIVATE_MODULES = ("numba.core", "numba.np", "numba.misc", "numba.cpython", "numba._")
PACKAGE = PYPROJECT.parent / "streamgru"


def _is_private(module: str) -> bool:
    return module.startswith(PRIVATE_MODULES)


def _is_module(dotted: str) -> bool:
    try:
        return importlib.util.find_spec(dotted) is not None
    except (ImportError, ValueError):
        return False


def private_uses(path: Path) -> set[tuple[str, str]]:
    """(module, name) of every private numba name ``path`` imports or reads off a private module
    (``from numba.core import cgutils`` then ``cgutils.for_range`` gives
    ("numba.core.cgutils", "for_range")). Lazy imports inside functions count too."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    uses: set[tuple[str, str]] = set()
    modules: dict[str, str] = {}  # local name -> private module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and _is_private(node.module):
            for alias in node.names:
                dotted = f"{node.module}.{alias.name}"
                if _is_module(dotted):
                    modules[alias.asname or alias.name] = dotted
                else:
                    uses.add((node.module, alias.name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _is_private(alias.name) and alias.asname:
                    modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in modules:
                uses.add((modules[node.value.id], node.attr))
        if isinstance(node, ast.Attribute):
            dotted = ast.unparse(node)
            if dotted.startswith("numba.") and _is_private(dotted.rsplit(".", 1)[0]):
                uses.add(tuple(dotted.rsplit(".", 1)))  # type: ignore[arg-type]
    return uses


def test_every_private_numba_api_streamgru_uses_is_listed():
    """A new use of a numba internal must be added to PRIVATE_API (and so checked above)."""
    listed = {(module, name) for module, name, _ in PRIVATE_API}
    unlisted = {
        f"{path.relative_to(PACKAGE)}: {module}.{name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for module, name in private_uses(path)
        if (module, name) not in listed
    }
    assert not unlisted, f"numba internals used but not in PRIVATE_API: {sorted(unlisted)}"


def test_the_private_use_scanner_sees_imports_and_attributes(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from numba.core import cgutils\n"
        "from numba.np.arrayobj import make_array\n"
        "import numba\n"
        "def f(b):\n"
        "    from numba.core.caching import FunctionCache\n"
        "    cgutils.is_null(b, b)\n"
        "    return numba.core.config.DEBUG\n",
        encoding="utf-8",
    )
    assert private_uses(probe) == {
        ("numba.core.cgutils", "is_null"),
        ("numba.np.arrayobj", "make_array"),
        ("numba.core.caching", "FunctionCache"),
        ("numba.core.config", "DEBUG"),
        ("numba.core", "config"),
    }
