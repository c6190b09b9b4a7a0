"""Bad weights files and mappings: each raises a specific StreamgruError naming what went wrong.

Covers the native formats (safetensors, npz), ``from_state_dict`` and the framework importers
(.pt needs torch, .onnx the onnx package, .h5 / .keras h5py; those tests skip without them).
No raw ``ValueError`` / ``KeyError`` / ``MemoryError`` may escape a loader.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from factories import random_model, rewrite_keras

import streamgru as sg
from streamgru.errors import UnsupportedModelError, WeightsError

DATA = Path(__file__).parent / "data"
H, I = 4, 3


def gru_state(layers: int = 1, hidden: int = H, inputs: int = I, prefix: str = "gru.") -> dict:
    """A valid state dict of ones/halves: ``{prefix}weight_ih_l{k}`` ... for ``layers`` layers."""
    sd = {}
    for k in range(layers):
        sd[f"{prefix}weight_ih_l{k}"] = np.full((3 * hidden, inputs if k == 0 else hidden), 0.5)
        sd[f"{prefix}weight_hh_l{k}"] = np.full((3 * hidden, hidden), 0.25)
        sd[f"{prefix}bias_ih_l{k}"] = np.zeros(3 * hidden)
        sd[f"{prefix}bias_hh_l{k}"] = np.zeros(3 * hidden)
    return sd


def save_npz(path: Path, arrays: dict, meta: dict | None = None) -> Path:
    extra = {} if meta is None else {"__metadata__": np.array(json.dumps(meta))}
    np.savez(path, **arrays, **extra)
    return path


# ---------------------------------------------------------------- native files
def test_truncated_safetensors(tmp_path):
    path = tmp_path / "m.safetensors"
    random_model().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"m\.safetensors"):
        sg.load_model(path)


def test_safetensors_shorter_than_its_length_field(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"\x05\x00")
    with pytest.raises(
        WeightsError, match=r"truncated safetensors file \(2 bytes, expected at least 8\)"
    ):
        sg.load_model(path)


def test_header_claiming_more_bytes_than_present(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", 1_000_000) + b'{"a": 1}')
    with pytest.raises(WeightsError, match="header claims 1000000 bytes but only 8 follow"):
        sg.load_model(path)


def test_safetensors_tensor_past_the_end(tmp_path):
    header = json.dumps(
        {"gru.weight_ih_l0": {"dtype": "F32", "shape": [10**9], "data_offsets": [0, 4]}}
    ).encode()
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    with pytest.raises(
        WeightsError, match=r"needs 4000000000 bytes|not a readable safetensors file"
    ):
        sg.load_model(path)


def test_safetensors_dtype_without_numpy_type(tmp_path):
    header = json.dumps(
        {"gru.weight_ih_l0": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}
    ).encode()
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    with pytest.raises(WeightsError, match="BF16"):
        sg.load_model(path)


def test_safetensors_deeply_nested_header(tmp_path):
    header = b"[" * 100_000
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(WeightsError, match="not valid JSON"):
        sg.load_model(path)


def test_native_reset_metadata_must_be_known(tmp_path):
    path = save_npz(tmp_path / "m.npz", gru_state(), {"reset": "sideways"})
    with pytest.raises(WeightsError, match="expected 'after' or 'before', got 'sideways'"):
        sg.load_model(path)


# Readers each extension needs; garbage must become a WeightsError, never a raw exception.
EXTENSION_NEEDS = {
    ".safetensors": None,
    ".npz": None,
    ".pt": "torch",
    ".pth": "torch",
    ".onnx": "onnx",
    ".h5": "h5py",
    ".keras": "h5py",
}


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00" * 3, bytes(range(256)) * 4, b"PK\x03\x04junk"],
    ids=["empty", "nul", "bytes", "zip-magic"],
)
@pytest.mark.parametrize("suffix", sorted(EXTENSION_NEEDS))
def test_garbage_under_each_extension(tmp_path, suffix, content):
    if EXTENSION_NEEDS[suffix]:
        pytest.importorskip(EXTENSION_NEEDS[suffix])
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=f"garbage{suffix}"):
        sg.load_model(path)


def test_unsupported_extension_and_missing_file(tmp_path):
    path = tmp_path / "model.txt"
    path.write_text("gru")
    with pytest.raises(WeightsError, match=r"unsupported extension '\.txt'; expected one of"):
        sg.load_model(path)
    with pytest.raises(WeightsError, match="no such weights file"):
        sg.load_model(tmp_path / "absent.safetensors")


def test_npz_object_array_is_refused_cleanly(tmp_path):
    arrays = gru_state()
    arrays["gru.bias_ih_l0"] = np.array([None, "x"], dtype=object)
    path = save_npz(tmp_path / "m.npz", arrays)
    with pytest.raises(WeightsError, match="Object arrays cannot be loaded"):
        sg.load_model(path)


def test_npz_header_claiming_a_huge_array(tmp_path):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    )
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("gru.weight_ih_l0.npy", buf.getvalue() + b"\0" * 64)
    with pytest.raises(WeightsError, match="the header claims 8000000000000 bytes"):
        sg.load_model(path)


def test_npy_file_named_npz(tmp_path):
    path = tmp_path / "m.npz"
    with open(path, "wb") as fh:
        np.save(fh, np.ones(3))
    with pytest.raises(WeightsError, match=r"not a readable \.npz archive"):
        sg.load_model(path)


# ---------------------------------------------------------------- state dicts
def test_wrong_shape_names_key_expected_and_found():
    sd = gru_state()
    sd["gru.bias_ih_l0"] = np.zeros(3 * H + 1)
    with pytest.raises(
        WeightsError, match=r"gru\.bias_ih_l0: expected shape \(12,\), found \(13,\)"
    ):
        sg.GRUModel.from_state_dict(sd)


def test_wrong_layer_input_width_in_a_file(tmp_path):
    sd = gru_state(layers=2)
    sd["gru.weight_ih_l1"] = np.zeros((3 * H, H + 2))
    path = save_npz(tmp_path / "m.npz", sd)
    with pytest.raises(
        WeightsError, match=r"gru\.weight_ih_l1: expected shape \(12, 4\), found \(12, 6\)"
    ):
        sg.load_model(path)


def test_recurrent_weight_not_square_per_gate():
    sd = gru_state()
    sd["gru.weight_hh_l0"] = np.zeros((4 * H, H))  # an LSTM's shape
    with pytest.raises(
        WeightsError, match=r"gru\.weight_hh_l0: expected shape \(3\*H, H\), found \(16, 4\)"
    ):
        sg.GRUModel.from_state_dict(sd)


def test_missing_middle_layer():
    sd = gru_state(layers=3)
    for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        del sd[f"gru.{kind}_l1"]
    with pytest.raises(WeightsError, match=r"GRU layer 1 is missing: found layers \[0, 2\]"):
        sg.GRUModel.from_state_dict(sd)


def test_bidirectional_state_dict_cannot_stream(tmp_path):
    sd = gru_state()
    sd.update({f"{k}_reverse": v for k, v in gru_state().items()})
    with pytest.raises(UnsupportedModelError, match=r"bidirectional.*cannot run sample by sample"):
        sg.GRUModel.from_state_dict(sd)
    with pytest.raises(UnsupportedModelError, match="_reverse"):
        sg.load_model(save_npz(tmp_path / "bi.npz", sd))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_named(tmp_path, bad):
    sd = gru_state(layers=2)
    sd["gru.weight_hh_l1"][2, 3] = bad
    with pytest.raises(
        WeightsError, match=r"gru\.weight_hh_l1: weights must be finite.*index \(2, 3\)"
    ):
        sg.load_model(save_npz(tmp_path / "m.npz", sd))
    model = random_model()
    path = tmp_path / "m.safetensors"
    model.save(path)
    sd = {k: np.array(v) for k, v in model.state_dict().items()}
    sd["fc.bias"][0] = bad
    from safetensors.numpy import save_file

    save_file(
        {k: v.astype(np.float32) for k, v in sd.items()}, path, metadata=model.native_metadata()
    )
    with pytest.raises(WeightsError, match=r"fc\.bias: weights must be finite"):
        sg.load_model(path)


def test_non_string_keys():
    sd = gru_state()
    sd[7] = np.zeros(3)
    with pytest.raises(WeightsError, match="keys must be strings, got 7"):
        sg.GRUModel.from_state_dict(sd)
    with pytest.raises(WeightsError, match="metadata keys must be strings"):
        sg.GRUModel.from_state_dict(gru_state(), metadata={1: "x"})


@pytest.mark.parametrize(
    "value, message",
    [
        (np.ones((3 * H, I), dtype=complex), "found dtype complex128"),
        (np.ones((3 * H, I), dtype=bool), "found dtype bool"),
        ([[1.0], [1.0, 2.0]], "expected a numeric array, got list"),
    ],
    ids=["complex", "bool", "ragged"],
)
def test_non_numeric_weights(value, message):
    sd = gru_state()
    sd["gru.weight_ih_l0"] = value
    with pytest.raises(WeightsError, match=message):
        sg.GRUModel.from_state_dict(sd)


def test_multi_layer_head_without_activations(tmp_path):
    sd = gru_state()
    sd.update({"head.0.weight": np.ones((5, H)), "head.1.weight": np.ones((2, 5))})
    with pytest.raises(WeightsError, match=r"2 Linear layers.*head_activations"):
        sg.GRUModel.from_state_dict(sd)
    with pytest.raises(WeightsError, match="head_activations"):
        sg.load_model(save_npz(tmp_path / "m.npz", sd))
    model = sg.GRUModel.from_state_dict(sd, metadata={"head_activations": '["relu", "identity"]'})
    assert [d.activation for d in model.head] == ["relu", "identity"]


def test_empty_head_layer_and_zero_input_size():
    sd = gru_state()
    sd["fc.weight"] = np.ones((0, H))
    with pytest.raises(WeightsError, match="head layer 0: expected at least 1 output"):
        sg.GRUModel.from_state_dict(sd)
    sd = gru_state(inputs=0)
    with pytest.raises(WeightsError, match="input_size must be >= 1, got 0"):
        sg.GRUModel.from_state_dict(sd)


def test_unknown_head_activation_is_unsupported():
    sd = gru_state()
    sd["fc.weight"] = np.ones((2, H))
    with pytest.raises(UnsupportedModelError, match="activation 'gelu' is not supported"):
        sg.GRUModel.from_state_dict(sd, metadata={"head_activation": "gelu"})


# ------------------------------------------------------------------------ torch
@pytest.fixture
def torch():
    return pytest.importorskip("torch")


_CANARY: list[str] = []


def _canary() -> None:
    _CANARY.append("code from the file ran")


class Trap:
    """Unpickling this object calls :func:`_canary`: a weights-only load must never do it."""

    def __reduce__(self):
        return (_canary, ())


def test_pickled_module_is_refused_without_running_code(torch, tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(torch.nn.GRU(2, 3), path)
    with pytest.raises(WeightsError, match=r"torch\.nn\.modules\.rnn\.GRU.*model\.state_dict\(\)"):
        sg.load_model(path)
    trap = tmp_path / "trap.pt"
    torch.save({"weight_ih": torch.zeros(3, 1), "trap": Trap()}, trap)
    with pytest.raises(WeightsError, match="state_dict"):
        sg.load_model(trap)
    assert _CANARY == []


def test_torch_non_float_and_non_tensor_values(torch, tmp_path):
    state = torch.nn.GRU(2, 3).state_dict()
    state["weight_hh_l0"] = state["weight_hh_l0"].to(torch.int32)
    torch.save(state, tmp_path / "int.pt")
    with pytest.raises(
        WeightsError,
        match=r"weight_hh_l0: expected a floating-point tensor, found dtype torch\.int32",
    ):
        sg.load_model(tmp_path / "int.pt")
    state = dict(torch.nn.GRU(2, 3).state_dict(), note="trained on Tuesday")
    torch.save(state, tmp_path / "note.pt")
    with pytest.raises(WeightsError, match="note: expected a tensor, found str"):
        sg.load_model(tmp_path / "note.pt")


def test_torch_file_without_a_state_dict(torch, tmp_path):
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(WeightsError, match=r"expected a state_dict.*found Tensor"):
        sg.load_model(tmp_path / "tensor.pt")
    torch.save({"epoch": 3}, tmp_path / "ckpt.pt")
    with pytest.raises(WeightsError, match="no tensors found"):
        sg.load_model(tmp_path / "ckpt.pt")
    torch.save({1: torch.zeros(3)}, tmp_path / "intkey.pt")
    with pytest.raises(WeightsError, match="keys must be strings, found 1"):
        sg.load_model(tmp_path / "intkey.pt")


def test_torch_truncated_file(torch, tmp_path):
    data = (DATA / "torch_model.pt").read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="not a readable PyTorch file"):
        sg.load_model(path)


def test_torch_bidirectional_and_lstm(torch, tmp_path):
    torch.save(torch.nn.GRU(2, 3, bidirectional=True).state_dict(), tmp_path / "bi.pt")
    with pytest.raises(UnsupportedModelError, match="bidirectional"):
        sg.load_model(tmp_path / "bi.pt")
    torch.save(torch.nn.LSTM(2, 3).state_dict(), tmp_path / "lstm.pt")
    with pytest.raises(
        WeightsError, match=r"weight_hh_l0: expected shape \(3\*H, H\), found \(12, 3\)"
    ):
        sg.load_model(tmp_path / "lstm.pt")


# ------------------------------------------------------------------------- onnx
@pytest.fixture
def onnx():
    return pytest.importorskip("onnx")


def onnx_gru_file(
    onnx,
    path: Path,
    gru_attrs=None,
    extra_nodes=(),
    extra_inits=(),
    output="Y",
    gru_inputs=("X", "W", "R", "B"),
    w=None,
) -> Path:
    """One GRU node (H=4, I=3) reading X (T, 1, 3), plus any extra nodes; written to ``path``."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.normal(size=(1, 3 * H, I)).astype(np.float32) if w is None else w
    inits = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(rng.normal(size=(1, 3 * H, H)).astype(np.float32), "R"),
        numpy_helper.from_array(rng.normal(size=(1, 6 * H)).astype(np.float32), "B"),
        *extra_inits,
    ]
    attrs = {"hidden_size": H, **(gru_attrs or {})}
    nodes = [
        helper.make_node("GRU", list(gru_inputs), ["Y", "Y_h"], name="gru", **attrs),
        *extra_nodes,
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["time", 1, I])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(proto.SerializeToString())
    return path


def test_onnx_minimal_gru_loads(onnx, tmp_path):
    """Control for the error tests below: the unmodified builder gives a valid model."""
    model = sg.load_model(onnx_gru_file(onnx, tmp_path / "ok.onnx"))
    assert model.num_layers == 1 and model.hidden_size == H and not model.reset_after


@pytest.mark.parametrize("direction", ["reverse", "bidirectional"])
def test_onnx_direction_cannot_stream(onnx, tmp_path, direction):
    path = onnx_gru_file(onnx, tmp_path / "d.onnx", {"direction": direction})
    with pytest.raises(
        UnsupportedModelError, match=f"direction='{direction}'.*cannot run sample by sample"
    ):
        sg.load_model(path)


def test_onnx_activations_and_clip_refused_by_name(onnx, tmp_path):
    path = onnx_gru_file(onnx, tmp_path / "a.onnx", {"activations": ["HardSigmoid", "Tanh"]})
    with pytest.raises(UnsupportedModelError, match="HardSigmoid"):
        sg.load_model(path)
    path = onnx_gru_file(onnx, tmp_path / "c.onnx", {"clip": 3.0})
    with pytest.raises(UnsupportedModelError, match=r"clip=3\.0"):
        sg.load_model(path)
    ok = onnx_gru_file(onnx, tmp_path / "ok.onnx", {"activations": ["Sigmoid", "Tanh"]})
    assert sg.load_model(ok).num_layers == 1


def test_onnx_lstm_node_named(onnx, tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(1, 4 * H, I)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.normal(size=(1, 4 * H, H)).astype(np.float32), "R"),
    ]
    node = helper.make_node("LSTM", ["X", "W", "R"], ["Y"], name="my_lstm", hidden_size=H)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["time", 1, I])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        inits,
    )
    path = tmp_path / "lstm.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(WeightsError, match="LSTM node 'my_lstm' cannot be mapped"):
        sg.load_model(path)


def test_onnx_unknown_op_on_the_data_path_named(onnx, tmp_path):
    from onnx import helper

    path = onnx_gru_file(
        onnx,
        tmp_path / "abs.onnx",
        extra_nodes=[helper.make_node("Abs", ["Y"], ["out"], name="rectify")],
        output="out",
    )
    with pytest.raises(WeightsError, match="Abs node 'rectify'"):
        sg.load_model(path)


def test_onnx_dropped_layer_is_an_error(onnx, tmp_path):
    """A second GRU that does not feed the output must not silently vanish."""
    from onnx import helper

    extra = [
        helper.make_node("Squeeze", ["Y", "ax"], ["Ys"], name="sq"),
        helper.make_node("GRU", ["Ys", "R", "R"], ["Y2"], name="gru_top", hidden_size=H),
    ]
    from onnx import numpy_helper

    path = onnx_gru_file(
        onnx,
        tmp_path / "dead.onnx",
        extra_nodes=extra,
        output="Y",
        extra_inits=[numpy_helper.from_array(np.array([1], np.int64), "ax")],
    )
    with pytest.raises(WeightsError, match="GRU node 'gru_top' does not feed the output"):
        sg.load_model(path)


@pytest.mark.parametrize("index, loads", [(-1, True), (1, True), (0, False)])
def test_onnx_final_state_of_a_lower_layer(onnx, tmp_path, index, loads):
    """h_n[0] of a 2-layer GRU would drop the top layer: refused; h_n[-1] maps."""
    from onnx import helper, numpy_helper

    extra = [
        helper.make_node("Squeeze", ["Y", "ax"], ["Ys"], name="sq"),
        helper.make_node("GRU", ["Ys", "W1", "R"], ["Y2", "Y2_h"], name="gru_top", hidden_size=H),
        helper.make_node("Concat", ["Y_h", "Y2_h"], ["h_n"], name="h_n", axis=0),
        helper.make_node("Gather", ["h_n", "idx"], ["out"], name="pick", axis=0),
    ]
    inits = [
        numpy_helper.from_array(np.array([1], np.int64), "ax"),
        numpy_helper.from_array(np.array(index, np.int64), "idx"),
        numpy_helper.from_array(np.full((1, 3 * H, H), 0.1, np.float32), "W1"),
    ]
    path = onnx_gru_file(
        onnx, tmp_path / "hn.onnx", extra_nodes=extra, extra_inits=inits, output="out"
    )
    if loads:
        assert sg.load_model(path).num_layers == 2
    else:
        with pytest.raises(WeightsError, match=r"Gather node 'pick' selects .* layer\(s\) 0 of 2"):
            sg.load_model(path)


def test_onnx_nonzero_constant_initial_state(onnx, tmp_path):
    from onnx import numpy_helper

    h0 = numpy_helper.from_array(np.full((1, 1, H), 0.5, np.float32), "h0")
    path = onnx_gru_file(
        onnx, tmp_path / "h0.onnx", extra_inits=[h0], gru_inputs=("X", "W", "R", "B", "", "h0")
    )
    with pytest.raises(UnsupportedModelError, match="initial_h"):
        sg.load_model(path)
    zero = numpy_helper.from_array(np.zeros((1, 1, H), np.float32), "h0")
    ok = onnx_gru_file(
        onnx, tmp_path / "zero.onnx", extra_inits=[zero], gru_inputs=("X", "W", "R", "B", "", "h0")
    )
    assert sg.load_model(ok).num_layers == 1


def test_onnx_transpose_of_the_feature_axis(onnx, tmp_path):
    from onnx import helper

    node = helper.make_node("Transpose", ["Y"], ["Yt"], name="swap", perm=[0, 1, 3, 2])
    path = onnx_gru_file(onnx, tmp_path / "t.onnx", extra_nodes=[node], output="Yt")
    with pytest.raises(WeightsError, match=r"Transpose node 'swap'.*feature"):
        sg.load_model(path)


def test_onnx_residual_add(onnx, tmp_path):
    from onnx import helper, numpy_helper

    extra = [
        helper.make_node("MatMul", ["Y", "M"], ["a"], name="fc"),
        helper.make_node("Add", ["a", "Y"], ["out"], name="skip"),
    ]
    path = onnx_gru_file(
        onnx,
        tmp_path / "res.onnx",
        extra_nodes=extra,
        output="out",
        extra_inits=[numpy_helper.from_array(np.eye(H, dtype=np.float32), "M")],
    )
    with pytest.raises(WeightsError, match="Add node 'skip'"):
        sg.load_model(path)


def test_onnx_weights_non_finite_and_wrong_shape(onnx, tmp_path):
    w = np.ones((1, 3 * H, I), np.float32)
    w[0, 1, 2] = np.nan
    with pytest.raises(WeightsError, match=r"input W .*finite"):
        sg.load_model(onnx_gru_file(onnx, tmp_path / "nan.onnx", w=w))
    with pytest.raises(
        WeightsError, match=r"W: expected shape \(1, 12, input_size\), found \(1, 9, 3\)"
    ):
        sg.load_model(
            onnx_gru_file(onnx, tmp_path / "shape.onnx", w=np.ones((1, 9, I), np.float32))
        )


def test_onnx_external_data_refused(onnx, tmp_path):
    path = onnx_gru_file(onnx, tmp_path / "ext.onnx")
    proto = onnx.load(str(path))
    tensor = proto.graph.initializer[0]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../../etc/passwd"
    tensor.ClearField("raw_data")
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(WeightsError, match="external data"):
        sg.load_model(path)


def test_onnx_truncated_export(onnx, tmp_path):
    data = (DATA / "torch_export.onnx").read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(WeightsError, match=r"cut\.onnx"):
        sg.load_model(path)


# ------------------------------------------------------------------------ keras
@pytest.fixture
def h5py():
    return pytest.importorskip("h5py")


def layer_config(config: dict, name: str) -> dict:
    return next(
        layer["config"]
        for layer in config["config"]["layers"]
        if layer["config"].get("name") == name
    )


def test_keras_unchanged_copy_loads(h5py, tmp_path):
    """Control for the edits below: a rewritten but unedited archive loads."""
    assert sg.load_model(rewrite_keras(h5py, tmp_path / "same.keras")).num_layers == 2


@pytest.mark.parametrize(
    "key, value, error, message",
    [
        ("go_backwards", True, UnsupportedModelError, "go_backwards=True"),
        (
            "recurrent_activation",
            "hard_sigmoid",
            UnsupportedModelError,
            "recurrent_activation='hard_sigmoid'.*changed between Keras 2 and Keras 3",
        ),
        ("activation", "relu", UnsupportedModelError, "activation='relu' is not supported"),
        (
            "units",
            7,
            WeightsError,
            r"gru_1/cell/vars/0 \(kernel\): expected shape \(12, 21\), found \(12, 36\)",
        ),
    ],
)
def test_keras_gru_settings_refused(h5py, tmp_path, key, value, error, message):
    def edit(config):
        layer_config(config, "gru_1")[key] = value

    path = rewrite_keras(h5py, tmp_path / "m.keras", edit)
    with pytest.raises(error, match=message):
        sg.load_model(path)


@pytest.mark.parametrize(
    "class_name, error, message",
    [
        ("Lambda", WeightsError, "Lambda layer holds Python code"),
        ("Bidirectional", UnsupportedModelError, "bidirectional"),
        ("Conv1D", WeightsError, r"layer 'gru' \(Conv1D\) cannot be mapped"),
    ],
)
def test_keras_layer_kinds_refused_by_name(h5py, tmp_path, class_name, error, message):
    def edit(config):
        config["config"]["layers"][1]["class_name"] = class_name

    path = rewrite_keras(h5py, tmp_path / "m.keras", edit)
    with pytest.raises(error, match=message):
        sg.load_model(path)


def test_keras_dense_activation_refused(h5py, tmp_path):
    def edit(config):
        layer_config(config, "dense")["activation"] = "gelu"

    with pytest.raises(UnsupportedModelError, match="activation 'gelu' is not supported"):
        sg.load_model(rewrite_keras(h5py, tmp_path / "m.keras", edit))


def test_keras_subclassed_model_refused(h5py, tmp_path):
    def edit(config):
        config["class_name"] = "MyModel"
        config["config"]["layers"] = [{"class_name": "GRU", "config": {}}]

    with pytest.raises(WeightsError, match="model class 'MyModel'"):
        sg.load_model(rewrite_keras(h5py, tmp_path / "m.keras", edit))


def test_keras_weights_non_finite_and_integer(h5py, tmp_path):
    def nan(h5):
        h5["layers/gru_1/cell/vars/1"][0, 0] = np.nan

    with pytest.raises(
        WeightsError, match=r"gru_1/cell/vars/1 \(recurrent_kernel\): weights must be finite"
    ):
        sg.load_model(rewrite_keras(h5py, tmp_path / "nan.keras", edit_weights=nan))

    def integer(h5):
        del h5["layers/dense/vars/1"]
        h5["layers/dense/vars/1"] = np.zeros(8, dtype=np.int32)

    with pytest.raises(
        WeightsError, match=r"dense/vars/1 \(bias\): expected floating-point weights"
    ):
        sg.load_model(rewrite_keras(h5py, tmp_path / "int.keras", edit_weights=integer))


def test_keras_archive_missing_weights_and_truncated(h5py, tmp_path):
    path = tmp_path / "noweights.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", "{}")
    with pytest.raises(WeightsError, match=r"no 'model\.weights\.h5'"):
        sg.load_model(path)
    data = (DATA / "keras_reset_after.keras").read_bytes()
    cut = tmp_path / "cut.keras"
    cut.write_bytes(data[: len(data) - 200])
    with pytest.raises(WeightsError, match=r"cut\.keras"):
        sg.load_model(cut)


def test_keras_oversized_member_refused(h5py, tmp_path):
    path = tmp_path / "big.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", b" " * (17 * 2**20))  # compresses to a few kB
        zf.writestr("model.weights.h5", b"")
    with pytest.raises(
        WeightsError, match=r"config\.json claims 17825792 bytes, more than the limit"
    ):
        sg.load_model(path)


def test_legacy_h5_without_config_and_with_external_link(h5py, tmp_path):
    import shutil

    bare = tmp_path / "bare.h5"
    shutil.copy(DATA / "keras_legacy.h5", bare)
    with h5py.File(bare, "r+") as h5:
        del h5.attrs["model_config"]
    with pytest.raises(WeightsError, match="weights-only file"):
        sg.load_model(bare)

    linked = tmp_path / "linked.h5"
    shutil.copy(DATA / "keras_legacy.h5", linked)
    with h5py.File(linked, "r+") as h5:
        group = h5["model_weights/gru_a/gru_a/gru_cell"]
        del group["kernel"]
        group["kernel"] = h5py.ExternalLink("/etc/secret.h5", "/data")
    with pytest.raises(WeightsError, match="link into another file"):
        sg.load_model(linked)


def test_keras_branching_functional_model_refused(h5py, tmp_path):
    def edit(config):
        layers = config["config"]["layers"]
        dense = next(layer for layer in layers if layer["class_name"] == "Dense")
        dense["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0] = "input_layer_9"

    import shutil

    shutil.copy(DATA / "keras_legacy.h5", tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        edit(config)
        h5.attrs["model_config"] = json.dumps(config)
    with pytest.raises(WeightsError, match="streamgru maps a chain"):
        sg.load_model(tmp_path / "m.h5")


def test_keras_truncated_legacy_h5_and_config_of_the_wrong_type(h5py, tmp_path):
    data = (DATA / "keras_legacy.h5").read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"cut\.h5: not a readable HDF5 file"):
        sg.load_model(cut)

    def edit(config):
        config["config"]["layers"][1]["config"] = ["not", "a", "dict"]

    with pytest.raises(WeightsError, match=r"m\.keras"):
        sg.load_model(rewrite_keras(h5py, tmp_path / "m.keras", edit))


def test_onnx_node_missing_inputs(onnx, tmp_path):
    from onnx import helper

    node = helper.make_node("Gather", ["Y"], ["out"], name="broken")
    path = onnx_gru_file(onnx, tmp_path / "g.onnx", extra_nodes=[node], output="out")
    with pytest.raises(WeightsError, match=r"g\.onnx"):
        sg.load_model(path)


# ------------------------------------------------- issue 19: hostile native files (points 2, 6)
def _safetensors(path: Path, tensors: dict, meta: dict | None = None, tail: int = 0) -> Path:
    """Write a safetensors file by hand: ``tensors`` name → (dtype code, shape, raw bytes);
    ``tail`` bytes of sparse hole after the data (no disk used)."""
    header: dict = {}
    data = b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    if meta is not None:
        header["__metadata__"] = meta
    blob = json.dumps(header).encode()
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(blob)) + blob + data)
        if tail:
            fh.truncate(fh.tell() + tail)
    return path


def _f32(arrays: dict) -> dict:
    return {k: ("F32", list(v.shape), v.astype("<f4").tobytes()) for k, v in arrays.items()}


_PEAK_RSS = """
import sys
import streamgru as sg
from streamgru.errors import WeightsError
try:
    sg.load_model(sys.argv[1])
    print("loaded", end=" ")
except WeightsError as exc:
    print("refused", str(exc)[:200].replace(" ", "_"), end=" ")
# VmHWM: this process image's peak RSS (ru_maxrss would include the parent's, from the fork)
print([line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")][0])
"""


@pytest.mark.parametrize("kind", ["tensor claims 12 GB", "12 GB of holes after the tensors"])
def test_a_12_gb_sparse_safetensors_file_costs_no_memory(tmp_path, kind, record_property):
    """Issue 19, point 2: a 12 GB sparse file took 12.6 GB of memory (read whole) and a raw
    MemoryError escaped under a memory limit. The header is checked against the file size and
    the tensors are memory-mapped: the claim is refused, the real tensors alone are read."""
    import subprocess
    import sys

    size = 12 * 10**9
    path = tmp_path / "sparse.safetensors"
    if kind == "tensor claims 12 GB":
        spec = {"dtype": "F32", "shape": [size // 4], "data_offsets": [0, size]}
        blob = json.dumps({"gru.weight_ih_l0": spec}).encode()
        with open(path, "wb") as fh:
            fh.write(struct.pack("<Q", len(blob)) + blob)
            fh.truncate(8 + len(blob) + size)
    else:
        _safetensors(path, _f32(gru_state()), {"fs": "250"}, tail=size)
    assert path.stat().st_size > size and path.stat().st_blocks * 512 < 10**8  # sparse
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    verdict, *why, rss_kib = done.stdout.split()
    if kind == "tensor claims 12 GB":
        assert verdict == "refused" and "sparse.safetensors" in why[0] and "allowed" in why[0]
    else:
        assert verdict == "loaded"
    assert int(rss_kib) < 1_000_000, f"peak RSS {int(rss_kib) / 1024:.0f} MiB"
    record_property(
        "summary",
        f"12 GB sparse safetensors ({kind}): {verdict}, peak RSS {int(rss_kib) / 1024:.0f} MiB",
    )


def test_memory_error_while_loading_is_a_weights_error(tmp_path, monkeypatch):
    from streamgru.model.formats import native

    path = _safetensors(tmp_path / "m.safetensors", _f32(gru_state()))

    def no_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(native.np, "memmap", no_memory)
    with pytest.raises(WeightsError, match=r"m\.safetensors: not enough memory"):
        sg.load_model(path)


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
@pytest.mark.parametrize(
    "case, message",
    [
        ("int32 weights", r"dtype .*(I32|int32).* refused"),
        ("int32 header over float32 bytes", r"dtype 'I32' refused"),
        ("no bias_hh", r"weight_(ih|hh)_l0 has no gru\.bias_hh_l0"),
        ("fs nan", r"metadata 'fs': expected a finite sample rate > 0 Hz, got 'NaN'"),
        ("fs negative", r"metadata 'fs': expected a finite sample rate > 0 Hz, got '-250'"),
        ("fs inf", r"metadata 'fs': expected a finite sample rate"),
        ("threshold text", r"metadata 'threshold': expected a finite number, got 'high'"),
        ("100000 labels", r"metadata 'channels': expected 3 label\(s\) or the count 3"),
    ],
)
def test_native_loaders_refuse_what_the_importers_refuse(tmp_path, suffix, case, message):
    """Issue 19, point 6: each of these loaded before (int32 weights, a zero bias_hh made up,
    a NaN or negative rate, a text threshold, 100 000 labels for a 3-input model)."""
    arrays = gru_state()
    meta = {"fs": "250"}
    if case == "int32 weights":
        arrays["gru.weight_hh_l0"] = arrays["gru.weight_hh_l0"].astype(np.int32)
    elif case == "no bias_hh":
        del arrays["gru.bias_hh_l0"]
    elif case.startswith("fs"):
        meta["fs"] = {"fs nan": "NaN", "fs negative": "-250", "fs inf": "Infinity"}[case]
    elif case == "threshold text":
        meta["threshold"] = '"high"'
    elif case == "100000 labels":
        meta["channels"] = json.dumps([f"c{k}" for k in range(100_000)])
    if case == "int32 header over float32 bytes" and suffix == ".npz":
        case, message = "int32 weights", r"dtype int32 refused"
        arrays["gru.weight_hh_l0"] = arrays["gru.weight_hh_l0"].astype(np.int32)
    path = tmp_path / f"m{suffix}"
    if suffix == ".npz":
        save_npz(path, arrays, meta)  # string values, kept as they are (like safetensors')
    else:
        tensors = _f32(arrays)
        if case == "int32 weights":
            raw = arrays["gru.weight_hh_l0"].astype("<i4").tobytes()
            tensors["gru.weight_hh_l0"] = ("I32", [3 * H, H], raw)
        if case == "int32 header over float32 bytes":
            _, shape, raw = tensors["gru.weight_hh_l0"]
            tensors["gru.weight_hh_l0"] = ("I32", shape, raw)  # float32 bytes, int32 claimed
        _safetensors(path, tensors, meta)
    with pytest.raises(WeightsError, match=message) as info:
        sg.load_model(path)
    assert str(path) in str(info.value)


def test_keras_member_that_expands_a_hundredfold_is_refused_unread(h5py, tmp_path):
    """Issue 19, point 2: a .keras member whose declared size is under the limit but absurd for
    its compressed size (a zip bomb) is refused before it is read."""
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("model.weights.h5", bytes(80 * 2**20))  # 80 MiB of zeros: about 80 kB
    with pytest.raises(
        WeightsError, match=r"bomb\.keras: model\.weights\.h5 claims 83886080 .*zip bomb"
    ):
        sg.load_model(path)


def test_keras_memory_error_is_a_weights_error(h5py, tmp_path, monkeypatch):
    from streamgru.model.formats import keras_import

    def no_memory(path):
        raise MemoryError()

    monkeypatch.setattr(keras_import, "_read_archive", no_memory)
    with pytest.raises(WeightsError, match=r"keras_reset_after\.keras: not enough memory"):
        sg.load_model(DATA / "keras_reset_after.keras")
