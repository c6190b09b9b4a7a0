"""Models for benchmarks: seeded random models of a given size, and a model's description.

>>> m = random_model(8, 64, 1)
>>> (m.input_size, m.hidden_size, m.num_layers, m.output_size)
(8, 64, 1, 1)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from ..model.core import GRUModel

#: ``--size`` when neither a model file nor a size is given: I=8, H=64, L=1.
DEFAULT_SIZE = (8, 64, 1)


def random_model(
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    output_size: int | None = 1,
    seed: int = 0,
    reset_after: bool = True,
) -> GRUModel:
    """A GRU stack with a Linear head, weights drawn like PyTorch's default initialisation.

    Every weight and bias is uniform in ±1/sqrt(hidden_size), drawn from
    ``numpy.random.default_rng(seed)``: the same numbers for the same arguments.
    ``output_size=None`` leaves the head out.
    """
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(hidden_size)
    g = 3 * hidden_size
    state: dict[str, np.ndarray] = {}
    for k in range(num_layers):
        in_size = input_size if k == 0 else hidden_size
        state[f"gru.weight_ih_l{k}"] = rng.uniform(-bound, bound, (g, in_size))
        state[f"gru.weight_hh_l{k}"] = rng.uniform(-bound, bound, (g, hidden_size))
        state[f"gru.bias_ih_l{k}"] = rng.uniform(-bound, bound, g)
        state[f"gru.bias_hh_l{k}"] = rng.uniform(-bound, bound, g)
    if output_size is not None:
        state["fc.weight"] = rng.uniform(-bound, bound, (output_size, hidden_size))
        state["fc.bias"] = rng.uniform(-bound, bound, output_size)
    convention = "pytorch" if reset_after else "pytorch-reset-before"
    return GRUModel.from_state_dict(state, convention=convention, metadata={"trained_on": "random"})


def parse_size(text: str) -> tuple[int, int, int]:
    """``"I,H,L"`` (or ``"I,H"`` for one layer) to integers, each >= 1."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 2:
        values.append(1)
    if len(values) != 3 or min(values) < 1:
        raise ConfigError(
            f"--size: expected I,H,L as positive integers (e.g. 8,64,1), got {text!r}"
        )
    return values[0], values[1], values[2]


def describe_model(model: GRUModel, source: str) -> dict[str, Any]:
    """The model part of a report: where it came from, its sizes and its checksum."""
    return {
        "source": source,
        "input_size": model.input_size,
        "hidden_size": model.hidden_size,
        "num_layers": model.num_layers,
        "output_size": model.output_size,
        "reset": "after" if model.reset_after else "before",
        "head": [d.activation for d in model.head],
        "n_params": model.n_params,
        "checksum": model.checksum(),
        "fs": model.fs,
    }
