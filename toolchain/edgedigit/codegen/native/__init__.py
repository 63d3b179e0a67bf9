"""The ``native`` backend: an int8 .tflite graph compiled to plain C99 (no interpreter, no heap).

:func:`prepare` does, once per model, what TFLM does in its Prepare functions and more: it checks the graph
(:func:`check_graph`), lowers every op through the op registry (:mod:`.ops`: shape and quantization
checks, requantization multipliers and shifts with ``frexp`` in double precision (:mod:`.prepare`),
activation ranges, paddings, softmax constants, the FC input offset folded into the bias, the weights laid
out for the kernels) and plans the activation arena from tensor lifetimes (:mod:`.planner`). The result, a
:class:`NativeProgram`, serves both the flash/RAM budget and :func:`generate`. The Jinja templates in
``firmware_templates/native/`` only loop and substitute; the arithmetic lives in the hand-written kernel
library ``edgedigit_kernels.c`` beside them, and, for the operators registered with a kernel family
(ADD, MUL, PAD, CONCATENATION, MEAN, QUANTIZE), in ``edgedigit_kernels_<family>.c``, which a project gets
only when one of its ops needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...core.errors import ModelError, UnsupportedOpError
from ...core.graph import Graph
from ...core.int8 import IMAGE_BYTES, check_classes, input_lut, io_spec
from ...core.paths import templates_dir
from ..render import banner, c_identifier, render
from ..runner import array_bytes, c_string, info_context
from . import planner
from .ops import (
    OpContext,
    Step,
    fast_requantize,
    kernel_library_files,
    lower,
    lowers,
    pack_conv_weights,
    pack_fc_weights,
    supported_ops,
    unsupported,
    where,
)
from .planner import MemoryPlan
from .prepare import (
    ACTIVATIONS,
    FC_PRODUCTS,
    activation_range,
    channel_multipliers,
    pad_and_out,
    quantize_multiplier,
    round_half_away,
    softmax_params,
    wrap_int32,
)

__all__ = [
    "ACTIVATIONS", "ALIGNMENT", "FC_PRODUCTS", "IMAGE_BYTES", "KERNEL_FILES", "ROM_HEADER", "SUPPORTED_OPS", "MemoryPlan",
    "NativeProgram", "inverse_lut",
    "OpContext", "Step", "activation_range", "channel_multipliers", "check_graph", "generate", "generate_graph",
    "constant_arrays", "fast_requantize", "lowers", "model_data", "pack_conv_weights",
    "pack_fc_weights", "pad_and_out", "plan", "planner", "prepare",
    "quantize_multiplier",
    "round_half_away", "softmax_params", "wrap_int32",
]

SUPPORTED_OPS = supported_ops()  # every operator with a lowering in ops.py, in registration order
KERNEL_FILES = ("edgedigit_kernels.h", "edgedigit_kernels.c")
# The runtime header the kernels include for EDGEDIGIT_ROM (every firmware project has it: generate_graph adds it
# for the graph code built alone, the host runner and the emulator harness).
ROM_HEADER = "edgedigit_rom.h"
ALIGNMENT = 4
_wrap_int32 = wrap_int32  # the name tests/test_reliability_qmath.py imports


@dataclass(frozen=True)
class NativeProgram:
    """A graph checked, lowered and planned: everything the budget and the generator need.

    Attributes:
        graph: the int8 model.
        steps: one lowered op per graph op, in run order.
        plan: the static activation arena.
        weights_bytes: bytes of the model's constant tensors (weights and biases), as the budget counts them.
        input_in_place: the runner keeps the loaded image in the arena's input bytes (planned alive for the
            whole run): it maps the raw pixels to int8 in place before a run and back after it (the input
            table is one to one), so the image is held once, not twice (the Uno's 2 KB).
    """

    graph: Graph
    steps: tuple[Step, ...]
    plan: MemoryPlan
    weights_bytes: int
    input_in_place: bool = False

    @property
    def arena_bytes(self) -> int:
        """The size of the activation arena."""
        return self.plan.arena_bytes

    @property
    def ram_tables_bytes(self) -> int:
        """Bytes of the constant arrays the kernels read as plain memory (``Step.rom`` False): on AVR avr-gcc
        copies them to SRAM; every other array is ``EDGEDIGIT_ROM``."""
        return sum(len(array_bytes(ctype, values)) for s in self.steps if not s.rom for ctype, _, values in s.arrays)

    @property
    def libraries(self) -> tuple[str, ...]:
        """The kernel families the steps need beyond ``edgedigit_kernels`` (sorted)."""
        return tuple(sorted({s.library for s in self.steps if s.library}))

    @property
    def kernel_files(self) -> tuple[str, ...]:
        """Every kernel file the program's C needs: :data:`KERNEL_FILES`, then each family's header and source."""
        return KERNEL_FILES + tuple(f for lib in self.libraries for f in kernel_library_files(lib))


def check_graph(graph: Graph) -> None:
    """Refuse what the native backend cannot compile, naming the model file and the reason.

    The operators are checked first, so a model with an op the backend lacks is told which op, whatever its
    other tensors hold.

    Raises:
        UnsupportedOpError: an operator outside :data:`SUPPORTED_OPS`.
        ModelError: not one int8 input and one int8 output, or an activation that is not int8.
    """
    if not graph.is_full_int8():
        _refuse_float_edges(graph)  # float at the edges (QUANTIZE from float, DEQUANTIZE): named with its op
    supported = supported_ops()
    for name in graph.op_names():
        if name not in supported:
            raise unsupported(graph, name)
    spec = io_spec(graph)
    if spec.input_kind == "uint8":
        raise ModelError(f"{graph.path}: the native backend takes an int8 input (this one is uint8); convert with "
                         "inference_input_type=tf.int8")
    odd = next((t for t in graph.tensors if t.dtype not in ("int8", "int32")), None)
    if odd is not None:
        raise ModelError(f"{graph.path}: tensor {odd.index} ({odd.name or 'unnamed'}) is {odd.dtype}; the native "
                         "backend computes int8 activations with int32 biases only")


def _refuse_float_edges(graph: Graph) -> None:
    """Name the op when a not-full-int8 graph converts float at its edges (QUANTIZE from float32, DEQUANTIZE).

    Raises:
        UnsupportedOpError: such an op (the native backend's contract is int8 input and int8 output).
    """
    for op in graph.ops:
        t_in = graph.tensors[op.inputs[0]] if op.inputs else None
        if op.opcode == "DEQUANTIZE" or (op.opcode == "QUANTIZE" and t_in is not None and t_in.dtype == "float32"):
            t_out = graph.tensors[op.outputs[0]]
            raise UnsupportedOpError(
                f"{where(graph, op)}: {t_in.dtype if t_in else '?'} -> {t_out.dtype} is not supported by the native "
                "backend: its contract is int8 input and int8 output (the firmware dequantizes the int8 output "
                "with its scale and zero point); convert the model with inference_input_type=tf.int8 and "
                "inference_output_type=tf.int8")


def prepare(graph: Graph, alignment: int = ALIGNMENT, fc_product: str = "float32",
            input_in_place: bool = False) -> NativeProgram:
    """Check, lower and plan ``graph`` once.

    Args:
        graph: the int8 model (``edgedigit.core.graph.load_graph``).
        alignment: every arena offset is a multiple of this.
        fc_product: how a per-tensor FULLY_CONNECTED multiplies input and filter scale (:data:`FC_PRODUCTS`):
            ``"float32"`` (default) as the TFLM that runs on devices, ``"double"`` as the ``tflite-micro``
            Python wheel (the host reference ``run_tflm``), to compare with it bit for bit.
        input_in_place: hold the loaded image in the arena (:attr:`NativeProgram.input_in_place`) when the
            model is a digit classifier whose input table is one to one; otherwise (or False) the runner keeps
            its own copy of the input and the arena's input bytes are reused during a run.

    Returns:
        The program, for :func:`generate` / :func:`generate_graph` and the flash/RAM budget.

    Raises:
        ModelError: not full int8, not one input and one output, shapes or quantization a kernel cannot take.
        UnsupportedOpError: an operator, fused activation or option the backend lacks (named in the message).
    """
    if fc_product not in FC_PRODUCTS:
        raise ValueError(f"fc_product must be one of {FC_PRODUCTS}, not {fc_product!r}")
    check_graph(graph)
    steps = tuple(lower(graph, op, n, fc_product) for n, op in enumerate(graph.ops))
    spec = io_spec(graph)
    in_place = input_in_place and spec.image and inverse_lut(spec) is not None
    mp = planner.plan_steps(steps, graph.tensors, graph.inputs, graph.outputs, alignment, keep_inputs=in_place)
    weights = int(sum(t.nbytes for t in graph.tensors if t.data is not None))
    return NativeProgram(graph, steps, mp, weights, in_place)


def inverse_lut(spec: Any) -> np.ndarray | None:
    """The raw pixel of each int8 input value (index: the value + 128) when the input table of ``spec`` (an
    ``IoSpec``) is one to one, else None (then the image cannot be mapped back after a run)."""
    lut = input_lut(spec.input_scale, spec.input_zero_point).astype(np.int64)
    if len(set(lut.tolist())) != len(lut):
        return None
    inverse = np.zeros(256, np.uint8)
    inverse[lut + 128] = np.arange(256)
    return inverse


def plan(graph: Graph, alignment: int = ALIGNMENT) -> MemoryPlan:
    """The static arena of ``graph``: one buffer per activation tensor, RESHAPE outputs aliasing their input.

    Step ``i`` is op ``i``; the graph input is alive from step 0 and the output until one step after the
    last op (the runner reads it). Same as ``prepare(graph, alignment).plan``; raises like :func:`prepare`.
    """
    return prepare(graph, alignment).plan


# ---- code generation -------------------------------------------------------------------------------------------

def _kernel_sources(program: NativeProgram) -> dict[str, str]:
    folder = templates_dir() / "native"
    return {name: (folder / name).read_text() for name in program.kernel_files}


def _program_for(graph: Graph, program: NativeProgram | None) -> NativeProgram:
    if program is None:
        return prepare(graph)
    if program.graph is not graph:
        raise ValueError(f"the native program was prepared from {program.graph.path}, not from {graph.path}")
    return program


def generate_graph(graph: Graph, *, variant: str, source_name: str,
                   program: NativeProgram | None = None) -> dict[str, str]:
    """The graph code and the kernel library, without the firmware runner (used by the host runner too).

    Args:
        graph: the int8 model.
        variant: the model's variant name (shown in the header).
        source_name: how the banner names the source model file.
        program: ``prepare(graph)`` if already computed (else it is computed here).

    Returns:
        File name -> content: the kernels (``edgedigit_kernels.{h,c}`` and the families the ops need),
        ``edgedigit_native_model.{h,c}`` and :data:`ROM_HEADER`.

    Raises:
        ModelError, UnsupportedOpError: as :func:`prepare`.
    """
    program = _program_for(graph, program)
    ctx = _context(program, variant, source_name)
    files = _kernel_sources(program)
    files["edgedigit_native_model.h"] = render("native/edgedigit_native_model.h.j2", **ctx)
    files["edgedigit_native_model.c"] = render("native/edgedigit_native_model.c.j2", **ctx)
    files[ROM_HEADER] = (templates_dir() / "runtime" / ROM_HEADER).read_text()
    return files


def generate(graph: Graph, *, variant: str, source_name: str,
             program: NativeProgram | None = None, model_id: str | None = None) -> dict[str, str | bytes]:
    """All ``src/`` files of the native backend (COMMON contract 6): kernels, graph code, runner.

    Args:
        graph: the int8 model (``edgedigit.core.graph.load_graph``).
        variant: the model's variant name (shown by ``edgedigit_model_info``).
        source_name: how the banner names the source model file.
        program: ``prepare(graph)`` if already computed (the export stage budgets with it first).
        model_id: what ``profile%`` reports as the model (an MLPerf Tiny id); default the variant.

    Returns:
        File name in ``src/`` -> content.

    Raises:
        ModelError: not one int8 input and one int8 output, inconsistent shapes.
        UnsupportedOpError: an operator or fused activation the backend lacks (named in the message).
    """
    program = _program_for(graph, program)
    files: dict[str, str | bytes] = dict(generate_graph(graph, variant=variant, source_name=source_name,
                                                        program=program))
    del files[ROM_HEADER]  # a runtime file: the project's src/ gets it with the runtime
    spec = io_spec(graph)
    if spec.image:
        check_classes(spec.outputs, str(graph.path))
    files["edgedigit_native_runner.c"] = render(
        "native/edgedigit_native_runner.c.j2", banner_c=banner(source_name, graph.sha256, "c"), sha256=graph.sha256,
        arena_bytes=program.plan.arena_bytes, lut=input_lut(spec.input_scale, spec.input_zero_point),
        in_place=program.input_in_place, unlut=inverse_lut(spec) if program.input_in_place else None,
        **info_context(spec, variant, model_id))
    return files


def constant_arrays(program: NativeProgram) -> list[tuple[str, str, Any]]:
    """The model's constant C arrays in the order the generated code defines (and checksums) them:
    (C type, C name, values)."""
    return [(ctype, c_identifier(aname), values) for s in program.steps for ctype, aname, values in s.arrays]


def model_data(program: NativeProgram) -> list[bytes]:
    """The bytes the firmware's boot check covers, in its order: the input table (image models), then every
    constant array (see ``edgedigit_model_region`` in the runner)."""
    spec = io_spec(program.graph)
    lut = [input_lut(spec.input_scale, spec.input_zero_point).tobytes()] if spec.image else []
    return lut + [array_bytes(ctype, values) for ctype, _, values in constant_arrays(program)]


def _c_string(text: str) -> str:
    return c_string(text)


def _context(program: NativeProgram, variant: str, source_name: str) -> dict[str, Any]:
    graph, mp = program.graph, program.plan

    def pointer(operand: int | str) -> str:
        return f"g_arena.bytes + {mp.offsets[operand]}" if isinstance(operand, int) else c_identifier(operand)

    def argument(operand: int | str | tuple[int | str, ...]) -> str:
        if isinstance(operand, tuple):
            return "(const int8_t *const[]){" + ", ".join(pointer(o) for o in operand) + "}"
        return pointer(operand)

    calls = []
    arrays = []
    rom = [s.rom for s in program.steps for _ in s.arrays]  # constant_arrays' order
    for (ctype, name, values), in_rom in zip(constant_arrays(program), rom, strict=True):
        # int8 weights are read with word loads (LDM) by the Cortex-M4 kernels: word aligned
        arrays.append({"ctype": ctype, "name": name, "data": values, "size": values.size,
                       "aligned": ctype == "int8_t" and name.endswith("_weights"), "rom": in_rom})
    for i, s in enumerate(program.steps):
        t_in, t_out = s.inputs[0], s.outputs[0]
        shapes = " + ".join(str(graph.tensors[t].shape) for t in s.inputs)
        comment = f"op {s.op.index}: {s.op.opcode} {shapes} -> {graph.tensors[t_out].shape}"
        calls.append({"opcode": s.op.opcode, "name": c_identifier(f"kOp{i}"), "params": s.params, "comment": comment,
                      "ctype": s.struct, "func": s.kernel, "returns_status": s.can_fail,
                      "in_offset": mp.offsets[t_in], "out_offset": mp.offsets[t_out],
                      "in_offsets": [mp.offsets[t] for t in s.inputs],
                      "out_offsets": [mp.offsets[t] for t in s.outputs],
                      "args": [argument(o) for o in (s.operands or (*s.inputs, *s.outputs))]})
    return {
        "banner_c": banner(source_name, graph.sha256, "c"),
        "variant": variant,
        "calls": calls,
        "struct_types": sorted({c["ctype"] for c in calls if c["ctype"]}),
        "arrays": arrays,
        "kernel_headers": [kernel_library_files(lib)[0] for lib in program.libraries],
        "arena_bytes": mp.arena_bytes,
        "lower_bound": mp.lower_bound,
        "input_offset": mp.offsets[graph.inputs[0]],
        "output_offset": mp.offsets[graph.outputs[0]],
        "input_bytes": graph.input.nbytes,
        "output_bytes": graph.output.nbytes,
        "source_name_c": _c_string(source_name),
    }
