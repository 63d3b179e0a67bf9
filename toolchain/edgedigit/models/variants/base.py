"""The variant interface: ``Variant`` and what its hooks receive and return (see ``edgedigit.models.variants``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
    on_demand: bool = False  # trained only when named or required: not by a bare `train`, nor by the pipeline
    save: Callable[[Any, Path], dict] | None = None
    load: Callable[[Path], Any] | None = None
    predict_float: Callable[[Any, Any], Any] | None = None
    convert: Callable[[Any, Any, str], bytes] | None = None
    quantize: Callable[[QuantizeContext], dict] | None = None
    quantized_runners: Callable[[Path], dict] | None = None


# The variant modules, imported here (after the classes they use) in registry order: one explicit list.
