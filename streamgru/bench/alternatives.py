"""The alternatives ``streamgru bench`` times streamgru against (PyTorch, ONNX Runtime), built lazily."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..model.core import GRUModel
from .runners import Runner


def alternative_builders(
    model: GRUModel, compare: Sequence[str]
) -> list[tuple[str, str, Callable[[], Runner], str]]:
    """The alternatives asked for in ``compare``: (framework, name, build, kind) per runner.

    ``kind`` is ``"sample"`` (per-sample runners, also used for many streams) or ``"block"``;
    ``build`` is called later, so a framework that is not installed fails there, not here.
    The ONNX Runtime runners share one session, made on first use.
    """
    builders: list[tuple[str, str, Callable[[], Runner], str]] = []
    if "torch" in compare:
        from .torch import TorchCellRunner, TorchGRURunner

        builders += [
            ("torch", "torch GRUCell", lambda: TorchCellRunner(model), "sample"),
            ("torch", "torch GRU block", lambda: TorchGRURunner(model), "block"),
        ]
    if "onnxruntime" in compare:
        from .onnx import OrtFusedRunner, OrtRunRunner, ort_session

        box: dict[str, Any] = {}

        def session() -> Any:
            if "s" not in box:
                box["s"] = ort_session(model)
            return box["s"]

        builders += [
            (
                "onnxruntime",
                "onnxruntime run",
                lambda: OrtRunRunner(model, session()),
                "sample",
            ),
            (
                "onnxruntime",
                "onnxruntime fused block",
                lambda: OrtFusedRunner(model, session()),
                "block",
            ),
        ]
    return builders
