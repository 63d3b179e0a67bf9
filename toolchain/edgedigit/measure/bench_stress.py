"""``edgedigit bench stress``: the seed's stress test, per variant and runtime.

After ``warmup`` untimed iterations, ``iterations`` times (default 1,000) the same ``batch`` test images
(default 100) go through the runtime; each iteration's wall time and this process's CPU time are
recorded, and this process's RSS after it. Figures: p50/p95/p99 per iteration (wall), drift of the last
100 iterations against the first 100 in percent (medians; the seed's mean-based figure is kept as
``drift_mean_pct``; see :mod:`edgedigit.measure.stats`), on the process CPU time by default
(``clock="cpu"``): on a machine shared with other work, wall time measures the other processes as much
as the runtime, while CPU time measures what the runtime itself spends; ``clock="wall"`` gives the
seed's wall-clock drift, which is recorded in every case as ``wall_drift_pct``. Memory
growth (RSS after the last iteration minus RSS after the warm-up) in MB, and the error count: iterations
that raised, plus iterations whose predictions differ from the first iteration's (a runtime must be
deterministic). Verdict: see :mod:`edgedigit.measure.stats` (the seed's < 5 % drift and < 10 MB growth).

Results go to ``build/results/stress.jsonl`` as each runtime finishes, and ``stress.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import __version__
from ..core.errors import EdgeDigitError
from ..core.fsutil import sha256_file
from ..core.results import STRESS, ResultFile, machine
from ..core.stage import Stage, quantized_hashes
from ..core.store import ModelFolder, not_trained, nothing_trained, read_card, trained_variants
from ..models.variants import SEED_NAMES
from . import stats
from .bench_host import DEFAULT_RUNTIMES, RuntimeMissing, check_runtimes, make_runner, measure_each

STRESS_DEVICE = "stress-device"  # bench stress --board: one record per device long run


@dataclass
class StressConfig:
    """Settings of the stress test (the seed's 1,000 iterations of 100 images by default)."""

    iterations: int = 1000
    batch: int = 100
    warmup: int = 10
    window: int = stats.DRIFT_WINDOW
    runtimes: tuple[str, ...] = DEFAULT_RUNTIMES
    clock: str = "cpu"  # which per-iteration time the verdict's drift uses: "cpu" or "wall"

    def check(self) -> None:
        """Raises EdgeDigitError naming the bad setting."""
        if self.iterations < 2:
            raise EdgeDigitError(f"--iterations {self.iterations}: the drift needs at least 2 iterations")
        if self.batch < 1:
            raise EdgeDigitError(f"--batch {self.batch}: need at least 1 image per iteration")
        if self.warmup < 0:
            raise EdgeDigitError(f"--warmup {self.warmup}: must be >= 0")
        if self.window < 1:
            raise EdgeDigitError(f"drift window {self.window}: must be >= 1")
        if self.clock not in ("cpu", "wall"):
            raise EdgeDigitError(f"--clock {self.clock}: choose cpu or wall")


def stress_loop(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, cfg: StressConfig,
                rss: Callable[[], int], clock: Callable[[], float] = time.perf_counter,
                cpu_clock: Callable[[], float] = time.process_time,
                on_iteration: Callable[[int], None] | None = None) -> dict:
    """Run the stress iterations on ``predict`` and compute every figure.

    ``rss`` returns the current resident set size in bytes; ``clock`` and ``cpu_clock`` return seconds.
    They are parameters so the figures can be checked with scripted clocks.
    """
    cfg.check()
    errors_raised = 0
    mismatched = 0
    reference: np.ndarray | None = None
    for _ in range(cfg.warmup):
        try:
            reference = np.asarray(predict(images))
        except Exception:  # noqa: BLE001 - an iteration that raises is counted, the run goes on
            errors_raised += 1
    rss_start = rss()
    wall = np.empty(cfg.iterations)
    cpu = np.empty(cfg.iterations)
    rss_trace = np.empty(cfg.iterations, dtype=np.int64)
    first_error = ""
    for i in range(cfg.iterations):
        c0, t0 = cpu_clock(), clock()
        try:
            out = np.asarray(predict(images))
        except Exception as e:  # noqa: BLE001 - counted as an error of the runtime under test
            out = None
            errors_raised += 1
            first_error = first_error or f"{type(e).__name__}: {e}"
        wall[i] = clock() - t0
        cpu[i] = cpu_clock() - c0
        rss_trace[i] = rss()
        if out is not None:
            if reference is None:
                reference = out
            elif out.shape != reference.shape or not np.array_equal(out, reference):
                mismatched += 1
        if on_iteration:
            on_iteration(i)
    growth = stats.growth_mb(rss_start, int(rss_trace[-1]))
    w = stats.drift_window(cfg.iterations, cfg.window)
    wall_drift = stats.drift_percent(wall, cfg.window)
    cpu_drift = stats.drift_percent(cpu, cfg.window) if np.median(cpu[:w]) > 0 else None
    if cfg.clock == "cpu" and cpu_drift is None:
        raise EdgeDigitError("the process CPU clock did not advance during the first iterations; use --clock wall")
    timed = cpu if cfg.clock == "cpu" else wall
    drift = cpu_drift if cfg.clock == "cpu" else wall_drift
    drift_mean = stats.drift_percent(timed, cfg.window, stat="mean")
    errors = errors_raised + mismatched
    v = stats.verdict(drift, growth, errors)
    s = stats.summarize(wall).scaled(1e3)
    return {
        "iterations": cfg.iterations,
        "batch": cfg.batch,
        "warmup": cfg.warmup,
        "drift_window": w,
        "latency_ms": s.as_dict(),
        "per_image_us": s.median * 1e3 / cfg.batch,
        "cpu_ms": stats.summarize(cpu).scaled(1e3).as_dict(),
        "drift_clock": cfg.clock,
        "drift_pct": drift,
        "drift_mean_pct": drift_mean,
        "wall_drift_pct": wall_drift,
        "cpu_drift_pct": cpu_drift,
        "rss_start_mb": rss_start / stats.MB,
        "rss_end_mb": int(rss_trace[-1]) / stats.MB,
        "rss_max_mb": int(rss_trace.max()) / stats.MB,
        "growth_mb": growth,
        "errors": errors,
        "errors_raised": errors_raised,
        "errors_mismatch": mismatched,
        "first_error": first_error,
        "verdict": v.label,
        "verdict_reasons": list(v.reasons),
        "iteration_ms": (wall * 1e3).round(6).tolist(),
    }


def stress(variants: Iterable[str] | None, dataset, cfg: StressConfig | None = None,
           on_result: Callable[[dict], None] | None = None,
           progress: Callable[[str, int, int], None] | None = None, name: str = STRESS) -> dict:
    """Stress every applicable runtime of ``variants`` (default: the seed's variants that are trained).

    Raises:
        NotTrainedError: a named variant is not trained, or none of the defaults is.
        EdgeDigitError: a bad setting or an unknown runtime (named).
    """
    import psutil

    cfg = cfg or StressConfig()
    cfg.check()
    check_runtimes(cfg.runtimes)
    names = list(variants or [])
    if not names:
        trained = trained_variants()
        names = [v for v in SEED_NAMES if v in trained]
        if not names:
            if not trained:
                raise nothing_trained()
            raise not_trained(SEED_NAMES[0], ModelFolder(SEED_NAMES[0]).card_path)
    cards = {v: read_card(v) for v in names}
    proc = psutil.Process()
    images = dataset.x_test[np.arange(cfg.batch) % len(dataset.x_test)]
    host = machine()
    results = ResultFile(name)

    def measure(v: str, rt: str) -> dict:
        base = {"kind": "stress", "variant": v, "runtime": rt, "dataset": dataset.describe(),
                "machine": host, "edgedigit": __version__,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            runner = make_runner(v, rt, cards[v])
        except RuntimeMissing as m:
            return {**base, "status": "missing", "reason": m.reason, "command": m.command}
        tick = (lambda i: progress(f"{v} {rt}", i + 1, cfg.iterations)) if progress else None
        figures = stress_loop(runner.predict, images, cfg, lambda: int(proc.memory_info().rss), on_iteration=tick)
        return {**base, "status": "ok", "model_file": str(runner.model_file),
                "model_sha256": sha256_file(runner.model_file), **figures}

    records = measure_each(names, cards, cfg.runtimes, results, on_result, measure)
    summary = {"kind": "stress-summary", "dataset": dataset.describe(), "machine": host,
               "settings": {"iterations": cfg.iterations, "batch": cfg.batch, "warmup": cfg.warmup,
                            "drift_window": cfg.window},
               "results": [{k: val for k, val in r.items() if k != "iteration_ms"} for r in records]}
    results.write_summary(summary)
    return summary


def device_drift(latencies: Iterable[float], window: int = stats.DRIFT_WINDOW) -> dict:
    """The stress figures for a device's own per-inference counters (no RSS on a device: drift only).

    ``latencies`` are counter values (µs, cycles or emulated instructions) in the order measured.
    """
    a = np.asarray(list(latencies), dtype=np.float64)
    drift = stats.drift_percent(a, window)
    drift_mean = stats.drift_percent(a, window, stat="mean")
    s = stats.summarize(a)
    v = stats.verdict(drift, 0.0, 0)
    return {"n": s.n, "median": s.median, "p95": s.p95, "p99": s.p99, "drift_pct": drift, "drift_mean_pct": drift_mean,
            "drift_window": stats.drift_window(len(a), window), "verdict": v.label,
            "verdict_reasons": list(v.reasons)}


def stage(variants: list[Any], dataset_loader: Callable[[], Any], iterations: int) -> Stage | None:
    """The pipeline's ``bench stress`` stage on the seed's variants among ``variants`` (None: none of them)."""
    seed = [v for v in variants if v.name in SEED_NAMES]
    if not seed:
        return None
    names = [v.name for v in seed]

    def run() -> None:
        stress(names, dataset_loader(), StressConfig(iterations=iterations))

    return Stage("bench stress",
                 lambda: {**quantized_hashes(seed), "dataset": dataset_loader().sha256, "iterations": iterations},
                 lambda: [ResultFile(STRESS).summary_path], run)
