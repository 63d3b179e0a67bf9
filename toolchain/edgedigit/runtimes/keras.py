"""The float tf-keras model of a neural variant on the host.

:func:`load` is the default ``load`` hook of a neural variant (``model.keras`` without its optimizer
state); :func:`predict` is the default ``predict_float`` hook (``model.predict`` on pixels / 255, the
figure the card's ``float_accuracy`` is computed with); :func:`call` is the same model called directly,
which costs no per-call ``tf.data`` set-up and is what ``bench host`` times.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ModelError
from ..core.store import DEFAULT_FLOAT_FILES, not_trained

KERAS_FILE = DEFAULT_FLOAT_FILES["neural"]
PREDICT_BATCH = 256  # model.predict's batch
CALL_CHUNK = 1000  # images per direct call


def load(folder: Path) -> Any:
    """``<folder>/model.keras`` without its optimizer state (the variant is the folder's name).

    Raises:
        NotTrainedError: the file is missing. ModelError: it is not a readable Keras model.
    """
    import zipfile

    import tf_keras as keras

    folder = Path(folder)
    path = folder / KERAS_FILE
    if not path.is_file():
        raise not_trained(folder.name, path)
    try:
        return keras.models.load_model(path, compile=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:  # empty, truncated or foreign file: one line
        raise ModelError(f"{path}: not a readable Keras model ({' '.join(str(e).split())}); "
                         f"run `edgedigit train {folder.name}` again") from None


def predict(model: Any, images: np.ndarray) -> np.ndarray:
    """The float model on uint8 images (scaled by 1/255) through ``model.predict``: float32 scores (N, C)."""
    x = np.asarray(images, np.float32) / 255.0
    return np.asarray(model.predict(x, batch_size=PREDICT_BATCH, verbose=0))


def call(model: Any, images: np.ndarray) -> np.ndarray:
    """The float model called directly on uint8 images / 255, in chunks: float32 scores (N, C)."""
    x = np.asarray(images).astype(np.float32) / 255.0
    outs = [model(x[i:i + CALL_CHUNK], training=False).numpy() for i in range(0, len(x), CALL_CHUNK)]
    return np.concatenate(outs)
