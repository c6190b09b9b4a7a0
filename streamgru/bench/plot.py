"""The PNG of ``streamgru bench --plot``, drawn from the report alone (needs matplotlib).

Three panels: the per-sample latency CDF of every method (logit y axis, so p50, p90, p99 and
p99.9 are evenly spaced); many-stream throughput against the number of streams (with the rate
a single-thread sgemm of the same FLOPs would give); chunk throughput against the chunk length
(with the per-sample methods' p50 rates as horizontal lines). One colour per method in every
panel; streamgru's methods are solid lines, the alternatives dashed.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import require


def _label(method: str, run: dict[str, Any], several: bool) -> str:
    if not several:
        return method
    m = run["model"]
    return f"{method} ({m['input_size']},{m['hidden_size']},{m['num_layers']})"


class _Styles:
    """One colour per method label; solid for streamgru, dashed for the alternatives."""

    def __init__(self, palette: Any) -> None:
        self.palette = palette
        self.colors: dict[str, Any] = {}

    def __call__(self, label: str, framework: str) -> dict[str, Any]:
        if label not in self.colors:
            self.colors[label] = self.palette[len(self.colors) % len(self.palette)]
        return {"color": self.colors[label], "linestyle": "-" if framework == "streamgru" else "--"}


def _series(points: list[dict[str, Any]], x: str, y: str) -> dict[str, tuple[str, list]]:
    """method → (framework, sorted [(x, y)])."""
    out: dict[str, tuple[str, list]] = {}
    for p in points:
        out.setdefault(p["method"], (p["framework"], []))[1].append((p[x], p[y]))
    return {m: (fw, sorted(pts)) for m, (fw, pts) in out.items()}


def plot_report(report: dict[str, Any], path: str | os.PathLike) -> None:
    """Write the three-panel figure of ``report`` to ``path`` (PNG)."""
    matplotlib = require("matplotlib", "bench", "the benchmark plot")
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    several = len(report["runs"]) > 1
    style = _Styles(plt.get_cmap("tab10").colors)  # type: ignore[attr-defined]  # a ListedColormap
    fig, (ax_cdf, ax_many, ax_chunk) = plt.subplots(1, 3, figsize=(16, 5))
    for run in report["runs"]:
        for e in run["latency"]:
            pairs = [
                (ns / 1000, f)
                for ns, f in zip(e["cdf"]["ns"], e["cdf"]["fraction"])
                if 0.0 < f < 1.0
            ]
            if pairs:
                label = _label(e["method"], run, several)
                ax_cdf.step(*zip(*pairs), where="post", label=label, **style(label, e["framework"]))
        for method, (fw, pts) in _series(run["many"], "n_streams", "stream_steps_per_s").items():
            label = _label(method, run, several)
            ax_many.plot(*zip(*pts), marker="o", label=label, **style(label, fw))
        if run["sgemm"]:
            pts = sorted(
                (s["n_streams"], s["n_streams"] * 1e9 / s["per_call_ns"]) for s in run["sgemm"]
            )
            ax_many.plot(
                *zip(*pts),
                linestyle=":",
                color="grey",
                label=_label("sgemm, same FLOPs (1 thread)", run, several),
            )
        for method, (fw, pts) in _series(run["chunk"], "chunk_length", "samples_per_s").items():
            label = _label(method, run, several)
            ax_chunk.plot(*zip(*pts), marker="o", label=label, **style(label, fw))
        if run["chunk"]:
            for e in run["latency"]:
                if e["mode"] == "step":
                    label = _label(e["method"], run, several)
                    rate = 1e9 / e["p50_ns"]
                    ax_chunk.axhline(
                        rate, linewidth=1, **{**style(label, e["framework"]), "linestyle": ":"}
                    )
                    ax_chunk.annotate(
                        f"{label} (per sample, p50)", (1, rate), fontsize=7, va="bottom"
                    )
    ax_cdf.set_xscale("log")
    ax_cdf.set_yscale("logit")
    ax_cdf.set_yticks([0.1, 0.5, 0.9, 0.99, 0.999])
    ax_cdf.set_yticklabels(["p10", "p50", "p90", "p99", "p99.9"])
    ax_cdf.yaxis.set_minor_formatter(NullFormatter())
    ax_cdf.set_ylim(0.02, 0.9995)
    ax_cdf.set_xlabel("latency per call (µs)")
    ax_cdf.set_title("per-sample latency CDF")
    for ax, xlabel, ylabel, title in (
        (ax_many, "streams B", "stream-steps / s", "many-stream throughput"),
        (ax_chunk, "chunk length T (samples)", "samples / s", "chunk throughput"),
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
    for ax in (ax_cdf, ax_many, ax_chunk):
        ax.grid(True, which="major", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    machine = report["machine"]
    fig.suptitle(
        f"streamgru bench {report['streamgru_version']}, {report['created_utc'][:10]}, "
        f"{machine.get('cpu_model')} ({machine.get('usable_cores')} cores), 1 thread",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=110)
    plt.close(fig)
