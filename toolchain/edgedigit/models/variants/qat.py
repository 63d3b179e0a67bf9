"""``mlp-qat``: the ``mlp`` architecture fine-tuned with quantization-aware training, converted to full int8.

The trained ``mlp`` (its post-training-quantized twin) is wrapped by tensorflow-model-optimization's
``quantize_model`` (fake-quantized weights and activations, Dense per tensor) and fine-tuned for 2 epochs
at a low learning rate on the same training images, then converted like every neural variant. The card
compares its int8 accuracy with the twin's (``ptq_twin``), filled in by ``edgedigit quantize``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import QuantizeContext, TrainContext, TrainResult, Variant

EPOCHS = 2
LEARNING_RATE = 1e-4
BATCH_SIZE = 32
VALIDATION_SPLIT = 0.2
NAME = "mlp-qat"
TWIN = "mlp"
KERAS_FILE = "model_qat.h5"  # HDF5: the .keras format does not round-trip tfmot QuantizeLayer state


def train(ctx: TrainContext) -> TrainResult:
    """Quantization-aware fine-tuning of the trained ``mlp``."""
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    epochs = ctx.epochs_or(EPOCHS)
    base = ctx.load_model(TWIN)
    model = tfmot.quantization.keras.quantize_model(base)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x = ctx.dataset.x_train.astype("float32") / 255.0
    model.fit(x, ctx.dataset.y_train, epochs=epochs, batch_size=BATCH_SIZE, validation_split=VALIDATION_SPLIT,
              verbose=0, callbacks=[ctx.reporter.keras_callback(epochs, "mlp-qat")])
    params = int(sum(w.shape.num_elements() for layer in base.layers for w in layer.weights))
    return TrainResult(model, params=params, extras={
        "base": TWIN, "fine_tune_epochs": epochs, "learning_rate": LEARNING_RATE, "validation_split": VALIDATION_SPLIT,
        "qat": "tfmot quantize_model, default 8-bit scheme (Dense weights per tensor)"})


def save(model: Any, folder: Path) -> dict[str, str]:
    """The quantize-aware model as ``model_qat.h5``."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "HDF5 is legacy": the only format tfmot round-trips
        model.save(folder / KERAS_FILE, save_format="h5")
    return {"float": KERAS_FILE}


def load(folder: Path) -> Any:
    """The quantize-aware model (needs tfmot's custom objects).

    Raises:
        NotTrainedError: the file is missing.
    """
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    from ...core.store import not_trained

    path = folder / KERAS_FILE
    if not path.is_file():
        raise not_trained(NAME, path)
    with tfmot.quantization.keras.quantize_scope():
        return keras.models.load_model(path, compile=False)


def quantize(q: QuantizeContext) -> dict:
    """The neural int8 conversion (``q.default()``), plus the comparison with the PTQ twin's card."""
    from ...core.errors import NotTrainedError
    from ...core.store import Card, read_card

    updates = q.default()
    try:
        twin = read_card(TWIN)
    except NotTrainedError:
        twin = Card({})
    twin_acc = twin.int8_accuracy
    updates["ptq_twin"] = {
        "variant": TWIN,
        "int8_accuracy": twin_acc,
        "float_accuracy": twin.float_accuracy,
        "size_bytes": twin.size_bytes,
        "same_dataset": twin.get("int8_dataset") == q.dataset.describe() if twin_acc is not None else None,
        "delta_points": None if twin_acc is None else round(100 * (updates["int8_accuracy"] - twin_acc), 4),
    }
    return updates


VARIANT = Variant(
    name=NAME,
    kind="neural",
    summary="the trained mlp fine-tuned with quantization-aware training (tfmot), compared with its PTQ twin",
    train=train,
    requires=(TWIN,),
    save=save,
    load=load,
    quantize=quantize,
)
