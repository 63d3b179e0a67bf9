"""The host-runtime registry: every way edgedigit runs a trained model on this machine, behind one interface.

A :class:`Runtime` is one way to run a variant: ``kind`` says which models it applies to (``neural`` or
``linear``), ``form`` what it computes with (``float``, ``int8`` or ``fixed``). ``Runtime.load(folder,
variant)`` returns a :class:`Runner` whose ``raw(images)`` gives the model's outputs (N, C) and
``predict(images)`` its classes (N,), both on raw uint8 images (N, 28, 28). The int8 runtimes turn pixels
into the model's input through the firmware's table (``core.int8``), so each sees exactly what a board sees.

Who uses what (nothing else lists runtimes):

- ``validate``: per kind, the float runtime (:func:`float_runtime`) and the quantized runtimes it compares
  element for element (:func:`validated_for`: the reference, then every runtime that runs a backend's code);
- ``bench host`` / ``bench stress``: every runtime of the variant's kind (:func:`runtimes_for`);
- ``bench device``: TFLM's raw outputs as the device's reference;
- the report: :func:`deployed_order`; the CLI help: :func:`describe`.

To add a runtime, add one :class:`Runtime` to :data:`RUNTIMES` (a loader that returns a :class:`Runner`).
Nothing heavy is imported here: interpreters, TensorFlow and the native compiler are loaded by the loaders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import EdgeDigitError, ModelError

if TYPE_CHECKING:
    import numpy as np

    from ..core.graph import Graph
    from ..core.store import Card, ModelFolder

REFERENCE = "litert-ref"  # the runtime validate compares the others with
FORMS = ("float", "int8", "fixed")


@dataclass(frozen=True)
class Runner:
    """A model loaded under one runtime.

    Attributes:
        name: the runtime's name.
        model_file: the file it runs (the float model or the quantized artifact).
        raw: uint8 images (N, 28, 28) -> outputs (N, C): int8 raw outputs (int8 runtimes), float scores (float
            runtimes) or int32 scores (fixed point).
        predict: uint8 images -> classes (N,): the first index of the largest output.
        batch_native: True when a batch goes through in one call, False for one invoke per image.
        notes: what exactly runs (recorded with every benchmark).
    """

    name: str
    model_file: Path
    raw: Callable[[np.ndarray], np.ndarray]
    predict: Callable[[np.ndarray], np.ndarray]
    batch_native: bool
    notes: str = ""


@dataclass(frozen=True)
class Runtime:
    """One way to run a trained variant on the host (see the module docstring).

    Attributes:
        name: the name on the command line and in every result file.
        kind: the models it applies to: ``neural`` or ``linear``.
        form: ``float``, ``int8`` or ``fixed``.
        description: one line, for the CLI help and the docs.
        loader: ``(folder, card, variant) -> Runner`` (called by :meth:`load` once the kind is checked).
        run: for the int8 runtimes, ``(tflite_path, x_int8) -> raw int8 outputs`` of an already-quantized batch.
        on_device: it runs the code a firmware backend runs (TFLM's kernels, the generated C, the fixed-point
            tables); ``validate`` compares these with the reference and the report quotes them first.
    """

    name: str
    kind: str
    form: str
    description: str
    loader: Callable[[ModelFolder, Card, Any], Runner] = field(repr=False)
    run: Callable[[str | Path, np.ndarray], np.ndarray] | None = field(default=None, repr=False)
    on_device: bool = False

    def load(self, folder: ModelFolder, variant: Any = None) -> Runner:
        """Load the variant in ``folder`` under this runtime.

        Args:
            folder: the variant's model folder.
            variant: the variant object (``models.variants.Variant``) whose hooks ``load``, ``predict_float``
                and ``quantized_runners`` the float and fixed-point runtimes call; the int8 runtimes ignore it.

        Raises:
            NotTrainedError: not trained, or its artifact for this runtime is missing (one wording each).
            ModelError: the model is of another kind, unreadable, or refused by the runtime (names the file).
        """
        card = folder.require_trained()
        if card.kind != self.kind:
            raise ModelError(f"variant '{folder.variant}' is a {card.kind} model and runtime {self.name} runs "
                             f"{self.kind} models; its runtimes: {', '.join(runtimes_for(card.kind))}")
        return self.loader(folder, card, variant)


def argmax_rows(out: np.ndarray) -> np.ndarray:
    """The class of each row of outputs (N, ...): the first index of the largest value."""
    import numpy as np

    out = np.asarray(out)
    return np.argmax(out.reshape(len(out), -1), axis=1)


def _classes(raw: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda images: argmax_rows(raw(images))


# ------------------------------------------------------------------------------ low-level, by file path


def run_litert(tflite_path: str | Path, x: np.ndarray) -> np.ndarray:
    """LiteRT's reference kernels on N inputs already in the model's input dtype: raw outputs (N, C).

    Raises:
        ModelError: no such file, LiteRT refuses it, or ``x`` has the wrong dtype or shape.
    """
    from .litert import run_reference

    return run_reference(tflite_path, x)


def _run_litert_optimized(tflite_path: str | Path, x: np.ndarray) -> np.ndarray:
    from .litert import run_optimized

    return run_optimized(tflite_path, x)


def run_tflm(tflite_path: str | Path, x_int8: np.ndarray) -> np.ndarray:
    """TFLM (the tflite-micro wheel) with an arena of the measured size: raw outputs (N, C).

    Raises:
        ModelError: no such file, TFLM refuses it, or ``x_int8`` has the wrong dtype or shape.
    """
    from .tflm import run

    return run(tflite_path, x_int8)


def tflm_arena_bytes(tflite_path: str | Path) -> int:
    """The tensor arena TFLM allocates for this model, in bytes (``print_allocations``).

    Raises:
        ModelError: no such file, or TFLM refuses it.
    """
    from .tflm import arena_bytes

    return arena_bytes(tflite_path)


def run_native(tflite_path: str | Path, x_int8: np.ndarray) -> np.ndarray:
    """The native backend's C compiled as a host library (cached): raw int8 outputs (N, C).

    Raises:
        ModelError / UnsupportedOpError: the native backend cannot compile the model. ToolError: no compiler.
    """
    from .native_host import run_native as run

    return run(tflite_path, x_int8)


def run_keras(model: Any, images: np.ndarray) -> np.ndarray:
    """The float tf-keras model on uint8 images / 255 (``model.predict``): float32 scores (N, C)."""
    from .keras import predict

    return predict(model, images)


def run_int8(name: str, tflite_path: str | Path, x_int8: np.ndarray) -> np.ndarray:
    """Raw int8 outputs of an already-quantized batch under the int8 runtime ``name`` (e.g. ``tflm``).

    Raises:
        EdgeDigitError: ``name`` is not an int8 runtime (lists them). ModelError: see the runtime.
    """
    rt = get_runtime(name)
    if rt.run is None:
        int8 = [n for n, r in RUNTIMES.items() if r.run is not None]
        raise EdgeDigitError(f"runtime {name} does not run an int8 batch; int8 runtimes: {', '.join(int8)}")
    return rt.run(tflite_path, x_int8)


# ------------------------------------------------------------------------------------------------ loaders


def int8_graph(path: Path, variant: str) -> Graph:
    """The graph of a variant's int8 model, checked before any interpreter sees the file.

    Raises:
        ModelError: unreadable, or not full int8 (one line naming the file and the command that redoes it).
    """
    from ..core.graph import load_graph

    graph = load_graph(path)
    if not graph.is_full_int8():  # a float model has no input scale: say so instead of an IndexError
        raise ModelError(f"{path}: not a full-int8 model (input {graph.input.dtype}, output "
                         f"{graph.output.dtype}); run `edgedigit quantize {variant}`")
    return graph


def _int8_input(graph: Graph) -> Callable[[np.ndarray], np.ndarray]:
    """``core.int8.quantize_for(graph, images)`` with the table built once: uint8 images -> the int8 batch."""
    import numpy as np

    from ..core.int8 import input_lut, input_quantization

    lut = input_lut(*input_quantization(graph))
    shape = tuple(graph.input.shape[1:])

    def quantize(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise ModelError(f"images must be uint8 pixels 0..255, got {images.dtype.name}")
        return lut[images].reshape((len(images), *shape))

    return quantize


def _int8_loader(name: str, open_model: Callable[[Path], Any], batch_native: bool, notes: str
                 ) -> Callable[[ModelFolder, Card, Any], Runner]:
    """A loader for ``model_int8.tflite`` under ``open_model(path)`` (an object with ``run(x_int8)``)."""

    def load(folder: ModelFolder, card: Card, variant: Any) -> Runner:
        from ..core.store import not_quantized

        path = folder.int8_path
        if not path.is_file():
            raise not_quantized(folder.variant, path)
        quantize = _int8_input(int8_graph(path, folder.variant))
        model = open_model(path)

        def raw(images: np.ndarray) -> np.ndarray:
            return model.run(quantize(images))

        return Runner(name, path, raw, _classes(raw), batch_native, notes)

    return load


def _open_litert_ref(path: Path) -> Any:
    from .litert import LiteRTModel

    return LiteRTModel(path, reference=True)


def _open_litert(path: Path) -> Any:
    from .litert import LiteRTModel

    return LiteRTModel(path, reference=False, threads=1)


def _open_tflm(path: Path) -> Any:
    from .tflm import TFLMModel

    return TFLMModel(path)


def _open_native(path: Path) -> Any:
    from .native_host import NativeModel

    return NativeModel(path)


def _hooks(variant: Any, runtime: str, folder: ModelFolder, *names: str) -> list[Callable[..., Any]]:
    missing = [n for n in names if getattr(variant, n, None) is None]
    if missing:
        raise ModelError(f"runtime {runtime} needs the {' and '.join(missing)} hook of variant '{folder.variant}' "
                         "(pass the registered variant to Runtime.load)")
    return [getattr(variant, n) for n in names]


def _load_keras(folder: ModelFolder, card: Card, variant: Any) -> Runner:
    """The float model through the variant's hooks, else ``runtimes.keras`` (``model.keras``)."""
    import numpy as np

    from . import keras

    model = (getattr(variant, "load", None) or keras.load)(folder.path)
    path = folder.float_path(card)
    hook = getattr(variant, "predict_float", None)
    if hook is not None:
        def scores(images: np.ndarray) -> np.ndarray:
            return np.asarray(hook(model, images))

        return Runner("keras", path, scores, _classes(scores), True, f"{folder.variant}'s float model through its "
                      "predict hook")

    # raw: model.predict, as the card's float accuracy; predict: the direct call, without predict's set-up cost
    return Runner("keras", path, lambda images: keras.predict(model, images),
                  lambda images: argmax_rows(keras.call(model, images)), True, "tf-keras float32, direct model call")


def _load_sklearn(folder: ModelFolder, card: Card, variant: Any) -> Runner:
    """The linear variant's float model through its ``load`` and ``predict_float`` hooks."""
    import numpy as np

    load, predict_float = _hooks(variant, "sklearn", folder, "load", "predict_float")
    model = load(folder.path)

    def scores(images: np.ndarray) -> np.ndarray:
        return np.asarray(predict_float(model, images))

    return Runner("sklearn", folder.float_path(card), scores, _classes(scores), True,
                  f"{folder.variant}'s float model through its predict hook")


def _load_fixed(folder: ModelFolder, card: Card, variant: Any) -> Runner:
    """The fixed-point tables through the variant's ``quantized_runners`` hook (its first entry)."""
    import numpy as np

    from ..core.store import not_quantized

    path = folder.quantized_path(card.kind)
    if not path.is_file():
        raise not_quantized(folder.variant, path)
    (hook,) = _hooks(variant, "fixed-point", folder, "quantized_runners")
    label, fn = next(iter(hook(folder.path).items()))

    def scores(images: np.ndarray) -> np.ndarray:
        return np.asarray(fn(images))

    return Runner("fixed-point", path, scores, _classes(scores), True,
                  f"{label}: int8 weights / int32 accumulators in numpy, as the C computes")


# ----------------------------------------------------------------------------------------------- registry

RUNTIMES: dict[str, Runtime] = {rt.name: rt for rt in (
    Runtime("keras", "neural", "float", "the float tf-keras model on pixels / 255", _load_keras),
    Runtime("litert-ref", "neural", "int8", "LiteRT's reference kernels on the int8 .tflite (validate's reference)",
            _int8_loader("litert-ref", _open_litert_ref, False, "LiteRT reference kernels (BUILTIN_REF)"),
            run=run_litert),
    Runtime("litert", "neural", "int8", "LiteRT's optimized kernels on the int8 .tflite, one thread",
            _int8_loader("litert", _open_litert, False, "LiteRT builtin optimized kernels, 1 thread"),
            run=_run_litert_optimized),
    Runtime("tflm", "neural", "int8", "TFLM's kernels (the tflite-micro wheel) on the int8 .tflite",
            _int8_loader("tflm", _open_tflm, False, "TFLM reference kernels (tflite-micro package)"),
            run=run_tflm, on_device=True),
    Runtime("native", "neural", "int8", "the native backend's generated C, compiled as a host library",
            _int8_loader("native", _open_native, True, "generated C99 as a shared library (ctypes)"),
            run=run_native, on_device=True),
    Runtime("sklearn", "linear", "float", "the linear variant's float model (scikit-learn)", _load_sklearn),
    Runtime("fixed-point", "linear", "fixed", "the linear variant's integer tables, as the linear backend's C "
            "computes them", _load_fixed, on_device=True),
)}
KINDS = tuple(dict.fromkeys(rt.kind for rt in RUNTIMES.values()))


def get_runtime(name: str) -> Runtime:
    """The runtime called ``name``.

    Raises:
        EdgeDigitError: no such runtime (lists the valid names).
    """
    try:
        return RUNTIMES[name]
    except KeyError:
        raise EdgeDigitError(f"unknown runtime '{name}'; valid: {', '.join(RUNTIMES)}") from None


def runtimes_for(kind: str) -> list[str]:
    """The runtimes that apply to a model of ``kind``, in registry order.

    Raises:
        ModelError: an unknown kind.
    """
    if kind not in KINDS:
        raise ModelError(f"unknown model kind {kind!r}; host runtimes exist for {' and '.join(KINDS)} models")
    return [name for name, rt in RUNTIMES.items() if rt.kind == kind]


def float_runtime(kind: str) -> str:
    """The runtime of the float model of ``kind`` (``keras`` or ``sklearn``)."""
    return next(n for n in runtimes_for(kind) if RUNTIMES[n].form == "float")


def validated_for(kind: str) -> list[str]:
    """The quantized runtimes ``validate`` compares for ``kind``, the reference first.

    The reference (:data:`REFERENCE`) when it applies, then every runtime that runs a backend's code; the
    first of them is the reference of a kind the reference does not apply to (e.g. ``fixed-point``).
    """
    names = runtimes_for(kind)
    first = [REFERENCE] if REFERENCE in names else []
    return first + [n for n in names if RUNTIMES[n].on_device and n != REFERENCE]


def deployed_order() -> tuple[str, ...]:
    """The runtimes whose figures stand for a deployed model: those running a backend's code first, then the
    other quantized ones (the reference excluded)."""
    quantized = [n for n, rt in RUNTIMES.items() if rt.form != "float" and n != REFERENCE]
    return tuple([n for n in quantized if RUNTIMES[n].on_device] + [n for n in quantized if not RUNTIMES[n].on_device])


def describe(names: list[str] | tuple[str, ...] | None = None) -> str:
    """``name: description`` of each runtime (default: all), ``; ``-separated (for the CLI help)."""
    return "; ".join(f"{n}: {RUNTIMES[n].description}" for n in (names or RUNTIMES))
