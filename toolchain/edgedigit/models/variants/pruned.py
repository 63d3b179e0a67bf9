"""``mlp-pruned``: 50 % magnitude pruning of the trained ``mlp`` (tensorflow-model-optimization), stripped.

The trained ``mlp`` is wrapped with ``prune_low_magnitude`` under a PolynomialDecay schedule from 0 to
50 % sparsity, fine-tuned for 2 epochs with ``UpdatePruningStep``, then ``strip_pruning`` leaves a plain
Keras model whose Dense kernels are half zeros. The schedule ends after about 1000 steps, fewer when the
data is small, so that the final sparsity is always reached within the fine-tuning epochs.
"""

from __future__ import annotations

import math

import numpy as np

from .base import TrainContext, TrainResult, Variant

EPOCHS = 2
TARGET_SPARSITY = 0.5
SCHEDULE_STEPS = 1000
BATCH_SIZE = 32
VALIDATION_SPLIT = 0.2


def schedule_steps(n_train: int, epochs: int, batch_size: int = BATCH_SIZE) -> tuple[int, int]:
    """``(end_step, frequency)`` of the pruning schedule for ``n_train`` images and ``epochs`` epochs.

    The schedule ends after at most ``SCHEDULE_STEPS`` steps and at most the first epoch, so the final
    sparsity is applied while there is still fine-tuning left; ``end_step`` is a multiple of the mask
    update ``frequency`` (10 updates per schedule), so the last update lands exactly on ``end_step``.
    """
    steps_per_epoch = math.ceil(n_train * (1 - VALIDATION_SPLIT) / batch_size)
    limit = min(SCHEDULE_STEPS, steps_per_epoch if epochs > 1 else steps_per_epoch // 2)
    frequency = max(1, limit // 10)
    return frequency * (limit // frequency), frequency


def kernel_sparsity(model) -> dict[str, float]:
    """Fraction of exact zeros in each Dense kernel, by layer name."""
    import tf_keras as keras

    return {layer.name: float(np.mean(layer.kernel.numpy() == 0.0))
            for layer in model.layers if isinstance(layer, keras.layers.Dense)}


def train(ctx: TrainContext) -> TrainResult:
    """Prune the trained ``mlp`` to 50 % and fine-tune it (2 epochs unless overridden)."""
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    epochs = max(1, ctx.epochs_or(EPOCHS))
    base = ctx.load_model("mlp")
    end_step, frequency = schedule_steps(len(ctx.dataset.y_train), epochs)
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=TARGET_SPARSITY, begin_step=0, end_step=end_step, frequency=frequency)
    model = tfmot.sparsity.keras.prune_low_magnitude(base, pruning_schedule=schedule)
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = ctx.dataset.x_train.astype("float32") / 255.0
    model.fit(x, ctx.dataset.y_train, epochs=epochs, batch_size=BATCH_SIZE, validation_split=VALIDATION_SPLIT,
              verbose=0, callbacks=[tfmot.sparsity.keras.UpdatePruningStep(),
                                    ctx.reporter.keras_callback(epochs, "mlp-pruned")])
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    stripped.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    nonzero = int(sum(np.count_nonzero(w) for w in stripped.get_weights()))
    return TrainResult(stripped, extras={
        "sparsity": kernel_sparsity(stripped),
        "target_sparsity": TARGET_SPARSITY,
        "pruning_schedule": {"kind": "PolynomialDecay", "initial_sparsity": 0.0, "final_sparsity": TARGET_SPARSITY,
                             "begin_step": 0, "end_step": end_step, "frequency": frequency},
        "fine_tune_epochs": epochs,
        "nonzero_params": nonzero,
        "base": "mlp",
    })


VARIANT = Variant(
    name="mlp-pruned",
    kind="neural",
    summary="the trained mlp pruned to 50 % zero weights (tfmot PolynomialDecay), 2 fine-tuning epochs",
    train=train,
    requires=("mlp",),
)
