"""Write the framework reference vectors and framework-written model files under ``tests/data/``.

Seeded and deterministic; needs torch, onnx, onnxruntime and keras (3, any backend: torch is used
when tensorflow is absent). Not run in CI: the tests read what it wrote, and compare streamgru's
float64 oracle (``GRUModel.forward``) and steppers against the frameworks' own outputs.

Usage::

    python tools/make_reference_vectors.py            # writes tests/data/
    python tools/make_reference_vectors.py --out DIR

What it writes (every ``*_io.npz`` holds ``x`` (T, input_size), ``h0`` (num_layers, hidden_size),
``y`` (T, output_size): the framework's output after every sample, ``dtype``, ``framework``,
``version``, ``seed``):

* ``ref_<case>.npz`` + ``ref_<case>_io.npz``: PyTorch models (nn.GRU 1 and 3 layers, input size 1
  and 5, with and without bias, zero and nonzero h0, a long stream, float32 and float64,
  nn.GRUCell, GRU + Linear, GRU + Sequential(Linear, ReLU, Linear)), weights as native files.
* ``torch_model.pt``, ``torch_gru_cell.pt``: state_dicts written by ``torch.save``.
* ``torch_export.onnx``: ``torch.onnx.export`` of a 3-layer GRU + Linear (h0 as an input);
  ``torch_export_hn.onnx``: a classifier on ``h_n[-1]``, its outputs taken on every prefix.
* ``onnx_lbr0.onnx``: a ``linear_before_reset=0`` GRU + Gemm + Sigmoid built with onnx.helper;
  ``onnx_stack.onnx``: two stacked ``linear_before_reset=1`` GRU nodes + MatMul/Add/Relu/
  MatMul/Add/Softmax head.
* ``keras_reset_after.keras``, ``keras_reset_before.keras``, ``keras_legacy.h5``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if "KERAS_BACKEND" not in os.environ and importlib.util.find_spec("tensorflow") is None:
    os.environ["KERAS_BACKEND"] = "torch"

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamgru.model.core import GRUModel  # noqa: E402

#: Base seed; each case derives its own from its name, so adding a case changes no other file.
SEED = 20250611
#: IR version written into hand-built ONNX files (onnxruntime reads up to its own maximum).
ONNX_IR_VERSION = 10
ONNX_OPSET = 17


def case_seed(name: str) -> int:
    return SEED + zlib.crc32(name.encode()) % 100_000


def write_io(
    path: Path, x, h0, y, dtype: str, framework: str, version: str, seed: int, description: str
) -> None:
    """One ``*_io.npz``: inputs, the framework's outputs and where they came from."""
    np.savez_compressed(
        path,
        x=np.ascontiguousarray(x, dtype=dtype),
        h0=np.ascontiguousarray(h0, dtype=dtype),
        y=np.ascontiguousarray(y, dtype=dtype),
        dtype=np.array(dtype),
        framework=np.array(framework),
        version=np.array(version),
        seed=np.array(seed, dtype=np.int64),
        description=np.array(description),
    )


# ----------------------------------------------------------------------- torch
@dataclass(frozen=True)
class TorchCase:
    """One PyTorch reference case; ``kind`` is gru, cell, linear (GRU + Linear) or mlp."""

    name: str
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    nonzero_h0: bool = False
    steps: int = 200
    dtype: str = "float32"
    kind: str = "gru"
    output_size: int = 3


TORCH_CASES = (
    TorchCase("gru1_i1_f32", 1, 16),
    TorchCase("gru1_i5_h0_f32", 5, 16, nonzero_h0=True, steps=150),
    TorchCase("gru3_i1_f32", 1, 8, num_layers=3, steps=120),
    TorchCase("gru3_i5_h0_f32", 5, 12, num_layers=3, nonzero_h0=True),
    TorchCase("gru1_i5_nobias_h0_f32", 5, 16, bias=False, nonzero_h0=True, steps=100),
    TorchCase(
        "gru3_i5_nobias_h0_f64", 5, 12, num_layers=3, bias=False, nonzero_h0=True, dtype="float64"
    ),
    TorchCase("gru1_i1_f64", 1, 16, dtype="float64", steps=150),
    TorchCase("gru2_i5_h0_f64", 5, 16, num_layers=2, nonzero_h0=True, dtype="float64"),
    TorchCase("long_gru2_i1_h0_f32", 1, 8, num_layers=2, nonzero_h0=True, steps=2500),
    TorchCase("cell_i5_h0_f32", 5, 16, nonzero_h0=True, steps=100, kind="cell"),
    TorchCase("cell_i1_f64", 1, 8, steps=100, dtype="float64", kind="cell"),
    TorchCase("linear_i5_f32", 5, 32, steps=200, kind="linear"),
    TorchCase(
        "linear_i8_h64_h0_f32", 8, 64, nonzero_h0=True, steps=64, kind="linear", output_size=2
    ),
    TorchCase(
        "linear_i5_h0_f64", 5, 16, nonzero_h0=True, steps=120, dtype="float64", kind="linear"
    ),
    TorchCase("mlp_gru2_i5_h0_f32", 5, 16, num_layers=2, nonzero_h0=True, steps=150, kind="mlp"),
)


def _torch_module(torch, case: TorchCase):
    nn = torch.nn
    if case.kind == "cell":
        return nn.GRUCell(case.input_size, case.hidden_size, bias=case.bias)
    gru = nn.GRU(
        case.input_size, case.hidden_size, case.num_layers, bias=case.bias, batch_first=True
    )
    if case.kind == "gru":
        return gru
    mid = 8
    head = (
        nn.Linear(case.hidden_size, case.output_size)
        if case.kind == "linear"
        else nn.Sequential(
            nn.Linear(case.hidden_size, mid), nn.ReLU(), nn.Linear(mid, case.output_size)
        )
    )

    class GRUNet(nn.Module):
        """The usual model: GRU (batch_first) then a head on every step's output."""

        def __init__(self) -> None:
            super().__init__()
            self.gru = gru
            self.head = head

        def forward(self, x, h0):
            out, _ = self.gru(x, h0)
            return self.head(out)

    return GRUNet()


def _torch_run(torch, module, case: TorchCase, x: np.ndarray, h0: np.ndarray) -> np.ndarray:
    """The framework's own output after every sample, (T, output_size)."""
    xt = torch.from_numpy(x)
    with torch.no_grad():
        if case.kind == "cell":
            h = torch.from_numpy(h0[0])[None]
            rows = []
            for t in range(x.shape[0]):
                h = module(xt[t][None], h)
                rows.append(h[0].clone())
            return torch.stack(rows).numpy()
        h0t = torch.from_numpy(h0)[:, None, :].contiguous()
        if case.kind == "gru":
            out, _ = module(xt[None], h0t)
            return out[0].numpy()
        return module(xt[None], h0t)[0].numpy()


def make_torch_case(torch, case: TorchCase, out: Path) -> None:
    seed = case_seed(case.name)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    module = _torch_module(torch, case)
    if case.dtype == "float64":
        module = module.double()
        with torch.no_grad():  # genuinely float64 weights (not float32 values widened)
            for p in module.parameters():
                k = 1.0 / np.sqrt(case.hidden_size)
                p.copy_(torch.from_numpy(rng.uniform(-k, k, size=tuple(p.shape))))
    module.eval()
    layers = 1 if case.kind == "cell" else case.num_layers
    x = rng.standard_normal((case.steps, case.input_size)).astype(case.dtype)
    h0 = np.zeros((layers, case.hidden_size), dtype=case.dtype)
    if case.nonzero_h0:
        h0 = rng.uniform(-0.8, 0.8, size=h0.shape).astype(case.dtype)
    y = _torch_run(torch, module, case, x, h0)
    state = {k: v.detach().to(torch.float64).numpy() for k, v in module.state_dict().items()}
    meta = {"mapping": "pytorch state_dict: as is", "reference_case": case.name}
    if case.kind == "mlp":
        meta["head_activations"] = '["relu", "identity"]'
    model = GRUModel.from_state_dict(state, metadata=meta)
    if case.dtype == "float32":
        for name, arr in model.state_dict().items():
            assert np.array_equal(arr.astype(np.float32), arr), name
    model.save(out / f"ref_{case.name}.npz")
    write_io(
        out / f"ref_{case.name}_io.npz",
        x,
        h0,
        y,
        case.dtype,
        "torch",
        torch.__version__,
        seed,
        f"{case.kind} {case}",
    )


def make_torch_files(torch, out: Path) -> None:
    """torch_model.pt (3-layer GRU + Linear) and torch_gru_cell.pt, with io files."""
    nn = torch.nn
    seed = case_seed("torch_model")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(4, 16, num_layers=3, batch_first=True)
            self.fc = nn.Linear(16, 2)

        def forward(self, x, h0):
            out, _ = self.rnn(x, h0)
            return self.fc(out)

    net = Net().eval()
    x = rng.standard_normal((120, 4)).astype(np.float32)
    h0 = rng.uniform(-0.5, 0.5, size=(3, 16)).astype(np.float32)
    with torch.no_grad():
        y = net(torch.from_numpy(x)[None], torch.from_numpy(h0)[:, None].contiguous())[0].numpy()
    torch.save(net.state_dict(), out / "torch_model.pt")
    write_io(
        out / "torch_model_io.npz",
        x,
        h0,
        y,
        "float32",
        "torch",
        torch.__version__,
        seed,
        "nn.GRU(4, 16, 3, batch_first) + nn.Linear(16, 2), state_dict via torch.save",
    )

    seed = case_seed("torch_gru_cell")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cell = nn.GRUCell(3, 8).eval()
    x = rng.standard_normal((100, 3)).astype(np.float32)
    h0 = rng.uniform(-0.5, 0.5, size=(1, 8)).astype(np.float32)
    case = TorchCase("torch_gru_cell", 3, 8, kind="cell")
    y = _torch_run(torch, cell, case, x, h0)
    torch.save(cell.state_dict(), out / "torch_gru_cell.pt")
    write_io(
        out / "torch_gru_cell_io.npz",
        x,
        h0,
        y,
        "float32",
        "torch",
        torch.__version__,
        seed,
        "nn.GRUCell(3, 8), state_dict via torch.save",
    )


# ------------------------------------------------------------------------ onnx
def _ort_run(ort, model_bytes: bytes, feeds: dict) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def make_torch_export(torch, onnx, ort, out: Path) -> None:
    """torch.onnx.export of a 3-layer GRU + Linear, with h0 as a graph input."""
    nn = torch.nn
    seed = case_seed("torch_export")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = nn.GRU(4, 16, num_layers=3, batch_first=True)
            self.fc = nn.Linear(16, 3)

        def forward(self, x, h0):
            out, hn = self.gru(x, h0)
            return self.fc(out), hn

    net = Net().eval()
    path = out / "torch_export.onnx"
    example = (torch.zeros(1, 10, 4), torch.zeros(3, 1, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            example,
            str(path),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["x", "h0"],
            output_names=["y", "hn"],
            dynamic_axes={"x": {1: "time"}, "y": {1: "time"}},
        )
    x = rng.standard_normal((150, 4)).astype(np.float32)
    h0 = rng.uniform(-0.5, 0.5, size=(3, 16)).astype(np.float32)
    y = _ort_run(ort, path.read_bytes(), {"x": x[None], "h0": h0[:, None].copy()})[0]
    with torch.no_grad():
        y_torch = net(torch.from_numpy(x)[None], torch.from_numpy(h0)[:, None].contiguous())[0]
    assert np.allclose(y, y_torch[0].numpy(), atol=1e-5), "onnxruntime disagrees with torch"
    write_io(
        out / "torch_export_io.npz",
        x,
        h0,
        y,
        "float32",
        "onnxruntime",
        f"onnxruntime {ort.__version__}; torch {torch.__version__}; onnx {onnx.__version__}",
        seed,
        "torch.onnx.export(dynamo=False) of nn.GRU(4, 16, 3) + nn.Linear(16, 3)",
    )


def make_torch_export_final_state(torch, onnx, ort, out: Path) -> None:
    """A classifier on the top layer's final state, ``sigmoid(fc(h_n[-1]))``, exported to ONNX.

    Its io file holds, for every t, onnxruntime's output on the prefix ``x[: t + 1]``: the
    streaming semantics (docs/design.md section 4) checked against the framework directly.
    """
    nn = torch.nn
    seed = case_seed("torch_export_hn")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = nn.GRU(3, 12, num_layers=2)
            self.fc = nn.Linear(12, 2)

        def forward(self, x):
            _, hn = self.gru(x)
            return torch.sigmoid(self.fc(hn[-1]))

    net = Classifier().eval()
    path = out / "torch_export_hn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(10, 1, 3),),
            str(path),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["x"],
            output_names=["p"],
            dynamic_axes={"x": {0: "time"}},
        )
    x = rng.standard_normal((60, 3)).astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path.read_bytes(), opts, providers=["CPUExecutionProvider"])
    y = np.stack([sess.run(None, {"x": x[: t + 1, None]})[0][0] for t in range(len(x))])
    write_io(
        out / "torch_export_hn_io.npz",
        x,
        np.zeros((2, 12), np.float32),
        y,
        "float32",
        "onnxruntime",
        f"onnxruntime {ort.__version__}; torch {torch.__version__}; onnx {onnx.__version__}",
        seed,
        "torch.onnx.export of sigmoid(Linear(GRU(3, 12, 2) h_n[-1])); y[t] = run on x[:t+1]",
    )


def _f32(rng, shape, scale=0.4) -> np.ndarray:
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def make_onnx_lbr0(onnx, ort, out: Path) -> None:
    """linear_before_reset=0 GRU (initial_h input) -> Squeeze -> Reshape -> Gemm -> Sigmoid."""
    from onnx import TensorProto, helper, numpy_helper

    seed = case_seed("onnx_lbr0")
    rng = np.random.default_rng(seed)
    inp, hid, outs = 3, 10, 2
    inits = [
        numpy_helper.from_array(_f32(rng, (1, 3 * hid, inp)), "W"),
        numpy_helper.from_array(_f32(rng, (1, 3 * hid, hid)), "R"),
        numpy_helper.from_array(_f32(rng, (1, 6 * hid)), "B"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "squeeze_axes"),
        numpy_helper.from_array(np.array([-1, hid], dtype=np.int64), "flat_shape"),
        numpy_helper.from_array(_f32(rng, (outs, hid), 0.8), "head_w"),
        numpy_helper.from_array(_f32(rng, (outs,)), "head_b"),
    ]
    nodes = [
        helper.make_node(
            "GRU",
            ["X", "W", "R", "B", "", "h0"],
            ["Y", "Y_h"],
            name="gru",
            hidden_size=hid,
            linear_before_reset=0,
        ),
        helper.make_node("Squeeze", ["Y", "squeeze_axes"], ["Y_sq"], name="squeeze"),
        helper.make_node("Reshape", ["Y_sq", "flat_shape"], ["Y_2d"], name="flatten"),
        helper.make_node("Gemm", ["Y_2d", "head_w", "head_b"], ["logits"], name="head", transB=1),
        helper.make_node("Sigmoid", ["logits"], ["y"], name="prob"),
    ]
    graph = helper.make_graph(
        nodes,
        "gru_lbr0",
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, ["time", 1, inp]),
            helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, 1, hid]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["time", outs])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        ir_version=ONNX_IR_VERSION,
        producer_name="streamgru-tools",
    )
    onnx.checker.check_model(model)
    path = out / "onnx_lbr0.onnx"
    path.write_bytes(model.SerializeToString())
    x = rng.standard_normal((200, inp)).astype(np.float32)
    h0 = rng.uniform(-0.5, 0.5, size=(1, hid)).astype(np.float32)
    y = _ort_run(ort, path.read_bytes(), {"X": x[:, None], "h0": h0[:, None].copy()})
    write_io(
        out / "onnx_lbr0_io.npz",
        x,
        h0,
        y,
        "float32",
        "onnxruntime",
        f"onnxruntime {ort.__version__}; onnx {onnx.__version__}",
        seed,
        "onnx.helper GRU(linear_before_reset=0) + Gemm(transB=1) + Sigmoid",
    )


def make_onnx_stack(onnx, ort, out: Path) -> None:
    """Two stacked linear_before_reset=1 GRU nodes + MatMul/Add/Relu/MatMul/Add/Softmax."""
    from onnx import TensorProto, helper, numpy_helper

    seed = case_seed("onnx_stack")
    rng = np.random.default_rng(seed)
    inp, hid, mid, outs = 2, 8, 6, 4
    inits = [
        numpy_helper.from_array(_f32(rng, (1, 3 * hid, inp)), "W0"),
        numpy_helper.from_array(_f32(rng, (1, 3 * hid, hid)), "R0"),
        numpy_helper.from_array(_f32(rng, (1, 6 * hid)), "B0"),
        numpy_helper.from_array(_f32(rng, (1, 3 * hid, hid)), "W1"),
        numpy_helper.from_array(_f32(rng, (1, 3 * hid, hid)), "R1"),
        numpy_helper.from_array(_f32(rng, (1, 6 * hid)), "B1"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(_f32(rng, (hid, mid), 0.8), "M0"),
        numpy_helper.from_array(_f32(rng, (mid,)), "b0"),
        numpy_helper.from_array(_f32(rng, (mid, outs), 0.8), "M1"),
        numpy_helper.from_array(_f32(rng, (1, outs)), "b1"),
    ]
    nodes = [
        helper.make_node(
            "GRU",
            ["X", "W0", "R0", "B0"],
            ["Y0"],
            name="gru0",
            hidden_size=hid,
            linear_before_reset=1,
        ),
        helper.make_node("Squeeze", ["Y0", "axis1"], ["X1"], name="squeeze0"),
        helper.make_node(
            "GRU",
            ["X1", "W1", "R1", "B1"],
            ["Y1"],
            name="gru1",
            hidden_size=hid,
            linear_before_reset=1,
        ),
        helper.make_node("Squeeze", ["Y1", "axis1"], ["top"], name="squeeze1"),
        helper.make_node("MatMul", ["top", "M0"], ["a0"], name="fc0"),
        helper.make_node("Add", ["b0", "a0"], ["a0b"], name="fc0_bias"),
        helper.make_node("Relu", ["a0b"], ["r0"], name="relu"),
        helper.make_node("MatMul", ["r0", "M1"], ["a1"], name="fc1"),
        helper.make_node("Add", ["a1", "b1"], ["a1b"], name="fc1_bias"),
        helper.make_node("Softmax", ["a1b"], ["y"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "gru_stack",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["time", 1, inp])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["time", 1, outs])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        ir_version=ONNX_IR_VERSION,
        producer_name="streamgru-tools",
    )
    onnx.checker.check_model(model)
    path = out / "onnx_stack.onnx"
    path.write_bytes(model.SerializeToString())
    x = rng.standard_normal((180, inp)).astype(np.float32)
    y = _ort_run(ort, path.read_bytes(), {"X": x[:, None]})[:, 0]
    write_io(
        out / "onnx_stack_io.npz",
        x,
        np.zeros((2, hid), np.float32),
        y,
        "float32",
        "onnxruntime",
        f"onnxruntime {ort.__version__}; onnx {onnx.__version__}",
        seed,
        "onnx.helper 2 x GRU(linear_before_reset=1) + MatMul/Add/Relu/MatMul/Add/Softmax",
    )


# ----------------------------------------------------------------------- keras
def _randomise(keras_model, rng) -> None:
    """Random float32 weights everywhere (Keras initialises biases to zero)."""
    keras_model.set_weights([_f32(rng, w.shape, 0.5) for w in keras_model.get_weights()])


def _keras_io(
    keras, model, name: str, out: Path, x, layers: int, hidden: int, seed: int, description: str
) -> None:
    y = np.asarray(model.predict(x[None], verbose=0))[0]
    write_io(
        out / f"{name}_io.npz",
        x,
        np.zeros((layers, hidden), np.float32),
        y,
        "float32",
        "keras",
        f"keras {keras.__version__} ({keras.backend.backend()} backend)",
        seed,
        description,
    )


def make_keras_files(keras, out: Path) -> None:
    """keras_reset_after.keras, keras_reset_before.keras and keras_legacy.h5, with io files."""
    layers = keras.layers
    seed = case_seed("keras_reset_after")
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((None, 3)),
            layers.GRU(12, return_sequences=True),
            layers.GRU(12, return_sequences=True),
            layers.Dense(8, activation="relu"),
            layers.Dense(2),
        ]
    )
    _randomise(model, rng)
    model.save(out / "keras_reset_after.keras")
    _keras_io(
        keras,
        model,
        "keras_reset_after",
        out,
        rng.standard_normal((150, 3)).astype(np.float32),
        2,
        12,
        seed,
        "Sequential: 2 x GRU(12, reset_after=True) + Dense(8, relu) + Dense(2)",
    )

    seed = case_seed("keras_reset_before")
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((None, 4)),
            layers.GRU(10, reset_after=False, return_sequences=True),
            layers.GRU(10, reset_after=False, return_sequences=True),
            layers.Dense(3, activation="softmax"),
        ]
    )
    _randomise(model, rng)
    model.save(out / "keras_reset_before.keras")
    _keras_io(
        keras,
        model,
        "keras_reset_before",
        out,
        rng.standard_normal((150, 4)).astype(np.float32),
        2,
        10,
        seed,
        "Sequential: 2 x GRU(10, reset_after=False) + Dense(3, softmax)",
    )

    seed = case_seed("keras_legacy")
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, 2))
    hidden = layers.GRU(8, return_sequences=True, name="gru_a")(inputs)
    hidden = layers.Dropout(0.25)(hidden)
    hidden = layers.Dense(1, name="score")(hidden)
    outputs = layers.Activation("sigmoid")(hidden)
    model = keras.Model(inputs, outputs)
    _randomise(model, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(out / "keras_legacy.h5")
    _keras_io(
        keras,
        model,
        "keras_legacy",
        out,
        rng.standard_normal((120, 2)).astype(np.float32),
        1,
        8,
        seed,
        "Functional, legacy H5: GRU(8) + Dropout + Dense(1) + Activation(sigmoid)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    import keras
    import onnx
    import onnxruntime as ort
    import torch

    torch.set_num_threads(1)
    for case in TORCH_CASES:
        make_torch_case(torch, case, out)
    make_torch_files(torch, out)
    make_torch_export(torch, onnx, ort, out)
    make_torch_export_final_state(torch, onnx, ort, out)
    make_onnx_lbr0(onnx, ort, out)
    make_onnx_stack(onnx, ort, out)
    make_keras_files(keras, out)
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"wrote {out} ({total / 1024:.0f} KiB in total)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
