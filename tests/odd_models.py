"""Int8 .tflite models that are not 28 x 28 digit classifiers, built with the real TFLite converter.

For the "any int8 model" tests and the known defects of issue 12 item 5: TFLM's hello_world (1 input, 1
output), a small autoencoder (same input and output size), a keyword-spotting-like CNN (49 x 10 x 1), a
model whose tensors carry no names, and models with ops no backend of the emulated boards runs (an LSTM,
a TRANSPOSE_CONV). Seeded weights; deterministic for one TensorFlow version.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def _convert(model, x_cal: np.ndarray, input_type: str = "int8") -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[None].astype(np.float32)] for x in x_cal)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8 if input_type == "uint8" else tf.int8
    conv.inference_output_type = tf.int8
    conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    return conv.convert()


def hello_world(path: Path) -> Path:
    """TFLM's hello_world: sin(x), Dense(16, relu) -> Dense(16, relu) -> Dense(1), input (1, 1)."""
    import tensorflow as tf
    import tf_keras as keras
    from tf_keras import layers as L

    tf.keras.utils.set_random_seed(0)
    m = keras.Sequential([L.Dense(16, activation="relu", batch_input_shape=(1, 1)), L.Dense(16, activation="relu"),
                          L.Dense(1)])
    x = np.linspace(0, 2 * np.pi, 200, dtype=np.float32)[:, None]
    path.write_bytes(_convert(m, x))
    return path


def autoencoder(path: Path, width: int = 64) -> Path:
    """An FC autoencoder width -> 16 -> 8 -> 16 -> width (the shape of MLPerf Tiny's ad01, smaller)."""
    import tensorflow as tf
    import tf_keras as keras
    from tf_keras import layers as L

    tf.keras.utils.set_random_seed(1)
    m = keras.Sequential([L.Dense(16, activation="relu", batch_input_shape=(1, width)),
                          L.Dense(8, activation="relu"), L.Dense(16, activation="relu"), L.Dense(width)])
    x = np.random.default_rng(1).normal(size=(64, width)).astype(np.float32)
    path.write_bytes(_convert(m, x))
    return path


def kws_like(path: Path, input_type: str = "int8") -> Path:
    """A small keyword-spotting CNN on a 49 x 10 x 1 input, 12 classes (the shape of MLPerf Tiny's kws01)."""
    import tensorflow as tf
    import tf_keras as keras
    from tf_keras import layers as L

    tf.keras.utils.set_random_seed(2)
    m = keras.Sequential([L.Conv2D(8, (5, 3), strides=2, padding="same", activation="relu",
                                   batch_input_shape=(1, 49, 10, 1)),
                          L.DepthwiseConv2D(3, padding="same", activation="relu"), L.Conv2D(8, 1, activation="relu"),
                          L.AveragePooling2D((25, 5)), L.Flatten(), L.Dense(12), L.Softmax()])
    x = np.random.default_rng(2).normal(size=(32, 49, 10, 1)).astype(np.float32)
    path.write_bytes(_convert(m, x, input_type))
    return path


def lstm(path: Path) -> Path:
    """An int8 model with UNIDIRECTIONAL_SEQUENCE_LSTM (int16 cell state) on a (1, 8, 4) sequence."""
    import tensorflow as tf
    import tf_keras as keras
    from tf_keras import layers as L

    tf.keras.utils.set_random_seed(3)
    m = keras.Sequential([L.LSTM(8, batch_input_shape=(1, 8, 4), unroll=False), L.Dense(4), L.Softmax()])
    x = np.random.default_rng(3).normal(size=(16, 8, 4)).astype(np.float32)
    path.write_bytes(_convert(m, x))
    return path


def transpose_conv(path: Path) -> Path:
    """An int8 model with TRANSPOSE_CONV (its first operand is the int32 output shape)."""
    import tensorflow as tf
    import tf_keras as keras
    from tf_keras import layers as L

    tf.keras.utils.set_random_seed(4)
    m = keras.Sequential([L.Conv2DTranspose(4, 3, strides=2, padding="same", batch_input_shape=(1, 6, 6, 2)),
                          L.Flatten(), L.Dense(4), L.Softmax()])
    x = np.random.default_rng(4).normal(size=(16, 6, 6, 2)).astype(np.float32)
    path.write_bytes(_convert(m, x))
    return path


def without_names(source: Path, path: Path) -> Path:
    """``source`` re-serialized with every tensor name removed (a valid flatbuffer: names are optional)."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(source.read_bytes(), 0))
    for sg in model.subgraphs:
        for t in sg.tensors:
            t.name = None
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    path.write_bytes(bytes(b.Output()))
    return path
