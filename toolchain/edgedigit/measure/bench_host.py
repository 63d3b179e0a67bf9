"""``edgedigit bench host``: every trained variant under every host runtime, measured the same way.

Per variant and runtime: accuracy on the test set, model size, parameters and MACs (from the card),
per-image latency (median, p95, p99 after warm-up), batched throughput, process memory (psutil RSS
before / after / peak sampled by a background thread) and CPU time. Each result is appended to
``build/results/bench-host.jsonl`` as soon as it is measured; ``bench-host.json`` summarizes the run.

A runtime that cannot run here (the variant has no such form yet) is recorded as ``missing`` with the
reason and the command that would produce it, never as a number.

The runtimes are the registry's (``edgedigit.runtimes.RUNTIMES``), each applied to the variants of its kind;
by default every one except ``litert-ref`` (LiteRT's reference kernels are validate's yardstick, not a
runtime anyone deploys). ``Runner.predict`` is what is timed: the int8 runtimes quantize raw pixels through
the firmware's input table (``edgedigit.core.int8``) inside it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import __version__
from ..core.errors import EdgeDigitError, NotTrainedError
from ..core.fsutil import sha256_file
from ..core.results import BENCH_HOST, ResultFile, machine
from ..core.stage import Stage, quantized_hashes
from ..core.store import Card, ModelFolder, nothing_trained, read_card, trained_variants
from ..runtimes import REFERENCE, RUNTIMES, Runner, get_runtime, runtimes_for
from . import stats

ALL_RUNTIMES = tuple(RUNTIMES)
DEFAULT_RUNTIMES = tuple(n for n in RUNTIMES if n != REFERENCE)


class RuntimeMissing(Exception):
    """A runtime that cannot run here; ``reason`` says why and ``command`` what would produce it."""

    def __init__(self, reason: str, command: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.command = command


def make_runner(variant: str, runtime: str, card: Card | None = None) -> Runner:
    """Load ``variant`` under ``runtime`` (through the registry, with the variant's hooks).

    Raises:
        EdgeDigitError: unknown runtime name (lists the valid ones).
        RuntimeMissing: the runtime does not apply to the variant's kind, or its artifact does not exist yet
            (the reason is the one wording for a missing model; the command produces it).
    """
    from ..models.variants import variants

    rt = get_runtime(runtime)
    card = card if card is not None else read_card(variant)
    if runtime not in runtimes_for(card.kind):
        raise RuntimeMissing(f"{runtime} does not apply to a {card.kind} variant")
    try:
        return rt.load(ModelFolder(variant), variants().get(variant))
    except NotTrainedError as e:
        stage = "train" if rt.form == "float" else "quantize"
        raise RuntimeMissing(str(e), f"edgedigit {stage} {variant}") from None


# ----------------------------------------------------------------------------------------------- memory


class RssSampler:
    """Samples this process's RSS every ``interval`` seconds in a thread; ``peak`` is the largest seen."""

    def __init__(self, interval: float = 0.005) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.before = self.rss()
        self.peak = self.before
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return int(self._proc.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.after = self.rss()
        self.peak = max(self.peak, self.after)


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads), with the OS's fine-grained clock."""
    return time.process_time()


# -------------------------------------------------------------------------------------------- the bench


@dataclass
class HostBenchConfig:
    """Settings of ``bench host`` (runs and warm-up per runtime, throughput batch, accuracy limit)."""

    runs: int = 200  # per-image latency measurements (after warm-up)
    warmup: int = 20
    batch: int = 100  # images per batched-throughput call
    batch_repeats: int = 10
    limit: int | None = None  # test images for accuracy (None: all)
    runtimes: tuple[str, ...] = field(default_factory=lambda: DEFAULT_RUNTIMES)


def measure_runner(runner: Runner, images: np.ndarray, labels: np.ndarray, cfg: HostBenchConfig) -> dict:
    """Latency, throughput, CPU time and accuracy of one loaded runner (memory is measured around it)."""
    if cfg.runs < 1 or cfg.warmup < 0 or cfg.batch < 1 or cfg.batch_repeats < 1:
        raise EdgeDigitError(f"bench settings need runs >= 1, warmup >= 0, batch >= 1 (got {cfg})")
    n = len(images)
    for i in range(cfg.warmup):
        runner.predict(images[i % n:i % n + 1])
    cpu0 = cpu_seconds()
    lat = np.empty(cfg.runs)
    for i in range(cfg.runs):
        x = images[i % n:i % n + 1]
        t0 = time.perf_counter()
        runner.predict(x)
        lat[i] = time.perf_counter() - t0
    batch = images[np.arange(cfg.batch) % n]
    bt = np.empty(cfg.batch_repeats)
    for r in range(cfg.batch_repeats):
        t0 = time.perf_counter()
        runner.predict(batch)
        bt[r] = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    t0 = time.perf_counter()
    pred = np.asarray(runner.predict(images)).astype(np.int64)
    acc_s = time.perf_counter() - t0
    summary = stats.summarize(lat).scaled(1e6)
    return {
        "accuracy": float(np.mean(pred == labels)),
        "n_test": int(n),
        "predictions_sha256": _hash_predictions(pred),
        "latency_us": summary.as_dict(),
        "latency_samples_us": (lat * 1e6).round(3).tolist(),
        "confusion": confusion(labels, pred).tolist(),
        "runs": cfg.runs,
        "warmup": cfg.warmup,
        "throughput_ips": float(cfg.batch / np.median(bt)),
        "throughput_batch": cfg.batch,
        "throughput_repeats": cfg.batch_repeats,
        "batch_mode": "one call per batch" if runner.batch_native else "one invoke per image (batch-1 model)",
        "cpu_seconds": cpu,
        "cpu_us_per_image": cpu / (cfg.runs + cfg.batch * cfg.batch_repeats) * 1e6,
        "accuracy_seconds": acc_s,
    }


def confusion(labels: np.ndarray, pred: np.ndarray, classes: int = 10) -> np.ndarray:
    """Counts (classes x classes): row = true label, column = predicted class."""
    m = np.zeros((classes, classes), np.int64)
    np.add.at(m, (np.asarray(labels, np.int64), np.asarray(pred, np.int64)), 1)
    return m


def _hash_predictions(pred: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.asarray(pred, np.int64).tobytes()).hexdigest()


def bench_variant_runtime(variant: str, runtime: str, dataset, cfg: HostBenchConfig, card: Card,
                          machine: dict) -> dict:
    """One result record (measured or ``status: missing``) for ``variant`` under ``runtime``."""
    images, labels = dataset.x_test[:cfg.limit], dataset.y_test[:cfg.limit]
    base = {
        "kind": "bench-host",
        "variant": variant,
        "runtime": runtime,
        "dataset": dataset.describe(),
        "machine": machine,
        "edgedigit": __version__,
        "params": card.params,
        "macs": card.macs,
        "size_bytes": card.size_bytes,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        with RssSampler() as mem:
            runner = make_runner(variant, runtime, card)
            loaded = mem.rss()
            figures = measure_runner(runner, images, labels, cfg)
    except RuntimeMissing as m:
        return {**base, "status": "missing", "reason": m.reason, "command": m.command}
    file_bytes = runner.model_file.stat().st_size
    return {
        **base,
        "status": "ok",
        "model_file": str(runner.model_file),
        "model_sha256": sha256_file(runner.model_file),
        "model_file_bytes": file_bytes,
        "notes": runner.notes,
        "rss_mb": {"before": mem.before / stats.MB, "loaded": loaded / stats.MB, "after": mem.after / stats.MB,
                   "peak": mem.peak / stats.MB},
        **figures,
    }


def measure_each(names: list[str], cards: dict[str, Card], wanted: Iterable[str], results: ResultFile,
                 on_result: Callable[[dict], None] | None, measure: Callable[[str, str], dict]) -> list[dict]:
    """``measure(variant, runtime)`` for every wanted runtime of every variant (in registry order); each record
    is appended to ``results`` as soon as it exists (an interrupted run keeps what it measured) and passed to
    ``on_result``."""
    records = []
    for v in names:
        for rt in runtimes_for(cards[v].kind):
            if rt not in wanted:
                continue
            rec = measure(v, rt)
            results.append(rec)
            records.append(rec)
            if on_result:
                on_result(rec)
    return records


def check_runtimes(names: Iterable[str]) -> None:
    """Raises EdgeDigitError naming every unknown runtime and the valid ones."""
    unknown = [r for r in names if r not in RUNTIMES]
    if unknown:
        raise EdgeDigitError(f"unknown runtime(s) {', '.join(unknown)}; valid: {', '.join(RUNTIMES)}")


def bench_host(variants: Iterable[str] | None, dataset, cfg: HostBenchConfig | None = None,
               on_result: Callable[[dict], None] | None = None, name: str = BENCH_HOST) -> dict:
    """Benchmark ``variants`` (default: every trained one) under each applicable runtime.

    Each record is appended to ``build/results/<name>.jsonl`` as it is measured; the summary (all
    records of this run, the machine, the settings) is written to ``<name>.json`` and returned.

    Raises:
        NotTrainedError: a named variant is not trained, or nothing is trained at all.
        EdgeDigitError: an unknown runtime name.
    """
    cfg = cfg or HostBenchConfig()
    names = list(variants or []) or trained_variants()
    if not names:
        raise nothing_trained()
    check_runtimes(cfg.runtimes)
    cards = {v: read_card(v) for v in names}
    host = machine()
    results = ResultFile(name)
    records = measure_each(names, cards, cfg.runtimes, results, on_result,
                           lambda v, rt: bench_variant_runtime(v, rt, dataset, cfg, cards[v], host))
    summary = {
        "kind": "bench-host-summary",
        "dataset": dataset.describe(),
        "machine": host,
        "settings": {"runs": cfg.runs, "warmup": cfg.warmup, "batch": cfg.batch,
                     "batch_repeats": cfg.batch_repeats, "limit": cfg.limit},
        "results": records,
    }
    results.write_summary(summary)
    return summary


def stage(variants: list[Any], dataset_loader: Callable[[], Any], runs: int) -> Stage:
    """The pipeline's ``bench host`` stage (``runs`` latency measurements per runtime)."""
    names = [v.name for v in variants]

    def run() -> None:
        bench_host(names, dataset_loader(), HostBenchConfig(runs=runs))

    return Stage("bench host",
                 lambda: {**quantized_hashes(variants), "dataset": dataset_loader().sha256, "runs": runs},
                 lambda: [ResultFile(BENCH_HOST).summary_path], run)
