"""The ``native`` backend: an int8 .tflite graph compiled to plain C99 (no interpreter, no heap).

Python does every computation TFLM does in its Prepare functions (requantization multipliers and shifts
with ``frexp`` in double precision, activation ranges, paddings, softmax constants), folds the FC input
offset into the bias, lays out the weights for the kernels and plans the activation arena from tensor
lifetimes. The Jinja templates in ``firmware_templates/native/`` only loop and substitute; the arithmetic
lives in the hand-written kernel library ``edgedigit_kernels.c`` beside them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...core.errors import ModelError, UnsupportedOpError
from ...core.graph import Graph, Op, Tensor
from ...core.paths import templates_dir
from ..render import banner, c_identifier, render
from . import planner

SUPPORTED_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D",
                 "RESHAPE", "SOFTMAX")
# fused_activation_function codes of the TFLite schema: NONE, RELU, RELU_N1_TO_1, RELU6
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
KERNEL_FILES = ("edgedigit_kernels.h", "edgedigit_kernels.c")
ALIGNMENT = 4
IMAGE_BYTES = 784


# ---- TFLM's Prepare arithmetic, in Python -----------------------------------------------------------------

def round_half_away(x: float) -> int:
    """``std::round``: halves away from zero."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """tflite::QuantizeMultiplier: ``real ~= multiplier * 2**shift / 2**31`` with a Q31 multiplier."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def _quantize_f32(value: float, scale: float, zero_point: int) -> int:
    """kernel_util.cc Quantize(): ``zero_point + round(value / scale)`` in float32."""
    return zero_point + round_half_away(float(np.float32(value) / np.float32(scale)))


def activation_range(code: int, scale: float, zero_point: int, where: str) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for an int8 output."""
    lo, hi = -128, 127
    if code == 1:
        return max(lo, _quantize_f32(0.0, scale, zero_point)), hi
    if code == 3:
        return max(lo, _quantize_f32(0.0, scale, zero_point)), min(hi, _quantize_f32(6.0, scale, zero_point))
    if code == 2:
        return max(lo, _quantize_f32(-1.0, scale, zero_point)), min(hi, _quantize_f32(1.0, scale, zero_point))
    if code == 0:
        return lo, hi
    raise UnsupportedOpError(f"{where}: fused activation code {code} is not supported by the native backend "
                             f"(supported: {', '.join(_ACTIVATIONS.values())})")


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """SoftmaxPrepare for int8: (input_multiplier, input_left_shift, diff_min)."""
    integer_bits = 5  # kScaledDiffIntegerBits
    real = min(float(np.float32(beta)) * float(np.float32(input_scale)) * float(1 << (31 - integer_bits)),
               float((1 << 31) - 1))
    multiplier, left_shift = quantize_multiplier(real)
    radius = math.floor(1.0 * ((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << left_shift))
    return multiplier, left_shift, -radius


def pad_and_out(padding: int, in_size: int, k: int, stride: int, dilation: int, where: str) -> tuple[int, int]:
    """tflite ComputePaddingHeightWidth for one dimension: (padding before, output size)."""
    eff = (k - 1) * dilation + 1
    if padding == 0:  # SAME
        out = (in_size + stride - 1) // stride
    elif padding == 1:  # VALID
        out = (in_size + stride - eff) // stride
    else:
        raise UnsupportedOpError(f"{where}: padding code {padding} is not supported (SAME or VALID)")
    total = max(0, (out - 1) * stride + eff - in_size)
    return total // 2, out


# ---- the lowered graph --------------------------------------------------------------------------------------

@dataclass
class MemoryPlan:
    """Where each activation tensor lives in the static arena."""

    arena_bytes: int
    lower_bound: int  # max over op steps of the bytes of the buffers alive at that step
    offsets: dict[int, int]  # tensor index -> byte offset in the arena
    buffers: list[planner.Buffer] = field(default_factory=list)
    buffer_offsets: list[int] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"arena_bytes": self.arena_bytes, "lower_bound_bytes": self.lower_bound,
                "ratio": round(self.arena_bytes / self.lower_bound, 4) if self.lower_bound else 1.0}


@dataclass
class _Step:
    kind: str  # fc | conv | dwconv | maxpool | avgpool | softmax | reshape
    op: Op
    params: dict[str, Any]
    arrays: list[tuple[str, str, np.ndarray]]  # (C type, name, values)


def _where(graph: Graph, op: Op | None = None) -> str:
    return f"{graph.path}" + (f" (op {op.index} {op.opcode})" if op is not None else "")


def check_graph(graph: Graph) -> None:
    """Refuse what the native backend cannot compile, naming the model file and the reason.

    Raises:
        ModelError: not a full-int8 model, or not one input and one output.
        UnsupportedOpError: an operator outside :data:`SUPPORTED_OPS`.
    """
    if not graph.is_full_int8():
        raise ModelError(f"{graph.path}: the native backend needs a full-int8 model (int8 input, output and "
                         f"activations; input is {graph.input.dtype}, output {graph.output.dtype}); quantize it "
                         "with full integer quantization first")
    for name in graph.op_names():
        if name not in SUPPORTED_OPS:
            raise UnsupportedOpError(f"{graph.path}: operator {name} is not supported by the native backend "
                                     f"(supported: {', '.join(SUPPORTED_OPS)})")
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ModelError(f"{graph.path}: the native backend needs one input and one output tensor "
                         f"(has {len(graph.inputs)} and {len(graph.outputs)})")


def _activation_tensors(graph: Graph, op: Op) -> tuple[Tensor, Tensor]:
    t_in, t_out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    for t in (t_in, t_out):
        if t.data is not None:
            raise ModelError(f"{_where(graph, op)}: tensor {t.index} ({t.name}) is a constant where the native "
                             "backend expects an activation")
        if t.dtype != "int8" or t.scale.size != 1 or t.zero_point.size != 1:
            raise ModelError(f"{_where(graph, op)}: tensor {t.index} ({t.name}) is not a per-tensor int8 "
                             "activation")
    return t_in, t_out


def _qparams(t: Tensor) -> tuple[float, int]:
    return float(t.scale[0]), int(t.zero_point[0])


def _multipliers(graph: Graph, op: Op, t_in: Tensor, w: Tensor, t_out: Tensor, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (or broadcast per-tensor) multipliers and shifts, as TFLM's Prepare computes them.

    Convolutions (PopulateConvolutionQuantizationParams) and per-channel FC multiply the scales in double;
    a per-tensor FC (GetQuantizedConvolutionMultipler) multiplies input and filter scale in float32 first.
    """
    if w.scale.size not in (1, channels):
        raise ModelError(f"{_where(graph, op)}: weight tensor {w.name} has {w.scale.size} scales for "
                         f"{channels} output channels")
    if np.any(w.zero_point != 0):
        raise ModelError(f"{_where(graph, op)}: weight tensor {w.name} has a nonzero zero point; int8 weights "
                         "must be symmetric")
    in_scale, out_scale = float(np.float32(t_in.scale[0])), float(np.float32(t_out.scale[0]))
    mult, shift = np.zeros(channels, np.int64), np.zeros(channels, np.int64)
    float32_product = op.opcode == "FULLY_CONNECTED" and w.scale.size == 1
    for c in range(channels):
        f_scale = np.float32(w.scale[c if w.scale.size > 1 else 0])
        product = float(np.float32(t_in.scale[0]) * f_scale) if float32_product else in_scale * float(f_scale)
        mult[c], shift[c] = quantize_multiplier(product / out_scale)
    return mult, shift


def _bias(graph: Graph, op: Op, channels: int) -> np.ndarray | None:
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return None
    b = graph.tensors[op.inputs[2]]
    if b.data is None or b.dtype != "int32" or b.size != channels:
        raise ModelError(f"{_where(graph, op)}: bias tensor {b.name} must be {channels} constant int32 values")
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


def _wrap_int32(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, np.int64)
    return ((v + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int64)


def _lower_fc(graph: Graph, op: Op, n: int) -> _Step:
    t_in, t_out = _activation_tensors(graph, op)
    w = graph.tensors[op.inputs[1]]
    if w.data is None or w.dtype != "int8" or len(w.shape) != 2:
        raise ModelError(f"{_where(graph, op)}: the weights must be a constant int8 matrix (got {w.dtype} {w.shape})")
    out_d, in_d = w.shape
    if t_in.size % in_d or t_out.size % out_d or t_in.size // in_d != t_out.size // out_d:
        raise ModelError(f"{_where(graph, op)}: input {t_in.shape} and output {t_out.shape} do not match weights "
                         f"{w.shape}")
    in_scale, in_zp = _qparams(t_in)
    out_scale, out_zp = _qparams(t_out)
    mult, shift = _multipliers(graph, op, t_in, w, t_out, out_d)
    bias = _bias(graph, op, out_d)
    wq = w.data.astype(np.int64)
    folded = (bias if bias is not None else 0) + (-in_zp) * wq.sum(axis=1)
    lo, hi = activation_range(int(op.options.get("fused_activation_function", 0)), out_scale, out_zp,
                              _where(graph, op))
    p = f"g_op{n}"
    return _Step("fc", op, {
        "batches": t_in.size // in_d, "in_depth": in_d, "out_depth": out_d, "weights": f"{p}_weights",
        "bias": f"{p}_bias", "multiplier": f"{p}_multiplier", "shift": f"{p}_shift", "output_offset": out_zp,
        "act_min": lo, "act_max": hi,
    }, [("int8_t", f"{p}_weights", pack_fc_weights(w.data)), ("int32_t", f"{p}_bias", _wrap_int32(folded)),
        ("int32_t", f"{p}_multiplier", mult), ("int32_t", f"{p}_shift", shift)])


def _nhwc(graph: Graph, op: Op, t: Tensor) -> tuple[int, int, int, int]:
    if len(t.shape) != 4:
        raise ModelError(f"{_where(graph, op)}: tensor {t.name} must be 4-D NHWC, has shape {t.shape}")
    return t.shape  # type: ignore[return-value]


def _lower_conv(graph: Graph, op: Op, n: int, depthwise: bool) -> _Step:
    t_in, t_out = _activation_tensors(graph, op)
    w = graph.tensors[op.inputs[1]]
    b, ih, iw, ic = _nhwc(graph, op, t_in)
    ob, oh, ow, oc = _nhwc(graph, op, t_out)
    if w.data is None or w.dtype != "int8" or len(w.shape) != 4:
        raise ModelError(f"{_where(graph, op)}: the filter must be a constant int8 4-D tensor")
    o = op.options
    dm = 1
    if depthwise:
        _, kh, kw, wc = w.shape
        dm = int(o.get("depth_multiplier", 1)) or 1
        if wc != oc or ic * dm != oc:
            raise ModelError(f"{_where(graph, op)}: filter {w.shape} does not match input {t_in.shape}, output "
                             f"{t_out.shape} and depth multiplier {dm}")
    else:
        wo, kh, kw, wc = w.shape
        if wo != oc:
            raise ModelError(f"{_where(graph, op)}: filter {w.shape} does not match output {t_out.shape}")
        if wc != ic:
            raise UnsupportedOpError(f"{_where(graph, op)}: grouped convolution (filter depth {wc}, input depth "
                                     f"{ic}) is not supported by the native backend")
    sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
    dh, dw = int(o.get("dilation_h_factor", 1)) or 1, int(o.get("dilation_w_factor", 1)) or 1
    pad_h, exp_h = pad_and_out(int(o.get("padding", 0)), ih, kh, sh, dh, _where(graph, op))
    pad_w, exp_w = pad_and_out(int(o.get("padding", 0)), iw, kw, sw, dw, _where(graph, op))
    if (exp_h, exp_w, b) != (oh, ow, ob):
        raise ModelError(f"{_where(graph, op)}: output shape {t_out.shape} differs from the computed "
                         f"({ob}, {exp_h}, {exp_w}, {oc})")
    _, in_zp = _qparams(t_in)
    out_scale, out_zp = _qparams(t_out)
    mult, shift = _multipliers(graph, op, t_in, w, t_out, oc)
    bias = _bias(graph, op, oc)
    lo, hi = activation_range(int(o.get("fused_activation_function", 0)), out_scale, out_zp, _where(graph, op))
    p = f"g_op{n}"
    arrays = [("int8_t", f"{p}_weights", w.data.reshape(-1)), ("int32_t", f"{p}_multiplier", mult),
              ("int32_t", f"{p}_shift", shift)]
    if bias is not None:
        arrays.append(("int32_t", f"{p}_bias", bias))
    return _Step("dwconv" if depthwise else "conv", op, {
        "batches": b, "in_h": ih, "in_w": iw, "in_c": ic, "out_h": oh, "out_w": ow, "out_c": oc, "k_h": kh,
        "k_w": kw, "stride_h": sh, "stride_w": sw, "dil_h": dh, "dil_w": dw, "pad_h": pad_h, "pad_w": pad_w,
        "depth_multiplier": dm, "weights": f"{p}_weights", "bias": f"{p}_bias" if bias is not None else "NULL",
        "multiplier": f"{p}_multiplier", "shift": f"{p}_shift", "input_offset": -in_zp, "output_offset": out_zp,
        "act_min": lo, "act_max": hi,
    }, arrays)


def _lower_pool(graph: Graph, op: Op, kind: str) -> _Step:
    t_in, t_out = _activation_tensors(graph, op)
    b, ih, iw, c = _nhwc(graph, op, t_in)
    ob, oh, ow, oc = _nhwc(graph, op, t_out)
    o = op.options
    fh, fw = int(o.get("filter_height", 1)), int(o.get("filter_width", 1))
    sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
    pad_h, exp_h = pad_and_out(int(o.get("padding", 0)), ih, fh, sh, 1, _where(graph, op))
    pad_w, exp_w = pad_and_out(int(o.get("padding", 0)), iw, fw, sw, 1, _where(graph, op))
    if (exp_h, exp_w, ob, oc) != (oh, ow, b, c):
        raise ModelError(f"{_where(graph, op)}: output shape {t_out.shape} differs from the computed "
                         f"({b}, {exp_h}, {exp_w}, {c})")
    (in_scale, in_zp), (out_scale, out_zp) = _qparams(t_in), _qparams(t_out)
    if abs(in_scale - out_scale) > 1e-6 or in_zp != out_zp:
        raise ModelError(f"{_where(graph, op)}: input and output quantization differ (TFLM requires them equal)")
    lo, hi = activation_range(int(o.get("fused_activation_function", 0)), out_scale, out_zp, _where(graph, op))
    return _Step(kind, op, {
        "batches": b, "in_h": ih, "in_w": iw, "channels": c, "out_h": oh, "out_w": ow, "f_h": fh, "f_w": fw,
        "stride_h": sh, "stride_w": sw, "pad_h": pad_h, "pad_w": pad_w, "act_min": lo, "act_max": hi,
    }, [])


def _lower_softmax(graph: Graph, op: Op) -> _Step:
    t_in, t_out = _activation_tensors(graph, op)
    out_scale, out_zp = _qparams(t_out)
    if out_zp != -128 or np.float32(out_scale) != np.float32(1.0 / 256):
        raise ModelError(f"{_where(graph, op)}: an int8 softmax output must have scale 1/256 and zero point -128 "
                         f"(has {out_scale} and {out_zp})")
    if t_in.size != t_out.size or not t_in.shape:
        raise ModelError(f"{_where(graph, op)}: input {t_in.shape} and output {t_out.shape} differ")
    depth = t_in.shape[-1]
    if depth > 511:  # the sum of 512 exps reaches 2^28 in Q12.19: TFLM's exponent check (<= 31) fails
        raise UnsupportedOpError(f"{_where(graph, op)}: an int8 softmax over {depth} values (more than 511) is not "
                                 "supported (TFLM's fixed-point sum overflows its range)")
    mult, shift, diff_min = softmax_params(float(op.options.get("beta", 1.0)), float(t_in.scale[0]))
    return _Step("softmax", op, {"outer": t_in.size // depth, "depth": depth, "input_multiplier": mult,
                                 "input_left_shift": shift, "diff_min": diff_min}, [])


def _lower(graph: Graph) -> list[_Step]:
    steps = []
    for n, op in enumerate(graph.ops):
        if op.opcode == "FULLY_CONNECTED":
            steps.append(_lower_fc(graph, op, n))
        elif op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            steps.append(_lower_conv(graph, op, n, op.opcode == "DEPTHWISE_CONV_2D"))
        elif op.opcode in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            steps.append(_lower_pool(graph, op, "maxpool" if op.opcode == "MAX_POOL_2D" else "avgpool"))
        elif op.opcode == "SOFTMAX":
            steps.append(_lower_softmax(graph, op))
        elif op.opcode == "RESHAPE":
            t_in, t_out = _activation_tensors(graph, op)
            if t_in.nbytes != t_out.nbytes or _qparams(t_in) != _qparams(t_out):
                raise ModelError(f"{_where(graph, op)}: a RESHAPE must keep the bytes and the quantization")
            steps.append(_Step("reshape", op, {}, []))
        else:  # check_graph ran first; kept for safety against a new opcode slipping through
            raise UnsupportedOpError(f"{graph.path}: operator {op.opcode} is not supported by the native backend "
                                     f"(supported: {', '.join(SUPPORTED_OPS)})")
    return steps


# ---- memory plan ---------------------------------------------------------------------------------------------

def plan(graph: Graph, alignment: int = ALIGNMENT) -> MemoryPlan:
    """Plan the static arena: one buffer per activation tensor, RESHAPE outputs aliasing their input.

    Step ``i`` is op ``i``; the graph input is alive from step 0 and the output until one step after the
    last op (the runner reads it). Raises like :func:`check_graph`.
    """
    check_graph(graph)
    root: dict[int, int] = {}

    def find(t: int) -> int:
        while root.get(t, t) != t:
            t = root[t]
        return t

    for op in graph.ops:
        if op.opcode == "RESHAPE":
            root[find(op.outputs[0])] = find(op.inputs[0])
    touched: set[int] = set()
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    size: dict[int, int] = {}

    def touch(t: int, step: int) -> None:
        touched.add(t)
        r = find(t)
        first[r] = min(first.get(r, step), step)
        last[r] = max(last.get(r, step), step)
        size[r] = max(size.get(r, 0), graph.tensors[t].nbytes)

    touch(graph.inputs[0], 0)
    for i, op in enumerate(graph.ops):
        for t in [graph.tensors[k] for k in op.inputs[:1] + op.outputs if k >= 0]:
            touch(t.index, i)
    touch(graph.outputs[0], len(graph.ops))
    roots = sorted(size)
    buffers = [planner.Buffer(graph.tensors[r].name, size[r], first[r], last[r]) for r in roots]
    offs, arena = planner.place(buffers, alignment)
    by_root = dict(zip(roots, offs, strict=True))
    offsets = {t: by_root[find(t)] for t in sorted(touched)}
    return MemoryPlan(arena, planner.lower_bound(buffers), offsets, buffers, offs)


# ---- code generation -------------------------------------------------------------------------------------------

def _kernel_sources() -> dict[str, str]:
    folder = templates_dir() / "native"
    return {name: (folder / name).read_text() for name in KERNEL_FILES}


def generate_graph(graph: Graph, *, variant: str, source_name: str) -> dict[str, str]:
    """The graph code and the kernel library, without the firmware runner (used by the host runner too)."""
    check_graph(graph)
    steps = _lower(graph)
    mp = plan(graph)
    ctx = _context(graph, steps, mp, variant, source_name)
    files = _kernel_sources()
    files["edgedigit_native_model.h"] = render("native/edgedigit_native_model.h.j2", **ctx)
    files["edgedigit_native_model.c"] = render("native/edgedigit_native_model.c.j2", **ctx)
    return files


def generate(graph: Graph, *, variant: str, source_name: str) -> dict[str, str | bytes]:
    """All ``src/`` files of the native backend (COMMON contract 6): kernels, graph code, runner.

    Args:
        graph: the int8 model (``edgedigit.graph.load_graph``).
        variant: the model's variant name (shown by ``edgedigit_model_info``).
        source_name: how the banner names the source model file.

    Returns:
        File name in ``src/`` -> content.

    Raises:
        ModelError: not full int8, input not a 28x28 image, more than 16 classes, inconsistent shapes.
        UnsupportedOpError: an operator or fused activation the backend lacks (named in the message).
    """
    from ...models.quantize import input_lut

    files: dict[str, str | bytes] = dict(generate_graph(graph, variant=variant, source_name=source_name))
    if graph.input.size != IMAGE_BYTES:
        raise ModelError(f"{graph.path}: the firmware feeds 28x28 images ({IMAGE_BYTES} values); the model's input "
                         f"has shape {graph.input.shape}")
    if not 1 <= graph.output.size <= 16:
        raise ModelError(f"{graph.path}: the firmware reports at most 16 outputs; the model has {graph.output.size}")
    in_scale, in_zp = _qparams(graph.input)
    out_scale, out_zp = _qparams(graph.output)
    mp = plan(graph)
    files["edgedigit_native_runner.c"] = render(
        "native/edgedigit_native_runner.c.j2", banner_c=banner(source_name, graph.sha256, "c"), variant=variant,
        sha256=graph.sha256, num_classes=graph.output.size, arena_bytes=mp.arena_bytes,
        output_scale=float(out_scale), output_zero_point=out_zp, lut=input_lut(in_scale, in_zp),
        variant_c=_c_string(variant))
    return files


_KERNELS = {  # step kind -> (parameter struct, kernel function); RESHAPE has none (aliased)
    "fc": ("edgedigit_fc_t", "edgedigit_fully_connected"),
    "conv": ("edgedigit_conv_t", "edgedigit_conv2d"),
    "dwconv": ("edgedigit_conv_t", "edgedigit_depthwise_conv2d"),
    "maxpool": ("edgedigit_pool_t", "edgedigit_max_pool"),
    "avgpool": ("edgedigit_pool_t", "edgedigit_average_pool"),
    "softmax": ("edgedigit_softmax_t", "edgedigit_softmax"),
}


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _context(graph: Graph, steps: list[_Step], mp: MemoryPlan, variant: str, source_name: str) -> dict[str, Any]:
    calls = []
    arrays = []
    for i, s in enumerate(steps):
        t_in, t_out = s.op.inputs[0], s.op.outputs[0]
        name = c_identifier(f"kOp{i}")
        comment = f"op {s.op.index}: {s.op.opcode} {graph.tensors[t_in].shape} -> {graph.tensors[t_out].shape}"
        for ctype, aname, values in s.arrays:
            arrays.append({"ctype": ctype, "name": c_identifier(aname), "data": values, "size": values.size})
        ctype, func = _KERNELS.get(s.kind, ("", ""))
        calls.append({"kind": s.kind, "name": name, "params": s.params, "comment": comment, "ctype": ctype,
                      "func": func, "returns_status": s.kind == "avgpool",
                      "in_offset": mp.offsets[t_in], "out_offset": mp.offsets[t_out]})
    return {
        "banner_c": banner(source_name, graph.sha256, "c"),
        "variant": variant,
        "calls": calls,
        "arrays": arrays,
        "arena_bytes": mp.arena_bytes,
        "lower_bound": mp.lower_bound,
        "input_offset": mp.offsets[graph.inputs[0]],
        "output_offset": mp.offsets[graph.outputs[0]],
        "input_bytes": graph.input.nbytes,
        "output_bytes": graph.output.nbytes,
        "source_name_c": _c_string(source_name),
    }

