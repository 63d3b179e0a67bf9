"""The host-runtime registry: names, kinds and forms, and every runtime's ``raw`` and ``predict`` on small models."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgedigit.core.errors import EdgeDigitError, ModelError, NotTrainedError
from edgedigit.core.fsutil import write_json
from edgedigit.core.store import ModelFolder
from edgedigit.runtimes import (
    FORMS,
    REFERENCE,
    RUNTIMES,
    deployed_order,
    describe,
    float_runtime,
    get_runtime,
    run_int8,
    run_litert,
    run_native,
    run_tflm,
    runtimes_for,
    validated_for,
)
from tflite_factory import random_images

TINY = Path(__file__).resolve().parent / "golden" / "tiny.tflite"
INT8 = ("litert-ref", "litert", "tflm", "native")


def _neural(build_dir: Path, name: str, tflite: Path | None = TINY) -> ModelFolder:
    folder = ModelFolder(name)
    write_json(folder.card_path, {"variant": name, "kind": "neural", "files": {"float": "model.keras"}})
    if tflite is not None:
        shutil.copy(tflite, folder.int8_path)
    return folder


def test_names_kinds_and_forms():
    assert list(RUNTIMES) == ["keras", "litert-ref", "litert", "tflm", "native", "sklearn", "fixed-point"]
    assert REFERENCE == "litert-ref"
    assert runtimes_for("neural") == ["keras", "litert-ref", "litert", "tflm", "native"]
    assert runtimes_for("linear") == ["sklearn", "fixed-point"]
    assert {n: RUNTIMES[n].form for n in RUNTIMES} == {
        "keras": "float", "litert-ref": "int8", "litert": "int8", "tflm": "int8", "native": "int8",
        "sklearn": "float", "fixed-point": "fixed"}
    for name, rt in RUNTIMES.items():
        assert rt.name == name and rt.form in FORMS and rt.description and "\n" not in rt.description
        assert (rt.run is not None) == (rt.form == "int8")
    assert (float_runtime("neural"), float_runtime("linear")) == ("keras", "sklearn")
    assert validated_for("neural") == ["litert-ref", "tflm", "native"]  # reference first
    assert validated_for("linear") == ["fixed-point"]
    assert set(deployed_order()) == {"tflm", "native", "litert", "fixed-point"}
    assert deployed_order()[:2] == ("tflm", "native")
    assert describe(["tflm"]) == f"tflm: {RUNTIMES['tflm'].description}"
    with pytest.raises(EdgeDigitError, match=r"unknown runtime 'tflm-int8'; valid: keras, litert-ref, litert, tflm"):
        get_runtime("tflm-int8")
    with pytest.raises(ModelError, match=r"unknown model kind 'tree'"):
        runtimes_for("tree")
    with pytest.raises(EdgeDigitError, match=r"runtime keras does not run an int8 batch; int8 runtimes: litert-ref"):
        run_int8("keras", TINY, np.zeros((1, 28, 28), np.int8))


def test_importing_the_registry_loads_no_engine():
    code = ("import sys, edgedigit.runtimes; "
            "print(sorted(m for m in ('numpy', 'tensorflow', 'ai_edge_litert', 'edgedigit.runtimes.native_host') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_int8_runtimes_raw_and_predict_agree(build_dir):
    from edgedigit.core.graph import load_graph
    from edgedigit.core.int8 import quantize_for

    folder = _neural(build_dir, "tiny")
    images = random_images(30, seed=7)
    x = quantize_for(load_graph(TINY), images)
    raw = {}
    for name in INT8:
        runner = RUNTIMES[name].load(folder)
        assert runner.name == name and runner.model_file == folder.int8_path and runner.notes
        raw[name] = runner.raw(images)
        assert raw[name].dtype == np.int8 and raw[name].shape == (30, 10)
        np.testing.assert_array_equal(runner.predict(images), np.argmax(raw[name], axis=1))
        np.testing.assert_array_equal(runner.predict(images[3:4]), np.argmax(raw[name][3:4], axis=1))  # one image
        np.testing.assert_array_equal(raw[name], run_int8(name, TINY, x))  # the same as by path, on quantize_for
    np.testing.assert_array_equal(raw["native"], raw["tflm"])  # the generated C is TFLM, bit for bit
    np.testing.assert_array_equal(raw["litert-ref"], run_litert(TINY, x))
    np.testing.assert_array_equal(raw["tflm"], run_tflm(TINY, x))
    np.testing.assert_array_equal(raw["native"], run_native(TINY, x))
    for name in ("litert", "tflm"):  # LiteRT rounds once, TFLM twice: at most one step apart
        assert int(np.abs(raw[name].astype(int) - raw["litert-ref"].astype(int)).max()) <= 1
    assert [RUNTIMES[n].load(folder).batch_native for n in INT8] == [False, False, False, True]
    with pytest.raises(ModelError, match="images must be uint8"):
        RUNTIMES["tflm"].load(folder).raw(images.astype(np.float32))


def test_int8_runtimes_refuse_missing_broken_and_foreign_models(build_dir):
    folder = _neural(build_dir, "mlp", tflite=None)
    for name in INT8:
        with pytest.raises(NotTrainedError, match=r"variant 'mlp' is not quantized .* `edgedigit quantize mlp`"):
            RUNTIMES[name].load(folder)
    with pytest.raises(NotTrainedError, match=r"variant 'nope' is not trained"):
        RUNTIMES["tflm"].load(ModelFolder("nope"))
    folder.int8_path.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match=str(folder.int8_path)):
        RUNTIMES["litert"].load(folder)
    write_json(ModelFolder("rfe-lr").card_path, {"variant": "rfe-lr", "kind": "linear"})
    with pytest.raises(ModelError, match=r"variant 'rfe-lr' is a linear model and runtime tflm runs neural models; "
                                         r"its runtimes: sklearn, fixed-point"):
        RUNTIMES["tflm"].load(ModelFolder("rfe-lr"))


def test_keras_runtime_raw_and_predict_agree(build_dir):
    import tf_keras as keras

    from edgedigit.runtimes import keras as keras_runtime

    folder = _neural(build_dir, "flat", tflite=None)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Flatten(input_shape=(28, 28)), keras.layers.Dense(10)])
    model.save(folder.path / keras_runtime.KERAS_FILE)
    images = random_images(20, seed=2)
    runner = RUNTIMES["keras"].load(folder)
    scores = runner.raw(images)
    assert scores.dtype == np.float32 and scores.shape == (20, 10)
    np.testing.assert_allclose(scores, model.predict(images.astype(np.float32) / 255.0, verbose=0), rtol=1e-6)
    np.testing.assert_array_equal(runner.predict(images), np.argmax(scores, axis=1))
    assert runner.model_file == folder.path / "model.keras" and runner.batch_native
    (folder.path / keras_runtime.KERAS_FILE).unlink()
    with pytest.raises(NotTrainedError, match=r"variant 'flat' is not trained \(.*model.keras missing\)"):
        RUNTIMES["keras"].load(folder)


def test_linear_runtimes_raw_and_predict_agree(build_dir):
    from sklearn.linear_model import LogisticRegression

    from edgedigit.models.rfe import FixedPointLR, PixelLR
    from edgedigit.models.variants import get_variant

    variant = get_variant("rfe-lr")
    folder = ModelFolder("rfe-lr")
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (200, 28, 28), dtype=np.uint8)
    pixels = np.sort(rng.choice(784, 20, replace=False)).astype(np.int32)
    feats = train.reshape(200, -1)[:, pixels].astype(np.float64)
    mean, std = feats.mean(axis=0), feats.std(axis=0) + 1.0
    lr = LogisticRegression(max_iter=200).fit((feats - mean) / std, np.arange(200) % 10)
    model = PixelLR(pixels, mean, std, lr)
    folder.path.mkdir(parents=True)
    files = variant.save(model, folder.path)
    FixedPointLR.from_float(model).save(folder.quantized_path("linear"))
    write_json(folder.card_path, {"variant": "rfe-lr", "kind": "linear", "files": files})

    images = random_images(25, seed=4)
    sk = RUNTIMES["sklearn"].load(folder, variant)
    np.testing.assert_allclose(sk.raw(images), model.decision_function(images))
    np.testing.assert_array_equal(sk.predict(images), np.argmax(sk.raw(images), axis=1))
    assert sk.model_file == folder.path / files["float"]
    fx = RUNTIMES["fixed-point"].load(folder, variant)
    scores = fx.raw(images)
    assert scores.dtype == np.int32 and scores.shape == (25, 10)
    np.testing.assert_array_equal(scores, FixedPointLR.load(folder.quantized_path("linear")).scores(images))
    np.testing.assert_array_equal(fx.predict(images), np.argmax(scores, axis=1))
    assert fx.model_file == folder.quantized_path("linear")
    with pytest.raises(ModelError, match=r"runtime sklearn needs the load and predict_float hook of variant 'rfe-lr'"):
        RUNTIMES["sklearn"].load(folder)
    folder.quantized_path("linear").unlink()
    with pytest.raises(NotTrainedError, match=r"variant 'rfe-lr' is not quantized"):
        RUNTIMES["fixed-point"].load(folder, variant)
