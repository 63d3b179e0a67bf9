"""Property tests of the native backend's integer arithmetic, whole kernels at a time (issue 7).

``tests/test_native.py`` checks the requantization helpers (SRDHM, RoundingDivideByPOT,
MultiplyByQuantizedMultiplier) one call at a time and whole converter-made models. Here hypothesis draws
random layer shapes, strides, dilations, paddings, depth multipliers, scales, zero points and activation
ranges, including the saturation edges (inputs at -128/127, zero points at the ends of int8, effective
scales above 1 that shift left, clamps that cut most outputs), and the C kernels of
``firmware_templates/native/edgedigit_kernels.c`` (called through ctypes) must equal a numpy model of TFLM's
reference integer kernels element for element: FULLY_CONNECTED (with the weight packing and folded bias
the code generator produces), CONV_2D and DEPTHWISE_CONV_2D per channel, MAX_POOL_2D and AVERAGE_POOL_2D.
"""

from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO, require_tool
from edgedigit.codegen.native import (
    _wrap_int32,
    fast_requantize,
    pack_conv_weights,
    pack_fc_weights,
    quantize_multiplier,
)

KERNELS = REPO / "firmware_templates" / "native"
I8P, I32P = ctypes.POINTER(ctypes.c_int8), ctypes.POINTER(ctypes.c_int32)
SETTINGS = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class FC(ctypes.Structure):
    _fields_ = [("batches", ctypes.c_int32), ("in_depth", ctypes.c_int32), ("out_depth", ctypes.c_int32),
                ("weights", I8P), ("bias", I32P), ("multiplier", I32P), ("shift", I32P),
                ("output_offset", ctypes.c_int32), ("act_min", ctypes.c_int32), ("act_max", ctypes.c_int32),
                ("fast_requantize", ctypes.c_int32)]


class Conv(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in ("batches", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h",
                                              "k_w", "stride_h", "stride_w", "dil_h", "dil_w", "pad_h", "pad_w",
                                              "depth_multiplier")] + [
        ("weights", I8P), ("bias", I32P), ("multiplier", I32P), ("shift", I32P),
        ("input_offset", ctypes.c_int32), ("output_offset", ctypes.c_int32),
        ("act_min", ctypes.c_int32), ("act_max", ctypes.c_int32), ("fast_requantize", ctypes.c_int32)]


class Pool(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in ("batches", "in_h", "in_w", "channels", "out_h", "out_w", "f_h", "f_w",
                                              "stride_h", "stride_w", "pad_h", "pad_w", "act_min", "act_max")]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    cc = require_tool("cc")
    so = tmp_path_factory.mktemp("kernels") / "libedgedigit_kernels.so"
    subprocess.run([cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", f"-I{KERNELS}",
                    f"-I{KERNELS.parent / 'runtime'}",
                    str(KERNELS / "edgedigit_kernels.c"), "-o", str(so)], check=True, capture_output=True)
    lib = ctypes.CDLL(str(so))
    lib.edgedigit_fully_connected.argtypes = [ctypes.POINTER(FC), I8P, I8P]
    lib.edgedigit_conv2d.argtypes = [ctypes.POINTER(Conv), I8P, I8P]
    lib.edgedigit_depthwise_conv2d.argtypes = [ctypes.POINTER(Conv), I8P, I8P]
    lib.edgedigit_max_pool.argtypes = [ctypes.POINTER(Pool), I8P, I8P]
    lib.edgedigit_average_pool.argtypes = [ctypes.POINTER(Pool), I8P, I8P]
    lib.edgedigit_average_pool.restype = ctypes.c_int
    return lib


def _p(a: np.ndarray, ptr):
    return a.ctypes.data_as(ptr)


# ---- a numpy model of TFLM's reference integer arithmetic --------------------------------------------------

def mbqm(x: np.ndarray, m: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """tflite::MultiplyByQuantizedMultiplier (double rounding), vectorized, exact in int64."""
    x, m, shift = (np.asarray(v, np.int64) for v in (x, m, shift))
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    x = _wrap_int32(x << left)
    ab = x * m  # |x|, |m| < 2^31: exact; m >= 0 so the INT32_MIN * INT32_MIN case cannot occur
    num = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    q = np.sign(num) * (np.abs(num) >> 31)  # C's division truncates toward zero
    mask = (np.int64(1) << right) - 1
    rem, threshold = q & mask, (mask >> 1) + (q < 0)
    return (q >> right) + (rem > threshold)


def requant(acc: np.ndarray, m, s, out_zp: int, lo: int, hi: int) -> np.ndarray:
    return np.clip(mbqm(acc, m, s) + out_zp, lo, hi).astype(np.int8)


# ---- drawing layers -----------------------------------------------------------------------------------------

def _int8(rng: np.random.Generator, shape, edge: int) -> np.ndarray:
    """Random int8; ``edge`` 1: all -128, 2: all 127, 3: only -128/127, else uniform."""
    if edge == 1:
        return np.full(shape, -128, np.int8)
    if edge == 2:
        return np.full(shape, 127, np.int8)
    if edge == 3:
        return rng.choice(np.array([-128, 127], np.int8), shape)
    return rng.integers(-128, 128, shape, dtype=np.int64).astype(np.int8)


@st.composite
def quant(draw, channels: int):
    """Zero points, per-channel multipliers/shifts from real scales, and an activation range."""
    in_zp = draw(st.sampled_from([-128, 127, 0]) | st.integers(-128, 127))
    out_zp = draw(st.sampled_from([-128, 127, 0]) | st.integers(-128, 127))
    # effective scale in_scale * w_scale / out_scale: from tiny (shift -31 and beyond) to above 1 (left shift)
    exps = draw(st.lists(st.floats(-34.0, 3.0), min_size=1, max_size=1)) if draw(st.booleans()) else \
        draw(st.lists(st.floats(-34.0, 3.0), min_size=channels, max_size=channels))
    scales = [2.0 ** e for e in (exps * channels if len(exps) == 1 else exps)]
    ms = [quantize_multiplier(s) for s in scales]
    lo = draw(st.integers(-128, 127))
    hi = draw(st.integers(lo, 127))
    if draw(st.booleans()):
        lo, hi = -128, 127
    return (in_zp, out_zp, np.array([m for m, _ in ms], np.int32), np.array([s for _, s in ms], np.int32), lo, hi)


@st.composite
def fc_case(draw):
    n = draw(st.integers(1, 40))
    out_d = draw(st.integers(1, 13))
    batches = draw(st.integers(1, 3))
    return n, out_d, batches, draw(quant(out_d)), draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 4))


@SETTINGS
@given(fc_case())
def test_fully_connected_equals_tflm_reference(lib, case):
    n, out_d, batches, (in_zp, out_zp, m, s, lo, hi), seed, edge = case
    rng = np.random.default_rng(seed)
    x = _int8(rng, (batches, n), edge)
    w = _int8(rng, (out_d, n), edge if edge != 3 else 0)
    bias = rng.integers(-(2**20), 2**20, out_d, dtype=np.int64)
    # TFLM: acc = bias + sum((x - in_zp) * w), exact in int32
    acc = bias[None, :] + ((x.astype(np.int64) - in_zp) @ w.astype(np.int64).T)
    want = requant(acc, m[None, :], s[None, :], out_zp, lo, hi)
    packed = pack_fc_weights(w)
    folded = _wrap_int32(bias + (-in_zp) * w.astype(np.int64).sum(axis=1)).astype(np.int32)
    out = np.zeros((batches, out_d), np.int8)
    p = FC(batches, n, out_d, _p(packed, I8P), _p(folded, I32P), _p(m, I32P), _p(s, I32P), out_zp, lo, hi,
           int(fast_requantize(w, folded, s)))
    lib.edgedigit_fully_connected(ctypes.byref(p), _p(np.ascontiguousarray(x), I8P), _p(out, I8P))
    assert np.array_equal(out, want)


@st.composite
def conv_case(draw, depthwise: bool):
    k_h, k_w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dil_h, dil_w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride_h, stride_w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pad_h, pad_w = draw(st.integers(0, dil_h * (k_h - 1))), draw(st.integers(0, dil_w * (k_w - 1)))
    min_h, min_w = max(1, dil_h * (k_h - 1) + 1 - 2 * pad_h), max(1, dil_w * (k_w - 1) + 1 - 2 * pad_w)
    in_h, in_w = draw(st.integers(min_h, min_h + 6)), draw(st.integers(min_w, min_w + 6))
    in_c = draw(st.integers(1, 5))
    dm = draw(st.integers(1, 3)) if depthwise else 1
    out_c = in_c * dm if depthwise else draw(st.integers(1, 6))
    out_h = (in_h + 2 * pad_h - dil_h * (k_h - 1) - 1) // stride_h + 1
    out_w = (in_w + 2 * pad_w - dil_w * (k_w - 1) - 1) // stride_w + 1
    geo = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=k_h, k_w=k_w,
               stride_h=stride_h, stride_w=stride_w, dil_h=dil_h, dil_w=dil_w, pad_h=pad_h, pad_w=pad_w,
               depth_multiplier=dm)
    return geo, draw(st.integers(1, 2)), draw(quant(out_c)), draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 4))


def conv_reference(x, w, bias, g, in_zp, depthwise: bool) -> np.ndarray:
    """reference_integer_ops::ConvPerChannel / DepthwiseConvPerChannel accumulators (before requantization)."""
    b = x.shape[0]
    xp = np.zeros((b, g["in_h"] + 2 * g["pad_h"] + g["dil_h"] * g["k_h"] + g["stride_h"] * g["out_h"],
                   g["in_w"] + 2 * g["pad_w"] + g["dil_w"] * g["k_w"] + g["stride_w"] * g["out_w"], g["in_c"]), np.int64)
    inside = np.zeros(xp.shape[1:3], bool)
    xp[:, g["pad_h"]:g["pad_h"] + g["in_h"], g["pad_w"]:g["pad_w"] + g["in_w"]] = x.astype(np.int64) - in_zp
    inside[g["pad_h"]:g["pad_h"] + g["in_h"], g["pad_w"]:g["pad_w"] + g["in_w"]] = True
    acc = np.zeros((b, g["out_h"], g["out_w"], g["out_c"]), np.int64)
    for fy in range(g["k_h"]):
        for fx in range(g["k_w"]):
            ys = fy * g["dil_h"] + g["stride_h"] * np.arange(g["out_h"])
            xs = fx * g["dil_w"] + g["stride_w"] * np.arange(g["out_w"])
            patch = xp[:, ys][:, :, xs] * inside[np.ix_(ys, xs)][None, :, :, None]  # padding taps: skipped (0)
            if depthwise:
                acc += np.repeat(patch, g["depth_multiplier"], axis=3) * w[fy, fx].astype(np.int64)
            else:
                acc += patch @ w[:, fy, fx, :].astype(np.int64).T
    return acc + bias


@SETTINGS
@given(conv_case(depthwise=False))
def test_conv2d_equals_tflm_reference(lib, case):
    _check_conv(lib, case, depthwise=False)


@SETTINGS
@given(conv_case(depthwise=True))
def test_depthwise_conv2d_equals_tflm_reference(lib, case):
    _check_conv(lib, case, depthwise=True)


def _check_conv(lib, case, depthwise: bool) -> None:
    g, batches, (in_zp, out_zp, m, s, lo, hi), seed, edge = case
    rng = np.random.default_rng(seed)
    x = _int8(rng, (batches, g["in_h"], g["in_w"], g["in_c"]), edge)
    wshape = (g["k_h"], g["k_w"], g["out_c"]) if depthwise else (g["out_c"], g["k_h"], g["k_w"], g["in_c"])
    w = _int8(rng, wshape, edge if edge != 3 else 0)
    bias = rng.integers(-(2**20), 2**20, g["out_c"], dtype=np.int64)
    want = requant(conv_reference(x, w, bias, g, in_zp, depthwise), m, s, out_zp, lo, hi)
    out = np.zeros(want.shape, np.int8)
    b32, weights = bias.astype(np.int32), np.ascontiguousarray(w)
    fast = int(fast_requantize(w.reshape(-1, g["out_c"]).T, b32, s, max(abs(-128 - in_zp), abs(127 - in_zp))))
    if not depthwise:  # as the code generator: packed weights, the input offset folded into the bias
        weights = pack_conv_weights(w)
        b32 = _wrap_int32(bias + (-in_zp) * w.astype(np.int64).reshape(g["out_c"], -1).sum(axis=1)).astype(np.int32)
        fast = int(fast_requantize(w, b32, s))
    p = Conv(batches=batches, **g, weights=_p(weights, I8P), bias=_p(b32, I32P),
             multiplier=_p(m, I32P), shift=_p(s, I32P), input_offset=-in_zp, output_offset=out_zp, act_min=lo,
             act_max=hi, fast_requantize=fast)
    fn = lib.edgedigit_depthwise_conv2d if depthwise else lib.edgedigit_conv2d
    fn(ctypes.byref(p), _p(np.ascontiguousarray(x), I8P), _p(out, I8P))
    assert np.array_equal(out, want)


@st.composite
def pool_case(draw):
    f_h, f_w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride_h, stride_w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pad_h, pad_w = draw(st.integers(0, f_h - 1)), draw(st.integers(0, f_w - 1))
    in_h, in_w = draw(st.integers(max(1, f_h - 2 * pad_h), 9)), draw(st.integers(max(1, f_w - 2 * pad_w), 9))
    out_h = (in_h + 2 * pad_h - f_h) // stride_h + 1
    out_w = (in_w + 2 * pad_w - f_w) // stride_w + 1
    lo = draw(st.integers(-128, 127))
    hi = draw(st.integers(lo, 127))
    if draw(st.booleans()):
        lo, hi = -128, 127
    return (dict(batches=draw(st.integers(1, 2)), in_h=in_h, in_w=in_w, channels=draw(st.integers(1, 5)),
                 out_h=out_h, out_w=out_w, f_h=f_h, f_w=f_w, stride_h=stride_h, stride_w=stride_w, pad_h=pad_h,
                 pad_w=pad_w, act_min=lo, act_max=hi), draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 4)))


def pool_reference(x: np.ndarray, g: dict, average: bool) -> np.ndarray:
    """reference_integer_ops::MaxPool / AveragePool: window clipped to the image, average rounded half away
    from zero (C division), clamped."""
    out = np.zeros((g["batches"], g["out_h"], g["out_w"], g["channels"]), np.int64)
    for oy in range(g["out_h"]):
        for ox in range(g["out_w"]):
            y0, x0 = oy * g["stride_h"] - g["pad_h"], ox * g["stride_w"] - g["pad_w"]
            win = x[:, max(y0, 0):min(y0 + g["f_h"], g["in_h"]), max(x0, 0):min(x0 + g["f_w"], g["in_w"])]
            win = win.astype(np.int64).reshape(g["batches"], -1, g["channels"])
            if average:
                total, count = win.sum(axis=1), win.shape[1]
                out[:, oy, ox] = np.where(total > 0, (total + count // 2) // count,
                                          -((-total + count // 2) // count))
            else:
                out[:, oy, ox] = win.max(axis=1)
    return np.clip(out, g["act_min"], g["act_max"]).astype(np.int8)


@SETTINGS
@given(pool_case(), st.booleans())
def test_pools_equal_tflm_reference(lib, case, average):
    g, seed, edge = case
    x = _int8(np.random.default_rng(seed), (g["batches"], g["in_h"], g["in_w"], g["channels"]), edge)
    want = pool_reference(x, g, average)
    out = np.zeros(want.shape, np.int8)
    p = Pool(**g)
    if average:
        assert lib.edgedigit_average_pool(ctypes.byref(p), _p(np.ascontiguousarray(x), I8P), _p(out, I8P)) == 0
    else:
        lib.edgedigit_max_pool(ctypes.byref(p), _p(np.ascontiguousarray(x), I8P), _p(out, I8P))
    assert np.array_equal(out, want)


def test_average_pool_refuses_an_empty_window(lib):
    p = Pool(batches=1, in_h=2, in_w=2, channels=1, out_h=2, out_w=1, f_h=1, f_w=1, stride_h=3, stride_w=1,
             pad_h=0, pad_w=0, act_min=-128, act_max=127)  # the second output row starts below the image
    x, out = np.ones(4, np.int8), np.zeros(2, np.int8)
    assert lib.edgedigit_average_pool(ctypes.byref(p), _p(x, I8P), _p(out, I8P)) == -1


def test_reference_model_saturates_like_tflm():
    """The numpy model itself on hand-computed edges: rounding of halves, left-shift wrap, clamps."""
    assert mbqm(np.array([1 << 30]), np.array([1 << 30]), np.array([0]))[0] == 1 << 29
    assert mbqm(np.array([3]), np.array([1 << 30]), np.array([0]))[0] == 2  # 1.5 -> 2
    assert mbqm(np.array([-3]), np.array([1 << 30]), np.array([0]))[0] == -1  # gemmlowp's nudge: -1.5 -> -1
    assert mbqm(np.array([-3]), np.array([1 << 30]), np.array([-1]))[0] == -1  # RoundingDivideByPOT(-2, 1)
    assert mbqm(np.array([-5]), np.array([1 << 30]), np.array([-1]))[0] == -1  # -2.5 -> -2, then -1
    assert mbqm(np.array([3 << 29]), np.array([1 << 30]), np.array([2]))[0] == -(1 << 30)  # x << 2 wraps to -2^31
    assert requant(np.array([10**9]), 2**31 - 1, 0, 5, -128, 127)[0] == 127
