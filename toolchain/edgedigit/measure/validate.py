"""The validate stage: every trained variant on the test set, float and quantized, on each host runtime.

For each variant (runtimes from the registry, ``edgedigit.runtimes``): accuracy, per-class
precision/recall/F1 and the confusion matrix of the float model (``keras`` or ``sklearn``) and of the
quantized model on every runtime ``runtimes.validated_for(kind)`` names (neural: ``litert-ref``, LiteRT's
reference kernels, first, then ``tflm`` and ``native``; linear: ``fixed-point``), then the agreement of
every runtime with the reference (output elements that differ, the largest difference, predictions that
differ; ``pairwise`` for the other pairs, e.g. native vs tflm) and of each quantized form with the float model.
Results: ``build/results/validate.jsonl`` (one line per variant as it finishes),
``validate_<variant>.json`` and the summary ``validate.json``, each with the dataset, machine and model hash.
``validate.jsonl`` keeps one record per (variant, model sha256, dataset sha256, test images): a re-run of
the same model on the same data measures the same thing and replaces its record, while the records of
other variants (``validate mlp`` alone) and of earlier models of a variant (the history) are kept.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core import store as cardlib
from ..core.errors import EdgeDigitError
from ..core.fsutil import sha256_file, write_json
from ..core.results import VALIDATE, ResultFile, machine
from ..core.stage import Stage, quantized_hashes
from ..models.variants import Reporter, Variant
from ..runtimes import RUNTIMES, Runner, float_runtime, int8_graph, validated_for

RESULT_NAME = VALIDATE


def check_quantized(variant: Variant) -> Path:
    """The variant's quantized artifact, checked as far as it can be without running it.

    Raises:
        NotTrainedError: not trained, or not quantized (names the command to run).
        ModelError: the int8 model is unreadable or not full int8 (names the file).
    """
    folder = cardlib.ModelFolder(variant.name)
    card = folder.require_trained()
    path = folder.require_quantized(card.kind)
    if path == folder.int8_path:
        int8_graph(path, variant.name)
    return path


def quantized_runners(variant: Variant) -> dict[str, Runner]:
    """The variant under every quantized runtime validate compares, the reference first."""
    folder = cardlib.ModelFolder(variant.name)
    return {name: RUNTIMES[name].load(folder, variant) for name in validated_for(variant.kind)}


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


WHEEL_NOTE = ("the tflite-micro wheel (host TFLM) multiplies a per-tensor FULLY_CONNECTED's input and filter "
              "scales in double; the TFLM C++ that runs on devices (kernel_util.cc) and the native backend in float32")


def wheel_arithmetic(graph: Any, x_int8: np.ndarray, wheel: np.ndarray, device: np.ndarray) -> dict | None:
    """Where the host's TFLM (the tflite-micro wheel) differs from the TFLM that runs on devices, and by how much.

    Only per-tensor FULLY_CONNECTED layers can differ (see :data:`WHEEL_NOTE`). ``device`` is the native
    runtime's raw output (the devices' arithmetic); the native C is built once more with the wheel's double
    product, which must equal the wheel on every element: then every difference is that one multiplier.

    Returns:
        None when the model has no per-tensor FULLY_CONNECTED; else the layers, the agreement of the devices'
        arithmetic with the wheel, and of the native C with the wheel's arithmetic.
    """
    from ..runtimes.native_host import NativeModel

    layers = [n for n, op in enumerate(graph.ops)
              if op.opcode == "FULLY_CONNECTED" and not graph.tensors[op.inputs[1]].per_channel]
    if not layers:
        return None
    same_as_wheel = np.asarray(NativeModel(graph.path, fc_product="double").run(x_int8)).reshape(len(x_int8), -1)
    return {"note": WHEEL_NOTE, "per_tensor_fc_ops": layers,
            "device_vs_wheel": agreement(wheel.reshape(len(x_int8), -1), device.reshape(len(x_int8), -1)),
            "native_with_wheel_arithmetic_vs_wheel": agreement(wheel.reshape(len(x_int8), -1), same_as_wheel)}


def validate_one(variant: Variant, dataset: Any, reporter: Reporter | None = None) -> dict:
    """Validate one trained and quantized variant on ``dataset``'s test set (see the module docstring)."""
    reporter = reporter or Reporter()
    folder = cardlib.ModelFolder(variant.name)
    card = folder.require_trained()
    runners = quantized_runners(variant)  # before the float model: a broken artifact names itself first
    y, images = dataset.y_test, dataset.x_test
    start = time.perf_counter()
    with reporter.task(f"validate {variant.name}", 1 + len(runners)) as advance:
        float_scores = RUNTIMES[float_runtime(variant.kind)].load(folder, variant).raw(images)
        float_pred = np.argmax(float_scores, axis=1)
        advance()
        raw: dict[str, np.ndarray] = {}
        for name, runner in runners.items():
            raw[name] = np.asarray(runner.raw(images))
            advance()
    ref_name = next(iter(raw))
    wheel = None
    if "tflm" in raw and "native" in raw:
        from ..core.int8 import quantize_for

        graph = int8_graph(folder.int8_path, variant.name)
        wheel = wheel_arithmetic(graph, quantize_for(graph, images), raw["tflm"], raw["native"])
    quantized = {name: scores_summary(y, np.argmax(out, axis=1)) for name, out in raw.items()}
    qfile = folder.quantized_path(card.kind)
    has_file = qfile.is_file()
    return {
        "variant": variant.name,
        "kind": variant.kind,
        "dataset": dataset.describe(),
        "label": dataset.label(),
        "machine": machine(),
        "model_sha256": sha256_file(qfile) if has_file else None,
        "model_file": str(qfile) if has_file else None,
        "card_float_accuracy": card.float_accuracy,
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
        "wheel_arithmetic": wheel,
        "seconds": round(time.perf_counter() - start, 3),
    }


def record_key(record: dict) -> tuple:
    """What makes two validate records the same measurement: variant, model, dataset and its test size."""
    ds = record.get("dataset") if isinstance(record.get("dataset"), dict) else {}
    return record.get("variant"), record.get("model_sha256"), ds.get("sha256"), ds.get("test")


def select_validatable(names: list[str] | tuple[str, ...] | None) -> list[Variant]:
    """The variants ``names`` (all trained ones when empty), each checked to be trained and quantized.

    Raises:
        UnknownVariantError, NotTrainedError (names the command to run), ModelError (a broken int8 model).
    """
    from ..models.quantize import select_trained

    variants = select_trained(names)
    for v in variants:
        check_quantized(v)
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
    if limit is not None:
        if limit < 1:
            raise EdgeDigitError(f"--limit {limit}: need at least 1 test image")
        dataset = dataset.subset(None, limit)
    variants = select_validatable(names)
    results = ResultFile(RESULT_NAME)
    summary = {"dataset": dataset.describe(), "label": dataset.label(), "machine": machine(), "variants": {}}
    for v in variants:
        result = validate_one(v, dataset, reporter)
        summary["variants"][v.name] = result
        results.upsert(result, record_key)
        write_json(results.summary_path.with_name(f"{RESULT_NAME}_{v.name}.json"), result)
    results.write_summary(summary)
    return summary


# ---- any int8 model on given inputs ----------------------------------------------------------------------

MODEL_RUNTIMES = ("tflm", "litert-ref", "native")  # the reference (TFLM, what the devices run) first


def load_inputs(path: Path, spec: Any, what: str = "--inputs") -> np.ndarray:
    """Inputs for a model of I/O ``spec`` from a .npy: int8/uint8 in the model's input shape (raw uint8 pixels
    for a digit classifier), as rows of the bytes the device receives (uint8, N x input bytes).

    Raises:
        EdgeDigitError: unreadable, or another dtype or size (names the file and what the model takes).
    """
    try:
        x = np.asarray(np.load(path, allow_pickle=False))
    except (OSError, ValueError, EOFError) as e:
        raise EdgeDigitError(f"{path}: {what} needs a readable .npy file ({e or 'empty file'})") from None
    want = np.dtype(np.uint8) if spec.image else spec.input_dtype
    if x.dtype != want:
        raise EdgeDigitError(f"{path}: {x.dtype.name} inputs; the model takes {want.name}"
                             + (" raw pixels" if spec.image else ""))
    if x.ndim < 1 or len(x) == 0 or x.reshape(len(x), -1).shape[1] != spec.input_bytes:
        raise EdgeDigitError(f"{path}: inputs of shape {x.shape}; the model takes {spec.input_bytes} values per input "
                             f"(shape {spec.input_shape})")
    return np.ascontiguousarray(x.reshape(len(x), -1)).view(np.uint8)


def validate_model(model: Path, inputs: Path, labels: Path | None = None) -> dict:
    """Run any int8 model under every int8 host runtime on the given inputs and compare each with TFLM,
    element for element; results in ``build/results/validate-model-<stem>.{jsonl,json}``.

    Args:
        model: an int8 .tflite (int8/uint8 input, int8 output).
        inputs: a .npy of inputs (see :func:`load_inputs`).
        labels: a .npy of class labels (then each runtime's accuracy is reported).

    Returns:
        The summary: per runtime its agreement with TFLM (or why it cannot run the model), accuracies.

    Raises:
        ModelError: an unusable model. EdgeDigitError: unusable inputs or labels.
    """
    from ..codegen.tflm import device_input
    from ..core.graph import load_graph
    from ..core.int8 import io_spec
    from ..core.results import model_validate_name
    from ..runtimes import run_int8

    graph = load_graph(model)
    spec = io_spec(graph)
    rows = load_inputs(Path(inputs), spec)
    y = None
    if labels is not None:
        try:
            y = np.asarray(np.load(labels, allow_pickle=False)).reshape(-1)
        except (OSError, ValueError, EOFError) as e:
            raise EdgeDigitError(f"{labels}: --labels needs a readable .npy file ({e or 'empty file'})") from None
        if len(y) != len(rows):
            raise EdgeDigitError(f"{labels}: {len(y)} labels for {len(rows)} inputs")
    x = device_input(graph, spec, rows)
    start = time.perf_counter()
    raw: dict[str, np.ndarray] = {}
    missing: dict[str, str] = {}
    for name in MODEL_RUNTIMES:
        try:
            raw[name] = np.asarray(run_int8(name, graph.path, x)).reshape(len(x), -1)
        except EdgeDigitError as e:
            if name == MODEL_RUNTIMES[0]:
                raise
            missing[name] = str(e)
    ref = MODEL_RUNTIMES[0]
    summary = {
        "model": str(graph.path), "model_sha256": graph.sha256, "io": spec.as_dict(),
        "inputs": {"file": str(inputs), "count": len(rows), "sha256": hashlib.sha256(rows.tobytes()).hexdigest()},
        "labels": str(labels) if labels is not None else None, "machine": machine(), "reference": ref,
        "agreement": {name: {"vs": ref, **agreement(raw[ref], out)} for name, out in raw.items() if name != ref},
        "missing": missing,
        "wheel_arithmetic": wheel_arithmetic(graph, x, raw["tflm"], raw["native"]) if "native" in raw else None,
        "accuracy": {name: float(np.mean(np.argmax(out, axis=1) == y)) for name, out in raw.items()}
        if y is not None else None,
        "seconds": round(time.perf_counter() - start, 3),
    }
    results = ResultFile(model_validate_name(graph.path.stem))
    results.append(summary)
    results.write_summary(summary)
    summary["results_file"] = str(results.summary_path)
    return summary


def stage(variants: list[Any], dataset_loader: Callable[[], Any]) -> Stage:
    """The pipeline's ``validate`` stage: every variant's int8 artifact and the dataset in, ``validate.json`` out.

    Args:
        variants: the variant registry's entries to validate.
        dataset_loader: returns the dataset (called when the stage needs it; pass one that loads once).
    """
    names = [v.name for v in variants]

    def run() -> None:
        validate_variants(names, dataset_loader())

    return Stage("validate", lambda: {**quantized_hashes(variants), "dataset": dataset_loader().sha256},
                 lambda: [ResultFile(VALIDATE).summary_path], run)
