"""The four MLPerf Tiny reference models through the native backend, element for element against TFLM.

The models are MLCommons' int8 reference models in ``../shared/third_party/mlperf-tiny/models`` (next to the
repository); without them the tests skip, unless ``EDGEDIGIT_REQUIRE_TOOLS=1`` (CI), where they fail.
The full run (1,000 host inputs, 100 on qemu-m4, instructions, flash, RAM) is ``benchmarks/mlperf_native.py``.

The reference is TFLM's Python interpreter (the tflite-micro wheel). Its x86-64 binary multiplies the two
scales of a per-tensor FULLY_CONNECTED in double where the TFLM C++ that runs on devices multiplies them in
float32 (codegen.native.FC_PRODUCTS); the native C is built with the wheel's arithmetic to be compared with it
bit for bit, and the firmware's C (the device arithmetic) is checked to differ from it only in those
multipliers, and to give the same bytes on the host and on the emulated Cortex-M4.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from edgedigit.codegen import native
from edgedigit.core.graph import load_graph
from edgedigit.runtimes.native_host import NativeModel, run_qemu_m4
from edgedigit.runtimes.tflm import TFLMModel

MODELS_DIR = Path(__file__).resolve().parents[2] / "shared" / "third_party" / "mlperf-tiny" / "models"
MODELS = {"ad01": "ad01_int8.tflite", "kws01": "kws_ref_model.tflite", "ic01": "pretrainedResnet_quant.tflite",
          "vww01": "vww_96_int8.tflite"}
OPS = {"ad01": {"FULLY_CONNECTED"},
       "kws01": {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"},
       "ic01": {"CONV_2D", "ADD", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"},
       "vww01": {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"}}
HOST_INPUTS = 50


def _model(name: str) -> Path:
    path = MODELS_DIR / MODELS[name]
    if not path.is_file():
        if os.environ.get("EDGEDIGIT_REQUIRE_TOOLS", "") == "1":
            pytest.fail(f"EDGEDIGIT_REQUIRE_TOOLS=1 but the MLPerf Tiny model {path} is missing")
        pytest.skip(f"MLPerf Tiny reference models not found ({path})")
    return path


def _inputs(path: Path, n: int) -> np.ndarray:
    """``n`` seeded random int8 inputs over the full int8 range (the benchmark's first ``n``)."""
    g = load_graph(path)
    return np.random.default_rng(0).integers(-128, 128, (n, *g.input.shape[1:])).astype(np.int8)


def _wheel(path: Path, x: np.ndarray) -> np.ndarray:
    """TFLM's Python interpreter on each input (a generous arena: run_tflm's measured one is too small for ad01,
    issue 12 item 5)."""
    return TFLMModel(path, arena=1 << 22).run(x)


@pytest.fixture(scope="module")
def native_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("mlperf_native")


@pytest.mark.parametrize("name", list(MODELS))
def test_mlperf_model_equals_tflm_on_every_element(native_cache, name):
    path = _model(name)
    g = load_graph(path)
    assert set(g.op_names()) == OPS[name]
    x = _inputs(path, HOST_INPUTS)
    got, want = NativeModel(path, cache_dir=native_cache, fc_product="double").run(x), _wheel(path, x)
    assert got.shape == want.shape == (HOST_INPUTS, *g.output.shape[1:])
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"{name}: {len(bad)} of {got.size} elements differ from TFLM, first at {bad[:3].tolist()}"


def _arrays(code: str) -> dict[str, str]:
    return dict(re.findall(r"static const \w+ (g_op\w+)\[\d+\](?: EDGEDIGIT_ROM)? = \{\n(.*?)\n\};", code, re.DOTALL))


@pytest.mark.parametrize("name", list(MODELS))
def test_device_arithmetic_differs_from_the_wheels_only_in_per_tensor_fc_multipliers(name):
    """The firmware's C: every constant but the per-tensor FC multipliers equal to the wheel-arithmetic C's, and
    those multipliers as TFLM's C++ computes them: QuantizeMultiplier(double(float(s_in * s_w)) / s_out)."""
    path = _model(name)
    g = load_graph(path)
    device = native.generate_graph(g, variant=name, source_name=path.name)["edgedigit_native_model.c"]
    wheel = native.generate_graph(g, variant=name, source_name=path.name,
                                  program=native.prepare(g, fc_product="double"))["edgedigit_native_model.c"]
    a, b = _arrays(device), _arrays(wheel)
    assert a.keys() == b.keys()
    fc = {n: op for n, op in enumerate(g.ops) if op.opcode == "FULLY_CONNECTED"
          and g.tensors[op.inputs[1]].scale.size == 1}
    assert fc and {k for k in a if a[k] != b[k]} <= {f"g_op{n}_multiplier" for n in fc}
    multipliers = r"static const int32_t g_op\d+_multiplier\[\d+\] EDGEDIGIT_ROM = \{\n.*?\n\};"
    assert re.sub(multipliers, "", device, flags=re.DOTALL) == re.sub(multipliers, "", wheel, flags=re.DOTALL)
    for n, op in fc.items():
        s_in, s_w, s_out = (np.float32(g.tensors[t].scale[0]) for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
        m, _ = native.quantize_multiplier(float(s_in * s_w) / float(s_out))
        assert a[f"g_op{n}_multiplier"].split(",")[0].strip() == str(m)


@pytest.mark.tool
@pytest.mark.slow
@pytest.mark.parametrize("name", ["ad01", "kws01", "vww01"])
def test_mlperf_model_on_qemu_m4_equals_the_host_and_tflm(native_cache, tmp_path, name):
    """The firmware's C on an emulated Cortex-M4 gives the host library's bytes; built with the wheel's
    arithmetic, the wheel's."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    path = _model(name)
    x = _inputs(path, 6)
    m4, instructions = run_qemu_m4(path, x, tmp_path / "device")
    np.testing.assert_array_equal(m4, NativeModel(path, cache_dir=native_cache).run(x))
    assert instructions > 0
    m4_wheel, _ = run_qemu_m4(path, x, tmp_path / "wheel", fc_product="double")
    np.testing.assert_array_equal(m4_wheel, _wheel(path, x))


def test_macs_of_the_reference_models_follow_from_their_layers():
    # ad01: FC 640-128-128-128-128-8-128-128-128-128-640
    assert load_graph(_model("ad01")).macs() == 2 * 640 * 128 + 6 * 128 * 128 + 2 * 8 * 128 == 264_192
    # ic01 (ResNet-8 on 32x32x3): stem conv, three stacks of two 3x3 convs (1x1 shortcuts in stacks 2, 3), FC
    stem = 32 * 32 * 16 * 3 * 9
    stack1 = 2 * 32 * 32 * 16 * 16 * 9
    stack2 = 16 * 16 * 32 * (16 * 9 + 32 * 9 + 16)
    stack3 = 8 * 8 * 64 * (32 * 9 + 64 * 9 + 32)
    assert load_graph(_model("ic01")).macs() == stem + stack1 + stack2 + stack3 + 64 * 10 == 12_501_632


@pytest.mark.parametrize("name", list(MODELS))
def test_mlperf_model_exports_on_host_qemu_m4_and_esp32(build_dir, name):
    from edgedigit.targets.export import export

    path = _model(name)
    sha = load_graph(path).sha256
    for board, backend in (("host", "native"), ("qemu-m4", "native"), ("esp32dev", "tflm")):
        res = export(board, model=path, backend=backend)
        lock = (res.path / "edgedigit.lock.json").read_text()
        assert res.backend == backend and res.model.sha256 == sha and sha in lock, (board, name)
        assert res.requirement.arena > 0 and res.files, (board, name)
