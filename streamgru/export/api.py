"""Generate, check and write an exported C library (the work behind ``streamgru export c``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..model.core import GRUModel
from ..signal.beats import detect_beats, match_beats
from .calibration import default_calibration, load_calibration
from .fixed_reference import condition, run_fixed
from .gen_fixed import generate_fixed
from .gen_float import generate_float
from .quantize import QuantModel, quantize_model
from .spec import ExportSpec, export_spec

DTYPES = ("float32", "int16", "int8")


@dataclass(frozen=True)
class ExportReport:
    """How a fixed-point build compares with the float32 stepper on the calibration data.

    Attributes
    ----------
    dtype : the build
    n_samples : calibration samples compared
    max_abs_error : max |fixed - float| over every output
    decision_agreement : fraction of samples where ``output >= threshold`` agrees (beat models
        with one output and a sample rate; None otherwise)
    beats_float, beats_fixed, beats_matched : BeatDetector beats on each output and how many
        pair up within 150 ms (None where decision_agreement is None)
    """

    dtype: str
    n_samples: int
    max_abs_error: float
    decision_agreement: float | None = None
    beats_float: int | None = None
    beats_fixed: int | None = None
    beats_matched: int | None = None

    def lines(self) -> list[str]:
        """The report as text, one line each."""
        out = [
            f"{self.dtype} vs float32 stepper on {self.n_samples} calibration samples: "
            f"max |error| {self.max_abs_error:.3g}"
        ]
        if self.decision_agreement is not None:
            out.append(
                f"beat decisions agree on {100 * self.decision_agreement:.3f} % of samples; "
                f"beats: float {self.beats_float}, fixed {self.beats_fixed}, "
                f"matched {self.beats_matched}"
            )
        return out


def beat_settings(model: GRUModel) -> dict | None:
    """BeatDetector settings of a one-output model with a sample rate, from its metadata."""
    if model.output_size != 1 or model.fs is None:
        return None
    post = model.meta_json("postprocessing", {}) or {}
    settings = {"threshold": float(post.get("threshold", model.meta_json("threshold", 0.5)))}
    for key in ("refractory_s", "index_mode", "max_wait_s"):
        if key in post:
            settings[key] = post[key]
    return settings


def compare_fixed(model: GRUModel, qm: QuantModel, spec: ExportSpec, X: np.ndarray) -> ExportReport:
    """Run the fixed-point reference and the float32 stepper on X (T, I) float32 and compare."""
    y_fixed = run_fixed(qm, spec.conditioning, model.reset_after, X).astype(np.float64)
    stepper = model.stepper(dtype="float32")
    y_float = np.asarray(stepper.step_chunk(X), dtype=np.float64).reshape(y_fixed.shape)
    error = float(np.abs(y_fixed - y_float).max())
    beats = beat_settings(model)
    if beats is None:
        return ExportReport(qm.dtype, int(X.shape[0]), error)
    thr, fs = beats["threshold"], float(model.fs or 0.0)
    agreement = float(np.mean((y_fixed[:, 0] >= thr) == (y_float[:, 0] >= thr)))
    det_float = detect_beats(y_float[:, 0], fs, **beats)
    det_fixed = detect_beats(y_fixed[:, 0], fs, **beats)
    matched = match_beats(det_fixed, det_float, fs).tp
    return ExportReport(
        qm.dtype,
        int(X.shape[0]),
        error,
        agreement,
        int(det_float.size),
        int(det_fixed.size),
        matched,
    )


def _head_peaks(model: GRUModel, v: np.ndarray) -> list[float]:
    """Largest |output| of each head layer on conditioned inputs v (only where it matters)."""
    peaks = []
    for k, dense in enumerate(model.head):
        if k + 1 == len(model.head) or dense.activation in ("sigmoid", "tanh"):
            peaks.append(1.0)
            continue
        cut = GRUModel(model.layers, model.head[: k + 1], model.reset_after)
        peaks.append(float(np.abs(cut.forward(v)).max()))
    return peaks


def quantize_for(model: GRUModel, spec: ExportSpec, dtype: str, X: np.ndarray) -> QuantModel:
    """Calibrate and quantise ``model`` for ``dtype`` on raw samples X (T, I) float32."""
    v = condition(spec.conditioning, X)
    return quantize_model(model, dtype, float(np.abs(v).max()), _head_peaks(model, v))


def generate_c(
    model: GRUModel,
    dtype: str = "float32",
    prefix: str = "sgmodel",
    calibration: np.ndarray | None = None,
    no_libm: bool = False,
) -> tuple[dict[str, str], ExportReport | None]:
    """The C library for ``model`` as ``{file name: text}``, and for fixed point the report.

    Parameters
    ----------
    calibration : (T, input_size) float32 raw samples, or None for the built-in ECG segment
        (fixed point only; float32 ignores it).
    no_libm : float32 only: rational tanh/sigmoid instead of ``<math.h>``.
    """
    if dtype not in DTYPES:
        raise ConfigError(f"dtype: expected one of {DTYPES}, got {dtype!r}")
    spec = export_spec(model, prefix, fixed=dtype != "float32")
    if dtype == "float32":
        header, source = generate_float(spec, no_libm=no_libm)
        report = None
    else:
        X = default_calibration(model) if calibration is None else calibration
        qm = quantize_for(model, spec, dtype, X)
        report = compare_fixed(model, qm, spec, X)
        header, source = generate_fixed(spec, qm)
    return {f"{prefix}.h": header, f"{prefix}.c": source}, report


def export_c(
    model: GRUModel,
    out_dir: str | Path,
    dtype: str = "float32",
    prefix: str = "sgmodel",
    calibrate: str | Path | None = None,
    no_libm: bool = False,
    log: Callable[[str], None] = print,
) -> ExportReport | None:
    """Write ``prefix.h`` and ``prefix.c`` into ``out_dir`` (created); fixed-point builds log
    their error report (:class:`ExportReport`) before anything is written. Returns the report."""
    calibration = None if calibrate is None else load_calibration(calibrate, model.input_size)
    files, report = generate_c(model, dtype, prefix, calibration, no_libm)
    if report is not None:
        for line in report.lines():
            log(line)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
        log(f"wrote {out / name}")
    return report
