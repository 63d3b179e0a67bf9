"""The quantize stage: the input LUT contract, full-int8 conversion checks, granularity, atomic updates."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types

import numpy as np
import pytest

from edgedigit.core.errors import EdgeDigitError, ModelError, NotTrainedError
from edgedigit.core.graph import load_graph
from edgedigit.core.int8 import input_lut, quantize_images
from edgedigit.core.stage import Blocked
from edgedigit.models.quantize import calibration_images, quantize_variants
from edgedigit.models.variants import REGISTRY, QuantizeContext, Variant
from helpers import assert_same_stage


def _reference_lut(scale, zp):
    out = []
    for p in range(256):
        v = p / 255 / scale
        r = int(v + 0.5) if v >= 0 else -int(-v + 0.5)
        out.append(max(-128, min(127, r + zp)))
    return out


@pytest.mark.parametrize("scale, zp", [(np.float32(1 / 255), -128), (0.003921568859368563, -128), (2 / 255, -128),
                                       (0.0123, -7), (1 / 255 / 4, 0), (0.5, 100)])
def test_input_lut_matches_the_contract(scale, zp):
    lut = input_lut(scale, zp)
    assert lut.dtype == np.int8 and lut.shape == (256,)
    assert lut.tolist() == _reference_lut(float(scale), zp)


def test_input_lut_rounds_half_away_from_zero_and_clips():
    lut = input_lut(2 / 255, -128)  # p / 2: halves at every odd pixel
    assert lut[1] == -127 and lut[3] == -126 and lut[255] == 0  # 0.5 -> 1, 1.5 -> 2, 127.5 -> 128
    assert input_lut(1 / 255 / 4, 0)[32] == 127 and input_lut(1 / 255 / 4, 0)[31] == 124
    assert input_lut(np.float32(1 / 255), -128).tolist() == list(range(-128, 128))
    with pytest.raises(ModelError, match="not a positive number"):
        input_lut(0.0, 0)


def test_quantize_images_uses_the_lut():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    q = quantize_images(imgs, 0.0123, -7)
    assert q.dtype == np.int8 and q.shape == imgs.shape
    np.testing.assert_array_equal(q, input_lut(0.0123, -7)[imgs])
    with pytest.raises(ModelError, match="must be uint8"):
        quantize_images(imgs.astype(np.float32), 0.0123, -7)


def test_calibration_draw_is_seeded():
    from edgedigit.models.data import load_fallback

    ds = load_fallback()
    a, b, c = (calibration_images(ds, 50, s) for s in (0, 0, 1))
    assert a.shape == (50, 28, 28) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(calibration_images(ds, 10**6, 0)) == len(ds.x_train)
    with pytest.raises(EdgeDigitError, match="--calibration-samples 0"):
        calibration_images(ds, 0, 0)


def test_not_trained_names_the_command(build_dir):
    from edgedigit.models.data import load_fallback

    with pytest.raises(NotTrainedError, match=r"variant 'mlp-pruned' is not trained .* `edgedigit train mlp-pruned`"):
        quantize_variants(["mlp-pruned"], load_fallback())
    with pytest.raises(EdgeDigitError, match="granularity 'per-row' unknown; choose from: per-tensor, per-channel"):
        quantize_variants(["mlp"], load_fallback(), granularity="per-row")


def test_nothing_trained_is_one_line(build_dir):
    from edgedigit.models.data import load_fallback

    with pytest.raises(NotTrainedError, match=r"^no trained variant in .*models: run `edgedigit train` first$"):
        quantize_variants(None, load_fallback())


def _fake_trained(build, name="mlp", kind="neural", float_file="model.keras"):
    folder = build / "models" / name
    folder.mkdir(parents=True)
    (folder / float_file).write_bytes(b"float model")
    (folder / "card.json").write_text(json.dumps({"variant": name, "kind": kind, "sparsity": 0.5,
                                                  "files": {"float": float_file, "card": "card.json"}}))
    return folder


def test_a_hook_extends_the_default_neural_quantization(build_dir, monkeypatch):
    import edgedigit.models.quantize as quantize
    from edgedigit.models.data import load_fallback

    folder = _fake_trained(build_dir)

    def fake_neural(q, variant):  # the real one converts with TensorFlow
        (q.out_dir / "model_int8.tflite").write_bytes(b"int8")
        return {"int8_accuracy": 0.5, "files": {"int8": "model_int8.tflite"}, "variant_seen": variant.name}

    def hook(q: QuantizeContext) -> dict:
        return {**q.default(), "extra": q.card["sparsity"]}

    monkeypatch.setattr(quantize, "quantize_neural", fake_neural)
    monkeypatch.setitem(REGISTRY, "mlp", dataclasses.replace(REGISTRY["mlp"], quantize=hook))
    (card,) = quantize_variants(["mlp"], load_fallback())
    assert card["int8_accuracy"] == 0.5 and card["extra"] == 0.5 and card["variant_seen"] == "mlp"
    assert card["files"] == {"float": "model.keras", "card": "card.json", "int8": "model_int8.tflite"}
    assert json.loads((folder / "card.json").read_text()) == card
    with pytest.raises(RuntimeError, match="without the neural quantization"):
        QuantizeContext("mlp", folder, folder, None, 0, 1, "per-tensor", {}).default()


def test_quantize_stage_declares_model_dataset_samples_seed(build_dir, monkeypatch):
    import edgedigit.models.quantize as quantize
    from edgedigit.models.variants import get_variant

    ds = types.SimpleNamespace(sha256="ef" * 32)
    st = quantize.stage("mlp", 5, 77, lambda: ds)
    assert st.name == "quantize mlp" and st.outputs() == [build_dir / "models" / "mlp" / "model_int8.tflite"]
    assert quantize.stage(get_variant("rfe-lr"), 0, 1, lambda: ds).outputs() == [
        build_dir / "models" / "rfe-lr" / "model_fixed.npz"]
    with pytest.raises(Blocked, match=r"models/mlp/model\.keras missing"):
        st.inputs()
    _fake_trained(build_dir, "mlp", float_file="other.keras")
    assert st.inputs() == {"model": [hashlib.sha256(b"float model").hexdigest()], "dataset": ds.sha256,
                           "calibration_samples": 77, "seed": 5}
    calls = []
    monkeypatch.setattr(quantize, "quantize_variants", lambda *a, **k: calls.append((a, k)))
    st.run()
    assert calls == [((["mlp"], ds), {"calibration_samples": 77, "seed": 5})]


def test_quantize_stage_declares_what_the_pipeline_declares(build_dir):
    import edgedigit.models.quantize as quantize
    from edgedigit import pipeline

    ds = types.SimpleNamespace(sha256="01" * 32)
    cfg = pipeline.PipelineConfig(board="host", variants=["mlp-pruned", "rfe-lr"], seed=2, calibration_samples=9)
    old = {s.name: s for s in pipeline.build_stages(cfg, lambda: ds)}

    def same(name):
        assert_same_stage(quantize.stage(name, 2, 9, lambda: ds), old[f"quantize {name}"])

    for name in ("mlp", "mlp-pruned"):  # untrained rfe-lr: the pipeline guessed model.keras, the store model.joblib
        same(name)
    _fake_trained(build_dir, "mlp")
    _fake_trained(build_dir, "mlp-pruned", float_file="pruned.h5")
    _fake_trained(build_dir, "rfe-lr", kind="linear", float_file="model.joblib")
    for name in ("mlp", "mlp-pruned", "rfe-lr"):
        same(name)


@pytest.mark.mnist
def test_int8_model_is_full_int8_batch1_without_shape_ops(trained_build, mnist_small):
    for name in ("mlp", "mlp-pruned"):
        folder = trained_build / "models" / name
        card = json.loads((folder / "card.json").read_text())
        g = load_graph(folder / "model_int8.tflite")
        assert g.is_full_int8() and g.input.shape == (1, 28, 28) and g.output.shape == (1, 10)
        assert not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(g.op_names())
        assert g.op_names() == ["RESHAPE", "FULLY_CONNECTED", "SOFTMAX"] == card["ops"]
        q = card["quantization"]
        assert q["granularity"] == g.granularity() == "per-tensor"
        assert (q["input_scale"], q["input_zero_point"]) == (float(g.input.scale[0]), int(g.input.zero_point[0]))
        assert (q["output_scale"], q["output_zero_point"]) == (float(g.output.scale[0]), int(g.output.zero_point[0]))
        assert q["calibration_samples"] == 100 and q["calibration_dataset"] == mnist_small.describe()
        assert card["size_bytes"] == g.size_bytes == (folder / "model_int8.tflite").stat().st_size
        assert card["files"]["int8"] == "model_int8.tflite" and card["int8_sha256"] == g.sha256
        assert card["per_class_of"] == "int8"
        assert card["int8_accuracy"] > 0.75 and abs(card["int8_accuracy"] - card["float_accuracy"]) <= 0.03
        assert 1000 < card["tflm_arena_bytes"] < 16384


@pytest.mark.mnist
def test_int8_accuracy_is_litert_on_the_lut_inputs(trained_build, mnist_small):
    from edgedigit.runtimes import run_litert

    card = json.loads((trained_build / "models" / "mlp" / "card.json").read_text())
    q = card["quantization"]
    x = input_lut(q["input_scale"], q["input_zero_point"])[mnist_small.x_test]
    out = run_litert(trained_build / "models" / "mlp" / "model_int8.tflite", x)
    assert out.dtype == np.int8 and out.shape == (500, 10)
    assert card["int8_accuracy"] == float(np.mean(np.argmax(out, axis=1) == mnist_small.y_test))


@pytest.mark.mnist
def test_per_channel_and_comparison_formats(trained_build, mnist_small):
    card = quantize_variants(["mlp-pruned"], mnist_small, calibration_samples=50, granularity="per-channel",
                             formats=("int8", "dynamic", "float16"))[0]
    folder = trained_build / "models" / "mlp-pruned"
    g = load_graph(folder / "model_int8.tflite")
    assert card["quantization"]["granularity"] == g.granularity() == "per-channel"
    weights = [g.tensors[op.inputs[1]] for op in g.ops if op.opcode == "FULLY_CONNECTED"]
    assert [w.scale.size for w in weights] == [128, 10]
    assert card["quantization"]["calibration_samples"] == 50
    for fmt, dtype in (("dynamic", "float32"), ("float16", "float32")):
        c = card["comparisons"][fmt]
        assert (folder / c["file"]).stat().st_size == c["size_bytes"] and c["accuracy"] > 0.75
        assert load_graph(folder / c["file"]).input.dtype == dtype
    assert card["comparisons"]["float16"]["size_bytes"] > card["size_bytes"]
    assert json.loads((folder / "card.json").read_text()) == json.loads(json.dumps(card))
    assert (folder / "model.keras").is_file() and card["sparsity"]  # train-time contents kept


@pytest.mark.mnist
def test_failed_quantization_leaves_the_folder_intact(trained_build, mnist_small, monkeypatch):
    folder = trained_build / "models" / "mlp"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def bad_check(path):
        raise ModelError(f"{path}: injected failure")

    monkeypatch.setattr("edgedigit.models.quantize.check_int8", bad_check)
    with pytest.raises(ModelError, match="injected"):
        quantize_variants(["mlp"], mnist_small, calibration_samples=20, granularity="per-channel")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.mnist
def test_linear_variants_quantize_through_their_hook(trained_build, mnist_small, monkeypatch):
    seen = {}

    def hook(q: QuantizeContext) -> dict:
        seen["ctx"] = q
        (q.out_dir / "model_fixed.npz").write_bytes(b"fixed")
        return {"int8_accuracy": 0.5, "size_bytes": 5, "files": {"fixed": "model_fixed.npz"}}

    fake = dataclasses.replace(REGISTRY["mlp"], kind="linear", quantize=hook)
    assert isinstance(fake, Variant)
    monkeypatch.setitem(REGISTRY, "mlp", fake)
    card = quantize_variants(["mlp"], mnist_small, calibration_samples=7, seed=5)[0]
    q = seen["ctx"]
    assert (q.variant, q.calibration_samples, q.seed, q.granularity) == ("mlp", 7, 5, "per-tensor")
    folder = trained_build / "models" / "mlp"
    assert (folder / "model_fixed.npz").read_bytes() == b"fixed"
    assert card["int8_accuracy"] == 0.5 and card["files"]["fixed"] == "model_fixed.npz"
    assert card["files"]["int8"] == "model_int8.tflite"  # earlier entries kept
