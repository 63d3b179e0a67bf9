"""``rfe-lr``: exactly 100 pixels chosen by RFE, logistic regression on them, exported as fixed point.

Training, selection and the fixed-point form live in :mod:`edgedigit.models.rfe`. The float model is saved
as ``model.joblib`` (a :class:`edgedigit.models.rfe.PixelLR`); ``edgedigit quantize rfe-lr`` writes the
fixed-point tables (``edgedigit.core.store.FIXED_FILE``), whose integer scores are the variant's "int8" figures.
Knobs: ``rfe_samples`` (training images the RFE ranks on, default 20,000).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...core.store import FIXED_FILE
from .base import QuantizeContext, TrainContext, TrainResult, Variant

NAME = "rfe-lr"
FLOAT_FILE = "model.joblib"  # this variant's float model (the save hook records it in the card's files.float)


def train(ctx: TrainContext) -> TrainResult:
    """RFE to 100 pixels on a training subsample, C chosen on a validation split, refit on all training images."""
    from .. import rfe as linear

    rfe_samples = int(ctx.knobs.get("rfe_samples", 20_000))
    with ctx.reporter.task("rfe-lr: RFE rounds + fits", linear.progress_steps()) as advance:
        result = linear.train_rfe_lr(ctx.dataset.x_train, ctx.dataset.y_train, seed=ctx.seed,
                                     rfe_samples=rfe_samples, advance=advance)
    n = len(result.model.pixels)
    return TrainResult(result.model, extras=result.info, params=result.model.count_params(), macs=10 * n)


def save(model: Any, folder: Path) -> dict[str, str]:
    """``model.joblib`` (written atomically)."""
    import io

    import joblib

    from ...core.fsutil import write_atomic

    buf = io.BytesIO()
    joblib.dump(model, buf)
    write_atomic(folder / FLOAT_FILE, buf.getvalue())
    return {"float": FLOAT_FILE}


def load(folder: Path) -> Any:
    """The float model from ``model.joblib``.

    Raises:
        NotTrainedError: the file is missing. ModelError: it is not an rfe-lr model.
    """
    import joblib

    from ...core.errors import ModelError
    from ...core.store import not_trained
    from ..rfe import PixelLR

    path = folder / FLOAT_FILE
    if not path.is_file():
        raise not_trained(NAME, path)
    try:
        model = joblib.load(path)
    except (OSError, EOFError, ValueError, ImportError, AttributeError) as e:
        raise ModelError(f"{path}: not a readable rfe-lr model ({e})") from None
    if not isinstance(model, PixelLR):
        raise ModelError(f"{path}: holds a {type(model).__name__}, not an rfe-lr PixelLR model")
    return model


def predict_float(model: Any, images: np.ndarray) -> np.ndarray:
    """Float logits (N, 10)."""
    return model.decision_function(images)


def quantize(q: QuantizeContext) -> dict:
    """Write the fixed-point tables and return the card updates (fixed-point accuracy, table bytes, scale)."""
    from ...core import store
    from ..rfe import FixedPointLR

    model = load(q.model_dir)
    fixed = FixedPointLR.from_float(model)
    fixed.save(q.out_dir / FIXED_FILE)
    pred = fixed.predict(q.dataset.x_test)
    float_pred = model.predict(q.dataset.x_test)
    return {
        "int8_accuracy": store.accuracy(q.dataset.y_test, pred),
        "int8_dataset": q.dataset.describe(),
        "int8_form": "fixed-point (int8 weights on raw pixels, int32 bias)",
        "per_class": store.per_class(q.dataset.y_test, pred),
        "per_class_of": "int8",
        "size_bytes": fixed.table_bytes(),
        "fixed_point": {
            "float_agreement": float(np.mean(pred == float_pred)),
            "score_bound": fixed.score_bound(),
            "weight_range": [int(fixed.weights.min()), int(fixed.weights.max())],
        },
        # No input quantization: the fixed-point form reads raw uint8 pixels (hence no input_scale here).
        "quantization": {
            "granularity": "per-tensor",
            "input": "raw uint8 pixels",
            "output_scale": float(fixed.scale),
            "output_zero_point": 0,
            "calibration_samples": 0,
        },
        "files": {"fixed": FIXED_FILE},
    }


def quantized_runners(folder: Path) -> dict:
    """The fixed-point form's integer scores (the only quantized runtime of a linear model).

    Raises:
        NotTrainedError: the fixed-point tables are missing (not quantized).
    """
    from ...core.store import not_quantized
    from ..rfe import FixedPointLR

    path = folder / FIXED_FILE
    if not path.is_file():
        raise not_quantized(NAME, path)
    return {"fixed-point": FixedPointLR.load(path).scores}


VARIANT = Variant(
    name=NAME,
    kind="linear",
    summary="100 pixels chosen by RFE + logistic regression (standardized, C on a validation split), fixed point",
    train=train,
    save=save,
    load=load,
    predict_float=predict_float,
    quantize=quantize,
    quantized_runners=quantized_runners,
)
