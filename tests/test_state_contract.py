"""One state contract, checked over every stateful class (as river's ``check_estimator`` does).

Every case below is a stateful object behind the same small adapter: ``feed(obj, X)`` advances
it and returns its outputs, ``snapshot()`` / ``restore(bytes)`` / ``reset()`` as the class has
them. Each check runs over every case:

* ``reset()`` returns to the initial state (same outputs and the same snapshot as a new one);
* a snapshot restored into a new object (and into the original, after it wandered off)
  continues bit-identically;
* a blob of another kind, another model (or sections or ratio), truncated, bit-flipped, of
  another envelope version or written by an older streamgru is refused with the right
  :mod:`streamgru.state` error, and the state is left unchanged;
* the dtype is kept; a blob of another dtype, an array of another shape and input of another
  shape raise the right errors;
* ``pickle`` and ``copy.deepcopy`` give an independent object that continues bit-identically.

The CUDA cases run in this process when it can run ``device="cuda"`` (a GPU, or
``NUMBA_ENABLE_CUDASIM=1`` set by the caller); otherwise
:func:`test_cuda_cases_under_simulator` runs them in a subprocess with the simulator on.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from factories import random_model
from test_daemon_helpers import stream_plan, tiny_model, two_channel_signal

import streamgru as sg
from streamgru import state
from streamgru.cuda_engine import CudaBatchStepper, require_cuda
from streamgru.daemon.snapshots import StreamSnapshot
from streamgru.io.chunk import Chunk
from streamgru.signal.chain import FilterChain
from streamgru.signal.resample import StreamResampler

ROOT = Path(__file__).resolve().parents[1]


def _cuda_here() -> bool:
    try:
        require_cuda()
    except sg.BackendUnavailableError:
        return False
    return True


CUDA_HERE = _cuda_here()


# --------------------------------------------------------------------------- adapters
class StreamState:
    """A daemon stream (``StreamPipeline``: resampler, filter chain, stepper, NaN policy) with
    the contract's vocabulary: bytes are the daemon's on-disk envelope."""

    def __init__(self, plan: Any) -> None:
        self.pipe = plan.pipeline()

    def step_chunk(self, X: np.ndarray) -> np.ndarray:
        first = self.pipe.next_index or 0
        result = self.pipe.process([Chunk(X, first, 0.0)])
        if not result.blocks:
            return np.zeros((0, self.pipe.plan.model.output_size), np.float32)
        return np.concatenate([block.outputs for block in result.blocks])

    def snapshot(self) -> bytes:
        snap = self.pipe.snapshot()
        return b"" if snap is None else snap.to_bytes()

    def restore(self, blob: bytes) -> None:
        checksum = self.pipe.plan.model.checksum()
        self.pipe.restore(StreamSnapshot.from_bytes(blob, model_checksum=checksum))

    def reset(self) -> None:
        self.pipe.forget_position()


@dataclass
class Case:
    """One stateful class.

    make : a new object; other : one of the same kind that must refuse ``make()``'s blobs
    (another model / sections / ratio); inputs : (seed) -> an input block for ``feed``;
    out_dtype : the outputs' dtype; bad_input : an input of the wrong shape (ShapeError), None
    where the object is given pre-shaped blocks only;
    deterministic : snapshot bytes depend on the state only (the daemon's carry a time)
    """

    make: Callable[[], Any]
    other: Callable[[], Any]
    inputs: Callable[[int], np.ndarray]
    out_dtype: np.dtype
    bad_input: np.ndarray | None
    deterministic: bool = True
    cuda: bool = False


def feed(obj: Any, X: np.ndarray) -> np.ndarray:
    """Advance ``obj`` by the block X; its outputs, as a host array."""
    if isinstance(obj, (FilterChain, StreamResampler)):
        return obj.process(X)
    return np.asarray(obj.step_chunk(X))


def _stream_plan_factory(tmp: Path, seed: int):
    path = tiny_model(tmp / f"m{seed}.safetensors", fs=360.0, channels=2, seed=seed)
    return lambda: StreamState(stream_plan(path, fs=250.0, resample=True))


def _cases(tmp: Path) -> dict[str, Case]:
    plain = random_model(input_size=2, hidden_size=5, num_layers=2, seed=11)
    plain_other = random_model(input_size=2, hidden_size=5, num_layers=2, seed=12)
    conditioned, _ = _conditioned_model()
    rng = np.random.default_rng

    def block(dtype, *shape):
        return lambda seed: (0.5 + rng(seed).normal(size=shape)).astype(dtype)

    chain = FilterChain.preset("ecg-monitor", fs=360.0, mains=60, n_channels=2)
    cases = {
        "stepper-float32": Case(
            lambda: plain.stepper(dtype="float32"),
            lambda: plain_other.stepper(dtype="float32"),
            block(np.float32, 12, 2),
            np.dtype(np.float32),
            np.zeros((4, 3), np.float32),
        ),
        "stepper-float64": Case(
            lambda: plain.stepper(dtype="float64"),
            lambda: plain_other.stepper(dtype="float64"),
            block(np.float64, 12, 2),
            np.dtype(np.float64),
            np.zeros((4, 3)),
        ),
        "stepper-conditioned": Case(
            lambda: conditioned.stepper(dtype="float32"),
            lambda: conditioned.stepper(dtype="float32", normalize=False),
            block(np.float32, 12, 2),
            np.dtype(np.float32),
            np.zeros((4, 1), np.float32),
        ),
        "batch-stepper": Case(
            lambda: plain.stepper(n_streams=3, dtype="float32"),
            lambda: plain_other.stepper(n_streams=3, dtype="float32"),
            block(np.float32, 3, 6, 2),
            np.dtype(np.float32),
            np.zeros((2, 6, 2), np.float32),
        ),
        "filter-chain": Case(
            lambda: FilterChain.preset("ecg-monitor", fs=360.0, mains=60, n_channels=2),
            lambda: FilterChain.preset("ecg-monitor", fs=250.0, mains=60, n_channels=2),
            block(np.float32, 40, 2),
            np.dtype(np.float32),
            np.zeros((4, 3)),
        ),
        "resampler": Case(
            lambda: StreamResampler(36, 25, n_channels=2),
            lambda: StreamResampler(5, 4, n_channels=2),
            block(np.float64, 60, 2),
            np.dtype(np.float64),
            np.zeros((4, 3)),
        ),
        "daemon-stream": Case(
            _stream_plan_factory(tmp, 3),
            _stream_plan_factory(tmp, 4),
            lambda seed: two_channel_signal(80, 250.0, seed),
            np.dtype(np.float32),
            None,  # the reader picks the channels before the pipeline: it checks no shapes
            deterministic=False,
        ),
        "cuda-batch-stepper": Case(
            lambda: CudaBatchStepper(plain, 2),
            lambda: CudaBatchStepper(plain_other, 2),
            block(np.float32, 2, 3, 2),
            np.dtype(np.float32),
            np.zeros((3, 3, 2), np.float32),
            cuda=True,
        ),
        "cuda-batch-stepper-filter": Case(
            lambda: CudaBatchStepper(plain, 2, filter=chain),
            lambda: CudaBatchStepper(plain_other, 2, filter=chain),
            block(np.float32, 2, 3, 2),
            np.dtype(np.float32),
            np.zeros((3, 3, 2), np.float32),
            cuda=True,
        ),
    }
    return cases


def _conditioned_model():
    import json

    base = random_model(input_size=2, hidden_size=6, num_layers=2, seed=13)
    chain = FilterChain.preset("ecg-monitor", fs=360.0, mains=60, n_channels=2)
    meta = dict(base.metadata)
    meta["filter"] = json.dumps(chain.to_dict())
    meta["input_mean"] = json.dumps([0.1, 0.2])
    meta["input_std"] = json.dumps([0.5, 1.5])
    model = sg.GRUModel(layers=base.layers, head=base.head, reset_after=True, metadata=meta)
    return model, base


NAMES = [
    "stepper-float32",
    "stepper-float64",
    "stepper-conditioned",
    "batch-stepper",
    "filter-chain",
    "resampler",
    "daemon-stream",
    "cuda-batch-stepper",
    "cuda-batch-stepper-filter",
]


@pytest.fixture(scope="module")
def all_cases(tmp_path_factory) -> dict[str, Case]:
    return _cases(tmp_path_factory.mktemp("contract"))


#: the CUDA cases need a real GPU in this process (a documented skip, conftest.py); the runner
#: below runs them under the simulator
_PARAMS = [pytest.param(n, marks=pytest.mark.gpu) if n.startswith("cuda") else n for n in NAMES]


@pytest.fixture(params=_PARAMS)
def case(request, all_cases) -> Case:
    chosen = all_cases[request.param]
    if chosen.cuda and not CUDA_HERE:
        pytest.skip("no CUDA in this process: test_cuda_cases_under_simulator runs these")
    return chosen


def _started(c: Case, seed: int = 1) -> tuple[Any, bytes]:
    """A new object fed one block, and its snapshot."""
    obj = c.make()
    feed(obj, c.inputs(seed))
    return obj, obj.snapshot()


def _assert_same_state(c: Case, obj: Any, blob: bytes, probe: int = 9) -> None:
    """``obj`` holds the state ``blob`` was taken of (bytes, or outputs when not comparable)."""
    if c.deterministic:
        assert obj.snapshot() == blob
    twin = c.make()
    twin.restore(blob)
    np.testing.assert_array_equal(feed(obj, c.inputs(probe)), feed(twin, c.inputs(probe)))


# --------------------------------------------------------------------------- the checks
def test_reset_returns_to_the_initial_state(case):
    fresh = case.make()
    initial = fresh.snapshot()
    expected = feed(fresh, case.inputs(2))
    obj, _ = _started(case)
    obj.reset()
    if case.deterministic:
        assert obj.snapshot() == initial
    np.testing.assert_array_equal(feed(obj, case.inputs(2)), expected)


def test_snapshot_restore_continues_bit_identically(case):
    obj, blob = _started(case)
    expected = feed(obj, case.inputs(2))
    assert expected.size and expected.dtype == case.out_dtype
    other = case.make()
    feed(other, case.inputs(5))  # somewhere else entirely
    other.restore(blob)
    np.testing.assert_array_equal(feed(other, case.inputs(2)), expected)
    obj.restore(blob)  # the original, after it moved on
    np.testing.assert_array_equal(feed(obj, case.inputs(2)), expected)
    if case.deterministic:
        assert other.snapshot() == obj.snapshot()
    assert blob[:4] == state.MAGIC


def test_refuses_a_blob_of_another_kind(case):
    obj, blob = _started(case)
    foreign = FilterChain(np.array([[1.0, 0, 0, 1, 0, 0]])).snapshot()
    if isinstance(obj, FilterChain):
        foreign = StreamResampler(3, 2).snapshot()
    with pytest.raises(state.SnapshotKindError, match="expected a"):
        obj.restore(foreign)
    _assert_same_state(case, obj, blob)


def test_refuses_a_blob_of_another_model(case):
    obj, blob = _started(case)
    other = case.other()
    feed(other, case.inputs(3))
    with pytest.raises(state.SnapshotMismatchError, match="different"):
        obj.restore(other.snapshot())
    with pytest.raises(state.SnapshotMismatchError, match="different"):
        other.restore(blob)
    _assert_same_state(case, obj, blob)


def test_refuses_truncated_and_corrupted_blobs(case):
    obj, blob = _started(case)
    for cut in (1, 4, len(blob) // 2, len(blob) - 1):
        with pytest.raises(state.SnapshotTruncatedError):
            obj.restore(blob[:-cut])
    with pytest.raises(state.SnapshotTruncatedError):
        obj.restore(blob + b"\x00")
    for where in (len(blob) // 2, len(blob) - 6):  # payload bytes: the CRC catches them
        flipped = bytearray(blob)
        flipped[where] ^= 0x10
        with pytest.raises(state.SnapshotCorruptError, match="CRC-32"):
            obj.restore(bytes(flipped))
    for where in range(len(blob)):  # one flipped bit anywhere is refused
        flipped = bytearray(blob)
        flipped[where] ^= 1 << (where % 8)
        with pytest.raises(sg.SnapshotError):
            obj.restore(bytes(flipped))
    with pytest.raises(state.SnapshotFormatError, match="bytes"):
        obj.restore("not bytes")
    _assert_same_state(case, obj, blob)


def test_refuses_other_versions(case):
    obj, blob = _started(case)
    future = blob[:4] + (state.VERSION + 1).to_bytes(2, "little") + blob[6:]
    with pytest.raises(state.SnapshotVersionError, match="newer"):
        obj.restore(future)
    past = blob[:4] + (0).to_bytes(2, "little") + blob[6:]
    with pytest.raises(state.SnapshotVersionError, match="expected 1, got 0"):
        obj.restore(past)
    for magic in state.LEGACY_MAGICS:
        with pytest.raises(state.SnapshotVersionError, match="older streamgru"):
            obj.restore(magic + blob[4:])
    _assert_same_state(case, obj, blob)


def test_dtype_is_kept(case):
    obj, blob = _started(case)
    env = state.unpack(blob, _kind(blob))
    if env.dtype:  # a blob claiming the other float type is refused
        other = "float64" if env.dtype == "float32" else "float32"
        forged = state.pack(env.kind, other, env.digest, dict(env.arrays), env.parts, env.meta)
        with pytest.raises(state.SnapshotDtypeError, match=f"{other} state, expected"):
            obj.restore(forged)
    for twin in (pickle.loads(pickle.dumps(obj)), copy.deepcopy(obj)):
        assert feed(twin, case.inputs(4)).dtype == case.out_dtype
    restored = case.make()
    restored.restore(blob)
    assert feed(restored, case.inputs(4)).dtype == case.out_dtype


def _kind(blob: bytes) -> str:
    import json

    n = int.from_bytes(blob[16:20], "little")
    return json.loads(blob[20 : 20 + n])["kind"]


def _grow_first_array(blob: bytes) -> bytes:
    """``blob`` re-packed with its first array one row larger (nested into the parts when it
    has no arrays: the daemon's stepper state), CRC valid: only the shape is wrong."""
    env = state.unpack(blob, _kind(blob))
    arrays, parts = dict(env.arrays), dict(env.parts)
    if arrays:
        name = next(iter(arrays))
        arrays[name] = np.concatenate([arrays[name], arrays[name][:1]])
    else:
        parts["stepper"] = _grow_first_array(parts["stepper"])
    return state.pack(env.kind, env.dtype, env.digest, arrays, parts, env.meta)


def test_bad_shapes_raise_the_right_error(case):
    obj, blob = _started(case)
    with pytest.raises(state.SnapshotShapeError, match="expected shape"):
        obj.restore(_grow_first_array(blob))
    if case.bad_input is not None:
        with pytest.raises(sg.ShapeError, match="expected"):
            feed(obj, case.bad_input)
    _assert_same_state(case, obj, blob)


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_pickle_and_deepcopy_continue_independently(case, how):
    reference = case.make()
    feed(reference, case.inputs(1))
    expected = feed(reference, case.inputs(2))
    after = feed(reference, case.inputs(3))

    obj, _ = _started(case)
    twin = pickle.loads(pickle.dumps(obj)) if how == "pickle" else copy.deepcopy(obj)
    assert type(twin) is type(obj) and twin is not obj
    np.testing.assert_array_equal(feed(twin, case.inputs(2)), expected)
    feed(twin, case.inputs(7))  # the copy moves on: the original must not notice
    np.testing.assert_array_equal(feed(obj, case.inputs(2)), expected)
    np.testing.assert_array_equal(feed(obj, case.inputs(3)), after)


#: Run in a child where ``streamgru._stepcall`` cannot be imported, as on an install without a
#: C compiler: a stepper pickled where the extension ran loads there, copies, and continues
#: bit-identically on the Python path.
_WITHOUT_C_EXTENSION = """
import copy, pickle, sys
sys.modules["streamgru._stepcall"] = None  # import fails: the install built no C extension
import numpy as np
import streamgru.engine as engine
assert engine._StepCall is None, "the C extension was imported"
data = pickle.loads(sys.stdin.buffer.read())
stepper, x, expected = data["stepper"], data["x"], data["expected"]
twins = [stepper, pickle.loads(pickle.dumps(stepper)), copy.deepcopy(stepper)]
for twin in twins:
    assert not twin.compiled_step and twin.n_steps == 1
    got = twin.step(x)
    assert got.dtype == expected.dtype and np.array_equal(got, expected), (got, expected)
twins[1].step(x)  # a copy moves on alone
assert twins[2].n_steps == 2 and twins[1].n_steps == 3
print("ok")
"""


def test_stepper_copies_work_without_the_c_extension():
    """pickle / deepcopy of a Stepper with and without ``streamgru._stepcall``."""
    from streamgru import engine

    stepper = random_model(seed=22).stepper(filter=None)
    assert stepper.compiled_step == (engine._StepCall is not None)
    x = np.linspace(-1, 1, stepper.input_size, dtype=np.float32)
    stepper.step(x)
    blob = pickle.dumps({"stepper": stepper, "x": x, "expected": copy.deepcopy(stepper).step(x)})
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT_C_EXTENSION],
        input=blob,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == b"ok", proc.stderr.decode()[-3000:]


def test_stepper_copies_keep_the_compiled_step():
    stepper = random_model(seed=21).stepper()
    x = np.ones(stepper.input_size, np.float32)
    stepper.step(x)
    twins = (pickle.loads(pickle.dumps(stepper)), copy.deepcopy(stepper))
    expected = stepper.step(x)
    for twin in twins:
        assert twin.compiled_step == stepper.compiled_step
        assert twin.n_steps == 1
        np.testing.assert_array_equal(twin.step(x), expected)


# --------------------------------------------------------------------------- runner (no GPU)
@pytest.mark.gpu  # steps aside where a GPU runs the CUDA cases in this process
@pytest.mark.skipif(CUDA_HERE, reason="the CUDA cases run in this process")
def test_cuda_cases_under_simulator():
    for module in ("numba_cuda", "cuda.bindings"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            pytest.skip(f"{module} is not installed (the 'cuda' extra)")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda-batch"]
    try:
        proc = subprocess.run(
            [*cmd, str(Path(__file__).resolve())],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"simulator run timed out after 600 s:\n{exc.stdout}\n{exc.stderr}")
    report = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, report
    summary = proc.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "skipped" not in summary, report


# --------------------------------------------------------------------------- the daemon's files
def test_state_files_are_envelopes_and_old_json_files_are_refused(tmp_path, all_cases):
    from streamgru.daemon.snapshots import SnapshotStore

    stream = all_cases["daemon-stream"].make()
    feed(stream, two_channel_signal(80, 250.0, 1))
    snap = stream.pipe.snapshot()
    store = SnapshotStore(tmp_path)
    path = store.save(snap)
    assert path.name == "s.snapshot" and path.read_bytes()[:4] == state.MAGIC
    assert store.load("s") == snap
    # the nested parts are the objects' own envelopes
    env = state.unpack(path.read_bytes(), "StreamSnapshot")
    assert state.unpack(env.part("stepper"), "Stepper").kind == "Stepper"
    assert state.unpack(env.part("resampler"), "StreamResampler").meta["n_in"] == 80
    # a file from before the envelope: refused, saying so (the daemon then starts fresh)
    path.unlink()
    (tmp_path / "s.snapshot.json").write_text('{"format": "streamgru.stream-snapshot.v1"}')
    with pytest.raises(state.SnapshotVersionError, match="written by an older streamgru"):
        store.load("s")
    assert store.load("other") is None
    with pytest.raises(state.SnapshotKindError, match="expected a 'StreamSnapshot'"):
        StreamSnapshot.from_bytes(FilterChain(np.eye(1, 6, 3) + np.eye(1, 6)).snapshot())


# --------------------------------------------------------------------------- the envelope itself
def test_envelope_round_trips_arrays_parts_and_meta():
    arrays = {
        "f8": np.arange(6.0).reshape(2, 3),
        "f4": np.array([1.5, -2.25], np.float32),
        "i8": np.array([[7], [-9]], np.int64),
        "u1": np.array([0, 255], np.uint8),
        "empty": np.zeros((0, 4)),
    }
    inner = state.pack("Inner", "float32", {"model": "ab"}, {"x": np.ones(2, np.float32)})
    blob = state.pack("Outer", None, {"model": "ab"}, arrays, {"inner": inner}, {"n": 3})
    assert blob == state.pack("Outer", None, {"model": "ab"}, arrays, {"inner": inner}, {"n": 3})
    env = state.unpack(blob, "Outer", digest={"model": "ab"})
    assert (env.kind, env.dtype, env.meta) == ("Outer", "", {"n": 3})
    for name, value in arrays.items():
        got = env.array(name, value.shape, value.dtype)
        assert got.dtype == value.dtype and got.flags.writeable
        np.testing.assert_array_equal(got, value)
    assert state.unpack(env.part("inner"), "Inner", "float32").array("x", (2,), "float32").all()
    assert env.meta_int("n", 0, 3) == 3


def test_envelope_names_expected_and_got():
    blob = state.pack("K", "float64", {"model": "aa"}, {"x": np.array([np.nan])}, meta={"n": -1})
    with pytest.raises(state.SnapshotKindError, match="holds a 'K', expected a 'J' or 'L'"):
        state.unpack(blob, ("J", "L"))
    with pytest.raises(state.SnapshotDtypeError, match="holds float64 state, expected float32"):
        state.unpack(blob, "K", "float32")
    with pytest.raises(state.SnapshotMismatchError, match="expected model bb, got aa"):
        state.unpack(blob, "K", digest={"model": "bb"})
    with pytest.raises(state.SnapshotMismatchError, match="expected filter ff, got None"):
        state.unpack(blob, "K", digest={"filter": "ff"})
    env = state.unpack(blob, "K")
    with pytest.raises(state.SnapshotFormatError, match="NaN or Inf"):
        env.array("x", (1,))
    with pytest.raises(state.SnapshotShapeError, match=r"expected shape \(2,\), got \(1,\)"):
        env.array("x", (2,))
    with pytest.raises(state.SnapshotDtypeError, match="expected dtype float32, got float64"):
        env.array("x", (1,), np.float32)
    with pytest.raises(state.SnapshotFormatError, match=r"expected an array 'y', got \['x'\]"):
        env.array("y", (1,))
    with pytest.raises(state.SnapshotFormatError, match="expected a part 'p', got"):
        env.part("p")
    with pytest.raises(state.SnapshotFormatError, match="expected an integer >= 0, got -1"):
        env.meta_int("n")
    assert isinstance(state.SnapshotShapeError("x"), sg.SnapshotError)
