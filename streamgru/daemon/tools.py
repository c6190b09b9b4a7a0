"""The first commands a user runs with a weights file: ``streamgru info`` and ``streamgru convert``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..errors import WeightsError
from ..model.formats import load_model


def describe_model(model) -> dict:
    """A JSON-safe description of a model: sizes, layers, head, metadata, parameter count."""
    return {
        "input_size": model.input_size,
        "hidden_size": model.hidden_size,
        "num_layers": model.num_layers,
        "output_size": model.output_size,
        "reset": "after" if model.reset_after else "before",
        "convention": model.metadata.get("convention", "pytorch"),
        "layers": [
            {"index": k, "input_size": layer.input_size, "hidden_size": layer.hidden_size}
            for k, layer in enumerate(model.layers)
        ],
        "head": [
            {
                "in_features": d.in_features,
                "out_features": d.out_features,
                "activation": d.activation,
            }
            for d in model.head
        ],
        "n_params": model.n_params,
        "checksum_sha256": model.checksum(),
        "metadata": dict(model.metadata),
    }


def info_command(path: str, as_json: bool = False) -> int:
    """Print what a weights file holds; returns the exit code."""
    model = load_model(path)
    desc = describe_model(model)
    if as_json:
        print(json.dumps(desc, indent=2, sort_keys=True))
        return 0
    print(f"{path}")
    print(
        f"  GRU: input_size={desc['input_size']} hidden_size={desc['hidden_size']} "
        f"num_layers={desc['num_layers']} reset={desc['reset']} convention={desc['convention']}"
    )
    for layer in desc["layers"]:
        print(f"    layer {layer['index']}: {layer['input_size']} -> {layer['hidden_size']}")
    if desc["head"]:
        for k, dense in enumerate(desc["head"]):
            print(
                f"  head {k}: Linear {dense['in_features']} -> {dense['out_features']}, {dense['activation']}"
            )
    else:
        print("  head: none (outputs the top layer's hidden state)")
    print(f"  output_size={desc['output_size']} parameters={desc['n_params']}")
    print(f"  sha256={desc['checksum_sha256']}")
    if desc["metadata"]:
        print("  metadata:")
        for key in sorted(desc["metadata"]):
            value = desc["metadata"][key]
            shown = value if len(value) <= 100 else value[:97] + "..."
            print(f"    {key}: {shown}")
    return 0


def verify_same_outputs(a, b, n_samples: int = 512, seed: int = 0) -> float:
    """Max |a - b| of two models' float64 streaming outputs on the same random input."""
    if (a.input_size, a.output_size) != (b.input_size, b.output_size):
        raise WeightsError(
            f"converted model has sizes (in={b.input_size}, out={b.output_size}), "
            f"expected (in={a.input_size}, out={a.output_size})"
        )
    x = np.random.default_rng(seed).standard_normal((n_samples, a.input_size))
    ya = a.stepper(dtype="float64").step_chunk(x)
    yb = b.stepper(dtype="float64").step_chunk(x)
    return float(np.max(np.abs(ya - yb))) if n_samples else 0.0


def convert_command(src: str, dst: str, n_samples: int = 512, atol: float = 1e-5) -> int:
    """Convert ``src`` to native ``dst`` and verify both give the same outputs."""
    model = load_model(src)
    dst_path = Path(dst)
    if dst_path.suffix.lower() not in (".safetensors", ".npz"):
        raise WeightsError(f"{dst}: the output must end in .safetensors or .npz")
    model.save(dst_path)
    reloaded = load_model(dst_path)
    diff = verify_same_outputs(model, reloaded, n_samples=n_samples)
    print(
        f"converted {src} -> {dst}: {model.num_layers} layer(s), H={model.hidden_size}, "
        f"{model.n_params} parameters; max |difference| on {n_samples} random samples = {diff:.3g}"
    )
    if diff > atol:
        print(f"error: difference {diff:.3g} exceeds the tolerance {atol:g}", file=sys.stderr)
        return 1
    return 0
