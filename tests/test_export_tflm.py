"""The tflm backend's generated files: golden files, the model bytes, the op list, the arena, the LUT, the
start-up self-check, refusals, and the files that need no TFLM headers compiled with gcc and g++."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgedigit.codegen import tflm
from edgedigit.core.errors import UnsupportedOpError
from edgedigit.core.graph import load_graph
from edgedigit.core.int8 import input_lut, quantize_images
from edgedigit.runtimes import run_tflm, tflm_arena_bytes
from edgedigit.targets.boards import load_board
from edgedigit.targets.export import LOCK_FILE, export
from helpers import GOLDEN, TINY, check_golden

FLAGS = ["-Wall", "-Wextra", "-Werror"]


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory):
    """tests/golden/tiny.tflite exported for esp32dev with the tflm backend."""
    out = tmp_path_factory.mktemp("export") / "esp32dev-tiny-tflm"
    export("esp32", model=TINY, backend="tflm", out=out)
    return out


def _src(project: Path, name: str) -> str:
    return (project / "src" / name).read_text()


def _c_numbers(text: str, name: str) -> list[int]:
    """The numbers of the initializer of C array ``name`` (nested braces flattened, comments dropped)."""
    m = re.search(rf"{re.escape(name)}(\[[^\]]*\])+\s*(EDGEDIGIT_ROM\s*)?=\s*\{{", text)
    assert m, f"array {name} not found"
    depth, i = 1, m.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    body = re.sub(r"/\*.*?\*/", "", text[m.end():i - 1], flags=re.S)
    return [int(tok, 0) for tok in re.findall(r"-?(?:0x[0-9a-fA-F]+|\d+)", body)]


def test_golden_files(tiny_project):
    """Every rendered file equals tests/golden/esp32dev-tiny-tflm/ (EDGEDIGIT_REGEN_GOLDEN=1 rewrites them)."""
    check_golden(tiny_project, GOLDEN / "esp32dev-tiny-tflm")


def test_every_generated_file_has_the_banner(tiny_project):
    sha = load_graph(TINY).sha256
    for p in (tiny_project / "src").iterdir():
        text = p.read_text()
        if "edgedigit_model_" in p.name or p.name.startswith(("edgedigit_input_lut", "edgedigit_op_resolver",
                                                              "edgedigit_main", "edgedigit_platform_arduino")):
            assert "DO NOT EDIT" in text.splitlines()[1] and f"Source sha256: {sha}" in text, p.name
    assert "DO NOT EDIT" in (tiny_project / "platformio.ini").read_text().splitlines()[0]


def test_model_array_bytes_equal_the_tflite(tiny_project):
    raw = TINY.read_bytes()
    text = _src(tiny_project, "edgedigit_model_data.cc")
    assert "_Alignas(16)" in text and "alignas(16)" in text
    assert bytes(_c_numbers(text, "g_tiny_model_data")) == raw
    assert re.search(rf"g_tiny_model_data_len = {len(raw)}u;", text)


_CALL = re.compile(r"resolver\.(Add\w+)\(((?:tflite::Register_\w+\(\))?)\)")


def test_op_resolver_registers_exactly_the_models_ops(tiny_project):
    """One Add call per op in order of first use; int8-only kernel variants where the library has one."""
    text = _src(tiny_project, "edgedigit_op_resolver.h")
    ops = load_graph(TINY).op_names()
    assert ops == ["RESHAPE", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"]
    assert _CALL.findall(text) == [("AddReshape", ""),
                                   ("AddAveragePool2D", "tflite::Register_AVERAGE_POOL_2D_INT8()"),
                                   ("AddFullyConnected", "tflite::Register_FULLY_CONNECTED_INT8()"),
                                   ("AddSoftmax", "tflite::Register_SOFTMAX_INT8()")]
    assert len(re.findall(r"resolver\.Add", text)) == len(ops)
    assert f"#define EDGEDIGIT_TFLM_OP_COUNT {len(ops)}" in text
    assert "MicroMutableOpResolver<EDGEDIGIT_TFLM_OP_COUNT>" in text


def test_op_resolver_for_the_cnn_ops(tflite_models):
    graph = load_graph(tflite_models["cnn"])
    check = tflm.SelfCheck(tflm.self_check_images(), np.zeros((3, 10), np.int8))
    files = tflm.generate(graph, variant="cnn", source_name="cnn.tflite", measured_arena=1000, self_check=check)
    calls = _CALL.findall(files["edgedigit_op_resolver.h"])
    assert [m for m, _ in calls] == [tflm.add_method(op) for op in graph.op_names()]
    assert {"AddConv2D", "AddDepthwiseConv2D", "AddMaxPool2D", "AddAveragePool2D"} <= {m for m, _ in calls}
    assert ("AddDepthwiseConv2D", "tflite::Register_DEPTHWISE_CONV_2D_INT8()") in calls


def test_int8_registration_only_where_every_use_of_the_op_is_int8():
    graph = load_graph(TINY)
    assert tflm.registrations(graph) == {"RESHAPE": "", "AVERAGE_POOL_2D": "tflite::Register_AVERAGE_POOL_2D_INT8()",
                                         "FULLY_CONNECTED": "tflite::Register_FULLY_CONNECTED_INT8()",
                                         "SOFTMAX": "tflite::Register_SOFTMAX_INT8()"}
    softmax = next(op for op in graph.ops if op.opcode == "SOFTMAX")
    tensors = list(graph.tensors)
    tensors[softmax.outputs[0]] = dataclasses.replace(tensors[softmax.outputs[0]], dtype="int16")
    regs = tflm.registrations(dataclasses.replace(graph, tensors=tensors))
    assert regs["SOFTMAX"] == "" and regs["FULLY_CONNECTED"] == "tflite::Register_FULLY_CONNECTED_INT8()"


def test_the_generator_runs_no_interpreter(tmp_path):
    """codegen.tflm is a pure function of the model, the measured arena and the self-check vectors: rendering
    imports neither the host runtimes nor TFLM (the export stage measures and runs them)."""
    script = (
        "import sys, numpy as np\n"
        "from edgedigit.codegen import tflm\n"
        "from edgedigit.core.graph import load_graph\n"
        f"g = load_graph({str(TINY)!r})\n"
        "check = tflm.SelfCheck(tflm.self_check_images(), np.zeros((3, 10), np.int8))\n"
        "files = tflm.generate(g, variant='tiny', source_name='tiny.tflite', measured_arena=1000, self_check=check)\n"
        "assert 'EDGEDIGIT_ARENA_BYTES 3056u' in files['edgedigit_model_tflm.cc']\n"
        "loaded = [m for m in sys.modules if m.startswith(('edgedigit.runtimes', 'edgedigit.models', 'tflite_micro'))]\n"
        "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def test_add_method_names():
    assert tflm.add_method("FULLY_CONNECTED") == "AddFullyConnected"
    assert tflm.add_method("DEPTHWISE_CONV_2D") == "AddDepthwiseConv2D"
    assert tflm.add_method("RELU6") == "AddRelu6"
    assert tflm.add_method("SPACE_TO_BATCH_ND") == "AddSpaceToBatchNd"
    assert tflm.add_method("BATCH_MATMUL") == "AddBatchMatMul"
    assert tflm.add_method("UNIDIRECTIONAL_SEQUENCE_LSTM") == "AddUnidirectionalSequenceLSTM"


def test_arena_constant_is_measured_allocation_plus_margin(tiny_project):
    text = _src(tiny_project, "edgedigit_model_tflm.cc")
    arena = int(re.search(r"#define EDGEDIGIT_ARENA_BYTES (\d+)u", text).group(1))
    measured = tflm_arena_bytes(TINY)
    margin = max(2048, -(-measured * 25 // 100))
    assert arena == (measured + margin + 15) // 16 * 16
    assert arena % 16 == 0 and arena >= measured + 2048
    assert f"TFLM allocated {measured} B" in text
    lock = (tiny_project / LOCK_FILE).read_text()
    assert f'"arena_measured": {measured}' in lock and f'"arena": {arena}' in lock


def test_arena_rounding():
    assert tflm.arena_bytes(100) == 2160  # 100 + 2048 -> 2148 -> 2160
    assert tflm.arena_bytes(16_000) == 20_000
    assert tflm.arena_bytes(16_001) == 20_016  # 16,001 + 4,001 = 20,002 -> 20,016


def test_input_lut_and_quantization_constants(tiny_project):
    graph = load_graph(TINY)
    scale, zp = float(graph.input.scale[0]), int(graph.input.zero_point[0])
    text = _src(tiny_project, "edgedigit_input_lut.h")
    assert _c_numbers(text, "kEdgedigitInputLut") == input_lut(scale, zp).tolist()
    assert f"#define EDGEDIGIT_INPUT_ZERO_POINT ({zp})" in text
    value = re.search(r"#define EDGEDIGIT_INPUT_SCALE (\S+)f", text).group(1)
    assert np.float32(value) == np.float32(scale)


def test_self_check_vectors_are_tflm_outputs_on_the_host(tiny_project):
    graph = load_graph(TINY)
    text = _src(tiny_project, "edgedigit_model_tflm.cc")
    images = np.array(_c_numbers(text, "kSelfCheckInputs"), np.uint8).reshape(-1, 28, 28)
    expected = np.array(_c_numbers(text, "kSelfCheckExpected"), np.int8).reshape(len(images), 10)
    np.testing.assert_array_equal(images, tflm.self_check_images())
    x = quantize_images(images, float(graph.input.scale[0]), int(graph.input.zero_point[0]))
    np.testing.assert_array_equal(expected, run_tflm(TINY, x))
    assert len({tuple(r) for r in expected}) > 1  # the images tell the classes apart, so the check can fail


def test_files_without_tflm_headers_compile_with_gcc_and_gpp(tiny_project, tmp_path):
    """Model data and LUT compile warning-free as C and C++; the linked array equals the file and is aligned."""
    src = tiny_project / "src"
    main = tmp_path / "dump.c"
    main.write_text(
        '#include <stdint.h>\n#include <stdio.h>\n#include "edgedigit_model_data.h"\n#include "edgedigit_input_lut.h"\n'
        "int main(void) {\n"
        "    if (((uintptr_t)g_tiny_model_data) % 16 != 0) return 2;\n"
        "    fwrite(g_tiny_model_data, 1, g_tiny_model_data_len, stdout);\n"
        "    fwrite(kEdgedigitInputLut, 1, sizeof kEdgedigitInputLut, stdout);\n"
        "    return 0;\n}\n")
    raw = TINY.read_bytes()
    graph = load_graph(TINY)
    lut = input_lut(float(graph.input.scale[0]), int(graph.input.zero_point[0])).tobytes()
    for cc, lang in (("gcc", ["-x", "c", "-std=c11", "-pedantic"]), ("g++", ["-x", "c++", "-std=c++17"])):
        exe = tmp_path / f"dump_{cc}"
        subprocess.run([cc, *lang, *FLAGS, f"-I{src}", str(src / "edgedigit_model_data.cc"), str(main), "-o", str(exe)],
                       check=True)
        out = subprocess.run([str(exe)], capture_output=True, check=True).stdout
        assert out == raw + lut


def test_tflm_runner_parses_against_its_declared_interface(tiny_project):
    """The runner implements exactly the functions edgedigit_model.h declares, with C linkage."""
    text = _src(tiny_project, "edgedigit_model_tflm.cc")
    for fn in ("edgedigit_model_info(void)", "edgedigit_model_init(void)", "edgedigit_model_input(void)",
               "edgedigit_model_invoke(void)", "edgedigit_model_output(uint32_t i)",
               "edgedigit_model_region(uint32_t i, edgedigit_model_region_t *out)"):
        assert re.search(r'extern "C" [^\n]*' + re.escape(fn), text), fn
    assert "kEdgedigitInputLut[input[i]]" in text  # input quantized on the device from raw pixels


def test_per_channel_fc_refused_where_the_library_computes_it_wrong():
    nano = load_board("nano33ble")
    with pytest.raises(UnsupportedOpError) as e:
        export("nano33ble", model=TINY, backend="tflm")
    msg = str(e.value)
    assert "per channel" in msg and "nano33ble" in msg and "wrong without an error" in msg
    assert "_experimental_disable_per_channel_quantization_for_dense_layers" in msg and "--backend native" in msg
    assert nano.tflm.per_channel_fully_connected is False


def test_op_missing_from_the_library_is_refused_by_name():
    board = load_board("esp32")
    lib = dataclasses.replace(board.tflm, ops=frozenset({"RESHAPE", "FULLY_CONNECTED", "SOFTMAX"}))
    graph = load_graph(TINY)
    with pytest.raises(UnsupportedOpError, match=r"does not provide AVERAGE_POOL_2D"):
        tflm.check_ops(graph, lib.ops, "esp32dev's TFLM library")
