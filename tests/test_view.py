"""The live view without a browser: display decimation (min/max per point), bounded rings and
cursors, the server's page, ``/state.json`` and ``/events`` (SSE), ``[view]`` in the config."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from streamgru.daemon.config import parse_config
from streamgru.daemon.view_config import view_option
from streamgru.errors import ConfigError
from streamgru.io.chunk import PredictionBlock
from streamgru.io.sinks import check_sink, open_sink
from streamgru.view.hub import ViewHub, ViewSettings
from streamgru.view.sink import open_views


class _Beat:
    def __init__(self, index: int, hr: float | None) -> None:
        self.index, self.hr_bpm = index, hr


def _block(first: int, X: np.ndarray, Y: np.ndarray, events=(), fs: float = 100.0):
    return PredictionBlock(
        "s", first, time.monotonic(), Y, labels=("p",), inputs=X, events=events, fs=fs
    )


def test_points_are_min_and_max_of_their_samples_across_block_boundaries():
    hub = ViewHub(ViewSettings(points_per_s=25.0, window_s=10.0))  # fs 100: 4 samples a point
    rng = np.random.default_rng(0)
    X = rng.standard_normal((103, 2)).astype(np.float32)
    Y = rng.random((103, 1)).astype(np.float32)
    for a, b in ((0, 7), (7, 50), (50, 103)):  # blocks that split points
        hub.add(_block(a, X[a:b], Y[a:b]))
    msg = hub.poll({})["s"]
    assert msg["bucket"] == 4 and msg["n_inputs"] == 2 and msg["labels"] == ["in0", "in1", "p"]
    assert msg["at"] == list(range(0, 100, 4))  # the last 3 samples wait for their point
    rows = np.hstack([X, Y])[:100].reshape(25, 4, 3)
    np.testing.assert_allclose(np.array(msg["min"]).T, rows.min(axis=1), rtol=1e-5)
    np.testing.assert_allclose(np.array(msg["max"]).T, rows.max(axis=1), rtol=1e-5)


def test_ring_is_bounded_and_cursors_see_only_news_beats_gaps_and_status():
    hub = ViewHub(ViewSettings(points_per_s=100.0, window_s=0.5))  # 50 points kept
    X = np.zeros((40, 1), np.float32)
    cursors: dict = {}
    hub.add(_block(0, X, X, events=(_Beat(10, None),)))
    first = hub.poll(cursors)["s"]
    assert len(first["at"]) == 40 and first["beats"] == [[10, None]] and first["lost"] == 0
    hub.add(_block(40, X, X, events=(_Beat(70, 75.04),)))
    news = hub.poll(cursors)["s"]
    assert news["at"] == list(range(40, 80)) and news["beats"] == [[70, 75.0]]
    assert news["hr"] == 75.0 and not news["skipped"] and news["latency_ms"] >= 0
    assert hub.poll(cursors)["s"]["at"] == []  # nothing new
    for k in range(5):  # 200 samples after a 20-sample gap: more than the ring holds
        hub.add(_block(100 + 40 * k, X, X))
    late = hub.poll(cursors)["s"]
    assert late["skipped"] and len(late["at"]) == 50 and late["at"][-1] == 299
    assert late["lost"] == 20


def test_server_serves_the_page_state_and_events(tmp_path):
    sink = open_sink("view://127.0.0.1:0?rate_hz=50&window_s=2&max_clients=1")
    try:
        url = sink.url
        assert open_views()["view://127.0.0.1:0?rate_hz=50&window_s=2&max_clients=1"] == url
        page = urllib.request.urlopen(url, timeout=5).read().decode()
        assert '<script src="view.js"></script>' in page and "http" not in page.split("<body>")[1]
        js = urllib.request.urlopen(url + "view.js", timeout=5).read().decode()
        assert "EventSource" in js and "innerHTML" not in js
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(url + "nope", timeout=5)
        X = np.sin(np.arange(200) / 5.0).astype(np.float32)[:, None]
        sink.write(_block(0, X, X, events=(_Beat(50, 60.0),)))
        state = json.loads(urllib.request.urlopen(url + "state.json", timeout=5).read())
        assert state["window_s"] == 2.0 and state["streams"]["s"]["beats"] == [[50, 60.0]]
        events = urllib.request.urlopen(url + "events", timeout=5)
        assert events.headers["Content-Type"] == "text/event-stream"
        first = json.loads(events.readline().decode().removeprefix("data: "))
        assert len(first["streams"]["s"]["at"]) == 200 and events.readline() == b"\n"
        with pytest.raises(urllib.error.HTTPError, match="503"):  # max_clients=1
            urllib.request.urlopen(url + "events", timeout=5)
        sink.write(_block(200, X[:50], X[:50]))
        deadline = time.monotonic() + 5
        news: list = []
        while not news and time.monotonic() < deadline:
            line = events.readline()
            if line.startswith(b"data: "):
                news = json.loads(line[6:])["streams"]["s"]["at"]
        assert news == list(range(200, 250))
        events.close()
    finally:
        sink.close()
    assert not open_views()
    with (
        pytest.raises(OSError),
        socket.create_connection(("127.0.0.1", int(url.split(":")[2][:-1])), 1),
    ):
        pass  # the port is closed


def test_sinks_with_one_uri_share_one_server_until_the_last_closes():
    a = open_sink("view://127.0.0.1:0?window_s=3")
    b = open_sink("view://127.0.0.1:0?window_s=3")
    assert a.url == b.url
    a.close()
    assert urllib.request.urlopen(b.url + "state.json", timeout=5).status == 200
    b.close()
    assert not open_views()


def test_view_config_table_and_option():
    from streamgru.demo.command import default_model

    model = str(default_model()[0])
    stream = {"id": "a", "source": "synthetic://ecg", "model": model, "sinks": ["null://"]}
    cfg = parse_config({"stream": [stream], "view": {"port": 0, "window_s": 5}})
    assert cfg.streams[0].sinks == ("null://", "view://127.0.0.1:0?window_s=5")
    cfg = parse_config({"stream": [stream], "view": {"enabled": False}})
    assert cfg.streams[0].sinks == ("null://",)
    assert view_option() == "view://127.0.0.1:9109" and view_option(0).endswith(":0")
    with pytest.raises(ConfigError, match=r"view.colour: unknown key"):
        parse_config({"stream": [stream], "view": {"colour": 1}})
    with pytest.raises(ConfigError, match=r"view.rate_hz: expected a number <= 100"):
        parse_config({"stream": [stream], "view": {"rate_hz": 1000}})
    with pytest.raises(ConfigError, match=r"view.port: expected an integer"):
        parse_config({"stream": [stream], "view": {"port": "x"}})
    check_sink("view://127.0.0.1:0?points_per_s=50")
    with pytest.raises(ConfigError, match=r"expected view://127\.0\.0\.1:PORT"):
        check_sink("view://127.0.0.1")


def test_demo_view_serves_the_stream_then_lingers(tmp_path):
    import io
    import threading

    from streamgru.demo.command import DemoOptions, demo_command
    from streamgru.demo.view import view_address

    _, url = view_address(None)
    port = int(url.rsplit(":", 1)[1].strip("/"))
    out = io.StringIO()
    options = DemoOptions(
        duration=3.0, speed=4.0, quiet=True, view=True, view_port=port, linger=1.5
    )
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(demo_command(options, out)))
    runner.start()
    state: dict = {}
    deadline = time.monotonic() + 90
    while runner.is_alive() and time.monotonic() < deadline:
        try:
            state = json.loads(urllib.request.urlopen(url + "state.json", timeout=2).read())
        except OSError:  # not serving yet
            time.sleep(0.2)
            continue
        if state["streams"].get("ecg", {}).get("beats"):
            break
        time.sleep(0.2)
    runner.join(90)
    assert not runner.is_alive() and result == [0]
    ecg = state["streams"]["ecg"]
    assert ecg["fs"] == 360.0 and ecg["labels"] == ["MLII", "beat"] and ecg["beats"]
    assert f"live view    {url}  (served 1.5 s after the replay ends)" in out.getvalue()
    assert not open_views()


def test_run_view_options_add_the_view_sink_to_every_stream():
    from streamgru.cli import build_parser
    from streamgru.daemon.cli_args import run_config
    from streamgru.demo.command import default_model

    model = str(default_model()[0])
    base = ["run", "--source", "synthetic://ecg?fs=360", "--model", model, "--sink", "null://"]
    args = build_parser().parse_args([*base, "--view"])
    assert run_config(args).streams[0].sinks == ("null://", "view://127.0.0.1:9109")
    args = build_parser().parse_args([*base, "--view-port", "0"])
    assert run_config(args).streams[0].sinks == ("null://", "view://127.0.0.1:0")
    assert run_config(build_parser().parse_args(base)).streams[0].sinks == ("null://",)


def test_a_loopback_view_refuses_other_host_names_and_lets_idle_clients_go():
    """DNS rebinding: a page whose own name now points at 127.0.0.1 sends that name as Host
    and gets 403; the loopback names get the page. A handler's socket has a timeout."""
    import http.client

    from streamgru.view.server import _Handler

    sink = open_sink("view://127.0.0.1:0")
    try:
        port = int(sink.url.rsplit(":", 1)[1].strip("/"))
        codes = {}
        for host in ("evil.example", "evil.example:80", f"localhost:{port}", f"127.0.0.1:{port}"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.putrequest("GET", "/state.json", skip_host=True)
                conn.putheader("Host", host)
                conn.endheaders()
                codes[host] = conn.getresponse().status
            finally:
                conn.close()
    finally:
        sink.close()
    assert codes == {
        "evil.example": 403,
        "evil.example:80": 403,
        f"localhost:{port}": 200,
        f"127.0.0.1:{port}": 200,
    }
    assert 0 < _Handler.timeout <= 60


def test_run_config_with_a_view_table_and_view_makes_one_view_sink(tmp_path):
    """``run --config X --view`` where X's ``[view]`` has options: one view sink on the port, the
    table's (a second URI on the same port would never bind and retry forever)."""
    from streamgru.cli import build_parser
    from streamgru.daemon.cli_args import run_config
    from streamgru.daemon.config_schema import Config
    from streamgru.daemon.view_config import with_view
    from streamgru.demo.command import default_model

    model = str(default_model()[0])
    path = tmp_path / "site.toml"
    path.write_text(
        "[[stream]]\nid = 'a'\nsource = 'synthetic://ecg?fs=360'\n"
        f"model = '{model}'\nsinks = ['null://']\n[view]\nwindow_s = 30\n"
    )
    args = build_parser().parse_args(["run", "--config", str(path), "--view"])
    assert run_config(args).streams[0].sinks == ("null://", "view://127.0.0.1:9109?window_s=30")
    cfg: Config = run_config(args)
    for same in ("view://localhost:9109?rate_hz=5", "view://127.0.0.1:9109"):
        assert with_view(cfg, same).streams[0].sinks == cfg.streams[0].sinks
    other = with_view(cfg, "view://127.0.0.1:9110").streams[0].sinks  # another port: another view
    assert other[-1] == "view://127.0.0.1:9110" and len(other) == 3


def test_a_block_of_beats_alone_moves_no_index_and_counts_no_loss():
    hub = ViewHub(ViewSettings(points_per_s=100.0, window_s=1.0))
    X = np.zeros((40, 1), np.float32)
    hub.add(_block(0, X, X))
    empty = np.zeros((0, 1), np.float32)
    hub.add(_block(10, empty, empty, events=(_Beat(20, 60.0),)))  # beats only, an earlier index
    hub.add(_block(0, empty, np.zeros((0, 0), np.float32), events=(_Beat(30, 61.0),)))
    hub.add(_block(40, X, X))
    msg = hub.poll({})["s"]
    assert msg["lost"] == 0 and msg["at"] == list(range(80)) and msg["hr"] == 61.0
    assert msg["beats"] == [[20, 60.0], [30, 61.0]] and msg["n_inputs"] == 1


def test_a_stream_whose_view_sink_closes_leaves_the_page():
    """A stream a SIGHUP reload removed (its view sink closed) is no longer in the messages;
    if it comes back, a viewer that knew it sees it again from its start."""
    a = open_sink("view://127.0.0.1:0?window_s=3")
    b = open_sink("view://127.0.0.1:0?window_s=3")
    X = np.zeros((100, 1), np.float32)
    try:
        for sink, sid in ((a, "a"), (b, "b")):
            block = _block(0, X, X)
            block.stream_id = sid
            sink.write(block)
        cursors: dict = {}
        assert sorted(b.hub.poll(cursors)) == ["a", "b"]
        a.close()
        assert sorted(b.hub.poll(cursors)) == ["b"]
        state = json.loads(urllib.request.urlopen(b.url + "state.json", timeout=5).read())
        assert sorted(state["streams"]) == ["b"]
        again = open_sink("view://127.0.0.1:0?window_s=3")
        block = _block(0, X[:40], X[:40])
        block.stream_id = "a"
        again.write(block)
        assert len(b.hub.poll(cursors)["a"]["at"]) == 40  # from its start, not after the old cursor
        again.close()
    finally:
        b.close()
    assert not open_views()


def test_a_stream_removed_by_a_sighup_reload_leaves_the_page(tmp_path):
    """Every stream shares one view sink (one lane, open while any stream uses it): a stream the
    new config drops is taken off the page at the reload, the others stay."""
    import signal

    from test_daemon_helpers import DaemonProcess, tiny_model

    model = tiny_model(tmp_path / "m.safetensors", fs=250.0, seed=3)

    def site(ids) -> str:
        streams = "".join(
            f'[[stream]]\nid = "{sid}"\nsource = "synthetic://ecg?fs=250&speed=2&seed={k}"\n'
            f'model = "{model}"\nsinks = ["null://"]\n'
            for k, sid in enumerate(ids)
        )
        return "[metrics]\nenabled = false\n[view]\nport = 0\n" + streams

    def shown(url: str) -> list[str]:
        state = json.loads(urllib.request.urlopen(url + "state.json", timeout=5).read())
        return sorted(state["streams"])

    def wait_shown(url: str, want: list[str]) -> list[str]:
        got, deadline = [], time.monotonic() + 30
        while time.monotonic() < deadline:
            got = shown(url)
            if got == want:
                break
            time.sleep(0.2)
        return got

    cfg = tmp_path / "site.toml"
    cfg.write_text(site(["a", "b"]))
    daemon = DaemonProcess(["run", "--config", str(cfg)], tmp_path)
    try:
        url = daemon.wait_msg("live view", timeout=60)["url"]
        assert wait_shown(url, ["a", "b"]) == ["a", "b"]
        cfg.write_text(site(["b"]))
        daemon.signal(signal.SIGHUP)
        assert daemon.wait_msg("reloaded", timeout=30)["removed"] == ["a"]
        assert wait_shown(url, ["b"]) == ["b"]
        time.sleep(0.5)
        assert shown(url) == ["b"]  # and it does not come back
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        daemon.stop()


def test_blocks_of_a_forgotten_stream_still_on_their_way_are_ignored(monkeypatch):
    import streamgru.view.hub as hub_module

    hub = ViewHub(ViewSettings(points_per_s=100.0, window_s=1.0))
    X = np.zeros((40, 1), np.float32)
    hub.add(_block(0, X, X))
    hub.forget(["s"])
    hub.add(_block(40, X, X))  # queued before the reload dropped the stream: not shown again
    assert hub.poll({}) == {}
    monkeypatch.setattr(hub_module, "FORGET_GRACE_S", 0.0)
    hub.add(_block(0, X, X))  # later, a stream of that id runs again (another reload)
    assert hub.poll({})["s"]["at"] == list(range(40))
