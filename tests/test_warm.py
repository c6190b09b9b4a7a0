"""``streamgru warm``: compiles what a configuration uses and exits; the daemon's steppers defer
the per-sample step they never call."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from factories import random_model
from test_daemon_helpers import systemd_unit_keys

from streamgru.cli import main
from streamgru.daemon.config import load_config
from streamgru.daemon.plan import plan_stream, warm_up

WEIGHTS = Path(__file__).resolve().parents[1] / "streamgru" / "data" / "weights"
TINY = WEIGHTS / "example_tiny.safetensors"


def _config(tmp_path: Path, streams: list[dict]) -> Path:
    lines = [
        "[daemon]",
        "snapshot_interval_s = 0",
        "watchdog = false",
        "[metrics]",
        "enabled = false",
    ]
    for k, stream in enumerate(streams):
        lines += [
            "[[stream]]",
            f'id = "s{k}"',
            f'source = "tcp://127.0.0.1:{5500 + k}"',
            'sinks = ["null://"]',
        ]
        lines += [f"{key} = {json.dumps(value)}" for key, value in stream.items()]
    path = tmp_path / "site.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_warm_model_prints_a_summary(capsys):
    assert main(["warm", str(TINY), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == str(TINY) and summary["setups"] == 1
    assert summary["dtype"] == "float32" and summary["seconds"] >= 0


def test_warm_config_counts_distinct_setups(tmp_path, capsys):
    same = {"model": str(TINY), "filter": "none"}
    path = _config(tmp_path, [same, same, {**same, "dtype": "float64"}])
    assert main(["warm", "--config", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["setups"] == 2  # two streams share one setup; float64 is another


def test_warm_refuses_a_bad_configuration_with_78(tmp_path, capsys):
    path = _config(tmp_path, [{"model": str(tmp_path / "missing.safetensors")}])
    assert main(["warm", "--config", str(path)]) == 78
    assert "stream[0].model" in capsys.readouterr().err


def test_the_daemons_steppers_defer_the_per_sample_step(tmp_path):
    """plan.make_stepper builds no per-sample kernel; a later step() builds it and gives the
    numbers of a stepper that compiled it at once."""
    plan = plan_stream(load_config(_config(tmp_path, [{"model": str(TINY)}])).streams[0], 0)
    assert warm_up([plan]) == 1
    lazy = plan.make_stepper()
    X = np.random.default_rng(1).normal(size=(20, plan.model.input_size)).astype(np.float32)
    first = np.concatenate([lazy.step_chunk(X[:3]), lazy.step_chunk(X[3:10])])
    assert lazy._fast_step is None  # nothing built for step() yet
    eager = plan.model.stepper(dtype="float32", filter=plan.make_filter())
    # a short block takes the chunk kernel here, the sample-by-sample one there: same bits
    np.testing.assert_array_equal(
        np.concatenate([eager.step_chunk(X[:3]), eager.step_chunk(X[3:10])]), first
    )
    for x in X[10:]:
        np.testing.assert_array_equal(lazy.step(x), eager.step(x))
    assert lazy.n_steps == eager.n_steps == 20
    assert lazy.compiled_step == eager.compiled_step


@pytest.mark.parametrize("compile_step", [True, False])
def test_compile_step_survives_pickling(compile_step):
    import pickle

    stepper = random_model(seed=4).stepper(compile_step=compile_step)
    x = np.ones(stepper.input_size, np.float32)
    stepper.step_chunk(x[None, :])
    twin = pickle.loads(pickle.dumps(stepper))
    assert twin._compile_step is compile_step
    np.testing.assert_array_equal(twin.step(x), stepper.step(x))


def test_an_upgrade_that_keeps_the_kernels_keeps_their_cache(tmp_path, monkeypatch):
    """The purge marker hashes the kernel sources only: a new package version (or any file
    outside ``streamgru/kernels``) leaves the compiled kernels in place; a kernel edit purges."""
    import shutil

    from streamgru import kernels

    tree = tmp_path / "streamgru"
    shutil.copytree(
        Path(kernels.__file__).parent,
        tree / "kernels",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (tree / "__init__.py").write_text('__version__ = "1.0"\n')
    monkeypatch.setattr(kernels, "_SOURCE_DIR", tree / "kernels")
    cache = tmp_path / "cache"
    cache.mkdir()
    assert kernels.purge_stale_cache(cache) is True  # first run: marker written
    compiled = cache / "gru.gru_chunk-250.py311.nbi"
    compiled.write_bytes(b"compiled")
    (tree / "__init__.py").write_text('__version__ = "1.1"\n')  # the upgrade
    (tree / "engine.py").write_text("# changed outside the kernels\n")
    assert kernels.purge_stale_cache(cache) is False and compiled.exists()
    with open(tree / "kernels" / "gru.py", "a") as f:
        f.write("\n# a kernel edit\n")
    assert kernels.purge_stale_cache(cache) is True and not compiled.exists()


def test_warm_refuses_a_model_it_cannot_load_with_78(tmp_path, capsys):
    """As ``streamgru run --model``: a missing or unreadable weights file is a bad configuration."""
    missing = tmp_path / "missing.safetensors"
    assert main(["warm", str(missing)]) == 78
    assert f"model: cannot load {str(missing)!r}" in capsys.readouterr().err
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a weights file")
    assert main(["warm", str(junk)]) == 78
    assert "configuration error: model: cannot load" in capsys.readouterr().err


def test_the_systemd_unit_warms_the_daemons_configuration_without_defeating_78():
    """ExecStartPre warms the file ExecStart runs, as the same user and environment (no ``+`` /
    ``!`` prefix), and with ``-``: RestartPreventExitStatus looks only at ExecStart's status."""
    import shlex

    from streamgru.cli import build_parser

    keys = systemd_unit_keys()
    (pre,) = keys["ExecStartPre"]
    assert pre.startswith("-/") and not set(pre[:3]) & set("+!@")
    warm = build_parser().parse_args(shlex.split(pre[1:])[1:])
    run = build_parser().parse_args(shlex.split(keys["ExecStart"][0])[1:])
    assert warm.command == "warm" and warm.config == run.config
    assert "User" not in keys and any("NUMBA_CACHE_DIR=" in v for v in keys["Environment"])
