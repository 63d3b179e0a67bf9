"""MLPerf Tiny's reference runner (``../shared/third_party/mlperf-tiny/runner``, unedited) drives edgedigit
firmware through a whole performance-mode exchange: its own ``run_test`` (DUT over ``SerialDevice``,
``Script`` from its ``tests_performance.yaml``, ``DataSet``) and ``summarize_result``, on the ``host`` board's
pty and on QEMU's (``-serial pty``), with only its USB discovery replaced by that port
(``benchmarks/mlperf_drive.py``).

The firmware answers ``profile%`` with the MLPerf id the runner selects its test by (``kws01``), prints
nothing unasked (the runner never resynchronises), and every window's ``m-results`` are the model's
dequantized outputs on the loaded file, equal to TFLM's.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import odd_models
from conftest import REPO, require_tool
from edgedigit.core.graph import load_graph
from edgedigit.core.int8 import io_spec
from edgedigit.runtimes.tflm import TFLMModel
from edgedigit.targets import devices
from edgedigit.targets.boards import load_board
from edgedigit.targets.export import export

sys.path.insert(0, str(REPO / "benchmarks"))
import mlperf_runner  # noqa: E402

pytestmark = [pytest.mark.tool]


def _runner() -> Path:
    if not (mlperf_runner.RUNNER / "device_under_test.py").is_file():
        if os.environ.get("EDGEDIGIT_REQUIRE_TOOLS") == "1":
            pytest.fail(f"EDGEDIGIT_REQUIRE_TOOLS=1 but the MLPerf Tiny runner is not in {mlperf_runner.RUNNER}")
        pytest.skip(f"the MLPerf Tiny runner is not in {mlperf_runner.RUNNER}")
    return mlperf_runner.RUNNER


@pytest.mark.parametrize("board", ["host", pytest.param("qemu-m4", marks=pytest.mark.slow)])
def test_the_runner_completes_performance_mode(board, tmp_path, monkeypatch):
    require_tool("cc")
    if board == "qemu-m4":  # QEMU with -serial pty: the runner opens a plain serial port
        require_tool("arm-none-eabi-gcc")
        require_tool("qemu-system-arm")
    _runner()
    monkeypatch.setenv("EDGEDIGIT_BUILD", str(tmp_path / "build"))
    model = odd_models.kws_like(tmp_path / "kws_like.tflite")
    res = export(board, model=model, out=tmp_path / "fw", mlperf_id="kws01")
    devices.make(res.path)
    spec = io_spec(load_graph(model))
    work = tmp_path / "run"
    work.mkdir()
    with devices.start(res.path, load_board(board), pty=True) as running:
        # the runner's stock tests_performance.yaml: kws01 is `loop 5: download, infer 70 10`
        lines, result = mlperf_runner.run_runner(running.url, "kws01", spec.input_bytes, spec.outputs, work,
                                                 stock=True)
    text = "\n".join(lines)
    assert "Device model retrieved: kws01" in text
    windows = [r for r in json.loads(result) if "infer" in r]
    assert len(windows) == 5
    ref = TFLMModel(model)
    folder = work / "datasets" / "kws01"
    for w in windows:
        x = np.frombuffer((folder / w["file"]).read_bytes(), np.int8).reshape(1, *spec.input_shape[1:])
        raw = ref.run(x).reshape(-1).astype(np.float32)
        expected = (raw - spec.output_zero_point) * np.float32(spec.output_scale)
        assert w["infer"]["results"] == pytest.approx(expected.tolist(), abs=6e-4)
        assert w["infer"]["iterations"] == 70 and w["infer"]["warmups"] == 10
        assert w["infer"]["elapsed_time"] > 0 and w["infer"]["throughput"] > 0
    # the runner's own summary: one line per window, then its verdict (a run this short is under its
    # 10 s minimum: "ERROR 2"; benchmarks/mlperf_runner.py sizes the counts to print the median throughput)
    assert text.count("Performance results for window") >= 5
    assert "Median throughput is" in text or "ERROR 2 - loop exited before 10 seconds elapsed." in text
