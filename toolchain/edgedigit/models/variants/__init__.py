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

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.errors import UnknownVariantError

SEED_NAMES: tuple[str, ...] = ("mlp", "mlp-pruned", "rfe-lr")  # the seed's variants: the one list of them


@dataclass
class TrainResult:
    """What ``Variant.train`` returns (see the module docstring)."""

    model: Any
    extras: dict = field(default_factory=dict)
    params: int | None = None
    macs: int | None = None


class Reporter:
    """Progress bars for training (rich). Disabled it costs nothing and prints nothing."""

    def __init__(self, progress: Any = None):
        self.progress = progress  # a started rich.progress.Progress, or None for silence

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[..., None]]:
        """Context yielding ``advance(n=1)`` for a loop of ``total`` steps."""
        if self.progress is None:
            yield lambda n=1: None
            return
        tid = self.progress.add_task(description, total=total)
        yield lambda n=1: self.progress.advance(tid, n)

    def keras_callback(self, epochs: int, description: str) -> Any:
        """A tf-keras callback driving one bar over all batches of ``epochs`` epochs, logging each epoch."""
        import tf_keras as keras

        reporter = self

        class _Epochs(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self._steps = int(self.params.get("steps") or 1)
                self._cm = reporter.task(f"{description}: epoch 1/{epochs}", epochs * self._steps)
                self._advance = self._cm.__enter__()
                self._task = reporter.progress.tasks[-1].id if reporter.progress is not None else None

            def on_epoch_begin(self, epoch, logs=None):
                if self._task is not None:
                    reporter.progress.update(self._task, description=f"{description}: epoch {epoch + 1}/{epochs}")

            def on_train_batch_end(self, batch, logs=None):
                self._advance()

            def on_epoch_end(self, epoch, logs=None):
                if reporter.progress is None or not logs:
                    return
                parts = [f"{k} {v:.4f}" for k, v in logs.items() if isinstance(v, float | int)]
                reporter.progress.console.log(f"{description} epoch {epoch + 1}/{epochs}: {', '.join(parts)}")

            def on_train_end(self, logs=None):
                self._cm.__exit__(None, None, None)

        return _Epochs()


def _no_loader(name: str) -> Any:
    raise RuntimeError(f"TrainContext.load_model({name!r}): this context was built without a loader "
                       "(edgedigit.models.train.train_one hands it one)")


def _no_default() -> dict:
    raise RuntimeError("QuantizeContext.default(): this context was built without the neural quantization "
                       "(edgedigit.models.quantize hands it one)")


@dataclass
class TrainContext:
    """What ``Variant.train`` receives (see the module docstring)."""

    dataset: Any
    seed: int
    epochs: int | None = None
    knobs: dict = field(default_factory=dict)
    reporter: Reporter = field(default_factory=Reporter)
    load_model: Callable[[str], Any] = _no_loader  # another variant's float model, through its ``load`` hook

    def epochs_or(self, default: int) -> int:
        """The user's ``--epochs`` if given, else ``default``."""
        return default if self.epochs is None else self.epochs

    def model_dir(self, name: str) -> Path:
        """The folder of another variant's trained artifacts."""
        from ...core.paths import model_dir

        return model_dir(name)


@dataclass
class QuantizeContext:
    """What a ``Variant.quantize`` hook receives (linear variants, and neural ones that extend the default
    neural quantization through ``default()``, such as mlp-qat)."""

    variant: str
    model_dir: Path  # the trained model's folder (read from here)
    out_dir: Path  # staged copy of model_dir: write new files here
    dataset: Any
    seed: int
    calibration_samples: int
    granularity: str
    card: dict  # the current card.json
    formats: tuple[str, ...] = ("int8",)  # "int8" first, then any of "dynamic", "float16" for comparison
    default: Callable[[], dict] = _no_default  # the neural quantization of this variant in this context


@dataclass(frozen=True)
class Variant:
    """One trainable model family and its stage hooks (see the module docstring)."""

    name: str
    kind: str  # "neural" | "linear"
    summary: str
    train: Callable[[TrainContext], TrainResult]
    requires: tuple[str, ...] = ()
    save: Callable[[Any, Path], dict] | None = None
    load: Callable[[Path], Any] | None = None
    predict_float: Callable[[Any, Any], Any] | None = None
    convert: Callable[[Any, Any, str], bytes] | None = None
    quantize: Callable[[QuantizeContext], dict] | None = None
    quantized_runners: Callable[[Path], dict] | None = None


# The variant modules, imported here (after the classes they use) in registry order: one explicit list.
from . import cnn, mlp, pruned, qat, rfe_lr, tiny  # noqa: E402

_MODULES = (mlp, pruned, rfe_lr, qat, cnn, tiny)
REGISTRY: dict[str, Variant] = {m.VARIANT.name: m.VARIANT for m in _MODULES}
# Every variant, the seed's first: what the pipeline runs when no variant is named.
SEED_VARIANTS: tuple[str, ...] = SEED_NAMES + tuple(n for n in REGISTRY if n not in SEED_NAMES)


def get_variant(name: str) -> Variant:
    """The registered variant called ``name``.

    Raises:
        UnknownVariantError: no such variant (the message lists the valid choices).
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownVariantError(
            f"unknown variant '{name}'; choose from: {', '.join(REGISTRY)}") from None


def resolve(names: list[str] | tuple[str, ...] | None) -> list[Variant]:
    """Variants for ``names`` (all registered ones when empty), checked, duplicates dropped."""
    if not names:
        return list(REGISTRY.values())
    return [get_variant(n) for n in dict.fromkeys(names)]
