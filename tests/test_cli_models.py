"""The model commands end to end through typer's CliRunner: train -> quantize -> validate, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgedigit.cli import app
from edgedigit.models.variants import REGISTRY

runner = CliRunner()


def _one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def small_npz(mnist, tmp_path_factory):
    """A real-MNIST slice on disk (2,000 train / 300 test) for commands that take --data."""
    p = tmp_path_factory.mktemp("data") / "mnist_small.npz"
    s = mnist.subset(2000, 300)
    np.savez(p, x_train=s.x_train, y_train=s.y_train, x_test=s.x_test, y_test=s.y_test)
    return p


@pytest.mark.mnist
def test_train_quantize_validate_end_to_end(build_dir, small_npz, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich tables unwrapped
    r = runner.invoke(app, ["train", "mlp", "--epochs", "1", "--seed", "1", "--data", str(small_npz), "--json"])
    assert r.exit_code == 0, r.output
    (card,) = json.loads(r.stdout)
    assert card["variant"] == "mlp" and card["seed"] == 1 and card["dataset"]["train"] == 2000
    assert card["float_accuracy"] > 0.7 and card["int8_accuracy"] is None

    r = runner.invoke(app, ["quantize", "mlp", "--calibration-samples", "64", "--granularity", "per-channel",
                            "--data", str(small_npz)])
    assert r.exit_code == 0, r.output
    assert "quantized (accuracy on mnist test (300)" in r.stdout and "per-channel" in r.stdout
    saved = json.loads((build_dir / "models" / "mlp" / "card.json").read_text())
    assert saved["quantization"]["calibration_samples"] == 64 and saved["quantization"]["granularity"] == "per-channel"

    r = runner.invoke(app, ["validate", "--json", "--limit", "100", "--data", str(small_npz)])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert list(summary["variants"]) == ["mlp"] and summary["label"] == "mnist test (100)"
    v = summary["variants"]["mlp"]
    assert v["agreement"]["tflm"]["images"] == 100 and v["quantized"]["litert-ref"]["accuracy"] > 0.7

    r = runner.invoke(app, ["validate", "mlp", "--data", str(small_npz)])
    assert r.exit_code == 0, r.output
    assert "accuracy on mnist test (300)" in r.stdout and "int8 runtime agreement" in r.stdout
    assert "tflm" in r.stdout and "litert" in r.stdout
    assert "mlp per class (litert-ref int8)" in r.stdout and "mlp confusion (litert-ref int8)" in r.stdout
    assert (build_dir / "results" / "validate.json").is_file()


def test_unknown_variant_is_one_line_with_choices(build_dir):
    for cmd in (["train", "mlp", "resnet"], ["quantize", "resnet"], ["validate", "resnet"]):
        line = _one_error_line(runner.invoke(app, cmd))
        assert line == f"error: unknown variant 'resnet'; choose from: {', '.join(REGISTRY)}"
    assert not (build_dir / "models").exists()


def test_not_trained_is_one_line_naming_the_command(build_dir):
    line = _one_error_line(runner.invoke(app, ["quantize", "mlp-pruned"]))
    assert "variant 'mlp-pruned' is not trained" in line and "`edgedigit train mlp-pruned`" in line
    line = _one_error_line(runner.invoke(app, ["validate", "mlp"]))
    assert "`edgedigit train mlp`" in line
    for cmd in ("quantize", "validate"):  # checked before the (here missing) data is loaded
        line = _one_error_line(runner.invoke(app, [cmd, "--data", "/nonexistent.npz"]))
        assert line == f"error: no trained variant in {build_dir / 'models'}: run `edgedigit train` first"


@pytest.mark.mnist
def test_validate_not_quantized_names_quantize(trained_build):
    (trained_build / "models" / "mlp" / "model_int8.tflite").unlink()
    line = _one_error_line(runner.invoke(app, ["validate", "mlp"]))
    assert "variant 'mlp' is not quantized" in line and "`edgedigit quantize mlp`" in line


def test_corrupt_data_file_is_one_line_and_writes_nothing(build_dir, tmp_path):
    bad = tmp_path / "broken.npz"
    np.savez(bad, x_train=np.zeros((5, 28, 28), np.uint8))
    line = _one_error_line(runner.invoke(app, ["train", "mlp", "--data", str(bad)]))
    assert line == (f"error: {bad}: missing array(s) y_train, x_test, y_test; expected x_train, y_train, x_test, "
                    "y_test (found: x_train)")
    assert not (build_dir / "models").exists()
    line = _one_error_line(runner.invoke(app, ["train", "mlp", "--data", str(tmp_path / "nothere.npz")]))
    assert "nothere.npz: no such file or folder (from --data)" in line


def test_bad_options(build_dir):
    r = runner.invoke(app, ["quantize", "mlp", "--granularity", "per-row"])
    assert r.exit_code == 2 and "per-row" in r.output
    line = _one_error_line(runner.invoke(app, ["train", "mlp", "--set", "width"]))
    assert line == "error: --set 'width': expected KEY=VALUE"


def test_knob_parsing():
    from edgedigit.cli.models import _parse_knobs

    assert _parse_knobs(["width=16", "augment=true", "lr=0.5", "teacher=cnn", "x=False"]) == {
        "width": 16, "augment": True, "lr": 0.5, "teacher": "cnn", "x": False}
    assert _parse_knobs(None) == {}


def test_fallback_data_is_announced_and_recorded_in_the_card(build_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("EDGEDIGIT_DATA", raising=False)
    monkeypatch.setattr("edgedigit.models.data._try_download", lambda: None)
    r = runner.invoke(app, ["train", "mlp", "--epochs", "1"])
    assert r.exit_code == 0, r.output
    assert "warning: MNIST not found" in r.stderr and "NOT MNIST figures" in r.stderr
    r = runner.invoke(app, ["quantize", "mlp", "--calibration-samples", "32", "--json"])
    assert r.exit_code == 0, r.output
    (card,) = json.loads(r.stdout)
    assert card["dataset"]["fallback"] is True and card["dataset"]["name"] == "sklearn-digits-28x28"
    assert card["quantization"]["calibration_dataset"]["fallback"] is True
    assert card["float_accuracy"] > 0.5 and card["int8_accuracy"] > 0.5  # 1,438 upscaled 8x8 digits, 1 epoch
