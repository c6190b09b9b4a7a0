"""Seeded random models for tests (no framework needed)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

import streamgru as sg


def random_model(
    input_size: int = 3,
    hidden_size: int = 8,
    num_layers: int = 1,
    head: tuple[tuple[int, str], ...] = ((2, "identity"),),
    reset_after: bool = True,
    seed: int = 0,
    scale: float = 0.5,
    float32_exact: bool = True,
) -> sg.GRUModel:
    """A GRU stack with a head of Linear layers given as ((out_features, activation), ...)."""
    rng = np.random.default_rng(seed)

    def arr(*shape):
        a = rng.normal(scale=scale, size=shape)
        return a.astype(np.float32).astype(np.float64) if float32_exact else a

    sd = {}
    for k in range(num_layers):
        in_size = input_size if k == 0 else hidden_size
        sd[f"gru.weight_ih_l{k}"] = arr(3 * hidden_size, in_size)
        sd[f"gru.weight_hh_l{k}"] = arr(3 * hidden_size, hidden_size)
        sd[f"gru.bias_ih_l{k}"] = arr(3 * hidden_size)
        sd[f"gru.bias_hh_l{k}"] = arr(3 * hidden_size)
    width = hidden_size
    for k, (out, _act) in enumerate(head):
        sd[f"fc.{k}.weight"] = arr(out, width)
        sd[f"fc.{k}.bias"] = arr(out)
        width = out
    meta = {"head_activations": json.dumps([act for _out, act in head])}
    convention = "pytorch" if reset_after else "pytorch-reset-before"
    return sg.GRUModel.from_state_dict(sd, convention=convention, metadata=meta)


#: The model shapes the engine tests run over (both reset variants, heads, several layers).
ENGINE_MODELS = {
    "after-1L": dict(input_size=3, hidden_size=8, num_layers=1),
    "before-1L": dict(input_size=3, hidden_size=8, num_layers=1, reset_after=False),
    "after-3L-relu-sigmoid": dict(
        input_size=5, hidden_size=6, num_layers=3, head=((4, "relu"), (2, "sigmoid"))
    ),
    "before-2L-tanh-softmax": dict(
        input_size=1,
        hidden_size=7,
        num_layers=2,
        reset_after=False,
        head=((5, "tanh"), (3, "softmax")),
    ),
    "no-head": dict(input_size=2, hidden_size=5, num_layers=2, head=()),
    "wide": dict(input_size=8, hidden_size=64, num_layers=1, head=((1, "sigmoid"),), scale=0.125),
}


KERAS_RESET_AFTER = Path(__file__).parent / "data" / "keras_reset_after.keras"


def rewrite_keras(
    h5py,
    dst: Path,
    edit_config=None,
    edit_weights=None,
    src: Path = KERAS_RESET_AFTER,
) -> Path:
    """A copy of a ``.keras`` archive with its config (dict) and/or weights (h5py.File) edited."""
    with zipfile.ZipFile(src) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    if edit_config is not None:
        config = json.loads(members["config.json"])
        edit_config(config)
        members["config.json"] = json.dumps(config).encode()
    if edit_weights is not None:
        buf = io.BytesIO(members["model.weights.h5"])
        with h5py.File(buf, "r+") as h5:
            edit_weights(h5)
        members["model.weights.h5"] = buf.getvalue()
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return dst
