"""The train stage and the variant registry: cards, the seed's architecture, pruning, seeds, atomic writes."""

from __future__ import annotations

import dataclasses
import json
import types

import numpy as np
import pytest

from edgedigit.core.errors import NotTrainedError, UnknownVariantError
from edgedigit.core.store import read_card
from edgedigit.models import variants as variants_mod
from edgedigit.models.train import count_macs, plan, train_variants
from edgedigit.models.variants import REGISTRY, SEED_VARIANTS, Variant, get_variant
from edgedigit.models.variants.pruned import schedule_steps

CARD_KEYS = {"variant", "kind", "dataset", "seed", "versions", "params", "macs", "float_accuracy", "int8_accuracy",
             "per_class", "size_bytes", "quantization", "files", "train_seconds"}


def test_registry_has_the_seed_variants_in_order():
    assert SEED_VARIANTS[:2] == ("mlp", "mlp-pruned")
    assert get_variant("mlp").kind == "neural" and get_variant("mlp-pruned").requires == ("mlp",)
    for v in REGISTRY.values():
        assert isinstance(v, Variant) and v.kind in ("neural", "linear") and v.summary


def test_unknown_variant_names_the_choices():
    with pytest.raises(UnknownVariantError) as e:
        get_variant("mlp2")
    assert str(e.value) == f"unknown variant 'mlp2'; choose from: {', '.join(REGISTRY)}"


def test_registry_tolerates_only_the_missing_optional_modules(monkeypatch):
    real = variants_mod.importlib.import_module

    def fake(name):
        if name.endswith(".qat"):
            err = ModuleNotFoundError("No module named 'some_dependency'")
            err.name = "some_dependency"  # a missing dependency inside an existing module: a real bug
            raise err
        return real(name)

    monkeypatch.setattr(variants_mod.importlib, "import_module", fake)
    with pytest.raises(ModuleNotFoundError, match="some_dependency"):
        variants_mod._load_registry()

    def fake_cnn(name):
        if name.endswith(".cnn"):
            return types.SimpleNamespace(VARIANT=Variant("cnn", "neural", "test", train=lambda ctx: None))
        if name.split(".")[-1] in variants_mod._OPTIONAL_MODULES:
            err = ModuleNotFoundError(f"No module named '{name}'")
            err.name = name
            raise err
        return real(name)

    monkeypatch.setattr(variants_mod.importlib, "import_module", fake_cnn)
    assert list(variants_mod._load_registry()) == ["mlp", "mlp-pruned", "cnn"]


def test_plan_trains_missing_dependencies_first(build_dir):
    assert [v.name for v in plan(["mlp-pruned"])] == ["mlp", "mlp-pruned"]
    assert [v.name for v in plan(["mlp-pruned", "mlp"])] == ["mlp", "mlp-pruned"]
    assert [v.name for v in plan(["mlp", "mlp", "mlp"])] == ["mlp"]
    card = build_dir / "models" / "mlp" / "card.json"
    card.parent.mkdir(parents=True)
    card.write_text("{}")
    assert [v.name for v in plan(["mlp-pruned"])] == ["mlp-pruned"]  # mlp already trained: kept
    with pytest.raises(UnknownVariantError):
        plan(["mlp", "nope"])


def test_not_trained_names_the_command(build_dir):
    with pytest.raises(NotTrainedError) as e:
        read_card("mlp")
    assert "variant 'mlp' is not trained" in str(e.value) and "run `edgedigit train mlp` first" in str(e.value)


def test_pruning_schedule_reaches_its_end_within_fine_tuning():
    assert schedule_steps(60000, 2) == (1000, 100)  # full MNIST: 1,500 steps per epoch
    for n, epochs in ((3000, 1), (3000, 2), (1000, 1), (64, 1)):
        end, freq = schedule_steps(n, epochs)
        steps = int(np.ceil(n * 0.8 / 32)) * epochs
        assert 0 <= end < steps and end % freq == 0


def test_count_macs_dense_conv_depthwise():
    import tf_keras as keras
    from tf_keras import layers as L

    m = keras.Sequential([L.Reshape((28, 28, 1), input_shape=(28, 28)),
                          L.Conv2D(4, 3, strides=2, padding="same"),          # 14x14x4, 3*3*1*4
                          L.DepthwiseConv2D(3, depth_multiplier=2),           # 12x12x8, 3*3*4*2
                          L.Flatten(), L.Dense(10)])
    assert count_macs(m) == 14 * 14 * 36 + 12 * 12 * 72 + 12 * 12 * 8 * 10


@pytest.mark.mnist
def test_cards_of_trained_build(trained_build, mnist_small):
    for name in ("mlp", "mlp-pruned"):
        card = json.loads((trained_build / "models" / name / "card.json").read_text())
        assert CARD_KEYS <= set(card)
        assert card["variant"] == name and card["kind"] == "neural" and card["seed"] == 0
        assert card["dataset"] == mnist_small.describe()
        assert card["versions"]["tensorflow"].startswith("2.21") and card["versions"]["edgedigit"]
        assert card["params"] == 784 * 128 + 128 + 128 * 10 + 10
        assert card["macs"] == 784 * 128 + 128 * 10
        assert card["float_accuracy"] > 0.75  # 1 epoch on 3,000 images
        assert all(len(card["per_class"][k]) == 10 for k in ("precision", "recall", "f1"))
        assert card["files"]["float"] == "model.keras" and card["train_seconds"] > 0
        assert (trained_build / "models" / name / "model.keras").is_file()
    assert read_card("mlp-pruned")["sparsity"].keys() == {"hidden", "output"}


@pytest.mark.mnist
def test_mlp_is_the_seed_architecture(trained_build):
    import tf_keras as keras

    from edgedigit.models.train import load_float_model

    m = load_float_model("mlp")
    kinds = [type(layer).__name__ for layer in m.layers]
    assert kinds == ["Flatten", "Dense", "Dropout", "Dense"]
    assert m.layers[1].units == 128 and m.layers[1].activation is keras.activations.relu
    assert m.layers[2].rate == 0.2
    assert m.layers[3].units == 10 and m.layers[3].activation is keras.activations.softmax


@pytest.mark.mnist
def test_pruned_kernels_are_half_zeros_measured_and_recorded(trained_build):
    from edgedigit.models.train import load_float_model

    card = read_card("mlp-pruned")
    model = load_float_model("mlp-pruned")
    for layer in (model.get_layer("hidden"), model.get_layer("output")):
        zeros = float(np.mean(layer.kernel.numpy() == 0))
        assert zeros == pytest.approx(0.5, abs=0.01)
        assert card["sparsity"][layer.name] == pytest.approx(zeros, abs=1e-9)
    assert card["pruning_schedule"]["final_sparsity"] == 0.5
    assert card["nonzero_params"] == sum(int(np.count_nonzero(w)) for w in model.get_weights())
    base = load_float_model("mlp")
    assert np.mean(base.get_layer("hidden").kernel.numpy() == 0) < 0.01  # pruning did not touch mlp


@pytest.mark.mnist
def test_same_seed_same_weights(build_dir, mnist):
    from edgedigit.models.train import load_float_model

    tiny = mnist.subset(300, 50)
    a = train_variants(["mlp"], tiny, seed=3, epochs=1)[0]

    k1 = load_float_model("mlp").get_weights()
    b = train_variants(["mlp"], tiny, seed=3, epochs=1)[0]
    k2 = load_float_model("mlp").get_weights()
    assert a["float_accuracy"] == b["float_accuracy"]
    assert all(np.array_equal(x, y) for x, y in zip(k1, k2, strict=True))
    from edgedigit.models.train import seed_everything
    from edgedigit.models.variants.mlp import build

    seed_everything(3)
    init3 = build().get_weights()[0]
    seed_everything(4)
    assert not np.array_equal(init3, build().get_weights()[0])  # the seed reaches the initializers
    seed_everything(3)
    np.testing.assert_array_equal(init3, build().get_weights()[0])


@pytest.mark.mnist
def test_failed_training_leaves_the_old_model_intact(trained_build, mnist_small, monkeypatch):
    folder = trained_build / "models" / "mlp"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def boom(model, dest):
        (dest / "model.keras").write_bytes(b"half")
        raise RuntimeError("disk full (injected)")

    monkeypatch.setitem(REGISTRY, "mlp", dataclasses.replace(REGISTRY["mlp"], save=boom))
    with pytest.raises(RuntimeError, match="injected"):
        train_variants(["mlp"], mnist_small.subset(300, 50), seed=0, epochs=1)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in folder.parent.iterdir()) == sorted(
        ["mlp", "mlp-pruned"] + (["rfe-lr"] if "rfe-lr" in REGISTRY else []))
