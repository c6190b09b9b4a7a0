"""``streamgru demo``: the recording reader, the segment it replays (the model's held-out
part of record 100, checked against the training script's split), and the command end to end
(bounded)."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamgru.demo.record import read_beats, read_record, record_dir
from streamgru.demo.segment import choose_segment, classify, model_ranges

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "streamgru" / "data" / "weights" / "ecg_beats.safetensors"
EXAMPLE = REPO / "streamgru" / "data" / "weights" / "example_tiny.safetensors"
N_RECORD = 650_000
TRAINING_ARGS = ("--segment", "training", "--json")


def training_split() -> dict[str, tuple[int, int]]:
    """``TRAIN`` and ``HELD_OUT`` of weights/train_ecg_beats.py, read with ast (not imported)."""
    tree = ast.parse((REPO / "weights" / "train_ecg_beats.py").read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in ("TRAIN", "HELD_OUT"):
                found[target.id] = tuple(ast.literal_eval(node.value))
    assert set(found) == {"TRAIN", "HELD_OUT"}, found
    return found


def test_the_default_segment_is_the_training_scripts_held_out_range():
    split = training_split()
    (train_a, train_b), held = split["TRAIN"], split["HELD_OUT"]
    assert model_ranges(SHIPPED) == {"training": split["TRAIN"], "held-out": held}
    seg = choose_segment(SHIPPED, N_RECORD)
    assert (seg.start, seg.stop) == held and seg.kind == "held-out"
    assert seg.stop <= train_a or seg.start >= train_b  # nothing of it was trained on
    assert seg.describe(360.0).startswith(f"held-out segment, samples {held[0]}..{held[1]} (")
    training = choose_segment(SHIPPED, N_RECORD, "training")
    assert (training.start, training.stop) == split["TRAIN"]
    assert training.label == "training segment"


def test_other_ranges_are_labelled_by_what_they_are_to_the_model():
    ranges = {"training": (0, 1000), "held-out": (2000, 3000)}
    assert classify(2100, 2500, ranges) == "held-out"
    assert classify(900, 2500, ranges) == "training"  # any overlap with training counts
    assert classify(1500, 1900, ranges) == "other"
    assert classify(2500, 3500, ranges) == "other"  # beyond the held-out range
    chosen = choose_segment(SHIPPED, N_RECORD, start=10, stop=5000)
    assert chosen.kind == "training" and "--from/--to" in chosen.note
    # a model that names no range (the untrained example) replays from the start, and says so
    fallback = choose_segment(EXAMPLE, N_RECORD)
    assert (fallback.start, fallback.kind) == (0, "other")
    assert "names no held_out_samples" in fallback.note


def test_a_range_outside_the_record_is_refused():
    from streamgru.errors import StreamgruError

    with pytest.raises(StreamgruError, match="0 <= from < to <= 650000"):
        choose_segment(SHIPPED, N_RECORD, start=10, stop=N_RECORD + 1)
    with pytest.raises(StreamgruError, match="--segment"):
        choose_segment(SHIPPED, N_RECORD, "test")


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
    # what was replayed: the held-out segment of the training script's split, named as such
    held = training_split()["HELD_OUT"]
    assert f"held-out segment, samples {held[0]}..{held[1]}" in out.splitlines()[0]
    assert (
        f"segment      held-out segment of MIT-BIH record 100: samples {held[0]}..{held[1]}" in out
    )
    first, end = map(int, re.search(r"^summary: .* \(samples (\d+)\.\.(\d+)\)", out, re.M).groups())
    assert held[0] <= first < end <= held[1]
    # every beat shown is at a time inside the held-out segment (the record's clock)
    for minute, second in re.findall(r"^  beat +\d+  at (\d\d):(\d\d\.\d{3})", out, re.M):
        assert held[0] <= (int(minute) * 60 + float(second)) * 360 < held[1]
    # the shipped detector against the record's reference annotations (record 100 is clean)
    sens, ppv = map(
        float,
        re.search(
            r"sensitivity +([\d.]+) %   PPV ([\d.]+) %   on the held-out segment", out
        ).groups(),
    )
    assert sens >= 90.0 and ppv >= 90.0, out
    if importlib.util.find_spec("serial") is not None and hasattr(os, "openpty"):
        assert " over pty" in out.splitlines()[0]  # the emulated device is on a pty
    print(out)


def test_a_training_replay_is_labelled_training_segment(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "streamgru.cli", "demo", "--duration", "2", *TRAINING_ARGS],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    train = training_split()["TRAIN"]
    assert summary["segment"] == "training" and summary["segment_label"] == "training segment"
    assert tuple(summary["segment_samples"]) == train
    assert train[0] <= summary["first_index"] < summary["end_index"] <= train[1]
    assert summary["samples_in"] > 0 and summary["samples_lost"] == 0
