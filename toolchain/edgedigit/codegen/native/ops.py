"""The native backend's op registry: one lowering per TFLite operator (or family of operators).

A lowering is registered with ``@lowers("OPCODE", ...)``. It gets an :class:`OpContext` (the graph, the op
and its position), checks the op's shapes and quantization (raising :class:`ModelError` or
:class:`UnsupportedOpError` that name the model file and the op), computes TFLM's Prepare values with
:mod:`.prepare`, and returns one :class:`Step`: the C kernel and its parameter struct, the struct's fields,
the constant arrays, the activation tensors it reads and writes, and whether the kernel can fail. The
registry is the whole list of supported operators: ``SUPPORTED_OPS`` is derived from it.

The kernels of the first operators live in ``edgedigit_kernels.c``, shipped with every native project. An
operator registered with ``library="<family>"`` has its kernel in ``edgedigit_kernels_<family>.{h,c}``,
which a project gets only when one of its ops needs it (so the projects of models without those ops do
not change by a byte).

Kernel calls: ``kernel(&params, <operands>)``; by default the operands are the arena pointers of the
step's ``inputs`` then ``outputs``. A step can list them explicitly (``operands``): a tensor index (its arena
pointer), a C expression (a constant array), or a tuple of those (passed as one ``const int8_t *const[]``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ...core.errors import ModelError, UnsupportedOpError
from ...core.graph import Graph, Op, Tensor
from .prepare import (
    activation_range,
    add_multipliers,
    broadcast_loops,
    channel_multipliers,
    constant_channels,
    mean_multiplier,
    mul_multiplier,
    pad_and_out,
    reduce_loops,
    requantize_multiplier,
    softmax_params,
    wrap_int32,
)

Operand = int | str | tuple[int | str, ...]


@dataclass(frozen=True)
class Step:
    """One op lowered to one kernel call.

    Attributes:
        op: the graph's op.
        kernel: the C function in ``edgedigit_kernels.c`` (``""`` for an alias step, which emits no call).
        struct: the C type of its parameter struct in ``edgedigit_kernels.h`` (``""`` for an alias step).
        params: the struct's fields, in the order they are emitted (name -> C value).
        arrays: the constant arrays the struct points to: (C type, C name, values).
        inputs: tensor indices of the activation inputs (in the arena), in the kernel's argument order.
        outputs: tensor indices of the activation outputs (in the arena).
        can_fail: the kernel returns a status (nonzero: the run stops with -1).
        alias: the output is the input's bytes reinterpreted (RESHAPE): no kernel, no arena of its own.
        operands: the kernel's arguments after the parameter struct, when not ``(*inputs, *outputs)``: a
            tensor index (its arena pointer), a C expression, or a tuple of those (one array of pointers).
        library: the kernel family (``edgedigit_kernels_<library>.{h,c}``); ``""``: ``edgedigit_kernels``.
            Set by :func:`lower` from the registration.
        rom: the kernel reads the step's constant arrays through ``EDGEDIGIT_ROM_*`` (``edgedigit_rom.h``), so
            they are ``EDGEDIGIT_ROM`` (kept in flash on AVR); False for arrays passed as plain operands
            (the constant inputs of ADD, MUL, CONCATENATION and the concatenation sizes), which avr-gcc copies
            to SRAM.
    """

    op: Op
    kernel: str
    struct: str
    params: dict[str, Any]
    arrays: list[tuple[str, str, np.ndarray]] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    can_fail: bool = False
    alias: bool = False
    operands: tuple[Operand, ...] = ()
    library: str = ""
    rom: bool = True


@dataclass(frozen=True)
class OpContext:
    """What a lowering gets: the graph, the op, and the op's position ``n`` (its C arrays are ``g_op<n>_*``).

    ``fc_product`` is how a per-tensor FULLY_CONNECTED multiplies input and filter scale (see
    :data:`.prepare.FC_PRODUCTS`): ``"float32"`` as the TFLM that runs on devices, ``"double"`` as the
    ``tflite-micro`` Python wheel's binary.
    """

    graph: Graph
    op: Op
    n: int
    fc_product: str = "float32"

    @property
    def where(self) -> str:
        """The model file and the op, to start an error message."""
        return where(self.graph, self.op)

    @property
    def prefix(self) -> str:
        """The C name prefix of this op's constant arrays."""
        return f"g_op{self.n}"

    def tensor(self, position: int) -> Tensor:
        """The op's input tensor at ``position`` (a weight, a bias or an activation)."""
        return self.graph.tensors[self.op.inputs[position]]

    def activation(self, index: int) -> Tensor:
        """Tensor ``index`` checked to be a per-tensor int8 activation (not a constant).

        Raises:
            ModelError: a constant, or not per-tensor int8.
        """
        t = self.graph.tensors[index]
        if t.data is not None:
            raise ModelError(f"{self.where}: tensor {t.index} ({t.name}) is a constant where the native "
                             "backend expects an activation")
        if t.dtype != "int8" or t.scale.size != 1 or t.zero_point.size != 1:
            raise ModelError(f"{self.where}: tensor {t.index} ({t.name}) is not a per-tensor int8 activation")
        return t

    def operand(self, index: int) -> Tensor:
        """Tensor ``index`` checked to be per-tensor int8: an activation, or a constant (ADD, MUL, CONCATENATION).

        Raises:
            ModelError: not per-tensor int8, or a constant without data.
        """
        t = self.graph.tensors[index]
        if t.dtype != "int8" or t.scale.size != 1 or t.zero_point.size != 1:
            raise ModelError(f"{self.where}: tensor {t.index} ({t.name}) is not a per-tensor int8 tensor")
        return t

    def activations(self) -> tuple[Tensor, Tensor]:
        """The op's first input and first output, checked as activations (one-input ops)."""
        return self.activation(self.op.inputs[0]), self.activation(self.op.outputs[0])

    def options(self, name: str, default: Any) -> Any:
        """An op option (``op.options``), or ``default`` when the model does not set it."""
        return self.op.options.get(name, default)

    def fused_activation(self, t_out: Tensor) -> tuple[int, int]:
        """(act_min, act_max) of the op's fused activation on the int8 output ``t_out``."""
        scale, zp = qparams(t_out)
        return activation_range(int(self.options("fused_activation_function", 0)), scale, zp, self.where)


Lowering = Callable[[OpContext], Step]
_REGISTRY: dict[str, Lowering] = {}
_LIBRARIES: dict[str, str] = {}  # opcode -> kernel family, for the ops whose kernel is not in edgedigit_kernels.c


def lowers(*opcodes: str, library: str = "") -> Callable[[Lowering], Lowering]:
    """Register the decorated function as the lowering of ``opcodes`` (TFLite builtin operator names).

    Args:
        opcodes: the operators.
        library: the kernel family: the kernel is in ``edgedigit_kernels_<library>.{h,c}`` (shipped only with
            the projects that use it); ``""``: in ``edgedigit_kernels.{h,c}``.

    Raises:
        ValueError: an opcode already has a lowering (a bug in this module).
    """

    def register(fn: Lowering) -> Lowering:
        for code in opcodes:
            if code in _REGISTRY:
                raise ValueError(f"native op {code} is registered twice ({_REGISTRY[code].__name__}, {fn.__name__})")
            _REGISTRY[code] = fn
            if library:
                _LIBRARIES[code] = library
        return fn

    return register


def supported_ops() -> tuple[str, ...]:
    """The registered operators, in registration order."""
    return tuple(_REGISTRY)


def where(graph: Graph, op: Op | None = None) -> str:
    """``<model file>`` or ``<model file> (op <index> <OPCODE>)`` to start an error message."""
    return f"{graph.path}" + (f" (op {op.index} {op.opcode})" if op is not None else "")


def unsupported(graph: Graph, opcode: str) -> UnsupportedOpError:
    """The error for an operator without a lowering: names the model file, the op and the supported ops."""
    return UnsupportedOpError(f"{graph.path}: operator {opcode} is not supported by the native backend "
                              f"(supported: {', '.join(supported_ops())})")


def lower(graph: Graph, op: Op, n: int, fc_product: str = "float32") -> Step:
    """Lower op ``n`` of ``graph`` through its registered lowering.

    ``fc_product``: see :class:`OpContext`.

    Raises:
        UnsupportedOpError: no lowering for the op, or an option the kernel lacks.
        ModelError: shapes or quantization the kernel cannot take.
    """
    fn = _REGISTRY.get(op.opcode)
    if fn is None:
        raise unsupported(graph, op.opcode)
    step = fn(OpContext(graph, op, n, fc_product))
    library = _LIBRARIES.get(op.opcode, "")
    return replace(step, library=library) if library != step.library else step


def kernel_library_files(library: str) -> tuple[str, str]:
    """The header and source of a kernel family (``edgedigit_kernels_<library>.h`` and ``.c``)."""
    return f"edgedigit_kernels_{library}.h", f"edgedigit_kernels_{library}.c"


def qparams(t: Tensor) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor quantized tensor."""
    return float(t.scale[0]), int(t.zero_point[0])


def nhwc(ctx: OpContext, t: Tensor) -> tuple[int, int, int, int]:
    """The shape of a 4-D NHWC tensor.

    Raises:
        ModelError: not 4-D.
    """
    if len(t.shape) != 4:
        raise ModelError(f"{ctx.where}: tensor {t.name} must be 4-D NHWC, has shape {t.shape}")
    return t.shape  # type: ignore[return-value]


def multipliers(ctx: OpContext, t_in: Tensor, w: Tensor, t_out: Tensor, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The requantization multipliers and shifts of a weighted op (see :func:`.prepare.channel_multipliers`).

    Raises:
        ModelError: the weights have neither one nor ``channels`` scales, or a nonzero zero point.
    """
    if w.scale.size not in (1, channels):
        raise ModelError(f"{ctx.where}: weight tensor {w.name} has {w.scale.size} scales for {channels} output "
                         "channels")
    if np.any(w.zero_point != 0):
        raise ModelError(f"{ctx.where}: weight tensor {w.name} has a nonzero zero point; int8 weights must be "
                         "symmetric")
    return channel_multipliers(float(t_in.scale[0]), w.scale, float(t_out.scale[0]), channels,
                               float32_product=ctx.op.opcode == "FULLY_CONNECTED" and w.scale.size == 1
                               and ctx.fc_product == "float32")


def bias(ctx: OpContext, channels: int) -> np.ndarray | None:
    """The op's constant int32 bias (input 2) as int64, or None when the op has none.

    Raises:
        ModelError: not ``channels`` constant int32 values.
    """
    op = ctx.op
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return None
    b = ctx.graph.tensors[op.inputs[2]]
    if b.data is None or b.dtype != "int32" or b.size != channels:
        raise ModelError(f"{ctx.where}: bias tensor {b.name} must be {channels} constant int32 values")
    return b.data.astype(np.int64).reshape(-1)


def pack_fc_weights(w: np.ndarray) -> np.ndarray:
    """Lay out FC weights (out, in) for the kernels: blocks of 4 rows interleaved by groups of 4 inputs,
    then each row's ``in % 4`` trailing inputs; leftover rows row by row (see ``edgedigit_kernels.c``)."""
    out_d, n = w.shape
    full = n // 4 * 4
    parts = []
    for c in range(0, out_d // 4 * 4, 4):
        block = w[c:c + 4]
        parts.append(block[:, :full].reshape(4, full // 4, 4).transpose(1, 0, 2).reshape(-1))
        parts.append(block[:, full:].reshape(-1))
    parts.append(w[out_d // 4 * 4:].reshape(-1))
    packed = np.concatenate(parts) if parts else np.zeros(0, w.dtype)
    return packed.astype(np.int8)


def pack_conv_weights(w: np.ndarray) -> np.ndarray:
    """Lay out CONV_2D weights (out, k_h, k_w, in) for the kernels (see ``edgedigit_kernels.c``): each
    channel's taps padded with zeros to a multiple of 4, the channels padded to an even count with a zero
    channel, then pairs of channels interleaved by groups of 4 taps."""
    out_c = w.shape[0]
    rows = w.reshape(out_c, -1)
    k = rows.shape[1]
    k4 = (k + 3) // 4 * 4
    padded = np.zeros(((out_c + 1) // 2 * 2, k4), np.int8)
    padded[:out_c, :k] = rows
    return padded.reshape(-1, 2, k4 // 4, 4).transpose(0, 2, 1, 3).reshape(-1).astype(np.int8)


def fast_requantize(w: np.ndarray, bias: np.ndarray, shift: np.ndarray, x_max: int = 128) -> bool:
    """Whether a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED can take the kernels' fast requantization
    (``edgedigit_kernels.c``): every channel's shift is at most -1 and its int32 sum (the bias, folded or not,
    plus inputs of magnitude at most ``x_max`` times the channel's weights, one channel per row of ``w``)
    stays below 2^30 in magnitude for every input."""
    rows = np.abs(w.astype(np.int64).reshape(w.shape[0], -1)).sum(axis=1)
    bound = np.abs(np.asarray(bias, np.int64)) + x_max * rows
    return bool(np.all(np.asarray(shift) <= -1) and np.all(bound < (1 << 30)))


# ---- the lowerings, in the order SUPPORTED_OPS lists them --------------------------------------------------------

@lowers("FULLY_CONNECTED")
def fully_connected(ctx: OpContext) -> Step:
    """FULLY_CONNECTED: packed weights, the input offset folded into the bias, per-tensor or per-channel."""
    t_in, t_out = ctx.activations()
    w = ctx.tensor(1)
    if w.data is None or w.dtype != "int8" or len(w.shape) != 2:
        raise ModelError(f"{ctx.where}: the weights must be a constant int8 matrix (got {w.dtype} {w.shape})")
    out_d, in_d = w.shape
    if t_in.size % in_d or t_out.size % out_d or t_in.size // in_d != t_out.size // out_d:
        raise ModelError(f"{ctx.where}: input {t_in.shape} and output {t_out.shape} do not match weights {w.shape}")
    _, in_zp = qparams(t_in)
    _, out_zp = qparams(t_out)
    mult, shift = multipliers(ctx, t_in, w, t_out, out_d)
    b = bias(ctx, out_d)
    folded = (b if b is not None else 0) + (-in_zp) * w.data.astype(np.int64).sum(axis=1)
    lo, hi = ctx.fused_activation(t_out)
    p = ctx.prefix
    return Step(ctx.op, "edgedigit_fully_connected", "edgedigit_fc_t", {
        "batches": t_in.size // in_d, "in_depth": in_d, "out_depth": out_d, "weights": f"{p}_weights",
        "bias": f"{p}_bias", "multiplier": f"{p}_multiplier", "shift": f"{p}_shift", "output_offset": out_zp,
        "act_min": lo, "act_max": hi, "fast_requantize": int(fast_requantize(w.data, wrap_int32(folded), shift)),
    }, [("int8_t", f"{p}_weights", pack_fc_weights(w.data)), ("int32_t", f"{p}_bias", wrap_int32(folded)),
        ("int32_t", f"{p}_multiplier", mult), ("int32_t", f"{p}_shift", shift)],
        inputs=[t_in.index], outputs=[t_out.index])


@lowers("CONV_2D", "DEPTHWISE_CONV_2D")
def convolution(ctx: OpContext) -> Step:
    """CONV_2D (no groups) and DEPTHWISE_CONV_2D (any depth multiplier), SAME or VALID, strides, dilation."""
    depthwise = ctx.op.opcode == "DEPTHWISE_CONV_2D"
    t_in, t_out = ctx.activations()
    w = ctx.tensor(1)
    b, ih, iw, ic = nhwc(ctx, t_in)
    ob, oh, ow, oc = nhwc(ctx, t_out)
    if w.data is None or w.dtype != "int8" or len(w.shape) != 4:
        raise ModelError(f"{ctx.where}: the filter must be a constant int8 4-D tensor")
    dm = 1
    if depthwise:
        _, kh, kw, wc = w.shape
        dm = int(ctx.options("depth_multiplier", 1)) or 1
        if wc != oc or ic * dm != oc:
            raise ModelError(f"{ctx.where}: filter {w.shape} does not match input {t_in.shape}, output "
                             f"{t_out.shape} and depth multiplier {dm}")
    else:
        wo, kh, kw, wc = w.shape
        if wo != oc:
            raise ModelError(f"{ctx.where}: filter {w.shape} does not match output {t_out.shape}")
        if wc != ic:
            raise UnsupportedOpError(f"{ctx.where}: grouped convolution (filter depth {wc}, input depth {ic}) is "
                                     "not supported by the native backend")
    sh, sw = int(ctx.options("stride_h", 1)), int(ctx.options("stride_w", 1))
    dh, dw = int(ctx.options("dilation_h_factor", 1)) or 1, int(ctx.options("dilation_w_factor", 1)) or 1
    padding = int(ctx.options("padding", 0))
    pad_h, exp_h = pad_and_out(padding, ih, kh, sh, dh, ctx.where)
    pad_w, exp_w = pad_and_out(padding, iw, kw, sw, dw, ctx.where)
    if (exp_h, exp_w, b) != (oh, ow, ob):
        raise ModelError(f"{ctx.where}: output shape {t_out.shape} differs from the computed "
                         f"({ob}, {exp_h}, {exp_w}, {oc})")
    _, in_zp = qparams(t_in)
    _, out_zp = qparams(t_out)
    mult, shift = multipliers(ctx, t_in, w, t_out, oc)
    bias_values = bias(ctx, oc)
    lo, hi = ctx.fused_activation(t_out)
    p = ctx.prefix
    if depthwise:
        weights = w.data.reshape(-1)
    else:  # CONV_2D: packed weights, the input offset folded into the bias (see edgedigit_kernels.c)
        weights = pack_conv_weights(w.data)
        bias_values = wrap_int32((bias_values if bias_values is not None else 0)
                                 + (-in_zp) * w.data.astype(np.int64).reshape(oc, -1).sum(axis=1))
    per_channel = w.data.reshape(-1, oc).T if depthwise else w.data.reshape(oc, -1)
    if not np.all(np.any(per_channel != 0, axis=1)):  # pruned channels: constant outputs (see constant_channels)
        bias_values, mult, shift = constant_channels(per_channel, bias_values if bias_values is not None
                                                     else np.zeros(oc, np.int64), mult, shift, out_zp, lo, hi)
    arrays = [("int8_t", f"{p}_weights", weights), ("int32_t", f"{p}_multiplier", mult),
              ("int32_t", f"{p}_shift", shift)]
    if bias_values is not None:
        arrays.append(("int32_t", f"{p}_bias", bias_values))
    kernel = "edgedigit_depthwise_conv2d" if depthwise else "edgedigit_conv2d"
    if depthwise:  # sums of (x + input_offset) * w, |x + input_offset| <= max(|-128 - in_zp|, |127 - in_zp|)
        fast = fast_requantize(w.data.reshape(-1, oc).T, bias_values if bias_values is not None else np.zeros(oc),
                               shift, max(abs(-128 - in_zp), abs(127 - in_zp)))
    else:
        fast = fast_requantize(w.data, bias_values, shift)
    extra = {"fast_requantize": int(fast)}
    return Step(ctx.op, kernel, "edgedigit_conv_t", {
        "batches": b, "in_h": ih, "in_w": iw, "in_c": ic, "out_h": oh, "out_w": ow, "out_c": oc, "k_h": kh,
        "k_w": kw, "stride_h": sh, "stride_w": sw, "dil_h": dh, "dil_w": dw, "pad_h": pad_h, "pad_w": pad_w,
        "depth_multiplier": dm, "weights": f"{p}_weights", "bias": f"{p}_bias" if bias_values is not None else "NULL",
        "multiplier": f"{p}_multiplier", "shift": f"{p}_shift", "input_offset": -in_zp, "output_offset": out_zp,
        "act_min": lo, "act_max": hi, **extra,
    }, arrays, inputs=[t_in.index], outputs=[t_out.index])


@lowers("MAX_POOL_2D", "AVERAGE_POOL_2D")
def pooling(ctx: OpContext) -> Step:
    """MAX_POOL_2D and AVERAGE_POOL_2D; the average returns a status (a window without inputs fails)."""
    average = ctx.op.opcode == "AVERAGE_POOL_2D"
    t_in, t_out = ctx.activations()
    b, ih, iw, c = nhwc(ctx, t_in)
    ob, oh, ow, oc = nhwc(ctx, t_out)
    fh, fw = int(ctx.options("filter_height", 1)), int(ctx.options("filter_width", 1))
    sh, sw = int(ctx.options("stride_h", 1)), int(ctx.options("stride_w", 1))
    padding = int(ctx.options("padding", 0))
    pad_h, exp_h = pad_and_out(padding, ih, fh, sh, 1, ctx.where)
    pad_w, exp_w = pad_and_out(padding, iw, fw, sw, 1, ctx.where)
    if (exp_h, exp_w, ob, oc) != (oh, ow, b, c):
        raise ModelError(f"{ctx.where}: output shape {t_out.shape} differs from the computed "
                         f"({b}, {exp_h}, {exp_w}, {c})")
    (in_scale, in_zp), (out_scale, out_zp) = qparams(t_in), qparams(t_out)
    if abs(in_scale - out_scale) > 1e-6 or in_zp != out_zp:
        raise ModelError(f"{ctx.where}: input and output quantization differ (TFLM requires them equal)")
    lo, hi = ctx.fused_activation(t_out)
    return Step(ctx.op, "edgedigit_average_pool" if average else "edgedigit_max_pool", "edgedigit_pool_t", {
        "batches": b, "in_h": ih, "in_w": iw, "channels": c, "out_h": oh, "out_w": ow, "f_h": fh, "f_w": fw,
        "stride_h": sh, "stride_w": sw, "pad_h": pad_h, "pad_w": pad_w, "act_min": lo, "act_max": hi,
    }, inputs=[t_in.index], outputs=[t_out.index], can_fail=average)


@lowers("RESHAPE")
def reshape(ctx: OpContext) -> Step:
    """RESHAPE: no kernel; the output aliases the input's bytes (same size, same quantization)."""
    t_in, t_out = ctx.activations()
    if t_in.nbytes != t_out.nbytes or qparams(t_in) != qparams(t_out):
        raise ModelError(f"{ctx.where}: a RESHAPE must keep the bytes and the quantization")
    return Step(ctx.op, "", "", {}, inputs=[t_in.index], outputs=[t_out.index], alias=True)


@lowers("SOFTMAX")
def softmax(ctx: OpContext) -> Step:
    """SOFTMAX over the last dimension, int8 output with scale 1/256 and zero point -128."""
    t_in, t_out = ctx.activations()
    out_scale, out_zp = qparams(t_out)
    if out_zp != -128 or np.float32(out_scale) != np.float32(1.0 / 256):
        raise ModelError(f"{ctx.where}: an int8 softmax output must have scale 1/256 and zero point -128 "
                         f"(has {out_scale} and {out_zp})")
    if t_in.size != t_out.size or not t_in.shape:
        raise ModelError(f"{ctx.where}: input {t_in.shape} and output {t_out.shape} differ")
    depth = t_in.shape[-1]
    if depth > 511:  # the sum of 512 exps reaches 2^28 in Q12.19: TFLM's exponent check (<= 31) fails
        raise UnsupportedOpError(f"{ctx.where}: an int8 softmax over {depth} values (more than 511) is not "
                                 "supported (TFLM's fixed-point sum overflows its range)")
    mult, shift, diff_min = softmax_params(float(ctx.options("beta", 1.0)), float(t_in.scale[0]))
    return Step(ctx.op, "edgedigit_softmax", "edgedigit_softmax_t", {
        "outer": t_in.size // depth, "depth": depth, "input_multiplier": mult, "input_left_shift": shift,
        "diff_min": diff_min,
    }, inputs=[t_in.index], outputs=[t_out.index])


# ---- ops whose kernels live in their own files (edgedigit_kernels_<library>.{h,c}) ---------------------------------

def _c_list(values: list[int]) -> str:
    """A brace initializer for an int32_t array member of a parameter struct."""
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def _binary_operands(ctx: OpContext) -> tuple[Tensor, Tensor, Tensor, list[Operand], list[int], list[tuple]]:
    """The two inputs and the output of ADD/MUL: the kernel's operands (a constant input becomes a C array)
    and the activation inputs.

    Raises:
        ModelError: not two inputs, no activation input, not per-tensor int8, or a constant output.
    """
    op = ctx.op
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        raise ModelError(f"{ctx.where}: expected two inputs and one output")
    t1, t2 = ctx.operand(op.inputs[0]), ctx.operand(op.inputs[1])
    t_out = ctx.activation(op.outputs[0])
    operands: list[Operand] = []
    arrays: list[tuple] = []
    for k, t in enumerate((t1, t2)):
        if t.data is None:
            operands.append(t.index)
        else:
            name = f"{ctx.prefix}_input{k + 1}"
            arrays.append(("int8_t", name, t.data.reshape(-1).astype(np.int8)))
            operands.append(name)
    activations = [t.index for t in (t1, t2) if t.data is None]
    if not activations:
        raise ModelError(f"{ctx.where}: both inputs are constants (the converter folds such ops)")
    return t1, t2, t_out, [*operands, t_out.index], activations, arrays


def _broadcast_params(ctx: OpContext, t1: Tensor, t2: Tensor, t_out: Tensor) -> dict[str, str]:
    sizes, s1, s2 = broadcast_loops(t1.shape, t2.shape, t_out.shape, ctx.where)
    return {"shape": "{.dims = " + _c_list(sizes) + ", .stride1 = " + _c_list(s1) + ", .stride2 = "
            + _c_list(s2) + "}"}


@lowers("ADD", library="elementwise")
def add(ctx: OpContext) -> Step:
    """ADD int8 (add_common.cc, reference_integer_ops::Add): both inputs rescaled to a common scale with
    ``left_shift`` 20, summed, requantized; broadcasting up to 6-D as TFLM's reference; fused activation."""
    t1, t2, t_out, operands, activations, arrays = _binary_operands(ctx)
    (s1, zp1), (s2, zp2), (so, zpo) = qparams(t1), qparams(t2), qparams(t_out)
    lo, hi = ctx.fused_activation(t_out)
    m = add_multipliers(s1, s2, so, ctx.where)
    params: dict[str, Any] = {**_broadcast_params(ctx, t1, t2, t_out), "input1_offset": -zp1,
                              "input1_multiplier": m["input1_multiplier"], "input1_shift": m["input1_shift"],
                              "input2_offset": -zp2, "input2_multiplier": m["input2_multiplier"],
                              "input2_shift": m["input2_shift"], "left_shift": m["left_shift"],
                              "output_offset": zpo, "output_multiplier": m["output_multiplier"],
                              "output_shift": m["output_shift"], "act_min": lo, "act_max": hi}
    return Step(ctx.op, "edgedigit_add", "edgedigit_add_t", params, arrays, inputs=activations,
                outputs=[t_out.index], operands=tuple(operands), rom=False)


@lowers("MUL", library="elementwise")
def mul(ctx: OpContext) -> Step:
    """MUL int8 (mul_common.cc, reference_integer_ops::Mul): ``(x1 - zp1) * (x2 - zp2)`` requantized with
    ``s1 * s2 / s_out``; broadcasting up to 6-D; fused activation."""
    t1, t2, t_out, operands, activations, arrays = _binary_operands(ctx)
    (s1, zp1), (s2, zp2), (so, zpo) = qparams(t1), qparams(t2), qparams(t_out)
    lo, hi = ctx.fused_activation(t_out)
    mult, shift = mul_multiplier(s1, s2, so)
    params: dict[str, Any] = {**_broadcast_params(ctx, t1, t2, t_out), "input1_offset": -zp1,
                              "input2_offset": -zp2, "output_offset": zpo, "output_multiplier": mult,
                              "output_shift": shift, "act_min": lo, "act_max": hi}
    return Step(ctx.op, "edgedigit_mul", "edgedigit_mul_t", params, arrays, inputs=activations,
                outputs=[t_out.index], operands=tuple(operands), rom=False)


PAD_RANK = 5  # reference_ops::PadKernelMaxDimensionCount()


@lowers("PAD", library="layout")
def pad(ctx: OpContext) -> Step:
    """PAD int8 (pad.cc): the input copied into the output, the rest filled with the output zero point."""
    op = ctx.op
    if len(op.inputs) != 2:
        raise UnsupportedOpError(f"{ctx.where}: a PAD with {len(op.inputs)} inputs (a constant value) is not "
                                 "supported by the native backend")
    t_in, t_out = ctx.activations()
    paddings = ctx.tensor(1)
    rank = len(t_in.shape)
    if paddings.data is None or paddings.dtype != "int32":
        raise ModelError(f"{ctx.where}: the paddings must be a constant int32 tensor (TFLM reads them as int32)")
    if rank > PAD_RANK:
        raise UnsupportedOpError(f"{ctx.where}: a {rank}-D PAD is not supported (TFLM pads at most {PAD_RANK} "
                                 "dimensions)")
    pads = paddings.data.astype(np.int64).reshape(-1)
    if pads.size != 2 * len(t_out.shape) or len(t_out.shape) != rank or np.any(pads < 0):
        raise ModelError(f"{ctx.where}: paddings {pads.tolist()} do not fit input {t_in.shape} and output "
                         f"{t_out.shape}")
    before, after = pads[0::2], pads[1::2]
    if any(int(i) + int(b) + int(a) != int(o) for i, b, a, o in zip(t_in.shape, before, after, t_out.shape,
                                                                     strict=True)):
        raise ModelError(f"{ctx.where}: output shape {t_out.shape} is not input {t_in.shape} plus paddings "
                         f"{pads.tolist()}")
    front = [1] * (PAD_RANK - rank)
    return Step(ctx.op, "edgedigit_pad", "edgedigit_pad_t", {
        "in_dims": _c_list(front + list(t_in.shape)), "out_dims": _c_list(front + list(t_out.shape)),
        "before": _c_list([0] * (PAD_RANK - rank) + before.tolist()), "pad_value": qparams(t_out)[1],
    }, inputs=[t_in.index], outputs=[t_out.index])


@lowers("CONCATENATION", library="layout")
def concatenation(ctx: OpContext) -> Step:
    """CONCATENATION int8 (concatenation.cc): inputs copied side by side along ``axis``. As TFLM, every input
    must have the output's scale and zero point (no rescaling) and the fused activation must be NONE."""
    op = ctx.op
    t_out = ctx.activation(op.outputs[0])
    rank = len(t_out.shape)
    axis = int(ctx.options("axis", 0))
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise ModelError(f"{ctx.where}: axis {ctx.options('axis', 0)} is outside the output's {rank} dimensions")
    if int(ctx.options("fused_activation_function", 0)) != 0:
        raise UnsupportedOpError(f"{ctx.where}: a fused activation on CONCATENATION is not supported (TFLM "
                                 "requires NONE)")
    if not 1 <= len(op.inputs) <= 10:
        raise UnsupportedOpError(f"{ctx.where}: {len(op.inputs)} inputs (TFLM concatenates 1 to 10)")
    outer = int(np.prod(t_out.shape[:axis], dtype=np.int64))
    inner = int(np.prod(t_out.shape[axis + 1:], dtype=np.int64))
    operands: list[int | str] = []
    activations: list[int] = []
    arrays: list[tuple] = []
    sizes = []
    for k, index in enumerate(op.inputs):
        t = ctx.operand(index)
        if np.float32(t.scale[0]) != np.float32(t_out.scale[0]) or int(t.zero_point[0]) != int(t_out.zero_point[0]):
            raise ModelError(f"{ctx.where}: input {t.name} has scale {float(t.scale[0])} and zero point "
                             f"{int(t.zero_point[0])}, the output {float(t_out.scale[0])} and "
                             f"{int(t_out.zero_point[0])} (TFLM requires them equal: it does not rescale)")
        if len(t.shape) != rank or any(d != o for i, (d, o) in enumerate(zip(t.shape, t_out.shape, strict=True))
                                       if i != axis):
            raise ModelError(f"{ctx.where}: input shape {t.shape} does not match output {t_out.shape} outside "
                             f"axis {axis}")
        sizes.append(int(t.shape[axis]) * inner)
        if t.data is None:
            operands.append(t.index)
            activations.append(t.index)
        else:
            name = f"{ctx.prefix}_input{k + 1}"
            arrays.append(("int8_t", name, t.data.reshape(-1).astype(np.int8)))
            operands.append(name)
    if sum(sizes) != int(t_out.shape[axis]) * inner:
        raise ModelError(f"{ctx.where}: the inputs' sizes along axis {axis} do not add up to the output's "
                         f"{t_out.shape[axis]}")
    if not activations:
        raise ModelError(f"{ctx.where}: every input is a constant (the converter folds such ops)")
    arrays.append(("int32_t", f"{ctx.prefix}_sizes", np.array(sizes, np.int64)))
    return Step(ctx.op, "edgedigit_concatenation", "edgedigit_concat_t", {
        "count": len(sizes), "outer": outer, "sizes": f"{ctx.prefix}_sizes",
    }, arrays, inputs=activations, outputs=[t_out.index], operands=(tuple(operands), t_out.index), rom=False)


@lowers("MEAN", library="reduce")
def mean(ctx: OpContext) -> Step:
    """MEAN int8 over constant axes, ``keep_dims`` or not (reduce_common.cc, QuantizedMeanOrSum): int32 sums,
    minus ``zero_point * count``, requantized with ``s_in / s_out`` readapted to divide by the count."""
    t_in, t_out = ctx.activations()
    axis = ctx.tensor(1)
    if axis.data is None or axis.dtype != "int32":
        raise ModelError(f"{ctx.where}: the axes must be a constant int32 tensor")
    axes = [int(a) for a in axis.data.reshape(-1)]
    kept, kept_strides, reduced, reduced_strides = reduce_loops(t_in.shape, axes, ctx.where)
    count = int(np.prod(reduced, dtype=np.int64))
    outputs = int(np.prod(kept, dtype=np.int64))
    if outputs != t_out.size:
        raise ModelError(f"{ctx.where}: output shape {t_out.shape} does not match input {t_in.shape} reduced over "
                         f"axes {axes}")
    (s_in, zp_in), (s_out, zp_out) = qparams(t_in), qparams(t_out)
    mult, shift = mean_multiplier(*requantize_multiplier(s_in, s_out), count)
    return Step(ctx.op, "edgedigit_mean", "edgedigit_mean_t", {
        "outputs": outputs, "count": count, "kept_dims": _c_list(kept), "kept_strides": _c_list(kept_strides),
        "reduced_dims": _c_list(reduced), "reduced_strides": _c_list(reduced_strides),
        "sum_offset": int(wrap_int32(np.array([-zp_in * count]))[0]), "multiplier": mult, "shift": shift,
        "output_offset": zp_out,
    }, inputs=[t_in.index], outputs=[t_out.index])


@lowers("QUANTIZE", library="quantize")
def quantize(ctx: OpContext) -> Step:
    """QUANTIZE int8 -> int8 (quantize_common.cc, reference_ops::Requantize): ``x - zp_in`` times
    ``s_in / s_out``, plus ``zp_out``, clamped to int8. Float input is refused by :func:`check_graph`."""
    t_in = ctx.graph.tensors[ctx.op.inputs[0]]
    if t_in.dtype != "int8":
        raise UnsupportedOpError(f"{ctx.where}: QUANTIZE from {t_in.dtype} is not supported by the native backend "
                                 "(int8 -> int8 only)")
    t_in, t_out = ctx.activations()
    if t_in.size != t_out.size:
        raise ModelError(f"{ctx.where}: input {t_in.shape} and output {t_out.shape} differ")
    (s_in, zp_in), (s_out, zp_out) = qparams(t_in), qparams(t_out)
    mult, shift = requantize_multiplier(s_in, s_out)
    return Step(ctx.op, "edgedigit_requantize", "edgedigit_requantize_t", {
        "size": t_in.size, "input_zero_point": zp_in, "multiplier": mult, "shift": shift,
        "output_zero_point": zp_out,
    }, inputs=[t_in.index], outputs=[t_out.index])
