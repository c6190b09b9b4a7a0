"""``streamgru bench``: the statistics, the output checks of alternatives, the report and its
schema. Nothing here asserts a time: the benchmark runs tiny (``--quick``) and only its shape,
its checks and its arithmetic are tested."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest

from streamgru.bench.command import BenchOptions, failures, run_bench
from streamgru.bench.daemon import daemon_available, daemon_probe, summarise_probe
from streamgru.bench.models import parse_size, random_model
from streamgru.bench.progress import Progress
from streamgru.bench.report import (
    BenchReportError,
    load_schema,
    render_text,
    validate_report,
)
from streamgru.bench.runners import (
    BenchmarkMismatchError,
    StreamgruStep,
    check_input,
    run_outputs,
    verify_runner,
)
from streamgru.bench.stats import (
    cdf_points,
    deadline_ns_for,
    gru_flops_per_step,
    latency_stats,
)
from streamgru.errors import ConfigError, StreamgruError

QUICK_MODES = "step,chunk,many,filter,pipeline"


# --------------------------------------------------------------------------- statistics
def test_percentiles_are_nearest_rank():
    s = latency_stats(np.arange(1, 1001))
    assert (s["p50_ns"], s["p90_ns"], s["p99_ns"], s["p999_ns"]) == (500, 900, 990, 999)
    assert (s["min_ns"], s["max_ns"], s["n_samples"]) == (1, 1000, 1000)
    assert s["mean_ns"] == pytest.approx(500.5)
    assert s["std_ns"] == pytest.approx(np.std(np.arange(1, 1001)))
    assert s["jitter_ns"] == 490
    assert s["deadline_ns"] is None and s["deadline_misses"] is None


def test_percentiles_do_not_depend_on_order():
    values = np.random.default_rng(0).permutation(np.arange(1, 1001))
    assert latency_stats(values)["p99_ns"] == 990


def test_one_outlier_shows_in_max_and_deadline_not_in_p99():
    timings = np.full(1000, 1000)
    timings[500] = 2_000_000  # one 2 ms hiccup
    s = latency_stats(timings, deadline_ns=deadline_ns_for(1000.0))
    assert s["p50_ns"] == s["p99_ns"] == s["p999_ns"] == 1000
    assert s["max_ns"] == 2_000_000
    assert s["jitter_ns"] == 0
    assert s["std_ns"] > 0
    assert s["deadline_ns"] == 1_000_000
    assert s["deadline_misses"] == 1
    assert s["deadline_miss_fraction"] == pytest.approx(1e-3)


def test_deadline_counts_strictly_longer_calls():
    s = latency_stats(np.array([10, 20, 30, 40]), deadline_ns=30)
    assert s["deadline_misses"] == 1  # 30 is on time, 40 is late


def test_deadline_from_rate():
    assert deadline_ns_for(1000.0) == 1_000_000
    assert deadline_ns_for(360.0) == 2_777_777
    assert deadline_ns_for(None) is None
    with pytest.raises(ValueError):
        deadline_ns_for(0.0)


def test_latency_stats_refuses_no_timings():
    with pytest.raises(ValueError):
        latency_stats(np.array([], dtype=np.int64))


def test_cdf_points_reach_the_maximum():
    values = np.random.default_rng(1).integers(100, 10_000, 5000)
    xs, fr = cdf_points(values, n_points=50)
    assert xs == sorted(xs) and fr == sorted(fr)
    assert xs[-1] == values.max() and fr[-1] == 1.0
    assert 0 < fr[0] < 0.1
    assert len(xs) <= 52


def test_gru_flops():
    assert gru_flops_per_step(8, 64, 1) == 2 * 3 * 64 * (8 + 64)
    assert gru_flops_per_step(8, 64, 2, n_streams=10) == 10 * 2 * 3 * 64 * (8 + 64 + 64 + 64)


# --------------------------------------------------------------------------- alternatives
def _outputs(model, X):
    return run_outputs(StreamgruStep(model), X)


def test_streamgru_step_matches_the_float64_reference():
    model = random_model(3, 8, 2)
    X = check_input(model, 50)
    assert np.max(np.abs(_outputs(model, X) - model.forward(X.astype(np.float64)))) < 1e-5


def test_torch_on_other_weights_is_refused():
    pytest.importorskip("torch")
    from streamgru.bench.torch import TorchCellRunner, TorchGRURunner

    model = random_model(4, 16, 1, seed=0)
    other = random_model(4, 16, 1, seed=1)
    X = check_input(model, 60)
    reference = _outputs(model, X)
    assert verify_runner(TorchCellRunner(model), X, reference) < 1e-4  # same weights pass
    for runner in (TorchCellRunner(other), TorchGRURunner(other)):
        with pytest.raises(BenchmarkMismatchError, match="no speedup is reported") as info:
            verify_runner(runner, X, reference)
        assert isinstance(info.value, StreamgruError)


def test_onnxruntime_on_other_weights_is_refused():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from streamgru.bench.onnx import OrtFusedRunner, OrtRunRunner

    model = random_model(4, 16, 2, seed=0, reset_after=False)  # reset-before: lbr=0
    other = random_model(4, 16, 2, seed=1, reset_after=False)
    X = check_input(model, 60)
    reference = _outputs(model, X)
    assert verify_runner(OrtFusedRunner(model), X, reference) < 1e-4
    with pytest.raises(BenchmarkMismatchError, match=r"onnxruntime run: outputs differ"):
        verify_runner(OrtRunRunner(other), X, reference)


def test_a_mismatching_alternative_stops_its_comparison(monkeypatch):
    """A runner on other weights inside a real run: no ratio, a failure, exit code 1."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from streamgru.bench import onnx as bench_onnx

    real_session = bench_onnx.ort_session
    monkeypatch.setattr(
        bench_onnx, "ort_session", lambda model: real_session(random_model(8, 64, 1, seed=99))
    )
    opts = BenchOptions(modes=("step",), compare=("onnxruntime",), quick=True, first_call="none")
    report = run_bench(opts)
    run = report["runs"][0]
    statuses = {c["method"]: c["status"] for c in run["comparisons"]}
    assert statuses["onnxruntime run"] == "mismatch"
    assert statuses["onnxruntime fused block"] == "mismatch"
    assert not [r for r in run["ratios"] if "onnxruntime" in r["name"]]
    assert [e["method"] for e in run["latency"]] == ["streamgru step"]
    assert any("onnxruntime run" in f for f in failures(report))
    validate_report(report)


# --------------------------------------------------------------------------- the tool
@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    """A --quick run through the CLI, with the warm first call, no alternatives."""
    from streamgru.cli import main

    out = tmp_path_factory.mktemp("bench") / "report.json"
    code = main(
        [
            "bench",
            "--quick",
            "--quiet",
            "--compare",
            "none",
            "--modes",
            QUICK_MODES,
            "--first-call",
            "warm",
            "--fs",
            "500",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    return json.loads(out.read_text())


def test_quick_report_follows_the_schema(quick_report):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(load_schema())
    jsonschema.validate(quick_report, load_schema(), cls=jsonschema.Draft202012Validator)
    assert quick_report["schema_version"] == 1


def test_quick_report_content(quick_report):
    run = quick_report["runs"][0]
    m = run["model"]
    assert (m["input_size"], m["hidden_size"], m["num_layers"], m["output_size"]) == (8, 64, 1, 1)
    assert run["fs"] == 500.0
    step = next(e for e in run["latency"] if e["method"] == "streamgru step")
    assert step["deadline_ns"] == 2_000_000
    assert step["p50_ns"] <= step["p90_ns"] <= step["p99_ns"] <= step["p999_ns"] <= step["max_ns"]
    assert {p["chunk_length"] for p in run["chunk"]} == {1, 16, 64}
    assert {p["n_streams"] for p in run["many"]} == {1, 16, 64}
    assert all(p["sgemm_fraction"] > 0 for p in run["many"])
    assert run["modes"]["step"]["status"] == "ok"
    assert run["modes"]["pipeline"]["status"] in ("ok", "unavailable")
    (first,) = run["first_call"]
    assert first["cache"] == "warm"
    assert "error" in first or first["total_s"] > 0
    statuses = {c["framework"]: c["status"] for c in run["comparisons"]}
    assert statuses["torch"] == statuses["onnxruntime"] == "skipped"
    assert quick_report["machine"]["packages"]["numba"]
    assert quick_report["command"].startswith("streamgru bench")


def test_text_summary(quick_report):
    text = render_text(quick_report)
    assert "per-sample latency" in text and "streamgru step" in text and "p99.9" in text


def test_plot_is_written(quick_report, tmp_path):
    pytest.importorskip("matplotlib")
    from streamgru.bench.plot import plot_report

    path = tmp_path / "bench.png"
    plot_report(quick_report, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_broken_report_is_refused(quick_report):
    pytest.importorskip("jsonschema")
    broken = json.loads(json.dumps(quick_report))
    del broken["runs"][0]["latency"][0]["p99_ns"]
    with pytest.raises(BenchReportError, match="p99_ns"):
        validate_report(broken)


def test_json_to_stdout(capsys):
    from streamgru.cli import main

    code = main(
        [
            "bench",
            "--quick",
            "--quiet",
            "--compare",
            "none",
            "--modes",
            "step",
            "--first-call",
            "none",
            "--size",
            "2,4,2",
            "--json",
            "-",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["runs"][0]["model"]["num_layers"] == 2


# --------------------------------------------------------------------------- pieces
def test_daemon_results_are_summarised():
    lat = np.full(1000, 200_000)
    lat[-5:] = 3_000_000
    result = {
        "latencies_ns": lat,
        "sent": 1000,
        "received": 1000,
        "lost": 0,
        "startup_s": 0.4,
        "transport": "tcp://127.0.0.1",
    }
    entry, details = summarise_probe(result, 8, 1000.0)
    assert entry["mode"] == "daemon" and entry["p50_ns"] == 200_000
    assert entry["deadline_misses"] == 5
    assert details["lost"] == 0 and details["received"] == 1000 and details["n_streams"] == 8


def test_the_worst_streams_p99_is_reported():
    fast = np.full(1000, 200_000)
    slow = np.full(1000, 300_000)
    slow[-20:] = 5_000_000  # 2 % of one stream's rows late: its p99, not the pooled one
    result = {
        "latencies_ns": np.concatenate([fast, slow]),
        "stream_latencies_ns": {"a": fast, "b": slow},
        "sent": 2000,
        "received": 2000,
    }
    entry, details = summarise_probe(result, 2, 1000.0)
    assert entry["p99_ns"] == 300_000  # pooled over both streams, the late rows are 1 %
    assert details["worst_stream"] == "b" and details["worst_stream_p99_ns"] == 5_000_000
    assert details["worst_stream_p50_ns"] == 300_000
    assert details["stream_p99_ns"] == {"a": 200_000, "b": 5_000_000}
    assert "worst_stream" not in summarise_probe({"latencies_ns": fast}, 1, 1000.0)[1]


def test_daemon_probe_end_to_end(tmp_path):
    """Two emulated devices on loopback into the daemon for half a second (no times asserted)."""
    if daemon_available() is not None:
        pytest.skip(daemon_available())
    model = random_model(2, 8, 1)
    path = tmp_path / "m.safetensors"
    model.save(path)
    result = daemon_probe(path, n_streams=2, fs=500.0, duration_s=0.5, channels=2)
    assert result["sent"] > 0
    assert len(result["latencies_ns"]) > 0
    assert result["received"] == len(result["latencies_ns"]) + result["settling_rows"]
    assert np.all(result["latencies_ns"] > 0)
    entry, details = summarise_probe(result, 2, 500.0)
    assert entry["n_samples"] == len(result["latencies_ns"])
    assert sorted(result["stream_latencies_ns"]) == ["bench0", "bench1"]
    assert details["worst_stream_p99_ns"] == max(details["stream_p99_ns"].values())


def test_rows_that_arrived_while_the_devices_connect_are_counted_apart():
    from streamgru.bench.daemon import _LatencySinks
    from streamgru.io.chunk import PredictionBlock

    sinks = _LatencySinks()
    sink = sinks("null://")
    now = time.monotonic()
    sinks.since = now - 1.0
    times = np.repeat([now - 3.0, now - 0.5], [3, 5])  # 3 rows before `since`, 5 after
    sink.write(PredictionBlock("s", 0, times, np.zeros((8, 1), np.float32)))
    assert sinks.settling["rows"] == 3 and sinks.settling["max_s"] >= 3.0
    assert sum(a.size for a in sinks.latencies) == 5
    assert sink.stats.written == 8


def test_progress_only_on_a_terminal():
    quiet = io.StringIO()
    p = Progress(3, stream=quiet)
    p.task("one")
    p.close()
    assert quiet.getvalue() == ""
    loud = io.StringIO()
    p = Progress(3, enabled=True, stream=loud)
    p.task("step latency")
    p.close()
    assert "\r[ 1/3" in loud.getvalue() and "step latency" in loud.getvalue()


def test_bad_options_name_the_field():
    with pytest.raises(ConfigError, match="--size"):
        parse_size("8,64,x")
    assert parse_size("8,64") == (8, 64, 1)
    with pytest.raises(ConfigError, match="--modes"):
        BenchOptions(modes=("step", "warp")).resolved()
    with pytest.raises(ConfigError, match="--compare"):
        BenchOptions(compare=("tensorflow",)).resolved()
    with pytest.raises(ConfigError, match="--fs"):
        BenchOptions(fs=-1.0).resolved()


def test_cli_reports_bad_options(capsys):
    from streamgru.cli import main

    assert main(["bench", "--size", "8,0,1"]) == 1
    assert "--size" in capsys.readouterr().err
