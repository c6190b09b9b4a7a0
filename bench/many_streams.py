"""BatchStepper.step against torch.nn.GRUCell (+ head) and single-thread sgemm, in interleaved rounds.

Run explicitly (not collected by pytest: no ``bench_`` prefix)::

    python bench/many_streams.py [--rounds 21] [--json OUT]

I=8, H=64, L=1, seeded random model with a Linear head to one output, float32, one thread
(torch and OpenBLAS pinned). For B = 256, 1024, 4096 every method is timed for about 20 ms per
round, in turns, round after round; the minimum over rounds (and the median) per stream-step is
printed with the ratio to torch and the fraction of the peak single-thread sgemm rate (a
1024 x 1024 x 1024 float32 matmul, in the same rounds). On a shared machine the minima are
the stable figures; the medians carry the neighbours' load.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

I, H, L = 8, 64, 1
STREAM_COUNTS = (256, 1024, 4096)


def interleaved(
    fns: dict[str, Callable[[], object]], rounds: int
) -> dict[str, tuple[float, float]]:
    """(min, median) seconds per call of each function over ``rounds`` interleaved rounds."""
    inners = {}
    for name, fn in fns.items():
        fn()
        t0 = time.perf_counter()
        fn()
        inners[name] = max(1, int(0.02 / max(time.perf_counter() - t0, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(inners[name]):
                fn()
            samples[name].append((time.perf_counter() - t0) / inners[name])
    return {name: (min(v), float(np.median(v))) for name, v in samples.items()}


def _methods(model, n_streams: int) -> dict[str, Callable[[], object]]:
    import torch

    from streamgru.bench.torch import torch_head

    X = np.random.default_rng(0).standard_normal((n_streams, I)).astype(np.float32)
    cell, head = torch.nn.GRUCell(I, H), torch_head(torch, model)
    xt, ht = torch.from_numpy(X), torch.zeros(n_streams, H)
    rng = np.random.default_rng(1)
    A = rng.random((n_streams, I + H), dtype=np.float32)
    W = rng.random((I + H, 3 * H), dtype=np.float32)
    C = np.empty((n_streams, 3 * H), np.float32)
    peak_a = rng.random((1024, 1024), dtype=np.float32)
    peak_c = np.empty_like(peak_a)
    one = model.stepper(n_streams=n_streams, filter=None)
    two = model.stepper(n_streams=n_streams, filter=None, threads=2)
    out1, out2 = np.empty((n_streams, 1), np.float32), np.empty((n_streams, 1), np.float32)

    def torch_step() -> None:
        with torch.inference_mode():
            head(cell(xt, ht))

    return {
        "torch GRUCell+head": torch_step,
        "sgemm 1024^3": lambda: np.matmul(peak_a, peak_a, out=peak_c),
        "sgemm same shape": lambda: np.matmul(A, W, out=C),
        "BatchStepper.step": lambda: one.step(X, out=out1),
        "BatchStepper.step threads=2": lambda: two.step(X, out=out2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--json", help="write the minima (ns per stream-step) here")
    args = parser.parse_args()
    import torch
    from threadpoolctl import threadpool_limits

    from streamgru.bench.models import random_model

    torch.set_num_threads(1)
    threadpool_limits(1)
    model = random_model(I, H, L)
    flops = 2 * 3 * H * (I + H)  # per stream-step: the GRU's products, as the bench counts them
    report = {}
    for n_streams in STREAM_COUNTS:
        res = interleaved(_methods(model, n_streams), args.rounds)
        peak = 2 * 1024**3 / res.pop("sgemm 1024^3")[0]
        torch_s = res["torch GRUCell+head"][0]
        print(f"B={n_streams}: peak sgemm {peak / 1e9:.1f} GFLOP/s (min of {args.rounds} rounds)")
        for name, (best, median) in res.items():
            print(
                f"   {name:30s} min {best / n_streams * 1e9:6.0f} ns/stream-step "
                f"(median {median / n_streams * 1e9:6.0f})  torch/this {torch_s / best:5.2f}  "
                f"{flops * n_streams / best / peak * 100:3.0f}% of peak sgemm"
            )
        report[n_streams] = {k: v[0] / n_streams * 1e9 for k, v in res.items()}
        report[n_streams]["peak_gflops"] = peak / 1e9
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
