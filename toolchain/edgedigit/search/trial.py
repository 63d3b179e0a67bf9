"""One trial, measured as on the device: the budget before training, then train, quantize, TFLM accuracy.

:func:`evaluate` is what a Ray worker runs for one spec (it returns plain data: the driver writes files and
talks to the study):

1. the untrained model, with every weight moved by seeded noise (:func:`shape_twin`), is converted to full int8
   exactly as the trained one will be, and judged against the board by the export stage's budget code
   (:func:`edgedigit.targets.backends.judge`: every backend of the board in its order, flash and RAM of the first
   that runs it and fits). Sizes and the arena then depend on the shapes only, so these are the trained model's
   figures. A model that fits no backend,
   whose estimated instructions (:mod:`.cost`) exceed ``max_latency``, or whose .tflite exceeds
   ``max_model_bytes``, is returned as ``pruned`` with its numbers, before any training;
2. the spec is trained as a variant (:func:`edgedigit.models.variants.searched.make_variant`: the cnn's recipe,
   :func:`edgedigit.models.zoo.fit` / :func:`~edgedigit.models.zoo.distill`) on the training split minus the
   held-out validation split (:func:`edgedigit.models.zoo.split`, seeded: the trainer's own early-stopping
   split, never the test set);
3. it is quantized to full int8 with calibration images from the fit part, judged again, and its accuracy is
   that of the int8 model under TFLM (``edgedigit.runtimes.run_tflm``) on the validation split.
"""

from __future__ import annotations

import os
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

PRUNED = "pruned"
COMPLETE = "complete"


def configure_threads(threads: int) -> None:
    """Let this process's TensorFlow use ``threads`` threads (intra- and inter-op), before it starts."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already started in this worker (an earlier trial set the same)
        pass


def budget(board: Any, tflite: bytes, folder: Path, name: str) -> tuple[dict[str, Any], Any]:
    """Judge an int8 model against ``board`` with the export stage's code; returns the figures and the graph.

    Returns:
        ``{"fits", "backend", "flash", "ram", "model_flash", "arena", "size_bytes", "reason"}`` (the first
        backend that fits, else the first that runs the model; ``reason`` says why it cannot be deployed) and
        the parsed graph.
    """
    from ..core.graph import load_graph
    from ..targets.backends import ModelSource, judge

    path = folder / f"{name}.tflite"
    path.write_bytes(tflite)
    graph = load_graph(path)
    fit = judge(board, ModelSource(name, "neural", path, graph.sha256, path.name, None, graph))
    req = fit.requirement or (fit.too_large[0] if fit.too_large else None)
    out: dict[str, Any] = {"fits": fit.requirement is not None, "reason": "; ".join(fit.reasons) or None,
                           "size_bytes": graph.size_bytes, "backend": None, "flash": None, "ram": None,
                           "model_flash": None, "arena": None}
    if req is not None:
        out.update({"backend": req.backend, "flash": req.flash, "ram": req.ram, "model_flash": req.model_flash,
                    "arena": req.arena})
    return out, graph


def shape_twin(model: Any, seed: int) -> Any:
    """``model`` with seeded noise (sd 0.01) added to every weight, in place; returns it.

    The converter stores identical constant tensors once: a freshly built model's zero biases and batch-norm
    statistics (beta 0, mean 0, variance 1) are identical across layers of one width, a trained model's are not.
    Converted as built, a conv net with batch norm came out 776 B smaller than after training (15,840 against
    16,616 B); with the noise every constant is distinct, as after training, and the bytes are the trained model's.
    """
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(w.numpy() + rng.normal(0.0, 0.01, w.shape).astype(w.dtype.as_numpy_dtype))
    return model


def _teacher_loader(teacher: tuple[str, bytes] | None, folder: Path) -> Any:
    def load(name: str) -> Any:
        import tf_keras as keras

        if teacher is None or teacher[0] != name:
            raise RuntimeError(f"trial asked for teacher {name!r}, which the search did not ship")
        path = folder / "teacher.keras"
        path.write_bytes(teacher[1])
        return keras.models.load_model(path, compile=False)

    return load


def evaluate(spec: dict, *, board: str, dataset: Any, seed: int, cost: dict[str, float] | None,
             max_latency: float | None = None, max_model_bytes: int | None = None, calibration_samples: int = 500,
             threads: int = 1,
             teacher: tuple[str, bytes] | None = None) -> dict[str, Any]:
    """Run one trial (see the module docstring).

    Args:
        spec: the searched spec (architecture, training, granularity).
        board: board id.
        dataset: the :class:`edgedigit.models.data.Dataset` (its test set is not read).
        seed: training seed and the seed of the validation split and the calibration draw.
        cost: the cost model's coefficients (None: no latency estimate).
        max_latency: prune before training when the estimated instructions exceed it.
        max_model_bytes: prune before training when the int8 .tflite is larger (its size depends on shapes only).
        calibration_samples: training images (from the fit part) that calibrate the int8 ranges.
        threads: TensorFlow threads of this trial.
        teacher: ``(variant name, model.keras bytes)`` of the distillation teacher, when the spec distills.

    Returns:
        ``status`` (``complete`` or ``pruned``), ``reason``, the budget figures, ``instructions`` (estimated),
        ``params``, ``macs`` and, when complete, ``accuracy`` (int8, TFLM, validation split), ``float_accuracy``,
        ``training``, ``tflite`` (the int8 model's bytes) and timings.
    """
    start = time.perf_counter()
    configure_threads(threads)
    from ..core.int8 import quantize_for
    from ..core.store import accuracy
    from ..models import zoo
    from ..models.quantize import calibration_images, convert_int8
    from ..models.train import count_macs, seed_everything
    from ..models.variants import TrainContext
    from ..models.variants.searched import MODEL_NAME, make_variant
    from ..runtimes import run_keras, run_tflm
    from ..targets.boards import load_board
    from .cost import CostModel

    b = load_board(board)
    variant = make_variant("trial", spec)
    granularity = spec.get("granularity", "per-tensor")
    xf, yf, xv, yv = zoo.split(dataset.x_train, dataset.y_train, seed)
    cal = calibration_images(types.SimpleNamespace(x_train=xf), calibration_samples, seed)
    seed_everything(seed)
    untrained = shape_twin(zoo.build_from_spec(spec["architecture"], MODEL_NAME), seed)  # the promoted model's name
    out: dict[str, Any] = {"params": int(untrained.count_params()), "macs": count_macs(untrained),
                           "validation_images": int(len(yv)), "fit_images": int(len(yf))}
    with tempfile.TemporaryDirectory(prefix="edgedigit-trial-") as tmp:
        folder = Path(tmp)
        figures, graph = budget(b, convert_int8(untrained, cal, granularity), folder,
                                "untrained")
        out.update(figures)
        out["instructions"] = CostModel(cost).estimate(graph) if cost else None
        if not figures["fits"]:
            return {**out, "status": PRUNED, "reason": f"{b.id}: {figures['reason']}",
                    "trial_seconds": round(time.perf_counter() - start, 3)}
        if max_latency is not None and out["instructions"] is not None and out["instructions"] > max_latency:
            return {**out, "status": PRUNED, "reason": f"estimated {out['instructions']:,} instructions > --max-latency "
                                                       f"{max_latency:,.0f}",
                    "trial_seconds": round(time.perf_counter() - start, 3)}
        if max_model_bytes is not None and out["size_bytes"] > max_model_bytes:
            return {**out, "status": PRUNED, "reason": f"model {out['size_bytes']:,} B > --max-model-bytes "
                                                       f"{max_model_bytes:,}",
                    "trial_seconds": round(time.perf_counter() - start, 3)}
        seed_everything(seed)
        t0 = time.perf_counter()
        result = variant.train(TrainContext(dataset=dataset, seed=seed, load_model=_teacher_loader(teacher, folder)))
        train_seconds = time.perf_counter() - t0
        tflite = convert_int8(result.model, cal, granularity)
        figures, graph = budget(b, tflite, folder, "trained")
        raw = run_tflm(folder / "trained.tflite", quantize_for(graph, xv))
        out.update(figures)
        if not figures["fits"]:  # sizes depend on shapes only: never seen, kept as a guard
            return {**out, "status": PRUNED, "reason": f"{b.id} (trained model): {figures['reason']}",
                    "trial_seconds": round(time.perf_counter() - start, 3)}
        out.update({
            "status": COMPLETE,
            "accuracy": accuracy(yv, np.argmax(raw.reshape(len(raw), -1), axis=1)),
            "float_accuracy": accuracy(yv, np.argmax(run_keras(result.model, xv), axis=1)),
            "training": result.extras.get("training"),
            "train_seconds": round(train_seconds, 3),
            "tflite": tflite,
            "trial_seconds": round(time.perf_counter() - start, 3),
        })
    return out
