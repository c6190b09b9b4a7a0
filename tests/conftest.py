import sys
from pathlib import Path

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
