"""Copies of jitted functions compiled without numba's reference-counting runtime (NRT).

A per-sample step runs in about a microsecond, where the NRT's costs show: every array argument
is unboxed into a fresh NRT MemInfo (an allocation and a free per argument per call) and every
slice made inside the kernel does two atomic reference-count updates. Code that creates no new
array needs none of that, and compiled with ``_nrt=False`` a step is about twice as fast.

The chunk and many-stream kernels allocate (``np.dot``) and need the NRT, and a function
compiled without the NRT cannot be linked into one compiled with it (LLVM aborts), so helpers
shared by both are compiled twice. :func:`clone_without_nrt` clones a family of functions as a
whole: each clone is a new Python function with the same code, a qualified name of its own
(numba's on-disk cache is keyed by the qualified name, not by the options) and globals in which
every name of the family resolves to the family's clones.
"""

from __future__ import annotations

import types as pytypes
from collections.abc import Callable, Iterable
from typing import Any

import numba
import numpy as np
from numba import njit

SUFFIX = "__nonrt"


def _python_function(func: Callable) -> pytypes.FunctionType:
    return getattr(func, "py_func", func)


def clone_without_nrt(
    functions: Iterable[Callable],
    signatures: dict[str, list] | None = None,
    **options,
) -> dict[str, Callable]:
    """Copies of ``functions`` (jitted or plain) for ``_nrt=False``, compiled when first used.

    Members with ``signatures`` are entry points: each keeps its list as
    ``declared_signatures``, and :func:`entry_point` compiles (or loads from the cache) only
    the one a stepper asks for, so a process pays only for the dtypes and variants it uses.
    The other members are helpers, compiled with ``forceinline=True`` (LLVM's
    ``alwaysinline``) so that each entry point is one function: LLVM otherwise keeps the
    larger helpers as separate functions, each array passed as seven scalar arguments, about
    0.1 us a step. (numba's ``inline="always"`` does the same at the IR level but triples the
    cold compile time.)

    Parameters
    ----------
    functions : the family; names (``__name__``) must be unique. A clone calling another
        member by its global name calls that member's clone.
    signatures : the declared signatures of the entry points, by name
    **options : numba options for every clone (``_nrt`` is forced to False)

    Returns
    -------
    dict name -> numba dispatcher of the clone
    """
    signatures = signatures or {}
    originals = [_python_function(f) for f in functions]
    names = [f.__name__ for f in originals]
    if len(set(names)) != len(names):
        raise ValueError(f"clone_without_nrt: duplicate names in {names}")
    entry_options = {**options, "_nrt": False}
    helper_options = {**entry_options, "forceinline": True}
    module_globals: dict[int, dict] = {}
    clones: dict[str, Callable] = {}
    for func in originals:
        env = module_globals.setdefault(id(func.__globals__), dict(func.__globals__))
        copy = pytypes.FunctionType(
            func.__code__, env, func.__name__, func.__defaults__, func.__closure__
        )
        copy.__qualname__ = func.__qualname__ + SUFFIX
        copy.__module__ = func.__module__
        copy.__doc__ = func.__doc__
        declared = signatures.get(func.__name__)
        clone = njit(**(helper_options if declared is None else entry_options))(copy)
        if declared is not None:
            clone.declared_signatures = list(declared)
        clones[func.__name__] = clone
    for env in module_globals.values():
        env.update(clones)  # nothing is compiled yet: every name resolves to its clone
    return clones


def lazy_njit(signatures: list, **options) -> Callable[[Callable], Any]:
    """``njit(**options)`` with ``signatures`` declared, each compiled on first use, not at import.

    ``njit(signatures)`` compiles (or loads from the cache) every signature when the module is
    imported, float32 and float64 alike; a process that uses one dtype pays for both. Here the
    dispatcher keeps the list as ``declared_signatures``: :func:`entry_point` compiles the one
    a stepper asks for, a Python call compiles the exact types it gets (callers pass the
    declared types: read-only coefficient arrays, C-contiguous buffers), and a compiled caller
    compiles the types it passes into its own code. Same code, same options, same numbers.

    Parameters
    ----------
    signatures : numba signatures (one per dtype), first argument's dtype selecting the one
        :func:`entry_point` compiles
    **options : numba options (``cache``, ``nogil``, ...)

    Returns
    -------
    decorator: python function -> numba dispatcher with ``declared_signatures``
    """

    def wrap(func: Callable) -> Any:
        dispatcher = njit(**options)(func)
        dispatcher.declared_signatures = list(signatures)
        return dispatcher

    return wrap


def entry_point(dispatcher, dtype) -> Callable:
    """The compiled wrapper of ``dispatcher``'s overload for compute ``dtype``, skipping dispatch.

    The overload is the one whose first argument (the packed weights, in every kernel here) has
    ``dtype``: for a cloned or :func:`lazy_njit` entry point (``declared_signatures``),
    exactly the declared signature, compiled now if no call compiled it yet. Numba's type
    dispatch costs about 0.25 us per call; the wrapper alone unboxes its arguments as the
    overload's types without checking them, so the caller must pass arrays of exactly those
    dtypes, dimensions and layouts. Falls back to the dispatcher itself when there is no such
    overload or numba does not expose the wrapper.
    """
    wanted = numba.from_dtype(np.dtype(dtype))
    declared = getattr(dispatcher, "declared_signatures", None)
    if declared is not None:
        for signature in declared:
            args = tuple(signature.args)
            if getattr(args[0], "dtype", None) == wanted:
                if args not in dispatcher.overloads:
                    dispatcher.compile(signature)  # or loads it from numba's cache
                return getattr(dispatcher.overloads[args], "entry_point", dispatcher)
        return dispatcher
    for args in dispatcher.signatures:
        if args and getattr(args[0], "dtype", None) == wanted:
            overload = dispatcher.overloads.get(tuple(args))
            return getattr(overload, "entry_point", dispatcher)
    return dispatcher
