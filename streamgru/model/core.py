"""GRUModel: validated GRU weights in the canonical (PyTorch) convention, plus a Linear head.

Canonical convention (docs/design.md section 5): each layer holds ``weight_ih`` (3H, I_l),
``weight_hh`` (3H, H), ``bias_ih`` (3H,), ``bias_hh`` (3H,) with gate row blocks (r, z, n), and

* reset after (PyTorch, Keras ``reset_after=True``, ONNX ``linear_before_reset=1``)::

    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))

* reset before (Keras ``reset_after=False``, ONNX ``linear_before_reset=0``)::

    n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)

and in both ``h' = (1 - z) * n + z * h``. The head is zero or more Linear layers, each followed
by an activation; with no head the output is the top layer's hidden state.

Weights are stored as float64 (exactly representing float32 sources); steppers cast them once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UnsupportedModelError, WeightsError

#: Activations a head layer may apply after its affine map.
HEAD_ACTIVATIONS = ("identity", "relu", "sigmoid", "tanh", "softmax")

#: Metadata keys with a fixed meaning (docs/design.md section 6); others are kept as given.
FORMAT_TAG = "streamgru.v1"


@dataclass(frozen=True)
class GRULayer:
    """One unidirectional GRU layer in canonical layout.

    Attributes
    ----------
    weight_ih : (3 * hidden_size, input_size) float64, gate rows (r, z, n)
    weight_hh : (3 * hidden_size, hidden_size) float64, gate rows (r, z, n)
    bias_ih : (3 * hidden_size,) float64
    bias_hh : (3 * hidden_size,) float64
    """

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray
    bias_hh: np.ndarray

    @property
    def input_size(self) -> int:
        return int(self.weight_ih.shape[1])

    @property
    def hidden_size(self) -> int:
        return int(self.weight_hh.shape[1])


@dataclass(frozen=True)
class DenseLayer:
    """One Linear layer of the head: ``activation(x @ weight.T + bias)``.

    Attributes
    ----------
    weight : (out_features, in_features) float64
    bias : (out_features,) float64
    activation : one of :data:`HEAD_ACTIVATIONS`
    """

    weight: np.ndarray
    bias: np.ndarray
    activation: str = "identity"

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])


def _raw(name: str, value: Any) -> np.ndarray:
    """``value`` as an array (no copy), refusing ragged, complex, boolean and non-numeric data."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise WeightsError(
            f"{name}: expected a numeric array, got {type(value).__name__} ({exc})"
        ) from exc
    if arr.dtype.kind not in "fiu":
        raise WeightsError(f"{name}: expected real floating-point weights, found dtype {arr.dtype}")
    return arr


def _as_float64(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Copy ``value`` to a C-contiguous float64 array of ``shape``, refusing NaN/Inf."""
    raw = _raw(name, value)
    if raw.shape != shape:
        raise WeightsError(f"{name}: expected shape {shape}, found {raw.shape}")
    arr = np.array(raw, dtype=np.float64, copy=True, order="C")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise WeightsError(
            f"{name}: weights must be finite, found {arr[tuple(bad)]} at index "
            f"{tuple(int(i) for i in bad)}"
        )
    arr.setflags(write=False)
    return arr


def _metadata_strings(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str):
            raise WeightsError(f"metadata keys must be strings, got {key!r}")
        out[key] = value if isinstance(value, str) else json.dumps(value)
    return out


@dataclass(frozen=True)
class GRUModel:
    """A validated, streamable GRU stack with an optional Linear head.

    Build one from arrays with :meth:`from_state_dict`, or load a file with
    :func:`streamgru.load_model`. Models are immutable and may be shared between threads;
    steppers (one per thread) own the state.
    """

    layers: tuple[GRULayer, ...]
    head: tuple[DenseLayer, ...] = ()
    reset_after: bool = True
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.layers:
            raise WeightsError("a GRU model needs at least one layer, got 0")
        hidden = self.layers[0].hidden_size
        if hidden < 1:
            raise WeightsError(f"hidden_size must be >= 1, got {hidden}")
        if self.layers[0].input_size < 1:
            raise WeightsError(f"input_size must be >= 1, got {self.layers[0].input_size}")
        for k, layer in enumerate(self.layers):
            expected_in = self.layers[0].input_size if k == 0 else hidden
            checks = {
                f"layer {k} weight_ih": (layer.weight_ih.shape, (3 * hidden, expected_in)),
                f"layer {k} weight_hh": (layer.weight_hh.shape, (3 * hidden, hidden)),
                f"layer {k} bias_ih": (layer.bias_ih.shape, (3 * hidden,)),
                f"layer {k} bias_hh": (layer.bias_hh.shape, (3 * hidden,)),
            }
            for name, (got, want) in checks.items():
                if tuple(got) != want:
                    raise WeightsError(f"{name}: expected shape {want}, found {tuple(got)}")
        width = hidden
        for k, dense in enumerate(self.head):
            if dense.out_features < 1:
                raise WeightsError(f"head layer {k}: expected at least 1 output, found 0")
            if dense.in_features != width:
                raise WeightsError(
                    f"head layer {k}: expected in_features {width} (the previous width), "
                    f"found {dense.in_features}"
                )
            if dense.bias.shape != (dense.out_features,):
                raise WeightsError(
                    f"head layer {k} bias: expected shape ({dense.out_features},), "
                    f"found {dense.bias.shape}"
                )
            if dense.activation not in HEAD_ACTIVATIONS:
                raise UnsupportedModelError(
                    f"head layer {k}: activation {dense.activation!r} is not supported; "
                    f"expected one of {HEAD_ACTIVATIONS}"
                )
            width = dense.out_features
        object.__setattr__(self, "metadata", _metadata_strings(self.metadata))

    # ------------------------------------------------------------------ sizes
    @property
    def input_size(self) -> int:
        """Features per sample, I."""
        return self.layers[0].input_size

    @property
    def hidden_size(self) -> int:
        """Units per GRU layer, H."""
        return self.layers[0].hidden_size

    @property
    def num_layers(self) -> int:
        """Stacked GRU layers, L."""
        return len(self.layers)

    @property
    def output_size(self) -> int:
        """Values returned per sample: the head's last width, or H without a head."""
        return self.head[-1].out_features if self.head else self.hidden_size

    @property
    def n_params(self) -> int:
        """Number of scalar parameters (GRU and head)."""
        total = 0
        for layer in self.layers:
            total += layer.weight_ih.size + layer.weight_hh.size
            total += layer.bias_ih.size + layer.bias_hh.size
        for dense in self.head:
            total += dense.weight.size + dense.bias.size
        return int(total)

    # --------------------------------------------------------------- metadata
    def meta_json(self, key: str, default: Any = None) -> Any:
        """A metadata value decoded from JSON (plain strings come back as they are)."""
        if key not in self.metadata:
            return default
        raw = self.metadata[key]
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, TypeError, RecursionError):
            return raw

    @property
    def fs(self) -> float | None:
        """Sample rate in Hz the model was trained at, if recorded."""
        value = self.meta_json("fs")
        return None if value is None else float(value)

    @property
    def channels(self) -> int | None:
        """Input channel count the model expects, if recorded (usually input_size)."""
        value = self.meta_json("channels")
        if value is None:
            return None
        return len(value) if isinstance(value, list) else int(value)

    def checksum(self) -> str:
        """SHA-256 (hex) over the architecture and the float64 weights, independent of metadata."""
        digest = hashlib.sha256()
        digest.update(
            f"L={self.num_layers};I={self.input_size};H={self.hidden_size};"
            f"reset_after={self.reset_after};head={[d.activation for d in self.head]}".encode()
        )
        for layer in self.layers:
            for arr in (layer.weight_ih, layer.weight_hh, layer.bias_ih, layer.bias_hh):
                digest.update(np.ascontiguousarray(arr, dtype="<f8").tobytes())
        for dense in self.head:
            for arr in (dense.weight, dense.bias):
                digest.update(np.ascontiguousarray(arr, dtype="<f8").tobytes())
        return digest.hexdigest()

    # ------------------------------------------------------------ state dicts
    def state_dict(self, prefix: str = "gru.", head_prefix: str = "fc") -> dict[str, np.ndarray]:
        """Arrays under PyTorch ``state_dict`` names (``gru.weight_ih_l0``, ``fc.weight``, ...).

        A single head layer is ``fc.weight`` / ``fc.bias``; several are ``fc.0.weight``, ...
        """
        out: dict[str, np.ndarray] = {}
        for k, layer in enumerate(self.layers):
            out[f"{prefix}weight_ih_l{k}"] = layer.weight_ih
            out[f"{prefix}weight_hh_l{k}"] = layer.weight_hh
            out[f"{prefix}bias_ih_l{k}"] = layer.bias_ih
            out[f"{prefix}bias_hh_l{k}"] = layer.bias_hh
        for k, dense in enumerate(self.head):
            name = head_prefix if len(self.head) == 1 else f"{head_prefix}.{k}"
            out[f"{name}.weight"] = dense.weight
            out[f"{name}.bias"] = dense.bias
        return out

    def native_metadata(self) -> dict[str, str]:
        """The metadata written to native files: user keys plus the architecture keys."""
        meta = dict(self.metadata)
        meta["streamgru.format"] = FORMAT_TAG
        meta.setdefault("convention", "pytorch")
        meta["reset"] = "after" if self.reset_after else "before"
        meta["head_activations"] = json.dumps([d.activation for d in self.head])
        if self.head:
            meta["head_activation"] = self.head[-1].activation
        return meta

    @classmethod
    def from_state_dict(
        cls,
        mapping: Mapping[str, Any],
        convention: str = "pytorch",
        metadata: Mapping[str, Any] | None = None,
    ) -> GRUModel:
        """Build a model from arrays named as in a PyTorch ``state_dict``.

        Parameters
        ----------
        mapping : mapping of str to array-like
            ``[prefix]weight_ih_l{k}``, ``weight_hh_l{k}``, optional ``bias_ih_l{k}`` /
            ``bias_hh_l{k}`` for every layer k (any common prefix, e.g. ``gru.``), or the
            un-suffixed ``weight_ih`` / ``weight_hh`` of an ``nn.GRUCell``; then Linear layers as
            ``<name>.weight`` (out, in) and ``<name>.bias`` in order (insertion order, with
            numeric parts of names compared as numbers).
        convention : {"pytorch", "pytorch-reset-before"}
            Gate rows (r, z, n) with reset applied after (PyTorch) or before the recurrent product.
        metadata : mapping, optional
            Extra metadata. ``head_activations`` (a JSON list, one per head layer) sets the head's
            activations; otherwise ``head_activation`` applies to the last layer, and a head of
            several layers without that information is refused.
        """
        from .conventions import split_state_dict

        if convention not in ("pytorch", "pytorch-reset-before"):
            raise WeightsError(
                f"convention must be 'pytorch' or 'pytorch-reset-before', got {convention!r}; "
                "other frameworks' layouts are mapped by their importers"
            )
        meta = _metadata_strings(metadata)
        gru_keys, head_names = split_state_dict(mapping)
        layers = _gru_layers(mapping, gru_keys)
        activations = _head_activations(meta, len(head_names))
        head = [_dense_layer(mapping, name, act) for name, act in zip(head_names, activations)]
        meta.pop("streamgru.format", None)
        meta.pop("head_activations", None)
        meta.pop("head_activation", None)
        meta.pop("reset", None)
        return cls(
            layers=tuple(layers),
            head=tuple(head),
            reset_after=(convention == "pytorch"),
            metadata=meta,
        )

    # ---------------------------------------------------------------- actions
    def save(self, path) -> None:
        """Write native ``.safetensors`` (or ``.npz`` by extension) with metadata."""
        from .formats import save_native

        save_native(self, path)

    def stepper(self, dtype="float32", n_streams: int | None = None, device: str = "cpu", **kwargs):
        """A state owner over this model.

        ``n_streams=None`` gives a :class:`streamgru.Stepper` (one stream); an integer gives a
        :class:`streamgru.BatchStepper` of that many independent streams on ``device``
        ("cpu", "cuda" or "auto"). Extra keyword arguments go to the stepper (e.g. ``filter``).
        """
        from ..engine import BatchStepper, Stepper

        if n_streams is None:
            if device != "cpu":
                raise WeightsError(
                    f"device={device!r} needs n_streams: a single stream always runs on the CPU"
                )
            return Stepper(self, dtype=dtype, **kwargs)
        return BatchStepper(self, n_streams=n_streams, dtype=dtype, device=device, **kwargs)

    def forward(self, x: np.ndarray, h0: np.ndarray | None = None) -> np.ndarray:
        """Reference float64 run over a whole sequence, in plain numpy (slow, obviously correct).

        Parameters
        ----------
        x : (T, input_size) array
        h0 : (num_layers, hidden_size) array, optional

        Returns
        -------
        (T, output_size) float64: the output after every sample.
        """
        from .reference import forward_reference

        return forward_reference(self, x, h0)

    def __repr__(self) -> str:
        return (
            f"GRUModel(input_size={self.input_size}, hidden_size={self.hidden_size}, "
            f"num_layers={self.num_layers}, output_size={self.output_size}, "
            f"reset={'after' if self.reset_after else 'before'}, "
            f"head={[d.activation for d in self.head]})"
        )


def _zeros(n: int) -> np.ndarray:
    arr = np.zeros(n, dtype=np.float64)
    arr.setflags(write=False)
    return arr


def _head_activations(meta: dict[str, str], n_head: int) -> list[str]:
    if "head_activations" in meta:
        try:
            acts = json.loads(meta["head_activations"])
        except (json.JSONDecodeError, RecursionError) as exc:
            raise WeightsError(
                "metadata head_activations: expected a JSON list of names, "
                f"got {meta['head_activations']!r}"
            ) from exc
        names_ok = isinstance(acts, list) and all(isinstance(a, str) for a in acts)
        if not names_ok or len(acts) != n_head:
            raise WeightsError(
                f"metadata head_activations: expected a list of {n_head} activation names, "
                f"got {acts!r}"
            )
        return acts
    last = meta.get("head_activation", "identity")
    if n_head > 1:
        raise WeightsError(
            f"the head has {n_head} Linear layers but the file does not say which activations sit "
            "between them; pass metadata={'head_activations': '[\"relu\", \"identity\"]'} "
            "(one per layer)"
        )
    return [last] * n_head


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function (float64 reference)."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _gru_layers(mapping: Mapping[str, Any], gru_keys: list[dict[str, str]]) -> list[GRULayer]:
    """The GRU layers of a ``state_dict``: float64 copies, shapes checked against (3H, H)."""
    layers = []
    hidden = None
    for k, keys in enumerate(gru_keys):
        w_hh_raw = _raw(keys["weight_hh"], mapping[keys["weight_hh"]])
        if w_hh_raw.ndim != 2 or w_hh_raw.shape[0] != 3 * w_hh_raw.shape[1]:
            raise WeightsError(
                f"{keys['weight_hh']}: expected shape (3*H, H), found {w_hh_raw.shape}"
            )
        hidden = int(w_hh_raw.shape[1]) if hidden is None else hidden
        w_ih_raw = _raw(keys["weight_ih"], mapping[keys["weight_ih"]])
        in_size = int(w_ih_raw.shape[1]) if (k == 0 and w_ih_raw.ndim == 2) else hidden
        g = 3 * hidden
        layers.append(
            GRULayer(
                weight_ih=_as_float64(keys["weight_ih"], w_ih_raw, (g, in_size)),
                weight_hh=_as_float64(keys["weight_hh"], w_hh_raw, (g, hidden)),
                bias_ih=_as_float64(keys["bias_ih"], mapping[keys["bias_ih"]], (g,))
                if keys.get("bias_ih")
                else _zeros(g),
                bias_hh=_as_float64(keys["bias_hh"], mapping[keys["bias_hh"]], (g,))
                if keys.get("bias_hh")
                else _zeros(g),
            )
        )
    return layers


def _dense_layer(mapping: Mapping[str, Any], name: str, activation: str) -> DenseLayer:
    """Head layer ``name`` of a ``state_dict``: ``name.weight`` (out, in), optional bias."""
    w_raw = _raw(f"{name}.weight", mapping[f"{name}.weight"])
    if w_raw.ndim != 2:
        raise WeightsError(
            f"{name}.weight: expected a 2-D (out, in) array, found shape {w_raw.shape}"
        )
    weight = _as_float64(f"{name}.weight", w_raw, tuple(int(s) for s in w_raw.shape))
    bias_key = f"{name}.bias"
    bias = (
        _as_float64(bias_key, mapping[bias_key], (weight.shape[0],))
        if bias_key in mapping
        else _zeros(weight.shape[0])
    )
    return DenseLayer(weight=weight, bias=bias, activation=activation)
