"""The validate stage: every trained variant on the test set, float and quantized, on each host runtime.

For each variant: accuracy, per-class precision/recall/F1 and the confusion matrix of the float model
and of the quantized model on every runtime (neural: ``edgedigit.runtimes.RUNTIMES`` on
``model_int8.tflite``, LiteRT's reference kernels first; linear: the variant's ``quantized_runners``
hook, e.g. the fixed-point form), then the agreement of every runtime with the reference (int8 output
elements that differ, the largest difference, predictions that differ; ``pairwise`` for the other
pairs, e.g. native vs tflm) and of each quantized form with the float model.
Results: ``build/results/validate.jsonl`` (one line per variant as it finishes),
``validate_<variant>.json`` and the summary ``validate.json``, each with the dataset, machine and model hash.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core import store as cardlib
from ..core.errors import EdgeDigitError, ModelError, NotTrainedError
from ..core.fsutil import sha256_file, write_json
from ..core.paths import model_dir, results_dir
from ..models.variants import Reporter, Variant

RESULT_NAME = "validate"


def machine() -> dict:
    """The host the figures were measured on."""
    return {"hostname": platform.node(), "system": platform.system(), "machine": platform.machine(),
            "processor": platform.processor(), "python": platform.python_version(), "cpus": os.cpu_count()}


def neural_runners(folder: Path) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Default ``quantized_runners``: every host runtime on ``model_int8.tflite`` (reference first)."""
    from ..core.graph import load_graph
    from ..models.quantize import INT8_FILE, quantize_images
    from ..runtimes import REFERENCE, RUNTIMES

    path = folder / INT8_FILE
    if not path.is_file():
        raise NotTrainedError(f"variant '{folder.name}' is not quantized ({path} missing): "
                              f"run `edgedigit quantize {folder.name}` first")
    g = load_graph(path)
    if not g.is_full_int8():  # a float model has no input scale: say so instead of an IndexError
        raise ModelError(f"{path}: not a full-int8 model (input {g.input.dtype}, output {g.output.dtype}); "
                         f"run `edgedigit quantize {folder.name}`")
    scale, zp = float(g.input.scale[0]), int(g.input.zero_point[0])
    names = [REFERENCE] + [n for n in RUNTIMES if n != REFERENCE]

    def runner(name: str) -> Callable[[np.ndarray], np.ndarray]:
        return lambda images: RUNTIMES[name](path, quantize_images(images, scale, zp))

    return {name: runner(name) for name in names}


def scores_summary(y: np.ndarray, pred: np.ndarray) -> dict:
    """Accuracy, per-class precision/recall/F1 and confusion matrix of predictions ``pred``."""
    return {"accuracy": cardlib.accuracy(y, pred), "correct": int(np.sum(y == pred)),
            "per_class": cardlib.per_class(y, pred), "confusion": cardlib.confusion(y, pred)}


def agreement(ref: np.ndarray, other: np.ndarray) -> dict:
    """How two runtimes' raw outputs (N, C) differ: elements, largest difference, predictions."""
    diff = np.abs(ref.astype(np.int64) - other.astype(np.int64)) if np.issubdtype(ref.dtype, np.integer) \
        else np.abs(ref.astype(np.float64) - other.astype(np.float64))
    same_pred = np.argmax(ref, axis=1) == np.argmax(other, axis=1)
    n = len(ref)
    return {
        "images": n,
        "elements": int(diff.size),
        "elements_differ": int(np.count_nonzero(diff)),
        "max_abs_diff": diff.max().item() if diff.size else 0,
        "images_with_any_difference": int(np.count_nonzero(diff.reshape(n, -1).any(axis=1))) if n else 0,
        "predictions_differ": int(n - np.count_nonzero(same_pred)),
        "prediction_agreement": float(np.mean(same_pred)) if n else 1.0,
    }


def _quantized_file(variant: Variant, folder: Path) -> Path | None:
    from ..models.quantize import INT8_FILE

    for name in (INT8_FILE, "model_fixed.npz"):
        if (folder / name).is_file():
            return folder / name
    return None


def validate_one(variant: Variant, dataset: Any, reporter: Reporter | None = None) -> dict:
    """Validate one trained and quantized variant on ``dataset``'s test set (see the module docstring)."""
    from ..models.train import load_float_model, predict_float

    reporter = reporter or Reporter()
    folder = model_dir(variant.name)
    card = cardlib.read_card(variant.name)
    runners = (variant.quantized_runners or neural_runners)(folder)
    y, images = dataset.y_test, dataset.x_test
    start = time.perf_counter()
    with reporter.task(f"validate {variant.name}", 1 + len(runners)) as advance:
        float_scores = predict_float(variant, load_float_model(variant.name), images)
        float_pred = np.argmax(float_scores, axis=1)
        advance()
        raw: dict[str, np.ndarray] = {}
        for name, run in runners.items():
            raw[name] = np.asarray(run(images))
            advance()
    ref_name = next(iter(raw))
    quantized = {name: scores_summary(y, np.argmax(out, axis=1)) for name, out in raw.items()}
    qfile = _quantized_file(variant, folder)
    return {
        "variant": variant.name,
        "kind": variant.kind,
        "dataset": dataset.describe(),
        "label": dataset.label(),
        "machine": machine(),
        "model_sha256": sha256_file(qfile) if qfile else None,
        "model_file": str(qfile) if qfile else None,
        "card_float_accuracy": card.get("float_accuracy"),
        "float": scores_summary(y, float_pred),
        "quantized": quantized,
        "reference": ref_name,
        "agreement": {name: {"vs": ref_name, **agreement(raw[ref_name], out)}
                      for name, out in raw.items() if name != ref_name},
        "pairwise": {f"{a} vs {b}": {"vs": a, **agreement(raw[a], raw[b])}
                     for i, a in enumerate(raw) for b in list(raw)[i + 1:] if a != ref_name},
        "float_vs_quantized": {
            name: {"predictions_differ": int(np.count_nonzero(np.argmax(out, axis=1) != float_pred)),
                   "accuracy_delta_points": round(100 * (quantized[name]["accuracy"]
                                                         - cardlib.accuracy(y, float_pred)), 4)}
            for name, out in raw.items()},
        "seconds": round(time.perf_counter() - start, 3),
    }


def select_validatable(names: list[str] | tuple[str, ...] | None) -> list[Variant]:
    """The variants ``names`` (all trained ones when empty), each checked to be trained and quantized.

    Raises:
        UnknownVariantError, NotTrainedError (names the command to run).
    """
    from ..models.quantize import select_trained

    variants = select_trained(names)
    for v in variants:
        if v.quantized_runners is None:
            neural_runners(model_dir(v.name))
    return variants


def validate_variants(names: list[str] | tuple[str, ...] | None, dataset: Any, limit: int | None = None,
                      reporter: Reporter | None = None) -> dict:
    """Validate variants (all trained ones when ``names`` is empty) and write the result files.

    Args:
        names: variant names.
        dataset: the test set of this dataset is used.
        limit: only the first ``limit`` test images.
        reporter: progress (silent when None).

    Returns:
        ``{"dataset", "label", "machine", "variants": {name: result}}``.

    Raises:
        UnknownVariantError, NotTrainedError (not trained or not quantized: names the command to run).
    """
    import json

    if limit is not None:
        if limit < 1:
            raise EdgeDigitError(f"--limit {limit}: need at least 1 test image")
        dataset = dataset.subset(None, limit)
    variants = select_validatable(names)
    out_dir = results_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {"dataset": dataset.describe(), "label": dataset.label(), "machine": machine(), "variants": {}}
    for v in variants:
        result = validate_one(v, dataset, reporter)
        summary["variants"][v.name] = result
        with open(out_dir / f"{RESULT_NAME}.jsonl", "a") as f:
            f.write(json.dumps(result, sort_keys=True) + "\n")
        write_json(out_dir / f"{RESULT_NAME}_{v.name}.json", result)
    write_json(out_dir / f"{RESULT_NAME}.json", summary)
    return summary
