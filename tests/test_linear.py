"""edgedigit.models.rfe: RFE selection, the float rfe-lr model and its fixed-point form (COMMON contract 4)."""

from __future__ import annotations

import numpy as np
import pytest

from edgedigit.core.errors import EdgeDigitError, ModelError
from edgedigit.models.rfe import (
    IMAGE_PIXELS,
    INT32_MAX,
    FixedPointLR,
    PixelLR,
    fit_lr,
    pixel_stats,
    rfe_schedule,
    rfe_select,
    train_rfe_lr,
)


def random_fixed(seed: int = 0, classes: int = 10, n: int = 100) -> FixedPointLR:
    rng = np.random.default_rng(seed)
    pixels = np.sort(rng.choice(IMAGE_PIXELS, size=n, replace=False)).astype(np.int32)
    weights = rng.integers(-128, 128, size=(classes, n)).astype(np.int8)
    bias = rng.integers(-(2**20), 2**20, size=classes).astype(np.int32)
    return FixedPointLR(pixels, weights, bias, 0.001)


def random_images(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def c_form_predict(fx: FixedPointLR, image: np.ndarray) -> tuple[list[int], int]:
    """The device C, statement by statement: int32 accumulators, a strict ``>`` scan for the maximum."""
    flat = image.reshape(-1)
    scores = []
    for k in range(fx.num_classes):
        acc = int(fx.bias[k])
        for i in range(fx.pixels.size):
            acc += int(fx.weights[k, i]) * int(flat[fx.pixels[i]])
            assert -(2**31) <= acc <= INT32_MAX  # the C would overflow here
        scores.append(acc)
    best = 0
    for k in range(1, len(scores)):
        if scores[k] > scores[best]:
            best = k
    return scores, best


def test_scores_equal_the_c_form_integer_math():
    fx = random_fixed()
    images = random_images(40)
    images[0] = 255  # the extremes
    images[1] = 0
    scores = fx.scores(images)
    assert scores.dtype == np.int32 and scores.shape == (40, 10)
    pred = fx.predict(images)
    for n, img in enumerate(images):
        ref_scores, ref_pred = c_form_predict(fx, img)
        assert scores[n].tolist() == ref_scores
        assert pred[n] == ref_pred
    assert np.all(np.abs(scores.astype(np.int64)) <= fx.score_bound())


def test_predict_ties_go_to_the_first_class():
    pixels = np.arange(100, dtype=np.int32)
    weights = np.zeros((10, 100), dtype=np.int8)
    bias = np.array([0, 5, 5, 1, 5, 0, 0, 0, 0, 0], dtype=np.int32)
    fx = FixedPointLR(pixels, weights, bias, 1.0)
    assert fx.predict(random_images(3)).tolist() == [1, 1, 1]
    assert c_form_predict(fx, random_images(1)[0])[1] == 1


def test_score_bound_holds_and_is_reached_when_weights_share_a_sign():
    fx = random_fixed(3)
    for k in range(10):  # the extreme images of each class stay within the bound
        for sign in (1, -1):
            img = np.where(fx.weights[k].astype(np.int64) * sign > 0, 255, 0).astype(np.uint8)
            full = np.zeros((1, IMAGE_PIXELS), dtype=np.uint8)
            full[0, fx.pixels] = img
            assert abs(int(fx.scores(full)[0, k])) <= fx.score_bound()
    same_sign = FixedPointLR(fx.pixels, np.abs(fx.weights.astype(np.int16)).clip(0, 127).astype(np.int8),
                             np.abs(fx.bias), 1.0)
    assert int(same_sign.scores(np.full((1, 28, 28), 255, np.uint8)).max()) == same_sign.score_bound()


def test_overflowing_tables_are_refused():
    fx = random_fixed()
    bias = np.full(10, INT32_MAX - 100, dtype=np.int32)
    with pytest.raises(ModelError, match="beyond int32"):
        FixedPointLR(fx.pixels, fx.weights, bias, 1.0)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("pixels", np.arange(99, -1, -1, dtype=np.int32), "unique, ascending"),
    ("pixels", np.arange(100, dtype=np.int64), "int32"),
    ("pixels", np.arange(700, 800, dtype=np.int32), "within 0..783"),
    ("weights", np.zeros((10, 100), dtype=np.int16), "int8"),
    ("weights", np.zeros((10, 99), dtype=np.int8), r"\(classes, 100\)"),
    ("bias", np.zeros(10, dtype=np.int64), "int32"),
    ("scale", 0.0, "positive"),
])
def test_bad_tables_are_refused(field, value, message):
    fx = random_fixed()
    kwargs = {"pixels": fx.pixels, "weights": fx.weights, "bias": fx.bias, "scale": fx.scale, field: value}
    with pytest.raises(ModelError, match=message):
        FixedPointLR(**kwargs)


def test_save_load_round_trip(tmp_path):
    fx = random_fixed(5)
    path = tmp_path / "model_fixed.npz"
    fx.save(path)
    with np.load(path) as z:
        assert z["pixels"].dtype == np.int32 and z["pixels"].shape == (100,)
        assert z["weights"].dtype == np.int8 and z["weights"].shape == (10, 100)
        assert z["bias"].dtype == np.int32 and z["bias"].shape == (10,)
        assert z["scale"].dtype == np.float64 and z["scale"].shape == ()
    back = FixedPointLR.load(path)
    images = random_images(20)
    assert np.array_equal(back.scores(images), fx.scores(images))
    assert back.scale == fx.scale
    assert back.table_bytes() == 100 * 2 + 1000 + 40


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(ModelError, match=f"{missing}: no such file"):
        FixedPointLR.load(missing)
    partial = tmp_path / "partial.npz"
    fx = random_fixed()
    np.savez(partial, pixels=fx.pixels, weights=fx.weights, bias=fx.bias)
    with pytest.raises(ModelError, match=f"{partial}: missing array 'scale'"):
        FixedPointLR.load(partial)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(ModelError, match=f"{junk}: not a readable"):
        FixedPointLR.load(junk)
    unsorted = tmp_path / "unsorted.npz"
    np.savez(unsorted, pixels=fx.pixels[::-1], weights=fx.weights, bias=fx.bias, scale=np.float64(1.0))
    with pytest.raises(ModelError, match=f"{unsorted}: pixel indices must be unique, ascending"):
        FixedPointLR.load(unsorted)


def test_images_must_be_uint8_28x28():
    fx = random_fixed()
    with pytest.raises(ModelError, match="uint8"):
        fx.scores(np.zeros((2, 28, 28), dtype=np.float32))
    with pytest.raises(ModelError, match="784 pixels"):
        fx.scores(np.zeros((2, 27, 27), dtype=np.uint8))


def test_rfe_schedule_reaches_the_target_exactly():
    sizes = rfe_schedule(784, 100)
    assert sizes[0] == 784 and sizes[-1] > 100
    assert all(a > b for a, b in zip(sizes, sizes[1:], strict=False))
    assert sizes[-1] - 100 <= 10  # the last round drops at most one fine step
    assert rfe_schedule(100, 100) == []
    with pytest.raises(EdgeDigitError, match="RFE target 0"):
        rfe_schedule(784, 0)


def _synthetic(n: int = 1500, seed: int = 0):
    """Images whose class is written in 20 informative pixels; the other 764 are noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=n)
    x = rng.integers(0, 60, size=(n, IMAGE_PIXELS)).astype(np.uint8)
    informative = np.arange(5, IMAGE_PIXELS, 39)[:20]
    for c in range(10):
        x[y == c, informative[2 * c]] += 190
        x[y == c, informative[2 * c + 1]] += 190
    return x, y, np.sort(informative)


def test_rfe_select_keeps_the_informative_pixels():
    x, y, informative = _synthetic()
    mean, std = pixel_stats(x)
    z = (x - mean) / std
    steps = []
    kept = rfe_select(z, y, 20, advance=lambda: steps.append(1))
    assert kept.dtype == np.int32 and kept.shape == (20,)
    assert np.array_equal(kept, informative)
    assert len(steps) == len(rfe_schedule(IMAGE_PIXELS, 20))


def test_fixed_point_folds_standardization_and_keeps_predictions():
    x, y, _ = _synthetic(seed=2)
    result = train_rfe_lr(x, y, seed=0, n_pixels=100, rfe_samples=1000, Cs=(0.1, 1.0))
    model = result.model
    assert isinstance(model, PixelLR) and model.pixels.shape == (100,)
    assert np.array_equal(model.pixels, np.unique(model.pixels))
    fx = FixedPointLR.from_float(model)
    assert np.array_equal(fx.pixels, model.pixels)
    assert np.abs(fx.weights).max() == 127  # the scale uses the full int8 range
    xt, _, _ = _synthetic(500, seed=3)
    float_logits = model.decision_function(xt)
    # Each weight is off by at most half a step, the bias likewise: the logit error is bounded.
    err_bound = fx.scale * (0.5 * xt[:, fx.pixels].astype(np.float64).sum(axis=1) + 0.5)
    assert np.all(np.abs(fx.logits(xt) - float_logits) <= err_bound[:, None] + 1e-9)
    assert np.mean(fx.predict(xt) == model.predict(xt)) >= 0.99
    info = result.info
    assert info["regularization"]["C"] in (0.1, 1.0)
    assert set(info["regularization"]["validation_accuracy"]) == {"0.1", "1.0"}
    assert info["pixels"] == model.pixels.tolist()


def test_fit_lr_reports_non_convergence():
    x, y, _ = _synthetic(300)
    mean, std = pixel_stats(x)
    with pytest.raises(EdgeDigitError, match=r"C=1000.0\) did not converge in 2 iterations"):
        fit_lr((x - mean) / std, y, 1000.0, max_iter=2)


@pytest.mark.mnist
def test_rfe_lr_on_real_mnist_slice(mnist):
    small = mnist.subset(4000, 2000)
    result = train_rfe_lr(small.x_train, small.y_train, seed=0, rfe_samples=3000)
    fx = FixedPointLR.from_float(result.model)
    assert fx.pixels.shape == (100,) and np.array_equal(fx.pixels, np.unique(fx.pixels))
    float_acc = np.mean(result.model.predict(small.x_test) == small.y_test)
    fixed_acc = np.mean(fx.predict(small.x_test) == small.y_test)
    assert float_acc > 0.84
    assert abs(fixed_acc - float_acc) <= 0.005
    # pixels at the image border carry no ink in MNIST: RFE must not choose them
    rows, cols = np.divmod(fx.pixels, 28)
    assert rows.min() >= 1 and rows.max() <= 26 and cols.min() >= 1 and cols.max() <= 26
