"""TFLM's Prepare arithmetic, in Python: pure functions of scales, zero points and shapes.

What TFLM computes once per op before the first Invoke (requantization multipliers and shifts with
``frexp`` in double precision, activation ranges, paddings, softmax constants) is computed here at code
generation time, to the bit, and emitted as constants. Nothing here reads a graph: the op lowerings in
:mod:`.ops` pick the values out of the tensors and pass them in.
"""

from __future__ import annotations

import math

import numpy as np

from ...core.errors import ModelError, UnsupportedOpError

# fused_activation_function codes of the TFLite schema: NONE, RELU, RELU_N1_TO_1, RELU6
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}


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


def quantize_f32(value: float, scale: float, zero_point: int) -> int:
    """kernel_util.cc Quantize(): ``zero_point + round(value / scale)`` in float32."""
    return zero_point + round_half_away(float(np.float32(value) / np.float32(scale)))


def activation_range(code: int, scale: float, zero_point: int, where: str) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for an int8 output: (act_min, act_max).

    Args:
        code: the op's ``fused_activation_function``.
        scale: the output scale.
        zero_point: the output zero point.
        where: names the model and op in an error.

    Raises:
        UnsupportedOpError: an activation code other than NONE, RELU, RELU_N1_TO_1, RELU6.
    """
    lo, hi = -128, 127
    if code == 1:
        return max(lo, quantize_f32(0.0, scale, zero_point)), hi
    if code == 3:
        return max(lo, quantize_f32(0.0, scale, zero_point)), min(hi, quantize_f32(6.0, scale, zero_point))
    if code == 2:
        return max(lo, quantize_f32(-1.0, scale, zero_point)), min(hi, quantize_f32(1.0, scale, zero_point))
    if code == 0:
        return lo, hi
    raise UnsupportedOpError(f"{where}: fused activation code {code} is not supported by the native backend "
                             f"(supported: {', '.join(ACTIVATIONS.values())})")


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """SoftmaxPrepare for int8: (input_multiplier, input_left_shift, diff_min)."""
    integer_bits = 5  # kScaledDiffIntegerBits
    real = min(float(np.float32(beta)) * float(np.float32(input_scale)) * float(1 << (31 - integer_bits)),
               float((1 << 31) - 1))
    multiplier, left_shift = quantize_multiplier(real)
    radius = math.floor(1.0 * ((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << left_shift))
    return multiplier, left_shift, -radius


def pad_and_out(padding: int, in_size: int, k: int, stride: int, dilation: int, where: str) -> tuple[int, int]:
    """tflite ComputePaddingHeightWidth for one dimension: (padding before, output size).

    Raises:
        UnsupportedOpError: a padding code other than SAME (0) or VALID (1).
    """
    eff = (k - 1) * dilation + 1
    if padding == 0:  # SAME
        out = (in_size + stride - 1) // stride
    elif padding == 1:  # VALID
        out = (in_size + stride - eff) // stride
    else:
        raise UnsupportedOpError(f"{where}: padding code {padding} is not supported (SAME or VALID)")
    total = max(0, (out - 1) * stride + eff - in_size)
    return total // 2, out


# How a per-tensor FULLY_CONNECTED multiplies input scale x filter scale before dividing by the output scale.
# "float32": static_cast<double>(input->params.scale * filter->params.scale), a float product, as the C++ of
# every TFLM that runs on devices says it and compiles it (kernel_util.cc GetQuantizedConvolutionMultipler in
# tflite-micro, Arduino_TensorFlowLite and esp-tflite-micro; vmul.f32 on a Cortex-M4). "double": the product of
# the widened scales, as the x86-64 binary of the tflite-micro Python wheel computes it (cvtss2sd, cvtss2sd,
# mulsd): the host reference run_tflm. The two differ in the last bit of rare multipliers.
FC_PRODUCTS = ("float32", "double")


def channel_multipliers(input_scale: float, filter_scales: np.ndarray, output_scale: float, channels: int,
                        float32_product: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (or broadcast per-tensor) multipliers and shifts, as TFLM's Prepare computes them.

    Convolutions (PopulateConvolutionQuantizationParams) and per-channel FC multiply the scales in double;
    a per-tensor FC (GetQuantizedConvolutionMultipler) multiplies input and filter scale in float32 first
    (``float32_product``).

    Args:
        input_scale: the input activation's scale (a float32 value).
        filter_scales: the weights' float32 scales, one or ``channels`` of them.
        output_scale: the output activation's scale (a float32 value).
        channels: the number of output channels.
        float32_product: multiply input and filter scale in float32 (per-tensor FC).

    Returns:
        (multipliers, shifts), int64 arrays of ``channels`` values.
    """
    in_scale, out_scale = float(np.float32(input_scale)), float(np.float32(output_scale))
    mult, shift = np.zeros(channels, np.int64), np.zeros(channels, np.int64)
    for c in range(channels):
        f_scale = np.float32(filter_scales[c if filter_scales.size > 1 else 0])
        product = float(np.float32(input_scale) * f_scale) if float32_product else in_scale * float(f_scale)
        mult[c], shift[c] = quantize_multiplier(product / out_scale)
    return mult, shift


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    """TFLM's MultiplyByQuantizedMultiplier on one int32 value (reference arithmetic, exact integers).

    SaturatingRoundingDoublingHighMul of ``x * 2^max(shift, 0)`` (wrapped to int32) and ``multiplier``, then
    RoundingDivideByPOT by ``max(-shift, 0)``.
    """
    left, right = max(shift, 0), max(-shift, 0)
    a = int(wrap_int32(np.array([x << left]))[0])
    if a == multiplier == -(1 << 31):
        high = (1 << 31) - 1
    else:
        ab = a * multiplier
        nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
        v = ab + nudge
        high = v >> 31 if v >= 0 else -((-v) >> 31)
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> right) + (1 if (high & mask) > threshold else 0)


def constant_channels(weights: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, out_zp: int,
                      lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-express the output channels whose weights are all zero (pruned channels) so that every kernel's
    requantization, fast one included, gives the same output: such a channel's sum is its bias whatever the
    input, so its output is the constant ``c = clamp(MultiplyByQuantizedMultiplier(bias) + out_zp)``; it gets
    bias ``4 (c - out_zp)``, multiplier 2^30 and shift -1, which give exactly ``c`` (the double 2 (c - out_zp),
    then halved without remainder). Pruned channels often carry a bias near 2^30 and a shift of -31 or 0, which
    would otherwise refuse the fast requantization to the whole layer.

    Args:
        weights: one row per output channel.
        bias: the channels' int32 sums without input (the bias, the input offset folded in where it is).
        mult, shift: the channels' requantization.
        out_zp, lo, hi: the output zero point and activation range.

    Returns:
        (bias, mult, shift), new int64 arrays (unchanged where a channel has a nonzero weight).
    """
    bias, mult, shift = (np.array(a, np.int64) for a in (bias, mult, shift))
    zero = ~np.any(weights.reshape(weights.shape[0], -1) != 0, axis=1)
    for c in np.flatnonzero(zero):
        v = multiply_by_quantized_multiplier(int(bias[c]), int(mult[c]), int(shift[c])) + out_zp
        bias[c], mult[c], shift[c] = 4 * (min(max(v, lo), hi) - out_zp), 1 << 30, -1
    return bias, mult, shift


def wrap_int32(values: np.ndarray) -> np.ndarray:
    """Values wrapped to int32 two's complement, as C stores them (returned as int64)."""
    v = np.asarray(values, np.int64)
    return ((v + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int64)


# ---- elementwise, reduce and requantize ops (ADD, MUL, MEAN, QUANTIZE) ---------------------------------------------

BROADCAST_RANK = 6  # TFLM's broadcast ops (BroadcastBinaryFunction6DSlow, kMaxMulBroadcastDim)
ADD_LEFT_SHIFT = 20  # add_common.cc: left_shift for int8 outputs


def quantize_multiplier_smaller_than_one_exp(real: float, where: str) -> tuple[int, int]:
    """tflite::QuantizeMultiplierSmallerThanOneExp: :func:`quantize_multiplier` for ``0 < real < 1``.

    Raises:
        ModelError: ``real`` outside (0, 1) (TFLM's TFLITE_CHECK aborts there).
    """
    if not 0.0 < real < 1.0:
        raise ModelError(f"{where}: a requantization multiplier of {real!r} is outside (0, 1) (TFLM's Prepare "
                         "refuses it); the scales of the inputs and the output do not fit an int8 ADD")
    return quantize_multiplier(real)


def add_multipliers(scale1: float, scale2: float, out_scale: float, where: str) -> dict[str, int]:
    """CalculateOpDataAdd for int8: input and output multipliers and shifts, ``left_shift`` 20.

    ``twice_max = 2 * double(max(s1, s2))``; input ``i`` gets ``double(s_i) / twice_max``; the output gets
    ``twice_max / ((1 << 20) * double(s_out))``; each through QuantizeMultiplierSmallerThanOneExp.
    """
    s1, s2, so = (float(np.float32(s)) for s in (scale1, scale2, out_scale))
    twice_max = 2 * max(s1, s2)
    m1, sh1 = quantize_multiplier_smaller_than_one_exp(s1 / twice_max, where)
    m2, sh2 = quantize_multiplier_smaller_than_one_exp(s2 / twice_max, where)
    mo, sho = quantize_multiplier_smaller_than_one_exp(twice_max / ((1 << ADD_LEFT_SHIFT) * so), where)
    return {"left_shift": ADD_LEFT_SHIFT, "input1_multiplier": m1, "input1_shift": sh1, "input2_multiplier": m2,
            "input2_shift": sh2, "output_multiplier": mo, "output_shift": sho}


def mul_multiplier(scale1: float, scale2: float, out_scale: float) -> tuple[int, int]:
    """CalculateOpDataMul for int8: ``double(s1) * double(s2) / double(s_out)`` through QuantizeMultiplier."""
    s1, s2, so = (float(np.float32(s)) for s in (scale1, scale2, out_scale))
    return quantize_multiplier(s1 * s2 / so)


def requantize_multiplier(in_scale: float, out_scale: float) -> tuple[int, int]:
    """QUANTIZE int8 -> int8 and MEAN's Prepare: ``double(s_in) / double(s_out)`` through QuantizeMultiplier."""
    return quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))


def mean_multiplier(multiplier: int, shift: int, count: int) -> tuple[int, int]:
    """QuantizedMeanOrSum (reference/reduce.h): the multiplier readapted to divide by ``count`` elements.

    ``s = min(floor(log2(count)), 32, 31 + shift)``; ``multiplier = (multiplier << s) / count`` (int64,
    truncating); ``shift -= s``.
    """
    s = min(count.bit_length() - 1, 32, 31 + shift)
    return int((multiplier << s) // count), shift - s


def broadcast_loops(shape1: tuple[int, ...], shape2: tuple[int, ...], out_shape: tuple[int, ...], where: str
                    ) -> tuple[list[int], list[int], list[int]]:
    """The loop nest of a broadcasting binary op (TFLM's BroadcastBinaryOpSimple, loops fused the same way).

    Shapes are aligned at their last dimension; a dimension of 1 in an input repeats it (stride 0). Adjacent
    dimensions that walk every tensor contiguously (or repeat the same element) are fused into one loop.

    Args:
        shape1: the first input's shape.
        shape2: the second input's shape.
        out_shape: the output's shape.
        where: names the model and op in an error.

    Returns:
        (sizes, strides of input 1, strides of input 2): :data:`BROADCAST_RANK` loops each, outermost first,
        padded at the front with loops of size 1; strides in elements (0: the input is repeated); the output
        is written contiguously.

    Raises:
        UnsupportedOpError: more than :data:`BROADCAST_RANK` dimensions.
        ModelError: shapes that do not broadcast to ``out_shape``.
    """
    rank = max(len(shape1), len(shape2), len(out_shape))
    if rank > BROADCAST_RANK:
        raise UnsupportedOpError(f"{where}: {rank}-D broadcasting is not supported (TFLM's kernels take at most "
                                 f"{BROADCAST_RANK} dimensions)")

    def extend(s: tuple[int, ...]) -> list[int]:
        return [1] * (rank - len(s)) + [int(d) for d in s]

    a, b, o = extend(shape1), extend(shape2), extend(out_shape)
    for da, db, do in zip(a, b, o, strict=True):
        if da not in (1, do) or db not in (1, do) or do != max(da, db) or do < 1:
            raise ModelError(f"{where}: input shapes {tuple(shape1)} and {tuple(shape2)} do not broadcast to the "
                             f"output shape {tuple(out_shape)}")
    loops: list[list[int]] = []  # innermost first: [size, stride a, stride b]
    acc_a = acc_b = 1
    for d in reversed(range(rank)):
        sa = 0 if a[d] == 1 and o[d] != 1 else acc_a
        sb = 0 if b[d] == 1 and o[d] != 1 else acc_b
        if o[d] != 1:
            if loops and _fusable(loops[-1], sa, sb):
                loops[-1][0] *= o[d]
            else:
                loops.append([o[d], sa, sb])
        acc_a *= a[d]
        acc_b *= b[d]
    loops = loops or [[1, 0, 0]]
    loops += [[1, 0, 0]] * (BROADCAST_RANK - len(loops))
    loops.reverse()
    return [x[0] for x in loops], [x[1] for x in loops], [x[2] for x in loops]


def _fusable(inner: list[int], sa: int, sb: int) -> bool:
    """A dimension with strides (sa, sb) continues the loop ``inner`` = [size, stride a, stride b]."""
    size, ia, ib = inner
    return all((s == 0 and i == 0) or (i != 0 and s == i * size) for s, i in ((sa, ia), (sb, ib)))


def reduce_loops(shape: tuple[int, ...], axes: list[int], where: str
                 ) -> tuple[list[int], list[int], list[int], list[int]]:
    """The loops of a reduction (MEAN) over ``axes`` of a tensor of ``shape``.

    Returns:
        (kept sizes, kept strides, reduced sizes, reduced strides), :data:`BROADCAST_RANK` loops each,
        outermost first, padded at the front with loops of size 1; adjacent dimensions of the same kind are
        fused. The kept loops enumerate the output elements in order.

    Raises:
        ModelError: an axis outside the tensor's dimensions.
        UnsupportedOpError: more than :data:`BROADCAST_RANK` dimensions.
    """
    rank = len(shape)
    if rank > BROADCAST_RANK:
        raise UnsupportedOpError(f"{where}: a reduction over a {rank}-D tensor is not supported (at most "
                                 f"{BROADCAST_RANK} dimensions)")
    resolved = set()
    for ax in axes:
        a = ax + rank if ax < 0 else ax
        if not 0 <= a < rank:
            raise ModelError(f"{where}: axis {ax} is outside the input's {rank} dimensions")
        resolved.add(a)
    groups: dict[bool, list[list[int]]] = {True: [], False: []}  # reduced? -> innermost first [size, stride]
    stride, last_kind = 1, None
    for d in reversed(range(rank)):
        kind = d in resolved
        if shape[d] != 1:
            g = groups[kind]
            if last_kind is kind and g and g[-1][1] * g[-1][0] == stride:
                g[-1][0] *= shape[d]
            else:
                g.append([shape[d], stride])
            last_kind = kind
        stride *= shape[d]
    out = []
    for kind in (False, True):
        g = groups[kind] + [[1, 0]] * (BROADCAST_RANK - len(groups[kind]))
        g.reverse()
        out += [[x[0] for x in g], [x[1] for x in g]]
    return out[0], out[1], out[2], out[3]
