"""``cnn``: a small convolutional network aimed at the best int8 accuracy within 64 KB of model.

Conv(16) -> pool -> conv(32) -> pool -> conv(64) -> pool -> flatten -> dropout -> Dense(10) -> softmax
(:func:`edgedigit.models.zoo.build_cnn`); batch norm is folded into the convolutions at conversion. Trained with
small random shifts and rotations, Adam with cosine decay and early stopping on a validation split of the
training set (:func:`edgedigit.models.zoo.fit`). Knobs: ``width`` (default 16), ``augment`` (default true).
"""

from __future__ import annotations

from .base import TrainContext, TrainResult, Variant

EPOCHS = 12
WIDTH = 16
ARCHITECTURE = "conv-pool-conv-pool-conv-pool-flatten-dense"


def train_cnn(ctx: TrainContext, *, name: str, epochs: int, width: int, whole_schedule: bool = False) -> TrainResult:
    """Build the cnn at the ``width`` knob (default ``width``) and train it (augmented unless ``augment=false``);
    ``whole_schedule``: early stopping's patience is the epochs (cnn-wide), else the zoo's."""
    from .. import zoo

    epochs = ctx.epochs_or(epochs)
    width = int(ctx.knobs.get("width", width))
    augment = bool(ctx.knobs.get("augment", True))
    model = zoo.build_cnn(width, name=name.replace("-", "_"))
    stop = {"patience": epochs} if whole_schedule else {}
    info = zoo.fit(model, ctx.dataset.x_train, ctx.dataset.y_train, epochs=epochs, seed=ctx.seed, augment=augment,
                   callbacks=[ctx.reporter.keras_callback(epochs, name)], **stop)
    return TrainResult(model, extras={"architecture": ARCHITECTURE, "width": width, "training": info})


def train(ctx: TrainContext) -> TrainResult:
    """Build the cnn at ``width`` and train it (augmented unless ``augment=false``)."""
    return train_cnn(ctx, name="cnn", epochs=EPOCHS, width=WIDTH)


VARIANT = Variant(
    name="cnn",
    kind="neural",
    summary="small CNN (three 3x3 conv + pool stages, flattened classifier), augmentation, early stopping",
    train=train,
)
