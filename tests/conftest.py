import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def pytest_terminal_summary(terminalreporter):
    """Print what tests recorded with ``record_property("summary", text)`` (measurements such
    as the daemon load test's latency p50/p99), visible without ``-s``."""
    lines = []
    for key in ("passed", "failed"):
        for report in terminalreporter.stats.get(key, []):
            if getattr(report, "when", "call") != "call":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if name == "summary":
                    lines.append(f"{report.nodeid}:\n{value}")
    if lines:
        terminalreporter.write_sep("=", "streamgru measurements")
        for text in lines:
            terminalreporter.write_line(text)
    if _UNEXPECTED:
        terminalreporter.write_sep(
            "=", f"{len(_UNEXPECTED)} unexpected skip(s): session failed", red=True
        )
        for line in _UNEXPECTED:
            terminalreporter.write_line(line)


# ----------------------------------------------------------------------------- no silent skips
#: A skip is allowed only on a test marked ``@pytest.mark.gpu``: it needs a real CUDA GPU (the
#: in-process twins that test_cuda_sim.py / test_state_contract.py also run under
#: NUMBA_ENABLE_CUDASIM in a subprocess), or it is that subprocess runner, which steps aside
#: where a GPU is present. Any other skip means `make install-test` did not install something
#: a test uses, so the session fails; with CI=true an xfail fails it too.
ALLOWED_SKIP_MARKER = "gpu"
_UNEXPECTED: list[str] = []  # "nodeid: what: reason", one per unexpected skip/xfail


def _note(nodeid: str, what: str, longrepr) -> None:
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    _UNEXPECTED.append(f"{nodeid}: {what}: {reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and hasattr(report, "wasxfail"):
        if os.environ.get("CI") == "true":
            _note(report.nodeid, "xfailed (CI=true)", report.wasxfail)
    elif report.skipped and item.get_closest_marker(ALLOWED_SKIP_MARKER) is None:
        _note(report.nodeid, "skipped", report.longrepr)


def pytest_collectreport(report):
    if report.skipped:  # a module-level skip/importorskip: never a GPU one
        _note(report.nodeid, "skipped at collection", report.longrepr)


def pytest_sessionfinish(session, exitstatus):
    if _UNEXPECTED and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# ----------------------------------------------------------------------------- logging isolation
@pytest.fixture(autouse=True)
def _restore_streamgru_logging():
    """A daemon run in-process calls ``setup_logging``, which gives the ``streamgru`` logger its
    own handler and stops propagation; put the logger back so later tests' ``caplog`` sees it."""
    import logging

    root = logging.getLogger("streamgru")
    saved = (list(root.handlers), root.level, root.propagate)
    yield
    root.handlers[:], root.level, root.propagate = saved[0], saved[1], saved[2]
