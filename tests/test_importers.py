"""Framework importers and reference vectors against the frameworks' own outputs.

The data under ``tests/data/`` was written by ``tools/make_reference_vectors.py`` (PyTorch, ONNX
Runtime, Keras); these tests need no framework at run time except the readers themselves: torch
for ``.pt``, the ``onnx`` package for ``.onnx`` and h5py for ``.keras`` / ``.h5``.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from factories import rewrite_keras

import streamgru as sg

DATA = Path(__file__).parent / "data"

#: Tolerances of the float64 oracle against a framework's output, per source dtype.
TOL = {"float32": {"atol": 1e-5, "rtol": 1e-5}, "float64": {"atol": 1e-9, "rtol": 1e-9}}

#: Reference cases the generator writes; the glob below must find at least these.
EXPECTED_CASES = {
    "gru1_i1_f32",
    "gru1_i5_h0_f32",
    "gru3_i1_f32",
    "gru3_i5_h0_f32",
    "gru1_i5_nobias_h0_f32",
    "gru3_i5_nobias_h0_f64",
    "gru1_i1_f64",
    "gru2_i5_h0_f64",
    "long_gru2_i1_h0_f32",
    "cell_i5_h0_f32",
    "cell_i1_f64",
    "linear_i5_f32",
    "linear_i8_h64_h0_f32",
    "linear_i5_h0_f64",
    "mlp_gru2_i5_h0_f32",
}
REF_CASES = sorted(p.name[len("ref_") : -len("_io.npz")] for p in DATA.glob("ref_*_io.npz"))


def load_io(name: str) -> dict[str, np.ndarray]:
    """``tests/data/<name>_io.npz`` as a dict: x (T, I), h0 (L, H), y (T, O), dtype, ..."""
    with np.load(DATA / f"{name}_io.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def assert_matches_framework(model: sg.GRUModel, ref: dict[str, np.ndarray]) -> None:
    """The float64 oracle reproduces the framework's output after every sample."""
    dtype = str(ref["dtype"])
    assert model.num_layers == ref["h0"].shape[0]
    assert model.hidden_size == ref["h0"].shape[1]
    assert model.output_size == ref["y"].shape[1]
    got = model.forward(ref["x"], ref["h0"])
    np.testing.assert_allclose(got, ref["y"], **TOL[dtype])


# -------------------------------------------------------------- reference cases
def test_reference_cases_are_all_present():
    assert EXPECTED_CASES <= set(REF_CASES)


@pytest.mark.parametrize("case", REF_CASES)
def test_reference_case_matches_oracle(case):
    model = sg.load_model(DATA / f"ref_{case}.npz")
    ref = load_io(f"ref_{case}")
    assert str(ref["dtype"]) in TOL
    assert ref["x"].dtype == np.dtype(str(ref["dtype"]))
    assert_matches_framework(model, ref)


@pytest.mark.parametrize("case", REF_CASES)
def test_reference_case_records_provenance(case):
    ref = load_io(f"ref_{case}")
    assert str(ref["framework"]) == "torch"
    assert str(ref["version"]).startswith("2.")
    assert int(ref["seed"]) > 0
    model = sg.load_model(DATA / f"ref_{case}.npz")
    assert model.metadata["mapping"] == "pytorch state_dict: as is"
    assert model.metadata["reference_case"] == case


def test_reference_cases_cover_the_matrix():
    """1 and 3 layers, input 1 and 5, no bias, nonzero h0, long, both dtypes, cell, heads."""
    refs = {case: load_io(f"ref_{case}") for case in REF_CASES}
    layers = {r["h0"].shape[0] for r in refs.values()}
    inputs = {r["x"].shape[1] for r in refs.values()}
    assert {1, 3} <= layers and {1, 5} <= inputs
    assert {"float32", "float64"} == {str(r["dtype"]) for r in refs.values()}
    assert max(r["x"].shape[0] for r in refs.values()) >= 2000
    assert any(np.any(r["h0"]) for r in refs.values())
    assert any(not np.any(r["h0"]) for r in refs.values())
    nobias = sg.load_model(DATA / "ref_gru1_i5_nobias_h0_f32.npz")
    assert not np.any(nobias.layers[0].bias_ih) and not np.any(nobias.layers[0].bias_hh)
    mlp = sg.load_model(DATA / "ref_mlp_gru2_i5_h0_f32.npz")
    assert [d.activation for d in mlp.head] == ["relu", "identity"]


def test_float32_reference_weights_are_stored_exactly_as_float32():
    for case in REF_CASES:
        if not case.endswith("_f32"):
            continue
        with np.load(DATA / f"ref_{case}.npz", allow_pickle=False) as npz:
            dtypes = {npz[k].dtype for k in npz.files if k != "__metadata__"}
        assert dtypes == {np.dtype(np.float32)}, case


def test_data_directory_stays_small():
    assert sum(p.stat().st_size for p in DATA.iterdir() if p.is_file()) < 3 * 2**20


# ------------------------------------------------------------------------ torch
@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def test_torch_state_dict_file(torch):
    model = sg.load_model(DATA / "torch_model.pt")
    assert model.num_layers == 3 and model.input_size == 4 and model.output_size == 2
    assert model.metadata["mapping"] == "pytorch GRU state_dict: as is"
    assert model.reset_after
    assert_matches_framework(model, load_io("torch_model"))


def test_torch_gru_cell_file_is_one_layer(torch):
    model = sg.load_model(DATA / "torch_gru_cell.pt")
    assert model.num_layers == 1 and not model.head
    assert "GRUCell" in model.metadata["mapping"]
    assert_matches_framework(model, load_io("torch_gru_cell"))


def test_torch_checkpoint_dict_with_metadata(torch, tmp_path):
    """A training checkpoint: the state_dict under 'model_state_dict', activations in 'metadata'."""
    with np.load(DATA / "ref_mlp_gru2_i5_h0_f32.npz", allow_pickle=False) as npz:
        state = {k: torch.from_numpy(npz[k]) for k in npz.files if k != "__metadata__"}
    path = tmp_path / "ckpt.pth"
    torch.save(
        {
            "epoch": 7,
            "model_state_dict": state,
            "metadata": {"head_activations": '["relu", "identity"]'},
        },
        path,
    )
    model = sg.load_model(path)
    assert "checkpoint['model_state_dict']" in model.metadata["mapping"]
    assert_matches_framework(model, load_io("ref_mlp_gru2_i5_h0_f32"))


def test_torch_float64_state_dict_keeps_float64(torch, tmp_path):
    with np.load(DATA / "ref_gru2_i5_h0_f64.npz", allow_pickle=False) as npz:
        state = {k: torch.from_numpy(npz[k]) for k in npz.files if k != "__metadata__"}
    assert all(t.dtype == torch.float64 for t in state.values())
    torch.save(state, tmp_path / "f64.pt")
    assert_matches_framework(sg.load_model(tmp_path / "f64.pt"), load_io("ref_gru2_i5_h0_f64"))


def test_torch_half_precision_is_widened_exactly(torch, tmp_path):
    gru = torch.nn.GRU(2, 4)
    state = {k: v.to(torch.bfloat16) for k, v in gru.state_dict().items()}
    torch.save(state, tmp_path / "bf16.pt")
    model = sg.load_model(tmp_path / "bf16.pt")
    np.testing.assert_array_equal(
        model.layers[0].weight_ih, state["weight_ih_l0"].to(torch.float64).numpy()
    )


# ------------------------------------------------------------------------- onnx
@pytest.fixture
def onnx():
    return pytest.importorskip("onnx")


def test_onnx_torch_export_keeps_all_layers(onnx):
    model = sg.load_model(DATA / "torch_export.onnx")
    assert model.num_layers == 3 and model.reset_after
    mapping = model.metadata["mapping"]
    assert "z,r,h -> r,z,n" in mapping and "linear_before_reset=1" in mapping
    assert "3 GRU layer(s)" in mapping
    assert json.loads(model.metadata["onnx_initial_state_inputs"]) == ["h0"]
    assert_matches_framework(model, load_io("torch_export"))


def test_onnx_final_state_classifier_streams(onnx):
    """sigmoid(fc(h_n[-1])): the stepper's output at t equals the framework run on x[:t+1]."""
    model = sg.load_model(DATA / "torch_export_hn.onnx")
    assert model.num_layers == 2
    assert [d.activation for d in model.head] == ["sigmoid"]
    assert_matches_framework(model, load_io("torch_export_hn"))


def test_onnx_reset_before_with_gemm_head(onnx):
    model = sg.load_model(DATA / "onnx_lbr0.onnx")
    assert not model.reset_after
    assert "linear_before_reset=0 (reset before)" in model.metadata["mapping"]
    assert [d.activation for d in model.head] == ["sigmoid"]
    assert_matches_framework(model, load_io("onnx_lbr0"))


def test_onnx_stacked_nodes_and_matmul_head(onnx):
    model = sg.load_model(DATA / "onnx_stack.onnx")
    assert model.num_layers == 2
    assert [d.activation for d in model.head] == ["relu", "softmax"]
    assert "MatMul weight (in, out) transposed" in model.metadata["mapping"]
    assert_matches_framework(model, load_io("onnx_stack"))


def test_onnx_reset_convention_matters(onnx):
    """Control: the lbr=0 file run as reset-after misses the framework (the test can fail)."""
    model = sg.load_model(DATA / "onnx_lbr0.onnx")
    wrong = sg.GRUModel.from_state_dict(
        model.state_dict(),
        convention="pytorch",
        metadata={"head_activations": json.dumps([d.activation for d in model.head])},
    )
    ref = load_io("onnx_lbr0")
    assert np.max(np.abs(wrong.forward(ref["x"], ref["h0"]) - ref["y"])) > 1e-3


def _single_gru_onnx(onnx, path: Path, layout: int, rng) -> None:
    from onnx import TensorProto, helper, numpy_helper

    hid, inp = 5, 3
    inits = [
        numpy_helper.from_array(rng.normal(size=(1, 3 * hid, inp)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.normal(size=(1, 3 * hid, hid)).astype(np.float32), "R"),
        numpy_helper.from_array(rng.normal(size=(1, 6 * hid)).astype(np.float32), "B"),
    ]
    dims = ["time", 1, inp] if layout == 0 else [1, "time", inp]
    node = helper.make_node(
        "GRU", ["X", "W", "R", "B"], ["Y"], hidden_size=hid, layout=layout, linear_before_reset=1
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())


def test_onnx_layout_1_reads_the_same_weights(onnx, tmp_path):
    _single_gru_onnx(onnx, tmp_path / "l0.onnx", 0, np.random.default_rng(5))
    _single_gru_onnx(onnx, tmp_path / "l1.onnx", 1, np.random.default_rng(5))
    a, b = sg.load_model(tmp_path / "l0.onnx"), sg.load_model(tmp_path / "l1.onnx")
    assert a.checksum() == b.checksum()
    assert a.output_size == 5 and not a.head


def test_onnx_gate_reorder_against_explicit_formula(onnx, tmp_path):
    """One step from zero state, written with ONNX's own z, r, h blocks (reset after)."""
    rng = np.random.default_rng(6)
    _single_gru_onnx(onnx, tmp_path / "g.onnx", 0, rng)
    proto = onnx.load(str(tmp_path / "g.onnx"))
    w, r, b = (onnx.numpy_helper.to_array(t).astype(np.float64) for t in proto.graph.initializer)
    hid = r.shape[-1]
    x = np.array([0.3, -1.2, 0.7])
    wz, wr, wh = np.split(w[0] @ x, 3)
    bz, br, bh, rbz, rbr, rbh = np.split(b[0], 6)
    z = 1 / (1 + np.exp(-(wz + bz + rbz)))
    rr = 1 / (1 + np.exp(-(wr + br + rbr)))
    h = (1 - z) * np.tanh(wh + bh + rr * rbh)
    model = sg.load_model(tmp_path / "g.onnx")
    np.testing.assert_allclose(model.forward(x[None])[0], h, atol=1e-12)
    assert hid == model.hidden_size


# ------------------------------------------------------------------------ keras
@pytest.fixture
def h5py():
    return pytest.importorskip("h5py")


def test_keras_reset_after_keeps_both_layers(h5py):
    model = sg.load_model(DATA / "keras_reset_after.keras")
    assert model.num_layers == 2 and model.reset_after
    assert [d.activation for d in model.head] == ["relu", "identity"]
    assert "reset_after=True" in model.metadata["mapping"]
    assert model.metadata["source_format"] == "keras"
    assert_matches_framework(model, load_io("keras_reset_after"))


def test_keras_reset_before(h5py):
    model = sg.load_model(DATA / "keras_reset_before.keras")
    assert model.num_layers == 2 and not model.reset_after
    assert "reset_after=False (reset before)" in model.metadata["mapping"]
    assert not np.any(model.layers[0].bias_hh) and np.any(model.layers[0].bias_ih)
    assert [d.activation for d in model.head] == ["softmax"]
    assert_matches_framework(model, load_io("keras_reset_before"))


def test_keras_legacy_h5_functional(h5py):
    model = sg.load_model(DATA / "keras_legacy.h5")
    assert model.num_layers == 1
    assert [d.activation for d in model.head] == ["sigmoid"]  # Dense + Activation, no Dropout
    assert "mapping" in model.metadata
    assert_matches_framework(model, load_io("keras_legacy"))


def test_keras_reset_convention_matters(h5py):
    model = sg.load_model(DATA / "keras_reset_before.keras")
    wrong = sg.GRUModel.from_state_dict(
        model.state_dict(), convention="pytorch", metadata={"head_activation": "softmax"}
    )
    ref = load_io("keras_reset_before")
    assert np.max(np.abs(wrong.forward(ref["x"], ref["h0"]) - ref["y"])) > 1e-3


def keras_layer(config: dict, name: str) -> dict:
    """The config dict of the layer called ``name`` in a Keras model config."""
    return next(
        layer["config"]
        for layer in config["config"]["layers"]
        if layer["config"].get("name") == name
    )


def test_keras_use_bias_false_means_zero_biases(h5py, tmp_path):
    def config(cfg):
        keras_layer(cfg, "gru")["use_bias"] = False
        keras_layer(cfg, "dense_1")["use_bias"] = False

    def weights(h5):
        del h5["layers/gru/cell/vars/2"]
        del h5["layers/dense_1/vars/1"]

    rewrite_keras(h5py, tmp_path / "nb.keras", config, weights)
    original = sg.load_model(DATA / "keras_reset_after.keras")
    model = sg.load_model(tmp_path / "nb.keras")
    assert model.num_layers == 2
    assert not np.any(model.layers[0].bias_ih) and not np.any(model.layers[0].bias_hh)
    np.testing.assert_array_equal(model.layers[1].bias_ih, original.layers[1].bias_ih)
    np.testing.assert_array_equal(model.layers[0].weight_hh, original.layers[0].weight_hh)
    assert not np.any(model.head[1].bias)
    np.testing.assert_array_equal(model.head[1].weight, original.head[1].weight)


def test_keras_gate_mapping_against_explicit_formula(h5py):
    """One step of Keras' own equations (z, r, h columns, reset after) from the stored arrays."""
    with zipfile.ZipFile(DATA / "keras_reset_after.keras") as zf:
        with h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as h5:
            kernel = h5["layers/gru/cell/vars/0"][()].astype(np.float64)
            rec = h5["layers/gru/cell/vars/1"][()].astype(np.float64)
            bias = h5["layers/gru/cell/vars/2"][()].astype(np.float64)
    hid = rec.shape[0]
    x, h = np.array([0.5, -0.1, 1.5]), np.zeros(hid)
    xz, xr, xh = np.split(x @ kernel + bias[0], 3)
    hz, hr, hh = np.split(h @ rec + bias[1], 3)
    z = 1 / (1 + np.exp(-(xz + hz)))
    r = 1 / (1 + np.exp(-(xr + hr)))
    expected = z * h + (1 - z) * np.tanh(xh + r * hh)
    model = sg.load_model(DATA / "keras_reset_after.keras")
    from streamgru.model.reference import gru_cell_reference

    got = gru_cell_reference(model.layers[0], x, h, reset_after=True)
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_keras_archive_without_layer_names_in_the_weights(h5py, tmp_path):
    """Older Keras 3 archives: weight groups found by snake_case(class) + counter."""

    def strip(h5):
        for key in h5["layers"]:
            for sub in ("vars", "cell/vars"):
                if sub in h5[f"layers/{key}"]:
                    h5[f"layers/{key}/{sub}"].attrs.pop("name", None)

    path = tmp_path / "anon.keras"
    rewrite_keras(h5py, path, edit_weights=strip)
    original = sg.load_model(DATA / "keras_reset_after.keras")
    assert sg.load_model(path).checksum() == original.checksum()


def test_keras2_style_h5(h5py, tmp_path):
    """A Keras 2 (TensorFlow era) H5: ``kernel:0`` names, list-style inbound nodes, bytes attrs."""
    with h5py.File(DATA / "keras_legacy.h5", "r") as src:
        cell = src["model_weights/gru_a/gru_a/gru_cell"]
        gru = {k: cell[k][()] for k in ("kernel", "recurrent_kernel", "bias")}
        dense = {k: src[f"model_weights/score/score/{k}"][()] for k in ("kernel", "bias")}
    gru_cfg = {
        "name": "gru_a",
        "units": 8,
        "activation": "tanh",
        "recurrent_activation": "sigmoid",
        "use_bias": True,
        "reset_after": True,
        "go_backwards": False,
        "return_sequences": True,
        "implementation": 2,
        "time_major": False,
    }
    layers = [
        {
            "class_name": "InputLayer",
            "name": "input_1",
            "inbound_nodes": [],
            "config": {"name": "input_1", "batch_input_shape": [None, None, 2]},
        },
        {
            "class_name": "GRU",
            "name": "gru_a",
            "config": gru_cfg,
            "inbound_nodes": [[["input_1", 0, 0, {}]]],
        },
        {
            "class_name": "Dropout",
            "name": "dropout",
            "config": {"name": "dropout", "rate": 0.25},
            "inbound_nodes": [[["gru_a", 0, 0, {}]]],
        },
        {
            "class_name": "Dense",
            "name": "score",
            "inbound_nodes": [[["dropout", 0, 0, {}]]],
            "config": {"name": "score", "units": 1, "activation": "linear", "use_bias": True},
        },
        {
            "class_name": "Activation",
            "name": "activation",
            "config": {"name": "activation", "activation": "sigmoid"},
            "inbound_nodes": [[["score", 0, 0, {}]]],
        },
    ]
    config = {"class_name": "Functional", "config": {"name": "model", "layers": layers}}
    path = tmp_path / "k2.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(config).encode()
        h5.attrs["keras_version"] = b"2.13.1"
        root = h5.create_group("model_weights")
        group = root.create_group("gru_a")
        names = [f"gru_a/gru_cell/{k}:0" for k in ("kernel", "recurrent_kernel", "bias")]
        group.attrs["weight_names"] = [n.encode() for n in names]
        for name, key in zip(names, ("kernel", "recurrent_kernel", "bias")):
            group[name] = gru[key]
        group = root.create_group("score")
        group.attrs["weight_names"] = [b"score/kernel:0", b"score/bias:0"]
        group["score/kernel:0"], group["score/bias:0"] = dense["kernel"], dense["bias"]
    model = sg.load_model(path)
    assert model.metadata["keras_version"] == "2.13.1"
    assert_matches_framework(model, load_io("keras_legacy"))
