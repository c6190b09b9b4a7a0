"""``streamgru demo``: the recording reader, and the command end to end (bounded)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from streamgru.demo.record import read_beats, read_record, record_dir


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # wfdb on recent pandas
def test_the_shipped_record_reads_like_wfdb():
    record = read_record("100")
    assert record.labels == ("MLII", "V5") and record.fs == 360.0
    assert record.digital.shape == (650000, 2)
    beats = read_beats("100")
    assert beats.size == 2273 and np.all(np.diff(beats) > 0)
    wfdb = pytest.importorskip("wfdb")
    folder = str(record_dir() / "100")
    ref = wfdb.rdrecord(folder, physical=True, return_res=64, sampto=20000)
    np.testing.assert_array_equal(record.physical(20000), ref.p_signal)
    ann = wfdb.rdann(folder, "atr")
    symbols = set("NLRBAaJSVrFejnE/fQ?")
    expected = [s for s, sym in zip(ann.sample, ann.symbol) if sym in symbols]
    np.testing.assert_array_equal(beats, expected)


def test_demo_runs_and_summarises_with_nothing_lost(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "streamgru.cli", "demo", "--duration", "5"],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "summary:" in out and "sensitivity" in out and "latency      p50" in out
    samples = re.search(r"samples\s+(\d+) in, (\d+) out, (\d+) lost, (\d+) dropped", out)
    assert samples, out
    n_in, n_out, lost, dropped = map(int, samples.groups())
    assert n_in > 5 * 360 and n_out == n_in  # 5 s at 4x: about 20 s of ECG
    assert lost == 0 and dropped == 0
    # live lines while it runs: each beat as it is decided, and progress (not a terminal here:
    # plain lines)
    beats = re.findall(r"^  beat +\d+  at \d\d:\d\d\.\d{3} .*(?:matches|no annotated)", out, re.M)
    detected = int(re.search(r"beats\s+(\d+) detected", out).group(1))
    assert len(beats) >= detected > 0
    assert len(re.findall(r"^  progress: .* s of ECG, \d+ beats$", out, re.M)) >= 2
    # the shipped detector against the record's reference annotations (record 100 is clean)
    sens, ppv = map(float, re.search(r"sensitivity +([\d.]+) %   PPV ([\d.]+) %", out).groups())
    assert sens >= 90.0 and ppv >= 90.0, out
    if importlib.util.find_spec("serial") is not None and hasattr(os, "openpty"):
        assert " over pty" in out.splitlines()[0]  # the emulated device is on a pty
    print(out)
