"""Architectures and training helpers of the convolutional variants (``cnn``, ``tiny``).

Every model takes ``(28, 28)`` float inputs in [0, 1] (``x / 255``) and ends in ``Dense(10)`` logits followed
by a ``Softmax`` layer, so a teacher's logits are one layer away. Both are the same plain stack of 3x3
convolutions and max pools with a flattened classifier: its int8 conversion uses only CONV_2D (batch norm
folded in), MAX_POOL_2D, RESHAPE, FULLY_CONNECTED and SOFTMAX, which every backend provides.
Why not depthwise-separable blocks: on this 2-core CPU the earlier conv, conv, two separable blocks, average
pool design took 28.8 s of training steps per 55,000 images, this stack 20.3 s (22.9 s with batch norm on the
first convolution too) with twice the parameters and 1.4x the MACs (60 timed steps of batch 128), and this stack
is the more accurate (benchmarks/train_all.py, full MNIST, int8 on TFLM: 99.38 % after 309 s of training against
99.19 % after 290 s).

Training (:func:`fit`): a validation split drawn from the training set (never the test set), optional
augmentation (small random shifts and rotations, in the input pipeline, so the model holds no augmentation
layer), Adam with a cosine learning-rate decay, early stopping on validation accuracy (best weights kept).
Distillation (:class:`Distiller`): the seed tutorial's knowledge distillation, student loss
``alpha * CE(y, student) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

VALIDATION_IMAGES = 5000
BATCH_SIZE = 128
BN_MOMENTUM = 0.9  # moving statistics settle within an epoch even on small slices


def _conv_block(x: Any, filters: int, name: str, batch_norm: bool = True) -> Any:
    """3x3 convolution (+ batch norm, folded at conversion) + ReLU, then a 2x2 max pool."""
    from tf_keras import layers

    x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm, name=name)(x)
    if batch_norm:
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    return layers.MaxPooling2D(2, name=f"{name}_pool")(x)


def _conv_net(width: int, dropout: float, name: str) -> Any:
    """Conv(w) -> pool -> Conv(2w) -> pool -> Conv(4w) -> pool -> flatten -> Dense(10) -> softmax.

    28x28 -> 14x14 -> 7x7 -> 3x3. The first convolution has a bias and no batch norm: at 28x28 the batch
    norm cost 11 % of the training steps (22.9 vs 20.3 s per epoch), and single probes with and without it
    (99.39 % at 10 epochs, 99.36 % at 9) were within the spread of a rerun.
    """
    import tf_keras as keras
    from tf_keras import layers

    inp = keras.Input((28, 28), name="image")
    x = layers.Reshape((28, 28, 1), name="to_hwc")(inp)
    for i, filters in enumerate((width, 2 * width, 4 * width), start=1):
        x = _conv_block(x, filters, f"conv{i}", batch_norm=i > 1)
    x = layers.Flatten(name="flatten")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(10, name="logits")(x)
    return keras.Model(inp, layers.Softmax(name="softmax")(x), name=name)


def build_cnn(width: int = 16, name: str = "cnn") -> Any:
    """The conv net at ``width`` with dropout 0.2 before the classifier.

    ``width`` 16: 29,354 parameters, ~1.9 M MACs.
    """
    return _conv_net(width, dropout=0.2, name=name)


def build_tiny(width: int = 8, name: str = "tiny") -> Any:
    """The conv net at ``width``, no dropout (the distillation targets regularize it).

    ``width`` 8: 8,922 parameters, ~0.5 M MACs.
    """
    return _conv_net(width, dropout=0.0, name=name)


def logits_model(model: Any) -> Any:
    """The same network without its final softmax (shares the weights)."""
    import tf_keras as keras

    return keras.Model(model.input, model.get_layer("logits").output, name=f"{model.name}_logits")


def split(x: np.ndarray, y: np.ndarray, seed: int, n_val: int = VALIDATION_IMAGES) -> tuple[Any, ...]:
    """Fit and validation parts of the training set (seeded; validation at most a fifth of it)."""
    n_val = min(n_val, max(1, len(y) // 5))
    order = np.random.default_rng(seed).permutation(len(y))
    val, fit_ = np.sort(order[:n_val]), np.sort(order[n_val:])
    return x[fit_], y[fit_], x[val], y[val]


def augmenter(seed: int) -> Any:
    """Random shifts of up to 2 pixels and rotations of up to 10 degrees (training only)."""
    import tf_keras as keras
    from tf_keras import layers

    return keras.Sequential([
        layers.Reshape((28, 28, 1)),
        layers.RandomRotation(10 / 360, fill_mode="constant", seed=seed),
        layers.RandomTranslation(2 / 28, 2 / 28, fill_mode="constant", seed=seed + 1),
        layers.Reshape((28, 28)),
    ], name="augment")


def batch_size_for(n: int) -> int:
    """``BATCH_SIZE``, smaller on small slices so that an epoch has ~100 steps (at least 16 per batch)."""
    return int(min(BATCH_SIZE, max(16, n // 100)))


def dataset(x: np.ndarray, y: np.ndarray, seed: int, augment: bool, batch_size: int = BATCH_SIZE) -> Any:
    """A shuffled, batched, endless tf.data pipeline of ``x / 255`` (uint8 in), augmented on the fly if asked.

    Endless (reshuffled on every pass) so that Keras keeps one iterator for the whole training and is given
    ``steps_per_epoch``: letting tf-keras make a new iterator each epoch cost ~12 s between epochs on this
    2-core machine with 55,000 images (measured), more than a third of an epoch of the cnn.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
    ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True).repeat().batch(batch_size)
    ds = ds.map(lambda a, b: (tf.cast(a, tf.float32) / 255.0, b), num_parallel_calls=tf.data.AUTOTUNE)
    if augment:
        aug = augmenter(seed)
        ds = ds.map(lambda a, b: (aug(a, training=True), b), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def cosine_adam(lr: float, epochs: int, steps_per_epoch: int) -> Any:
    import tf_keras as keras

    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, epochs * steps_per_epoch), alpha=0.02)
    return keras.optimizers.Adam(schedule)


def _train(trainee: Any, x_train: np.ndarray, y_train: np.ndarray, *, epochs: int, seed: int, augment: bool,
           callbacks: list, lr: float, patience: int, **compile_args: Any) -> dict:
    """Split off the validation images, compile ``trainee`` (Adam, cosine decay) and fit it with early stopping."""
    import tf_keras as keras

    xf, yf, xv, yv = split(x_train, y_train, seed)
    batch = batch_size_for(len(yf))
    steps = int(np.ceil(len(yf) / batch))
    trainee.compile(optimizer=cosine_adam(lr, epochs, steps), metrics=["accuracy"], **compile_args)
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=patience, restore_best_weights=True)
    hist = trainee.fit(dataset(xf, yf, seed, augment, batch), epochs=epochs, steps_per_epoch=steps,
                       validation_data=(xv.astype(np.float32) / 255.0, yv), verbose=0, callbacks=[stop, *callbacks])
    val = [round(float(v), 6) for v in hist.history.get("val_accuracy", [])]
    return {"epochs": epochs, "epochs_run": len(val), "best_epoch": int(np.argmax(val)) + 1 if val else None,
            "val_accuracy": val, "fit_images": len(yf), "validation_images": len(yv), "augment": augment,
            "optimizer": f"Adam, cosine decay from {lr}", "batch_size": batch,
            "early_stopping": f"val_accuracy, patience {patience}, best weights restored"}


def fit(model: Any, x_train: np.ndarray, y_train: np.ndarray, *, epochs: int, seed: int, augment: bool,
        callbacks: list, lr: float = 3e-3, patience: int = 3) -> dict:
    """Train a classifier (softmax output) with the recipe of the module docstring; returns what was done."""
    return _train(model, x_train, y_train, epochs=epochs, seed=seed, augment=augment, callbacks=callbacks, lr=lr,
                  patience=patience, loss="sparse_categorical_crossentropy")


def distill(student: Any, teacher: Any, x_train: np.ndarray, y_train: np.ndarray, *, epochs: int, seed: int,
            augment: bool, callbacks: list, temperature: float, alpha: float, lr: float = 3e-3,
            patience: int = 3) -> dict:
    """Knowledge distillation of ``teacher`` into ``student`` (both softmax-output models; the student is
    trained in place). The teacher sees the same augmented batches as the student."""
    distiller = Distiller(logits_model(student), logits_model(teacher), temperature, alpha)
    out = _train(distiller, x_train, y_train, epochs=epochs, seed=seed, augment=augment, callbacks=callbacks, lr=lr,
                 patience=patience)
    out.update({"temperature": temperature, "alpha": alpha})
    return out


def _distiller_class() -> type:
    import tensorflow as tf
    import tf_keras as keras

    class _Distiller(keras.Model):
        """Trains ``student`` (logits) against labels and the softened ``teacher`` logits."""

        def __init__(self, student, teacher, temperature, alpha):
            super().__init__()
            self.student, self.teacher = student, teacher
            self.temperature, self.alpha = float(temperature), float(alpha)
            self.teacher.trainable = False
            self.ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            self.kl = keras.losses.KLDivergence()

        def call(self, x, training=False):
            return tf.nn.softmax(self.student(x, training=training))

        def train_step(self, data):
            x, y = data
            t = self.temperature
            teacher_logits = self.teacher(x, training=False)
            with tf.GradientTape() as tape:
                logits = self.student(x, training=True)
                loss = self.alpha * self.ce(y, logits) + (1 - self.alpha) * t * t * self.kl(
                    tf.nn.softmax(teacher_logits / t), tf.nn.softmax(logits / t))
            grads = tape.gradient(loss, self.student.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.student.trainable_variables, strict=True))
            self.compiled_metrics.update_state(y, tf.nn.softmax(logits))
            return {"loss": loss, **{m.name: m.result() for m in self.metrics}}

        def test_step(self, data):
            x, y = data
            probs = tf.nn.softmax(self.student(x, training=False))
            self.compiled_metrics.update_state(y, probs)
            return {m.name: m.result() for m in self.metrics}

    return _Distiller


def Distiller(student: Any, teacher: Any, temperature: float, alpha: float) -> Any:  # noqa: N802 (a class factory)
    """A tf-keras model that distills ``teacher`` into ``student`` (both output logits)."""
    return _distiller_class()(student, teacher, temperature, alpha)


# ---- architectures from a spec (edgedigit search) ----------------------------------------------------------

FAMILIES = ("conv", "mlp")
POOLS = ("max", "avg")
HEADS = ("flatten", "gap", "dense")
MAX_STAGES = 3  # 28 -> 14 -> 7 -> 3: a fourth 2x2 pool would leave one pixel
STAGE_DEPTHS = (1, 2)  # convolutions per stage before its pool (VGG-style pairs see 5x5 at the cost of 3x3 weights)
DOWNSAMPLE = (1, 2, 4)  # an MLP's input averaged over k x k blocks: 28 x 28, 14 x 14 or 7 x 7 values


def check_architecture(arch: dict) -> dict:
    """``arch`` checked (the keys :func:`build_from_spec` reads); returns it.

    Raises:
        ModelError: an unknown family, pooling or head, or a width, kernel or depth out of range (names it).
    """
    from ..core.errors import ModelError

    family = arch.get("family")
    if family not in FAMILIES:
        raise ModelError(f"architecture family {family!r}: expected one of {', '.join(FAMILIES)}")
    dropout = float(arch.get("dropout", 0.0))
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"architecture dropout {dropout}: expected 0 <= dropout < 1")
    if family == "mlp":
        widths = list(arch.get("layers", []))
        if not widths or any(int(w) < 1 for w in widths):
            raise ModelError(f"mlp layers {widths}: expected one or more positive widths")
        if int(arch.get("downsample", 1)) not in DOWNSAMPLE:
            raise ModelError(f"mlp downsample {arch.get('downsample')!r}: expected one of "
                             f"{', '.join(map(str, DOWNSAMPLE))}")
        return arch
    stages = list(arch.get("stages", []))
    if not 1 <= len(stages) <= MAX_STAGES:
        raise ModelError(f"conv stages: {len(stages)}, expected 1 to {MAX_STAGES}")
    for i, st in enumerate(stages, start=1):
        if int(st.get("width", 0)) < 1 or int(st.get("kernel", 0)) not in (1, 3, 5, 7):
            raise ModelError(f"conv stage {i} {st}: expected a positive width and a kernel of 1, 3, 5 or 7")
        if int(st.get("depth", 1)) not in STAGE_DEPTHS:
            raise ModelError(f"conv stage {i} depth {st.get('depth')!r}: expected one of "
                             f"{', '.join(map(str, STAGE_DEPTHS))} convolutions before its pool")
    if arch.get("pool") not in POOLS or arch.get("head") not in HEADS:
        raise ModelError(f"conv pool {arch.get('pool')!r} / head {arch.get('head')!r}: expected pool in "
                         f"{', '.join(POOLS)} and head in {', '.join(HEADS)}")
    if arch["head"] == "dense" and int(arch.get("hidden", 0)) < 1:
        raise ModelError("conv head 'dense' needs a positive 'hidden' width")
    return arch


def describe(arch: dict) -> str:
    """A one-line name of an architecture spec, e.g. ``conv 8k3-s16k5 max gap drop0.1``."""
    if arch["family"] == "mlp":
        k = int(arch.get("downsample", 1))
        pool = f"avg{k} " if k > 1 else ""
        return f"mlp {pool}{'-'.join(str(w) for w in arch['layers'])} drop{arch.get('dropout', 0.0):g}"
    stages = "-".join(f"{'s' if st.get('separable') else ''}{st['width']}k{st['kernel']}"
                      f"{'x' + str(st['depth']) if int(st.get('depth', 1)) > 1 else ''}" for st in arch["stages"])
    head = f"dense{arch['hidden']}" if arch["head"] == "dense" else arch["head"]
    return f"conv {stages} {arch['pool']} {head} drop{arch.get('dropout', 0.0):g}"


def build_from_spec(arch: dict, name: str = "searched") -> Any:
    """A classifier from an architecture spec (the search space of ``edgedigit search``).

    Conv family (``{"family": "conv", "stages": [{"width", "kernel", "separable", "depth"}, ...], "pool":
    "max"|"avg", "head": "flatten"|"gap"|"dense", "hidden": int, "dropout": float}``): per stage ``depth`` (1 or
    2, default 1) convolutions (or depthwise-separable ones) + ReLU, then a 2x2 pool; batch norm (folded at
    conversion) on every convolution but the very first, as in :func:`_conv_net`; the head flattens, averages
    over the whole map (an AVERAGE_POOL_2D, which every backend runs, not a MEAN) or adds a hidden dense layer;
    then dropout, ``Dense(10)`` logits, softmax.
    MLP family (``{"family": "mlp", "layers": [w, ...], "downsample": 1|2|4, "dropout": float}``): the image
    averaged over ``downsample`` x ``downsample`` blocks when above 1 (an AVERAGE_POOL_2D: 2 gives 14 x 14 = 196
    inputs), flatten, dense ReLU layers, dropout, logits, softmax. Every graph converts to CONV_2D,
    DEPTHWISE_CONV_2D, MAX/AVERAGE_POOL_2D, RESHAPE, FULLY_CONNECTED and SOFTMAX only.
    """
    import tf_keras as keras
    from tf_keras import layers

    check_architecture(arch)
    dropout = float(arch.get("dropout", 0.0))
    inp = keras.Input((28, 28), name="image")
    if arch["family"] == "mlp":
        x = inp
        k = int(arch.get("downsample", 1))
        if k > 1:
            x = layers.Reshape((28, 28, 1), name="to_hwc")(x)
            x = layers.AveragePooling2D(k, name="downsample")(x)
        x = layers.Flatten(name="flatten")(x)
        for i, width in enumerate(arch["layers"], start=1):
            x = layers.Dense(int(width), activation="relu", name=f"hidden{i}")(x)
    else:
        x = layers.Reshape((28, 28, 1), name="to_hwc")(inp)
        pool = layers.MaxPooling2D if arch["pool"] == "max" else layers.AveragePooling2D
        for i, st in enumerate(arch["stages"], start=1):
            conv = layers.SeparableConv2D if st.get("separable") else layers.Conv2D
            for j in range(1, int(st.get("depth", 1)) + 1):
                layer = f"conv{i}" if j == 1 else f"conv{i}_{j}"  # depth 1: the names of the shipped nets
                batch_norm = (i, j) != (1, 1)
                x = conv(int(st["width"]), int(st["kernel"]), padding="same", use_bias=not batch_norm, name=layer)(x)
                if batch_norm:
                    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{layer}_bn")(x)
                x = layers.ReLU(name=f"{layer}_relu")(x)
            x = pool(2, name=f"conv{i}_pool")(x)
        if arch["head"] == "gap":
            x = layers.AveragePooling2D(int(x.shape[1]), name="global_pool")(x)
        x = layers.Flatten(name="flatten")(x)
        if arch["head"] == "dense":
            x = layers.Dense(int(arch["hidden"]), activation="relu", name="hidden")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(10, name="logits")(x)
    return keras.Model(inp, layers.Softmax(name="softmax")(x), name=name)
