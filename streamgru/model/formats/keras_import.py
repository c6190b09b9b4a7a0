"""Keras importer: ``.keras`` (Keras 3 zip) and legacy ``.h5`` models of GRU layers + Dense head.

Keras stores a GRU's kernels transposed with respect to PyTorch, gate *columns* in the order
(z, r, h): ``kernel`` (I, 3H), ``recurrent_kernel`` (H, 3H), and ``bias`` of shape (2, 3H) =
[input; recurrent] when ``reset_after=True`` (the Keras 3 default) or (3H,) when
``reset_after=False``. The mapping to the canonical layout is: transpose, reorder (z, r, h) to
(r, z, n). ``reset_after=True`` is PyTorch's cell; ``reset_after=False`` applies the reset gate
before the recurrent product, ``n = tanh(W_n x + b_n + U_n (r * h))``, which is the
``"pytorch-reset-before"`` convention with the 1-D bias as input bias and a zero recurrent bias.

The files are read with ``zipfile`` + ``h5py`` only: keras is never imported and nothing from the
file is executed (a ``Lambda`` layer is refused). Only a chain is accepted: ``InputLayer``, GRU
layers, then ``Dense`` layers (``Activation`` / ``ReLU`` / ``Softmax`` layers fold into the Dense
before them; ``Dropout`` and noise layers are identities at inference). ``go_backwards``,
``Bidirectional``, activations other than tanh / sigmoid (notably ``hard_sigmoid``, whose
definition changed between Keras 2 and 3) are refused by name.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UnsupportedModelError, WeightsError, require
from ..conventions import zrh_to_rzn
from ..core import GRUModel
from .keras_files import (
    _ArchiveWeights,
    _legacy_config,
    _LegacyWeights,
    _open_h5,
    _read,
    _read_archive,
)

#: Dense / Activation names and what the head calls them.
KERAS_ACTIVATIONS = {
    None: "identity",
    "linear": "identity",
    "relu": "relu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softmax": "softmax",
}
#: Layers that are identities at inference time.
PASS_THROUGH = ("Dropout", "GaussianNoise", "GaussianDropout", "ActivityRegularization")


def load_keras(path: str | os.PathLike) -> GRUModel:
    """Load a Keras ``.keras`` or legacy ``.h5`` model (GRU layers + Dense head).

    Returns
    -------
    GRUModel, float64 weights, reset-after for ``reset_after=True`` and reset-before otherwise;
    ``metadata["mapping"]`` says what was done.

    Raises
    ------
    WeightsError
        unreadable, truncated, oversized or hostile files; layers that cannot be mapped (named).
    UnsupportedModelError
        ``go_backwards``, ``Bidirectional``, activations other than tanh / sigmoid.
    MissingDependencyError
        h5py is not installed.
    """
    h5py = require("h5py", "keras", "loading Keras .h5 / .keras files")
    path = Path(path)
    try:
        if path.suffix.lower() == ".keras":
            config, weights_bytes, version = _read_archive(path)
            with _open_h5(h5py, path, io.BytesIO(weights_bytes)) as h5:
                return _build(h5py, config, _ArchiveWeights(h5py, h5), version)
        with _open_h5(h5py, path, path) as h5:
            config, version = _legacy_config(h5)
            return _build(h5py, config, _LegacyWeights(h5py, h5), version)
    except WeightsError as exc:
        raise type(exc)(f"{path}: {exc}") from exc
    except (OSError, KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        # h5py on a corrupted file, or a config of the wrong shape (e.g. a list for a dict)
        raise WeightsError(f"{path}: unreadable Keras file: {type(exc).__name__}: {exc}") from exc
    except MemoryError as exc:  # under a memory limit: still a clear error naming the file
        raise WeightsError(f"{path}: not enough memory to read the Keras file") from exc


# ---------------------------------------------------------------------- config
def _layer_chain(config: Any) -> list[dict[str, Any]]:
    """The model's layers in data order; refuses anything but a single chain."""
    if not isinstance(config, dict):
        raise WeightsError(f"model config: expected a JSON object, found {type(config).__name__}")
    cls = config.get("class_name")
    body = config.get("config")
    layers = (
        body
        if isinstance(body, list)
        else (body or {}).get("layers")
        if isinstance(body, dict)
        else None
    )
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise WeightsError(
            f"model config: expected a Sequential or Functional model with a 'layers' list, "
            f"found class {cls!r}"
        )
    if cls == "Sequential":
        return layers
    if cls not in ("Functional", "Model"):
        raise WeightsError(
            f"model class {cls!r} cannot be read from its config (subclassed models hold code); "
            "build the model as keras.Sequential or with the functional API"
        )
    for k, layer in enumerate(layers[1:], start=1):
        inbound = _inbound(layer)
        expected = _layer_name(layers[k - 1])
        if inbound != [expected]:
            raise WeightsError(
                f"layer {_layer_name(layer)!r} reads {inbound}, expected only {expected!r}: "
                "streamgru maps a chain of layers (no branches, skips or multiple inputs)"
            )
    return layers


def _config_of(layer: dict[str, Any]) -> dict[str, Any]:
    """A layer's ``config`` table ({} when absent or not a table)."""
    cfg = layer.get("config")
    return cfg if isinstance(cfg, dict) else {}


def _layer_name(layer: dict[str, Any]) -> str:
    cfg = _config_of(layer)
    return str(layer.get("name") or cfg.get("name") or "?")


def _inbound(layer: dict[str, Any]) -> list[str]:
    """Names of the layers feeding ``layer`` (Keras 2 and Keras 3 config formats)."""
    nodes = layer.get("inbound_nodes") or []
    if len(nodes) > 1:
        return [f"<{len(nodes)} calls: a shared layer>"]
    names: list[str] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            if "keras_history" in obj:
                names.append(str(obj["keras_history"][0]))
                return
            for value in obj.values():
                walk(value)
        elif isinstance(obj, list):
            if len(obj) >= 3 and isinstance(obj[0], str) and isinstance(obj[1], int):
                names.append(obj[0])  # Keras 2: [name, node_index, tensor_index, kwargs]
                return
            for value in obj:
                walk(value)

    walk(nodes)
    return names


def _activation_name(value: Any, where: str) -> str:
    if isinstance(value, dict):  # {"class_name": "function", "config": "relu", ...}
        value = (
            value.get("config") if isinstance(value.get("config"), str) else value.get("class_name")
        )
    if value not in KERAS_ACTIVATIONS:
        raise UnsupportedModelError(
            f"{where}: activation {value!r} is not supported; expected one of "
            f"{[k for k in KERAS_ACTIVATIONS if k]}"
        )
    return KERAS_ACTIVATIONS[value]


# ----------------------------------------------------------------------- build
def _build(h5py, config: Any, weights, version: str) -> GRUModel:
    layers = _layer_chain(config)
    state: dict[str, np.ndarray] = {}
    activations: list[str] = []
    open_dense = False
    width: int | None = None
    n_gru = n_dense = 0
    resets: set[bool] = set()
    ordinals: dict[str, int] = {}
    for layer in layers:
        cls = str(layer.get("class_name"))
        cfg = _config_of(layer)
        name = _layer_name(layer)
        where = f"layer {name!r} ({cls})"
        ordinal = ordinals.get(cls, 0)
        ordinals[cls] = ordinal + 1
        if cls == "InputLayer" or cls in PASS_THROUGH:
            continue
        if cls == "GRU":
            if n_dense:
                raise WeightsError(f"{where} comes after a Dense layer; expected GRU layers first")
            arrays, reset_after = _gru(h5py, weights.layer(name, cls, ordinal), cfg, where, width)
            resets.add(reset_after)
            if len(resets) > 1:
                raise UnsupportedModelError(
                    f"{where}: all GRU layers must share one reset_after setting"
                )
            for key, value in arrays.items():
                state[f"gru.{key}_l{n_gru}"] = value
            width = arrays["weight_hh"].shape[1]
            n_gru += 1
        elif cls == "Dense":
            if not n_gru:
                raise WeightsError(f"{where} comes before any GRU layer")
            weight, bias = _dense(h5py, weights.layer(name, cls, ordinal), cfg, where, width)
            state[f"head.{n_dense}.weight"] = weight
            state[f"head.{n_dense}.bias"] = bias
            activations.append(_activation_name(cfg.get("activation"), where))
            open_dense = activations[-1] == "identity"
            width = weight.shape[0]
            n_dense += 1
        elif cls in ("Activation", "ReLU", "Softmax"):
            act = _activation_layer(cls, cfg, where)
            if not open_dense:
                raise WeightsError(
                    f"{where} does not follow a Dense layer without activation; streamgru maps "
                    "a GRU stack and Dense layers each with one activation"
                )
            activations[-1] = act
            open_dense = act == "identity"
        else:
            _refuse_layer(cls, where)
    if not n_gru:
        raise WeightsError("no GRU layer found in the model config")
    reset_after = resets.pop()
    meta = {
        "mapping": _mapping_text(reset_after, n_gru, n_dense),
        "source_format": "keras",
        "head_activations": json.dumps(activations),
    }
    if version:
        meta["keras_version"] = version
    convention = "pytorch" if reset_after else "pytorch-reset-before"
    return GRUModel.from_state_dict(state, convention=convention, metadata=meta)


def _refuse_layer(cls: str, where: str) -> None:
    """Raise the error that says why a layer of class ``cls`` cannot be mapped."""
    if cls == "Lambda":
        raise WeightsError(
            f"{where}: a Lambda layer holds Python code; streamgru never runs code from a file"
        )
    if cls == "Bidirectional":
        raise UnsupportedModelError(
            f"{where}: a bidirectional GRU reads the future, so it cannot run sample by sample"
        )
    raise WeightsError(
        f"{where} cannot be mapped: streamgru reads InputLayer, GRU, Dense, Activation, "
        f"ReLU, Softmax and {', '.join(PASS_THROUGH)} layers"
    )


def _mapping_text(reset_after: bool, n_gru: int, n_dense: int) -> str:
    """What the import did, for ``metadata["mapping"]``."""
    return (
        "keras GRU kernel (I,3H) / recurrent_kernel (H,3H) transposed, "
        "columns z,r,h -> rows r,z,n; "
        + (
            "bias (2,3H) = [input; recurrent]; reset_after=True (reset after)"
            if reset_after
            else "bias (3H,) as input bias, zero recurrent bias; reset_after=False (reset before)"
        )
        + f"; {n_gru} GRU layer(s)"
        + (f"; {n_dense} Dense layer(s), kernel (in,out) transposed" if n_dense else "")
    )


def _roles(
    entries: list[tuple[str, Any]], roles: tuple[str, ...], where: str
) -> dict[str, tuple[str, Any]]:
    """Assign datasets to roles by order, checking the names when the file gives them."""
    if len(entries) != len(roles):
        raise WeightsError(
            f"{where}: expected weights {list(roles)}, found {[n for n, _ in entries]}"
        )
    out = {}
    for role, (name, ds) in zip(roles, entries):
        base = name.rsplit("/", 1)[-1].split(":")[0]
        if not base.isdigit() and base != role:
            raise WeightsError(f"{where}: expected weight {role!r}, found {name!r}")
        out[role] = (f"{name} ({role})" if base.isdigit() else name, ds)
    return out


def _gru(
    h5py, entries, cfg: dict, where: str, width: int | None
) -> tuple[dict[str, np.ndarray], bool]:
    """Canonical (r, z, n) arrays of one Keras GRU layer and its reset_after flag."""
    if cfg.get("go_backwards"):
        raise UnsupportedModelError(
            f"{where}: go_backwards=True reads the sequence from the end, so it cannot stream"
        )
    for key, want in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
        got = cfg.get(key, want)
        got = got.get("config", got) if isinstance(got, dict) else got
        if got != want:
            extra = (
                " (its definition changed between Keras 2 and Keras 3, so it is refused rather "
                "than guessed)"
                if got == "hard_sigmoid"
                else ""
            )
            raise UnsupportedModelError(
                f"{where}: {key}={got!r} is not supported; expected {want!r}{extra}"
            )
    use_bias = bool(cfg.get("use_bias", True))
    roles = ("kernel", "recurrent_kernel", "bias") if use_bias else ("kernel", "recurrent_kernel")
    found = _roles(entries, roles, where)
    hidden = cfg.get("units")
    rk_name, rk_ds = found["recurrent_kernel"]
    if not isinstance(hidden, int) or hidden < 1:
        raise WeightsError(f"{where}: config 'units' must be a positive integer, found {hidden!r}")
    k_name, k_ds = found["kernel"]
    in_size = width if width is not None else int((k_ds.shape or (0,))[0])
    kernel = _read(h5py, k_ds, k_name, (in_size, 3 * hidden))
    recurrent = _read(h5py, rk_ds, rk_name, (hidden, 3 * hidden))
    reset_after = cfg.get("reset_after")
    if use_bias:
        b_name, b_ds = found["bias"]
        if reset_after is None:  # very old configs: the bias shape tells
            reset_after = len(b_ds.shape or ()) == 2
        bias = _read(h5py, b_ds, b_name, (2, 3 * hidden) if reset_after else (3 * hidden,))
        bias_ih, bias_hh = (bias[0], bias[1]) if reset_after else (bias, np.zeros(3 * hidden))
    else:
        if reset_after is None:
            raise WeightsError(f"{where}: config has no 'reset_after' and no bias to infer it from")
        bias_ih = bias_hh = np.zeros(3 * hidden)
    arrays = {
        "weight_ih": zrh_to_rzn(kernel.T, axis=0),
        "weight_hh": zrh_to_rzn(recurrent.T, axis=0),
        "bias_ih": zrh_to_rzn(bias_ih),
        "bias_hh": zrh_to_rzn(bias_hh),
    }
    return arrays, bool(reset_after)


def _dense(
    h5py, entries, cfg: dict, where: str, width: int | None
) -> tuple[np.ndarray, np.ndarray]:
    units = cfg.get("units")
    if not isinstance(units, int) or units < 1:
        raise WeightsError(f"{where}: config 'units' must be a positive integer, found {units!r}")
    use_bias = bool(cfg.get("use_bias", True))
    found = _roles(entries, ("kernel", "bias") if use_bias else ("kernel",), where)
    k_name, k_ds = found["kernel"]
    kernel = _read(h5py, k_ds, k_name, (int(width or 0), units))
    bias = (
        _read(h5py, found["bias"][1], found["bias"][0], (units,)) if use_bias else np.zeros(units)
    )
    return kernel.T, bias


def _activation_layer(cls: str, cfg: dict, where: str) -> str:
    if cls == "Activation":
        return _activation_name(cfg.get("activation"), where)
    if cls == "ReLU":
        plain = (
            cfg.get("max_value") is None
            and float(cfg.get("negative_slope", 0.0) or 0.0) == 0.0
            and float(cfg.get("threshold", 0.0) or 0.0) == 0.0
        )
        if not plain:
            raise UnsupportedModelError(
                f"{where}: only a plain ReLU (no max_value, slope, threshold)"
            )
        return "relu"
    axis = cfg.get("axis", -1)
    if axis not in (-1, [-1]):
        raise UnsupportedModelError(
            f"{where}: softmax over axis {axis}; only the last axis can be mapped"
        )
    return "softmax"
