"""The daemon's TOML configuration: parsed into frozen dataclasses, every field checked, a bad
file refused with exit code 78 and the field named."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_daemon_helpers import systemd_unit_keys, tiny_model

from streamgru.cli import EXIT_CONFIG, main
from streamgru.daemon.config import (
    AdhocSettings,
    adhoc_config,
    load_config,
    parse_config,
    tomllib,
    with_overrides,
)
from streamgru.daemon.plan import plan_stream
from streamgru.errors import ConfigError


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("cfg") / "m.safetensors", fs=250.0)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(textwrap.dedent(text))
    return path


def good_stream(model_path: Path, **over) -> dict:
    d = {"id": "a", "source": "tcp://127.0.0.1:5555", "model": str(model_path)}
    d.update(over)
    return d


def test_full_example_parses_into_frozen_dataclasses(tmp_path, model_path):
    path = write(
        tmp_path,
        f"""
        [daemon]
        state_dir = "state"
        snapshot_interval_s = 5
        watchdog = false

        [metrics]
        port = 0

        [logging]
        level = "debug"

        [[stream]]
        id = "bed1"
        source = "serial:///dev/ttyUSB0"
        model = "{model_path}"
        filter = "ecg-monitor"
        mains = 60
        gap_policy = "fill"
        gap_fill_max_s = 0.2
        nan_policy = "zero"
        sinks = ["jsonl:///tmp/x.jsonl", "stdout://"]
        events = true
        threshold = 0.7

        [[stream]]
        id = "bed2"
        source = "tcp://127.0.0.1:5000"
        model = "{model_path}"
        [stream.filter]
        highpass = 0.5
        lowpass = 40
        notch = [50, 100]
        order = 2
        """,
    )
    cfg = load_config(path)
    assert [s.id for s in cfg.streams] == ["bed1", "bed2"]
    s0, s1 = cfg.streams
    assert (
        s0.filter.kind == "preset" and s0.filter.preset == "ecg-monitor" and s0.filter.mains == 60
    )
    assert (s0.gap_policy, s0.gap_fill_max_s, s0.nan_policy) == ("fill", 0.2, "zero")
    assert s0.sinks == ("jsonl:///tmp/x.jsonl", "stdout://") and s0.events and s0.threshold == 0.7
    assert s1.filter.kind == "design" and s1.filter.notch == (50.0, 100.0) and s1.filter.order == 2
    assert cfg.daemon.state_dir == tmp_path / "state"  # relative to the file
    assert cfg.metrics.port == 0 and cfg.metrics.host == "127.0.0.1"
    assert cfg.logging.level == "debug" and cfg.logging.format == "json"
    with pytest.raises(dataclasses.FrozenInstanceError):
        s0.id = "x"  # type: ignore[misc]
    plans = [plan_stream(s, k) for k, s in enumerate(cfg.streams)]
    assert plans[0].filter_spec["preset"] == "ecg-monitor" and plans[0].threshold == 0.7
    assert plans[1].filter_spec["kind"] == "design" and plans[1].fs == 250.0


@pytest.mark.parametrize(
    ("stream_over", "expected"),
    [
        (
            {"source": "foo"},
            "stream[1].source: expected a URI like serial:///dev/ttyUSB0 or "
            "tcp://host:port, got 'foo'",
        ),
        ({"source": "http://x:1"}, "stream[1].source: unknown scheme 'http://'"),
        ({"source": "tcp://127.0.0.1"}, "stream[1].source: expected tcp://host:port"),
        ({"sourse": "tcp://h:1"}, "stream[1].sourse: unknown key"),
        ({"gap_policy": "ignore"}, "stream[1].gap_policy: expected one of reset, hold, fill"),
        ({"nan_policy": 3}, "stream[1].nan_policy: expected one of hold, zero, reset"),
        ({"filter": "ecg-monitr"}, "stream[1].filter: expected 'model', 'none', a preset"),
        ({"filter": {"highpass": 40, "lowpass": 10}}, "stream[1].filter.lowpass: expected above"),
        ({"filter": {"hipass": 1}}, "stream[1].filter.hipass: unknown key"),
        ({"sinks": ["stdout://", "kafka://x"]}, "stream[1].sinks[1]: unknown scheme"),
        ({"id": "a"}, "stream[1].id: 'a' is already used by stream[0]"),
        ({"id": "bad id!"}, "stream[1].id: expected a name"),
        ({"model": "/no/such/file.safetensors"}, "stream[1].model: no such file"),
        ({"events": "yes"}, "stream[1].events: expected true or false"),
        ({"fs": -1}, "stream[1].fs: expected a number > 0"),
        ({"channels": 0}, "stream[1].channels: expected an integer in 1..1024"),
    ],
)
def test_bad_stream_fields_are_named(model_path, stream_over, expected):
    second = {"id": "b", "source": "tcp://127.0.0.1:6000", **stream_over}
    doc = {"stream": [good_stream(model_path), good_stream(model_path, **second)]}
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    assert str(err.value).startswith(expected), str(err.value)


@pytest.mark.parametrize(
    ("section", "over", "expected"),
    [
        ("daemon", {"snapshot_interval": 3}, "daemon.snapshot_interval: unknown key"),
        ("daemon", {"resume": True}, "daemon.resume: needs daemon.state_dir"),
        ("metrics", {"port": 70000}, "metrics.port: expected an integer in 0..65535"),
        ("logging", {"format": "xml"}, "logging.format: expected one of json, text"),
        ("extra", {"x": 1}, "extra: unknown key"),
    ],
)
def test_bad_sections_are_named(model_path, section, over, expected):
    doc = {"stream": [good_stream(model_path)], section: over}
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    assert str(err.value).startswith(expected), str(err.value)


def test_unknown_key_suggests_the_close_one(model_path):
    with pytest.raises(ConfigError, match="did you mean 'gap_policy'"):
        parse_config({"stream": [good_stream(model_path, gap_polcy="reset")]})


def test_no_stream_is_an_error():
    with pytest.raises(ConfigError, match=r"^stream: no \[\[stream\]\] table"):
        parse_config({"metrics": {"port": 1}})


def test_model_checks_name_the_field(model_path):
    cfg = parse_config({"stream": [good_stream(model_path, fs=360)]})
    with pytest.raises(ConfigError, match=r"^stream\[0\]\.fs: stream fs 360 Hz differs"):
        plan_stream(cfg.streams[0], 0)
    cfg = parse_config({"stream": [good_stream(model_path, channels=2)]})
    with pytest.raises(ConfigError, match=r"^stream\[0\]\.channels: 2 channel\(s\), but the model"):
        plan_stream(cfg.streams[0], 0)
    cfg = parse_config({"stream": [good_stream(model_path, channels=2, pick=[0])]})
    assert plan_stream(cfg.streams[0], 0).channels == 2
    cfg = parse_config({"stream": [good_stream(model_path, channels=2, pick=[0, 1])]})
    with pytest.raises(ConfigError, match=r"^stream\[0\]\.pick: the model takes 1"):
        plan_stream(cfg.streams[0], 0)


def test_adhoc_errors_name_the_option(model_path):
    with pytest.raises(ConfigError, match=r"^--source: expected a URI like"):
        adhoc_config(AdhocSettings("foo", str(model_path)))
    with pytest.raises(ConfigError, match=r"^--sink\[0\]: unknown scheme"):
        adhoc_config(AdhocSettings("tcp://127.0.0.1:1", str(model_path), sinks=["nope://"]))
    cfg = adhoc_config(AdhocSettings("tcp://127.0.0.1:1", str(model_path), metrics_port=0))
    assert cfg.streams[0].sinks == ("stdout://",) and cfg.metrics.port == 0
    assert not cfg.streams[0].resample
    cfg = adhoc_config(AdhocSettings("tcp://127.0.0.1:1", str(model_path), fs=360, resample=True))
    assert cfg.streams[0].resample and plan_stream(cfg.streams[0], 0).resample == (25, 36)


def test_config_check_command(tmp_path, model_path, capsys):
    good = write(
        tmp_path,
        f"""
        [[stream]]
        id = "a"
        source = "tcp://127.0.0.1:5555"
        model = "{model_path}"
        """,
    )
    assert main(["config", "check", str(good)]) == 0
    assert "ok, 1 stream" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace('"tcp://127.0.0.1:5555"', '"foo"'))
    assert main(["config", "check", str(bad)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "stream[0].source: expected a URI like serial:///dev/ttyUSB0" in err
    broken = tmp_path / "broken.toml"
    broken.write_text("[[stream]\n")
    assert main(["config", "check", str(broken)]) == EXIT_CONFIG
    assert "not valid TOML" in capsys.readouterr().err


def test_run_with_a_bad_config_exits_78_in_a_subprocess(tmp_path, model_path):
    bad = write(
        tmp_path,
        f"""
        [[stream]]
        id = "a"
        source = "tcp://127.0.0.1:5555"
        model = "{model_path}"
        gap_policy = "sometimes"
        """,
    )
    proc = subprocess.run(
        [sys.executable, "-m", "streamgru.cli", "run", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == EXIT_CONFIG == 78
    assert "stream[0].gap_policy: expected one of reset, hold, fill" in proc.stderr


def test_the_shipped_example_config_is_valid(tmp_path, model_path):
    example = Path(__file__).resolve().parents[1] / "deploy" / "site.example.toml"
    text = example.read_text()
    text = re.sub(r'model = "[^"]+"', f'model = "{model_path}"', text)
    text = text.replace("/var/lib/streamgru", str(tmp_path / "state"))
    cfg = parse_config(tomllib.loads(text), base=tmp_path)
    assert [s.id for s in cfg.streams] == ["bed1-ecg", "bed2-eeg"]
    assert cfg.streams[0].pick == ("MLII",) and cfg.streams[1].filter.kind == "design"
    assert cfg.daemon.snapshot_interval_s == 60 and cfg.metrics.port == 9108


def test_a_source_uri_with_a_bad_option_stops_the_daemon_with_78(model_path):
    # The option is only understood when the source opens: the stream is "misconfigured",
    # and with no stream left running the daemon exits with EX_CONFIG.
    args = ["run", "--source", "synthetic://ecg?fs=250&bogus=1", "--model", str(model_path)]
    assert main([*args, "--no-metrics", "--log-level", "error"]) == EXIT_CONFIG


def test_the_example_systemd_unit_matches_the_daemon():
    import shlex

    from streamgru.cli import build_parser

    keys = systemd_unit_keys()
    assert keys["Type"] == ["notify"] and keys["NotifyAccess"] == ["main"]
    assert float(keys["WatchdogSec"][0]) > 0 and keys["StateDirectory"] == ["streamgru"]
    assert keys["RestartPreventExitStatus"] == [str(EXIT_CONFIG)]  # a bad config: no restart
    assert keys["KillSignal"] == ["SIGTERM"] and "-HUP" in keys["ExecReload"][0]
    # ExecStart is a command line the CLI accepts: run --config FILE --resume
    argv = shlex.split(keys["ExecStart"][0])
    assert Path(argv[0]).name == "streamgru"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run" and args.config.endswith(".toml") and args.resume


def test_a_state_dir_given_on_the_command_line_is_checked_like_the_config_key(tmp_path):
    """``--state-dir`` (``with_overrides``) gets the same check as ``daemon.state_dir``."""
    model = tiny_model(tmp_path / "m.safetensors")
    cfg = adhoc_config(AdhocSettings(source="synthetic://ecg?fs=250", model=str(model)))
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ConfigError, match=r"--state-dir: .* exists and is not a directory"):
        with_overrides(cfg, state_dir=afile)
    assert with_overrides(cfg, state_dir=tmp_path / "new" / "state").daemon.state_dir is not None
