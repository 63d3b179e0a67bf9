"""The train stage: fit variants and write ``build/models/<variant>/`` (model + card.json) atomically.

Every variant is trained by its registry hook (``edgedigit.models.variants``); this module seeds
everything, trains missing dependencies first, measures float accuracy on the test set, counts parameters
and MACs, and writes the folder through ``fsutil.staged_dir``: a failed run leaves the previous model
untouched. :func:`stage` declares the stage for the pipeline (its inputs and its output, the float model).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core import store
from ..core.errors import ModelError
from ..core.fsutil import staged_dir, write_json
from ..core.stage import Stage, file_hash
from .variants import Reporter, TrainContext, TrainResult, Variant, get_variant, resolve

KERAS_FILE = "model.keras"  # the default ``save`` hook's float model (recorded in the card's files.float)


def seed_everything(seed: int) -> None:
    """Python, NumPy and TensorFlow seeds, and deterministic TF ops."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except (RuntimeError, AttributeError):  # already enabled / not available in this TF build
        pass


def count_macs(model: Any) -> int:
    """Multiply-accumulates of one inference of a tf-keras model (Dense, Conv2D, DepthwiseConv2D, SeparableConv2D)."""
    import tf_keras as keras

    total = 0
    for layer in _flat_layers(model):
        if isinstance(layer, keras.layers.SeparableConv2D):  # depthwise k x k, then pointwise 1 x 1
            kh, kw, cin, mult = layer.depthwise_kernel.shape
            oh, ow = layer.output_shape[1:3]
            total += int(oh * ow * kh * kw * cin * mult) + int(oh * ow * cin * mult * layer.filters)
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
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
        raise store.not_trained(folder.name, path)
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
    folder = store.ModelFolder(name)
    folder.require_trained()
    return (variant.load or keras_load)(folder.path)


def predict_float(variant: Variant, model: Any, images: np.ndarray) -> np.ndarray:
    """Float scores (N, 10) of uint8 ``images`` through the variant's hook (default: the keras runner)."""
    if variant.predict_float is not None:
        return variant.predict_float(model, images)
    from ..runtimes import run_keras

    return run_keras(model, images)


def float_model_path(variant: Variant | str) -> Path:
    """The trained float model file: the card's ``files.float``, or the kind's default before training."""
    variant = get_variant(variant) if isinstance(variant, str) else variant
    folder = store.ModelFolder(variant.name)
    card = folder.card() if folder.is_trained else store.Card({"kind": variant.kind})
    return folder.float_path(card)


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
            if dep in wanted or not store.ModelFolder(dep).is_trained:
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
        dataset: the :class:`edgedigit.models.data.Dataset` to train and test on.
        seed: seeds Python, NumPy and TensorFlow before each variant.
        epochs: overrides every variant's default number of epochs.
        knobs: optional variant settings (see ``edgedigit.models.variants``).
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
    ctx = TrainContext(dataset=dataset, seed=seed, epochs=epochs, knobs=dict(knobs), reporter=reporter,
                       load_model=load_float_model)
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
        "versions": store.versions(),
        "params": result.params if result.params is not None else int(result.model.count_params()),
        "macs": result.macs if result.macs is not None else count_macs(result.model),
        "float_accuracy": store.accuracy(dataset.y_test, pred),
        "int8_accuracy": None,
        "per_class": store.per_class(dataset.y_test, pred),
        "per_class_of": "float",
        "size_bytes": None,
        "quantization": None,
        "train_seconds": round(seconds, 3),
    }
    card.update(result.extras)
    with staged_dir(store.ModelFolder(variant.name).path) as tmp:
        card["files"] = {**(variant.save or keras_save)(result.model, tmp), "card": store.CARD}
        write_json(tmp / store.CARD, card)
    return card


def stage(variant: Variant | str, seed: int, epochs: int | None, dataset_loader: Callable[[], Any]) -> Stage:
    """The pipeline's ``train <variant>`` stage.

    Args:
        variant: the variant (or its name).
        seed: the training seed.
        epochs: the user's ``--epochs`` (None: each variant's default).
        dataset_loader: returns the :class:`edgedigit.models.data.Dataset`; called whenever the stage needs
            the data (its hash for the inputs, the images to train), so pass one that loads it once.

    Returns:
        A :class:`Stage` whose inputs are the dataset hash, the seed, the epochs and the hashes of the
        dependencies' float models, and whose output is the float model file (not card.json: ``quantize``
        rewrites the card, which must not make the training look stale).
    """
    v = get_variant(variant) if isinstance(variant, str) else variant

    def inputs() -> dict[str, Any]:
        deps = {d: [file_hash(float_model_path(d))] for d in v.requires}
        return {"dataset": dataset_loader().sha256, "seed": seed, "epochs": epochs, "requires": deps}

    def outputs() -> list[Path]:
        return [float_model_path(v)]

    def run() -> None:
        train_variants([v.name], dataset_loader(), seed=seed, epochs=epochs)

    return Stage(f"train {v.name}", inputs, outputs, run)
