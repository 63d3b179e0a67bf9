"""The rfe-lr variant through the stages (train, quantize, validate), on the shared ``trained_build`` slice."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgedigit.core.errors import ModelError, NotTrainedError

pytestmark = pytest.mark.mnist


def _card(build):
    return json.loads((build / "models" / "rfe-lr" / "card.json").read_text())


def test_card_holds_exactly_100_sorted_unique_pixels(trained_build, mnist_small):
    from edgedigit.codegen.linear import tables_bytes
    from edgedigit.models.rfe import FixedPointLR

    card = _card(trained_build)
    folder = trained_build / "models" / "rfe-lr"
    assert card["kind"] == "linear" and card["variant"] == "rfe-lr"
    pixels = card["pixels"]
    assert len(pixels) == 100 and pixels == sorted(set(pixels))
    assert card["files"]["float"] == "model.joblib" and card["files"]["fixed"] == "model_fixed.npz"
    fixed = FixedPointLR.load(folder / "model_fixed.npz")
    assert fixed.pixels.tolist() == pixels
    assert card["size_bytes"] == tables_bytes(fixed) == 1240
    assert card["params"] == 1010 and card["macs"] == 1000
    # the card's int8 figure is the fixed-point form's accuracy on the test slice
    acc = float(np.mean(fixed.predict(mnist_small.x_test) == mnist_small.y_test))
    assert card["int8_accuracy"] == acc
    assert acc > 0.80
    assert card["quantization"]["output_scale"] == float(fixed.scale)
    assert card["regularization"]["C"] in card["regularization"]["candidates"]
    assert card["selection"]["samples"] <= 3000 * 5 / 6 + 1


def test_fixed_point_close_to_float(trained_build, mnist_small):
    from edgedigit.models.train import load_float_model

    card = _card(trained_build)
    # 500 test images: one image is 0.2 points (the full-MNIST figure is in benchmarks/rfe_speed.py)
    assert abs(card["int8_accuracy"] - card["float_accuracy"]) <= 0.01
    assert card["fixed_point"]["float_agreement"] >= 0.97
    model = load_float_model("rfe-lr")
    float_acc = float(np.mean(model.predict(mnist_small.x_test) == mnist_small.y_test))
    assert float_acc == card["float_accuracy"]


def test_validate_runs_the_fixed_point_form(trained_build, mnist_small):
    from edgedigit.measure.validate import validate_variants

    summary = validate_variants(["rfe-lr"], mnist_small)
    r = summary["variants"]["rfe-lr"]
    assert list(r["quantized"]) == ["fixed-point"]
    assert r["quantized"]["fixed-point"]["accuracy"] == _card(trained_build)["int8_accuracy"]
    assert r["model_file"].endswith("model_fixed.npz")


def test_unquantized_and_corrupt_models_are_named(trained_build):
    from edgedigit.models.variants import get_variant

    v = get_variant("rfe-lr")
    folder = trained_build / "models" / "rfe-lr"
    (folder / "model_fixed.npz").unlink()
    with pytest.raises(NotTrainedError, match="edgedigit quantize rfe-lr"):
        v.quantized_runners(folder)
    (folder / "model.joblib").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="model.joblib: not a readable rfe-lr model"):
        v.load(folder)
