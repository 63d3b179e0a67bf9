"""The generated TFLM runner linked against real TFLM sources on the host: it starts (self-check passes with
the generated arena) and its int8 outputs equal the tflite-micro Python interpreter's, element for element.

No registry package ships TFLM's C++ sources, so this needs a TFLM source tree: set ``EDGEDIGIT_TFLM_SRC``
to a checkout of tensorflow/tflite-micro or espressif/esp-tflite-micro (the ESP32 boards' library; its
reference kernels are used on the host). The library is built once into pytest's cache (a few minutes),
or taken from ``EDGEDIGIT_TFLM_LIB`` (a ``libtflm.a`` built from that tree).

It is not part of the suite (the file name keeps pytest from collecting it, so nothing skips in CI): run
it by name, ``EDGEDIGIT_TFLM_SRC=/path/to/tflite-micro .venv/bin/python -m pytest tests/check_tflm_source.py``.
It is a deeper, optional check of the same runner the golden files pin.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from edgedigit.core.graph import load_graph
from edgedigit.core.int8 import quantize_images
from edgedigit.runtimes import run_tflm
from edgedigit.targets.export import export
from tflite_factory import random_images

TINY = Path(__file__).parent / "golden" / "tiny.tflite"
KERNELS = ("reshape", "fully_connected", "softmax", "pooling", "conv", "depthwise_conv", "kernel_util",
           "micro_tensor_utils", "activations", "add", "quantize")

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


def _includes(src: Path) -> list[str]:
    dirs = [src, src / "third_party" / "flatbuffers" / "include", src / "third_party" / "gemmlowp",
            src / "third_party" / "ruy"]
    return [arg for d in dirs for arg in ("-isystem", str(d))]


def _sources(src: Path) -> list[Path]:
    """The interpreter, allocator, planner and schema code, plus the reference kernels the test models use."""
    out = []
    for p in sorted((src / "tensorflow").rglob("*.cc")):
        rel = p.relative_to(src).as_posix()
        if any(s in rel for s in ("_test", "/examples/", "/esp_nn/", "/esp/", "/testing/", "/tools/", "/python/",
                                  "benchmark", "test_helper", "/cmsis_nn/", "/xtensa/", "/arc_", "/ceva/")):
            continue
        if "/micro/kernels/" in rel and not any(Path(rel).name.startswith(k) for k in KERNELS):
            continue
        if "/micro/kernels/" in rel and Path(rel).parent.name != "kernels":
            continue
        out.append(p)
    return out


@pytest.fixture(scope="module")
def tflm_lib(request):
    src = os.environ.get("EDGEDIGIT_TFLM_SRC")
    if not src or not Path(src, "tensorflow", "lite", "micro").is_dir():
        pytest.skip("set EDGEDIGIT_TFLM_SRC to a TFLM source tree (tflite-micro or esp-tflite-micro checkout)")
    src = Path(src)
    if os.environ.get("EDGEDIGIT_TFLM_LIB"):
        return src, Path(os.environ["EDGEDIGIT_TFLM_LIB"])
    key = hashlib.sha256((str(src) + ",".join(KERNELS)).encode()).hexdigest()[:12]
    cache = Path(request.config.cache.mkdir("edgedigit-tflm-" + key))
    lib = cache / "libtflm.a"
    if not lib.is_file():
        flags = ["-std=c++17", "-O1", "-w", "-DTF_LITE_STATIC_MEMORY", "-fno-exceptions", *_includes(src)]

        def compile_one(p: Path) -> Path:
            obj = cache / (p.relative_to(src).as_posix().replace("/", "_") + ".o")
            if not obj.is_file():
                subprocess.run(["g++", *flags, "-c", str(p), "-o", str(obj) + ".tmp"], check=True)
                os.replace(str(obj) + ".tmp", obj)
            return obj

        with ThreadPoolExecutor(max_workers=2) as pool:
            objects = list(pool.map(compile_one, _sources(src)))
        subprocess.run(["ar", "rcs", str(lib), *map(str, objects)], check=True)
    return src, lib


@pytest.mark.parametrize("model", ["tiny", "cnn"])
def test_generated_runner_on_real_tflm_equals_the_python_interpreter(tflm_lib, request, tmp_path, model):
    src, lib = tflm_lib
    path = TINY if model == "tiny" else request.getfixturevalue("tflite_models")[model]
    project = export("esp32", model=path, backend="tflm", out=tmp_path / "project").path
    main = tmp_path / "main.cc"
    main.write_text(_MAIN)
    exe = tmp_path / "runner"
    s = project / "src"
    subprocess.run(["g++", "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", "-DTF_LITE_STATIC_MEMORY",
                    *_includes(src), f"-I{s}", str(main), str(s / "edgedigit_model_tflm.cc"),
                    str(s / "edgedigit_model_data.cc"), str(lib), "-o", str(exe)], check=True)
    images = random_images(500, seed=7)
    images.tofile(tmp_path / "images.bin")
    subprocess.run([str(exe), str(tmp_path / "images.bin"), str(tmp_path / "out.bin")], check=True)
    graph = load_graph(path)
    x = quantize_images(images, float(graph.input.scale[0]), int(graph.input.zero_point[0]))
    expected = run_tflm(path, x).reshape(len(images), -1)
    got = np.fromfile(tmp_path / "out.bin", np.int8).reshape(len(images), -1)
    np.testing.assert_array_equal(got, expected)


MLPERF = Path(__file__).resolve().parents[2] / "shared" / "third_party" / "mlperf-tiny" / "models"


@pytest.mark.parametrize("name", ["ad01_int8", "kws_ref_model", "vww_96_int8", "pretrainedResnet_quant"])
def test_generated_runner_on_real_tflm_runs_any_int8_model(tflm_lib, tmp_path, name):
    """The four MLPerf Tiny reference models (the input tensor's bytes as they are): the runner's self-check
    passes and its outputs equal the Python interpreter's on seeded random inputs."""
    from edgedigit.codegen.tflm import device_input
    from edgedigit.core.int8 import io_spec

    path = MLPERF / f"{name}.tflite"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    src, lib = tflm_lib
    project = export("esp32", model=path, backend="tflm", out=tmp_path / "project").path
    main = tmp_path / "main.cc"
    main.write_text(_MAIN)
    exe = tmp_path / "runner"
    s = project / "src"
    subprocess.run(["g++", "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", "-DTF_LITE_STATIC_MEMORY",
                    *_includes(src), f"-I{s}", str(main), str(s / "edgedigit_model_tflm.cc"),
                    str(s / "edgedigit_model_data.cc"), str(lib), "-o", str(exe)], check=True)
    graph = load_graph(path)
    spec = io_spec(graph)
    rows = np.random.default_rng(11).integers(0, 256, (20, spec.input_bytes), dtype=np.uint8)
    rows.tofile(tmp_path / "inputs.bin")
    subprocess.run([str(exe), str(tmp_path / "inputs.bin"), str(tmp_path / "out.bin")], check=True)
    expected = run_tflm(path, device_input(graph, spec, rows)).reshape(20, -1)
    got = np.fromfile(tmp_path / "out.bin", np.int8).reshape(20, -1)
    np.testing.assert_array_equal(got, expected)
