"""Gate orders and weight mappings between frameworks and the canonical PyTorch convention.

PyTorch stores the three gate blocks of every GRU matrix as rows in the order (r, z, n):
reset, update, new. Keras and ONNX use (z, r, h): update first. Keras stores kernels transposed
(columns are gates). Some texts define the update gate the other way round,
``h' = (1 - u) h + u h~``; then ``u = 1 - z``, which is exact with negated z rows and biases
because ``1 - sigmoid(a) = sigmoid(-a)``.

The importers call these helpers and record what they did in the model's metadata under
``mapping``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import UnsupportedModelError, WeightsError

_LAYER_KEY = re.compile(
    r"^(?P<prefix>.*?)(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh)"
    r"(?:_l(?P<layer>\d+))?(?P<suffix>_reverse)?$"
)


def zrh_to_rzn(blocks: np.ndarray, axis: int = 0) -> np.ndarray:
    """Reorder gate blocks (z, r, h) along ``axis`` to PyTorch's (r, z, n).

    Parameters
    ----------
    blocks : array whose ``axis`` has length 3 * H
    """
    z, r, h = np.split(np.asarray(blocks), 3, axis=axis)
    return np.concatenate([r, z, h], axis=axis)


def rzn_to_zrh(blocks: np.ndarray, axis: int = 0) -> np.ndarray:
    """Inverse of :func:`zrh_to_rzn`: PyTorch (r, z, n) to (z, r, h)."""
    r, z, n = np.split(np.asarray(blocks), 3, axis=axis)
    return np.concatenate([z, r, n], axis=axis)


def negate_update_gate(w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray):
    """Map an "update gate" model (h' = (1-u) h + u h~) to PyTorch's z = 1 - u (exact).

    Arrays are in (r, z, n) row order; the z rows and biases are negated.
    """
    out = [np.array(a, dtype=np.float64, copy=True) for a in (w_ih, w_hh, b_ih, b_hh)]
    for arr in out:
        third = arr.shape[0] // 3
        arr[third : 2 * third] *= -1.0
    return tuple(out)


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def split_state_dict(mapping: Mapping[str, Any]) -> tuple[list[dict[str, str]], list[str]]:
    """Find the GRU layers and the Linear head in a PyTorch-style state dict.

    Returns
    -------
    gru_keys : list, one dict per layer (0..L-1) mapping ``weight_ih`` / ``weight_hh`` /
        ``bias_ih`` / ``bias_hh`` to the key in ``mapping`` (bias keys may be absent)
    head_names : list of module names (``fc``, ``head.0``, ...) whose ``.weight`` is a Linear
        layer, in order

    Raises
    ------
    UnsupportedModelError
        for a bidirectional model (``_reverse`` keys) or a projection (``weight_hr``).
    WeightsError
        for missing layers, a key that is neither GRU nor Linear, or two GRU modules.
    """
    layers: dict[int, dict[str, str]] = {}
    prefixes: set[str] = set()
    linear: dict[str, dict[str, str]] = {}
    for key in mapping:
        if not isinstance(key, str):
            raise WeightsError(f"state dict keys must be strings, got {key!r}")
        match = _LAYER_KEY.match(key)
        if match:
            _add_gru_key(key, match, layers, prefixes)
        else:
            _add_linear_key(key, linear)
    n_layers = _checked_layer_count(layers, prefixes)
    head = []
    for module in linear:  # insertion order
        if "weight" not in linear[module]:
            raise WeightsError(f"{module}.bias has no matching {module}.weight")
        head.append(module)
    head = _sort_sequential(head)
    return [layers[k] for k in range(n_layers)], head


def _add_gru_key(
    key: str, match: re.Match, layers: dict[int, dict[str, str]], prefixes: set[str]
) -> None:
    """Record a GRU parameter key in ``layers`` (layer -> kind -> key) and its prefix."""
    if match.group("suffix"):
        raise UnsupportedModelError(
            f"{key}: this is a bidirectional GRU; its reverse direction reads the future, "
            "so it cannot run sample by sample. Export a unidirectional model."
        )
    layer = int(match.group("layer")) if match.group("layer") is not None else 0
    prefixes.add(match.group("prefix"))
    slot = layers.setdefault(layer, {})
    if match.group("kind") in slot:
        raise WeightsError(
            f"{key}: two GRU entries for layer {layer} ({slot[match.group('kind')]!r} and {key!r})"
        )
    slot[match.group("kind")] = key


def _add_linear_key(key: str, linear: dict[str, dict[str, str]]) -> None:
    """Record a Linear ``<module>.weight`` / ``.bias`` key; refuse anything else."""
    if "weight_hr" in key:
        raise UnsupportedModelError(f"{key}: projections (proj_size) are not part of a GRU")
    if key.endswith("num_batches_tracked"):
        raise WeightsError(f"{key}: normalisation layers are not supported in the head")
    module, _, param = key.rpartition(".")
    if param not in ("weight", "bias") or not module:
        raise WeightsError(
            f"{key}: not a GRU parameter (weight_ih_l<k>, ...) nor a Linear '<name>.weight' / "
            "'<name>.bias'; streamgru runs a GRU stack followed by Linear layers only"
        )
    linear.setdefault(module, {})[param] = key


def _checked_layer_count(layers: dict[int, dict[str, str]], prefixes: set[str]) -> int:
    """L, after checking layers 0..L-1 all exist with both weights, under one prefix."""
    if not layers:
        raise WeightsError(
            "no GRU weights found: expected keys such as 'gru.weight_ih_l0' and 'gru.weight_hh_l0'"
        )
    if len(prefixes) > 1:
        raise WeightsError(
            f"found GRU weights under several prefixes {sorted(prefixes)}; expected one GRU module"
        )
    n_layers = max(layers) + 1
    for k in range(n_layers):
        slot = layers.get(k)
        if slot is None:
            raise WeightsError(
                f"GRU layer {k} is missing: found layers {sorted(layers)}, "
                f"expected 0..{n_layers - 1} "
                f"(key '{next(iter(prefixes))}weight_ih_l{k}')"
            )
        for kind in ("weight_ih", "weight_hh"):
            if kind not in slot:
                raise WeightsError(f"GRU layer {k}: '{next(iter(prefixes))}{kind}_l{k}' is missing")
    return n_layers


def _sort_sequential(names: list[str]) -> list[str]:
    """Linear modules in insertion order; numeric siblings (``head.0``, ``head.10``) by number."""
    stems = {re.sub(r"\d+$", "", n) for n in names}
    if all(re.search(r"\d+$", n) for n in names) and len(stems) == 1:
        return sorted(names, key=_natural_key)
    return names
