"""The live view end to end: the daemon runs the shipped beat model on MIT-BIH record 100 with
``[view]`` on, and Debian's headless chromium (through its chromedriver, driven by selenium)
loads the page: the waveform updates and a beat marker appears. A screenshot goes to the test's
tmp dir (its path is printed in the session's summary)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,520",
)


def _browser(profile: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(10)
    return driver


def _wait(what: str, check, limit_s: float = 20.0):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {limit_s} s waiting for {what}")


def _ecg_csv(path: Path, seconds: float) -> Path:
    from streamgru.demo.record import read_record
    from streamgru.demo.segment import RECORD

    rec = read_record(RECORD)
    X = rec.physical(int(seconds * rec.fs))[:, :1]
    np.savetxt(path, X, delimiter=",", header="MLII", comments="", fmt="%.4f")
    return path


def test_live_view_in_headless_chromium(tmp_path, record_property):
    from streamgru.daemon.config import parse_config
    from streamgru.daemon.daemon import Daemon
    from streamgru.demo.command import default_model
    from streamgru.view.sink import open_views

    csv = _ecg_csv(tmp_path / "ecg.csv", 40.0)
    stream = {
        "id": "ecg",
        "source": f"file://{csv}?fs=360&speed=2",
        "model": str(default_model()[0]),
        "filter": "model",
        "events": True,
        "sinks": ["null://"],
    }
    doc = {
        "stream": [stream],
        "view": {"port": 0, "window_s": 6},
        "metrics": {"enabled": False},
        "daemon": {"snapshot_interval_s": 0},
        "logging": {"level": "error"},
    }
    daemon = Daemon(parse_config(doc), configure_logging=False)
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    driver = None
    try:
        url = _wait("the view server", lambda: next(iter(open_views().values()), None), 90)
        driver = _browser(tmp_path / "profile")
        driver.get(url)
        panel = _wait(
            "the stream's panel",
            lambda: driver.find_elements(By.CSS_SELECTOR, 'section[data-stream="ecg"]'),
        )[0]

        def state():
            return {k: int(panel.get_attribute(f"data-{k}") or 0) for k in ("frames", "latest")}

        first = _wait("a first frame with points", lambda: state()["latest"] > 0 and state())
        canvas = driver.find_element(By.TAG_NAME, "canvas")
        image = driver.execute_script("return arguments[0].toDataURL()", canvas)
        _wait("the waveform to move on", lambda: state()["latest"] > first["latest"] + 360)
        assert state()["frames"] > first["frames"]
        assert driver.execute_script("return arguments[0].toDataURL()", canvas) != image
        _wait("a beat marker", lambda: int(panel.get_attribute("data-beats-shown") or 0) > 0)
        _wait("a heart rate", lambda: panel.find_element(By.CSS_SELECTOR, ".hr b").text != "–")
        hr = panel.find_element(By.CSS_SELECTOR, ".hr b").text
        time.sleep(1.0)  # a few more beats on screen for the picture
        shot = tmp_path / "live_view.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 1000
        lost = panel.find_element(By.CSS_SELECTOR, ".lost b").text
        record_property("summary", f"screenshot: {shot} (heart rate {hr!r}, samples lost {lost})")
        assert lost == "0"
    finally:
        if driver is not None:
            driver.quit()
        daemon.request_stop()
        runner.join(20)
    assert not runner.is_alive()
    assert not open_views()  # the server went with the daemon's sinks
