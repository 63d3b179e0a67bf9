"""The native backend's exported project pinned byte for byte: tests/golden/tiny.tflite for the host board."""

from __future__ import annotations

import pytest

from edgedigit.targets.export import export
from helpers import GOLDEN, TINY, check_golden


@pytest.fixture(scope="module")
def tiny_native_project(tmp_path_factory):
    """tests/golden/tiny.tflite exported for the host board with the native backend."""
    out = tmp_path_factory.mktemp("export") / "host-tiny-native"
    export("host", model=TINY, backend="native", out=out)
    return out


def test_golden_files(tiny_native_project):
    """Every rendered file equals tests/golden/host-tiny-native/ (EDGEDIGIT_REGEN_GOLDEN=1 rewrites them)."""
    check_golden(tiny_native_project, GOLDEN / "host-tiny-native")
