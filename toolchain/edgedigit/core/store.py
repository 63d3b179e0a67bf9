"""card.json: what a user needs to trust a model (COMMON contract 2), and the metrics it records.

Keys: ``variant``, ``kind``, ``dataset`` (``Dataset.describe()``), ``seed``, ``versions``, ``params``,
``macs``, ``float_accuracy``, ``int8_accuracy`` (None until ``edgedigit quantize``), ``per_class``
(precision/recall/F1 lists of 10, of the int8 model once quantized, else of the float model; which one is
in ``per_class_of``), ``size_bytes`` (int8 .tflite bytes, None until quantized), ``quantization``
(granularity, input/output scale and zero point, calibration_samples), ``files``, ``train_seconds``,
plus variant extras (``sparsity``, ``pixels``, ...).
"""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from .. import __version__
from .errors import ModelError, NotTrainedError
from .paths import model_dir

CARD = "card.json"
_PACKAGES = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "tflite-micro",
             "scikit-learn", "numpy")


def versions() -> dict[str, str]:
    """Versions of edgedigit, Python and the libraries a model depends on (without importing them)."""
    out = {"edgedigit": __version__, "python": platform.python_version()}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def read_card(variant: str, command: str = "edgedigit train") -> dict:
    """The card of a trained variant.

    Raises:
        NotTrainedError: the variant has no card (names the command that makes one).
        ModelError: the card exists but is not valid JSON.
    """
    path = model_dir(variant) / CARD
    if not path.is_file():
        raise NotTrainedError(f"variant '{variant}' is not trained ({path} missing): run `{command} {variant}` first")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: not a valid card ({e})") from None


def per_class(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = 10) -> dict[str, list[float]]:
    """Per-class precision, recall and F1 (lists of ``num_classes``; 0 where a class is never predicted)."""
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=list(range(num_classes)), zero_division=0)
    return {"precision": [round(float(v), 6) for v in p], "recall": [round(float(v), 6) for v in r],
            "f1": [round(float(v), 6) for v in f]}


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = 10) -> list[list[int]]:
    """Confusion matrix: row = true class, column = predicted class."""
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return m.tolist()


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of correct predictions."""
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def card_path(variant: str) -> Path:
    return model_dir(variant) / CARD
