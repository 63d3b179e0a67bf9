"""The issue-6 neural variants: mlp-qat, cnn, tiny (architectures, conversion, distillation, through the stages)."""

from __future__ import annotations

import json

import numpy as np
import pytest

ALLOWED_OPS = {"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE",
               "SOFTMAX"}  # what the native backend and every board's TFLM build provide
CNN_BUDGET = 64 * 1024
TINY_BUDGET = 16 * 1024


def _convert(model, tmp_path, name):
    from edgedigit.models.quantize import check_int8, convert_int8

    cal = np.random.default_rng(0).random((20, 28, 28), dtype=np.float32)
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(convert_int8(model, cal, "per-tensor"))
    return check_int8(path)


@pytest.mark.parametrize(("builder", "budget"), [("build_cnn", CNN_BUDGET), ("build_tiny", TINY_BUDGET)])
def test_architectures_convert_to_allowed_ops_within_budget(builder, budget, tmp_path):
    from edgedigit.models import zoo

    g = _convert(getattr(zoo, builder)(), tmp_path, builder)
    assert g.is_full_int8() and tuple(g.input.shape) == (1, 28, 28)
    assert set(g.op_names()) <= ALLOWED_OPS
    assert [op.opcode for op in g.ops] == ["RESHAPE", *["CONV_2D", "MAX_POOL_2D"] * 3, "RESHAPE", "FULLY_CONNECTED",
                                           "SOFTMAX"]  # batch norm folded: no MUL/ADD
    assert g.size_bytes <= budget
    fc = [op for op in g.ops if op.opcode == "FULLY_CONNECTED"]
    assert all(not g.tensors[op.inputs[1]].per_channel for op in fc)  # Dense per tensor


def test_width_knob_scales_the_model():
    from edgedigit.models import zoo

    small, big = zoo.build_tiny(6), zoo.build_tiny(16)
    assert small.count_params() < zoo.build_tiny().count_params() < big.count_params()
    assert [big.get_layer(f"conv{i}").filters for i in (1, 2, 3)] == [16, 32, 64]
    assert zoo.build_cnn().count_params() == 29_354 and zoo.build_tiny().count_params() == 8_922


def test_distiller_loss_is_the_tutorial_formula():
    import tf_keras as keras

    from edgedigit.models import zoo

    rng = np.random.default_rng(0)
    x = rng.random((8, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 8)
    student, teacher = zoo.build_tiny(4), zoo.build_tiny(6)
    s_logits = zoo.logits_model(student)(x, training=True).numpy()  # BN in training mode, like train_step
    t_logits = zoo.logits_model(teacher)(x, training=False).numpy()
    T, alpha = 3.0, 0.25
    d = zoo.Distiller(zoo.logits_model(student), zoo.logits_model(teacher), T, alpha)
    d.compile(optimizer=keras.optimizers.SGD(0.0), metrics=["accuracy"])
    got = float(d.train_on_batch(x, y, return_dict=True)["loss"])

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    ce = -np.mean(np.log(softmax(s_logits)[np.arange(8), y]))
    p, q = softmax(t_logits / T), softmax(s_logits / T)
    kl = np.mean(np.sum(p * np.log(p / q), axis=1))
    assert got == pytest.approx(alpha * ce + (1 - alpha) * T * T * kl, rel=1e-4)
    assert not d.teacher.trainable


def test_cnn_wide_is_the_cnn_at_twice_the_width_run_through_all_its_epochs(mnist, build_dir):
    """cnn-wide: the cnn's architecture at width 32 (104,778 parameters, as its docstring says); its early
    stopping's patience is its epochs, so the cosine schedule is never cut off."""
    from edgedigit.core.store import read_card
    from edgedigit.models import zoo
    from edgedigit.models.train import train_variants

    assert zoo.build_cnn(32).count_params() == 104_778
    train_variants(["cnn-wide"], mnist.subset(600, 100), seed=0, epochs=4, knobs={"width": 4})
    card = read_card("cnn-wide")
    assert card.params == zoo.build_cnn(4).count_params() and card["width"] == 4
    training = card["training"]
    assert training["epochs_run"] == 4 and training["early_stopping"] == "val_accuracy, patience 4, best weights restored"


@pytest.fixture(scope="module")
def conv_build(mnist, tmp_path_factory):
    """cnn (width 8, 2 epochs) and tiny (width 6, 1 epoch) trained on 1,500 real-MNIST images, quantized."""
    import os

    from edgedigit.models.quantize import quantize_variants
    from edgedigit.models.train import train_variants

    small = mnist.subset(1500, 300)
    root = tmp_path_factory.mktemp("conv") / "build"
    old = os.environ.get("EDGEDIGIT_BUILD")
    os.environ["EDGEDIGIT_BUILD"] = str(root)
    try:
        train_variants(["cnn"], small, seed=0, epochs=2, knobs={"width": 8})
        train_variants(["tiny"], small, seed=0, epochs=1, knobs={"width": 6, "augment": False})
        cards = {c["variant"]: c for c in quantize_variants(["cnn", "tiny"], small, calibration_samples=50, seed=0)}
    finally:
        if old is None:
            os.environ.pop("EDGEDIGIT_BUILD", None)
        else:
            os.environ["EDGEDIGIT_BUILD"] = old
    return root, cards


@pytest.mark.mnist
@pytest.mark.slow
def test_cnn_and_tiny_through_the_stages(conv_build):
    from edgedigit.core.graph import load_graph

    root, cards = conv_build
    cnn, tiny = cards["cnn"], cards["tiny"]
    for c in (cnn, tiny):
        assert set(c["ops"]) <= ALLOWED_OPS
        assert c["quantization"]["granularity"] in ("per-tensor", "mixed", "per-channel")
        g = load_graph(root / "models" / c["variant"] / "model_int8.tflite")
        assert g.is_full_int8() and g.size_bytes == c["size_bytes"]
        assert c["int8_accuracy"] > 0.25, c["variant"]  # 1-2 epochs on 1,500 images: well above chance (0.1)
        assert c["training"]["fit_images"] + c["training"]["validation_images"] == 1500
    assert cnn["size_bytes"] <= CNN_BUDGET and tiny["size_bytes"] <= TINY_BUDGET
    assert cnn["width"] == 8 and cnn["knobs"] == {"width": 8} and cnn["training"]["augment"] is True
    assert tiny["width"] == 6 and tiny["training"]["augment"] is False
    assert tiny["teacher"]["variant"] == "cnn" and tiny["teacher"]["params"] == cnn["params"]
    assert tiny["requires"] == ["cnn"]
    assert tiny["training"]["temperature"] == 4.0
    saved = json.loads((root / "models" / "tiny" / "card.json").read_text())
    assert saved["int8_accuracy"] == tiny["int8_accuracy"]


@pytest.mark.mnist
@pytest.mark.slow
def test_cli_knobs_reach_tiny_which_refuses_a_teacher_without_logits(trained_build, mnist):
    from typer.testing import CliRunner

    from edgedigit.cli import app

    cnn = trained_build / "models" / "cnn"  # a card, so that `train tiny` does not train its default teacher first
    cnn.mkdir()
    (cnn / "card.json").write_text(json.dumps({"variant": "cnn", "kind": "neural"}))
    res = CliRunner().invoke(app, ["train", "tiny", "--epochs", "1", "--width", "6", "--no-augment",
                                   "--teacher", "mlp", "--data", mnist.source])
    assert res.exit_code == 1, res.output
    assert res.stderr.strip() == "error: teacher 'mlp' has no 'logits' layer to distill from; use --set teacher=cnn"
    assert not (trained_build / "models" / "tiny").exists()


@pytest.mark.mnist
@pytest.mark.slow
def test_mlp_qat_converts_to_full_int8_and_compares_with_its_twin(trained_build, mnist_small):
    from edgedigit.core.graph import load_graph
    from edgedigit.models.quantize import quantize_variants
    from edgedigit.models.train import train_variants

    train_variants(["mlp-qat"], mnist_small, seed=0, epochs=1)
    (card,) = quantize_variants(["mlp-qat"], mnist_small, calibration_samples=100, seed=0)
    folder = trained_build / "models" / "mlp-qat"
    assert card["files"]["float"] == "model_qat.h5"
    g = load_graph(folder / "model_int8.tflite")
    assert g.is_full_int8() and tuple(g.input.shape) == (1, 28, 28)
    assert set(g.op_names()) <= ALLOWED_OPS
    assert g.granularity() == "per-tensor"
    twin = json.loads((trained_build / "models" / "mlp" / "card.json").read_text())
    assert card["ptq_twin"]["variant"] == "mlp"
    assert card["ptq_twin"]["int8_accuracy"] == twin["int8_accuracy"]
    assert card["ptq_twin"]["delta_points"] == pytest.approx(100 * (card["int8_accuracy"] - twin["int8_accuracy"]))
    assert card["params"] == twin["params"]
    assert card["int8_accuracy"] >= twin["int8_accuracy"] - 0.02
