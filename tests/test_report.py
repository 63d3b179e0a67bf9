"""The report on synthetic cards and results: measured parts shown, unmeasured ones 'missing', plots linked."""

from __future__ import annotations

import re

import numpy as np
import pytest

from edgedigit.core.errors import EdgeDigitError
from edgedigit.core.fsutil import write_json
from edgedigit.core.results import append_jsonl
from edgedigit.measure.bench_host import confusion
from edgedigit.report import plots
from edgedigit.report.document import BoardInfo, Recommendation, collect, latest, write_report

DATASET = {"name": "mnist", "source": "/data/mnist.npz", "sha256": "ab" * 32, "train": 60000, "test": 10000,
           "fallback": False}
LABEL = "mnist test (10,000)"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _card(variant, kind, size, acc_f, acc_q):
    return {"variant": variant, "kind": kind, "dataset": DATASET, "seed": 0, "params": size, "macs": size,
            "float_accuracy": acc_f, "int8_accuracy": acc_q, "size_bytes": size}


def _host_record(variant, runtime, median_us):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500)
    pred = np.where(rng.random(500) < 0.9, labels, (labels + 1) % 10)
    samples = (median_us * (1 + 0.1 * rng.random(50))).tolist()
    return {"kind": "bench-host", "variant": variant, "runtime": runtime, "status": "ok", "dataset": DATASET,
            "machine": {"cpu": "Test CPU 9000", "cores_logical": 2, "os": "Linux", "python": "3.11"},
            "accuracy": float(np.mean(pred == labels)), "n_test": 500,
            "latency_us": {"n": 50, "median": median_us, "p95": median_us * 1.1, "p99": median_us * 1.2},
            "latency_samples_us": samples, "confusion": confusion(labels, pred).tolist(), "runs": 50,
            "warmup": 5, "throughput_ips": 1e6 / median_us, "throughput_batch": 100, "throughput_repeats": 3,
            "rss_mb": {"before": 100.0, "after": 101.0, "peak": 101.5}, "cpu_us_per_image": median_us}


@pytest.fixture
def synthetic(build_dir):
    models = build_dir / "models"
    for v, kind, size, f, q in [("mlp", "neural", 103_000, 0.975, 0.974), ("cnn", "neural", 40_000, 0.993, 0.992),
                                ("rfe-lr", "linear", 1_500, 0.915, 0.913)]:
        write_json(models / v / "card.json", _card(v, kind, size, f, q))
    rng = np.random.default_rng(1)
    np.savez(models / "rfe-lr" / "model_fixed.npz", pixels=np.sort(rng.choice(784, 100, replace=False)).astype(np.int32),
             weights=rng.integers(-127, 128, (10, 100)).astype(np.int8), bias=np.zeros(10, np.int32),
             scale=np.float64(0.01))
    res = build_dir / "results"
    append_jsonl(res / "bench-host.jsonl", _host_record("mlp", "tflm", 999.0))  # superseded below
    append_jsonl(res / "bench-host.jsonl", _host_record("mlp", "tflm", 150.0))
    append_jsonl(res / "bench-host.jsonl", _host_record("mlp", "keras", 900.0))
    append_jsonl(res / "bench-host.jsonl", {"variant": "mlp", "runtime": "native", "status": "missing",
                                            "reason": "edgedigit.runtimes.native_host is not available", "command": ""})
    append_jsonl(res / "stress.jsonl", {"variant": "mlp", "runtime": "tflm", "status": "ok", "dataset": DATASET,
                                        "iterations": 1000, "batch": 100, "latency_ms": {"median": 15.0, "p95": 16.0,
                                                                                         "p99": 17.0},
                                        "drift_pct": 1.25, "cpu_drift_pct": 0.5, "growth_mb": 0.1, "errors": 0,
                                        "verdict": "stable", "verdict_reasons": []})
    return build_dir


BOARDS = [BoardInfo("uno", "Arduino Uno", 32_256, 2_048), BoardInfo("esp32dev", "ESP32", 1_310_720, 327_680)]


def _recommend(boards, cards):
    assert [b.id for b in boards] == ["uno", "esp32dev"] and "mlp" in cards
    return [Recommendation("uno", "rfe-lr", 0.913, 1_500, 400, [("mlp", "flash 103,000 B > 32,256 B")]),
            Recommendation("esp32dev", "cnn", 0.992, 100_000, 60_000)], ""


def test_latest_keeps_the_last_record_per_key():
    recs = [{"variant": "a", "runtime": "x", "v": 1}, {"variant": "b", "runtime": "x", "v": 2},
            {"variant": "a", "runtime": "x", "v": 3}]
    assert [r["v"] for r in latest(recs, ("variant", "runtime"))] == [3, 2]


def test_report_marks_missing_parts_and_links_every_plot(synthetic, monkeypatch):
    titles = {}
    from matplotlib.figure import Figure

    original = Figure.savefig

    def spy(fig, path, *a, **k):
        titles[str(path).rsplit("/", 1)[-1]] = " ".join(ax.get_title() for ax in fig.axes)
        return original(fig, path, *a, **k)

    monkeypatch.setattr(Figure, "savefig", spy)
    data = collect(board="esp32dev", boards=BOARDS, recommend=_recommend)
    path = write_report(data)
    md = path.read_text()
    out = path.parent

    # measured figures appear, with the dataset; the superseded record does not
    assert LABEL in md
    assert "| mlp | 97.50 % | 97.40 % | 103,000 |" in md
    assert "150.0 (tflm)" in md and "999.0" not in md
    assert "1.50 (tflm)" in md  # peak - before RSS
    assert "stable (1/1 runtimes)" in md
    assert "| uno | **rfe-lr** | 91.30 % |" in md and "mlp: flash 103,000 B > 32,256 B" in md
    # unmeasured parts say missing, with the command
    assert "missing (`edgedigit bench host cnn`)" in md
    assert "missing (`edgedigit bench stress rfe-lr`)" in md
    assert "missing (`edgedigit bench device --board qemu-m4`)" in md
    assert "missing (`edgedigit bench compare`)" in md
    assert "missing (`edgedigit bench compare --board qemu-m4`)" in md
    assert "missing: edgedigit.runtimes.native_host is not available" in md

    # every PNG written is linked, every link exists and is a PNG whose title names the dataset
    pngs = sorted(p.name for p in out.glob("*.png"))
    links = sorted(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md))
    assert pngs == links == ["accuracy_vs_size.png", "latency.png", "rfe_lr_pixels.png"]
    for name in pngs:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    for name in ("accuracy_vs_size.png", "latency.png"):
        assert LABEL in titles[name], titles[name]
    assert "mnist train (60,000)" in titles["rfe_lr_pixels.png"]
    # the recommended model for esp32dev (cnn) has no host run: its confusion matrix is missing, not another's
    assert "Confusion matrix of cnn: missing (`edgedigit bench host cnn`)" in md

def test_confusion_of_the_recommended_model(synthetic, monkeypatch):
    append_jsonl(synthetic / "results" / "bench-host.jsonl", _host_record("cnn", "tflm", 300.0))
    seen = {}

    def fake_confusion(path, m, model, ds):
        seen.update(m=m, model=model, ds=ds)
        path.write_bytes(PNG_MAGIC)
        return f"confusion matrix of {model} on {ds}"

    monkeypatch.setattr(plots, "confusion_matrix", fake_confusion)
    md = write_report(collect(board="esp32dev", boards=BOARDS, recommend=_recommend)).read_text()
    # the confusion matrix was computed on 500 test images: its title says so
    assert "![confusion matrix of cnn (tflm) on mnist test (first 500 of 10,000)](confusion.png)" in md
    assert seen["m"].shape == (10, 10) and seen["m"].sum() == 500
    # for uno the recommendation is rfe-lr, which has no host run
    md = write_report(collect(board="uno", boards=BOARDS, recommend=_recommend)).read_text()
    assert "Confusion matrix of rfe-lr: missing (`edgedigit bench host rfe-lr`)" in md


def test_report_without_anything_measured_refuses(build_dir):
    with pytest.raises(EdgeDigitError, match="nothing to report"):
        write_report(collect(boards=[], recommend=lambda b, c: ([], "")))


def test_fallback_dataset_is_announced(build_dir):
    ds = dict(DATASET, name="sklearn-digits-28x28", fallback=True, test=360)
    write_json(build_dir / "models" / "mlp" / "card.json", dict(_card("mlp", "neural", 1000, 0.9, 0.9), dataset=ds))
    md = write_report(collect(boards=[], recommend=lambda b, c: ([], "no boards"))).read_text()
    assert "FALLBACK sklearn-digits-28x28 test (360)" in md and "NOT MNIST" in md
    assert "missing: no boards" in md


def test_pareto_front():
    pts = [(100, 97.0), (50, 97.5), (10, 90.0), (60, 96.0), (200, 99.0), (10, 89.0)]
    assert plots.pareto_front(pts) == [2, 1, 4]


def test_device_records_are_read(synthetic):
    f = synthetic / "results" / "device-qemu-m4-mlp.jsonl"
    append_jsonl(f, {"type": "session", "board": "qemu-m4", "variant": "mlp", "backend": "native", "samples": 300,
                     "counter_unit": "instructions", "counter_note": "emulated instructions, not cycles",
                     "dataset": DATASET})
    for i in range(200):  # an interrupted run: 200 of 300 samples, counters drift by +2 %
        append_jsonl(f, {"type": "sample", "index": i, "label": i % 10, "predicted": i % 10 if i % 4 else 0,
                         "agree": i != 7, "counter": 200_000 if i < 100 else 204_000, "us": 0.0})
    md = write_report(collect(boards=[], recommend=lambda b, c: ([], ""))).read_text()
    row = next(line for line in md.splitlines() if line.startswith("| qemu-m4 | mlp |"))
    # every 4th sample predicts 0, right only when its label is 0 (i % 20 == 0): 150 + 10 of 200 correct
    assert row.split(" | ")[3:9] == ["200/300", "80.00 %", "202.0", "202,000 instructions",
                                     "199/200 images identical", "+2.00 % (stable)"]
    assert "| 80.00 % / 202,000 emulated instructions |" in md  # the device column of the comparison table
    assert "| not measured (bench device runs neural variants) |" in md  # rfe-lr's device cell
    assert "emulated instructions, not cycles" in md


def test_recommendation_for_every_board_despite_a_variant_native_cannot_run(build_dir, tanh_model):
    """The report's recommendation goes through `edgedigit select`: a variant with TANH (no native kernel)
    is left out of native-only boards with its reason, and every board still gets a recommendation."""
    from edgedigit.targets.boards import list_boards
    from helpers import add_variant

    add_variant(build_dir, "tanh", "neural", 0.99, tanh_model)
    add_variant(build_dir, "rfe-lr", "linear", 0.8)
    data = collect()
    assert not [n for n in data.notes if n.startswith("recommendation")], data.notes
    recs = {r.board: r for r in data.recommendations}
    assert sorted(recs) == sorted(b.id for b in list_boards())
    for b in list_boards():
        r = recs[b.id]
        assert r.variant == ("tanh" if "tflm" in b.backends else "rfe-lr"), (b.id, r)
        if r.variant == "rfe-lr":
            why = dict(r.excluded)["tanh"]
            assert "operator TANH is not supported by the native backend" in why
    md = write_report(data).read_text()
    assert "| uno | **rfe-lr** (backend linear)" in md


def _board_compare(variant, macs, native, cmsis, reference):
    keys = ("native", "tflm_cmsis_nn", "tflm_reference")
    ins = dict(zip(keys, (native, cmsis, reference), strict=True))
    return {"kind": "compare-board", "board": "qemu-m4", "variant": variant, "images": 10000, "macs": macs,
            "counter_unit": "instructions", "instructions": ins,
            "instructions_per_mac": {k: v / macs for k, v in ins.items()},
            "native_over_tflm_cmsis_nn": {"instructions": native / cmsis},
            "flash": dict(zip(keys, (45_368, 113_000, 118_000), strict=True)),
            "ram": dict(zip(keys, (20_000, 31_000, 30_000), strict=True)),
            "outputs_identical": dict.fromkeys(keys, True), "elements_identical": dict.fromkeys(keys, 100_000),
            "images_identical": dict.fromkeys(keys, 10_000), "elements": 100_000, "missing": {}}


@pytest.fixture
def firmware_plot(monkeypatch):
    """What the report hands plots.firmware_instructions (which writes a stand-in PNG)."""
    seen = {}

    def fake_plot(path, models, series, board, ds, unit):
        seen.update(models=models, series=series, board=board, ds=ds, unit=unit)
        path.write_bytes(PNG_MAGIC)
        return f"{unit} per inference on {board}"

    monkeypatch.setattr(plots, "firmware_instructions", fake_plot)
    return seen


def test_the_cortex_m4_comparison_leads_the_comparison_section(synthetic, firmware_plot):
    seen = firmware_plot
    write_json(synthetic / "results" / "compare-qemu-m4.json", {
        "kind": "compare-board-summary", "board": "qemu-m4", "dataset": DATASET, "images": 10000,
        "counter_note": "emulated instructions, not cycles of a real chip", "method": {"instructions": "SysTick"},
        "results": [_board_compare("mlp", 101_632, 181_042, 204_440, 725_926),
                    _board_compare("cnn", 1_924_992, 14_905_782, 5_036_364, 20_528_058)]})
    md = write_report(collect(board="esp32dev", boards=BOARDS, recommend=_recommend)).read_text()
    board, host = md.index("### On the target CPU: qemu-m4"), md.index("### On this host (x86, valgrind callgrind)")
    assert md.index("## Native C vs TFLM on the same model") < board < host
    assert "| mlp | 101,632 | 181,042 | 204,440 | 725,926 | 0.89x | 1.78 / 2.01 / 7.14 |" in md
    assert "| cnn | 1,924,992 | 14,905,782 | 5,036,364 | 20,528,058 | 2.96x | 7.74 / 2.62 / 10.66 |" in md
    assert "| mlp | 45,368 | 113,000 | 118,000 | 20,000 | 31,000 | 30,000 | yes / yes / yes |" in md
    assert "The same 10,000 images (mnist test (10,000))" in md
    assert "emulated instructions, not cycles of a real chip" in md
    assert "![instructions per inference on qemu-m4](compare_qemu-m4.png)" in md
    assert seen["models"] == ["mlp", "cnn"] and seen["series"]["TFLM + CMSIS-NN"] == [204_440, 5_036_364]
    assert seen["ds"] == LABEL and seen["unit"] == "instructions"


def test_outputs_that_differ_from_the_interpreter_are_counted(synthetic):
    rec = _board_compare("tiny", 510_912, 5_159_818, 2_069_120, 7_950_114)
    rec["outputs_identical"]["tflm_reference"] = False
    rec["images_identical"]["tflm_reference"] = 9_997
    rec["elements_identical"]["tflm_reference"] = 99_995
    write_json(synthetic / "results" / "compare-qemu-m4.json", {
        "kind": "compare-board-summary", "board": "qemu-m4", "dataset": DATASET, "images": 10000, "results": [rec]})
    md = write_report(collect(board="esp32dev", boards=BOARDS, recommend=_recommend)).read_text()
    assert "| yes / yes / **NO**: 3 images, 5 elements differ |" in md


def test_any_model_rows_say_their_inputs_were_random(synthetic, firmware_plot):
    seen = firmware_plot
    rec = _board_compare("ad01_int8", 264_192, 529_040, 590_600, 1_961_000)
    rec["dataset"] = {"name": "random", "source": "numpy default_rng(0) bytes", "inputs": 100}
    write_json(synthetic / "results" / "compare-qemu-m4.json", {
        "kind": "compare-board-summary", "board": "qemu-m4", "dataset": DATASET, "images": 100,
        "results": [_board_compare("mlp", 101_632, 181_042, 204_440, 725_926), rec]})
    md = write_report(collect(board="esp32dev", boards=BOARDS, recommend=_recommend)).read_text()
    assert "| ad01_int8 | 264,192 | 529,040 | 590,600 | 1,961,000 | 0.90x | 2.00 / 2.24 / 7.42 |" in md
    assert ("ad01_int8: not a digit classifier; every firmware gets the same 100 seeded random inputs (numpy "
            "default_rng(0) bytes) instead of the images") in md
    assert "mlp: not digit" not in md
    assert seen["ds"] == "mnist test (first 100 of 10,000) and seeded random inputs"


def test_firmware_instructions_plot_skips_what_was_not_measured(tmp_path):
    path = tmp_path / "c.png"
    title = plots.firmware_instructions(path, ["mlp", "cnn"], {"native": [181_042, 14_905_782],
                                                              "TFLM reference": [725_926, None]},
                                        "qemu-m4", LABEL, "instructions")
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert title == f"instructions per inference on qemu-m4, native vs TFLM, inputs: {LABEL}"


def _front_row(trial, accuracy, instructions, measured=None, baseline=False):
    return {"trial": trial, "accuracy": accuracy, "instructions": instructions, "flash": 40_000 + trial,
            "ram": 9_000 + trial, "backend": "native", "architecture": f"conv {trial}", "baseline": baseline,
            **({"instructions_measured": measured} if measured is not None else {})}


def test_search_front_is_a_section_and_a_plot_beside_the_variants(synthetic):
    write_json(synthetic / "search" / "nano33ble" / "pareto.json", {
        "board": "nano33ble", "study": {"name": "nano33ble-accuracy-latency", "storage": "sqlite:///x.db"},
        "objectives": ["accuracy", "latency"], "counts": {"complete": 12, "pruned": 3, "failed": 0},
        "accuracy_of": "int8 model under TFLM on the validation split", "instructions_of": "cost model",
        "front": [_front_row(7, 0.9921, 2_400_000, measured=2_380_411), _front_row(2, 0.981, 600_000),
                  _front_row(0, 0.990, 14_900_000, baseline=True)]})
    write_json(synthetic / "results" / "compare-qemu-m4.json", {
        "kind": "compare-board-summary", "board": "qemu-m4", "dataset": DATASET, "images": 100,
        "results": [_board_compare("mlp", 101_632, 181_042, 204_440, 725_926)]})
    md = write_report(collect(board="esp32dev", boards=BOARDS, recommend=_recommend)).read_text()
    section = md[md.index("## Architecture search (`edgedigit search`)"):]
    assert "### nano33ble: study `nano33ble-accuracy-latency`" in section
    assert "12 trials complete, 3 pruned" in section
    assert "| 7 | conv 7 | 99.21 % | 2,380,411 measured | 40,007 | 9,007 | native |" in section
    assert "| 2 | conv 2 | 98.10 % | 600,000 estimated | 40,002 | 9,002 | native |" in section
    assert "| 0 (baseline) | conv 0 | 99.00 % |" in section
    png = synthetic / "reports" / "search_nano33ble.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and "![architecture search for nano33ble" in section
    assert "hand-designed variants are placed by their int8 accuracy on the test set" in section  # mlp was measured
