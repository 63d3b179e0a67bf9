"""Small int8 .tflite models for tests, built with the real TFLite converter (not by edgedigit's training).

Each covers ops the backends must handle: FULLY_CONNECTED per tensor and per channel, CONV_2D,
DEPTHWISE_CONV_2D, MAX_POOL_2D, AVERAGE_POOL_2D, RESHAPE, SOFTMAX, with fused RELU / RELU6.
Weights come from a short fit on random data with fixed seeds, so the models are deterministic.
"""

from __future__ import annotations

import os
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
