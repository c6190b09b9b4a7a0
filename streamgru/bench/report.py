"""The report of ``streamgru bench``: its JSON schema, validation, writing, and a text summary.

The schema (``schema.json``, JSON Schema draft 2020-12, ``"schema_version": 1``) ships
with the package; bench/README.md describes every field. A report that does not follow it is a
bug in the benchmark, so :func:`validate_report` raises when ``jsonschema`` is installed (and
does nothing without it).
"""

from __future__ import annotations

import json
import os
from importlib import resources
from typing import Any, TextIO

from ..errors import StreamgruError

SCHEMA_FILE = "schema.json"


class BenchReportError(StreamgruError, ValueError):
    """A benchmark report does not follow ``schema.json``."""


def load_schema() -> dict[str, Any]:
    """The report's JSON Schema, read from the installed package."""
    text = resources.files("streamgru.bench").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def validate_report(report: dict[str, Any]) -> bool:
    """Check ``report`` against the schema; False when ``jsonschema`` is not installed.

    Raises
    ------
    BenchReportError : the report does not follow the schema (the message names where).
    """
    try:
        import jsonschema
    except ImportError:
        return False
    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(report), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise BenchReportError(
            f"bench report does not follow {SCHEMA_FILE} at {where}: {first.message}"
        )
    return True


def write_json(report: dict[str, Any], dest: str | os.PathLike | TextIO) -> None:
    """Write the report as indented JSON to a path or an open text stream."""
    text = json.dumps(report, indent=2, allow_nan=False) + "\n"
    if hasattr(dest, "write"):
        dest.write(text)  # type: ignore[union-attr]
        return
    with open(dest, "w", encoding="utf-8") as fh:
        fh.write(text)


# --------------------------------------------------------------------------- text
def _us(ns: float | None) -> str:
    if ns is None:
        return "-"
    return f"{ns / 1000:.2f}" if ns < 1e7 else f"{ns / 1e6:.1f}ms"


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f}{unit}"
    return f"{value:.1f}"


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))
    )
    out = [line, "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append(
            "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(r, widths))
            )
        )
    return out


def _machine_line(machine: dict[str, Any]) -> str:
    pk = machine.get("packages", {})
    blas = (
        ", ".join(
            f"{b.get('internal_api')} {b.get('version')}"
            for b in machine.get("blas", [])
            if b.get("user_api") == "blas"
        )
        or "unknown"
    )
    return (
        f"machine: {machine.get('cpu_model')} ({machine.get('usable_cores')} usable cores, "
        f"governor {machine.get('frequency_governor') or 'unreadable'}), "
        f"python {machine.get('python')}, numpy {pk.get('numpy')}, numba {pk.get('numba')}, "
        f"llvmlite {pk.get('llvmlite')}, BLAS {blas}"
    )


def render_text(report: dict[str, Any]) -> str:
    """A human summary of the report: latency table, throughput tables, checks and ratios."""
    lines = [
        f"streamgru bench {report['streamgru_version']} - {report['created_utc']}",
        _machine_line(report["machine"]),
        f"threads pinned to 1; timer overhead {report['settings']['timer_overhead_ns']} ns per "
        "reading (not subtracted); medians of repeated runs",
        "",
    ]
    for run in report["runs"]:
        m = run["model"]
        lines.append(
            f"== model {m['source']}: I={m['input_size']} H={m['hidden_size']} "
            f"L={m['num_layers']} O={m['output_size']} reset-{m['reset']}, fs {run['fs']:g} Hz"
        )
        lines += _checks_text(run)
        lines += _latency_text(run)
        lines += _first_call_text(run)
        lines += _throughput_text(run)
        lines += _modes_text(run)
        lines += _ratios_text(run)
        lines.append("")
    return "\n".join(lines) + "\n"


def _checks_text(run: dict[str, Any]) -> list[str]:
    checks = [
        [
            c["method"],
            c["status"],
            "-" if c["max_abs_diff"] is None else f"{c['max_abs_diff']:.1e}",
        ]
        for c in run["comparisons"]
    ]
    if not checks:
        return []
    lines = ["", "output checks (same weights, random input):"]
    lines += _table(checks, ["method", "status", "max|diff|"])
    for c in run["comparisons"]:
        if c["status"] not in ("ok", "skipped") and c["note"]:
            lines.append(f"  {c['method']}: {c['note']}")
    return lines


def _latency_text(run: dict[str, Any]) -> list[str]:
    if not run["latency"]:
        return []
    rows = [
        [
            e["method"],
            _us(e["p50_ns"]),
            _us(e["p90_ns"]),
            _us(e["p99_ns"]),
            _us(e["p999_ns"]),
            _us(e["max_ns"]),
            _us(e["jitter_ns"]),
            _us(e["std_ns"]),
            "-" if e["deadline_misses"] is None else str(e["deadline_misses"]),
            str(e["n_samples"]),
        ]
        for e in run["latency"]
    ]
    header = ["method", "p50", "p90", "p99", "p99.9", "max", "jitter", "std", "misses", "n"]
    return ["", "per-sample latency (us):", *_table(rows, header)]


def _first_call_text(run: dict[str, Any]) -> list[str]:
    lines = []
    for fc in run["first_call"]:
        if "error" in fc:
            lines.append(f"first call ({fc['cache']} cache): error: {fc['error']}")
        else:
            lines.append(
                f"first call ({fc['cache']} cache): {fc['total_s']:.2f} s in process "
                f"(import {fc['import_s']:.2f}, load {fc['load_s']:.2f}, construct "
                f"{fc['construct_s']:.2f}, first step {fc['first_step_s'] * 1e3:.2f} ms); "
                f"{fc['process_s']:.2f} s with interpreter start"
            )
    return lines


def _throughput_text(run: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if run["chunk"]:
        lines += ["", "chunk throughput (samples/s; per-sample us):"]
        rows = [
            [
                p["method"],
                str(p["chunk_length"]),
                _si(p["samples_per_s"]),
                _us(p["per_sample_ns"]),
            ]
            for p in run["chunk"]
        ]
        lines += _table(rows, ["method", "T", "samples/s", "us/sample"])
    if run["many"]:
        lines += ["", "many-stream throughput (stream-steps/s):"]
        rows = [
            [
                p["method"],
                str(p["n_streams"]),
                _si(p["stream_steps_per_s"]),
                f"{p['gflops']:.2f}",
                f"{p['sgemm_fraction']:.2f}",
            ]
            for p in run["many"]
        ]
        lines += _table(rows, ["method", "B", "steps/s", "GFLOP/s", "of sgemm"])
    return lines


def _modes_text(run: dict[str, Any]) -> list[str]:
    lines = []
    for mode, info in run["modes"].items():
        if info["status"] != "ok":
            lines.append(f"mode {mode}: {info['status']}: {info['note']}")
        elif mode == "pipeline":
            lines.append(f"pipeline composition: {info.get('composition')}")
        elif mode == "daemon":
            lines.append(
                f"daemon: {info.get('n_streams')} streams x {info.get('fs'):g} Hz over "
                f"{info.get('transport')}: sent {info.get('sent')}, received "
                f"{info.get('received')}, lost {info.get('lost')}, dropped on device "
                f"{info.get('dropped_on_device')}; start to ready {info.get('startup_s', 0):.2f} s"
            )
            if "worst_stream_p99_ns" in info:
                lines.append(
                    f"daemon worst stream {info['worst_stream']}: p50 "
                    f"{info['worst_stream_p50_ns'] / 1e6:.3f} ms, p99 "
                    f"{info['worst_stream_p99_ns'] / 1e6:.3f} ms"
                )
    return lines


def _ratios_text(run: dict[str, Any]) -> list[str]:
    if not run["ratios"]:
        return []
    rows = []
    for r in run["ratios"]:
        target = "" if r["target"] is None else f"{r['target']['op']} {r['target']['value']:g}"
        met = "" if r["met"] is None else ("met" if r["met"] else "NOT met")
        rows.append([r["name"], f"{r['value']:.2f}", target, met])
    return ["", "ratios (one run):", *_table(rows, ["ratio", "value", "target", ""])]
