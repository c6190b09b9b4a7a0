"""A FilterChain's settings as a JSON-safe dict, and back (``FilterChain.to_dict`` / ``from_dict``).

The dict is what a model file carries under its ``filter`` metadata (docs/design.md section 6):
``{"format": "streamgru.filter.v1", "kind": "preset" | "design" | "sos", ..., "sos": [[...]],
"fs", "n_channels", "start"}``. Rebuilding uses the recorded sections when present, so a model
keeps the exact filter it was trained behind even if a preset or scipy's design changes later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .chain import FilterChain

#: ``"format"`` value of :meth:`FilterChain.to_dict`.
DICT_FORMAT = "streamgru.filter.v1"
DESIGN_KEYS = ("highpass", "lowpass", "notch", "order", "notch_q")


def chain_to_dict(chain: FilterChain) -> dict[str, Any]:
    """The settings of ``chain`` (not its running state) as a JSON-safe dict."""
    out: dict[str, Any] = {"format": DICT_FORMAT, **chain._spec, "fs": chain.fs}
    out["sos"] = chain._sos.tolist()
    out["n_channels"] = chain.n_channels
    out["start"] = chain.start
    return out


def chain_from_dict(cls: type[FilterChain], spec: Mapping[str, Any] | str) -> FilterChain:
    """Rebuild a chain of class ``cls`` from :func:`chain_to_dict` output (or its JSON string).

    Raises
    ------
    ConfigError : not JSON, another format, an unknown kind or a missing field (named).
    """
    if isinstance(spec, (str, bytes)):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"filter: not valid JSON: {exc}") from exc
    if not isinstance(spec, Mapping):
        raise ConfigError(f"filter: expected a mapping, got {type(spec).__name__}")
    if spec.get("format") != DICT_FORMAT:
        raise ConfigError(f"filter.format: expected {DICT_FORMAT!r}, got {spec.get('format')!r}")
    common = {
        "n_channels": spec.get("n_channels", 1),
        "start": spec.get("start", "steady"),
    }
    kind = spec.get("kind")
    try:
        if kind in ("preset", "design") and spec.get("sos") is not None:
            return _recorded_design(cls, spec, kind, common)
        if kind == "preset":
            return cls.preset(spec["preset"], spec["fs"], mains=spec.get("mains", 50), **common)
        if kind == "design":
            return cls.design(
                spec["fs"],
                highpass=spec.get("highpass"),
                lowpass=spec.get("lowpass"),
                notch=spec.get("notch"),
                order=spec.get("order", 4),
                notch_q=spec.get("notch_q", 30.0),
                **common,
            )
        if kind == "sos":
            return cls.from_sos(spec["sos"], fs=spec.get("fs"), **common)
    except KeyError as exc:
        raise ConfigError(f"filter.{exc.args[0]}: missing for kind {kind!r}") from exc
    raise ConfigError(f"filter.kind: expected 'preset', 'design' or 'sos', got {kind!r}")


def _recorded_design(
    cls: type[FilterChain], spec: Mapping[str, Any], kind: str, common: dict
) -> FilterChain:
    """A designed chain from its recorded sections; the design is kept for display."""
    if "fs" not in spec:
        raise KeyError("fs")
    chain = cls(spec["sos"], fs=spec["fs"], **common)
    keys = ("preset", "mains") if kind == "preset" else DESIGN_KEYS
    chain._spec = {"kind": kind, **{key: spec.get(key) for key in keys}}
    if kind == "preset" and chain._spec["preset"] is None:
        raise KeyError("preset")
    return chain
