"""Host runtimes: every way edgedigit runs a model on this machine.

The registry (:mod:`.registry`, where a new runtime is added): :data:`RUNTIMES` maps a name to a
:class:`Runtime` whose ``load(folder, variant)`` gives a :class:`Runner` (``raw(images)``, ``predict(images)``
on raw uint8 images); ``describe()`` lists them (the CLI help uses it).

The engines, one module each: :mod:`.litert` (LiteRT, reference and optimized kernels), :mod:`.tflm` (the
tflite-micro wheel, arena measurement), :mod:`.native_host` (the native backend's C as a host library, and on
an emulated Cortex-M4), :mod:`.keras` (the float tf-keras model).

The low-level functions take a model path and a batch already in the model's input dtype and return its raw
outputs (N, C): ``run_litert`` (LiteRT reference kernels), ``run_tflm``, ``run_native``, and
``run_int8(name, path, x)`` for any int8 runtime by name; ``tflm_arena_bytes(path)`` measures TFLM's arena.
Importing this package loads no interpreter, no TensorFlow and no compiler (each is loaded when used).
"""

from .registry import (
    FORMS,
    KINDS,
    REFERENCE,
    RUNTIMES,
    Runner,
    Runtime,
    argmax_rows,
    deployed_order,
    describe,
    float_runtime,
    get_runtime,
    int8_graph,
    run_int8,
    run_keras,
    run_litert,
    run_native,
    run_tflm,
    runtimes_for,
    tflm_arena_bytes,
    validated_for,
)

__all__ = [
    "FORMS", "KINDS", "REFERENCE", "RUNTIMES", "Runner", "Runtime", "argmax_rows", "deployed_order", "describe",
    "float_runtime", "get_runtime", "int8_graph", "run_int8", "run_keras", "run_litert", "run_native", "run_tflm", "runtimes_for",
    "tflm_arena_bytes", "validated_for",
]
