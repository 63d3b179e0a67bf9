"""``edgedigit bench host``: every trained variant under every host runtime, measured the same way.

Per variant and runtime: accuracy on the test set, model size, parameters and MACs (from the card),
per-image latency (median, p95, p99 after warm-up), batched throughput, process memory (psutil RSS
before / after / peak sampled by a background thread) and CPU time. Each result is appended to
``build/results/bench-host.jsonl`` as soon as it is measured; ``bench-host.json`` summarizes the run.

A runtime that cannot run here (its module has not been built, or the variant has no such form) is
recorded as ``missing`` with the reason and the command that would produce it, never as a number.

Runtimes (name: what runs, on which input):

- ``keras-float``: the float tf-keras model (``model.keras``) on pixels / 255, batched;
- ``litert-int8``: ``model_int8.tflite`` under LiteRT's builtin (optimized) kernels, one thread, one image
  per invoke (the model has a batch-1 input);
- ``tflm-int8``: the same file under TFLM's kernels (the ``tflite-micro`` package), one image per invoke;
- ``native-int8``: the interpreter-free C backend compiled as a shared library (``edgedigit.native``);
- ``sklearn-float`` / ``fixed-point``: rfe-lr's float logistic regression and its integer form.

The int8 runtimes quantize raw pixels through ``edgedigit.quantize.input_lut`` (COMMON contract 3).
"""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..core.errors import EdgeDigitError, ModelError, NotTrainedError
from ..core.fsutil import sha256_file, write_json
from ..core.paths import model_dir, models_dir, results_dir
from . import stats

NEURAL_RUNTIMES = ("keras-float", "litert-int8", "tflm-int8", "native-int8")
LINEAR_RUNTIMES = ("sklearn-float", "fixed-point")
ALL_RUNTIMES = NEURAL_RUNTIMES + LINEAR_RUNTIMES


class RuntimeMissing(Exception):
    """A runtime that cannot run here; ``reason`` says why and ``command`` what would produce it."""

    def __init__(self, reason: str, command: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.command = command


# ----------------------------------------------------------------------------------------------- runners


@dataclass
class Runner:
    """A loaded model under one runtime. ``predict(images_uint8 (N,28,28)) -> classes (N,)``."""

    name: str
    variant: str
    model_file: Path
    predict: Callable[[np.ndarray], np.ndarray]
    batch_native: bool  # True when a batch goes through in one call (Keras, numpy), False for per-image invokes
    notes: str = ""


def load_card(variant: str) -> dict:
    """The variant's ``card.json``.

    Raises:
        NotTrainedError: the variant has no card (names the command that trains it).
    """
    path = model_dir(variant) / "card.json"
    if not path.is_file():
        raise NotTrainedError(f"variant '{variant}' is not trained ({path} missing): run `edgedigit train {variant}`")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: unreadable card ({e})") from None


def trained_variants() -> list[str]:
    """Variants with a ``card.json`` under ``build/models``, sorted."""
    root = models_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "card.json").is_file())


def _int8_file(variant: str) -> Path:
    path = model_dir(variant) / "model_int8.tflite"
    if not path.is_file():
        raise RuntimeMissing(f"{path} missing", f"edgedigit quantize {variant}")
    from ..core.graph import load_graph

    graph = load_graph(path)  # a broken file: one ModelError line naming it, not an interpreter traceback
    if not graph.is_full_int8():
        raise ModelError(f"{path}: not a full-int8 model (input {graph.input.dtype}, output {graph.output.dtype}); "
                         f"run `edgedigit quantize {variant}`")
    return path


def _lut(card: dict) -> np.ndarray:
    try:
        from ..models.quantize import input_lut
    except ImportError:
        raise RuntimeMissing("edgedigit.quantize (input LUT) is not available", "edgedigit quantize") from None
    q = card.get("quantization") or {}
    if "input_scale" not in q or "input_zero_point" not in q:
        raise RuntimeMissing("the card has no quantization.input_scale / input_zero_point",
                             f"edgedigit quantize {card.get('variant', '')}".strip())
    return np.asarray(input_lut(float(q["input_scale"]), int(q["input_zero_point"])), dtype=np.int8)


def _argmax_rows(out: np.ndarray) -> np.ndarray:
    return np.argmax(np.asarray(out).reshape(len(out), -1), axis=1)


def _float_runner(variant: str, card: dict) -> Runner:
    from ..models.train import load_float_model
    from ..models.variants import get_variant

    v = get_variant(variant)
    try:
        model = load_float_model(variant)
    except NotTrainedError as e:
        raise RuntimeMissing(str(e), f"edgedigit train {variant}") from None
    name = "sklearn-float" if v.kind == "linear" else "keras-float"
    files = card.get("files") or {}
    path = model_dir(variant) / str(files.get("float", "model.keras" if v.kind != "linear" else "model.joblib"))
    if v.predict_float is None:  # a tf-keras model: call it directly (model.predict costs ~ms per call)
        def predict(images: np.ndarray) -> np.ndarray:
            x = images.astype(np.float32) / 255.0
            outs = [model(x[i:i + 1000], training=False).numpy() for i in range(0, len(x), 1000)]
            return _argmax_rows(np.concatenate(outs))

        return Runner(name, variant, path, predict, True, "tf-keras float32, direct model call")
    hook = v.predict_float
    return Runner(name, variant, path, lambda images: _argmax_rows(hook(model, images)), True,
                  f"{variant}'s float model through its predict hook")


def _litert_runner(variant: str, card: dict) -> Runner:
    path = _int8_file(variant)
    lut = _lut(card)
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        it = Interpreter(model_path=str(path), num_threads=1, experimental_op_resolver_type=OpResolverType.BUILTIN)
        it.allocate_tensors()
    except (ValueError, RuntimeError) as e:  # a corrupted model LiteRT refuses: one line, not a traceback
        raise ModelError(f"{path}: LiteRT cannot load it ({' '.join(str(e).split())})") from None
    i_idx, o_idx = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    shape = tuple(it.get_input_details()[0]["shape"])

    def predict(images: np.ndarray) -> np.ndarray:
        x = lut[images]
        out = np.empty(len(x), np.int64)
        for i in range(len(x)):
            it.set_tensor(i_idx, x[i].reshape(shape))
            it.invoke()
            out[i] = int(np.argmax(it.get_tensor(o_idx)))
        return out

    return Runner("litert-int8", variant, path, predict, False, "LiteRT builtin optimized kernels, 1 thread")


def _tflm_arena(path: Path) -> int:
    try:
        from ..runtimes import tflm_arena_bytes
    except ImportError:
        return 1 << 20
    return int(tflm_arena_bytes(path)) + 1024


def _tflm_runner(variant: str, card: dict) -> Runner:
    path = _int8_file(variant)
    lut = _lut(card)
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(path.read_bytes(), arena_size=_tflm_arena(path))
    shape = tuple(it.get_input_details(0)["shape"])

    def predict(images: np.ndarray) -> np.ndarray:
        x = lut[images]
        out = np.empty(len(x), np.int64)
        for i in range(len(x)):
            it.set_input(x[i].reshape(shape), 0)
            it.invoke()
            out[i] = int(np.argmax(it.get_output(0)))
        return out

    return Runner("tflm-int8", variant, path, predict, False, "TFLM reference kernels (tflite-micro package)")


def _native_runner(variant: str, card: dict) -> Runner:
    path = _int8_file(variant)
    lut = _lut(card)
    try:
        from ..runtimes.native_host import NativeModel
    except ImportError:
        raise RuntimeMissing("edgedigit.native (the native C backend) is not available", "") from None
    model = NativeModel(path)

    def predict(images: np.ndarray) -> np.ndarray:
        return _argmax_rows(model.run(lut[images]))

    return Runner("native-int8", variant, path, predict, True, "generated C99 as a shared library (ctypes)")


def _fixed_runner(variant: str, card: dict) -> Runner:
    from ..models.variants import get_variant

    v = get_variant(variant)
    path = model_dir(variant) / "model_fixed.npz"
    if not path.is_file():
        raise RuntimeMissing(f"{path} missing", f"edgedigit quantize {variant}")
    if v.quantized_runners is None:
        raise RuntimeMissing(f"variant {variant} has no quantized_runners hook")
    name, fn = next(iter(v.quantized_runners(model_dir(variant)).items()))
    return Runner("fixed-point", variant, path, lambda images: _argmax_rows(fn(images)), True,
                  f"{name}: int8 weights / int32 accumulators in numpy, as the C computes")


_FACTORIES: dict[str, Callable[[str, dict], Runner]] = {
    "keras-float": _float_runner,
    "litert-int8": _litert_runner,
    "tflm-int8": _tflm_runner,
    "native-int8": _native_runner,
    "sklearn-float": _float_runner,
    "fixed-point": _fixed_runner,
}


def runtimes_for(card: dict) -> tuple[str, ...]:
    """The runtimes that apply to a card's kind (neural or linear)."""
    return LINEAR_RUNTIMES if card.get("kind") == "linear" else NEURAL_RUNTIMES


def make_runner(variant: str, runtime: str, card: dict | None = None) -> Runner:
    """Load ``variant`` under ``runtime``.

    Raises:
        EdgeDigitError: unknown runtime name (lists the valid ones).
        RuntimeMissing: the runtime cannot run this variant here (reason + command).
    """
    if runtime not in _FACTORIES:
        raise EdgeDigitError(f"unknown runtime '{runtime}'; valid: {', '.join(ALL_RUNTIMES)}")
    card = card if card is not None else load_card(variant)
    if runtime not in runtimes_for(card):
        raise RuntimeMissing(f"{runtime} does not apply to a {card.get('kind', 'neural')} variant")
    return _FACTORIES[runtime](variant, card)


# ------------------------------------------------------------------------------------- machine, results


def machine_info() -> dict:
    """CPU model, core counts, OS and Python: recorded with every result."""
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores_logical": psutil.cpu_count(logical=True),
        "cores_physical": psutil.cpu_count(logical=False),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "hostname": platform.node(),
        "loadavg_1min": round(os.getloadavg()[0], 2),  # other work on the machine while this was measured
    }


def append_jsonl(path: Path, record: dict) -> None:
    """Append one JSON object as a line and flush it to disk at once."""
    from ..core.fsutil import jsonable

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True, default=jsonable) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict]:
    """Every complete JSON line of ``path`` (a torn last line, from a killed run, is ignored)."""
    if not Path(path).is_file():
        return []
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


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
    runtimes: tuple[str, ...] = field(default_factory=lambda: ALL_RUNTIMES)


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


def bench_variant_runtime(variant: str, runtime: str, dataset, cfg: HostBenchConfig, card: dict,
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
        "params": card.get("params"),
        "macs": card.get("macs"),
        "size_bytes": card.get("size_bytes"),
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


def measure_each(names: list[str], cards: dict[str, dict], wanted: Iterable[str], jsonl: Path,
                 on_result: Callable[[dict], None] | None, measure: Callable[[str, str], dict]) -> list[dict]:
    """``measure(variant, runtime)`` for every wanted runtime of every variant; each record is appended to
    ``jsonl`` as soon as it exists (an interrupted run keeps what it measured) and passed to ``on_result``."""
    records = []
    for v in names:
        for rt in runtimes_for(cards[v]):
            if rt not in wanted:
                continue
            rec = measure(v, rt)
            append_jsonl(jsonl, rec)
            records.append(rec)
            if on_result:
                on_result(rec)
    return records


def bench_host(variants: Iterable[str] | None, dataset, cfg: HostBenchConfig | None = None,
               on_result: Callable[[dict], None] | None = None, name: str = "bench-host") -> dict:
    """Benchmark ``variants`` (default: every trained one) under each applicable runtime.

    Each record is appended to ``build/results/<name>.jsonl`` as it is measured; the summary (all
    records of this run, the machine, the settings) is written to ``<name>.json`` and returned.

    Raises:
        NotTrainedError: a named variant is not trained, or nothing is trained at all.
    """
    cfg = cfg or HostBenchConfig()
    names = list(variants or []) or trained_variants()
    if not names:
        raise NotTrainedError(f"no trained variant under {models_dir()}: run `edgedigit train` first")
    unknown = [r for r in cfg.runtimes if r not in ALL_RUNTIMES]
    if unknown:
        raise EdgeDigitError(f"unknown runtime(s) {', '.join(unknown)}; valid: {', '.join(ALL_RUNTIMES)}")
    cards = {v: load_card(v) for v in names}
    machine = machine_info()
    jsonl = results_dir() / f"{name}.jsonl"
    records = measure_each(names, cards, cfg.runtimes, jsonl, on_result,
                           lambda v, rt: bench_variant_runtime(v, rt, dataset, cfg, cards[v], machine))
    summary = {
        "kind": "bench-host-summary",
        "dataset": dataset.describe(),
        "machine": machine,
        "settings": {"runs": cfg.runs, "warmup": cfg.warmup, "batch": cfg.batch,
                     "batch_repeats": cfg.batch_repeats, "limit": cfg.limit},
        "results": records,
    }
    write_json(results_dir() / f"{name}.json", summary)
    return summary
