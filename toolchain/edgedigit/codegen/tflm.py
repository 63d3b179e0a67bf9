"""C++ for the ``tflm`` backend: the .tflite as an aligned C array, an op resolver with exactly the model's
ops, a measured arena, the input LUT (digit classifiers) and a runner implementing ``edgedigit_model.h``.

Python computes everything (bytes, op list, arena size, LUT); the templates in ``firmware_templates/tflm/``
only substitute. The runner checks itself at start-up: it runs a few fixed inputs
(:func:`self_check_inputs`) and compares every int8 output with what TFLM computed on the host, so a
library that computes the model differently (e.g. per-channel FULLY_CONNECTED on an old TFLM) refuses to
run instead of misclassifying in silence.

This module is a pure function of its inputs: it runs no interpreter. The export stage measures the arena
and computes the self-check's expected outputs with the host TFLM and passes both in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.errors import ModelError, UnsupportedOpError
from ..core.graph import Graph
from ..core.int8 import IoSpec, check_classes, input_lut, io_spec
from .render import banner, c_array_body, render, sanitize_identifier
from .runner import info_context

# The arena: TFLM's own allocation report for this model plus a margin for other TFLM versions and for
# optimized kernels' scratch buffers (CMSIS-NN, ESP-NN), rounded up to 16 bytes.
ARENA_MARGIN_FRACTION = 0.25
ARENA_MARGIN_MIN_BYTES = 2048

# Builtin operators whose MicroMutableOpResolver method is not the plain CamelCase of the name.
_ADD_EXCEPTIONS = {
    "BATCH_MATMUL": "AddBatchMatMul",
    "CUMSUM": "AddCumSum",
    "PADV2": "AddPadV2",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
}


# Builtin operators every TFLM the boards pin (tflite-micro 2023-2026, Arduino_TensorFlowLite, esp-tflite-micro)
# declares an int8-only registration for, ``tflite::Register_<OP>_INT8()``: with CMSIS-NN it links only the
# int8 kernel (TFLM 90b983c + CMSIS-NN: ~22 KB less flash on a conv net, same results); elsewhere the header
# maps it to the generic registration. Used where every use of the op in the model is int8 (:func:`registrations`).
INT8_REGISTRATIONS = frozenset({"ADD", "AVERAGE_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
                                "MAX_POOL_2D", "MUL", "SOFTMAX", "SVDF"})
_BIAS_INPUT = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2}  # int32 by design


def registrations(graph: Graph) -> dict[str, str]:
    """Op name -> the registration argument of its resolver call: ``tflite::Register_<OP>_INT8()`` when the op
    has an int8-only variant and every tensor of every use in ``graph`` (bias aside) is int8, else ""."""
    out = {}
    for name in graph.op_names():
        uses = [op for op in graph.ops if op.opcode == name]
        int8 = name in INT8_REGISTRATIONS and all(
            graph.tensors[t].dtype == "int8"
            for op in uses for i, t in enumerate([*op.inputs, *op.outputs])
            if t >= 0 and not (i < len(op.inputs) and i == _BIAS_INPUT.get(name)))
        out[name] = f"tflite::Register_{name}_INT8()" if int8 else ""
    return out


def add_method(op: str) -> str:
    """The ``MicroMutableOpResolver`` method that registers builtin ``op``: ``CONV_2D`` -> ``AddConv2D``."""
    if op in _ADD_EXCEPTIONS:
        return _ADD_EXCEPTIONS[op]
    parts = [p.upper() if p[:1].isdigit() else p.capitalize() for p in op.split("_")]
    return "Add" + "".join(parts)


def arena_margin(measured: int) -> int:
    """The margin added to the measured arena: 25 % of it, at least 2 KiB."""
    return max(ARENA_MARGIN_MIN_BYTES, math.ceil(measured * ARENA_MARGIN_FRACTION))


def arena_bytes(measured: int) -> int:
    """The arena constant: measured + margin, rounded up to a multiple of 16."""
    total = measured + arena_margin(measured)
    return (total + 15) // 16 * 16


def check_ops(graph: Graph, available: frozenset[str] | set[str] | None, library: str = "the TFLM library") -> list[str]:
    """The model's operators in order of first use, each one checked against ``available``.

    Raises:
        UnsupportedOpError: a custom op, or an op the board's TFLM library does not provide (named).
    """
    ops = graph.op_names()
    for op in ops:
        if op.startswith("CUSTOM") or op.startswith("BUILTIN_"):
            raise UnsupportedOpError(f"{graph.path}: operator {op} is not a TFLM builtin; edgedigit exports builtin ops only")
    if available is not None:
        missing = [op for op in ops if op not in available]
        if missing:
            raise UnsupportedOpError(
                f"{graph.path}: {library} does not provide {', '.join(missing)} (the model uses {', '.join(ops)}); "
                f"use --backend native or a model without {', '.join(missing)}")
    return ops


def per_channel_fully_connected(graph: Graph) -> bool:
    """True when some FULLY_CONNECTED weight tensor carries one scale per output channel."""
    return any(op.opcode == "FULLY_CONNECTED" and len(op.inputs) > 1 and op.inputs[1] >= 0
               and graph.tensors[op.inputs[1]].per_channel for op in graph.ops)


@dataclass(frozen=True)
class SelfCheck:
    """The runner's start-up check: fixed inputs and the int8 outputs TFLM computes for them on the host."""

    images: np.ndarray  # uint8 (K, input bytes): self_check_inputs(), as the device receives them
    expected: np.ndarray  # int8 (K, outputs): TFLM's outputs on the host


SELF_CHECK_RANDOM_BYTES = 4096  # inputs larger than this get one seeded random check vector, smaller ones three


def self_check_inputs(spec: IoSpec) -> np.ndarray:
    """The start-up check's inputs as the device receives them (uint8 rows of ``spec.input_bytes``).

    Digit classifiers: :func:`self_check_images`. Other models: seeded random bytes (three vectors, or one
    when the input is larger than 4 KiB: they live in flash).
    """
    if spec.image:
        return self_check_images().reshape(3, -1)
    count = 3 if spec.input_bytes <= SELF_CHECK_RANDOM_BYTES else 1
    return np.random.default_rng(1234).integers(0, 256, (count, spec.input_bytes), dtype=np.uint8)


def device_input(graph: Graph, spec: IoSpec, rows: np.ndarray) -> np.ndarray:
    """Rows of bytes as the device receives them -> the model's input batch (raw pixels through the table)."""
    rows = np.asarray(rows, np.uint8).reshape(len(rows), -1)
    if spec.image:
        x = input_lut(spec.input_scale, spec.input_zero_point)[rows]
    else:
        x = rows.view(spec.input_dtype)
    return x.reshape((len(rows), *graph.input.shape[1:]))


def self_check_images() -> np.ndarray:
    """Three fixed 28 x 28 images: a ring (0), a bar (1) and a diagonal stroke (7-ish). Deterministic."""
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float64)
    r = np.hypot(yy - 13.5, xx - 13.5)
    ring = np.clip(255 * (1 - np.abs(r - 8) / 2.5), 0, 255)
    bar = np.clip(255 * (1 - np.abs(xx - 14 - (yy - 14) * 0.15) / 2.0), 0, 255) * ((yy > 4) & (yy < 24))
    top = np.clip(255 * (1 - np.abs(yy - 6) / 1.8), 0, 255) * ((xx > 6) & (xx < 22))
    diag = np.clip(255 * (1 - np.abs(xx - (21 - (yy - 6) * 0.55)) / 1.8), 0, 255) * ((yy >= 6) & (yy < 24))
    seven = np.maximum(top, diag)
    return np.stack([ring, bar, seven]).round().astype(np.uint8)


def model_facts(graph: Graph) -> IoSpec:
    """The I/O contract of a model the tflm runner feeds (``core.int8.io_spec``; a digit classifier's class
    count is checked).

    Raises:
        ModelError: not one int8/uint8 input and one int8 output, each quantized per tensor.
    """
    spec = io_spec(graph)
    if spec.image:
        check_classes(spec.outputs, str(graph.path))
    return spec


def model_array_name(variant: str) -> str:
    """``g_<variant>_model_data`` as a valid C identifier."""
    return f"g_{sanitize_identifier(variant)}_model_data"


def generate(graph: Graph, *, variant: str, source_name: str, measured_arena: int, self_check: SelfCheck,
             available_ops: frozenset[str] | None = None, library: str = "the TFLM library",
             include: str = "", model_id: str | None = None) -> dict[str, str | bytes]:
    """Render the tflm backend's sources for ``src/``.

    Args:
        graph: the int8 model (``edgedigit.core.graph.load_graph``); its file is embedded byte for byte.
        variant: the variant name reported by the firmware and used in the array name.
        source_name: the model file named in the banners.
        measured_arena: the arena TFLM allocates for this model on the host (the constant adds a margin).
        self_check: start-up check vectors: :func:`self_check_images` and host TFLM's int8 outputs for them.
        available_ops: the builtin ops the board's TFLM library provides (None: do not check).
        library: the library's name, for error messages.
        include: a header the library wants included first (e.g. ``TensorFlowLite.h``), or "".
        model_id: what ``profile%`` reports as the model (an MLPerf Tiny id); default the variant.

    Returns:
        File name in ``src/`` -> content: ``edgedigit_model_data.{h,cc}``, ``edgedigit_input_lut.h``,
        ``edgedigit_op_resolver.h``, ``edgedigit_model_tflm.cc``.

    Raises:
        ModelError: not one int8/uint8 input and one int8 output.
        UnsupportedOpError: an op the library does not provide.
    """
    spec = model_facts(graph)
    ops = check_ops(graph, available_ops, library)
    raw = graph.path.read_bytes()
    if len(raw) != graph.size_bytes:
        raise ModelError(f"{graph.path}: the file changed since it was read ({len(raw)} != {graph.size_bytes} bytes)")
    lut = input_lut(spec.input_scale, spec.input_zero_point)
    regs = registrations(graph)
    ctx = {
        **info_context(spec, variant, model_id),
        "banner_c": banner(source_name, graph.sha256, "c"),
        "variant": variant,
        "sha256": graph.sha256,
        "array": model_array_name(variant),
        "model_len": len(raw),
        "model_bytes": c_array_body(np.frombuffer(raw, np.uint8), per_line=16, fmt="0x{:02x}"),
        "ops": [{"name": op, "method": add_method(op), "registration": regs[op]} for op in ops],
        "measured_arena": measured_arena,
        "arena_margin": arena_margin(measured_arena),
        "arena_bytes": arena_bytes(measured_arena),
        "lut": lut,
        "include": include,
        "tflite_input_type": "kTfLiteUInt8" if spec.input_kind == "uint8" else "kTfLiteInt8",
        "input_tensor_bytes": graph.input.nbytes,
        "check_images": [img.ravel() for img in self_check.images],
        "check_expected": [row.ravel() for row in self_check.expected],
    }
    return {
        "edgedigit_model_data.h": render("tflm/edgedigit_model_data.h.j2", **ctx),
        "edgedigit_model_data.cc": render("tflm/edgedigit_model_data.cc.j2", **ctx),
        "edgedigit_input_lut.h": render("tflm/edgedigit_input_lut.h.j2", **ctx),
        "edgedigit_op_resolver.h": render("tflm/edgedigit_op_resolver.h.j2", **ctx),
        "edgedigit_model_tflm.cc": render("tflm/edgedigit_model_tflm.cc.j2", **ctx),
    }


def model_data(graph: Graph) -> list[bytes]:
    """The bytes the firmware's boot check covers, in its order: the .tflite file, then the input table
    (digit classifiers)."""
    spec = io_spec(graph)
    raw = graph.path.read_bytes()
    return [raw] + ([input_lut(spec.input_scale, spec.input_zero_point).tobytes()] if spec.image else [])
