"""``tiny``: a student distilled from the trained ``cnn``, aimed at <= 16 KB of model and small RAM.

The cnn's architecture at half the width and without dropout: conv(8) -> pool -> conv(16) -> pool -> conv(32)
-> pool -> flatten -> Dense(10) -> softmax (:func:`edgedigit.models.zoo.build_tiny`), trained by knowledge distillation
with temperature from the teacher's logits on the same augmented batches (:func:`edgedigit.models.zoo.distill`).
Knobs: ``width`` (default 8), ``augment`` (default true), ``teacher`` (default ``cnn``: any trained neural
variant ending in a ``logits`` layer), ``temperature`` (default 4), ``alpha`` (weight of the label loss,
default 0.1).
"""

from __future__ import annotations

from ...core.errors import ModelError
from . import cnn
from .base import TrainContext, TrainResult, Variant

EPOCHS = 5
WIDTH = 8
TEACHER = "cnn"
TEMPERATURE = 4.0
ALPHA = 0.1  # weight of the label loss; the rest is the teacher's


def train(ctx: TrainContext) -> TrainResult:
    """Distill the teacher into the tiny student."""
    from ...core.store import read_card
    from .. import zoo

    epochs = ctx.epochs_or(EPOCHS)
    width = int(ctx.knobs.get("width", WIDTH))
    augment = bool(ctx.knobs.get("augment", True))
    teacher_name = str(ctx.knobs.get("teacher", TEACHER))
    temperature = float(ctx.knobs.get("temperature", TEMPERATURE))
    alpha = float(ctx.knobs.get("alpha", ALPHA))
    teacher_card = read_card(teacher_name)
    teacher = ctx.load_model(teacher_name)
    try:
        teacher.get_layer("logits")
    except ValueError:
        raise ModelError(f"teacher '{teacher_name}' has no 'logits' layer to distill from; use --set teacher=cnn") from None
    model = zoo.build_tiny(width)
    info = zoo.distill(model, teacher, ctx.dataset.x_train, ctx.dataset.y_train, epochs=epochs, seed=ctx.seed,
                       augment=augment, temperature=temperature, alpha=alpha,
                       callbacks=[ctx.reporter.keras_callback(epochs, "tiny")])
    return TrainResult(model, extras={
        "architecture": cnn.ARCHITECTURE, "width": width, "training": info,
        "teacher": {"variant": teacher_name, "float_accuracy": teacher_card.float_accuracy,
                    "int8_accuracy": teacher_card.int8_accuracy, "params": teacher_card.params},
    })


VARIANT = Variant(
    name="tiny",
    kind="neural",
    summary="tiny CNN distilled from cnn (knowledge distillation with temperature), for the smallest boards",
    train=train,
    requires=(TEACHER,),
)
