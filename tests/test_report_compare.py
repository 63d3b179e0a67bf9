"""bench compare: callgrind parsing, and the native harness under callgrind on a small int8 model."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import require_tool
from edgedigit.core.errors import ToolError
from edgedigit.measure import bench_compare as compare


def test_callgrind_totals_are_parsed(tmp_path):
    f = tmp_path / "callgrind.out"
    f.write_text("# callgrind format\nversion: 1\nevents: Ir\nfn=main\n3 10\nsummary: 123456\ntotals: 123456\n")
    assert compare.callgrind_total(f) == 123456
    f.write_text("events: Ir\n")
    with pytest.raises(ToolError, match="no totals"):
        compare.callgrind_total(f)


@pytest.mark.tool
def test_native_harness_counts_only_the_graph_and_matches_tflm(tflite_models, tmp_path):
    require_tool("valgrind")
    from edgedigit.core.graph import load_graph
    from edgedigit.core.int8 import quantize_images
    from edgedigit.runtimes import run_tflm
    from tflite_factory import random_images

    path = tflite_models["mlp"]
    g = load_graph(path)
    x = quantize_images(random_images(3), float(g.input.scale[0]), int(g.input.zero_point[0])).reshape(3, -1)
    counts = []
    for k in range(2):
        work = tmp_path / f"w{k}"
        work.mkdir()
        total, out = compare.native_instructions(path, x[: 2 + k], work)
        counts.append(total)
        np.testing.assert_array_equal(out, run_tflm(path, x[: 2 + k].reshape(2 + k, 28, 28)).reshape(2 + k, -1))
    # deterministic and proportional to the number of inferences: only edgedigit_native_run is counted
    # (start-up, file reading and the rest of main are outside the toggle)
    per_image = counts[0] / 2
    assert counts[1] == pytest.approx(3 * per_image, rel=0.02)
    macs = 784 * 32 + 32 * 10
    assert macs < per_image < 200 * macs


def test_a_model_compared_later_is_added_to_the_board_summary(build_dir, tflite_models, monkeypatch):
    """``bench compare --board qemu-m4 --model X`` after a full comparison keeps the rows measured before (same
    board, data and images); other data or another image count starts the summary afresh."""
    from edgedigit.core.graph import load_graph
    from edgedigit.core.int8 import quantize_for
    from edgedigit.models.data import load_fallback
    from edgedigit.runtimes import run_tflm

    ds = load_fallback()

    def fake_run(board, subject, backend, kernels, rows, advance, log):  # the TFLM outputs, fixed sizes
        out = np.asarray(run_tflm(subject.tflite, quantize_for(load_graph(subject.tflite), rows))).reshape(len(rows), -1)
        return {"counters": [1000] * len(rows), "raw": out.astype(np.int64), "counter_unit": "instructions",
                "flash": 10, "text": 8, "data": 2, "bss": 4, "ram_static": 6, "stack_used": 1, "stack_reserved": 16,
                "ram": 7, "project": "p", "tflm": None, "model_flash": 5, "arena": 3}

    monkeypatch.setattr(compare, "run_firmware", fake_run)
    mlp, cnn = tflite_models["mlp"], tflite_models["cnn"]
    compare.compare_on_board("qemu-m4", models=[mlp], dataset=ds, images=3, log=lambda m: None)
    s = compare.compare_on_board("qemu-m4", models=[cnn], dataset=ds, images=3, log=lambda m: None)
    assert [r["variant"] for r in s["results"]] == ["mlp", "cnn"]
    s = compare.compare_on_board("qemu-m4", models=[mlp], dataset=ds, images=3, log=lambda m: None)
    assert [r["variant"] for r in s["results"]] == ["cnn", "mlp"]  # measured again: the new row, once
    s = compare.compare_on_board("qemu-m4", models=[cnn], dataset=ds, images=2, log=lambda m: None)
    assert [r["variant"] for r in s["results"]] == ["cnn"]
    assert len((build_dir / "results" / "compare-qemu-m4.jsonl").read_text().splitlines()) == 4
