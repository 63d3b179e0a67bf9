"""Pipeline skip logic: hash stamps, not mtimes; missing parts and blocked stages; the real stage list with
every stage replaced by a fake at its module boundary."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgedigit import pipeline
from edgedigit.core.errors import EdgeDigitError, ModelTooLargeError
from edgedigit.models.data import Dataset
from edgedigit.pipeline import Blocked, MissingPart, Stage, file_hash, run_stages


def _chain(tmp, calls, *, b_missing=False):
    src, a, b = tmp / "in.txt", tmp / "a.txt", tmp / "b.txt"

    def run_a():
        calls.append("A")
        a.write_text(src.read_text().upper())

    def run_b():
        if b_missing:
            raise MissingPart("edgedigit.nothing is not available")
        calls.append("B")
        b.write_text(a.read_text() + "!")

    return [Stage("A", lambda: {"in": file_hash(src), "knob": 1}, lambda: [a], run_a),
            Stage("B", lambda: {"a": file_hash(a)}, lambda: [b], run_b)]


def _lines(stages, **kw):
    out = []
    run_stages(stages, echo=out.append, **kw)
    return out


def test_second_run_skips_everything(build_dir, tmp_path):
    (tmp_path / "in.txt").write_text("x")
    calls = []
    first = _lines(_chain(tmp_path, calls))
    assert [line.split(" (")[0] for line in first] == ["A: ran", "B: ran"] and calls == ["A", "B"]
    assert _lines(_chain(tmp_path, calls)) == ["A: skipped (up to date)", "B: skipped (up to date)"]
    assert calls == ["A", "B"]
    stamp = json.loads((build_dir / "stamps" / "A.json").read_text())
    assert stamp["inputs"]["knob"] == 1 and stamp["outputs"] == {str(tmp_path / "a.txt"): file_hash(tmp_path / "a.txt")}


def test_hashes_not_mtimes(build_dir, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("x")
    calls = []
    _lines(_chain(tmp_path, calls))
    os.utime(src, (1e9 + 10**8, 1e9 + 10**8))  # newer mtime, same bytes: nothing to do
    assert _lines(_chain(tmp_path, calls)) == ["A: skipped (up to date)", "B: skipped (up to date)"]
    src.write_text("y")  # new bytes: A re-runs, its output changes, so B re-runs
    assert [line.split(" (")[0] for line in _lines(_chain(tmp_path, calls))] == ["A: ran", "B: ran"]
    (tmp_path / "b.txt").write_text("edited by hand")  # an output changed behind the pipeline's back
    assert [line.split(" (")[0] for line in _lines(_chain(tmp_path, calls))] == ["A: skipped", "B: ran"]
    assert calls == ["A", "B", "A", "B", "B"]


def test_unchanged_output_does_not_rerun_downstream(build_dir, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("x")
    calls = []
    _lines(_chain(tmp_path, calls))
    src.write_text("X")  # A re-runs but writes the same "X": B stays up to date
    assert [line.split(" (")[0] for line in _lines(_chain(tmp_path, calls))] == ["A: ran", "B: skipped"]


def test_force_reruns(build_dir, tmp_path):
    (tmp_path / "in.txt").write_text("x")
    calls = []
    _lines(_chain(tmp_path, calls))
    _lines(_chain(tmp_path, calls), force=True)
    assert calls == ["A", "B", "A", "B"]


def test_missing_part_and_blocked(build_dir, tmp_path):
    calls = []
    # no in.txt: A is blocked, B blocked too (a.txt never written)
    lines = _lines(_chain(tmp_path, calls))
    assert lines == [f"A: blocked ({tmp_path / 'in.txt'} missing)", f"B: blocked ({tmp_path / 'a.txt'} missing)"]
    (tmp_path / "in.txt").write_text("x")
    lines = _lines(_chain(tmp_path, calls, b_missing=True))
    assert lines[1] == "B: missing part (edgedigit.nothing is not available)"
    assert not (build_dir / "stamps" / "B.json").exists()


def test_stage_that_writes_nothing_fails(build_dir, tmp_path):
    stage = Stage("lazy", lambda: {}, lambda: [tmp_path / "never.txt"], lambda: None)
    with pytest.raises(EdgeDigitError, match="'lazy' ran but did not write .*never.txt"):
        run_stages([stage], echo=lambda s: None)


# --------------------------------------------------------------- the real stage list, fakes at the boundary


def _tiny_dataset():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    y = (np.arange(40) % 10).astype(np.uint8)
    return Dataset("mnist", "fake", "cd" * 32, x[:30], y[:30], x[30:], y[30:])


@pytest.fixture
def fakes(build_dir, monkeypatch):
    """Every stage function replaced by a fake that writes the files the real one writes."""
    import edgedigit.measure.bench_compare as compare
    import edgedigit.measure.bench_device as device
    import edgedigit.measure.bench_host as host
    import edgedigit.measure.bench_stress as stress
    import edgedigit.measure.validate as validate
    import edgedigit.models.data as data
    import edgedigit.models.quantize as quantize
    import edgedigit.models.train as train
    import edgedigit.report.document as report
    import edgedigit.targets.export as export

    calls: list[tuple] = []
    models, results = build_dir / "models", build_dir / "results"

    def fake_train(names, ds, seed=0, epochs=None, **kw):
        for n in names:
            calls.append(("train", n))
            (models / n).mkdir(parents=True, exist_ok=True)
            (models / n / "model.keras").write_text(f"{n} float {seed}")
            (models / n / "card.json").write_text(json.dumps({"variant": n, "files": {"float": "model.keras"}}))

    def fake_quantize(names, ds, calibration_samples=500, seed=0, **kw):
        for n in names:
            calls.append(("quantize", n))
            (models / n / "model_int8.tflite").write_text(f"{n} int8 {calibration_samples}")
            card = json.loads((models / n / "card.json").read_text())
            card["int8_accuracy"] = 0.9  # quantize rewrites the card: training must stay up to date
            (models / n / "card.json").write_text(json.dumps(card))

    def fake_validate(names, ds):
        calls.append(("validate", tuple(names)))
        results.mkdir(parents=True, exist_ok=True)
        (results / "validate.json").write_text("{}")

    def fake_export(board, variant=None, backend=None):
        if board == "uno" and variant != "rfe-lr":
            raise ModelTooLargeError(f"{variant} does not fit uno's 32,256 B flash")
        calls.append(("export", variant, board, backend))
        p = build_dir / "firmware" / board / f"{variant}-{backend}"
        (p / "src").mkdir(parents=True, exist_ok=True)
        (p / "src" / "model.c").write_text(f"/* {variant} */")
        (p / "edgedigit.lock.json").write_text(json.dumps({"variant": variant,
                                                           "files": {"src/model.c": file_hash(p / "src" / "model.c")}}))

    def fake_bench_host(names, ds, cfg):
        calls.append(("bench host", tuple(names)))
        results.mkdir(parents=True, exist_ok=True)
        (results / "bench-host.json").write_text("{}")

    def fake_stress(names, ds, cfg):
        calls.append(("stress", tuple(names), cfg.iterations))
        (results / "stress.json").write_text("{}")

    def fake_compare(names, ds, images=10):
        calls.append(("compare", tuple(names), images))
        (results / "compare.json").write_text("{}")

    def fake_device(board, variant, samples=0, data=None, progress=True, project=None):
        assert project == build_dir / "firmware" / board / f"{variant}-native"  # the export stage's project
        calls.append(("device", board, variant, samples))
        session = [{"type": "session", "session": "s1", "samples": samples}]
        rows = [{"type": "sample", "index": i} for i in range(samples)]
        (results / f"device-{board}-{variant}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in session + rows))
        (results / f"device-{board}-{variant}.json").write_text(json.dumps({"samples": samples, "session": "s1"}))

    def fake_report(board):
        calls.append(("report", board))
        (build_dir / "reports").mkdir(parents=True, exist_ok=True)
        (build_dir / "reports" / "report.md").write_text("# report")

    monkeypatch.setattr(train, "train_variants", fake_train)
    monkeypatch.setattr(quantize, "quantize_variants", fake_quantize)
    monkeypatch.setattr(validate, "validate_variants", fake_validate)
    monkeypatch.setattr(export, "export", fake_export)
    monkeypatch.setattr(host, "bench_host", fake_bench_host)
    monkeypatch.setattr(stress, "stress", fake_stress)
    monkeypatch.setattr(device, "bench_device", fake_device)
    monkeypatch.setattr(compare, "compare", fake_compare)
    monkeypatch.setattr(report, "report", fake_report)
    monkeypatch.setattr(data, "load_dataset", lambda path=None: _tiny_dataset())
    return calls


def test_real_stage_list_qemu(fakes):
    from edgedigit.cli import app

    res = CliRunner().invoke(app, ["pipeline", "--board", "qemu-m4", "--variant", "mlp-pruned", "--samples", "50"])
    assert res.exit_code == 0, res.output
    lines = [line.split(" (")[0] for line in res.output.splitlines()]
    assert lines[0] == "dataset: mnist test"
    assert lines[1:-1] == ["train mlp: ran", "train mlp-pruned: ran", "quantize mlp: ran", "quantize mlp-pruned: ran",
                           "validate: ran", "bench host: ran", "bench stress: ran", "bench compare: ran",
                           "export qemu-m4 mlp native: ran",
                           "export qemu-m4 mlp-pruned native: ran", "bench device qemu-m4 mlp: ran",
                           "bench device qemu-m4 mlp-pruned: ran", "report: ran"]
    assert ("export", "mlp", "qemu-m4", "native") in fakes and ("device", "qemu-m4", "mlp-pruned", 50) in fakes
    assert ("stress", ("mlp", "mlp-pruned"), 1000) in fakes and ("compare", ("mlp", "mlp-pruned"), 10) in fakes
    n = len(fakes)

    res = CliRunner().invoke(app, ["pipeline", "--board", "qemu-m4", "--variant", "mlp-pruned", "--samples", "50"])
    assert res.exit_code == 0, res.output
    assert all(line.endswith("skipped (up to date)") for line in res.output.splitlines()[1:-1]), res.output
    assert "pipeline: 0 ran, 13 up to date, 0 not run" in res.output
    assert len(fakes) == n  # nothing ran

    # a different number of device samples re-runs only the device benches and the report
    res = CliRunner().invoke(app, ["pipeline", "--board", "qemu-m4", "--variant", "mlp-pruned", "--samples", "60"])
    ran = [line.split(":")[0] for line in res.output.splitlines() if ": ran" in line]
    assert ran == ["bench device qemu-m4 mlp", "bench device qemu-m4 mlp-pruned", "report"]

    # issue 15: a generated file edited by hand makes its export incomplete (re-exported); a device results file
    # shorter than its summary makes that bench run again
    build = Path(os.environ["EDGEDIGIT_BUILD"])
    (build / "firmware" / "qemu-m4" / "mlp-native" / "src" / "model.c").write_text("/* edited */")
    jsonl = build / "results" / "device-qemu-m4-mlp-pruned.jsonl"
    jsonl.write_text("".join(jsonl.read_text().splitlines(keepends=True)[:30]))
    res = CliRunner().invoke(app, ["pipeline", "--board", "qemu-m4", "--variant", "mlp-pruned", "--samples", "60"])
    ran = [line.split(":")[0] for line in res.output.splitlines() if ": ran" in line]
    assert ran == ["export qemu-m4 mlp native", "bench device qemu-m4 mlp-pruned"]  # same bytes again: no report


def test_boards_that_do_not_run_here_skip_the_device_stage(fakes):
    lines = []
    pipeline.run_pipeline("esp32dev", variants=["mlp"], echo=lines.append)
    names = [line.split(":")[0] for line in lines[1:-1]]
    assert names == ["train mlp", "quantize mlp", "validate", "bench host", "bench stress", "bench compare",
                     "export esp32dev mlp tflm", "report"]
    assert not any(c[0] == "device" for c in fakes)


def test_model_too_large_is_not_applicable(fakes):
    lines = []
    pipeline.run_pipeline("uno", variants=["mlp"], echo=lines.append)
    assert "export uno mlp native: not applicable (mlp does not fit uno's 32,256 B flash)" in lines
    assert lines[-2].startswith("report: ran")


def test_missing_tool_is_a_missing_part(fakes, monkeypatch):
    import shutil

    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "valgrind" else real(name))
    lines = []
    pipeline.run_pipeline("host", variants=["mlp"], echo=lines.append)
    assert "bench compare: missing part (valgrind not installed)" in lines
    assert not any(c[0] == "compare" for c in fakes)


def test_unknown_board_is_one_line(build_dir):
    from edgedigit.cli import app

    res = CliRunner().invoke(app, ["pipeline", "--board", "nosuchboard"])
    assert res.exit_code == 1
    assert "nosuchboard" in res.output and "Traceback" not in res.output


def test_blocked_input_is_reported(fakes, build_dir, monkeypatch):
    import edgedigit.models.train as train

    monkeypatch.setattr(train, "train_variants", lambda *a, **k: (_ for _ in ()).throw(Blocked("no data")))
    lines = []
    pipeline.run_pipeline("host", variants=["mlp"], echo=lines.append)
    assert lines[1] == "train mlp: blocked (no data)"
    assert lines[2].startswith("quantize mlp: blocked (") and "model.keras missing" in lines[2]
