"""``mlp``: the seed's baseline, exactly: Flatten -> Dense(128, relu) -> Dropout(0.2) -> Dense(10, softmax)."""

from __future__ import annotations

from .base import TrainContext, TrainResult, Variant

EPOCHS = 3
VALIDATION_SPLIT = 0.2


def build():
    """The untrained baseline (Adam, sparse categorical cross-entropy, accuracy)."""
    import tf_keras as keras
    from tf_keras import layers

    model = keras.Sequential([
        layers.Flatten(input_shape=(28, 28), name="flatten"),
        layers.Dense(128, activation="relu", name="hidden"),
        layers.Dropout(0.2, name="dropout"),
        layers.Dense(10, activation="softmax", name="output"),
    ], name="mlp")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def train(ctx: TrainContext) -> TrainResult:
    """Fit the baseline on ``x_train / 255`` (validation split 0.2, seed's 3 epochs unless overridden)."""
    epochs = ctx.epochs_or(EPOCHS)
    model = build()
    x = ctx.dataset.x_train.astype("float32") / 255.0
    model.fit(x, ctx.dataset.y_train, epochs=epochs, validation_split=VALIDATION_SPLIT, verbose=0,
              callbacks=[ctx.reporter.keras_callback(epochs, "mlp")])
    return TrainResult(model, extras={"epochs": epochs, "validation_split": VALIDATION_SPLIT})


VARIANT = Variant(
    name="mlp",
    kind="neural",
    summary="Flatten -> Dense(128, relu) -> Dropout(0.2) -> Dense(10, softmax); the seed's baseline",
    train=train,
)
