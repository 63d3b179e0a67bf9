"""Small int8 .tflite models for tests, built with the real TFLite converter (not by edgedigit's training).

``build_all``: models that cover the ops every backend must handle: FULLY_CONNECTED per tensor and per
channel, CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, AVERAGE_POOL_2D, RESHAPE, SOFTMAX, with fused RELU / RELU6.
``build_op_models`` (or ``op_models()``, built once per process): one model per further op of the native
backend, whose output is that op's output: ADD and MUL (same shape, broadcast, 5-D, a constant operand),
PAD, CONCATENATION, MEAN (spatial and other axes, with and without keep_dims), QUANTIZE (int8 -> int8), and
CONV_2D / DEPTHWISE_CONV_2D with dilation 2, VALID and SAME, strides 2, depth multiplier 2, and 3x3
DEPTHWISE_CONV_2D on tall and wide images, strides 1 and 2 (the Cortex-M4's channel-major path).
Weights come from a short fit on random data with fixed seeds, so the models are deterministic. Every model
takes a (1, 28, 28) input.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def _keras_models():
    import tf_keras as keras
    from tf_keras import layers as L

    def mlp():
        return keras.Sequential([
            L.Flatten(batch_input_shape=(1, 28, 28)), L.Dense(32, activation="relu"), L.Dense(10), L.Softmax()])

    def cnn():
        return keras.Sequential([
            L.Reshape((28, 28, 1), batch_input_shape=(1, 28, 28)),
            L.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
            L.DepthwiseConv2D(3, padding="same", activation="relu6"),
            L.Conv2D(8, 1, activation="relu"),
            L.MaxPool2D(2),
            L.Conv2D(8, 3, padding="valid"),
            L.AveragePooling2D(2),
            L.Flatten(), L.Dense(10), L.Softmax()])

    def dw_mult():
        return keras.Sequential([
            L.Reshape((28, 28, 1), batch_input_shape=(1, 28, 28)),
            L.AveragePooling2D(2, padding="same"),
            L.DepthwiseConv2D(3, depth_multiplier=3, strides=2, padding="same"),
            L.Conv2D(6, 3, strides=(2, 1), padding="valid", activation="relu6"),
            L.MaxPool2D((2, 3), strides=(1, 2), padding="same"),
            L.Flatten(), L.Dense(10, activation="relu"), L.Dense(10)])

    return {"mlp": mlp, "cnn": cnn, "dw_mult": dw_mult}


def _op_keras_models():
    import tensorflow as tf
    import tf_keras as keras
    from tf_keras import layers as L

    def model(body):
        def make():
            i = L.Input(batch_shape=(1, 28, 28))
            return keras.Model(i, body(L.Reshape((28, 28, 1))(i)))
        return make

    def conv(x, c, k=3, **kw):
        return L.Conv2D(c, k, padding=kw.pop("padding", "same"), **kw)(x)

    def add(r):  # ADD of two activations, fused RELU
        a = conv(r, 4, strides=2, activation="relu")
        return L.ReLU()(L.Add()([a, conv(a, 4, dilation_rate=2)]))

    def add_broadcast(r):  # (1,14,14,4) + (1,1,1,4), then + (1,14,1,4): MEAN with keep_dims on axes 1,2 and 2
        a = conv(r, 4, strides=2, activation="relu")
        b = a + tf.reduce_mean(a, axis=[1, 2], keepdims=True)
        return b + tf.reduce_mean(a, axis=2, keepdims=True)

    def add_5d(r):  # 5-D broadcast: (1,2,7,7,8) + (1,2,1,7,8), (1,1,7,1,8) + ...
        a = L.Reshape((2, 7, 7, 8))(conv(r, 4, strides=2))
        return a + tf.reduce_mean(a, axis=2, keepdims=True) + tf.reduce_mean(a, axis=[1, 3], keepdims=True)

    def add_const(r):  # a constant operand (first input) and a constant broadcast one
        a = conv(r, 4, strides=2, activation="relu")
        c = tf.constant(np.linspace(-1, 1, 4 * 14).reshape(1, 14, 1, 4), tf.float32)
        return (c + a) * tf.constant(np.linspace(0.5, 2, 4).reshape(1, 1, 1, 4), tf.float32)

    def mul(r):  # MUL of two activations, then broadcast by a per-channel mean (squeeze-excite)
        a = conv(r, 4, strides=2, activation="relu")
        m = L.Multiply()([a, conv(a, 4)])
        return m * tf.reduce_mean(m, axis=[1, 2], keepdims=True)

    def pad(r):
        return L.ZeroPadding2D(((1, 2), (0, 3)))(conv(r, 3, strides=2))

    def concat(r):
        a = conv(r, 3, strides=2)
        return L.Concatenate()([a, conv(a, 2, k=1), L.MaxPool2D(3, strides=1, padding="same")(a)])

    def mean(r):  # Keras GlobalAveragePooling2D: MEAN over axes 1, 2 without keep_dims
        return L.GlobalAveragePooling2D()(conv(r, 16, strides=2, activation="relu"))

    def mean_channels(r):  # MEAN over the last axis
        return tf.reduce_mean(conv(r, 6, strides=2), axis=-1)

    def requantize():  # the converter requantizes the softmax (scale 1/256) for the concat: QUANTIZE int8->int8
        i = L.Input(batch_shape=(1, 28, 28))
        f = L.Flatten()(i)
        return keras.Model(i, L.Concatenate()([L.Softmax()(L.Dense(12)(f)), L.Dense(12)(f)]))

    def dilated(r):  # CONV_2D / DEPTHWISE_CONV_2D: dilation 2 (SAME and VALID), strides 2 VALID, multiplier 2
        a = conv(r, 4, dilation_rate=2, padding="valid")                    # 24x24
        a = L.DepthwiseConv2D(3, dilation_rate=2, depth_multiplier=2, padding="same")(a)
        a = L.DepthwiseConv2D(3, strides=2, padding="valid", activation="relu")(a)  # 11x11
        a = conv(a, 6, strides=2, padding="valid")                          # 5x5
        return L.DepthwiseConv2D(2, dilation_rate=2, depth_multiplier=2, padding="valid")(a)

    def depthwise3x3(r):  # DEPTHWISE_CONV_2D 3x3 (the M4's channel-major path): tall and wide, strides 1 and 2,
        a = conv(r, 5, strides=(1, 3), activation="relu")               # SAME and VALID, odd widths, RELU6: 28x10
        a = L.DepthwiseConv2D(3, padding="same")(a)                      # tall (lines along y), stride 1
        a = L.DepthwiseConv2D(3, strides=2, padding="valid", activation="relu6")(a)  # 13x4, stride 2
        a = L.Reshape((4, 13, 3))(conv(a, 3, k=1))                       # wide, odd width
        a = L.DepthwiseConv2D(3, padding="same")(a)
        return L.DepthwiseConv2D(3, strides=2, padding="same")(a)        # 2x7

    return {"add": model(add), "add_broadcast": model(add_broadcast), "add_5d": model(add_5d),
            "add_const": model(add_const), "mul": model(mul), "pad": model(pad), "concat": model(concat),
            "mean": model(mean), "mean_channels": model(mean_channels), "requantize": requantize,
            "dilated": model(dilated), "depthwise3x3": model(depthwise3x3)}


def build_op_models(out: Path) -> dict[str, Path]:
    """Write ``<name>.tflite`` for each op model (see the module docstring); returns name -> path."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = (rng.random((128, 28, 28)) ** 3).astype(np.float32)
    paths = {}
    for name, make in _op_keras_models().items():
        m = make()
        m.compile("adam", "mse")
        y = rng.random((len(x), *m.output_shape[1:])).astype(np.float32)
        m.fit(x, y, epochs=1, batch_size=4, steps_per_epoch=16, verbose=0)
        p = out / f"{name}.tflite"
        p.write_bytes(convert(m, x[:64]))
        paths[name] = p
    return paths


@functools.cache
def op_models() -> dict[str, Path]:
    """:func:`build_op_models` into a temporary folder, once per process (removed at exit)."""
    folder = Path(tempfile.mkdtemp(prefix="edgedigit-op-models-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return build_op_models(folder)


def convert(model, x_cal: np.ndarray, per_channel_dense: bool = True) -> bytes:
    """Full-int8 conversion (int8 input and output) calibrated on ``x_cal`` (float 0..1, N x 28 x 28)."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[None].astype(np.float32)] for x in x_cal)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    if not per_channel_dense:
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    return conv.convert()


def build_all(out: Path) -> dict[str, Path]:
    """Write ``<name>.tflite`` for each model (and ``mlp_pertensor``); returns name -> path."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = (rng.random((256, 28, 28)) ** 3).astype(np.float32)
    y = rng.integers(0, 10, 256)
    paths = {}
    for name, make in _keras_models().items():
        m = make()
        m.compile("adam", "sparse_categorical_crossentropy" if name != "dw_mult" else "mse")
        target = y if name != "dw_mult" else np.eye(10)[y]
        m.fit(x, target, epochs=1, batch_size=1, steps_per_epoch=64, verbose=0)
        variants = [(name, True)] + ([("mlp_pertensor", False)] if name == "mlp" else [])
        for vname, per_channel in variants:
            p = out / f"{vname}.tflite"
            p.write_bytes(convert(m, x[:64], per_channel_dense=per_channel))
            paths[vname] = p
    return paths


def random_images(n: int, seed: int = 1) -> np.ndarray:
    """uint8 images 0..255 that look a little like digits (sparse bright strokes)."""
    rng = np.random.default_rng(seed)
    return (np.clip(rng.random((n, 28, 28)) ** 4 * 400, 0, 255)).astype(np.uint8)
