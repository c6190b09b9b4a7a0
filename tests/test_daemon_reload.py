"""SIGHUP: the daemon re-reads its config and weights. A stream whose model changed starts
afresh at the next sample, the other streams are untouched, and no sample is lost. A bad new
config is refused and the running one kept."""

from __future__ import annotations

import os
import signal
import textwrap

import numpy as np
import pytest
from test_daemon_helpers import DaemonProcess, offline_outputs, read_jsonl, tiny_model, wait_until

from streamgru.io.sources import open_source
from streamgru.signal.chain import FilterChain

FS = 250.0

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals need POSIX")


def synthetic(seed: int, n: int) -> np.ndarray:
    """The samples the daemon's synthetic source delivers, read offline."""
    out = []
    with open_source(f"synthetic://ecg?fs={FS:g}&speed=0&seed={seed}&duration={n / FS}") as src:
        for chunk in src:
            out.append(chunk.samples)
    return np.concatenate(out)[:n]


def site(tmp_path, model_a, model_b) -> str:
    streams = ""
    for sid, seed, model in (("a", 1, model_a), ("b", 2, model_b)):
        streams += textwrap.dedent(
            f"""
            [[stream]]
            id = "{sid}"
            source = "synthetic://ecg?fs={FS:g}&speed=4&seed={seed}"
            model = "{model}"
            filter = "ecg-monitor"
            sinks = ["jsonl://{tmp_path / (sid + ".jsonl")}"]
            """
        )
    return "[metrics]\nenabled = false\n" + streams


def test_sighup_reloads_changed_streams_only_and_loses_nothing(tmp_path):
    m1 = tiny_model(tmp_path / "m1.safetensors", fs=FS, seed=3)
    m2 = tiny_model(tmp_path / "m2.safetensors", fs=FS, seed=5)
    cfg = tmp_path / "site.toml"
    cfg.write_text(site(tmp_path, m1, m1))
    daemon = DaemonProcess(["run", "--config", str(cfg)], tmp_path)

    def rows(sid):
        return len(read_jsonl(tmp_path / f"{sid}.jsonl"))

    try:
        daemon.wait_msg("ready", timeout=60)
        wait_until(lambda: rows("a") >= 500 and rows("b") >= 500, 30, "first rows", daemon)
        cfg.write_text(site(tmp_path, m2, m1))  # stream a gets new weights
        daemon.signal(signal.SIGHUP)
        reloaded = daemon.wait_msg("reloaded", timeout=30)
        assert set(reloaded["fresh"]) == {"a"} and reloaded["kept"] == ["b"]
        at = reloaded["fresh"]["a"]
        wait_until(lambda: rows("a") >= at + 500, 30, "rows after the reload", daemon)
        cfg.write_text("[[stream]\nbroken")
        daemon.signal(signal.SIGHUP)
        daemon.wait_msg("reload refused: keeping the running config", timeout=30)
        before = rows("b")
        wait_until(lambda: rows("b") >= before + 200, 30, "rows after a refused reload", daemon)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        daemon.stop()
    spec = FilterChain.preset("ecg-monitor", FS).to_dict()
    # stream a: m1 up to the reload, then a fresh m2 from there; every index once
    ya = read_jsonl(tmp_path / "a.jsonl")
    idx = np.array([r["index"] for r in ya])
    np.testing.assert_array_equal(idx, np.arange(idx.size))
    Y = np.array([r["y"] for r in ya], dtype=np.float32)
    X = synthetic(1, idx.size)
    np.testing.assert_allclose(Y[:at], offline_outputs(m1, X[:at], spec), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(Y[at:], offline_outputs(m2, X[at:], spec), rtol=1e-5, atol=1e-6)
    # stream b: untouched by both reloads
    yb = read_jsonl(tmp_path / "b.jsonl")
    idx = np.array([r["index"] for r in yb])
    np.testing.assert_array_equal(idx, np.arange(idx.size))
    Y = np.array([r["y"] for r in yb], dtype=np.float32)
    np.testing.assert_allclose(
        Y, offline_outputs(m1, synthetic(2, idx.size), spec), rtol=1e-5, atol=1e-6
    )
