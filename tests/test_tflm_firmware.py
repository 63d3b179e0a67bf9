"""TFLM as a firmware on the boards built here: the generated TFLM runner (the one the ESP32/Arduino projects
get) with the qemu-m4 or host platform layer, linked against TFLM compiled from ../shared/third_party/tflite-micro
(CMSIS-NN and reference kernels on the emulated Cortex-M4). Its outputs equal the tflite-micro interpreter's,
element for element; ``bench compare --board qemu-m4`` runs native, TFLM+CMSIS-NN and TFLM reference on the
same images and measures flash, RAM (with the painted stack's high-water mark) and instructions.

The TFLM libraries are compiled once into build/cache/tflm (minutes the first time, then reused).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import require_tool, require_tree
from edgedigit.cli import app
from edgedigit.core.graph import load_graph
from edgedigit.core.int8 import quantize_for
from edgedigit.runtimes import run_tflm
from tflite_factory import random_images

pytestmark = [pytest.mark.slow, pytest.mark.tool]


def _invoke(args):
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture
def qemu_tools():
    require_tree("tflite-micro")
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-g++", "qemu-system-arm", "make"):
        require_tool(tool)


@pytest.fixture
def random_npz(tmp_path):
    """A dataset file of random digit-like images (the comparison needs images, not labels that mean anything)."""
    p = tmp_path / "images.npz"
    x = random_images(40, seed=11)
    np.savez(p, x_train=x[:20], y_train=np.arange(20, dtype=np.uint8) % 10, x_test=x[20:],
             y_test=np.arange(20, dtype=np.uint8) % 10)
    return p


def test_bench_compare_board_runs_three_firmwares_on_the_same_images(build_dir, qemu_tools, tflite_models,
                                                                      random_npz):
    model = tflite_models["cnn"]
    out = _invoke(["bench", "compare", "--board", "qemu-m4", "--model", str(model), "--images", "12",
                   "--data", str(random_npz), "--json"])
    summary = json.loads(out[out.index("{"):])
    assert summary == json.loads((build_dir / "results" / "compare-qemu-m4.json").read_text())
    (rec,) = summary["results"]
    keys = {"native", "tflm_cmsis_nn", "tflm_reference"}
    assert rec["variant"] == "cnn" and rec["images"] == 12 and rec["missing"] == {}
    assert set(rec["instructions"]) == set(rec["flash"]) == set(rec["ram"]) == keys
    # every raw output of every firmware equals the tflite-micro interpreter's
    assert rec["outputs_identical"] == dict.fromkeys(keys, True)
    assert rec["elements_identical"] == dict.fromkeys(keys, 12 * 10) and rec["elements"] == 120
    assert rec["counter_unit"] == "instructions" and "emulated instructions" in summary["counter_note"]
    # CMSIS-NN's convolutions are what an M4 user gets from TFLM: fewer instructions than the reference kernels
    assert 0 < rec["instructions"]["tflm_cmsis_nn"] < rec["instructions"]["tflm_reference"]
    for k in keys:
        ram = rec["ram_detail"][k]
        assert 0 < ram["stack_used"] < ram["stack_reserved"] == 16 * 1024
        assert rec["ram"][k] == ram["data"] + ram["bss"] + ram["stack_used"]
        assert rec["flash"][k] > model.stat().st_size if k != "native" else rec["flash"][k] > 0
    tflm = rec["firmware"]["tflm_cmsis_nn"]["tflm"]
    assert tflm["kernels"] == "cmsis-nn" and tflm["layout"] == "tflite-micro"
    assert rec["firmware"]["tflm_reference"]["tflm"]["kernels"] == "reference"
    # the TFLM interpreter adds code and RAM an interpreter-free firmware does not have
    assert rec["flash"]["native"] < rec["flash"]["tflm_cmsis_nn"] and rec["ram"]["native"] < rec["ram"]["tflm_cmsis_nn"]


def test_compare_table_and_report_lead_with_the_board(build_dir, qemu_tools, tflite_models, random_npz):
    out = _invoke(["bench", "compare", "--board", "qemu-m4", "--model", str(tflite_models["mlp_pertensor"]),
                   "--images", "5", "--data", str(random_npz)])
    assert "bench compare on qemu-m4: 5 test images per firmware" in out
    for k in ("native", "tflm_cmsis_nn", "tflm_reference"):
        assert k in out
    report = _invoke(["report"])
    md = (build_dir / "reports" / "report.md").read_text()
    assert report.strip().endswith("report.md")
    board = md.index("### On the target CPU: qemu-m4")
    assert board < md.index("### On this host (x86, valgrind callgrind)")
    assert "| mlp_pertensor |" in md[board:] and (build_dir / "reports" / "compare_qemu-m4.png").is_file()


def test_bench_compare_board_runs_any_model_on_seeded_random_inputs(build_dir, qemu_tools, random_npz, tmp_path):
    import odd_models
    from edgedigit.measure.bench_device import RANDOM_INPUTS_SEED

    model = odd_models.kws_like(tmp_path / "kws01_like.tflite")  # a 49 x 10 x 1 input, 12 classes: not a digit
    out = _invoke(["bench", "compare", "--board", "qemu-m4", "--model", str(model), "--images", "4",
                   "--data", str(random_npz), "--json"])
    (rec,) = json.loads(out[out.index("{"):])["results"]
    graph = load_graph(model)
    assert rec["variant"] == "kws01" and rec["images"] == 4 and rec["missing"] == {}  # named by its MLPerf id
    assert rec["dataset"]["name"] == "random" and str(RANDOM_INPUTS_SEED) in rec["dataset"]["source"]
    assert rec["macs"] == graph.macs() > 0
    assert rec["elements"] == 4 * 12
    assert rec["outputs_identical"] == dict.fromkeys(("native", "tflm_cmsis_nn", "tflm_reference"), True)
    assert rec["instructions_per_mac"]["native"] == pytest.approx(rec["instructions"]["native"] / rec["macs"], abs=1e-6)


@pytest.mark.mnist
@pytest.mark.parametrize("board", ["qemu-m4", "host"])
def test_bench_device_with_the_tflm_backend(trained_build, board):
    require_tree("tflite-micro")
    for tool in (("arm-none-eabi-g++", "qemu-system-arm") if board == "qemu-m4" else ("c++",)):
        require_tool(tool)
    out = _invoke(["bench", "device", "--board", board, "--variant", "mlp", "--backend", "tflm", "--samples", "20",
                   "--json"])
    s = json.loads(out[out.index("{"):])
    assert s["backend"] == "tflm"
    assert s["agreement"]["images_identical"] == 20 and s["agreement"]["elements_identical"] == 200
    lock = json.loads((trained_build / "firmware" / board / "mlp-tflm" / "edgedigit.lock.json").read_text())
    assert lock["board"]["tflm"]["kernels"] == ("cmsis-nn" if board == "qemu-m4" else "reference")
    if board == "qemu-m4":
        assert s["firmware"]["heap_symbols"] == [] and s["counter_unit"] == "instructions"


def test_outputs_equal_the_interpreter_with_the_arduino_library(build_dir, qemu_tools, tflite_models, random_npz,
                                                                monkeypatch):
    """The second library: Arduino_TensorFlowLite (what nano33ble pins) built for the emulated M4 with its
    CMSIS-NN kernels; a per-tensor model (its 2023 FULLY_CONNECTED has no per-channel path)."""
    monkeypatch.setenv("EDGEDIGIT_TFLM_SRC", str(require_tree("Arduino_TensorFlowLite")))
    model = tflite_models["mlp_pertensor"]
    from edgedigit.measure.bench_compare import _Subject, run_firmware
    from edgedigit.models.data import load_dataset
    from edgedigit.targets.boards import load_board

    images = load_dataset(random_npz).x_test[:8]
    run = run_firmware(load_board("qemu-m4"), _Subject("mlp_pertensor", model, None, None), "tflm", None, images,
                       log=lambda m: None)
    expected = run_tflm(model, quantize_for(load_graph(model), images)).reshape(8, -1)
    np.testing.assert_array_equal(run["raw"], expected)
    assert run["tflm"]["layout"] == "arduino" and run["tflm"]["kernels"] == "cmsis-nn"
    assert 0 < run["stack_used"] < run["stack_reserved"]
