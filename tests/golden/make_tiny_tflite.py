"""Write tests/golden/tiny.tflite: the tiny fixed int8 model behind the export golden files.

AVERAGE_POOL_2D 4x4 (28x28 -> 7x7) -> FULLY_CONNECTED(10, per-channel weights) -> SOFTMAX, 2 epochs on
seeded random data; converted once with the real TFLite converter and committed, so the golden files do
not depend on the converter's version. Run from the repository root:
``.venv/bin/python tests/golden/make_tiny_tflite.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import tensorflow as tf
    import tf_keras as keras
    from tf_keras import layers as L

    from tflite_factory import convert, random_images

    tf.keras.utils.set_random_seed(0)
    model = keras.Sequential([
        L.Reshape((28, 28, 1), batch_input_shape=(1, 28, 28)),
        L.AveragePooling2D(4),
        L.Flatten(), L.Dense(10), L.Softmax()])
    x = random_images(256, seed=2).astype(np.float32) / 255.0
    y = np.random.default_rng(0).integers(0, 10, 256)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    out = Path(__file__).with_name("tiny.tflite")
    out.write_bytes(convert(model, x[:64], per_channel_dense=True))
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
