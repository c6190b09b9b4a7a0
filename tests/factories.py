"""Seeded random models for tests (no framework needed)."""

from __future__ import annotations

import json

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
