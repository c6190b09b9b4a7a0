"""What an exported C library computes: a GRUModel and its input conditioning as plain arrays.

:func:`export_spec` reads the model the way :class:`streamgru.Stepper` does (filter chain from
the ``filter`` metadata, ``input_mean`` / ``input_std`` normalisation) and checks that the
generators can write it. The generators and the fixed-point reference read only this object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, UnsupportedModelError
from ..model.core import GRUModel
from ..signal.chain import FilterChain
from ..signal.normalize import Normalizer

#: A C identifier that is safe as a prefix of every exported name.
_PREFIX_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,30}$")


@dataclass(frozen=True)
class Conditioning:
    """The per-sample input conditioning in front of the GRU.

    Attributes
    ----------
    sos : (n_sections, 6) float64, rows ``[b0, b1, b2, 1, a1, a2]``; 0 rows: no filter
    zi_unit : (n_sections, 2) float64, ``sosfilt_zi(sos)`` (zeros for a zero start)
    mean : (C,) float64
    inv_std : (C,) float64, ``1 / std`` as the stepper computes it
    """

    sos: np.ndarray
    zi_unit: np.ndarray
    mean: np.ndarray
    inv_std: np.ndarray

    @property
    def n_sections(self) -> int:
        return int(self.sos.shape[0])

    @property
    def active(self) -> bool:
        """False when the stepper would skip conditioning (no filter, identity normalisation)."""
        return self.n_sections > 0 or bool((self.mean != 0.0).any() or (self.inv_std != 1.0).any())


@dataclass(frozen=True)
class ExportSpec:
    """A model plus its conditioning and the C prefix, checked for export."""

    model: GRUModel
    conditioning: Conditioning
    prefix: str


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is a C identifier of at most 31 characters; raises ConfigError otherwise."""
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
        raise ConfigError(
            f"prefix: expected a C identifier (letters, digits, _; not starting with a digit; "
            f"at most 31 characters), got {prefix!r}"
        )
    return prefix


def conditioning_of(model: GRUModel) -> Conditioning:
    """The filter and normalisation :class:`streamgru.Stepper` runs for ``model`` by default."""
    n_in = model.input_size
    spec = model.meta_json("filter")
    if spec:
        chain = FilterChain.from_dict(spec)
        if chain.n_channels != n_in:
            raise ConfigError(
                f"the model's filter has {chain.n_channels} channel(s), expected "
                f"{n_in} (input_size)"
            )
        state = chain.kernel_state()
        sos = np.array(state.sos, dtype=np.float64)
        zi_unit = np.array(state.zi_unit, dtype=np.float64)
    else:
        sos, zi_unit = np.zeros((0, 6)), np.zeros((0, 2))
    norm = Normalizer.from_metadata(model.metadata)
    if norm.mean.size not in (1, n_in):
        raise ConfigError(
            f"input_mean/input_std have {norm.mean.size} values, expected {n_in} (input_size)"
        )
    mean = np.broadcast_to(norm.mean, (n_in,)).astype(np.float64)
    inv_std = 1.0 / np.broadcast_to(norm.std, (n_in,)).astype(np.float64)
    return Conditioning(sos=sos, zi_unit=zi_unit, mean=mean, inv_std=inv_std)


def export_spec(model: GRUModel, prefix: str = "sgmodel", fixed: bool = False) -> ExportSpec:
    """Check ``model`` for export and gather what the generators need.

    Raises
    ------
    ConfigError
        A bad prefix or inconsistent conditioning metadata.
    UnsupportedModelError
        A softmax head layer in a fixed-point export (``fixed=True``).
    """
    if not isinstance(model, GRUModel):
        raise ConfigError(f"model: expected a GRUModel, got {type(model).__name__}")
    if fixed:
        for k, dense in enumerate(model.head):
            if dense.activation == "softmax":
                raise UnsupportedModelError(
                    f"head layer {k}: softmax is not supported in a fixed-point export; "
                    "expected identity, relu, sigmoid or tanh (export float32 instead)"
                )
    return ExportSpec(model=model, conditioning=conditioning_of(model), prefix=check_prefix(prefix))
