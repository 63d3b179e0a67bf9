"""The variant registry: every model edgedigit can train, and the hooks the stages call on it.

Adding a variant
----------------
Write ``variants/<module>.py`` defining ``VARIANT = Variant(...)`` and add the module to the import and
to ``_MODULES`` at the end of this file (registry order). A seed variant (one the stress bench and the
pipeline's default run start with) is also named in ``SEED_NAMES``, the one list of them.

Interface (what the stages pass to a variant and expect back)
-------------------------------------------------------------
``Variant.train(ctx: TrainContext) -> TrainResult`` is the only required hook.

``TrainContext`` (built by ``edgedigit.models.train``):
    ``dataset``     the :class:`edgedigit.models.data.Dataset` (uint8 images; neural variants feed ``x / 255``).
    ``seed``        int; ``edgedigit.models.train`` has already called ``tf.keras.utils.set_random_seed(seed)``.
    ``epochs``      ``int | None``: the user's ``--epochs``; None means the variant's own default
                    (use ``ctx.epochs_or(default)``).
    ``knobs``       dict of optional settings (``width``, ``augment``, ``teacher``, ...); read with
                    ``ctx.knobs.get(name, default)``.
    ``model_dir(name)``   the folder of another (already trained) variant, e.g. ``ctx.model_dir("mlp")``;
                    every name in ``Variant.requires`` is trained before this variant runs.
    ``load_model(name)``  that variant's float model, loaded through its own ``load`` hook (the loader is
                    handed in by ``edgedigit.models.train``, so the registry does not import the stage).
    ``reporter``    progress: ``ctx.reporter.keras_callback(epochs, "mlp")`` is a tf-keras callback that
                    drives a rich progress bar over epochs; ``with ctx.reporter.task("RFE", total) as
                    advance: ... advance()`` for any other loop (e.g. RFE rounds).

``TrainResult`` (returned by ``Variant.train``):
    ``model``       the float model: a tf-keras model for neural variants (the QAT variant returns its
                    quantize-aware model), any picklable estimator for linear ones.
    ``extras``      dict merged into card.json (e.g. ``sparsity``, ``pixels``, ``teacher``).
    ``params``, ``macs``  optional ints; when None, ``edgedigit.models.train`` counts them on the tf-keras model.

``Variant.on_demand``: True for a variant trained only when named or required by another (``cnn-wide``, a
teacher): a bare ``edgedigit train`` and the pipeline leave it out.

Optional hooks (None means the neural default, implemented in ``edgedigit.models.train`` /
``edgedigit.models.quantize`` / ``edgedigit.measure.validate``):
    ``save(model, folder) -> dict[str, str]``  write the float model into ``folder``; returns the card's
        ``files`` entries (default: ``model.keras`` via ``model.save``).
    ``load(folder) -> model``  read it back (default: ``tf_keras.models.load_model(folder/"model.keras")``).
    ``predict_float(model, images_uint8) -> np.ndarray (N, 10)``  float scores (default: keras
        ``model.predict(images / 255)``).
    ``convert(model, calibration_float, granularity) -> bytes``  the full-int8 .tflite (default:
        ``edgedigit.models.quantize.convert_int8``, batch-1 concrete function, TFLITE_BUILTINS_INT8).
    ``quantize(qctx: QuantizeContext) -> dict``  replaces the whole neural quantization (linear variants):
        write files into ``qctx.out_dir`` (a staged copy of the model folder) and return the card
        updates (``int8_accuracy``, ``size_bytes``, ``quantization``, ``files``...). A neural variant that
        only adds to the default calls ``qctx.default()`` (the neural quantization, handed in by
        ``edgedigit.models.quantize``) and extends its updates (mlp-qat does).
    ``quantized_runners(folder) -> dict[str, Callable[[np.ndarray], np.ndarray]]``  for ``validate``:
        name -> function of uint8 images (N, 28, 28) returning integer scores (N, 10); the first entry is
        the reference (default: one entry per host runtime on the int8 .tflite).
"""

from __future__ import annotations

import json

from ...core.errors import ModelError, UnknownVariantError
from . import cnn, cnn_wide, mlp, pruned, qat, rfe_lr, searched, tiny
from .base import QuantizeContext, Reporter, TrainContext, TrainResult, Variant

__all__ = ["QuantizeContext", "Reporter", "TrainContext", "TrainResult", "Variant", "REGISTRY", "SEED_NAMES",
           "SEED_VARIANTS", "get_variant", "promoted", "resolve", "variants"]

SEED_NAMES: tuple[str, ...] = ("mlp", "mlp-pruned", "rfe-lr")  # the seed's variants: the one list of them


_MODULES = (mlp, pruned, rfe_lr, qat, cnn, tiny, cnn_wide)
REGISTRY: dict[str, Variant] = {m.VARIANT.name: m.VARIANT for m in _MODULES}
# Every variant but the on-demand ones, the seed's first: what the pipeline runs when no variant is named.
SEED_VARIANTS: tuple[str, ...] = SEED_NAMES + tuple(n for n, v in REGISTRY.items()
                                                    if n not in SEED_NAMES and not v.on_demand)


def promoted() -> dict[str, Variant]:
    """The variants ``edgedigit search promote`` made: one per ``build/search/promoted/<name>.json``.

    Read from the build tree at each call (a promotion in another process shows up at once), sorted by name.

    Raises:
        ModelError: a file there is not a valid promoted spec (names it).
    """
    from ...core.paths import promoted_dir

    folder = promoted_dir()
    out: dict[str, Variant] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ModelError(f"{path}: not a readable promoted spec ({e})") from None
        v = searched.from_entry(entry, str(path))
        if v.name in REGISTRY:
            raise ModelError(f"{path}: promoted variant '{v.name}' has the name of a built-in variant")
        out[v.name] = v
    return out


def variants() -> dict[str, Variant]:
    """Every variant: the built-in ones (registry order), then the promoted ones (by name)."""
    return {**REGISTRY, **promoted()}


def get_variant(name: str) -> Variant:
    """The variant called ``name``: a built-in one, or one promoted by ``edgedigit search``.

    Raises:
        UnknownVariantError: no such variant (the message lists the valid choices).
    """
    if name in REGISTRY:
        return REGISTRY[name]
    found = promoted()
    if name in found:
        return found[name]
    raise UnknownVariantError(f"unknown variant '{name}'; choose from: {', '.join([*REGISTRY, *found])}")


def resolve(names: list[str] | tuple[str, ...] | None) -> list[Variant]:
    """Variants for ``names`` (when empty: every variant but the on-demand ones, promoted ones included), checked,
    duplicates dropped."""
    if not names:
        return [v for v in variants().values() if not v.on_demand]
    return [get_variant(n) for n in dict.fromkeys(names)]
