"""Variants made from a searched spec: the trials of ``edgedigit search`` and the models it promotes.

A spec is a JSON object with three parts::

    {"architecture": {...},   # edgedigit.models.zoo.build_from_spec (conv or mlp family)
     "training": {"epochs": 6, "lr": 0.003, "augment": true, "teacher": null, "temperature": 4.0, "alpha": 0.1,
                  "patience": 6},
     "granularity": "per-tensor"}   # Dense weights per tensor or per channel (convolutions are per channel)

``training.patience`` is the early stopping's patience in epochs (the best validation epoch's weights are kept
either way). ``edgedigit search`` sets it to the epochs: the cosine decay's last, low-rate epochs are where a
small net gains most, and the zoo's patience of 3 stopped a 24-epoch schedule after 8 (measured: tiny, best
epoch 5). A spec without it (from an earlier study) trains as it did, with the zoo's patience.

:func:`make_variant` turns one into a :class:`Variant`: its ``train`` hook builds the architecture and trains it
with the cnn's recipe (:func:`edgedigit.models.zoo.fit`; :func:`edgedigit.models.zoo.distill` from
``training.teacher`` when one is named), its ``quantize`` hook runs the neural quantization with the spec's granularity (the one
the search measured, whatever ``--granularity`` says). Promoted variants are read from
``build/search/promoted/<name>.json`` by the registry (``edgedigit.models.variants.promoted``); such a file
is ``{"name", "spec", "summary", "search": {...what the study recorded...}}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...core.errors import ModelError
from .base import QuantizeContext, TrainContext, TrainResult, Variant

GRANULARITIES = ("per-tensor", "per-channel")
TEMPERATURE = 4.0
ALPHA = 0.1


def check_spec(spec: Any, where: str = "spec") -> dict:
    """``spec`` checked (architecture, training, granularity); returns it.

    Raises:
        ModelError: a missing part or a value out of range (the message names ``where``).
    """
    from .. import zoo

    if not isinstance(spec, dict) or not {"architecture", "training"} <= set(spec):
        raise ModelError(f"{where}: a spec needs 'architecture' and 'training'")
    try:
        zoo.check_architecture(spec["architecture"])
    except ModelError as e:
        raise ModelError(f"{where}: {e}") from None
    tr = spec["training"]
    if int(tr.get("epochs", 0)) < 1 or float(tr.get("lr", 0)) <= 0 or int(tr.get("patience", 1)) < 1:
        raise ModelError(f"{where}: training needs epochs >= 1, lr > 0 and patience >= 1 (got {tr})")
    if spec.get("granularity", "per-tensor") not in GRANULARITIES:
        raise ModelError(f"{where}: granularity {spec.get('granularity')!r}, expected {' or '.join(GRANULARITIES)}")
    return spec


# The tf-keras model's name, whatever the variant's: the .tflite's tensor names carry it, so with one name a
# trial's model has, to the byte, the size of the variant it is promoted to (search --max-model-bytes, the
# 16 KB check); with the variant's name, search-nano33ble-1 was 176 B larger than its trial.
MODEL_NAME = "searched"


def _train_hook(spec: dict, name: str, extras: dict) -> Callable[[TrainContext], TrainResult]:
    def train(ctx: TrainContext) -> TrainResult:
        from .. import zoo

        arch, tr = spec["architecture"], spec["training"]
        epochs = ctx.epochs_or(int(tr["epochs"]))
        lr, augment = float(tr["lr"]), bool(tr.get("augment", False))
        stop = {"patience": int(tr["patience"])} if "patience" in tr else {}  # else the zoo's
        model = zoo.build_from_spec(arch, name=MODEL_NAME)
        callbacks = [ctx.reporter.keras_callback(epochs, name)]
        x, y = ctx.dataset.x_train, ctx.dataset.y_train
        teacher = tr.get("teacher")
        if teacher:
            t = ctx.load_model(teacher)
            try:
                t.get_layer("logits")
            except ValueError:
                raise ModelError(f"teacher '{teacher}' has no 'logits' layer to distill from") from None
            info = zoo.distill(model, t, x, y, epochs=epochs, seed=ctx.seed, augment=augment, callbacks=callbacks,
                               temperature=float(tr.get("temperature", TEMPERATURE)),
                               alpha=float(tr.get("alpha", ALPHA)), lr=lr, **stop)
        else:
            info = zoo.fit(model, x, y, epochs=epochs, seed=ctx.seed, augment=augment, callbacks=callbacks, lr=lr,
                           **stop)
        return TrainResult(model, extras={"architecture": zoo.describe(arch), "spec": spec, "training": info, **extras})

    return train


def _quantize_hook(spec: dict) -> Callable[[QuantizeContext], dict]:
    def quantize(q: QuantizeContext) -> dict:
        q.granularity = spec.get("granularity", "per-tensor")  # the granularity the search measured
        return q.default()

    return quantize


def make_variant(name: str, spec: dict, summary: str | None = None, extras: dict | None = None) -> Variant:
    """A neural :class:`Variant` that trains and converts ``spec`` (see the module docstring).

    Args:
        name: the variant's name (``search-<board>-<trial>`` once promoted).
        spec: the searched spec (checked).
        summary: one line for tables; default: the architecture's description.
        extras: merged into the card (a promoted variant records its study there).
    """
    from .. import zoo

    check_spec(spec, name)
    teacher = spec["training"].get("teacher")
    return Variant(
        name=name,
        kind="neural",
        summary=summary or f"searched: {zoo.describe(spec['architecture'])}",
        train=_train_hook(spec, name, dict(extras or {})),
        requires=(teacher,) if teacher else (),
        quantize=_quantize_hook(spec),
    )


def from_entry(entry: dict, where: str) -> Variant:
    """The variant of one promoted-spec file (``{"name", "spec", "summary", "search"}``).

    Raises:
        ModelError: the file lacks a name or a valid spec (names ``where``).
    """
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or "spec" not in entry:
        raise ModelError(f"{where}: a promoted variant needs 'name' and 'spec'")
    check_spec(entry["spec"], where)
    return make_variant(entry["name"], entry["spec"], entry.get("summary"), {"search": entry.get("search", {})})
