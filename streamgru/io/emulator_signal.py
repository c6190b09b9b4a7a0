"""The signal an emulated device samples: a synthetic generator or a recording.

:func:`make_signal` turns the emulator's signal settings into ``signal(n) -> (n, C) float64``
and what the device announces about it (rate, channels, labels, units, calibration).
"""

from __future__ import annotations

from ..errors import ConfigError


def rational(fs: float) -> tuple[int, int]:
    """fs as num/den with den <= 10000 (exact for integers and common fractions)."""
    from fractions import Fraction

    f = Fraction(fs).limit_denominator(10000)
    return f.numerator, f.denominator


def make_signal(config: dict):
    """(signal(n) -> (n, C) float64, info dict) for a config."""
    record = config["record"]
    if record is not None:
        from .paced import looping_block
        from .replay import load_recording

        rec = load_recording(record, config["fs"])
        block, total = looping_block(rec.values, bool(config["loop"]))
        wfdb = rec.info.sample_format.startswith("wfdb")
        info = dict(
            fs=rec.info.fs,
            channels=rec.info.n_channels,
            labels=rec.info.labels,
            units=rec.info.units,
            length=total,
            gain=rec.info.gain if wfdb else None,
            baseline=rec.info.baseline if wfdb else None,
        )
        return block, info
    from .synthetic import make_generator

    fs = config["fs"] or 250.0
    try:
        gen = make_generator(config["kind"], fs, config["channels"], config["seed"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    info = dict(
        fs=fs,
        channels=config["channels"],
        labels=gen.labels,
        units=(gen.units,) * config["channels"],
        length=None,
        gain=None,
        baseline=None,
    )
    return gen.generate, info
