"""The native C backend: generated C vs TFLM element for element, refusals, compilers, memory plan."""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import require_tool
from edgedigit.codegen import native as codegen
from edgedigit.codegen.native import planner
from edgedigit.core.errors import ModelError, UnsupportedOpError
from edgedigit.core.graph import load_graph
from edgedigit.core.int8 import quantize_images
from edgedigit.runtimes import run_tflm
from edgedigit.runtimes.native_host import NativeModel
from tflite_factory import op_models, random_images

FACTORY = ["mlp", "mlp_pertensor", "cnn", "dw_mult"]
OP_MODELS = ["add", "add_broadcast", "add_5d", "add_const", "mul", "pad", "concat", "mean", "mean_channels",
             "requantize", "dilated", "depthwise3x3"]
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


@pytest.fixture(scope="session")
def native_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("native_cache")


def _int8_inputs(path: Path, images: np.ndarray) -> np.ndarray:
    g = load_graph(path)
    return quantize_images(images, float(g.input.scale[0]), int(g.input.zero_point[0]))


def _assert_same_as_tflm(path: Path, images: np.ndarray, cache: Path) -> None:
    x = _int8_inputs(path, images)
    model = NativeModel(path, cache_dir=cache)
    got, want = model.run(x), run_tflm(path, x)
    assert got.dtype == np.int8 and got.shape == want.shape
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"{path.name}: {len(bad)} elements differ from TFLM, first at {bad[:3].tolist()}"


def test_every_factory_model_is_compared_with_tflm(tflite_models):
    # a model added to tflite_factory must join a comparison list, or it would never be checked
    assert set(tflite_models) == set(FACTORY)
    assert set(op_models()) == set(OP_MODELS)


@pytest.mark.parametrize("name", FACTORY)
def test_factory_models_equal_tflm_on_random_images(tflite_models, native_cache, name):
    _assert_same_as_tflm(tflite_models[name], random_images(300, seed=7), native_cache)


@pytest.mark.mnist
@pytest.mark.parametrize("name", FACTORY)
def test_factory_models_equal_tflm_on_mnist(tflite_models, native_cache, mnist, name):
    _assert_same_as_tflm(tflite_models[name], mnist.x_test[:300], native_cache)


@pytest.mark.mnist
@pytest.mark.slow
@pytest.mark.parametrize("variant", ["mlp", "mlp-pruned"])
def test_trained_models_equal_tflm(trained_build, native_cache, mnist, variant):
    _assert_same_as_tflm(trained_build / "models" / variant / "model_int8.tflite", mnist.x_test[:300], native_cache)


@pytest.mark.parametrize("name", OP_MODELS)
def test_op_models_equal_tflm_on_full_range_int8(native_cache, name):
    """ADD, MUL (broadcast, 5-D, constant operands), PAD, CONCATENATION, MEAN, QUANTIZE, dilated and strided
    convolutions: each model's output is the op's output; full-range random int8 inputs and digit-like images."""
    path = op_models()[name]
    g = load_graph(path)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.integers(-128, 128, (300, *g.input.shape[1:])).astype(np.int8),
                        np.full((1, *g.input.shape[1:]), -128, np.int8), np.full((1, *g.input.shape[1:]), 127, np.int8),
                        _int8_inputs(path, random_images(100, seed=12))])
    got, want = NativeModel(path, cache_dir=native_cache).run(x), run_tflm(path, x)
    assert got.shape == want.shape and got.size >= 300 * 16
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"{name}: {len(bad)} of {got.size} elements differ from TFLM, first at {bad[:3].tolist()}"
    assert len(np.unique(got)) > 32  # not a saturated output: the arithmetic is exercised


def test_registered_runtime_builds_into_the_build_tree(tflite_models, build_dir):
    from edgedigit.runtimes import run_int8

    path = tflite_models["mlp_pertensor"]
    x = _int8_inputs(path, random_images(20, seed=5))
    np.testing.assert_array_equal(run_int8("native", path, x), run_tflm(path, x))
    assert len(list((build_dir / "cache" / "native").glob("*/libedgedigit_native.so"))) == 1


def test_firmware_runner_quantizes_pixels_and_picks_first_max(tflite_models, native_cache):
    """``edgedigit_model_invoke`` (the firmware entry point) on raw pixels == TFLM on the LUT's int8."""
    path = tflite_models["dw_mult"]
    images = random_images(40, seed=3)
    want = run_tflm(path, _int8_inputs(path, images))
    model = NativeModel(path, cache_dir=native_cache)
    assert model.has_runner
    for img, w in zip(images, want, strict=True):
        cls, raw = model.invoke_pixels(img)
        assert raw.tolist() == w.astype(np.int32).tolist()
        assert cls == int(np.argmax(w))


def test_plan_mlp_aliases_reshape_and_meets_the_bound(tflite_models):
    g = load_graph(tflite_models["mlp"])
    mp = codegen.plan(g)
    reshape = next(op for op in g.ops if op.opcode == "RESHAPE")
    assert mp.offsets[reshape.inputs[0]] == mp.offsets[reshape.outputs[0]]
    # input 784 + first FC output 32 are alive together; nothing else is larger
    assert mp.lower_bound == 784 + 32
    assert mp.arena_bytes == mp.lower_bound


@pytest.mark.parametrize("name", FACTORY)
def test_plan_within_ten_percent_of_bound_and_reported_by_the_library(tflite_models, native_cache, name):
    g = load_graph(tflite_models[name])
    mp = codegen.plan(g)
    assert mp.lower_bound <= mp.arena_bytes <= 1.1 * mp.lower_bound
    assert NativeModel(tflite_models[name], cache_dir=native_cache).arena_bytes == mp.arena_bytes


def _tiny_model(activation: str | None, quantize: bool) -> bytes:
    import tf_keras as keras
    from tf_keras import layers as L

    from tflite_factory import convert

    keras.utils.set_random_seed(0)
    m = keras.Sequential([L.Flatten(batch_input_shape=(1, 28, 28)), L.Dense(8, activation=activation), L.Dense(10)])
    if quantize:
        return convert(m, (np.random.default_rng(0).random((16, 28, 28)) ** 3).astype(np.float32))
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(m).convert()


@pytest.fixture(scope="module")
def wide_softmax_model(tmp_path_factory):
    """Per-tensor FCs with odd sizes (37 inputs, 13 outputs: both kernel tails) into a softmax with a wide
    input range (large weights), so that differences below diff_min occur."""
    import tf_keras as keras
    from tf_keras import layers as L

    from tflite_factory import convert

    keras.utils.set_random_seed(0)
    m = keras.Sequential([L.Flatten(batch_input_shape=(1, 28, 28)), L.Dense(37, activation="relu"), L.Dense(13),
                          L.Softmax()])
    rng = np.random.default_rng(0)
    m.layers[2].set_weights([rng.normal(0, 2, (37, 13)).astype(np.float32), rng.normal(0, 2, 13).astype(np.float32)])
    path = tmp_path_factory.mktemp("wide") / "wide_softmax.tflite"
    path.write_bytes(convert(m, random_images(64, seed=4).astype(np.float32) / 255, per_channel_dense=False))
    return path


def test_odd_fc_and_softmax_edges_equal_tflm(wide_softmax_model, native_cache):
    g = load_graph(wide_softmax_model)
    sm = next(op for op in g.ops if op.opcode == "SOFTMAX")
    _, _, diff_min = codegen.softmax_params(1.0, float(g.tensors[sm.inputs[0]].scale[0]))
    assert diff_min > -255  # some differences fall below diff_min: that branch runs
    edges = np.stack([np.zeros((28, 28), np.uint8), np.full((28, 28), 255, np.uint8),
                      np.tile(np.array([0, 255], np.uint8), (28, 14))])
    images = np.concatenate([edges, random_images(400, seed=9), 255 - random_images(100, seed=10)])
    _assert_same_as_tflm(wide_softmax_model, images, native_cache)


def test_unsupported_op_is_refused_by_name(tmp_path):
    path = tmp_path / "tanh.tflite"
    path.write_bytes(_tiny_model("tanh", quantize=True))
    g = load_graph(path)
    assert "TANH" in g.op_names()
    with pytest.raises(UnsupportedOpError) as e:
        codegen.generate(g, variant="tanh", source_name=path.name)
    msg = str(e.value)
    assert "TANH" in msg and str(path) in msg and "FULLY_CONNECTED" in msg and "\n" not in msg


def test_float_model_is_refused(tmp_path):
    path = tmp_path / "float.tflite"
    path.write_bytes(_tiny_model("relu", quantize=False))
    with pytest.raises(ModelError, match=r"input float32, output float32: the firmware needs an integer-quantized "
                                         r"model .*quantize it with full integer quantization first"):
        NativeModel(path, cache_dir=tmp_path / "cache")


def test_wrong_input_is_refused(tflite_models, native_cache):
    model = NativeModel(tflite_models["mlp"], cache_dir=native_cache)
    with pytest.raises(ModelError, match="int8"):
        model.run(np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ModelError, match=r"\(1, 28, 28\)"):
        model.run(np.zeros((2, 784), np.int8))


def test_generation_is_deterministic(tflite_models):
    g = load_graph(tflite_models["cnn"])
    a = codegen.generate(g, variant="cnn", source_name="cnn.tflite")
    b = codegen.generate(load_graph(tflite_models["cnn"]), variant="cnn", source_name="cnn.tflite")
    assert a == b
    assert set(a) == {"edgedigit_kernels.h", "edgedigit_kernels.c", "edgedigit_native_model.h",
                      "edgedigit_native_model.c", "edgedigit_native_runner.c"}
    assert "DO NOT EDIT" in a["edgedigit_native_model.c"] and g.sha256 in a["edgedigit_native_runner.c"]


# ---- compilers -------------------------------------------------------------------------------------------

def _write_sources(tflite: Path, out: Path) -> list[str]:
    from edgedigit.core.paths import templates_dir

    files = codegen.generate(load_graph(tflite), variant="cnn", source_name=tflite.name)
    for name in ("edgedigit_model.h", codegen.ROM_HEADER):
        files[name] = (templates_dir() / "runtime" / name).read_text()
    for name, text in files.items():
        (out / name).write_text(text)
    return sorted(n for n in files if n.endswith(".c"))


WARN = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-c"]


@pytest.mark.tool
@pytest.mark.parametrize("cc,flags", [
    ("gcc", []), ("clang", []),
    ("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]),
    ("arm-none-eabi-gcc", ["-mcpu=cortex-m0", "-mthumb"]),
])
@pytest.mark.parametrize("name", ["cnn", "dw_mult"])
def test_generated_c_compiles_without_warnings(tflite_models, tmp_path, cc, flags, name):
    exe = require_tool(cc)
    for src in _write_sources(tflite_models[name], tmp_path):
        res = subprocess.run([exe, *WARN, *flags, src, "-o", src + ".o"], cwd=tmp_path, capture_output=True, text=True)
        assert res.returncode == 0 and res.stderr == "", f"{cc} {flags} {src}:\n{res.stderr}"


@pytest.mark.tool
@pytest.mark.parametrize("cc,flags", [
    ("gcc", []), ("clang", []),
    ("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]),
    ("arm-none-eabi-gcc", ["-mcpu=cortex-m0", "-mthumb"]),
])
def test_op_kernels_compile_without_warnings(tmp_path, cc, flags):
    """Every kernel family and the model code of multi-input ops (compound literals, constant operands)."""
    exe = require_tool(cc)
    for name in ("add_const", "add_5d", "requantize", "pad", "mean_channels"):
        out = tmp_path / name
        out.mkdir()
        files = codegen.generate_graph(load_graph(op_models()[name]), variant=name, source_name=f"{name}.tflite")
        for fname, text in files.items():
            (out / fname).write_text(text)
        for src in sorted(f for f in files if f.endswith(".c")):
            res = subprocess.run([exe, *WARN, *flags, src, "-o", src + ".o"], cwd=out, capture_output=True, text=True)
            assert res.returncode == 0 and res.stderr == "", f"{cc} {flags} {name}/{src}:\n{res.stderr}"


# ---- planner properties ------------------------------------------------------------------------------------

buffers_st = st.lists(
    st.tuples(st.integers(1, 64), st.integers(0, 12), st.integers(0, 6)).map(
        lambda t: planner.Buffer("b", t[0], t[1], t[1] + t[2])),
    min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(buffers_st, st.sampled_from([1, 4]))
def test_planner_never_overlaps_live_buffers_and_respects_the_bound(buffers, alignment):
    offsets, arena = planner.place(buffers, alignment)
    for i, a in enumerate(buffers):
        assert offsets[i] % alignment == 0 and offsets[i] + a.size <= arena
        for j in range(i + 1, len(buffers)):
            b = buffers[j]
            if a.overlaps_in_time(b):
                assert offsets[i] + a.size <= offsets[j] or offsets[j] + b.size <= offsets[i]
    assert arena >= planner.lower_bound(buffers)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 100), min_size=1, max_size=10))
def test_planner_is_optimal_on_chains(sizes):
    """A chain a0 -> a1 -> ... (each op reads one buffer, writes the next) fits in the bound exactly."""
    buffers = [planner.Buffer(f"t{i}", s, max(i - 1, 0), i) for i, s in enumerate(sizes)]
    _, arena = planner.place(buffers, alignment=1)
    assert arena == planner.lower_bound(buffers) == max(
        [sizes[0]] + [a + b for a, b in zip(sizes, sizes[1:], strict=False)])


# ---- requantization helpers vs a model of TFLM's arithmetic ----------------------------------------------

def _srdhm(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    num = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    q = abs(num) // (1 << 31)
    return q if num >= 0 else -q  # C's division truncates toward zero


def _rdbypot(x: int, e: int) -> int:
    mask = (1 << e) - 1
    return (x >> e) + int((x & mask) > (mask >> 1) + int(x < 0))


def _wrap32(v: int) -> int:
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


def _mbqm(x: int, m: int, shift: int) -> int:
    return _rdbypot(_srdhm(_wrap32(x << max(shift, 0)), m), max(-shift, 0))


@pytest.fixture(scope="module")
def kernels_lib(tflite_models, native_cache):
    lib = ctypes.CDLL(str(NativeModel(tflite_models["mlp"], cache_dir=native_cache).library))
    for name, n in (("edgedigit_srdhm", 2), ("edgedigit_rounding_divide_by_pot", 2),
                    ("edgedigit_multiply_by_quantized_multiplier", 3)):
        getattr(lib, name).argtypes = [ctypes.c_int32] * n
        getattr(lib, name).restype = ctypes.c_int32
    return lib


i32 = st.integers(INT32_MIN, INT32_MAX)


@settings(max_examples=500, deadline=None)
@given(i32, i32)
def test_srdhm_matches_gemmlowp(kernels_lib, a, b):
    assert kernels_lib.edgedigit_srdhm(a, b) == _srdhm(a, b)


def test_srdhm_saturation_edges(kernels_lib):
    assert kernels_lib.edgedigit_srdhm(INT32_MIN, INT32_MIN) == INT32_MAX
    assert kernels_lib.edgedigit_srdhm(INT32_MIN, INT32_MAX) == -INT32_MAX
    assert kernels_lib.edgedigit_srdhm(INT32_MAX, INT32_MAX) == INT32_MAX - 1


@settings(max_examples=500, deadline=None)
@given(i32, st.integers(0, 31))
def test_rounding_divide_by_pot_matches_gemmlowp(kernels_lib, x, e):
    assert kernels_lib.edgedigit_rounding_divide_by_pot(x, e) == _rdbypot(x, e)


@settings(max_examples=1000, deadline=None)
@given(i32, st.integers(0, INT32_MAX), st.integers(-31, 30))
def test_multiply_by_quantized_multiplier_matches_tflm(kernels_lib, x, m, shift):
    assert kernels_lib.edgedigit_multiply_by_quantized_multiplier(x, m, shift) == _mbqm(x, m, shift)


def test_quantize_multiplier_like_tflm():
    assert codegen.quantize_multiplier(0.5) == (1 << 30, 0)
    assert codegen.quantize_multiplier(1.0) == (1 << 30, 1)
    assert codegen.quantize_multiplier(0.0) == (0, 0)
    assert codegen.quantize_multiplier(2.0 ** -40) == (0, 0)  # shift < -31 flushes to zero
    # q * 2^31 rounds up to 2^31: halved, shift + 1
    assert codegen.quantize_multiplier(1.0 - 2.0 ** -33) == (1 << 30, 1)
    m, s = codegen.quantize_multiplier(0.0123)
    assert (1 << 30) <= m < (1 << 31) and abs(m * 2.0 ** s / 2 ** 31 - 0.0123) < 1e-9


def test_per_tensor_fc_multiplier_multiplies_scales_in_float32(tflite_models):
    """TFLM's GetQuantizedConvolutionMultipler: double(input_scale * filter_scale) with a float32 product."""
    g = load_graph(tflite_models["mlp_pertensor"])
    files = codegen.generate_graph(g, variant="m", source_name="m.tflite")
    for n, op in enumerate(g.ops):
        if op.opcode != "FULLY_CONNECTED":
            continue
        t_in, w, t_out = (g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]])
        assert w.scale.size == 1
        real = float(np.float32(t_in.scale[0]) * np.float32(w.scale[0])) / float(np.float32(t_out.scale[0]))
        m, _ = codegen.quantize_multiplier(real)
        assert f"g_op{n}_multiplier[{w.shape[0]}] EDGEDIGIT_ROM = {{\n    {m}, {m}," in files["edgedigit_native_model.c"]


def test_pack_fc_weights_layout():
    w = np.arange(6 * 6, dtype=np.int64).reshape(6, 6).astype(np.int8)
    packed = codegen.pack_fc_weights(w)
    block = [0, 1, 2, 3, 6, 7, 8, 9, 12, 13, 14, 15, 18, 19, 20, 21, 4, 5, 10, 11, 16, 17, 22, 23]
    assert packed.tolist() == block + list(range(24, 36))


def test_pack_conv_weights_layout():
    """Taps padded to a multiple of 4, channels to an even count, pairs interleaved by groups of 4 taps."""
    w = np.arange(1, 3 * 1 * 1 * 6 + 1, dtype=np.int64).reshape(3, 1, 1, 6).astype(np.int8)  # 3 channels, 6 taps
    packed = codegen.pack_conv_weights(w)
    assert packed.tolist() == [1, 2, 3, 4, 7, 8, 9, 10, 5, 6, 0, 0, 11, 12, 0, 0,
                               13, 14, 15, 16, 0, 0, 0, 0, 17, 18, 0, 0, 0, 0, 0, 0]


def test_fast_requantize_needs_sums_below_2_30_and_a_right_shift():
    """The M4 kernels' fast requantization is chosen only when it is exact (see edgedigit_kernels.c)."""
    w = np.full((2, 8), 127, np.int8)  # 128 * 127 * 8 = 130,048 per channel
    room = (1 << 30) - 1 - 130_048
    assert codegen.fast_requantize(w, np.array([room, -room]), np.array([-1, -31]))
    assert not codegen.fast_requantize(w, np.array([room + 1, 0]), np.array([-1, -1]))
    assert not codegen.fast_requantize(w, np.array([0, 0]), np.array([-1, 0]))
    assert not codegen.fast_requantize(w, np.array([0, 0]), np.array([2, -3]))
    assert codegen.fast_requantize(w, np.array([0, 0]), np.array([-5, -5]), x_max=255)


def test_pruned_channels_become_their_constant_output_exactly():
    """A channel with all-zero weights gets bias 4 (c - zp), multiplier 2^30, shift -1: MultiplyByQuantizedMultiplier
    of its sum then gives its TFLM output c, for biases near 2^30 and shifts of -31 and 0 (as vww01's), clamped."""
    from edgedigit.codegen.native.prepare import constant_channels, multiply_by_quantized_multiplier

    rng = np.random.default_rng(5)
    n = 400
    bias = rng.integers(-(1 << 31), 1 << 31, n)
    bias[:50] = rng.integers((1 << 30) - 200, (1 << 30) + 200, 50)
    mult = rng.integers(1 << 30, (1 << 31) - 1, n)
    shift = rng.integers(-31, 2, n)
    shift[:10] = 0
    w = np.zeros((n, 9), np.int8)
    w[-1, 3] = 1  # a live channel: unchanged
    for zp, lo, hi in ((-128, -128, 127), (3, 3, 50)):
        b2, m2, s2 = constant_channels(w, bias, mult, shift, zp, lo, hi)
        assert (b2[-1], m2[-1], s2[-1]) == (bias[-1], mult[-1], shift[-1])
        for c in range(n - 1):
            want = min(max(_mbqm(int(bias[c]), int(mult[c]), int(shift[c])) + zp, lo), hi)
            assert (m2[c], s2[c]) == (1 << 30, -1) and abs(b2[c]) < 1024
            assert _mbqm(int(b2[c]), int(m2[c]), int(s2[c])) + zp == want
            assert multiply_by_quantized_multiplier(int(bias[c]), int(mult[c]), int(shift[c])) == \
                _mbqm(int(bias[c]), int(mult[c]), int(shift[c]))
        assert codegen.fast_requantize(w[:-1], b2[:-1], s2[:-1])


# ---- the ARMv7E-M DSP path on an emulated Cortex-M4 ----------------------------------------------------------

@pytest.mark.tool
@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp_pertensor", "dw_mult", "cnn"])
def test_dsp_path_on_qemu_m4_equals_tflm(tflite_models, tmp_path, name):
    """SMLAD/SXTB16 kernels (row blocks, input tails: dw_mult's FC has 54 inputs and 10 rows; cnn's CONV_2D
    with 1 and 8 input channels, its SIMD MAX_POOL_2D) == TFLM."""
    from edgedigit.runtimes.native_host import run_qemu_m4

    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    path = tflite_models[name]
    x = _int8_inputs(path, random_images(60, seed=11))
    got, instructions = run_qemu_m4(path, x, tmp_path)
    np.testing.assert_array_equal(got, run_tflm(path, x))
    assert instructions > 0


@pytest.mark.tool
@pytest.mark.slow
@pytest.mark.parametrize("name", ["cnn", "dw_mult"])
def test_general_requantization_on_qemu_m4_equals_tflm(tflite_models, tmp_path, monkeypatch, name):
    """With the fast requantization refused for every layer, the M4 kernels' general one == TFLM too."""
    from edgedigit.codegen.native import ops
    from edgedigit.runtimes.native_host import run_qemu_m4

    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    monkeypatch.setattr(ops, "fast_requantize", lambda *args: False)
    path = tflite_models[name]
    x = _int8_inputs(path, random_images(40, seed=12))
    got, _ = run_qemu_m4(path, x, tmp_path)
    assert "fast_requantize = 1" not in (tmp_path / "edgedigit_native_model.c").read_text()
    np.testing.assert_array_equal(got, run_tflm(path, x))


@pytest.mark.tool
@pytest.mark.slow
@pytest.mark.parametrize("name", ["add_5d", "add_const", "mul", "concat", "pad", "mean", "requantize", "dilated",
                                  "depthwise3x3"])
def test_op_kernels_on_qemu_m4_equal_tflm(tmp_path, name):
    """The kernel families built for a Cortex-M4 (arm-none-eabi-gcc) and run in QEMU == TFLM."""
    from edgedigit.runtimes.native_host import run_qemu_m4

    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    path = op_models()[name]
    g = load_graph(path)
    x = np.random.default_rng(3).integers(-128, 128, (12, *g.input.shape[1:])).astype(np.int8)
    got, instructions = run_qemu_m4(path, x, tmp_path)
    np.testing.assert_array_equal(got, run_tflm(path, x))
    assert instructions > 0
