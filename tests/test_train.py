"""The train stage and the variant registry: cards, the seed's architecture, pruning, seeds, atomic writes."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from edgedigit.core.errors import NotTrainedError, UnknownVariantError
from edgedigit.core.stage import Blocked, file_hash
from edgedigit.core.store import read_card
from edgedigit.models import variants as variants_mod
from edgedigit.models.train import count_macs, plan, train_variants
from edgedigit.models.variants import REGISTRY, SEED_NAMES, SEED_VARIANTS, TrainContext, TrainResult, Variant, get_variant
from edgedigit.models.variants.pruned import schedule_steps
from helpers import assert_same_stage

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


def test_registry_lists_exactly_the_seven_variants_in_order():
    assert list(REGISTRY) == ["mlp", "mlp-pruned", "rfe-lr", "mlp-qat", "cnn", "tiny", "cnn-wide"]
    assert [m.VARIANT for m in variants_mod._MODULES] == list(REGISTRY.values())
    assert SEED_NAMES == ("mlp", "mlp-pruned", "rfe-lr") and set(SEED_NAMES) <= set(REGISTRY)
    assert SEED_VARIANTS == SEED_NAMES + ("mlp-qat", "cnn", "tiny")  # cnn-wide is on demand


def test_an_on_demand_variant_is_trained_only_when_named(build_dir):
    """A bare `train` (and the pipeline, SEED_VARIANTS) leaves cnn-wide out; naming it plans it."""
    from edgedigit.models.train import plan
    from edgedigit.models.variants import resolve

    assert [v.name for v in REGISTRY.values() if v.on_demand] == ["cnn-wide"]
    assert [v.name for v in resolve(None)] == ["mlp", "mlp-pruned", "rfe-lr", "mlp-qat", "cnn", "tiny"]
    assert [v.name for v in plan(["cnn-wide"])] == ["cnn-wide"]
    assert [v.name for v in plan(None)] == [v.name for v in resolve(None)]


def test_the_registry_does_not_import_the_stages():
    code = ("import sys, edgedigit.models.variants, edgedigit.models.quantize; "
            "print(sorted(m for m in sys.modules if m.startswith('edgedigit.')))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    loaded = set(ast.literal_eval(out))
    assert "edgedigit.models.quantize" in loaded and "edgedigit.models.train" in loaded  # quantize -> train
    assert not {m for m in loaded if m.startswith(("edgedigit.runtimes", "edgedigit.codegen", "edgedigit.measure",
                                                   "edgedigit.targets", "edgedigit.report", "edgedigit.pipeline"))}
    code = "import sys, edgedigit.models.variants; print('edgedigit.models.train' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env=env).stdout.strip() == "False"


def _linear_fake(name, train, requires=()):
    """A fast linear variant (no TensorFlow) whose model is a dict, saved as JSON."""

    def save(model, folder):
        (folder / "fake.json").write_text(json.dumps(model))
        return {"float": "fake.json"}

    return Variant(name, "linear", "a fake", train=train, requires=requires, save=save,
                   load=lambda folder: json.loads((folder / "fake.json").read_text()),
                   predict_float=lambda model, images: np.tile(np.eye(10)[model["label"]], (len(images), 1)))


def test_train_hands_the_context_its_loader(build_dir, monkeypatch):
    from edgedigit.models.data import load_fallback
    from edgedigit.models.train import load_float_model

    seen = {}

    def train_base(ctx):
        return TrainResult({"label": 3}, params=1, macs=1)

    def train_child(ctx):
        seen["loader"] = ctx.load_model
        seen["base"] = ctx.load_model("fake-base")
        return TrainResult({"label": seen["base"]["label"]}, params=1, macs=1)

    monkeypatch.setitem(REGISTRY, "fake-base", _linear_fake("fake-base", train_base))
    monkeypatch.setitem(REGISTRY, "fake-child", _linear_fake("fake-child", train_child, requires=("fake-base",)))
    cards = train_variants(["fake-child"], load_fallback().subset(50, 20), seed=0)
    assert [c["variant"] for c in cards] == ["fake-base", "fake-child"]
    assert seen["loader"] is load_float_model and seen["base"] == {"label": 3}
    assert read_card("fake-child").files == {"float": "fake.json", "card": "card.json"}
    with pytest.raises(RuntimeError, match="without a loader"):
        TrainContext(dataset=None, seed=0).load_model("mlp")


def test_missing_float_models_use_the_one_wording(build_dir):
    from edgedigit.models.train import keras_load
    from edgedigit.models.variants import qat, rfe_lr

    for name, load in (("mlp", keras_load), ("mlp-qat", qat.load), ("rfe-lr", rfe_lr.load)):
        folder = build_dir / "models" / name
        folder.mkdir(parents=True)
        with pytest.raises(NotTrainedError, match=rf"^variant '{name}' is not trained \(.* missing\): "
                                                  rf"run `edgedigit train {name}` first$"):
            load(folder)


def test_stage_file_hash_blocks_on_a_missing_input(tmp_path):
    path = tmp_path / "in.bin"
    with pytest.raises(Blocked, match=f"^{path} missing$"):
        file_hash(path)
    path.write_bytes(b"abc")
    assert file_hash(path) == hashlib.sha256(b"abc").hexdigest()


def _write_trained(build, name, kind="neural", float_file="model.keras", data=b"weights"):
    folder = build / "models" / name
    folder.mkdir(parents=True)
    (folder / float_file).write_bytes(data)
    (folder / "card.json").write_text(json.dumps({"variant": name, "kind": kind, "files": {"float": float_file}}))
    return folder / float_file


def test_train_stage_declares_dataset_seed_epochs_and_dependencies(build_dir, monkeypatch):
    import edgedigit.models.train as train

    loads = []
    ds = types.SimpleNamespace(sha256="ab" * 32)

    def loader():
        loads.append(1)
        return ds

    st = train.stage("mlp-pruned", 7, 2, loader)
    assert st.name == "train mlp-pruned"
    with pytest.raises(Blocked, match=r"models/mlp/model\.keras missing"):
        st.inputs()
    assert not loads  # blocked before the data is loaded
    assert st.outputs() == [build_dir / "models" / "mlp-pruned" / "model.keras"]  # not trained: the kind's default
    base = _write_trained(build_dir, "mlp")
    assert st.inputs() == {"dataset": ds.sha256, "seed": 7, "epochs": 2,
                           "requires": {"mlp": [hashlib.sha256(b"weights").hexdigest()]}}
    _write_trained(build_dir, "mlp-pruned", float_file="pruned.h5")
    assert st.outputs() == [build_dir / "models" / "mlp-pruned" / "pruned.h5"]  # the card's files.float
    assert train.stage("rfe-lr", 0, None, loader).outputs() == [build_dir / "models" / "rfe-lr" / "model.joblib"]
    assert train.stage(get_variant("mlp"), 0, None, loader).outputs() == [base]
    calls = []
    monkeypatch.setattr(train, "train_variants", lambda *a, **k: calls.append((a, k)))
    st.run()
    assert calls == [((["mlp-pruned"], ds), {"seed": 7, "epochs": 2})]


def test_train_stage_declares_what_the_pipeline_declares(build_dir):
    import edgedigit.models.train as train
    from edgedigit import pipeline

    ds = types.SimpleNamespace(sha256="cd" * 32)
    cfg = pipeline.PipelineConfig(board="host", variants=["mlp-pruned", "rfe-lr"], seed=3, epochs=4)
    old = {s.name: s for s in pipeline.build_stages(cfg, lambda: ds)}

    def same(name, outputs=True):
        assert_same_stage(train.stage(name, 3, 4, lambda: ds), old[f"train {name}"], outputs)

    # Before training the pipeline guessed model.keras for rfe-lr too; the store names the kind's default
    # (model.joblib). Either is missing, so the stage runs either way.
    for name in ("mlp", "mlp-pruned", "rfe-lr"):
        same(name, outputs=name != "rfe-lr")
    _write_trained(build_dir, "mlp")
    _write_trained(build_dir, "rfe-lr", kind="linear", float_file="model.joblib")
    for name in ("mlp", "mlp-pruned", "rfe-lr"):
        same(name)


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
