"""The quantize stage: full-integer int8 .tflite files calibrated on training images.

Neural variants are converted from a batch-1 concrete function (input ``[1, 28, 28]`` float32, so RESHAPE
needs no SHAPE/STRIDED_SLICE/PACK) with ``TFLITE_BUILTINS_INT8`` and int8 input and output, calibrated
on ``calibration_samples`` training images drawn with a fixed seed. Dense layers are quantized per tensor
by default (every TFLM library runs that) or per channel. Linear variants quantize through their
registry hook (``Variant.quantize``). Outputs are written into a staged copy of the model folder, which
replaces the folder in one step: a failure leaves the previous files untouched. The input table that
turns raw pixels into the int8 input is the firmware's contract and lives in :mod:`edgedigit.core.int8`.
:func:`stage` declares the stage for the pipeline (its inputs and its output, the deployable artifact).
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core import store
from ..core.errors import EdgeDigitError, ModelError
from ..core.fsutil import staged_dir, write_atomic, write_json
from ..core.int8 import INPUT_SHAPE, quantize_images
from ..core.stage import Stage, file_hash
from ..core.store import INT8_FILE
from .train import float_model_path, keras_load
from .variants import QuantizeContext, Reporter, Variant, get_variant
from .variants import variants as all_variants

GRANULARITIES = ("per-tensor", "per-channel")
FORMATS = ("int8", "dynamic", "float16")
# The comparison conversions (``--format``) exist only in this stage; the int8 file is the store's.
FORMAT_FILES = {"int8": INT8_FILE, "dynamic": "model_dynamic.tflite", "float16": "model_float16.tflite"}
FORBIDDEN_OPS = ("SHAPE", "STRIDED_SLICE", "PACK")


def calibration_images(dataset: Any, samples: int, seed: int) -> np.ndarray:
    """``samples`` training images (without replacement, fixed seed) as float32 in [0, 1]."""
    if samples < 1:
        raise EdgeDigitError(f"--calibration-samples {samples}: need at least 1 image")
    n = len(dataset.x_train)
    idx = np.sort(np.random.default_rng(seed).choice(n, size=min(samples, n), replace=False))
    return dataset.x_train[idx].astype(np.float32) / 255.0


def _converter(model: Any) -> Any:
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec(INPUT_SHAPE, tf.float32, name="input"))
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)


def convert_int8(model: Any, calibration: np.ndarray, granularity: str = "per-tensor") -> bytes:
    """Full-integer int8 conversion (int8 weights, activations, input and output) of a tf-keras model."""
    import tensorflow as tf

    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[None]] for x in calibration)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    conv._experimental_disable_per_channel_quantization_for_dense_layers = granularity == "per-tensor"
    return conv.convert()


def convert_dynamic(model: Any) -> bytes:
    """Dynamic-range quantization (int8 weights, float activations), for comparison."""
    import tensorflow as tf

    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    return conv.convert()


def convert_float16(model: Any) -> bytes:
    """float16 weights, float32 activations, for comparison."""
    import tensorflow as tf

    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    return conv.convert()


def check_int8(path: Path) -> Any:
    """Load the converted model and check contract 1: full int8, batch-1 (1, 28, 28) input, no SHAPE ops."""
    from ..core.graph import load_graph

    g = load_graph(path)
    if not g.is_full_int8():
        raise ModelError(f"{path}: not fully int8 (input {g.input.dtype}, output {g.output.dtype})")
    if tuple(g.input.shape) != INPUT_SHAPE:
        raise ModelError(f"{path}: input shape {g.input.shape}, expected {INPUT_SHAPE}")
    bad = [op for op in g.op_names() if op in FORBIDDEN_OPS]
    if bad:
        raise ModelError(f"{path}: the converted graph uses {', '.join(bad)} (dynamic batch leaked into it)")
    return g


def int8_predictions(path: Path, images: np.ndarray) -> tuple[np.ndarray, Any]:
    """Raw int8 outputs of ``images`` (uint8) on LiteRT's reference kernels, and the graph."""
    from ..core.graph import load_graph
    from ..runtimes import run_litert

    g = load_graph(path)
    x = quantize_images(images, float(g.input.scale[0]), int(g.input.zero_point[0]))
    return run_litert(path, x), g


def quantize_variants(names: list[str] | tuple[str, ...] | None, dataset: Any, calibration_samples: int = 500,
                      seed: int = 0, granularity: str = "per-tensor", formats: tuple[str, ...] = ("int8",),
                      reporter: Reporter | None = None) -> list[dict]:
    """Quantize trained variants (all registered ones that are trained, when ``names`` is empty).

    Args:
        names: variant names.
        dataset: calibration images come from its training set, int8 accuracy from its test set.
        calibration_samples: how many training images calibrate the activation ranges.
        seed: seed of the calibration draw.
        granularity: ``per-tensor`` (Dense per tensor) or ``per-channel``.
        formats: ``int8`` always; ``dynamic`` and ``float16`` add comparison conversions.
        reporter: progress (silent when None).

    Returns:
        The updated cards.

    Raises:
        UnknownVariantError: unknown name. NotTrainedError: the variant has no trained model.
    """
    if granularity not in GRANULARITIES:
        raise EdgeDigitError(f"granularity '{granularity}' unknown; choose from: {', '.join(GRANULARITIES)}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise EdgeDigitError(f"format '{unknown[0]}' unknown; choose from: {', '.join(FORMATS)}")
    formats = ("int8",) + tuple(f for f in dict.fromkeys(formats) if f != "int8")
    variants = select_trained(names)
    cards = [store.read_card(v.name) for v in variants]
    reporter = reporter or Reporter()
    out = []
    with reporter.task("quantize", len(variants)) as advance:
        for variant, card in zip(variants, cards, strict=True):
            out.append(_quantize_one(variant, card, dataset, calibration_samples, seed, granularity, formats))
            advance()
    return out


def select_trained(names: list[str] | tuple[str, ...] | None) -> list[Variant]:
    """The variants ``names`` (all trained ones when empty), each checked to be trained.

    Raises:
        UnknownVariantError: unknown name. NotTrainedError: a variant (or every one) is not trained.
    """
    if names:
        variants = [get_variant(n) for n in dict.fromkeys(names)]
    else:
        trained = set(store.trained_variants())
        variants = [v for v in all_variants().values() if v.name in trained]
        if not variants:
            raise store.nothing_trained()
    for v in variants:
        store.ModelFolder(v.name).require_trained()
    return variants


def _quantize_one(variant: Variant, card: store.Card, dataset: Any, samples: int, seed: int, granularity: str,
                  formats: tuple[str, ...]) -> dict:
    src = store.ModelFolder(variant.name).path
    with staged_dir(src) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        qctx = QuantizeContext(variant.name, src, tmp, dataset, seed, samples, granularity, dict(card), formats)
        qctx.default = functools.partial(quantize_neural, qctx, variant)
        updates = variant.quantize(qctx) if variant.quantize else qctx.default()
        files = {**card.files, **updates.pop("files", {})}
        new_card = {**dict(card), **updates, "files": files}
        write_json(tmp / store.CARD, new_card)
    return new_card


def quantize_neural(q: QuantizeContext, variant: Variant) -> dict:
    """Convert a neural variant's float model to full int8 (plus ``q.formats`` for comparison).

    Writes the files into ``q.out_dir`` and returns the card updates (accuracy, size, ops, arena,
    quantization parameters). Variants with their own ``quantize`` hook may wrap it through
    ``QuantizeContext.default`` (mlp-qat does).
    """
    from ..runtimes import tflm_arena_bytes

    model = (variant.load or keras_load)(q.model_dir)
    cal = calibration_images(q.dataset, q.calibration_samples, q.seed)
    path = q.out_dir / INT8_FILE
    write_atomic(path, (variant.convert or convert_int8)(model, cal, q.granularity))
    g = check_int8(path)
    raw, _ = int8_predictions(path, q.dataset.x_test)
    pred = np.argmax(raw, axis=1)
    files = {"int8": INT8_FILE}
    comparisons = {}
    for fmt in q.formats[1:]:
        data = convert_dynamic(model) if fmt == "dynamic" else convert_float16(model)
        fpath = q.out_dir / FORMAT_FILES[fmt]
        write_atomic(fpath, data)
        files[fmt] = FORMAT_FILES[fmt]
        comparisons[fmt] = {"file": FORMAT_FILES[fmt], "size_bytes": len(data),
                            "accuracy": _float_input_accuracy(fpath, q.dataset)}
    inp, outp = g.input, g.output
    updates = {
        "int8_accuracy": store.accuracy(q.dataset.y_test, pred),
        "int8_dataset": q.dataset.describe(),
        "per_class": store.per_class(q.dataset.y_test, pred),
        "per_class_of": "int8",
        "size_bytes": g.size_bytes,
        "int8_sha256": g.sha256,
        "ops": g.op_names(),
        "tflm_arena_bytes": tflm_arena_bytes(path),
        "quantization": {
            "granularity": g.granularity(),
            "requested_granularity": q.granularity,
            "input_scale": float(inp.scale[0]),
            "input_zero_point": int(inp.zero_point[0]),
            "output_scale": float(outp.scale[0]),
            "output_zero_point": int(outp.zero_point[0]),
            "calibration_samples": len(cal),
            "calibration_seed": q.seed,
            "calibration_dataset": q.dataset.describe(),
        },
        "files": files,
    }
    if comparisons:
        updates["comparisons"] = comparisons
    return updates


def _float_input_accuracy(path: Path, dataset: Any) -> float:
    from ..runtimes import run_litert

    out = run_litert(path, dataset.x_test.astype(np.float32) / 255.0)
    return store.accuracy(dataset.y_test, np.argmax(out, axis=1))


def stage(variant: Variant | str, seed: int, calibration_samples: int, dataset_loader: Callable[[], Any]) -> Stage:
    """The pipeline's ``quantize <variant>`` stage (default granularity, int8 only).

    Args:
        variant: the variant (or its name).
        seed: the calibration draw's seed.
        calibration_samples: training images that calibrate the int8 ranges.
        dataset_loader: returns the :class:`edgedigit.models.data.Dataset`; called whenever the stage needs
            the data (its hash for the inputs, the images to calibrate and test), so pass one that loads it once.

    Returns:
        A :class:`Stage` whose inputs are the hash of the trained float model, the dataset hash, the
        calibration samples and the seed, and whose output is the deployable artifact of the variant's kind
        (``ModelFolder.quantized_path``).
    """
    v = get_variant(variant) if isinstance(variant, str) else variant

    def inputs() -> dict[str, Any]:
        return {"model": [file_hash(float_model_path(v))], "dataset": dataset_loader().sha256,
                "calibration_samples": calibration_samples, "seed": seed}

    def outputs() -> list[Path]:
        return [store.ModelFolder(v.name).quantized_path(v.kind)]

    def run() -> None:
        quantize_variants([v.name], dataset_loader(), calibration_samples=calibration_samples, seed=seed)

    return Stage(f"quantize {v.name}", inputs, outputs, run)
