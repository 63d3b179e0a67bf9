"""Builders shared by several test modules (no test module imports another one; they import from here).

- models: :data:`TINY` (the fixed golden .tflite), :func:`random_fixed_lr`, :func:`save_fixed_lr`,
  :func:`tanh_tflite` (an int8 model with an op the native backend lacks), :func:`add_variant` (a variant
  in a build tree);
- exported projects: :func:`read_tree`, :func:`check_golden` (compare with ``tests/golden/<name>/``,
  ``EDGEDIGIT_REGEN_GOLDEN=1`` rewrites);
- the serial protocol: :func:`assemble` (a make project around a stand-in runner), :func:`expected` and
  :func:`image`.
"""

from __future__ import annotations

import json
import os
import shutil
import types
import zlib
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent
GOLDEN = TESTS / "golden"
TINY = GOLDEN / "tiny.tflite"
RUNNER_C = TESTS / "test_protocol_runner.c"
SHA = "0123456789abcdef" * 4
RUNNER_CRC = f"{zlib.crc32(bytes([1, 2, 3, 4, 5]) + b'edgedigit'):08x}"  # the stand-in's two model data regions


# ---- models ----------------------------------------------------------------------------------------------

def random_fixed_lr(seed: int = 0):
    """A fixed-point LR per COMMON contract 4 with seeded random tables (stands in for a trained rfe-lr)."""
    rng = np.random.default_rng(seed)
    return types.SimpleNamespace(
        pixels=np.sort(rng.choice(784, 100, replace=False)).astype(np.int32),
        weights=rng.integers(-128, 128, (10, 100)).astype(np.int8),
        bias=rng.integers(-200_000, 200_000, 10).astype(np.int32),
        scale=float(rng.uniform(1e-5, 1e-3)),
    )


def save_fixed_lr(model, path: Path) -> Path:
    """Write ``model``'s four tables as ``model_fixed.npz`` does (pixels, weights, bias, scale)."""
    np.savez(path, pixels=model.pixels, weights=model.weights, bias=model.bias, scale=np.float64(model.scale))
    return path


def tanh_tflite(path: Path) -> Path:
    """Write a small full-int8 classifier with a TANH layer (FULLY_CONNECTED per tensor, TANH, SOFTMAX).

    The boards' TFLM libraries provide TANH; the native backend does not, so it must be left out of native
    with its reason. Seeded weights, converted with the real TFLite converter.
    """
    import tensorflow as tf
    import tf_keras as keras
    from tf_keras import layers as L

    from tflite_factory import convert, random_images

    tf.keras.utils.set_random_seed(0)
    model = keras.Sequential([L.Flatten(batch_input_shape=(1, 28, 28)), L.Dense(16, activation="tanh"),
                              L.Dense(10), L.Softmax()])
    x = random_images(32, seed=3).astype(np.float32) / 255.0
    path.write_bytes(convert(model, x, per_channel_dense=False))
    return path


def add_variant(build: Path, name: str, kind: str, accuracy: float, source: Path | None = None, seed: int = 0) -> Path:
    """Put a variant into ``build/models/<name>/``: a card plus its int8 artifact (a copy of ``source``, or a
    seeded random fixed-point LR per COMMON contract 4 for kind "linear")."""
    d = build / "models" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "card.json").write_text(json.dumps({"variant": name, "kind": kind, "int8_accuracy": accuracy, "seed": seed}))
    if kind == "neural":
        shutil.copy(source, d / "model_int8.tflite")
    else:
        rng = np.random.default_rng(seed)
        np.savez(d / "model_fixed.npz", pixels=np.sort(rng.choice(784, 100, replace=False)).astype(np.int32),
                 weights=rng.integers(-128, 128, (10, 100)).astype(np.int8),
                 bias=rng.integers(-5000, 5000, 10).astype(np.int32), scale=np.float64(1e-3))
    return d


# ---- exported projects -----------------------------------------------------------------------------------

def assert_same_stage(new, ref, outputs: bool = True) -> None:
    """Two stage declarations agree: name, outputs (unless ``outputs`` is False) and inputs, or the same
    ``Blocked`` reason when the inputs are not there yet."""
    import re

    import pytest

    from edgedigit.core.stage import Blocked

    assert new.name == ref.name and (not outputs or new.outputs() == ref.outputs())
    try:
        expected = ref.inputs()
    except Blocked as e:
        with pytest.raises(Blocked, match=re.escape(str(e))):
            new.inputs()
    else:
        assert new.inputs() == expected


def read_tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``: relative path -> bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def check_golden(project: Path, golden: Path) -> None:
    """Every rendered file of ``project`` equals ``golden/`` (``EDGEDIGIT_REGEN_GOLDEN=1`` rewrites them).

    The hand-written files copied verbatim (protocol and interfaces from ``firmware_templates/runtime/``, the
    native kernel library from ``firmware_templates/native/``) are compared with their templates instead,
    so a protocol or kernel change does not touch the golden files. The lock file records tool versions and
    is left out.
    """
    from edgedigit.core.paths import templates_dir
    from edgedigit.targets.export import LOCK_FILE

    verbatim = {p.name: p for folder in ("runtime", "native") for p in (templates_dir() / folder).iterdir()
                if p.is_file() and p.suffix != ".j2"}
    rendered = {}
    for p in sorted(project.rglob("*")):
        if not p.is_file() or p.name == LOCK_FILE:
            continue
        if p.parent == project / "src" and p.name in verbatim:
            assert p.read_bytes() == verbatim[p.name].read_bytes(), p.name
            continue
        rendered[p.relative_to(project).as_posix()] = p.read_text()
    if os.environ.get("EDGEDIGIT_REGEN_GOLDEN") == "1":
        if golden.is_dir():
            shutil.rmtree(golden)
        for rel, text in rendered.items():
            (golden / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden / rel).write_text(text)
    expected = {p.relative_to(golden).as_posix(): p.read_text() for p in sorted(golden.rglob("*")) if p.is_file()}
    assert sorted(rendered) == sorted(expected)
    for rel, text in rendered.items():
        assert text == expected[rel], f"{rel} differs from its golden file (regenerate with EDGEDIGIT_REGEN_GOLDEN=1)"


# ---- the serial protocol ---------------------------------------------------------------------------------

def assemble(dest: Path, platform: str, runner: Path = RUNNER_C) -> Path:
    """A make project laid out as export does (contract 6): runtime + platform sources + a model runner."""
    from edgedigit.codegen.render import banner, render
    from edgedigit.core.paths import templates_dir

    src = dest / "src"
    src.mkdir(parents=True)
    tdir = templates_dir()
    for f in [*(tdir / "runtime").iterdir(), *(tdir / "platform" / platform / "src").iterdir()]:
        shutil.copy(f, src / f.name)
    shutil.copy(runner, src / "edgedigit_model_test.c")
    ctx = dict(board={}, model=dict(variant="testrunner", backend="test", sha256=SHA),
               sources=sorted(p.name for p in src.iterdir()), banner_c=banner("test", SHA, "c"),
               banner_hash=banner("test", SHA, "hash"), edgedigit_version="test")
    for f in (tdir / "platform" / platform / "root").iterdir():
        if f.suffix == ".j2":
            (dest / f.stem).write_text(render(f"platform/{platform}/root/{f.name}", **ctx))
        else:
            shutil.copy(f, dest / f.name)
    return dest


def expected(pixels: bytes) -> tuple[int, list[int]]:
    """What test_protocol_runner.c computes."""
    s = sum(pixels)
    raw = [((s * (k + 1) + k) % 256) - 128 for k in range(10)]
    return raw.index(max(raw)), raw


def image(seed: int) -> bytes:
    """A seeded MNIST-like image: mostly zeros, so the zero runs are exercised."""
    rng = np.random.default_rng(seed)
    px = rng.integers(0, 256, 784, dtype=np.uint8)
    px[rng.random(784) < 0.7] = 0
    return px.tobytes()
