"""The daemon's commands: ``streamgru run`` and ``streamgru config check``."""

from __future__ import annotations

from .config import load_config
from .config_schema import Config
from .daemon import Daemon
from .plan import plan_stream


def run_command(config: Config) -> int:
    """``streamgru run``: run the daemon on a validated config; returns the exit code."""
    return Daemon(config).run()


def config_check_command(path: str, models: bool = True, quiet: bool = False) -> int:
    """``streamgru config check FILE``: validate (and load each model); 0 when good.

    Raises ConfigError on the first problem (the CLI turns it into exit code 78).
    """
    config = load_config(path)
    plans = [plan_stream(s, k) for k, s in enumerate(config.streams)] if models else []
    if not quiet:
        print(f"{path}: ok, {len(config.streams)} stream(s)")
        for k, s in enumerate(config.streams):
            line = f"  stream[{k}] {s.id}: {s.source} -> {', '.join(s.sinks) or '(no sink)'}"
            if plans:
                p = plans[k]
                filt = "none" if p.filter_spec is None else p.filter_spec.get("kind", "?")
                rate = f"{p.fs:g} Hz"
                if p.resample is not None:
                    rate += f" resampled to {p.model_fs:g} Hz"
                line += f" | model {s.model.name} at {rate}, filter {filt}"
            print(line)
    return 0
