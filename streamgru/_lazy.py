"""Lazy re-exports for package ``__init__`` modules (PEP 562).

A package lists its public names and the module each lives in; its module-level
``__getattr__`` calls :func:`lazy_attribute`, which imports that module on the first use of a
name and caches the value in the package, so later uses are plain attribute look-ups. Importing
the package itself then imports no optional dependency and compiles no numba kernel.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any


def lazy_attribute(
    package: str, table: Mapping[str, str], namespace: dict[str, Any], name: str
) -> Any:
    """``name`` of package ``package``, imported from ``table[name]`` (absolute, or relative
    to ``package``) and stored in the package's ``namespace`` (its ``globals()``).

    Raises
    ------
    AttributeError
        If ``name`` is not in ``table``, as for any missing module attribute.
    """
    module = table.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, package), name)
    namespace[name] = value
    return value
