"""The linear backend's C: compiles cleanly as C and C++, and equals the Python fixed-point form exactly."""

from __future__ import annotations

import ctypes
import json
import subprocess

import numpy as np
import pytest

from edgedigit.codegen.linear import generate, tables_bytes
from edgedigit.core.errors import ModelError
from edgedigit.core.paths import templates_dir
from edgedigit.targets.export import export
from helpers import GOLDEN, check_golden, random_fixed_lr, save_fixed_lr

FLAGS = ["-Wall", "-Wextra", "-Werror", "-O2"]

_HARNESS = r"""
#include <stdint.h>
#include "edgedigit_lr_model.h"
#ifdef __cplusplus
extern "C" {
#endif
void lr_predict_batch(const uint8_t *images, int n, int32_t *pred, int32_t *scores) {
    for (int i = 0; i < n; ++i) {
        pred[i] = edgedigit_lr_predict(images + 784 * i);
        edgedigit_lr_scores(images + 784 * i, scores + EDGEDIGIT_LR_CLASSES * i);
    }
}
#ifdef __cplusplus
}
#endif
"""


def reference(model, tmp_path):
    """The Python fixed-point form: edgedigit.models.rfe.FixedPointLR when it exists, else contract 4 in numpy."""
    try:
        from edgedigit.models.rfe import FixedPointLR
    except ImportError:
        FixedPointLR = None
    if FixedPointLR is not None:
        return FixedPointLR.load(save_fixed_lr(model, tmp_path / "model_fixed.npz"))

    class _ContractLR:
        def scores(self, images):
            flat = images.reshape(len(images), 784)[:, model.pixels].astype(np.int32)
            return (model.bias + flat @ model.weights.astype(np.int32).T).astype(np.int32)

        def predict(self, images):
            return np.argmax(self.scores(images), axis=1)

    return _ContractLR()


def write_sources(model, d):
    d.mkdir(exist_ok=True)
    for name, text in generate(model, variant="rfe-lr", source_name="models/rfe-lr/model_fixed.npz").items():
        (d / name).write_text(text)
    for name in ("edgedigit_model.h", "edgedigit_rom.h"):
        (d / name).write_text((templates_dir() / "runtime" / name).read_text())
    (d / "harness.c").write_text(_HARNESS)
    return d


@pytest.mark.parametrize("compiler, lang", [("gcc", ["-std=c99", "-pedantic"]), ("g++", ["-x", "c++", "-std=c++17"])])
def test_linear_sources_compile_warning_free(tmp_path, compiler, lang):
    d = write_sources(random_fixed_lr(), tmp_path / "src")
    for src in ("edgedigit_model_linear.c", "harness.c"):
        subprocess.run([compiler, *lang, *FLAGS, "-c", src, "-o", f"{src}.o"], cwd=d, check=True)


def _shared_library(d, compiler="gcc"):
    so = d / f"lr_{compiler}.so"
    lang = ["-std=c99"] if compiler == "gcc" else ["-x", "c++"]
    subprocess.run([compiler, *lang, *FLAGS, "-shared", "-fPIC", "harness.c", "-o", str(so)], cwd=d, check=True)
    lib = ctypes.CDLL(str(so))
    lib.lr_predict_batch.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    return lib


def c_predict(lib, images):
    images = np.ascontiguousarray(images, dtype=np.uint8)
    pred = np.zeros(len(images), np.int32)
    scores = np.zeros((len(images), 10), np.int32)
    lib.lr_predict_batch(images.ctypes.data, len(images), pred.ctypes.data, scores.ctypes.data)
    return pred, scores


@pytest.mark.mnist
def test_lr_c_equals_python_fixed_point_on_all_mnist_test_images(mnist, tmp_path):
    model = random_fixed_lr(seed=3)
    ref = reference(model, tmp_path)
    lib = _shared_library(write_sources(model, tmp_path / "src"))
    images = mnist.x_test
    assert len(images) == 10_000
    pred, scores = c_predict(lib, images)
    np.testing.assert_array_equal(scores, ref.scores(images))
    np.testing.assert_array_equal(pred, ref.predict(images))
    assert len(np.unique(pred)) > 1  # the comparison is not between two constant outputs


def test_lr_c_equals_python_on_ties_and_extremes(tmp_path):
    """Ties go to the first maximum; extreme weights and all-255 images do not overflow."""
    model = random_fixed_lr(seed=5)
    model.weights[:] = 127
    model.weights[3] = -128
    model.bias[:] = 0
    model.bias[7] = 1  # class 7 wins by one on a black image; classes 0..9 except 3 tie on white ones
    images = np.stack([np.zeros((28, 28), np.uint8), np.full((28, 28), 255, np.uint8)])
    ref = reference(model, tmp_path)
    pred, scores = c_predict(_shared_library(write_sources(model, tmp_path / "src"), "g++"), images)
    np.testing.assert_array_equal(scores, ref.scores(images))
    assert pred.tolist() == ref.predict(images).tolist() == [7, 7]
    assert scores[1, 0] == 127 * 255 * 100


def test_lr_tables_bytes_and_validation():
    model = random_fixed_lr()
    assert tables_bytes(model) == 100 * 2 + 10 * 100 + 10 * 4
    bad = random_fixed_lr()
    bad.pixels = bad.pixels[::-1].copy()
    with pytest.raises(ModelError, match="ascending"):
        generate(bad, variant="rfe-lr", source_name="x")
    bad = random_fixed_lr()
    bad.weights = bad.weights.astype(np.int32) * 4
    with pytest.raises(ModelError, match="int8"):
        generate(bad, variant="rfe-lr", source_name="x")


def test_golden_files(build_dir, tmp_path):
    """A seeded fixed-point LR exported as variant rfe-lr for the uno equals tests/golden/uno-rfe-lr-linear/
    (EDGEDIGIT_REGEN_GOLDEN=1 rewrites them)."""
    folder = build_dir / "models" / "rfe-lr"
    folder.mkdir(parents=True)
    (folder / "card.json").write_text(json.dumps({"variant": "rfe-lr", "kind": "linear", "int8_accuracy": 0.8,
                                                  "seed": 0}))
    save_fixed_lr(random_fixed_lr(seed=0), folder / "model_fixed.npz")
    res = export("uno", variant="rfe-lr", out=tmp_path / "uno-rfe-lr-linear")
    assert res.backend == "linear"
    check_golden(res.path, GOLDEN / "uno-rfe-lr-linear")
