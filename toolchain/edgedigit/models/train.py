"""The train stage: fit variants and write ``build/models/<variant>/`` (model + card.json) atomically.

Every variant is trained by its registry hook (``edgedigit.variants``); this module seeds everything,
trains missing dependencies first, measures float accuracy on the test set, counts parameters and MACs,
and writes the folder through ``fsutil.staged_dir``: a failed run leaves the previous model untouched.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..core import store as cardlib
from ..core.errors import ModelError, NotTrainedError
from ..core.fsutil import staged_dir, write_json
from ..core.paths import model_dir
from ..runtimes import run_keras as keras_predict
from .variants import Reporter, TrainContext, TrainResult, Variant, get_variant, resolve

KERAS_FILE = "model.keras"


def seed_everything(seed: int) -> None:
    """Python, NumPy and TensorFlow seeds, and deterministic TF ops."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except (RuntimeError, AttributeError):  # already enabled / not available in this TF build
        pass


def count_macs(model: Any) -> int:
    """Multiply-accumulates of one inference of a tf-keras model (Dense, Conv2D, DepthwiseConv2D)."""
    import tf_keras as keras

    total = 0
    for layer in _flat_layers(model):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw, cin, mult = layer.depthwise_kernel.shape
            oh, ow = layer.output_shape[1:3]
            total += int(oh * ow * kh * kw * cin * mult)
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            oh, ow = layer.output_shape[1:3]
            total += int(oh * ow * kh * kw * cin * cout)
        elif isinstance(layer, keras.layers.Dense):
            cin, cout = layer.kernel.shape
            total += int(cin * cout)
    return total


def _flat_layers(model: Any) -> list[Any]:
    out = []
    for layer in getattr(model, "layers", []):
        inner = getattr(layer, "layer", None)  # tfmot wrappers (QuantizeWrapper, PruneLowMagnitude)
        if inner is not None and not hasattr(layer, "layers"):
            layer = inner
        if hasattr(layer, "layers"):
            out.extend(_flat_layers(layer))
        else:
            out.append(layer)
    return out


def keras_save(model: Any, folder: Path) -> dict[str, str]:
    """Default ``save`` hook: ``model.keras``."""
    model.save(folder / KERAS_FILE)
    return {"float": KERAS_FILE}


def keras_load(folder: Path) -> Any:
    """Default ``load`` hook: ``model.keras`` without its optimizer state."""
    import tf_keras as keras

    path = folder / KERAS_FILE
    if not path.is_file():
        raise NotTrainedError(f"{path} missing: run `edgedigit train {folder.name}`")
    import zipfile

    try:
        return keras.models.load_model(path, compile=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:  # empty, truncated or foreign file: one line
        raise ModelError(f"{path}: not a readable Keras model ({' '.join(str(e).split())}); "
                         f"run `edgedigit train {folder.name}` again") from None


def load_float_model(name: str) -> Any:
    """A trained variant's float model through its ``load`` hook.

    Raises:
        NotTrainedError: the variant was never trained.
    """
    variant = get_variant(name)
    cardlib.read_card(name)
    return (variant.load or keras_load)(model_dir(name))


def predict_float(variant: Variant, model: Any, images: np.ndarray) -> np.ndarray:
    return (variant.predict_float or keras_predict)(model, images)


def plan(names: list[str] | tuple[str, ...] | None) -> list[Variant]:
    """Variants to train in order: requested ones, preceded by dependencies that are not trained yet."""
    requested = resolve(names)
    wanted = {v.name for v in requested}
    order: list[Variant] = []

    def visit(v: Variant, chain: tuple[str, ...]) -> None:
        if v in order:
            return
        for dep in v.requires:
            d = get_variant(dep)
            if dep in chain:
                raise RuntimeError(f"dependency cycle between variants: {' -> '.join(chain + (dep,))}")
            if dep in wanted or not cardlib.card_path(dep).is_file():
                visit(d, chain + (dep,))
        order.append(v)

    for v in requested:
        visit(v, (v.name,))
    return order


def train_variants(names: list[str] | tuple[str, ...] | None, dataset: Any, seed: int = 0, epochs: int | None = None,
                   knobs: dict | None = None, reporter: Reporter | None = None) -> list[dict]:
    """Train ``names`` (all registered when empty) and their missing dependencies; returns their cards.

    Args:
        names: variant names; unknown ones raise before anything is trained.
        dataset: the :class:`edgedigit.data.Dataset` to train and test on.
        seed: seeds Python, NumPy and TensorFlow before each variant.
        epochs: overrides every variant's default number of epochs.
        knobs: optional variant settings (see ``edgedigit.variants``).
        reporter: progress bars (silent when None).

    Raises:
        UnknownVariantError: a name is not registered.
    """
    cards = []
    for variant in plan(names):
        cards.append(train_one(variant, dataset, seed=seed, epochs=epochs, knobs=knobs or {},
                               reporter=reporter or Reporter()))
    return cards


def train_one(variant: Variant, dataset: Any, *, seed: int, epochs: int | None, knobs: dict,
              reporter: Reporter) -> dict:
    """Train one variant and write its folder (model + card.json) in one atomic step."""
    ctx = TrainContext(dataset=dataset, seed=seed, epochs=epochs, knobs=dict(knobs), reporter=reporter)
    if variant.kind == "neural":
        seed_everything(seed)
    else:
        np.random.seed(seed)
    start = time.perf_counter()
    result: TrainResult = variant.train(ctx)
    seconds = time.perf_counter() - start
    scores = predict_float(variant, result.model, dataset.x_test)
    pred = np.argmax(scores, axis=1)
    card: dict[str, Any] = {
        "variant": variant.name,
        "kind": variant.kind,
        "summary": variant.summary,
        "requires": list(variant.requires),
        "dataset": dataset.describe(),
        "seed": seed,
        "knobs": dict(knobs),
        "versions": cardlib.versions(),
        "params": result.params if result.params is not None else int(result.model.count_params()),
        "macs": result.macs if result.macs is not None else count_macs(result.model),
        "float_accuracy": cardlib.accuracy(dataset.y_test, pred),
        "int8_accuracy": None,
        "per_class": cardlib.per_class(dataset.y_test, pred),
        "per_class_of": "float",
        "size_bytes": None,
        "quantization": None,
        "train_seconds": round(seconds, 3),
    }
    card.update(result.extras)
    with staged_dir(model_dir(variant.name)) as tmp:
        card["files"] = {**(variant.save or keras_save)(result.model, tmp), "card": cardlib.CARD}
        write_json(tmp / cardlib.CARD, card)
    return card
