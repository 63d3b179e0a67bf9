"""The generated ESP32 runner linked against real TFLM sources on this host: it starts (its self-check passes
with the generated arena) and its int8 outputs equal the tflite-micro Python interpreter's, element for element.

Libraries (edgedigit.targets.tflm_lib, compiled with the host compiler once into the build cache): the ESP32
boards' esp-tflite-micro with ESP-NN's ANSI-C kernels (``../shared/third_party/esp-tflite-micro`` and
``esp-nn``), and the newest TFLM with its reference kernels (``../shared/third_party/tflite-micro``). The
runner is the one exported for esp32dev, unchanged: only the Arduino core is left out.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool, require_tree
from edgedigit.core.graph import load_graph
from edgedigit.core.int8 import quantize_images
from edgedigit.runtimes import run_tflm
from edgedigit.targets import tflm_lib
from edgedigit.targets.export import export
from helpers import TINY
from tflite_factory import random_images

pytestmark = [pytest.mark.slow, pytest.mark.tool]

_MAIN = r"""
#include <cstdint>
#include <cstdio>
#include "edgedigit_model.h"
int main(int, char **argv) {
    int rc = edgedigit_model_init();
    if (rc != 0) { std::printf("init %d\n", rc); return 1; }
    FILE *in = std::fopen(argv[1], "rb");
    FILE *out = std::fopen(argv[2], "wb");
    uint8_t *img = edgedigit_model_input();
    const uint32_t size = edgedigit_model_info()->input_bytes;
    const uint32_t n = edgedigit_model_info()->num_outputs;
    while (std::fread(img, 1, size, in) == size) {
        if (edgedigit_model_invoke() < 0) return 2;
        for (uint32_t k = 0; k < n; ++k) { int8_t v = (int8_t)edgedigit_model_output(k); std::fwrite(&v, 1, 1, out); }
    }
    std::fclose(out);
    return 0;
}
"""
# every operator of the models below: one archive per library serves them all
OPS = frozenset({"RESHAPE", "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED",
                 "SOFTMAX", "ADD", "QUANTIZE"})
LIBRARIES = {"esp-tflite-micro+esp-nn": ("esp-tflite-micro", "esp-nn"), "tflite-micro": ("tflite-micro", "reference")}


@pytest.fixture(scope="session", params=sorted(LIBRARIES))
def host_tflm(request):
    """(library, archive): built once per session into the build cache (reused by later sessions)."""
    require_tool("c++")
    tree_name, kernels = LIBRARIES[request.param]
    if kernels == "esp-nn":
        require_tree("esp-nn")
    lib = tflm_lib.library(tflm_lib.inspect(require_tree(tree_name)), kernels, tflm_lib.TOOLCHAINS["host"])
    return lib, tflm_lib.build(lib, OPS)


def _esp32_runner(path, lib, archive, tmp_path):
    """The ESP32 project exported for ``path``, its runner linked with a host main against TFLM ``archive``."""
    project = export("esp32", model=path, backend="tflm", out=tmp_path / "project").path
    (tmp_path / "main.cc").write_text(_MAIN)
    exe = tmp_path / "runner"
    s = project / "src"
    subprocess.run(["c++", "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", *lib.cppflags, f"-I{s}",
                    str(tmp_path / "main.cc"), str(s / "edgedigit_model_tflm.cc"), str(s / "edgedigit_model_data.cc"),
                    str(archive), "-o", str(exe)], check=True)
    return exe


@pytest.mark.parametrize("model", ["tiny", "cnn"])
def test_esp32_runner_on_real_tflm_equals_the_python_interpreter(host_tflm, request, tmp_path, model):
    lib, archive = host_tflm
    assert lib.kernels in ("esp-nn", "reference") and archive.is_file()
    path = TINY if model == "tiny" else request.getfixturevalue("tflite_models")[model]
    assert set(load_graph(path).op_names()) <= OPS
    exe = _esp32_runner(path, lib, archive, tmp_path)
    images = random_images(300, seed=7)
    images.tofile(tmp_path / "images.bin")
    subprocess.run([str(exe), str(tmp_path / "images.bin"), str(tmp_path / "out.bin")], check=True)
    graph = load_graph(path)
    x = quantize_images(images, float(graph.input.scale[0]), int(graph.input.zero_point[0]))
    expected = run_tflm(path, x).reshape(len(images), -1)
    got = np.fromfile(tmp_path / "out.bin", np.int8).reshape(len(images), -1)
    np.testing.assert_array_equal(got, expected)
    assert len({tuple(r) for r in expected}) > 10  # the images exercise the model, not one constant output


MLPERF = Path(__file__).resolve().parents[2] / "shared" / "third_party" / "mlperf-tiny" / "models"


@pytest.mark.parametrize("name", ["ad01_int8", "kws_ref_model", "vww_96_int8", "pretrainedResnet_quant"])
def test_esp32_runner_on_real_tflm_runs_any_int8_model(host_tflm, tmp_path, name):
    """The four MLPerf Tiny reference models (the input tensor's bytes as they are): the runner's self-check
    passes and its outputs equal the Python interpreter's on seeded random inputs."""
    from edgedigit.codegen.tflm import device_input
    from edgedigit.core.int8 import io_spec

    path = MLPERF / f"{name}.tflite"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    lib, archive = host_tflm
    assert set(load_graph(path).op_names()) <= OPS
    exe = _esp32_runner(path, lib, archive, tmp_path)
    graph = load_graph(path)
    spec = io_spec(graph)
    rows = np.random.default_rng(11).integers(0, 256, (20, spec.input_bytes), dtype=np.uint8)
    rows.tofile(tmp_path / "inputs.bin")
    subprocess.run([str(exe), str(tmp_path / "inputs.bin"), str(tmp_path / "out.bin")], check=True)
    expected = run_tflm(path, device_input(graph, spec, rows)).reshape(20, -1)
    got = np.fromfile(tmp_path / "out.bin", np.int8).reshape(len(rows), -1)
    np.testing.assert_array_equal(got, expected)
