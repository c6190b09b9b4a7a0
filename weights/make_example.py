"""Write ``weights/example_tiny.safetensors``: a tiny random GRU for quickstarts and smoke tests.

I=1, H=8, L=1, Linear 8 -> 1 with a sigmoid head; metadata fs=360, channels ["MLII"], the
``ecg-monitor`` filter chain (mains 60 Hz). The weights are random (seeded numpy, uniform in
±1/sqrt(H) as PyTorch initialises them): the outputs mean nothing. No torch needed::

    python weights/make_example.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "streamgru" / "data" / "weights"
if str(REPO) not in sys.path:  # run from a checkout without installing streamgru
    sys.path.insert(0, str(REPO))

FS = 360.0
MAINS = 60
INPUT_SIZE, HIDDEN_SIZE = 1, 8


def chain_dict() -> dict:
    """``FilterChain.preset("ecg-monitor", fs=360, mains=60).to_dict()``."""
    from streamgru.signal.chain import FilterChain

    return FilterChain.preset("ecg-monitor", fs=FS, mains=MAINS, n_channels=1).to_dict()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    # the real file lives in the package (weights/example_tiny.safetensors links to it)
    default_out = SHIPPED / "example_tiny.safetensors"
    ap.add_argument("--out", default=str(default_out))
    args = ap.parse_args(argv)

    from streamgru.model.core import GRUModel

    rng = np.random.default_rng(args.seed)
    bound = 1.0 / np.sqrt(HIDDEN_SIZE)

    def uniform(*shape: int) -> np.ndarray:
        return rng.uniform(-bound, bound, size=shape).astype(np.float32)

    g = 3 * HIDDEN_SIZE
    state = {
        "gru.weight_ih_l0": uniform(g, INPUT_SIZE),
        "gru.weight_hh_l0": uniform(g, HIDDEN_SIZE),
        "gru.bias_ih_l0": uniform(g),
        "gru.bias_hh_l0": uniform(g),
        "fc.weight": uniform(1, HIDDEN_SIZE),
        "fc.bias": uniform(1),
    }
    metadata = {
        "fs": f"{FS:g}",
        "channels": json.dumps(["MLII"]),
        "units": "mV",
        "filter": json.dumps(chain_dict()),
        "input_mean": json.dumps([0.0]),
        "input_std": json.dumps([1.0]),
        "outputs": json.dumps(["score"]),
        "head_activation": "sigmoid",
        "threshold": "0.5",
        "note": "random weights: for smoke tests only",
        "seed": str(args.seed),
        "training_command": "python weights/make_example.py"
        + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:])),
    }
    model = GRUModel.from_state_dict(state, metadata=metadata)
    model.save(args.out)
    print(f"wrote {args.out}: {model!r}, {model.n_params} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
