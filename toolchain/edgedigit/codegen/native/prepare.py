"""TFLM's Prepare arithmetic, in Python: pure functions of scales, zero points and shapes.

What TFLM computes once per op before the first Invoke (requantization multipliers and shifts with
``frexp`` in double precision, activation ranges, paddings, softmax constants) is computed here at code
generation time, to the bit, and emitted as constants. Nothing here reads a graph: the op lowerings in
:mod:`.ops` pick the values out of the tensors and pass them in.
"""

from __future__ import annotations

import math

import numpy as np

from ...core.errors import UnsupportedOpError

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


def wrap_int32(values: np.ndarray) -> np.ndarray:
    """Values wrapped to int32 two's complement, as C stores them (returned as int64)."""
    v = np.asarray(values, np.int64)
    return ((v + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int64)
