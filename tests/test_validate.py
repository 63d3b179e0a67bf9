"""The validate stage and the host runtimes: metrics, runtime agreement, result files."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from edgedigit.core.errors import ModelError, NotTrainedError
from edgedigit.core.graph import load_graph
from edgedigit.measure.validate import agreement, check_quantized, scores_summary, validate_variants
from edgedigit.runtimes import run_litert, run_tflm, tflm_arena_bytes, validated_for


def test_agreement_counts_exactly():
    ref = np.array([[10, 0, -5], [1, 2, 3], [0, 0, 0]], np.int8)
    other = np.array([[10, 1, -5], [1, 2, 5], [0, 0, 0]], np.int8)
    a = agreement(ref, other)
    assert a == {"images": 3, "elements": 9, "elements_differ": 2, "max_abs_diff": 2,
                 "images_with_any_difference": 2, "predictions_differ": 0, "prediction_agreement": 1.0}
    other[1] = [9, 2, 3]  # prediction 2 -> 0
    a = agreement(ref, other)
    assert a["predictions_differ"] == 1 and a["max_abs_diff"] == 8 and a["prediction_agreement"] == pytest.approx(2 / 3)
    wide = agreement(np.array([[-128]], np.int8), np.array([[127]], np.int8))
    assert wide["max_abs_diff"] == 255  # no int8 overflow


def test_scores_summary():
    y = np.array([0, 1, 1, 2])
    pred = np.array([0, 1, 2, 2])
    s = scores_summary(y, pred)
    assert s["accuracy"] == 0.75 and s["correct"] == 3
    assert s["confusion"][1][:3] == [0, 1, 1] and sum(map(sum, s["confusion"])) == 4
    assert s["per_class"]["recall"][:3] == [1.0, 0.5, 1.0] and s["per_class"]["precision"][:3] == [1.0, 1.0, 0.5]


def test_runtimes_on_factory_models(tflite_models):
    from edgedigit.core.graph import load_graph
    from edgedigit.core.int8 import quantize_images
    from tflite_factory import random_images

    assert validated_for("neural")[:2] == ["litert-ref", "tflm"]
    for name in ("mlp_pertensor", "cnn"):
        path = tflite_models[name]
        g = load_graph(path)
        x = quantize_images(random_images(40), float(g.input.scale[0]), int(g.input.zero_point[0]))
        a, b = run_litert(path, x), run_tflm(path, x)
        assert a.dtype == b.dtype == np.int8 and a.shape == b.shape == (40, 10)
        assert int(np.max(np.abs(a.astype(int) - b.astype(int)))) <= 1  # single vs double rounding
        assert len(np.unique(a)) > 1  # not a constant output
    small, big = tflm_arena_bytes(tflite_models["mlp_pertensor"]), tflm_arena_bytes(tflite_models["cnn"])
    assert 1000 < small < big < 64 * 1024
    with pytest.raises(ModelError, match=r"takes int8 input, got float32"):
        run_litert(tflite_models["mlp"], np.zeros((1, 28, 28), np.float32))
    with pytest.raises(ModelError, match=r"input shape is \(1, 28, 28\); got a batch of shape \(2, 28\)"):
        run_tflm(tflite_models["mlp"], np.zeros((2, 28), np.int8))


def test_runtimes_refuse_missing_and_corrupt_models(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="no such model file"):
        run_litert(tmp_path / "none.tflite", np.zeros((1, 28, 28), np.int8))
    with pytest.raises(ModelError, match=str(bad)):
        run_litert(bad, np.zeros((1, 28, 28), np.int8))


def test_not_quantized_names_the_command(build_dir):
    from edgedigit.core.fsutil import write_json
    from edgedigit.models.variants import get_variant

    write_json(build_dir / "models" / "mlp" / "card.json", {"variant": "mlp", "kind": "neural"})
    with pytest.raises(NotTrainedError, match=r"variant 'mlp' is not quantized .* `edgedigit quantize mlp`"):
        check_quantized(get_variant("mlp"))


@pytest.mark.mnist
def test_validate_trained_build(trained_build, mnist_small):
    summary = validate_variants(None, mnist_small)
    assert summary["label"] == "mnist test (500)" and summary["dataset"] == mnist_small.describe()
    assert {"mlp", "mlp-pruned"} <= set(summary["variants"])
    for name in ("mlp", "mlp-pruned"):
        r = summary["variants"][name]
        card = json.loads((trained_build / "models" / name / "card.json").read_text())
        assert r["float"]["accuracy"] == card["float_accuracy"]  # same data, same model
        assert r["quantized"]["litert-ref"]["accuracy"] == card["int8_accuracy"]
        assert r["reference"] == "litert-ref" and set(r["quantized"]) >= {"litert-ref", "tflm"}
        a = r["agreement"]["tflm"]
        assert a["vs"] == "litert-ref" and a["images"] == 500 and a["elements"] == 5000
        # LiteRT rounds once, TFLM twice: a logit one step apart moves a softmax output by a few steps.
        assert a["elements_differ"] < 0.01 * a["elements"] and a["max_abs_diff"] <= 16
        assert a["prediction_agreement"] >= 0.99
        for form in [r["float"], *r["quantized"].values()]:
            conf = np.array(form["confusion"])
            assert conf.sum() == 500 and np.trace(conf) == form["correct"]
            assert conf.sum(axis=1).tolist() == np.bincount(mnist_small.y_test, minlength=10).tolist()
        runtimes = list(r["quantized"])
        assert set(r["pairwise"]) == {f"{a} vs {b}" for i, a in enumerate(runtimes[1:], 1) for b in runtimes[i + 1:]}
        fvq = r["float_vs_quantized"]["litert-ref"]
        assert fvq["accuracy_delta_points"] == pytest.approx(
            100 * (r["quantized"]["litert-ref"]["accuracy"] - r["float"]["accuracy"]), abs=1e-3)
        int8 = trained_build / "models" / name / "model_int8.tflite"
        if "native" in r["quantized"]:  # the mlp's two FULLY_CONNECTED layers: where the host's TFLM could differ
            wheel = r["wheel_arithmetic"]
            g = load_graph(int8)
            per_tensor = [n for n, op in enumerate(g.ops)
                          if op.opcode == "FULLY_CONNECTED" and not g.tensors[op.inputs[1]].per_channel]
            assert wheel is None if not per_tensor else wheel["per_tensor_fc_ops"] == per_tensor
            if wheel:
                assert wheel["device_vs_wheel"]["elements_differ"] == r["pairwise"]["tflm vs native"]["elements_differ"]
                assert wheel["native_with_wheel_arithmetic_vs_wheel"]["elements_differ"] == 0
        assert r["model_sha256"] == hashlib.sha256(int8.read_bytes()).hexdigest()
    res = trained_build / "results"
    assert json.loads((res / "validate.json").read_text())["variants"].keys() == summary["variants"].keys()
    lines = (res / "validate.jsonl").read_text().splitlines()
    assert [json.loads(x)["variant"] for x in lines] == list(summary["variants"])
    assert json.loads((res / "validate_mlp.json").read_text())["machine"]["cores_logical"] >= 1


@pytest.mark.mnist
def test_validate_limit_and_errors(trained_build, mnist_small):
    summary = validate_variants(["mlp"], mnist_small, limit=37)
    r = summary["variants"]["mlp"]
    assert list(summary["variants"]) == ["mlp"] and r["agreement"]["tflm"]["images"] == 37
    assert summary["label"] == "mnist test (37)"
    # issue 15: a re-run of the same model on the same data replaces its record, another test size is another one
    jsonl = trained_build / "results" / "validate.jsonl"
    validate_variants(["mlp"], mnist_small, limit=37)
    assert [json.loads(x)["dataset"]["test"] for x in jsonl.read_text().splitlines()] == [37]
    validate_variants(["mlp"], mnist_small, limit=20)
    validate_variants(["mlp"], mnist_small, limit=37)
    assert [json.loads(x)["dataset"]["test"] for x in jsonl.read_text().splitlines()] == [20, 37]
    jsonl.write_text(jsonl.read_text().splitlines()[1] + "\n")  # back to the one record the check below expects
    (trained_build / "models" / "mlp-pruned" / "model_int8.tflite").unlink()
    with pytest.raises(NotTrainedError, match="`edgedigit quantize mlp-pruned`"):
        validate_variants(["mlp", "mlp-pruned"], mnist_small)
    assert len((trained_build / "results" / "validate.jsonl").read_text().splitlines()) == 1  # nothing run
