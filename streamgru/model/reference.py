"""A slow, obviously correct float64 numpy run of a GRUModel: the oracle for the kernels' tests."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def apply_activation(name: str, x: np.ndarray) -> np.ndarray:
    """Apply a head activation by name to a 1-D float64 vector."""
    if name == "identity":
        return x
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "sigmoid":
        return _sigmoid(x)
    if name == "tanh":
        return np.tanh(x)
    if name == "softmax":
        e = np.exp(x - np.max(x, axis=-1, keepdims=True))
        return e / np.sum(e, axis=-1, keepdims=True)
    raise ValueError(f"unknown activation {name!r}")


def gru_cell_reference(layer, x: np.ndarray, h: np.ndarray, reset_after: bool) -> np.ndarray:
    """One GRU step in float64: x (I,), h (H,) -> h' (H,)."""
    hidden = h.shape[0]
    gx = layer.weight_ih @ x + layer.bias_ih
    w_hh, b_hh = layer.weight_hh, layer.bias_hh
    gh_rz = w_hh[: 2 * hidden] @ h + b_hh[: 2 * hidden]
    r = _sigmoid(gx[:hidden] + gh_rz[:hidden])
    z = _sigmoid(gx[hidden : 2 * hidden] + gh_rz[hidden:])
    if reset_after:
        n = np.tanh(gx[2 * hidden :] + r * (w_hh[2 * hidden :] @ h + b_hh[2 * hidden :]))
    else:
        n = np.tanh(gx[2 * hidden :] + w_hh[2 * hidden :] @ (r * h) + b_hh[2 * hidden :])
    return (1.0 - z) * n + z * h


def head_reference(model, top: np.ndarray) -> np.ndarray:
    """The head on one top-layer hidden state (H,) -> (output_size,)."""
    y = top
    for dense in model.head:
        y = apply_activation(dense.activation, dense.weight @ y + dense.bias)
    return y


def forward_reference(model, x: np.ndarray, h0: np.ndarray | None = None) -> np.ndarray:
    """Run ``model`` over ``x`` (T, I) from ``h0`` (L, H); returns (T, output_size) float64."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1 and model.input_size == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != model.input_size:
        raise ShapeError(f"x: expected shape (T, {model.input_size}), got {x.shape}")
    h = (
        np.zeros((model.num_layers, model.hidden_size))
        if h0 is None
        else np.array(h0, dtype=np.float64).reshape(model.num_layers, model.hidden_size)
    )
    out = np.empty((x.shape[0], model.output_size))
    for t in range(x.shape[0]):
        inp = x[t]
        for k, layer in enumerate(model.layers):
            h[k] = gru_cell_reference(layer, inp, h[k], model.reset_after)
            inp = h[k]
        out[t] = head_reference(model, inp)
    return out
