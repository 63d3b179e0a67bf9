"""The model store: ``build/models/<variant>/``, its artifact names, and ``card.json``.

Every stage finds a variant's files through :class:`ModelFolder` (the file names are spelled here and
nowhere else) and reads its card through :class:`Card` (typed accessors over the JSON). The three ways a
model can be missing each have one wording: not trained, not quantized, nothing trained.

card.json records what a user needs to trust a model, and the metrics. Keys: ``variant``, ``kind``,
``dataset`` (``Dataset.describe()``), ``seed``, ``versions``, ``params``, ``macs``, ``float_accuracy``,
``int8_accuracy`` (None until ``edgedigit quantize``), ``per_class`` (precision/recall/F1 lists of 10, of
the int8 model once quantized, else of the float model; which one is in ``per_class_of``), ``size_bytes``
(int8 .tflite bytes, None until quantized), ``quantization`` (granularity, input/output scale and zero
point, calibration_samples), ``files``, ``train_seconds``, plus variant extras (``sparsity``, ``pixels``).
"""

from __future__ import annotations

import json
import platform
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .errors import ModelError, NotTrainedError
from .paths import model_dir, models_dir

CARD = "card.json"
INT8_FILE = "model_int8.tflite"  # every neural variant's deployable model
FIXED_FILE = "model_fixed.npz"  # the linear variant's fixed-point tables
KINDS = ("neural", "linear")
QUANTIZED_FILES = {"neural": INT8_FILE, "linear": FIXED_FILE}
DEFAULT_FLOAT_FILES = {"neural": "model.keras", "linear": "model.joblib"}  # when a card names no float file


def not_trained(variant: str, path: Path) -> NotTrainedError:
    """The one wording for a variant that has not been trained."""
    return NotTrainedError(f"variant '{variant}' is not trained ({path} missing): run `edgedigit train {variant}` first")


def not_quantized(variant: str, path: Path) -> NotTrainedError:
    """The one wording for a trained variant that has not been quantized."""
    return NotTrainedError(f"variant '{variant}' is not quantized ({path} missing): "
                           f"run `edgedigit quantize {variant}` first")


def nothing_trained() -> NotTrainedError:
    """The one wording for a build folder without any trained variant."""
    return NotTrainedError(f"no trained variant in {models_dir()}: run `edgedigit train` first")


class Card(Mapping[str, Any]):
    """A variant's ``card.json``, read once, with typed accessors for the fields stages use.

    It is a read-only mapping of the whole JSON object (variant extras included): ``card.get(key)`` reads
    any other key, and ``dict(card)`` copies it for writing.
    """

    def __init__(self, data: Mapping[str, Any], path: Path | None = None) -> None:
        self.data = dict(data)
        self.path = path

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def variant(self) -> str:
        return str(self.data.get("variant", self.path.parent.name if self.path else ""))

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", "neural"))

    @property
    def float_accuracy(self) -> float | None:
        return self.data.get("float_accuracy")

    @property
    def int8_accuracy(self) -> float | None:
        return self.data.get("int8_accuracy")

    @property
    def size_bytes(self) -> int | None:
        return self.data.get("size_bytes")

    @property
    def params(self) -> int | None:
        return self.data.get("params")

    @property
    def macs(self) -> int | None:
        return self.data.get("macs")

    @property
    def files(self) -> dict[str, str]:
        return dict(self.data.get("files") or {})

    @property
    def quantization(self) -> dict[str, Any]:
        return dict(self.data.get("quantization") or {})

    @property
    def tflm_arena_bytes(self) -> int | None:
        return self.data.get("tflm_arena_bytes")

    @property
    def dataset(self) -> Any:
        return self.data.get("dataset")


@dataclass(frozen=True)
class ModelFolder:
    """``build/models/<variant>/``: where a variant's artifacts are and whether they exist."""

    variant: str

    @property
    def path(self) -> Path:
        return model_dir(self.variant)

    @property
    def card_path(self) -> Path:
        return self.path / CARD

    @property
    def is_trained(self) -> bool:
        return self.card_path.is_file()

    def card(self) -> Card:
        """The card (read from disk at each call: stages rewrite it).

        Raises:
            NotTrainedError: no card (not trained). ModelError: the card is not valid JSON.
        """
        return read_card(self.variant)

    @property
    def kind(self) -> str:
        return self.card().kind

    def float_path(self, card: Card | None = None) -> Path:
        """The float model file the card names (``files.float``), else the kind's default name."""
        card = card or self.card()
        return self.path / card.files.get("float", DEFAULT_FLOAT_FILES.get(card.kind, "model.keras"))

    def quantized_path(self, kind: str | None = None) -> Path:
        """The deployable artifact of this kind: ``model_int8.tflite`` (neural) or ``model_fixed.npz`` (linear).

        Raises:
            ModelError: the card names an unknown kind.
        """
        kind = kind or self.kind
        if kind not in QUANTIZED_FILES:
            raise ModelError(f"{self.card_path}: unknown kind {kind!r} ({' or '.join(KINDS)})")
        return self.path / QUANTIZED_FILES[kind]

    @property
    def int8_path(self) -> Path:
        """``model_int8.tflite`` (whether it exists or not)."""
        return self.path / INT8_FILE

    def require_trained(self) -> Card:
        """The card; raises the one "not trained" error when there is none."""
        return self.card()

    def require_quantized(self, kind: str | None = None) -> Path:
        """The deployable artifact; raises the one "not quantized" error when it is missing."""
        self.require_trained()
        path = self.quantized_path(kind)
        if not path.is_file():
            raise not_quantized(self.variant, path)
        return path


def trained_variants() -> list[str]:
    """Variants with a card under ``build/models/``, sorted by name."""
    root = models_dir()
    return sorted(p.parent.name for p in root.glob(f"*/{CARD}")) if root.is_dir() else []


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


def read_card(variant: str) -> Card:
    """The card of a trained variant.

    Raises:
        NotTrainedError: the variant has no card.
        ModelError: the card exists but is not a JSON object.
    """
    path = model_dir(variant) / CARD
    if not path.is_file():
        raise not_trained(variant, path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: not a valid card ({e})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: not a valid card (a JSON object is expected)")
    return Card(data, path)


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
