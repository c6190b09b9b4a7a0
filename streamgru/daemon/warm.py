"""``streamgru warm``: compile exactly the kernels a configuration uses into numba's cache, then exit.

Run it once after installing or upgrading (the systemd unit runs it as ``ExecStartPre``, the
README's install steps run it by hand), with the same ``NUMBA_CACHE_DIR`` as the daemon: the
daemon's start then loads the compiled kernels instead of compiling them.

* ``streamgru warm --config site.toml``: every stream is planned as ``streamgru run`` plans it
  (model loaded, filter, dtype, resampling) and :func:`streamgru.daemon.plan.warm_up` runs
  what the daemon runs on them; nothing else (no per-sample ``step``, no other dtype);
* ``streamgru warm MODEL [--dtype float64]``: the daemon's kernels for that model with its
  own filter and normalisation (what ``streamgru run --source ... MODEL`` uses).

The summary (one line, or JSON with ``--json``) gives the setups warmed and the seconds taken.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

#: Exit code for a bad configuration (sysexits.h EX_CONFIG), as ``streamgru run``.
EX_CONFIG = 78


def add_warm(sub: argparse._SubParsersAction) -> None:
    """Register the ``warm`` subcommand on the top-level parser's subparsers."""
    p = sub.add_parser(
        "warm",
        help="compile the kernels a configuration uses into numba's cache, then exit",
        description=(
            "Compile (or load from numba's cache) exactly the kernels `streamgru run` needs for a "
            "configuration or a model, then exit. Run it after an install or upgrade with the "
            "daemon's NUMBA_CACHE_DIR, so the daemon starts without compiling."
        ),
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--config", metavar="SITE.toml", help="a daemon configuration file")
    what.add_argument("model", nargs="?", metavar="MODEL", help="a weights file")
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="compute dtype for MODEL (default float32; a config names its own)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=warm_command)


def warm_plans(config_path: str) -> int:
    """Plan every stream of the configuration file and warm what they use; returns the number
    of distinct setups warmed. Raises ConfigError naming the bad field."""
    from .config import load_config
    from .plan import plan_stream, warm_up

    config = load_config(config_path)
    plans = [plan_stream(stream, k) for k, stream in enumerate(config.streams)]
    return warm_up(plans)


def warm_model(model_path: str, dtype: str = "float32") -> int:
    """Warm the daemon's kernels for one model (its own filter and normalisation); returns 1.
    Raises ConfigError when the model cannot be loaded."""
    import numpy as np

    from ..errors import ConfigError, StreamgruError
    from ..model.formats import load_model
    from .plan import WARMUP_SAMPLES

    try:
        model = load_model(model_path)
    except StreamgruError as exc:  # as `streamgru run --model`: a bad configuration, exit 78
        raise ConfigError(f"model: cannot load {model_path!r}: {exc}") from exc
    stepper = model.stepper(dtype=dtype, filter="model", normalize=True, compile_step=False)
    X = np.zeros((WARMUP_SAMPLES, model.input_size), dtype=np.float32)
    stepper.step_chunk(X)
    stepper.step_chunk(X[:1])
    return 1


def warm_command(args: argparse.Namespace) -> int:
    """``streamgru warm``: exit 0 when warmed, 78 (EX_CONFIG) for a bad configuration."""
    from ..errors import ConfigError, StreamgruError

    t0 = time.perf_counter()
    try:
        if args.config is not None:
            n_setups = warm_plans(args.config)
            target: dict[str, Any] = {"config": args.config}
        else:
            n_setups = warm_model(args.model, args.dtype)
            target = {"model": args.model, "dtype": args.dtype}
    except ConfigError as exc:
        print(f"streamgru warm: configuration error: {exc}", file=sys.stderr, flush=True)
        return EX_CONFIG
    except StreamgruError as exc:
        print(f"streamgru warm: error: {exc}", file=sys.stderr, flush=True)
        return 1
    summary = {**target, "setups": n_setups, "seconds": round(time.perf_counter() - t0, 3)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"streamgru warm: {n_setups} setup(s) compiled or loaded in {summary['seconds']} s")
    return 0
