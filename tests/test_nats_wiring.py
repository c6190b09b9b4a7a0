"""``nats://`` behind the generic openers, in the daemon's config, and ``[cluster]`` in the CLI.

The wiring tests need neither NATS nor nats-py. The round trips start a real ``nats-server -js``
on a free 127.0.0.1 port without the partition mapping (see ``tests/nats_server.py``) and skip
when it or nats-py is missing.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from factories import random_model
from nats_server import NatsServer, skip_reason
from test_daemon_helpers import tiny_model

import streamgru as sg
from streamgru.cli import EXIT_CONFIG, main
from streamgru.daemon.config_checks import check_uri
from streamgru.daemon.config_schema import SINK_SCHEMES, SOURCE_SCHEMES
from streamgru.errors import ConfigError, MissingDependencyError
from streamgru.io.chunk import PredictionBlock
from streamgru.io.nats_io import decode_predictions, encode_batch
from streamgru.io.protocol import Data, Hello, SampleFormat, encode

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 20.0  # seconds, for any one exchange with the server


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("natsw") / "m.safetensors", fs=250.0)


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def _cluster_file(tmp_path: Path, weights: Path, **over: str) -> Path:
    """A ``[cluster]`` worker file; ``over`` replaces keys (TOML values as text)."""
    values = {"nats": '"nats://127.0.0.1:4222"', "partitions": "4", "model": f'"{weights}"'}
    values.update(over)
    body = "".join(f"{k} = {v}\n" for k, v in values.items())
    return _write(tmp_path / "worker.toml", f"[cluster]\n{body}")


# ------------------------------------------------------------------------------- openers
@pytest.mark.parametrize("opener", [sg.open_source, sg.open_sink])
def test_nats_uri_without_subject_or_with_a_typo_is_a_config_error(opener):
    with pytest.raises(ConfigError, match="expected a subject after the host"):
        opener("nats://127.0.0.1:4222")
    with pytest.raises(
        ConfigError, match=r"unknown option\(s\) bogus; accepted: .*connect_timeout"
    ):
        opener("nats://127.0.0.1:4222/sg.x?bogus=1")


@pytest.mark.parametrize("opener", [sg.open_source, sg.open_sink])
def test_nats_without_nats_py_names_the_extra(opener, monkeypatch):
    monkeypatch.setitem(sys.modules, "nats", None)  # import nats -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'streamgru\[nats\]'"):
        opener("nats://127.0.0.1:4222/sg.x")


def test_the_expected_forms_list_nats():
    with pytest.raises(ConfigError, match="nats://host:port/SUBJECT"):
        sg.open_source("nope://x")
    with pytest.raises(ConfigError, match="nats://host:port/SUBJECT"):
        sg.open_sink("nope://x")


# ------------------------------------------------------------------------------- config
def test_check_uri_accepts_nats_with_a_subject_only():
    assert "nats" in SOURCE_SCHEMES and "nats" in SINK_SCHEMES
    good = "nats://127.0.0.1:4222/sg.in.bed1"
    assert check_uri("stream[0].source", good, SOURCE_SCHEMES, "hint") == good
    for bad in ("nats://host", "nats://host:4222/", "nats:///sg.in.x", "nats://h:port/sg.x"):
        with pytest.raises(ConfigError, match=r"^stream\[0\]\.source: expected nats://host:port"):
            check_uri("stream[0].source", bad, SOURCE_SCHEMES, "hint")


def test_config_check_takes_nats_and_names_a_bad_one(tmp_path, model_path, capsys):
    text = f"""
        [[stream]]
        id = "a"
        source = "nats://127.0.0.1:4222/sg.in.bed1"
        model = "{model_path}"
        sinks = ["nats://127.0.0.1:4222/sg.out.bed1"]
        """
    good = _write(tmp_path / "site.toml", text)
    assert main(["config", "check", str(good)]) == 0
    assert "nats://127.0.0.1:4222/sg.in.bed1 -> nats://127.0.0.1:4222/sg.out.bed1" in (
        capsys.readouterr().out
    )
    bad = _write(tmp_path / "bad.toml", text.replace("4222/sg.in.bed1", "4222"))
    assert main(["config", "check", str(bad)]) == EXIT_CONFIG
    assert "stream[0].source: expected nats://host:port/SUBJECT" in capsys.readouterr().err
    bad.write_text(good.read_text().replace("4222/sg.out.bed1", "4222"))
    assert main(["config", "check", str(bad)]) == EXIT_CONFIG
    assert "stream[0].sinks[0]: expected nats://host:port/SUBJECT" in capsys.readouterr().err


# ------------------------------------------------------------------------------- [cluster]
def test_config_check_on_a_cluster_file(tmp_path, model_path, capsys):
    path = _cluster_file(tmp_path, model_path, filter='"ecg-monitor"', fs="250")
    assert main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ok, cluster worker on nats://127.0.0.1:4222, 4 partition(s)" in out
    assert "filter ecg-monitor" in out
    assert main(["config", "check", "-q", "--no-models", str(path)]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "over, expected",
    [
        ({"partitions": "0"}, "cluster.partitions: expected an integer >= 1"),
        ({"nats": '"nats://127.0.0.1:4222/sg.in.x"'}, "cluster.nats: expected a server URL"),
        ({"nats": '"http://127.0.0.1:4222"'}, "cluster.nats: expected a server URL"),
        ({"model": '"missing.safetensors"'}, "cluster.model: cannot load"),
        ({"gap_policy": '"sometimes"'}, "cluster.gap_policy: expected one of"),
    ],
)
def test_a_bad_cluster_file_exits_78(tmp_path, model_path, capsys, over, expected):
    path = _cluster_file(tmp_path, model_path, **over)
    assert main(["config", "check", str(path)]) == EXIT_CONFIG
    assert expected in capsys.readouterr().err


def test_a_preset_without_any_sample_rate_is_refused(tmp_path, capsys):
    bare = tmp_path / "bare.safetensors"  # a model that records no fs
    random_model(input_size=1, hidden_size=4, head=((1, "sigmoid"),)).save(bare)
    assert sg.load_model(bare).fs is None
    path = _cluster_file(tmp_path, bare, filter='"ecg-monitor"')
    assert main(["config", "check", str(path)]) == EXIT_CONFIG
    assert "cluster.fs: filter preset 'ecg-monitor' needs --fs" in capsys.readouterr().err


def test_run_with_a_cluster_file_runs_a_worker(tmp_path, model_path, monkeypatch, capsys):
    import streamgru.cluster.command as cluster

    calls = []
    monkeypatch.setattr(cluster, "cluster_command", lambda path: calls.append(path) or 0)
    path = _cluster_file(tmp_path, model_path)
    assert main(["run", "--config", str(path)]) == 0
    assert calls == [str(path)]
    assert main(["run", "--config", str(path), "--state-dir", str(tmp_path)]) == EXIT_CONFIG
    assert "--state-dir: not used with a [cluster] config" in capsys.readouterr().err
    assert calls == [str(path)]


def test_run_with_a_bad_cluster_file_exits_78_in_a_subprocess(tmp_path):
    path = _cluster_file(tmp_path, tmp_path / "missing.safetensors")
    proc = subprocess.run(
        [sys.executable, "-m", "streamgru.cli", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert "streamgru run: configuration error" in proc.stderr
    assert "missing.safetensors" in proc.stderr


# ------------------------------------------------------------------------------- real server
@pytest.fixture()
def plain_nats_server():
    """A server without the partition mapping: ``sg.in.<id>`` is delivered as published."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with NatsServer(partitions=None) as server:
        yield server


async def _publish(url: str, subject: str, payloads: list[bytes]) -> None:
    import nats

    nc = await nats.connect(url)
    try:
        for payload in payloads:
            await nc.publish(subject, payload)
        await nc.flush()
    finally:
        await nc.close()


def test_open_source_reads_sgb1_frames_from_a_subject(plain_nats_server):
    hello = Hello(7, 250, 1, SampleFormat.INT16, "dev", "fw", (2.0,), (10.0,), ("mV",), ("I",))
    raw = np.arange(10, 70, 2, dtype=np.int32)[:, None]  # physical (raw - 10) / 2 = 0..29
    first = encode(hello) + encode(Data.from_values(1000, 0, raw[:10], "int16"))
    frames = [first, encode(Data.from_values(1010, 0, raw[10:20], "int16"))]
    frames.append(encode(Data.from_values(1025, 0, raw[25:], "int16")))  # 5 samples lost
    with sg.open_source(f"{plain_nats_server.url}/sg.in.x", connect_timeout=5) as src:
        asyncio.run(asyncio.wait_for(_publish(plain_nats_server.url, "sg.in.x", frames), TIMEOUT))
        chunks = [src.read(timeout=TIMEOUT) for _ in range(3)]
    assert all(c is not None for c in chunks), chunks
    assert [(c.first_index, c.n_samples, c.gap_before) for c in chunks] == [
        (1000, 10, 0),
        (1010, 10, 0),
        (1025, 5, 5),
    ]
    got = np.concatenate([c.samples[:, 0] for c in chunks])
    want = np.r_[np.arange(20), np.arange(25, 30)].astype(np.float32)
    np.testing.assert_array_equal(got, want)
    assert src.info.fs == 250.0 and src.info.units == ("mV",) and src.info.device_id == "dev"
    assert src.stats.gaps == 1 and src.stats.samples_lost == 5


@pytest.mark.parametrize("fmt", ["sgp1", "json"])
def test_open_sink_publishes_rows_with_their_index(plain_nats_server, fmt):
    import nats

    outputs = np.float32([[0.25, 1.0], [0.5, -2.0], [0.75, 3.5]])
    uri = f"{plain_nats_server.url}/sg.out.x?format={fmt}"

    async def exchange(sink) -> list[bytes]:
        nc = await nats.connect(plain_nats_server.url)
        try:
            sub = await nc.subscribe("sg.out.x")
            await nc.flush()
            sink.write(PredictionBlock("x", 4096, 0.0, outputs[:2]))
            sink.write(PredictionBlock("x", 4098, 0.0, outputs[2:]))
            sink.flush()
            return [(await sub.next_msg(timeout=TIMEOUT)).data for _ in range(2)]
        finally:
            await nc.close()

    with sg.open_sink(uri) as sink:
        messages = asyncio.run(asyncio.wait_for(exchange(sink), TIMEOUT + 5))
        assert sink.stats.written == 3
    rows = {}
    for payload in messages:
        first, out = decode_predictions(payload)
        rows.update({first + i: row for i, row in enumerate(out)})
    assert sorted(rows) == [4096, 4097, 4098]
    np.testing.assert_array_equal(np.stack([rows[i] for i in sorted(rows)]), outputs)


@pytest.mark.slow
def test_run_config_cluster_worker_predicts_and_stops_cleanly(tmp_path, model_path):
    """``streamgru run --config worker.toml``: a real worker, one batch in, its rows out."""
    import nats

    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with NatsServer(partitions=4) as server:
        path = _cluster_file(
            tmp_path, model_path, nats=f'"{server.url}"', worker_id='"w1"', lease_ttl_s="2"
        )
        log_path = tmp_path / "worker.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streamgru.cli", "run", "--config", str(path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        try:
            deadline = time.monotonic() + 120  # kernels may compile on a cold cache
            while b"partition taken" not in log_path.read_bytes():
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)

            async def exchange() -> bytes:
                nc = await nats.connect(server.url)
                try:
                    sub = await nc.subscribe("sg.out.bed1")
                    await nc.flush()
                    await nc.publish("sg.in.bed1", encode_batch(500, np.zeros(25, np.float32)))
                    return (await sub.next_msg(timeout=TIMEOUT)).data
                finally:
                    await nc.close()

            first, out = decode_predictions(asyncio.run(asyncio.wait_for(exchange(), 30)))
            assert (first, out.shape) == (500, (25, 1))
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, log_path.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@pytest.mark.slow
def test_run_daemon_with_nats_source_and_sink(plain_nats_server, tmp_path, model_path):
    """``streamgru run --source nats://... --sink nats://...``: rows come back by sample index."""
    import nats

    url = plain_nats_server.url
    cmd = [
        sys.executable, "-m", "streamgru.cli", "run", "--source", f"{url}/sg.in.x",
        "--model", str(model_path), "--sink", f"{url}/sg.out.x", "--no-metrics",
    ]  # fmt: skip
    hello = Hello(7, 250, 1, SampleFormat.FLOAT32, "dev", "fw", (1.0,), (0.0,), ("mV",), ("I",))
    log_path = tmp_path / "daemon.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

    async def exchange() -> list[tuple[int, np.ndarray]]:
        """Publish 10-sample messages (HELLO first in each: core NATS keeps nothing for a
        subscriber that is not there yet) until three prediction messages came back."""
        nc = await nats.connect(url)
        try:
            sub = await nc.subscribe("sg.out.x")
            got: list[tuple[int, np.ndarray]] = []
            for k in range(600):  # at most ~5 minutes at 0.5 s per round
                if len(got) >= 3 or proc.poll() is not None:
                    break
                data = Data.from_values(10 * k, 0, np.zeros((10, 1), np.float32), "float32")
                await nc.publish("sg.in.x", encode(hello) + encode(data))
                await nc.flush()
                try:
                    got.append(decode_predictions((await sub.next_msg(timeout=0.5)).data))
                except nats.errors.TimeoutError:
                    pass
            return got
        finally:
            await nc.close()

    try:
        got = asyncio.run(asyncio.wait_for(exchange(), 330))
        assert len(got) == 3, log_path.read_text()
        firsts = [first for first, _ in got]
        assert all(f % 10 == 0 for f in firsts) and firsts == sorted(firsts), firsts
        assert all(out.shape == (10, 1) for _, out in got)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
