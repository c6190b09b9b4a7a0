"""The numba internals streamgru relies on, checked loudly.

``streamgru.kernels`` uses a few numba APIs that are not public (LLVM-level intrinsics for the
register-tiled product and the zero-copy pointer views, the cache locator for stale-cache
purging). A numba release that moves or changes them must fail here, by name, rather than
somewhere deep in a kernel compile. ``pyproject.toml`` caps numba below the first untested
minor release; raise the cap only after this file and the suite pass on the new version.
"""

from __future__ import annotations

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
