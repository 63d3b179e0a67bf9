"""Shared fixtures.

Real-MNIST tests use the ``mnist`` fixture: it loads ``$EDGEDIGIT_DATA`` and skips when it is not set,
unless ``EDGEDIGIT_REQUIRE_MNIST=1`` (set by .ci/run), where a missing dataset fails instead.
Tools (arm-none-eabi-gcc, qemu, clang, valgrind) work the same way with ``EDGEDIGIT_REQUIRE_TOOLS=1``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
THIRD_PARTY = REPO.parent / "shared" / "third_party"  # read-only source trees beside the checkout (CI has them)


def _require(flag: str) -> bool:
    return os.environ.get(flag, "") == "1"


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST as an ``edgedigit.models.data.Dataset`` (from $EDGEDIGIT_DATA)."""
    from edgedigit.models.data import load_dataset

    path = os.environ.get("EDGEDIGIT_DATA")
    if not path or not Path(path).exists():
        if _require("EDGEDIGIT_REQUIRE_MNIST"):
            pytest.fail(f"EDGEDIGIT_REQUIRE_MNIST=1 but EDGEDIGIT_DATA={path!r} does not exist")
        pytest.skip("real MNIST not available (set EDGEDIGIT_DATA)")
    return load_dataset(path)


def require_tool(name: str) -> str:
    """The path of an external tool; skip without it, or fail when EDGEDIGIT_REQUIRE_TOOLS=1."""
    found = shutil.which(name)
    if found is None:
        if _require("EDGEDIGIT_REQUIRE_TOOLS"):
            pytest.fail(f"EDGEDIGIT_REQUIRE_TOOLS=1 but {name} is not installed")
        pytest.skip(f"{name} not installed")
    return found


def require_tree(name: str) -> Path:
    """``../shared/third_party/<name>`` (a TFLM or ESP-NN source tree); skip without it, or fail when
    EDGEDIGIT_REQUIRE_TOOLS=1 (CI has the trees)."""
    path = THIRD_PARTY / name
    if not path.is_dir():
        if _require("EDGEDIGIT_REQUIRE_TOOLS"):
            pytest.fail(f"EDGEDIGIT_REQUIRE_TOOLS=1 but the source tree {path} is missing")
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture(scope="session", autouse=True)
def _tflm_cache():
    """TFLM compiled from a source tree goes to the repository's build/cache/tflm (not a test's temporary build
    tree), so it is compiled once and reused by later test runs; an explicit $EDGEDIGIT_TFLM_CACHE wins."""
    old = os.environ.get("EDGEDIGIT_TFLM_CACHE")
    if old is None:
        os.environ["EDGEDIGIT_TFLM_CACHE"] = str(REPO / "build" / "cache" / "tflm")
    yield
    if old is None:
        os.environ.pop("EDGEDIGIT_TFLM_CACHE", None)


@pytest.fixture
def build_dir(tmp_path, monkeypatch):
    """An empty build tree for this test ($EDGEDIGIT_BUILD points at it)."""
    d = tmp_path / "build"
    monkeypatch.setenv("EDGEDIGIT_BUILD", str(d))
    return d


@pytest.fixture(scope="session")
def tflite_models(tmp_path_factory):
    """Small int8 .tflite files of several shapes (see tflite_factory.py), built once per session."""
    from tflite_factory import build_all

    return build_all(tmp_path_factory.mktemp("tflite"))


@pytest.fixture(scope="session")
def tanh_model(tmp_path_factory):
    """An int8 .tflite with a TANH layer (the native backend lacks TANH), built once per session."""
    from helpers import tanh_tflite

    return tanh_tflite(tmp_path_factory.mktemp("tanh") / "tanh.tflite")


@pytest.fixture(scope="session")
def mnist_small(mnist):
    """A real-MNIST slice for fast training: the first 3,000 training and 500 test images."""
    return mnist.subset(3000, 500)


@pytest.fixture(scope="session")
def _trained_models(mnist_small, tmp_path_factory):
    from edgedigit.models.quantize import quantize_variants
    from edgedigit.models.train import train_variants
    from edgedigit.models.variants import REGISTRY

    root = tmp_path_factory.mktemp("trained") / "build"
    names = [n for n in ("mlp", "mlp-pruned", "rfe-lr") if n in REGISTRY]
    old = os.environ.get("EDGEDIGIT_BUILD")
    os.environ["EDGEDIGIT_BUILD"] = str(root)
    try:
        train_variants(names, mnist_small, seed=0, epochs=1)
        quantize_variants(names, mnist_small, calibration_samples=100, seed=0)
    finally:
        if old is None:
            os.environ.pop("EDGEDIGIT_BUILD", None)
        else:
            os.environ["EDGEDIGIT_BUILD"] = old
    return root


@pytest.fixture
def trained_build(_trained_models, tmp_path, monkeypatch):
    """A build tree ($EDGEDIGIT_BUILD points at it) whose ``models/`` holds trained and quantized variants.

    ``mlp`` and ``mlp-pruned`` (plus ``rfe-lr`` when registered), trained for 1 epoch with seed 0 on
    ``mnist_small`` (3,000 train / 500 test real-MNIST images) and quantized to int8 per tensor with 100
    calibration images. Trained once per session (~30 s); each test gets its own copy, so it may write.
    Figures are slice figures (float accuracy ~85 %), not the full-MNIST ones.
    """
    d = tmp_path / "build"
    shutil.copytree(_trained_models, d)
    monkeypatch.setenv("EDGEDIGIT_BUILD", str(d))
    return d
