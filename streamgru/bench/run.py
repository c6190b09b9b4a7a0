"""The measurements of ``streamgru bench`` on one model: the report's ``runs[]`` entry.

:class:`ModelRun` checks streamgru against the float64 reference, builds and checks the
alternatives, then runs each asked-for mode. Methods compared with each other are timed in
turns (:mod:`streamgru.bench.timing`), and every ratio comes from one such interleaved
measurement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BackendUnavailableError, StreamgruError
from ..model.core import GRUModel
from .alternatives import alternative_builders
from .daemon import daemon_available, daemon_probe, summarise_probe
from .entries import (
    DEFAULT_FS,
    POOL_SAMPLES,
    TARGET_SIZE,
    TARGETS,
    latency_entry,
    ratio_entry,
    status_entry,
)
from .firstcall import run_first_call
from .machine import package_versions
from .models import describe_model
from .progress import Progress
from .runners import (
    BenchmarkMismatchError,
    Runner,
    StreamgruChunk,
    StreamgruMany,
    StreamgruStep,
    check_input,
    run_outputs,
    verify_runner,
)
from .stats import (
    gru_flops_per_step,
    gru_sgemm_reference,
    rate_per_s,
)
from .timing import median_call_ns_interleaved, pinned_threads, time_each_call_interleaved

if TYPE_CHECKING:  # pragma: no cover
    from .command import BenchOptions


class ModelRun:
    """Runners, checks and measurements of one model (see the module docstring).

    Parameters
    ----------
    model : the model under test
    source : where it came from (a path, or "random I,H,L seed S")
    model_file : a weights file of it (for the first-call and daemon subprocesses)
    opts : resolved :class:`~streamgru.bench.command.BenchOptions`
    progress : the progress line
    """

    def __init__(
        self, model: GRUModel, source: str, model_file: Path, opts: BenchOptions, progress: Progress
    ) -> None:
        self.model = model
        self.opts = opts
        self.progress = progress
        self.model_file = model_file
        self.fs = opts.fs or model.fs or DEFAULT_FS
        self.is_target_size = (model.input_size, model.hidden_size, model.num_layers) == TARGET_SIZE
        rng = np.random.default_rng(opts.seed + 7)
        self.pool = rng.standard_normal((POOL_SAMPLES, model.input_size)).astype(np.float32)
        self.min_repeats = 3 if opts.quick else 5
        self.section: dict[str, Any] = {
            "model": describe_model(model, source),
            "fs": self.fs,
            "modes": {},
            "comparisons": [],
            "latency": [],
            "first_call": [],
            "chunk": [],
            "many": [],
            "sgemm": [],
            "ratios": [],
        }
        self.sample_alts: list[Runner] = []
        self.block_alts: list[Runner] = []

    def _target(self, key: str, applies: bool = True) -> tuple[str, float] | None:
        """The docs/design.md target named ``key``, when this model is the size it is stated for."""
        return TARGETS.get(key) if self.is_target_size and applies else None

    # ------------------------------------------------------------------ checks
    def _comparison(
        self,
        method: str,
        framework: str,
        status: str,
        diff: float | None = None,
        note: str | None = None,
    ) -> None:
        version = (
            np.__version__ if framework == "numpy" else package_versions((framework,))[framework]
        )
        self.section["comparisons"].append(
            {
                "method": method,
                "framework": framework,
                "version": version,
                "status": status,
                "max_abs_diff": diff,
                "note": note,
            }
        )

    def check_reference(self) -> None:
        """streamgru's own outputs against the float64 numpy reference (GRUModel.forward)."""
        X = check_input(self.model, seed=self.opts.seed + 1)
        got = run_outputs(StreamgruStep(self.model), X)
        diff = float(np.max(np.abs(got - self.model.forward(X.astype(np.float64)))))
        ok = diff <= self.opts.atol
        note = (
            None
            if ok
            else (
                f"streamgru step differs from the float64 reference by {diff:.3g} "
                f"(tolerance {self.opts.atol:g})"
            )
        )
        self._comparison(
            "float64 reference (GRUModel.forward)", "numpy", "ok" if ok else "mismatch", diff, note
        )

    def build_alternatives(self) -> None:
        """Build, check and keep the alternatives asked for; record why others were dropped."""
        builders = alternative_builders(self.model, self.opts.compare)
        if not builders:
            return
        X = check_input(self.model, seed=self.opts.seed + 1)
        reference = run_outputs(StreamgruStep(self.model), X)
        Xb = check_input(self.model, 50, seed=self.opts.seed + 2, n_streams=4)
        ref_b = run_outputs(StreamgruMany(self.model, 4), Xb, n_streams=4)
        for framework, name, build, kind in builders:
            self.progress.task(f"checking {name}")
            try:
                runner = build()
                diff = verify_runner(runner, X, reference, self.opts.atol)
                if kind == "sample":  # also its many-stream use
                    diff = max(diff, verify_runner(runner, Xb, ref_b, self.opts.atol, n_streams=4))
            except BenchmarkMismatchError as exc:
                self._comparison(name, framework, "mismatch", None, str(exc))
                continue
            except BackendUnavailableError as exc:
                self._comparison(name, framework, "unavailable", None, str(exc))
                continue
            except Exception as exc:  # a framework failing to build or run this graph
                self._comparison(name, framework, "error", None, f"{type(exc).__name__}: {exc}")
                continue
            self._comparison(name, framework, "ok", diff)
            (self.sample_alts if kind == "sample" else self.block_alts).append(runner)

    # ------------------------------------------------------------ timing helpers
    def _latencies(
        self, runners: Sequence[Runner], mode: str, record: Sequence[bool] = ()
    ) -> list[dict]:
        """Interleaved per-call latency distributions of sample runners (one stream)."""
        self.progress.task(f"{mode} latency: " + ", ".join(r.name for r in runners))
        with ExitStack() as stack:
            calls = []
            for runner in runners:
                runner.reset(1)
                stack.enter_context(runner.active())
                calls.append((runner.call, runner.prepare(self.pool)))
            samples = time_each_call_interleaved(
                calls, self.opts.duration_s, min_calls=200 if self.opts.quick else 2000
            )
        entries = [latency_entry(r, mode, s, self.fs) for r, s in zip(runners, samples)]
        keep = list(record) or [True] * len(entries)
        self.section["latency"].extend(e for e, k in zip(entries, keep) if k)
        return entries

    def _medians(
        self,
        runners: Sequence[Runner],
        items: Sequence[Any],
        extra: Sequence[Callable[[], Any]] = (),
    ) -> list[tuple[float, int]]:
        """Interleaved median call times of ``runner.call(item)`` (and of ``extra`` calls)."""
        with ExitStack() as stack:
            fns: list[Callable[[], Any]] = list(extra)
            for runner, item in zip(runners, items):
                stack.enter_context(runner.active())
                fns.append(partial(runner.call, item))
            return median_call_ns_interleaved(fns, self.opts.duration_s / 8, self.min_repeats)

    # ------------------------------------------------------------------ modes
    def mode_step(self) -> None:
        runners = [StreamgruStep(self.model), *self.sample_alts]
        own, *alts = self._latencies(runners, "step")
        for alt in alts:
            self.section["ratios"].append(
                ratio_entry(
                    f"step vs {alt['method']}",
                    "speedup",
                    alt["method"],
                    "streamgru step",
                    alt["p50_ns"] / own["p50_ns"],
                    self._target(f"step vs {alt['method']}"),
                    f"p50 per-sample time of {alt['method']} / p50 of Stepper.step "
                    "(higher: streamgru faster)",
                )
            )
        self._first_calls()
        self.section["modes"]["step"] = status_entry("ok")

    def _first_calls(self) -> None:
        which = {"both": ("cold", "warm"), "cold": ("cold",), "warm": ("warm",), "none": ()}
        for cache in which[self.opts.first_call or "both"]:
            self.progress.task(f"first call, {cache} numba cache (fresh process)")
            try:
                self.section["first_call"].append(run_first_call(self.model_file, cache))
            except (StreamgruError, OSError) as exc:
                self.section["first_call"].append({"cache": cache, "error": str(exc)})

    def mode_chunk(self) -> None:
        for length in self.opts.chunk_lengths or ():
            self.progress.task(f"chunk throughput, T={length}")
            X = np.resize(self.pool, (length, self.model.input_size))
            runners = [StreamgruChunk(self.model), *self.block_alts]
            items = []
            for runner in runners:
                runner.reset(1)
                items.append(runner.prepare(X))
            points: list[dict[str, Any]] = []
            for runner, (per_call, calls) in zip(runners, self._medians(runners, items)):
                points.append(
                    {
                        "method": runner.name,
                        "framework": runner.framework,
                        "chunk_length": int(length),
                        "per_call_ns": per_call,
                        "per_sample_ns": per_call / length,
                        "samples_per_s": rate_per_s(length, per_call),
                        "calls": int(calls),
                    }
                )
            self.section["chunk"].extend(points)
            own, *alts = points
            for alt in alts:
                key = f"chunk{length} vs {alt['method']}"
                self.section["ratios"].append(
                    ratio_entry(
                        f"step_chunk({length}) vs {alt['method']}",
                        "speedup",
                        alt["method"],
                        "streamgru step_chunk",
                        alt["per_sample_ns"] / own["per_sample_ns"],
                        self._target(key),
                        f"per-sample time of {alt['method']} / step_chunk on {length}-sample blocks "
                        "(higher: streamgru faster; docs/design.md's 'ratio <= 1.0' is the inverse)",
                    )
                )
        self.section["modes"]["chunk"] = status_entry("ok")

    def _sgemm_call(self, n_streams: int) -> Callable[[], None]:
        """Single-thread float32 matmuls with the GRU's FLOPs (:func:`gru_sgemm_reference`)."""
        m = self.model
        return gru_sgemm_reference(
            m.input_size, m.hidden_size, m.num_layers, n_streams, seed=self.opts.seed + 3
        )

    def mode_many(self) -> None:
        m = self.model
        for n_streams in self.opts.stream_counts or ():
            self.progress.task(f"many-stream throughput, B={n_streams}")
            flops = gru_flops_per_step(m.input_size, m.hidden_size, m.num_layers, n_streams)
            X = np.resize(self.pool, (1, n_streams, m.input_size))
            runners = [StreamgruMany(m, n_streams), *self.sample_alts]
            items = []
            for runner in runners:
                runner.reset(n_streams)
                items.append(runner.prepare(X)[0])
            (sgemm_ns, _), *measured = self._medians(runners, items, [self._sgemm_call(n_streams)])
            sgemm = {
                "n_streams": int(n_streams),
                "per_call_ns": sgemm_ns,
                "gflops": flops / sgemm_ns,
            }
            self.section["sgemm"].append(sgemm)
            points: list[dict[str, Any]] = []
            for runner, (per_call, calls) in zip(runners, measured):
                gflops = flops / per_call
                points.append(
                    {
                        "method": runner.name,
                        "framework": runner.framework,
                        "n_streams": int(n_streams),
                        "per_step_ns": per_call,
                        "stream_steps_per_s": rate_per_s(n_streams, per_call),
                        "gflops": gflops,
                        "sgemm_fraction": gflops / sgemm["gflops"],
                        "calls": int(calls),
                    }
                )
            self.section["many"].extend(points)
            own, *alts = points
            self.section["ratios"].append(
                ratio_entry(
                    f"BatchStepper({n_streams}) fraction of sgemm",
                    "fraction",
                    own["method"],
                    "single-thread sgemm",
                    own["sgemm_fraction"],
                    self._target("many1024 sgemm", n_streams == 1024),
                    "GRU FLOP rate of BatchStepper.step / single-thread numpy float32 matmul rate "
                    "on the same FLOPs",
                )
            )
            for alt in alts:
                self.section["ratios"].append(
                    ratio_entry(
                        f"BatchStepper({n_streams}) vs {alt['method']}",
                        "speedup",
                        alt["method"],
                        own["method"],
                        alt["per_step_ns"] / own["per_step_ns"],
                        None,
                        f"time of one {n_streams}-stream step of {alt['method']} / BatchStepper.step",
                    )
                )
        self.section["modes"]["many"] = status_entry("ok")

    def _chain_factory(self) -> Callable[[], Any]:
        from .signal import make_chain_factory

        return make_chain_factory(
            self.fs, self.model.input_size, self.opts.filter_preset, self.opts.mains
        )

    def mode_filter(self) -> None:
        from .signal import (
            FilterChainStep,
            ScipySosfiltStep,
            describe_chain,
            filter_available,
        )

        if not filter_available():
            self.section["modes"]["filter"] = status_entry(
                "unavailable", "FilterChain is not in this build"
            )
            return
        chain_runner = FilterChainStep(self._chain_factory())
        details = describe_chain(chain_runner.chain)
        X = check_input(self.model, seed=self.opts.seed + 4)
        reference = run_outputs(chain_runner, X)
        chain = chain_runner.chain
        scipy_runner = ScipySosfiltStep(chain.sos, steady=chain.start == "steady")
        try:
            diff = verify_runner(
                scipy_runner, X, reference, self.opts.atol, reference_name="streamgru FilterChain"
            )
        except BenchmarkMismatchError as exc:
            self._comparison(scipy_runner.name, "scipy", "mismatch", None, str(exc))
            self._latencies([chain_runner], "filter")
        else:
            self._comparison(scipy_runner.name, "scipy", "ok", diff)
            own, alt = self._latencies([chain_runner, scipy_runner], "filter")
            self.section["ratios"].append(
                ratio_entry(
                    "FilterChain.step vs scipy sosfilt",
                    "speedup",
                    alt["method"],
                    own["method"],
                    alt["p50_ns"] / own["p50_ns"],
                    None,
                    "p50 per-sample time of scipy.signal.sosfilt / FilterChain.step",
                )
            )
        self.section["modes"]["filter"] = status_entry("ok", None, filter=details)

    def mode_pipeline(self) -> None:
        from .signal import PipelineStep, describe_chain, filter_available, pipeline_reference

        if not filter_available():
            self.section["modes"]["pipeline"] = status_entry(
                "unavailable", "FilterChain is not in this build"
            )
            return
        make = self._chain_factory()
        runner = PipelineStep(self.model, make)
        X = check_input(self.model, seed=self.opts.seed + 5)
        try:
            diff = verify_runner(
                runner,
                X,
                pipeline_reference(self.model, make, X),
                self.opts.atol,
                reference_name="FilterChain.process then step_chunk",
            )
        except BenchmarkMismatchError as exc:
            self._comparison(runner.name, "streamgru", "mismatch", None, str(exc))
            self.section["modes"]["pipeline"] = status_entry("error", str(exc))
            return
        self._comparison(runner.name, "streamgru", "ok", diff)
        # the GRU alone is timed again, in turns with the pipeline, for the ratio only
        entry, alone = self._latencies(
            [runner, StreamgruStep(self.model)], "pipeline", record=(True, False)
        )
        self.section["ratios"].append(
            ratio_entry(
                "filter+GRU vs GRU alone",
                "cost_factor",
                runner.name,
                "streamgru step",
                entry["p50_ns"] / alone["p50_ns"],
                self._target("pipeline"),
                "p50 per-sample time of filter + GRU / p50 of Stepper.step alone, timed in turns "
                "(lower is better)",
            )
        )
        self.section["modes"]["pipeline"] = status_entry(
            "ok", None, composition=runner.composition, filter=describe_chain(runner.chain)
        )

    def mode_daemon(self) -> None:
        reason = daemon_available()
        if reason is not None:
            self.section["modes"]["daemon"] = status_entry("unavailable", reason)
            return
        n_streams = self.opts.daemon_streams
        self.progress.task(f"daemon end-to-end latency, {n_streams} streams")
        result = daemon_probe(
            self.model_file,
            n_streams=n_streams,
            fs=self.fs,
            duration_s=max(self.opts.duration_s, 1.0),
            channels=self.model.input_size,
            seed=self.opts.seed,
        )
        entry, details = summarise_probe(result, n_streams, self.fs)
        self.section["latency"].append(entry)
        applies = n_streams == 8 and self.fs == 1000.0
        self.section["ratios"].append(
            ratio_entry(
                "daemon p99 latency (ms)",
                "latency_ms",
                entry["method"],
                "1 ms",
                entry["p99_ns"] / 1e6,
                TARGETS["daemon p99 ms"] if applies else None,
                "p99 of socket arrival → prediction written by the sink, in milliseconds",
            )
        )
        if "worst_stream_p99_ns" in details:
            self.section["ratios"].append(
                ratio_entry(
                    "daemon worst-stream p99 latency (ms)",
                    "latency_ms",
                    entry["method"],
                    "1 ms",
                    details["worst_stream_p99_ns"] / 1e6,
                    TARGETS["daemon p99 ms"] if applies else None,
                    "the highest of the streams' own p99 of socket arrival → prediction written",
                )
            )
        self.section["modes"]["daemon"] = status_entry("ok", None, **details)

    # -------------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        """Check, then run every asked-for mode; returns the report's ``runs[]`` entry."""
        import gc

        self.check_reference()
        self.build_alternatives()
        gc.collect()
        with pinned_threads(1) as notes:
            for mode in self.opts.modes:
                try:
                    getattr(self, f"mode_{mode}")()
                except (StreamgruError, OSError, TimeoutError) as exc:
                    self.section["modes"][mode] = status_entry(
                        "error", f"{type(exc).__name__}: {exc}"
                    )
        for framework in ("torch", "onnxruntime"):
            if framework not in self.opts.compare:
                self._comparison(framework, framework, "skipped", None, "not asked for (--compare)")
        self.section["notes"] = notes
        return self.section
